//! Every network path gives the records plain UDP gives.
//!
//! - Recorded captures (tests/data/net/, made by its record.sh with SIPp): the call of
//!   tests/data/sipp/answered_caller_bye.pcap over TCP (`-t t1`, `-t tn`), over TCP on IPv6
//!   loopback, and with its INVITE IP-fragmented on a 1500-byte-MTU veth between two network
//!   namespaces. Each goes through the `callmeta` binary; its records must equal the UDP
//!   call's in every field that does not depend on the transport or the clock.
//! - A live recording of the fragmented call (root: it creates and deletes two network
//!   namespaces). Under `CI=true` it must run; elsewhere it says why it skips.
//! - Caps: 100,000 fragments that never complete and 10,000 half-open TCP connections stay
//!   within the configured limits, with counters for what was dropped.
//! - A property: any segmentation (with retransmissions and neighbouring segments swapped)
//!   of a valid SIP byte stream yields the same messages.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use callmeta::net::tcp::{Reassembler, Segment};
use callmeta::net::{Decoder, LinkType, NetConfig, Transport};
use common::*;
use etherparse::PacketBuilder;
use proptest::prelude::*;
use serde_json::Value;

/// Fields that must not change with the transport, the path or the clock.
const SAME_ON_EVERY_PATH: &[&str] = &[
    "disposition",
    "final_status",
    "ended_by",
    "timeout_reason",
    "hangup_side",
    "reason_cause",
    "caller",
    "caller_domain",
    "caller_name",
    "callee",
    "callee_domain",
    "asserted_identity",
    "user_agent",
    "server",
    "codecs",
];

/// Derived durations: same scenario, same pauses; recordings differ by scheduling jitter.
const DURATIONS: &[&str] = &["duration_ms", "billable_ms", "pdd_ms"];
const JITTER_MS: i64 = 50;

fn net_capture(name: &str) -> String {
    format!("{}/tests/data/net/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The record of the UDP recording of the same call.
fn udp_call() -> Value {
    only_call(&ingest(&[&sipp_capture("answered_caller_bye.pcap")]))
}

/// Asserts `call` equals the UDP call in every path-independent field.
fn assert_same_as_udp(call: &Value, udp: &Value) {
    for field in SAME_ON_EVERY_PATH {
        assert_eq!(
            call[field], udp[field],
            "{field} differs from UDP: {call:#?}"
        );
    }
    for field in DURATIONS {
        let (a, b) = (call[field].as_i64(), udp[field].as_i64());
        let (Some(a), Some(b)) = (a, b) else {
            panic!("{field} missing: {call:#?}");
        };
        assert!((a - b).abs() <= JITTER_MS, "{field} {a} vs UDP {b}");
    }
    let id = call["call_id"].as_str().unwrap_or_default();
    assert!(
        id.starts_with("answered-caller-bye-") && id.ends_with("@pbx.example.com"),
        "{id}"
    );
}

#[test]
fn two_calls_on_one_tcp_connection_equal_the_udp_call() {
    let udp = udp_call();
    let calls = ingest(&[&net_capture("tcp_t1.pcap")]).calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    for call in &calls {
        assert_same_as_udp(call, &udp);
        assert_eq!(call["transport"], "tcp");
        assert_eq!(call["src_port"], 15060);
    }
}

#[test]
fn two_calls_on_their_own_tcp_connections_equal_the_udp_call() {
    let udp = udp_call();
    let calls = ingest(&[&net_capture("tcp_tn.pcap")]).calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    for call in &calls {
        assert_same_as_udp(call, &udp);
        assert_eq!(call["transport"], "tcp");
        assert_eq!(call["dst_port"], 5060);
    }
    // One connection per call: the callers' source ports differ.
    assert_ne!(calls[0]["src_port"], calls[1]["src_port"]);
}

#[test]
fn a_tcp_call_on_ipv6_loopback_equals_the_udp_call() {
    let udp = udp_call();
    let call = only_call(&ingest(&[&net_capture("tcp_ipv6.pcap")]));
    assert_same_as_udp(&call, &udp);
    assert_eq!(call["transport"], "tcp");
    assert_eq!(call["src_ip"], "::1");
}

#[test]
fn a_udp_call_on_ipv6_loopback_equals_the_ipv4_call() {
    let udp = udp_call();
    let call = only_call(&ingest(&[&sipp_capture("answered_caller_bye_ipv6.pcap")]));
    assert_same_as_udp(&call, &udp);
    assert_eq!(call["dst_ip"], "::1");
}

#[test]
fn a_call_whose_invite_is_ip_fragmented_equals_the_udp_call() {
    let udp = udp_call();
    let call = only_call(&ingest(&[&net_capture("fragmented.pcap")]));
    assert_same_as_udp(&call, &udp);
    assert_eq!(call["transport"], "udp");
    assert_eq!(call["src_ip"], "10.99.0.1");
    // The INVITE is complete with its second fragment, 41 µs after the first
    // (tcpdump -tttt -nn -r tests/data/net/fragmented.pcap).
    assert_eq!(call["started_at"], "2026-11-29T16:56:37.352608Z");
}

#[test]
fn a_tcp_message_is_timed_by_the_segment_that_completes_it() {
    let calls = ingest(&[&net_capture("tcp_t1.pcap")]).calls();
    let first = by_call_id(&calls, "answered-caller-bye-1@pbx.example.com");
    // The INVITE is the first data segment (tcpdump -tttt -nn -r tests/data/net/tcp_t1.pcap).
    assert_eq!(first["started_at"], "2026-11-29T16:56:23.088279Z");
}

/// Whether a test needing root may run; under CI it must.
fn root_or_skip(what: &str) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let tools = ["sipp", "tcpdump", "ip"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if root && tools {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "CI=true: {what} needs root, sipp, tcpdump and iproute2 (root={root}, tools={tools})"
    );
    eprintln!(
        "SKIPPED: {what} needs root, sipp, tcpdump and iproute2 (root={root}, tools={tools})"
    );
    false
}

#[test]
fn a_fragmented_invite_recorded_live_between_two_namespaces_equals_the_udp_call() {
    if !root_or_skip("recording between two network namespaces") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = Command::new(net_capture("record.sh"))
        .arg(dir.path())
        .arg("fragmented")
        .output()
        .expect("run record.sh");
    assert!(
        out.status.success(),
        "record.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let pcap = dir.path().join("fragmented.pcap");
    let call = only_call(&ingest(&[pcap.to_str().expect("utf-8 path")]));
    assert_same_as_udp(&call, &udp_call());
}

fn udp_fragment(src: [u8; 4], id: u16, offset_units: u16, more: bool, payload: &[u8]) -> Vec<u8> {
    let mut ip = etherparse::Ipv4Header::new(
        payload.len() as u16,
        64,
        etherparse::IpNumber::UDP,
        src,
        [10, 0, 0, 2],
    )
    .expect("header");
    ip.identification = id;
    ip.more_fragments = more;
    ip.fragment_offset = etherparse::IpFragOffset::try_new(offset_units).expect("offset");
    let mut frame = Vec::with_capacity(20 + payload.len());
    ip.write(&mut frame).expect("write");
    frame.extend_from_slice(payload);
    frame
}

#[test]
fn a_hundred_thousand_never_completed_fragments_stay_within_the_defrag_caps() {
    let cfg = NetConfig {
        defrag_max_datagrams: 1000,
        defrag_max_bytes: 512 << 10,
        ..NetConfig::default()
    };
    let mut d = Decoder::with_config(cfg);
    let mut handed = 0;
    for i in 0..100_000u32 {
        // First fragments of distinct datagrams whose rest never comes, 1 ms apart.
        let src = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let frame = udp_fragment(src, i as u16, 0, true, &[b'x'; 1480]);
        d.decode(LinkType::RawIp, i64::from(i) * 1000, &frame, |_| {
            handed += 1
        });
        let (pending, bytes) = d.defrag_pending();
        assert!(pending <= 1000, "{pending} datagrams held");
        assert!(bytes <= 512 << 10, "{bytes} bytes held");
    }
    assert_eq!(handed, 0);
    let s = d.defrag_stats();
    assert_eq!(s.fragments, 100_000);
    assert_eq!(s.reassembled, 0);
    // Every datagram is either still held or was dropped and counted.
    let (pending, _) = d.defrag_pending();
    assert!(s.evicted > 0, "{s:?}");
    assert_eq!(s.evicted + s.timed_out + pending as u64, 100_000, "{s:?}");
}

#[test]
fn fragments_older_than_the_timeout_are_dropped_and_counted() {
    let cfg = NetConfig {
        defrag_timeout: Duration::from_secs(30),
        ..NetConfig::default()
    };
    let mut d = Decoder::with_config(cfg);
    for i in 0..100u16 {
        let frame = udp_fragment([10, 0, 0, 1], i, 0, true, &[0; 8]);
        d.decode(LinkType::RawIp, i64::from(i), &frame, |_| {});
    }
    let late = udp_fragment([10, 0, 0, 1], 999, 0, true, &[0; 8]);
    d.decode(LinkType::RawIp, 31_000_000, &late, |_| {});
    assert_eq!(d.defrag_stats().timed_out, 100);
    assert_eq!(d.defrag_pending().0, 1);
}

fn tcp_frame(src: [u8; 4], sport: u16, seq: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, [10, 0, 0, 2], 64).tcp(sport, 5060, seq, 65535);
    let b = if syn { b.syn() } else { b };
    let mut frame = Vec::new();
    b.write(&mut frame, payload).expect("build");
    frame
}

#[test]
fn ten_thousand_half_open_tcp_connections_stay_within_the_tcp_caps() {
    let cfg = NetConfig {
        tcp_max_connections: 1000,
        tcp_max_bytes: 256 << 10,
        ..NetConfig::default()
    };
    let mut d = Decoder::with_config(cfg);
    // Each connection: a SYN, then the first half of an INVITE that never completes.
    let partial =
        b"INVITE sip:bob@b.example SIP/2.0\r\nCall-ID: x\r\nContent-Length: 500\r\n\r\nv=0\r\n";
    let mut handed = 0;
    for i in 0..10_000u32 {
        let src = [10, 1, (i >> 8) as u8, i as u8];
        let ts = i64::from(i) * 1000;
        d.decode(
            LinkType::RawIp,
            ts,
            &tcp_frame(src, 40000, 7, true, b""),
            |_| handed += 1,
        );
        d.decode(
            LinkType::RawIp,
            ts,
            &tcp_frame(src, 40000, 8, false, partial),
            |_| handed += 1,
        );
        let (conns, bytes) = d.tcp_pending();
        assert!(conns <= 1000, "{conns} connections");
        assert!(bytes <= 256 << 10, "{bytes} bytes");
    }
    assert_eq!(handed, 0);
    let s = d.tcp_stats();
    assert_eq!(s.connections, 10_000);
    let (conns, _) = d.tcp_pending();
    assert_eq!(s.evicted + conns as u64, 10_000);
    assert!(s.broken_messages >= s.evicted, "{s:?}");
}

/// A few SIP messages as one stream, with keep-alives between them.
fn sip_stream() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut messages = Vec::new();
    for (i, body) in [
        "",
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n",
    ]
    .iter()
    .cycle()
    .take(4)
    .enumerate()
    {
        messages.push(
            format!(
                "INVITE sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/TCP a;branch=z9hG4bK{i}\r\n\
                 Call-ID: prop-{i}\r\nCSeq: 1 INVITE\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        );
        messages
            .push(format!("SIP/2.0 100 Trying\r\nCall-ID: prop-{i}\r\nl: 0\r\n\r\n").into_bytes());
    }
    let mut stream = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        stream.extend_from_slice(m);
        if i % 3 == 1 {
            stream.extend_from_slice(b"\r\n\r\n");
        }
    }
    (stream, messages)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_segmentation_of_a_sip_stream_yields_the_same_messages(
        cuts in proptest::collection::vec(1usize..1000, 0..40),
        retransmit in proptest::collection::vec(any::<bool>(), 40),
        swap in proptest::collection::vec(any::<bool>(), 40),
        isn in any::<u32>(),
    ) {
        let (stream, expected) = sip_stream();
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % stream.len()).filter(|c| *c > 0).collect();
        bounds.push(0);
        bounds.push(stream.len());
        bounds.sort_unstable();
        bounds.dedup();
        let mut segs: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
        // Neighbouring segments swapped: out-of-order arrival.
        let mut i = 0;
        while i + 1 < segs.len() {
            if swap[i % swap.len()] {
                segs.swap(i, i + 1);
                i += 2;
            } else {
                i += 1;
            }
        }
        // Some segments sent twice: retransmissions.
        let mut sends = Vec::new();
        for (k, s) in segs.iter().enumerate() {
            sends.push(*s);
            if retransmit[k % retransmit.len()] {
                sends.push(*s);
            }
        }
        let src: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let dst: SocketAddr = "10.0.0.2:5060".parse().unwrap();
        let mut r = Reassembler::new(NetConfig::default());
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut on = |d: &callmeta::net::Datagram<'_>| {
            assert_eq!(d.transport, Transport::Tcp);
            got.push(d.payload.to_vec());
        };
        r.segment(&Segment { ts_us: 0, src, dst, seq: isn, syn: true, fin: false, rst: false, payload: b"" }, &mut on);
        for (n, (a, b)) in sends.iter().enumerate() {
            let seg = Segment {
                ts_us: n as i64 + 1,
                src,
                dst,
                seq: isn.wrapping_add(1).wrapping_add(*a as u32),
                syn: false,
                fin: false,
                rst: false,
                payload: &stream[*a..*b],
            };
            r.segment(&seg, &mut on);
        }
        prop_assert_eq!(got, expected);
        prop_assert_eq!(r.stats.broken_messages, 0);
    }
}
