//! Proves the hot path's promise of no heap allocation per message: a counting global
//! allocator records every allocation made on the measuring thread while a realistic
//! INVITE and 200 OK (both with SDP) and an INVITE with credentials are parsed and their
//! codecs listed, and while Ethernet frames of a call's in-dialog messages are decoded,
//! parsed and tracked (a call allocates when it starts and when its record is made, not
//! per message), and while the same messages are read from an Asterisk chan_pjsip log
//! (framed, fed and tracked as `callmeta run` follows a log).
//!
//! Counting is per thread (a const-initialised thread-local, which itself never
//! allocates) so the test harness's own threads cannot disturb the count.

#[path = "data/logs/generate.rs"]
mod generate;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use std::sync::Arc;

use callmeta::call::{Tracker, TrackerConfig};
use callmeta::ingest::{feed_datagram, LogFeed};
use callmeta::net::{Decoder, LinkType};
use callmeta::sip::{self, sdp};
use callmeta::source::log::{self, LogClock, LogFormat};
use etherparse::PacketBuilder;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const INVITE: &[u8] = include_bytes!("data/sip/invite_sdp.sip");
const OK_200: &[u8] = include_bytes!("data/sip/ok_200_sdp.sip");
/// The retried INVITE of corpus log #4 (Ekiga): credentials and the challenge's To-tag.
const INVITE_AUTH: &[u8] = b"INVITE sip:9000@10.253.253.21:5060 SIP/2.0\r\n\
CSeq: 3 INVITE\r\n\
Via: SIP/2.0/UDP 10.253.253.5:5060;branch=z9hG4bK50e05089;rport\r\n\
Authorization: Digest username=\"9002\", realm=\"asterisk\", nonce=\"13b00aa6\", response=\"38140fe5\"\r\n\
From: \"phd\" <sip:9002@192.168.0.230>;tag=28f32e89\r\n\
Call-ID: 3ef62e89@phd\r\n\
To: <sip:9000@192.168.0.230>;tag=as77c4ac58\r\n\
Content-Length: 0\r\n\r\n";

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test itself: a counter that never counts would prove nothing.
    let n = allocations_during(|| drop(std::hint::black_box(vec![1u8; 64])));
    assert_eq!(n, 1);
}

#[test]
fn parsing_invite_and_200_ok_allocates_nothing() {
    let mut fields = 0usize;
    let n = allocations_during(|| {
        for buf in [INVITE, OK_200] {
            assert!(sip::looks_like_sip(buf));
            let m = sip::parse(std::hint::black_box(buf)).expect("fixture parses");
            fields += m.call_id.len() + m.from.tag.map_or(0, <[u8]>::len);
            fields += sdp::codecs(m.body).count() + sdp::media(m.body).count();
        }
        let m = sip::parse(std::hint::black_box(INVITE_AUTH)).expect("fixture parses");
        assert!(m.has_credentials);
        fields += m.to.tag.map_or(0, <[u8]>::len);
        // The error path allocates nothing either.
        let err = sip::parse(std::hint::black_box(&INVITE[..40])).unwrap_err();
        fields += err.kind().len();
    });
    assert_eq!(n, 0, "allocations while parsing");
    assert!(fields > 0);
}

/// One SIP message of the call `alloc-1@pbx`.
fn sip_text(first_line: &str, cseq: &str, to_tag: bool) -> String {
    format!(
        "{first_line}\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1\r\n\
         From: <sip:+15551230001@pbx>;tag=caller-1\r\n\
         To: <sip:15559870002@carrier>{}\r\nCall-ID: alloc-1@pbx\r\nCSeq: {cseq}\r\n\
         Content-Length: 0\r\n\r\n",
        if to_tag { ";tag=callee-1" } else { "" }
    )
}

/// [`sip_text`] as an Ethernet/IPv4/UDP frame.
fn frame(first_line: &str, cseq: &str, to_tag: bool, from_caller: bool) -> Vec<u8> {
    let text = sip_text(first_line, cseq, to_tag);
    let (src, dst) = if from_caller {
        ([10, 0, 0, 1], [10, 0, 0, 2])
    } else {
        ([10, 0, 0, 2], [10, 0, 0, 1])
    };
    let mut frame = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .udp(5060, 5060)
        .write(&mut frame, text.as_bytes())
        .expect("a frame");
    frame
}

#[test]
fn decoding_parsing_and_tracking_in_dialog_messages_allocates_nothing() {
    let invite = frame(
        "INVITE sip:15559870002@carrier SIP/2.0",
        "1 INVITE",
        false,
        true,
    );
    let in_dialog = [
        frame("SIP/2.0 100 Trying", "1 INVITE", false, false),
        frame("SIP/2.0 180 Ringing", "1 INVITE", true, false),
        frame("SIP/2.0 180 Ringing", "1 INVITE", true, false),
        frame("SIP/2.0 200 OK", "1 INVITE", true, false),
        frame("ACK sip:15559870002@carrier SIP/2.0", "1 ACK", true, true),
        frame("INFO sip:15559870002@carrier SIP/2.0", "2 INFO", true, true),
        frame("SIP/2.0 200 OK", "2 INFO", true, false),
        // A retransmitted INVITE: the same call, seen again.
        invite.clone(),
    ];
    let source: Arc<str> = Arc::from("alloc.pcap");
    let mut decoder = Decoder::new();
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut out = Vec::with_capacity(8);
    let mut tracked = 0u64;
    let mut handle = |decoder: &mut Decoder, tracker: &mut Tracker, ts: i64, f: &[u8]| {
        decoder.decode(LinkType::Ethernet, ts, f, |d| {
            tracked += feed_datagram(tracker, d, &source, &mut out, |_| {});
        });
    };
    // The call starts (its dialog is made: allocations expected here, once per call).
    handle(&mut decoder, &mut tracker, 0, &invite);
    let n = allocations_during(|| {
        for (i, f) in in_dialog.iter().enumerate() {
            // Some messages a second apart, so the tracker's once-a-second sweep runs too.
            handle(&mut decoder, &mut tracker, (i as i64) * 400_000 + 1, f);
        }
    });
    assert_eq!(n, 0, "allocations while decoding, parsing and tracking");
    assert_eq!(tracked, 1 + in_dialog.len() as u64);
    assert_eq!(tracker.open(), 1);
    assert!(out.is_empty());
}

#[test]
fn framing_and_tracking_a_followed_logs_in_dialog_messages_allocates_nothing() {
    let (caller, pbx) = (
        "10.0.0.1:5060".parse().expect("an address"),
        "10.0.0.2:5060".parse().expect("an address"),
    );
    let message = |i: i64, from_caller: bool, text: String| generate::Packet {
        ts_us: 1_790_000_000_000_000 + i * 400_000,
        src: if from_caller { caller } else { pbx },
        dst: if from_caller { pbx } else { caller },
        payload: text.into_bytes(),
    };
    let packets = [
        message(
            0,
            true,
            sip_text("INVITE sip:15559870002@carrier SIP/2.0", "1 INVITE", false),
        ),
        message(1, false, sip_text("SIP/2.0 100 Trying", "1 INVITE", false)),
        message(2, false, sip_text("SIP/2.0 180 Ringing", "1 INVITE", true)),
        message(3, false, sip_text("SIP/2.0 180 Ringing", "1 INVITE", true)),
        message(4, false, sip_text("SIP/2.0 200 OK", "1 INVITE", true)),
        message(
            5,
            true,
            sip_text("ACK sip:15559870002@carrier SIP/2.0", "1 ACK", true),
        ),
        message(
            6,
            true,
            sip_text("INFO sip:15559870002@carrier SIP/2.0", "2 INFO", true),
        ),
        message(7, false, sip_text("SIP/2.0 200 OK", "2 INFO", true)),
    ];
    let tz = jiff::tz::TimeZone::UTC;
    let text = generate::pjsip_file(&packets, pbx, generate::DateFormat::IsoMicros, &tz);
    let lines: Vec<&[u8]> = text.as_bytes().split(|&b| b == b'\n').collect();
    // The INVITE's record ends where the 100 Trying's begins: its lines start the call.
    let second = text
        .find("\n[")
        .and_then(|i| text[i + 1..].find("\n[").map(|j| i + 1 + j));
    let first_lines = text[..second.expect("two records")].matches('\n').count();
    let mut framer = log::framer(
        LogFormat::AsteriskPjsip,
        LogClock::new(tz.clone(), Some(2026), 0),
    );
    let mut feed = LogFeed::new("/var/log/asterisk/full", None, 0);
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut out = Vec::with_capacity(8);
    let mut tracked = 0u64;
    let mut hand = |m: &log::LogMessage<'_>| {
        tracked += feed.feed(&mut tracker, m, &mut out, |_| {});
    };
    for line in &lines[..=first_lines] {
        framer.line(line, &mut hand);
    }
    let n = allocations_during(|| {
        for line in &lines[first_lines + 1..] {
            framer.line(line, &mut hand);
        }
    });
    framer.finish(&mut hand);
    assert_eq!(n, 0, "allocations while framing and tracking log lines");
    assert_eq!(tracked, packets.len() as u64);
    assert_eq!(tracker.open(), 1);
}
