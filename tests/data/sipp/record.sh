#!/usr/bin/env bash
# Regenerates the SIP captures of tests/data/sipp/ and samples/calls.pcap with SIPp on loopback.
#
# Needs root (tcpdump), sipp (Debian package sip-tester, 3.6.1) and tcpdump (4.99, libpcap 1.10).
# All traffic stays on loopback (127.0.0.0/8 and ::1); every sipp run is bounded by -m 1 and
# -timeout, and every process this script starts is stopped by its own PID.
#
# Usage: tests/data/sipp/record.sh [capture-name ...]    (default: all of them)
#   e.g. tests/data/sipp/record.sh answered_caller_bye busy
#
# Re-recording changes every timestamp (and therefore the expected records in README.md and
# tests/e2e_sipp.rs): update both after running it.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
SCN=$HERE/scenarios
WORK=$(mktemp -d)
FILTER='udp port 5060 or udp port 15060'
UAS_PORT=5060
UAC_PORT=15060

# Who calls whom. Keys are SIPp -key substitutions used by the scenarios.
ALICE=(-key caller +15551230001 -key caller_name "Alice Example" -key pai +15551230000)
CAROL=(-key caller +15551230003 -key caller_name "Carol Example" -key pai +15551230000)
DAVE=(-key caller +15551230005 -key caller_name "Dave Example" -key pai +15551230000)
ERIN=(-key caller +15551230007 -key caller_name "Erin Example" -key pai +15551230000)

TD_PID=""
BG_PIDS=()

cleanup() {
    local pid
    for pid in "${BG_PIDS[@]}" $TD_PID; do
        kill "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

die() {
    echo "record.sh: $*" >&2
    exit 1
}

# start_capture IFACE OUT: tcpdump in the background, returns once it is capturing.
start_capture() {
    local iface=$1 out=$2
    rm -f "$out"
    : >"$WORK/tcpdump.err"
    # --immediate-mode: without it TPACKET_V3 hands packets over per block or per 1 s timeout,
    # and the last packets before the kill were lost.
    tcpdump -i "$iface" --immediate-mode -U -w "$out" "$FILTER" 2>"$WORK/tcpdump.err" &
    TD_PID=$!
    for _ in $(seq 100); do
        grep -q 'listening on' "$WORK/tcpdump.err" && return 0
        kill -0 "$TD_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$WORK/tcpdump.err" >&2
    die "tcpdump did not start on $iface"
}

stop_capture() {
    # Let the last datagrams reach the capture buffer before stopping it.
    sleep 0.3
    kill "$TD_PID"
    wait "$TD_PID" || true
    TD_PID=""
}

# wait_listening IP: until a UDP socket is bound to IP:5060 (IPv6 given without brackets).
wait_listening() {
    local addr=$1
    [[ $addr == *:* ]] && addr="[$addr]"
    for _ in $(seq 100); do
        [[ -n $(ss -Hlun "sport = :$UAS_PORT and src $addr") ]] && return 0
        sleep 0.05
    done
    die "no UAS listening on $addr:$UAS_PORT"
}

# uas NAME SCENARIO IP [keys...]: a one-call UAS in the background; its PID goes in BG_PIDS.
uas() {
    local name=$1 scenario=$2 ip=$3
    shift 3
    (cd "$WORK" && exec sipp -sf "$SCN/$scenario" -i "$ip" -mi "$ip" -p "$UAS_PORT" \
        -m 1 -timeout 30s -nostdin "$@" >"$WORK/$name.uas.log" 2>&1) &
    BG_PIDS+=($!)
    wait_listening "$ip"
}

# uac NAME SCENARIO IP REMOTE CALL-ID [keys...]: a one-call UAC in the foreground.
uac() {
    local name=$1 scenario=$2 ip=$3 remote=$4 cid=$5
    shift 5
    (cd "$WORK" && exec sipp "$remote" -sf "$SCN/$scenario" -i "$ip" -mi "$ip" -p "$UAC_PORT" \
        -m 1 -timeout 30s -nostdin -cid_str "$cid" "$@" >"$WORK/$name.uac.log" 2>&1) ||
        { cat "$WORK/$name.uac.log" >&2; die "$name: the UAC failed"; }
}

# wait_all: waits for the background UASes; any failure fails the recording.
wait_all() {
    local pid
    for pid in "${BG_PIDS[@]}"; do
        wait "$pid" || { cat "$WORK"/*.uas.log >&2; die "a UAS failed"; }
    done
    BG_PIDS=()
}

# pair NAME UAS-SCENARIO UAC-SCENARIO CALL-ID CALLEE [caller keys...]: one call 127.0.0.1 -> .2
pair() {
    local name=$1 uas_sf=$2 uac_sf=$3 cid=$4 callee=$5
    shift 5
    uas "$name" "$uas_sf" 127.0.0.2 -key callee "$callee"
    uac "$name" "$uac_sf" 127.0.0.1 127.0.0.2:$UAS_PORT "$cid" -key callee "$callee" "$@"
    wait_all
}

# One capture per case, on lo (Ethernet link type: zero MAC addresses).
record() {
    local name=$1 out=$HERE/$1.pcap
    echo "recording $name"
    case $name in
    answered_caller_bye)
        start_capture lo "$out"
        pair "$name" uas_answer.xml uac_answer_caller_bye.xml \
            'answered-caller-bye-%u@pbx.example.com' 15559870002 "${ALICE[@]}"
        ;;
    answered_caller_bye_ipv6)
        start_capture lo "$out"
        uas "$name" uas_answer.xml ::1 -key callee 15559870002
        uac "$name" uac_answer_caller_bye.xml ::1 "[::1]:$UAS_PORT" \
            'answered-caller-bye-%u@pbx.example.com' -key callee 15559870002 "${ALICE[@]}"
        wait_all
        ;;
    answered_caller_bye_sll2)
        # tcpdump 4.99 / libpcap 1.10 write "any" captures as LINUX_SLL2 (link type 276).
        start_capture any "$out"
        pair "$name" uas_answer.xml uac_answer_caller_bye.xml \
            'answered-caller-bye-%u@pbx.example.com' 15559870002 "${ALICE[@]}"
        ;;
    answered_callee_bye)
        start_capture lo "$out"
        pair "$name" uas_answer_callee_bye.xml uac_answer_callee_bye.xml \
            'answered-callee-bye-%u@pbx.example.com' 15559870002 "${ALICE[@]}"
        ;;
    busy)
        start_capture lo "$out"
        pair "$name" uas_busy.xml uac_rejected.xml \
            'busy-%u@pbx.example.com' 15559870002 "${ALICE[@]}"
        ;;
    cancelled)
        start_capture lo "$out"
        pair "$name" uas_cancel.xml uac_cancel.xml \
            'cancelled-%u@pbx.example.com' 15559870002 "${ALICE[@]}"
        ;;
    not_found)
        start_capture lo "$out"
        pair "$name" uas_not_found.xml uac_rejected.xml \
            'not-found-%u@pbx.example.com' 15559879999 "${ALICE[@]}"
        ;;
    auth_challenge)
        start_capture lo "$out"
        pair "$name" uas_auth.xml uac_auth.xml \
            'auth-challenge-%u@pbx.example.com' 15559870002 "${ALICE[@]}"
        ;;
    reinvite)
        start_capture lo "$out"
        pair "$name" uas_answer.xml uac_reinvite.xml \
            'reinvite-%u@pbx.example.com' 15559870002 "${ALICE[@]}"
        ;;
    messages)
        start_capture lo "$out"
        uas "$name-1" uas_message.xml 127.0.0.2
        uac "$name-1" uac_message.xml 127.0.0.1 127.0.0.2:$UAS_PORT 'message-delivered-%u@pbx.example.com' \
            -key callee 15559870002 -key text "Running 10 minutes late, start without me." "${ALICE[@]}"
        wait_all
        uas "$name-2" uas_message_not_found.xml 127.0.0.2
        uac "$name-2" uac_message.xml 127.0.0.1 127.0.0.2:$UAS_PORT 'message-unknown-user-%u@pbx.example.com' \
            -key callee 15559879999 -key text "Are you there?" "${ALICE[@]}"
        wait_all
        ;;
    sample)
        # The Quick-start sample: overlapping calls from several phones (127.0.0.11-15) to
        # several far ends (127.0.0.2-6), so dialogs interleave in one capture.
        out=$ROOT/samples/calls.pcap
        mkdir -p "$ROOT/samples"
        start_capture lo "$out"
        uas s-answered uas_answer.xml 127.0.0.2 -key callee 15559870002
        uas s-busy uas_busy.xml 127.0.0.3 -key callee 15559870004
        uas s-cancelled uas_cancel.xml 127.0.0.4 -key callee 15559870006
        uas s-not-found uas_not_found.xml 127.0.0.5 -key callee 15559879999
        uas s-message uas_message.xml 127.0.0.6
        uac s-answered uac_answer_caller_bye.xml 127.0.0.11 127.0.0.2:$UAS_PORT \
            'sample-answered-%u@pbx.example.com' -key callee 15559870002 "${ALICE[@]}" &
        BG_PIDS+=($!)
        sleep 0.5
        uac s-busy uac_rejected.xml 127.0.0.12 127.0.0.3:$UAS_PORT \
            'sample-busy-%u@pbx.example.com' -key callee 15559870004 "${CAROL[@]}" &
        BG_PIDS+=($!)
        sleep 0.5
        uac s-cancelled uac_cancel.xml 127.0.0.13 127.0.0.4:$UAS_PORT \
            'sample-cancelled-%u@pbx.example.com' -key callee 15559870006 "${DAVE[@]}" &
        BG_PIDS+=($!)
        sleep 0.5
        uac s-not-found uac_rejected.xml 127.0.0.14 127.0.0.5:$UAS_PORT \
            'sample-not-found-%u@pbx.example.com' -key callee 15559879999 "${ERIN[@]}" &
        BG_PIDS+=($!)
        sleep 0.5
        uac s-message uac_message.xml 127.0.0.15 127.0.0.6:$UAS_PORT \
            'sample-message-%u@pbx.example.com' -key callee 15559870004 \
            -key text "Call me back when you are free." "${CAROL[@]}" &
        BG_PIDS+=($!)
        wait_all
        ;;
    *) die "unknown capture: $name" ;;
    esac
    stop_capture
    echo "  $(tcpdump -nn -r "$out" 2>&1 >/dev/null | head -1)"
    echo "  $(tcpdump -nn -r "$out" 2>/dev/null | wc -l) packets, $(stat -c %s "$out") bytes"
}

[[ $(id -u) == 0 ]] || die "run as root (tcpdump needs it)"
command -v sipp >/dev/null || die "sipp not found (apt-get install sip-tester)"
command -v tcpdump >/dev/null || die "tcpdump not found"

ALL=(answered_caller_bye answered_caller_bye_ipv6 answered_caller_bye_sll2 answered_callee_bye
    busy cancelled not_found auth_challenge reinvite messages sample)
if (($#)); then NAMES=("$@"); else NAMES=("${ALL[@]}"); fi
for name in "${NAMES[@]}"; do
    record "$name"
done
