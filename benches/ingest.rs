//! Whole-file ingest rate: the same calls over UDP and over TCP.
//!
//! Builds two classic pcap files in a temporary directory holding the same 2,000 answered
//! calls (INVITE with SDP, 100, 180, 200 with SDP, ACK, BYE, 200): one as UDP datagrams,
//! one over TCP (a connection per 50 calls with handshake, every message split over two
//! segments, pure ACKs after each segment, as a kernel would send them). Each is ingested
//! through the library pipeline (decode, reassembly, parse, track); the reported
//! throughput is calls per second.
//!
//! `cargo bench --bench ingest`

use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};

use callmeta::call::{Record, TrackerConfig};
use callmeta::ingest;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::PacketBuilder;

const CALLS: usize = 2_000;
const CALLS_PER_CONNECTION: usize = 50;

fn messages(call: usize) -> Vec<(bool, Vec<u8>)> {
    let sdp = "v=0\r\no=- 1001 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
               a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";
    let common = |method: &str, cseq: u32, to_tag: bool| {
        format!(
            "Via: SIP/2.0/TCP 10.0.0.1:15060;branch=z9hG4bK-{call}-{cseq}-{method}\r\n\
             From: \"Alice\" <sip:+1555123{call:04}@pbx.example.com>;tag=a-{call}\r\n\
             To: <sip:15559870002@carrier.example.net>{}\r\n\
             Call-ID: bench-{call}@pbx.example.com\r\nCSeq: {cseq} {method}\r\n",
            if to_tag { ";tag=b-1" } else { "" }
        )
    };
    let req = |method: &str, cseq: u32, to_tag: bool, body: &str| {
        let ct = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} sip:15559870002@carrier.example.net SIP/2.0\r\n{}Max-Forwards: 70\r\n\
             User-Agent: ExamplePBX/4.2.1\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            common(method, cseq, to_tag),
            body.len()
        )
        .into_bytes()
    };
    let resp = |code: &str, method: &str, cseq: u32, to_tag: bool, body: &str| {
        let ct = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "SIP/2.0 {code}\r\n{}Server: CarrierSBC/7.3\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            common(method, cseq, to_tag),
            body.len()
        )
        .into_bytes()
    };
    vec![
        (true, req("INVITE", 1, false, sdp)),
        (false, resp("100 Trying", "INVITE", 1, false, "")),
        (false, resp("180 Ringing", "INVITE", 1, true, "")),
        (false, resp("200 OK", "INVITE", 1, true, sdp)),
        (true, req("ACK", 1, true, "")),
        (true, req("BYE", 2, true, "")),
        (false, resp("200 OK", "BYE", 2, true, "")),
    ]
}

struct Pcap {
    out: Vec<u8>,
}

impl Pcap {
    fn new() -> Pcap {
        let mut out = Vec::new();
        // Classic pcap, microseconds, snaplen 262144, LINKTYPE_ETHERNET.
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&262_144u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        Pcap { out }
    }

    fn frame(&mut self, ts_us: i64, frame: &[u8]) {
        self.out
            .extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        self.out
            .extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        self.out
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.extend_from_slice(frame);
    }

    fn write(&self, path: &Path) {
        let mut f = std::fs::File::create(path).expect("create pcap");
        f.write_all(&self.out).expect("write pcap");
    }
}

const CALLER: [u8; 4] = [10, 0, 0, 1];
const CALLEE: [u8; 4] = [10, 0, 0, 2];

fn udp(caller_sends: bool, port: u16, payload: &[u8]) -> Vec<u8> {
    let (src, dst, sp, dp) = if caller_sends {
        (CALLER, CALLEE, port, 5060)
    } else {
        (CALLEE, CALLER, 5060, port)
    };
    let mut f = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(src, dst, 64)
        .udp(sp, dp)
        .write(&mut f, payload)
        .expect("udp frame");
    f
}

fn tcp(caller_sends: bool, port: u16, seq: u32, ack: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
    let (src, dst, sp, dp) = if caller_sends {
        (CALLER, CALLEE, port, 5060)
    } else {
        (CALLEE, CALLER, 5060, port)
    };
    let b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(src, dst, 64)
        .tcp(sp, dp, seq, 65535)
        .ack(ack);
    let b = if syn { b.syn() } else { b };
    let mut f = Vec::new();
    b.write(&mut f, payload).expect("tcp frame");
    f
}

/// The two captures: (udp, tcp).
fn captures(dir: &Path) -> (PathBuf, PathBuf) {
    let (mut u, mut t) = (Pcap::new(), Pcap::new());
    let mut ts = 1_700_000_000_000_000i64;
    let mut seqs = [0u32; 2];
    for call in 0..CALLS {
        let conn = call / CALLS_PER_CONNECTION;
        let port = 20_000 + conn as u16;
        if call % CALLS_PER_CONNECTION == 0 {
            seqs = [1000, 5000];
            t.frame(ts, &tcp(true, port, seqs[0], 0, true, b""));
            t.frame(ts, &tcp(false, port, seqs[1], seqs[0] + 1, true, b""));
            seqs = [seqs[0] + 1, seqs[1] + 1];
            t.frame(ts, &tcp(true, port, seqs[0], seqs[1], false, b""));
        }
        for (caller_sends, m) in messages(call) {
            ts += 100;
            u.frame(ts, &udp(caller_sends, port, &m));
            let (me, peer) = if caller_sends { (0, 1) } else { (1, 0) };
            let mid = m.len() / 2;
            for part in [&m[..mid], &m[mid..]] {
                t.frame(
                    ts,
                    &tcp(caller_sends, port, seqs[me], seqs[peer], false, part),
                );
                seqs[me] = seqs[me].wrapping_add(part.len() as u32);
                t.frame(
                    ts,
                    &tcp(!caller_sends, port, seqs[peer], seqs[me], false, b""),
                );
            }
        }
    }
    let (up, tp) = (dir.join("calls_udp.pcap"), dir.join("calls_tcp.pcap"));
    u.write(&up);
    t.write(&tp);
    (up, tp)
}

fn ingest_calls(path: &Path) -> usize {
    let mut calls = 0;
    ingest::ingest_files(&[path.to_path_buf()], TrackerConfig::default(), |r| {
        if let Record::Call(_) = r {
            calls += 1;
        }
        Ok::<(), ()>(())
    })
    .expect("sink never fails");
    calls
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (udp_path, tcp_path) = captures(dir.path());
    assert_eq!(ingest_calls(&udp_path), CALLS);
    assert_eq!(ingest_calls(&tcp_path), CALLS);
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(CALLS as u64));
    g.sample_size(20);
    g.bench_function("udp_2000_calls", |b| {
        b.iter(|| black_box(ingest_calls(&udp_path)))
    });
    g.bench_function("tcp_2000_calls", |b| {
        b.iter(|| black_box(ingest_calls(&tcp_path)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
