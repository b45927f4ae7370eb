#!/usr/bin/env bash
# Records tests/data/privacy/canary.pcap: SIP, RTP and RTCP on loopback that carry unique
# canary strings (CNRY-...) wherever callmeta must never keep or print anything: a MESSAGE
# body, SDP lines other than a=rtpmap (origin, session name, connection address,
# attributes), RTP and RTCP payloads, and malformed SIP. tests/privacy.rs lists the same
# canaries and greps every byte of the store, the logs and the exports for them.
#
# Needs root (tcpdump), sipp (sip-tester 3.6.1), tcpdump (4.99) and python3 (the RTP and
# malformed-datagram sender). All traffic stays on loopback (127.0.0.0/8); every sipp run
# is bounded by -m 1 and -timeout; every process started here is stopped by its own PID.
#
# Usage: tests/data/privacy/record.sh
# Re-recording changes timestamps only; tests/privacy.rs expects the counts, not times.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SCN=$HERE/scenarios
SIPP_SCN=$HERE/../sipp/scenarios
OUT=$HERE/canary.pcap
WORK=$(mktemp -d)
# SIP on 5060/15060, the media ports the SDP offer (40000) and answer (50000) announce,
# and their RTCP ports (RFC 3550: RTP port + 1).
FILTER='udp port 5060 or udp port 15060 or udp portrange 40000-40001 or udp portrange 50000-50001'
CALLER=(-key caller +15557770001 -key caller_name "Canary Caller" -key pai +15557770000)
CALLEE=15558880002

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

[[ $(id -u) == 0 ]] || die "run as root (tcpdump needs it)"
command -v sipp >/dev/null || die "sipp not found (apt-get install sip-tester)"
command -v tcpdump >/dev/null || die "tcpdump not found"
command -v python3 >/dev/null || die "python3 not found"

wait_listening() {
    for _ in $(seq 100); do
        [[ -n $(ss -Hlun "sport = :5060 and src $1") ]] && return 0
        sleep 0.05
    done
    die "no UAS listening on $1:5060"
}

uas() {
    local name=$1 scenario=$2
    shift 2
    (cd "$WORK" && exec sipp -sf "$scenario" -i 127.0.0.2 -mi 127.0.0.2 -p 5060 \
        -m 1 -timeout 30s -nostdin "$@" >"$WORK/$name.uas.log" 2>&1) &
    BG_PIDS+=($!)
    wait_listening 127.0.0.2
}

uac() {
    local name=$1 scenario=$2 cid=$3
    shift 3
    (cd "$WORK" && exec sipp 127.0.0.2:5060 -sf "$scenario" -i 127.0.0.1 -mi 127.0.0.1 \
        -p 15060 -m 1 -timeout 30s -nostdin -cid_str "$cid" "$@" >"$WORK/$name.uac.log" 2>&1)
}

wait_all() {
    local pid
    for pid in "${BG_PIDS[@]}"; do
        wait "$pid" || { cat "$WORK"/*.log >&2; die "a sipp run failed"; }
    done
    BG_PIDS=()
}

# send.py media: RTP both ways between the ports the SDP announced, and RTCP SR + SDES
# (CNAME is a canary) on the RTCP ports. send.py malformed: SIP-looking datagrams that the
# parser must reject or cut, each carrying a canary. Bounded: a fixed number of packets.
cat >"$WORK/send.py" <<'PY'
import socket, struct, sys, time

def udp(src, dst, payload):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(src)
    s.sendto(payload, dst)
    s.close()

def media():
    legs = [(("127.0.0.1", 40000), ("127.0.0.2", 50000), 0x11111111),
            (("127.0.0.2", 50000), ("127.0.0.1", 40000), 0x22222222)]
    for seq in range(5):
        for src, dst, ssrc in legs:
            hdr = struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc)
            udp(src, dst, hdr + b"CNRY-RTP-PAYLOAD-5f0d18 " + bytes(136))
        time.sleep(0.02)
    for src, dst, ssrc in legs:
        rtcp_src, rtcp_dst = (src[0], src[1] + 1), (dst[0], dst[1] + 1)
        sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 0, 0, 0, 5, 800)
        cname = b"CNRY-RTCP-CNAME-93c2aa"
        item = bytes([1, len(cname)]) + cname + b"\0"
        item += b"\0" * ((-(4 + len(item))) % 4)
        sdes = struct.pack("!BBHI", 0x81, 202, (4 + len(item)) // 4 - 1, ssrc) + item
        udp(rtcp_src, rtcp_dst, sr + sdes)

def malformed():
    dst = ("127.0.0.2", 5060)
    msgs = [
        # A header line without a colon.
        b"INVITE sip:15558880002@carrier.example.net SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bK-cnry1\r\n"
        b"CNRY-MALFORMED-HEADER-0e6b47 no colon here\r\n"
        b"Call-ID: malformed-1@pbx.example.com\r\n\r\n",
        # A status code out of range, the canary in the reason phrase.
        b"SIP/2.0 999 CNRY-MALFORMED-REASON-a17c30\r\n"
        b"Call-ID: malformed-2@pbx.example.com\r\n\r\n",
        # A MESSAGE without Call-ID: its body must not be read or kept anywhere.
        b"MESSAGE sip:15558880002@carrier.example.net SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bK-cnry3\r\n"
        b"From: <sip:+15557770001@pbx.example.com>;tag=m3\r\n"
        b"To: <sip:15558880002@carrier.example.net>\r\n"
        b"CSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 31\r\n\r\n"
        b"CNRY-NOCALLID-BODY-d4e9a2 hello",
        # A MESSAGE whose Content-Length promises more than the datagram holds.
        b"MESSAGE sip:15558880002@carrier.example.net SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bK-cnry4\r\n"
        b"From: <sip:+15557770001@pbx.example.com>;tag=m4\r\n"
        b"To: <sip:15558880002@carrier.example.net>\r\n"
        b"Call-ID: truncated-message-1@pbx.example.com\r\n"
        b"CSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 400\r\n\r\n"
        b"CNRY-TRUNCATED-BODY-38f5c1 the rest is missing",
        # Not SIP at all, on the SIP port.
        b"CNRY-NOTSIP-6a0e77 GET / HTTP/1.1\r\n\r\n",
    ]
    for i, m in enumerate(msgs):
        udp(("127.0.0.3", 25060 + i), dst, m)
        time.sleep(0.02)

{"media": media, "malformed": malformed}[sys.argv[1]]()
PY

rm -f "$OUT"
tcpdump -i lo --immediate-mode -U -w "$OUT" "$FILTER" 2>"$WORK/tcpdump.err" &
TD_PID=$!
for _ in $(seq 100); do
    grep -q 'listening on' "$WORK/tcpdump.err" && break
    sleep 0.05
done
grep -q 'listening on' "$WORK/tcpdump.err" || { cat "$WORK/tcpdump.err" >&2; die "tcpdump did not start"; }

echo "canary call, with RTP and RTCP while it is up"
uas call "$SCN/uas_canary_answer.xml" -key callee "$CALLEE"
uac call "$SCN/uac_canary_call.xml" 'canary-call-%u@pbx.example.com' -key callee "$CALLEE" \
    "${CALLER[@]}" &
UAC_PID=$!
BG_PIDS+=("$UAC_PID")
sleep 1.2
python3 "$WORK/send.py" media
wait_all

echo "canary text message"
uas message "$SIPP_SCN/uas_message.xml"
uac message "$SIPP_SCN/uac_message.xml" 'canary-message-%u@pbx.example.com' \
    -key callee "$CALLEE" -key text "CNRY-MSGBODY-8c41f0 meet me at the usual place" "${CALLER[@]}"
wait_all

echo "malformed datagrams"
python3 "$WORK/send.py" malformed

sleep 0.3
kill "$TD_PID"
wait "$TD_PID" || true
TD_PID=""
echo "  $(tcpdump -nn -r "$OUT" 2>/dev/null | wc -l) packets, $(stat -c %s "$OUT") bytes"
