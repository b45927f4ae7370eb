#!/usr/bin/env bash
# Records the network-path captures of tests/data/net/ with SIPp: the call of
# tests/data/sipp/answered_caller_bye.pcap (UDP) carried over TCP, over IPv6 TCP, and with an
# IP-fragmented INVITE, so tests/net.rs can assert each gives the UDP call's record.
#
# Needs root (tcpdump, ip netns), sipp (Debian sip-tester 3.6.1), tcpdump (4.99), iproute2.
# Traffic goes only to loopback (127.0.0.0/8, ::1) or to the two network namespaces this script
# creates and joins with a veth pair; they are deleted on exit, also on failure. Every sipp run
# is bounded (-m, -timeout) and every process started here is stopped by its own PID.
#
# Usage: tests/data/net/record.sh [OUT_DIR] [capture-name ...]
#   OUT_DIR defaults to tests/data/net; names default to all of:
#   tcp_t1 tcp_tn tcp_ipv6 fragmented
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SCN_SIPP=$HERE/../sipp/scenarios
SCN=$HERE/scenarios
OUT=${1:-$HERE}
shift || true
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
UAS_PORT=5060
UAC_PORT=15060
# The namespaces are named after this script's PID so parallel runs cannot collide.
NS_A=cmnet-a-$$
NS_B=cmnet-b-$$
ALICE=(-key caller +15551230001 -key caller_name "Alice Example" -key pai +15551230000
    -key callee 15559870002)

TD_PID=""
BG_PIDS=()
NETNS_MADE=0

cleanup() {
    local pid
    for pid in "${BG_PIDS[@]}" $TD_PID; do
        kill "$pid" 2>/dev/null || true
    done
    if ((NETNS_MADE)); then
        ip netns del "$NS_A" 2>/dev/null || true
        ip netns del "$NS_B" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

die() {
    echo "record.sh: $*" >&2
    exit 1
}

# in_ns NS CMD...: execs CMD in network namespace NS, or here when NS is empty. Only call
# it in a subshell (background, $(...) or ( )): it replaces the shell, so the PID of the
# background job is the PID of the command itself and can be stopped directly.
in_ns() {
    local ns=$1
    shift
    if [[ -n $ns ]]; then exec ip netns exec "$ns" "$@"; else exec "$@"; fi
}

# start_capture NS IFACE OUT FILTER: tcpdump in the background, returns once it is capturing.
start_capture() {
    local ns=$1 iface=$2 out=$3 filter=$4
    rm -f "$out"
    : >"$WORK/tcpdump.err"
    # --immediate-mode: otherwise the last packets before the kill can be lost.
    (in_ns "$ns" tcpdump -i "$iface" --immediate-mode -U -w "$out" "$filter" 2>"$WORK/tcpdump.err") &
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
    sleep 0.3
    kill "$TD_PID"
    wait "$TD_PID" || true
    TD_PID=""
}

# wait_listening NS PROTO IP: until a socket of PROTO (udp|tcp) is bound to IP:5060.
wait_listening() {
    local ns=$1 proto=$2 addr=$3 flag
    [[ $addr == *:* ]] && addr="[$addr]"
    [[ $proto == tcp ]] && flag=-Hltn || flag=-Hlun
    for _ in $(seq 100); do
        [[ -n $(in_ns "$ns" ss "$flag" "sport = :$UAS_PORT and src $addr") ]] && return 0
        sleep 0.05
    done
    cat "$WORK"/*.uas.log >&2 || true
    die "no UAS listening on $addr:$UAS_PORT ($proto)"
}

# call NAME NS_UAS NS_UAC TRANSPORT UAS_IP UAC_IP UAC_SCENARIO CALLS
# One UAS (background) and one UAC (foreground), CALLS calls, both must complete.
call() {
    local name=$1 ns_uas=$2 ns_uac=$3 t=$4 uas_ip=$5 uac_ip=$6 uac_sf=$7 calls=$8 proto=udp
    [[ $t == t* ]] && proto=tcp
    local remote=$uas_ip
    [[ $remote == *:* ]] && remote="[$remote]"
    (cd "$WORK" && in_ns "$ns_uas" sipp -sf "$SCN_SIPP/uas_answer.xml" -t "$t" -i "$uas_ip" \
        -mi "$uas_ip" -p "$UAS_PORT" -m "$calls" -max_socket 64 -timeout 30s -nostdin -key callee 15559870002 \
        >"$WORK/$name.uas.log" 2>&1) &
    BG_PIDS+=($!)
    wait_listening "$ns_uas" "$proto" "$uas_ip"
    (cd "$WORK" && in_ns "$ns_uac" sipp "$remote:$UAS_PORT" -sf "$uac_sf" -t "$t" -i "$uac_ip" \
        -mi "$uac_ip" -p "$UAC_PORT" -m "$calls" -l "$calls" -r 10 -max_socket 64 -timeout 30s -nostdin \
        -cid_str 'answered-caller-bye-%u@pbx.example.com' "${ALICE[@]}" \
        >"$WORK/$name.uac.log" 2>&1) ||
        { cat "$WORK/$name.uac.log" >&2; die "$name: the UAC failed"; }
    local pid
    for pid in "${BG_PIDS[@]}"; do
        wait "$pid" || { cat "$WORK/$name.uas.log" >&2; die "$name: the UAS failed"; }
    done
    BG_PIDS=()
}

# Two namespaces joined by a veth pair with a 1500-byte MTU: what a real Ethernet link
# does to a large INVITE (loopback's 64 KiB MTU would never fragment it).
make_netns() {
    ip netns add "$NS_A"
    ip netns add "$NS_B"
    NETNS_MADE=1
    ip link add cmveth-a netns "$NS_A" type veth peer name cmveth-b netns "$NS_B"
    ip -n "$NS_A" addr add 10.99.0.1/24 dev cmveth-a
    ip -n "$NS_B" addr add 10.99.0.2/24 dev cmveth-b
    for ns in "$NS_A" "$NS_B"; do
        ip -n "$ns" link set lo up
    done
    ip -n "$NS_A" link set cmveth-a mtu 1500 up
    ip -n "$NS_B" link set cmveth-b mtu 1500 up
}

record() {
    local name=$1 out=$OUT/$1.pcap
    echo "recording $name"
    case $name in
    tcp_t1)
        # Two overlapping calls on one TCP connection (sipp -t t1).
        start_capture "" lo "$out" "tcp port $UAS_PORT"
        call "$name" "" "" t1 127.0.0.2 127.0.0.1 "$SCN_SIPP/uac_answer_caller_bye.xml" 2
        ;;
    tcp_tn)
        # Two overlapping calls, one TCP connection each (sipp -t tn).
        start_capture "" lo "$out" "tcp port $UAS_PORT"
        call "$name" "" "" tn 127.0.0.2 127.0.0.1 "$SCN_SIPP/uac_answer_caller_bye.xml" 2
        ;;
    tcp_ipv6)
        start_capture "" lo "$out" "tcp port $UAS_PORT"
        call "$name" "" "" t1 ::1 ::1 "$SCN_SIPP/uac_answer_caller_bye.xml" 1
        ;;
    fragmented)
        ((NETNS_MADE)) || make_netns
        # The filter must admit non-first fragments, which carry no UDP header.
        start_capture "$NS_A" cmveth-a "$out" "udp port $UAS_PORT or (ip[6:2] & 0x1fff != 0)"
        call "$name" "$NS_B" "$NS_A" u1 10.99.0.2 10.99.0.1 "$SCN/uac_answer_caller_bye_large.xml" 1
        ;;
    *) die "unknown capture: $name" ;;
    esac
    stop_capture
    echo "  $(tcpdump -nn -r "$out" 2>/dev/null | wc -l) packets, $(stat -c %s "$out") bytes"
}

[[ $(id -u) == 0 ]] || die "run as root (tcpdump and ip netns need it)"
command -v sipp >/dev/null || die "sipp not found (apt-get install sip-tester)"
command -v tcpdump >/dev/null || die "tcpdump not found"
command -v ip >/dev/null || die "ip (iproute2) not found"

ALL=(tcp_t1 tcp_tn tcp_ipv6 fragmented)
if (($#)); then NAMES=("$@"); else NAMES=("${ALL[@]}"); fi
for name in "${NAMES[@]}"; do
    record "$name"
done
