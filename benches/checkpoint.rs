//! What a followed log saves with each checkpoint: every open call (`snapshot`, what the
//! last batch at a stop saves) against the changes since the last checkpoint (`changes`,
//! what every other batch saves), with 10,000 calls open and 50 of them touched between
//! checkpoints (a busy PBX: 10,000 calls up, a few re-INVITEs, 180s and BYEs per second).
//!
//! Measured twice: the tracker's encoding alone, and the whole store transaction
//! (`Store::write` with the log's progress) on a real SQLite file in a temporary
//! directory.
//!
//! `cargo bench --bench checkpoint`

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use callmeta::call::{Meta, Tracker, TrackerConfig};
use callmeta::net::Transport;
use callmeta::source::log::Checkpoint;
use callmeta::store::{LogProgress, OpenDialogs, Store};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

const OPEN: usize = 10_000;
const TOUCHED: usize = 50;

fn message(call: usize, first_line: &str, cseq: &str, to_tag: bool) -> Vec<u8> {
    format!(
        "{first_line}\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-{call}-{cseq}\r\n\
         From: \"Alice\" <sip:+1555123{call:05}@pbx.example.com>;tag=a-{call}\r\n\
         To: <sip:15559870002@carrier.example.net>{}\r\n\
         Call-ID: bench-{call}@pbx.example.com\r\nCSeq: {cseq}\r\n\
         User-Agent: bench-pbx/1.0\r\nContent-Length: 0\r\n\r\n",
        if to_tag { ";tag=b-1" } else { "" }
    )
    .into_bytes()
}

fn feed(t: &mut Tracker, ts: i64, caller_sends: bool, bytes: &[u8]) {
    let source: Arc<str> = Arc::from("/var/log/asterisk/full");
    let (a, b): (SocketAddr, SocketAddr) =
        (([10, 0, 0, 1], 5060).into(), ([10, 0, 0, 2], 5060).into());
    let (src, dst) = if caller_sends { (a, b) } else { (b, a) };
    let meta = Meta {
        ts_us: ts,
        src,
        dst,
        transport: Transport::Udp,
        source: &source,
    };
    let msg = callmeta::sip::parse(bytes).expect("a well-formed bench message");
    let mut out = Vec::new();
    t.on_message(&meta, &msg, &mut out);
}

/// A tracker with [`OPEN`] answered calls, its changes already taken.
fn busy_tracker() -> Tracker {
    let mut t = Tracker::new(TrackerConfig::default());
    t.track_changes();
    for call in 0..OPEN {
        let ts = call as i64 * 1_000;
        let invite = message(
            call,
            "INVITE sip:15559870002@carrier.example.net SIP/2.0",
            "1 INVITE",
            false,
        );
        feed(&mut t, ts, true, &invite);
        feed(
            &mut t,
            ts + 500,
            false,
            &message(call, "SIP/2.0 200 OK", "1 INVITE", true),
        );
    }
    t.changes();
    t
}

/// Touches [`TOUCHED`] calls with an in-dialog request each.
fn touch(t: &mut Tracker, round: usize) {
    for i in 0..TOUCHED {
        let call = (round * TOUCHED + i) % OPEN;
        let info = message(
            call,
            "INFO sip:15559870002@carrier.example.net SIP/2.0",
            "2 INFO",
            true,
        );
        feed(t, OPEN as i64 * 1_000 + round as i64, true, &info);
    }
}

fn progress(open: OpenDialogs, offset: u64) -> LogProgress {
    LogProgress {
        source: "/var/log/asterisk/full".into(),
        checkpoint: Checkpoint {
            device: 1,
            inode: 2,
            offset,
            last_line_hash: 0,
        },
        open_dialogs: open,
        at_us: 0,
    }
}

fn encode(c: &mut Criterion) {
    let mut t = busy_tracker();
    let mut round = 0;
    let mut g = c.benchmark_group("checkpoint encode, 10000 open");
    g.sample_size(20);
    g.bench_function("snapshot (all open calls)", |b| {
        b.iter(|| black_box(t.snapshot()))
    });
    g.bench_function("changes (50 touched)", |b| {
        // Only `changes` is timed, not the messages that touch the calls.
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                touch(&mut t, round);
                let started = Instant::now();
                black_box(t.changes());
                spent += started.elapsed();
            }
            spent
        })
    });
    g.finish();
}

fn store(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut store = Store::open(&dir.path().join("bench.db")).expect("a store");
    let mut t = busy_tracker();
    let all = t.snapshot();
    let bytes: usize = all.iter().map(|(k, s)| k.len() + s.len()).sum();
    eprintln!("{OPEN} open calls encode to {bytes} bytes");
    store
        .write(&[], &[progress(OpenDialogs::Replace(all), 0)])
        .expect("the first save");
    let mut round = 0;
    let mut g = c.benchmark_group("checkpoint transaction, 10000 open");
    g.sample_size(10);
    g.bench_function("replace all open calls", |b| {
        b.iter_batched(
            || t.snapshot(),
            |all| {
                store
                    .write(&[], &[progress(OpenDialogs::Replace(all), 1)])
                    .expect("write")
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("save the 50 changed", |b| {
        b.iter_batched(
            || {
                round += 1;
                touch(&mut t, round);
                t.changes()
            },
            |changes| {
                store
                    .write(&[], &[progress(OpenDialogs::Changes(Box::new(changes)), 2)])
                    .expect("write")
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, encode, store);
criterion_main!(benches);
