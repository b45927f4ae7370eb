//! PBX trace logs (issue 5): the public corpus (../shared/corpus/logs/, see its
//! MANIFEST.md) gives the calls its manifest describes, and SIPp calls written in every
//! log format by `data/logs/generate.rs` give the same records as their captures, field by
//! field, at the time precision each format has.

mod common;
#[path = "data/logs/generate.rs"]
mod generate;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use callmeta::call::{
    CallRecord, Disposition, EndedBy, MessageRecord, Record, Side, Tracker, TrackerConfig,
};
use callmeta::ingest::{self, FileSummary, LogOptions};
use callmeta::net::Transport;
use callmeta::source::log::{self, LogClock, LogFormat, LogMessage};
use generate::{DateFormat, FsLayout, Packet};
use jiff::tz::TimeZone;

// ---------------------------------------------------------------------------------------
// Helpers

fn corpus(rel: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/logs")
        .join(rel);
    if path.is_file() {
        return Some(path);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "CI=true but the log corpus is missing: {}",
        path.display()
    );
    eprintln!(
        "SKIPPED: log corpus file not found at {} (it lives beside the repository, in ../shared)",
        path.display()
    );
    None
}

fn utc() -> LogOptions {
    LogOptions {
        format: None,
        timezone: TimeZone::UTC,
        year: None,
        local_address: None,
    }
}

/// Records (sorted by call_id, start) and summaries of ingesting `paths` as logs.
fn ingest_logs(
    paths: &[PathBuf],
    opts: &LogOptions,
) -> (Vec<CallRecord>, Vec<MessageRecord>, Vec<FileSummary>) {
    let mut records = Vec::new();
    let summaries = ingest::ingest_log_files(paths, opts, TrackerConfig::default(), |r| {
        records.push(r);
        Ok::<(), ()>(())
    })
    .expect("the sink never fails");
    let (calls, messages) = split(records);
    (calls, messages, summaries)
}

fn split(records: Vec<Record>) -> (Vec<CallRecord>, Vec<MessageRecord>) {
    let mut calls = Vec::new();
    let mut messages = Vec::new();
    for r in records {
        match r {
            Record::Call(c) => calls.push(*c),
            Record::Message(m) => messages.push(*m),
        }
    }
    calls.sort_by(|a, b| (&a.call_id, a.started_at).cmp(&(&b.call_id, b.started_at)));
    messages.sort_by(|a, b| (&a.call_id, a.cseq).cmp(&(&b.call_id, b.cseq)));
    (calls, messages)
}

/// A framed message, owned, for framing assertions.
#[derive(Debug, Clone)]
struct Framed {
    ts_us: Option<i64>,
    received: bool,
    transport: Option<Transport>,
    peer: Option<SocketAddr>,
    len: usize,
    logged_len: Option<usize>,
    first_line: String,
}

/// Frames a file directly with `format`'s framer (no SIP parsing), UTC, year `year`.
fn frame(path: &Path, format: LogFormat, year: Option<i16>) -> (Vec<Framed>, log::FramerStats) {
    let mut data = std::fs::read(path).expect("read log");
    if log::detect(&data) == Some(log::Detected::FreeswitchEsl) {
        let mut unwrapped = Vec::new();
        log::esl_unwrap(&data, &mut unwrapped);
        data = unwrapped;
    }
    let mtime = ingest::log::modified_us(&File::open(path).expect("open")).unwrap_or(0);
    let mut f = log::framer(format, LogClock::new(TimeZone::UTC, year, mtime));
    if log::needs_prescan(format) {
        for l in data.split(|&b| b == b'\n') {
            f.prescan(l);
        }
        f.prescan_done();
    }
    let mut got = Vec::new();
    let mut out = |m: &LogMessage<'_>| {
        got.push(Framed {
            ts_us: m.ts_us,
            received: m.direction == log::Direction::Received,
            transport: m.transport,
            peer: m.peer,
            len: m.payload.len(),
            logged_len: m.logged_len,
            first_line: String::from_utf8_lossy(
                m.payload.split(|&b| b == b'\r').next().unwrap_or_default(),
            )
            .into_owned(),
        })
    };
    for l in data.split(|&b| b == b'\n') {
        f.line(l, &mut out);
    }
    f.finish(&mut out);
    (got, f.stats().clone())
}

fn only<'a>(calls: &'a [CallRecord], call_id: &str) -> &'a CallRecord {
    let found: Vec<&CallRecord> = calls.iter().filter(|c| c.call_id == call_id).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one record for {call_id}: {calls:#?}"
    );
    found[0]
}

/// Every logged byte count equals the CRLF length of the message framed from it
/// (MANIFEST "verified"), and nothing was cut.
fn assert_exact_byte_counts(framed: &[Framed], stats: &log::FramerStats) {
    for m in framed {
        assert_eq!(
            Some(m.len),
            m.logged_len,
            "byte count of `{}`",
            m.first_line
        );
    }
    assert_eq!((stats.truncated, stats.length_mismatch), (0, 0));
}

// ---------------------------------------------------------------------------------------
// The public corpus (MANIFEST.md numbering)

/// #1: doc-edited CLI output; two challenged INVITEs of one Call-ID are one failed call.
#[test]
fn corpus_pjsip_auth_failure_is_one_rejected_call_with_two_challenges() {
    let Some(path) = corpus("asterisk-pjsip/asterisk-docs-troubleshooting-auth.log") else {
        return;
    };
    let (framed, stats) = frame(&path, LogFormat::AsteriskPjsip, None);
    let lines: Vec<&str> = framed.iter().map(|m| m.first_line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "INVITE sip:201@10.24.20.249 SIP/2.0",
            "SIP/2.0 401 Unauthorized",
            "ACK sip:201@10.24.20.249 SIP/2.0",
            "INVITE sip:201@10.24.20.249 SIP/2.0",
            "SIP/2.0 401 Unauthorized",
            "ACK sip:201@10.24.20.249 SIP/2.0"
        ]
    );
    assert!(
        framed.iter().all(|m| m.ts_us.is_none()),
        "CLI output has no times"
    );
    assert_eq!(stats.no_time, 6);
    let (calls, _, summaries) = ingest_logs(&[path], &utc());
    assert_eq!(calls.len(), 1);
    let c = only(&calls, "q.TF2SAaX3jn8dtaLTOCuIO8FRyDCsSR");
    assert_eq!(
        (c.disposition, c.final_status, c.ended_by),
        (Disposition::Failed, Some(401), EndedBy::Rejected)
    );
    assert_eq!((c.caller.as_str(), c.callee.as_str()), ("200", "201"));
    assert_eq!(c.src_ip.to_string(), "10.24.16.37");
    assert!(summaries[0]
        .warnings
        .iter()
        .any(|w| w.contains("times unknown")));
}

/// #2: doc-edited TLS trace; the transport is TLS from `TLS:addr:port`.
#[test]
fn corpus_pjsip_tls_trunk_call_is_answered_over_tls() {
    let Some(path) = corpus("asterisk-pjsip/zoftko-blog-twilio-tls-asterisk22.log") else {
        return;
    };
    let (framed, _) = frame(&path, LogFormat::AsteriskPjsip, None);
    assert_eq!(framed.len(), 4);
    assert!(framed.iter().all(|m| m.transport == Some(Transport::Tls)));
    let (calls, _, _) = ingest_logs(&[path], &utc());
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(
        (c.disposition, c.final_status),
        (Disposition::Answered, Some(200))
    );
    assert_eq!(c.transport, Transport::Tls);
    assert_eq!(c.ended_by, EndedBy::Timeout, "no BYE in the excerpt");
}

/// #3: verified byte counts; a B2BUA call is two records, verbose lines skipped.
#[test]
fn corpus_pjsip_b2bua_call_has_exact_byte_counts_and_two_answered_legs() {
    let Some(path) = corpus("asterisk-pjsip/otus-homework-asterisk14-b2bua-call.log") else {
        return;
    };
    let (framed, stats) = frame(&path, LogFormat::AsteriskPjsip, None);
    assert_eq!(framed.len(), 25);
    assert_exact_byte_counts(&framed, &stats);
    assert_eq!(framed[0].peer, "192.168.100.12:60773".parse().ok());
    let (calls, _, _) = ingest_logs(&[path], &utc());
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let a = only(&calls, "vAS_mOFDoAoDYkDQC2-3nw..");
    let b = only(&calls, "1b58673a-23e2-4f12-9514-861f1a7e21fc");
    for c in [a, b] {
        assert_eq!(
            (c.disposition, c.ended_by),
            (Disposition::Answered, EndedBy::Bye)
        );
    }
    assert_eq!(
        a.hangup_side,
        Some(Side::Callee),
        "Asterisk hung up towards the caller"
    );
    assert_eq!(a.reason_cause, Some(16));
    assert_eq!((a.caller.as_str(), a.callee.as_str()), ("1102", "1101"));
    assert_eq!(a.src_ip.to_string(), "192.168.100.12");
    assert_eq!(b.dst_ip.to_string(), "192.168.100.11");
}

/// #4: chan_sip with `--- (N headers M lines) ---` and verbose lines: six messages, LF
/// received next to CRLF-less sent text.
#[test]
fn corpus_chansip_ekiga_call_frames_six_messages_with_their_terminators() {
    let Some(path) = corpus("asterisk-chansip/qt-useragent-comment-asterisk11-ekiga-call.log")
    else {
        return;
    };
    let (framed, stats) = frame(&path, LogFormat::AsteriskChansip, None);
    let got: Vec<(bool, &str)> = framed
        .iter()
        .map(|m| (m.received, m.first_line.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (true, "INVITE sip:9000@10.253.253.21:5060 SIP/2.0"),
            (false, "SIP/2.0 100 Trying"),
            (false, "SIP/2.0 200 OK"),
            (true, "ACK sip:9000@10.253.253.21:5060 SIP/2.0"),
            (true, "BYE sip:9000@10.253.253.21:5060 SIP/2.0"),
            (false, "SIP/2.0 200 OK")
        ]
    );
    assert_eq!(stats.truncated, 0);
    assert_eq!(framed[0].transport, Some(Transport::Udp));
}

/// #4 as a record. The trace starts at the retried INVITE (CSeq 3), which carries the
/// To-tag of an earlier 401 (Ekiga copies it) that is not in the excerpt. Its
/// Authorization header tells it from a re-INVITE of a dialog begun before the trace, so
/// it starts the call (docs/call-model.md, "authentication"); the 100, 200, ACK and BYE
/// carry the same To-tag and match by the caller's From-tag.
#[test]
fn corpus_chansip_ekiga_call_is_answered_and_hung_up_by_the_caller() {
    let Some(path) = corpus("asterisk-chansip/qt-useragent-comment-asterisk11-ekiga-call.log")
    else {
        return;
    };
    let (calls, _, summaries) = ingest_logs(&[path], &utc());
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let c = only(
        &calls,
        "3ef62e89-588d-e511-8951-6cf049152c3d@phd-GA-MA78LM-S2H",
    );
    assert_eq!(c.from_tag, "28f32e89-588d-e511-8951-6cf049152c3d");
    assert_eq!(
        (c.disposition, c.final_status, c.ended_by, c.hangup_side),
        (
            Disposition::Answered,
            Some(200),
            EndedBy::Bye,
            Some(Side::Caller)
        )
    );
    assert_eq!((c.timeout_reason, c.reason_cause), (None, None));
    // CLI output has no times: every message is at the one time the log is given.
    assert!(summaries[0]
        .warnings
        .iter()
        .any(|w| w.contains("times unknown")));
    assert_eq!(
        (c.ringing_at, c.answered_at, c.ended_at),
        (None, Some(c.started_at), c.started_at)
    );
    assert_eq!(
        (
            c.caller.as_str(),
            c.caller_domain.as_str(),
            c.caller_name.as_deref()
        ),
        ("9002", "192.168.0.230", Some("phd"))
    );
    assert_eq!(
        (c.callee.as_str(), c.callee_domain.as_str()),
        ("9000", "10.253.253.21")
    );
    assert_eq!(
        (c.src_ip.to_string(), c.src_port, c.transport),
        ("10.253.253.5".to_string(), 5060, Transport::Udp)
    );
    assert_eq!(
        (c.user_agent.as_deref(), c.server.as_deref()),
        (Some("Ekiga/4.0.1"), Some("Asterisk PBX 11.13.1~dfsg-2+b1"))
    );
    assert_eq!(c.codecs.as_deref(), Some("PCMA,telephone-event"));
}

/// #5: an outbound INVITE (`Reliably Transmitting (no NAT) to addr:`, no transport in the
/// log: taken from the Via) rejected with 406.
#[test]
fn corpus_chansip_outbound_invite_rejected_406_takes_transport_from_via() {
    let Some(path) = corpus("asterisk-chansip/tg2sip-issue15-asterisk16-invite-406.log") else {
        return;
    };
    let (framed, _) = frame(&path, LogFormat::AsteriskChansip, None);
    assert_eq!(framed.len(), 2);
    assert_eq!(framed[0].transport, None);
    let (calls, _, _) = ingest_logs(&[path], &utc());
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!((c.final_status, c.ended_by), (Some(406), EndedBy::Rejected));
    assert_eq!(c.transport, Transport::Udp);
    assert_eq!(c.callee, "MYREPLACEDNUMBER");
}

/// #6: pre-2019 indented sofia-sip layout with closing separators; verified counts.
#[test]
fn corpus_sofia_old_layout_has_exact_byte_counts_and_one_answered_call() {
    let Some(path) = corpus("freeswitch/jart-gosip-sofia-sip-tport-log-echo-call.log") else {
        return;
    };
    let (framed, stats) = frame(&path, LogFormat::Freeswitch, None);
    assert_eq!(framed.len(), 6);
    assert_exact_byte_counts(&framed, &stats);
    let (calls, _, _) = ingest_logs(&[path], &utc());
    assert_eq!(calls.len(), 1);
    let c = only(&calls, "87704115-03b8-122e-08b5-001bfcce6bdf");
    assert_eq!(
        (c.disposition, c.ended_by),
        (Disposition::Answered, EndedBy::Bye)
    );
    // 15:46:48.569658 is a time of day only: the µs survive, the date is the file's.
    assert_eq!(
        c.started_at.rem_euclid(86_400_000_000),
        ((15 * 60 + 46) * 60 + 48) * 1_000_000 + 569_658
    );
}

/// #7: FreeSWITCH 1.10.12 current layout; retransmitted 200/ACK; verified counts.
#[test]
fn corpus_freeswitch_current_layout_has_exact_byte_counts_and_two_answered_legs() {
    let Some(path) = corpus("freeswitch/fs1.10.12-behind-opensips-lb-call.log") else {
        return;
    };
    let (framed, stats) = frame(&path, LogFormat::Freeswitch, None);
    assert_eq!(framed.len(), 21);
    assert_exact_byte_counts(&framed, &stats);
    let (calls, _, _) = ingest_logs(&[path], &utc());
    assert_eq!(calls.len(), 2, "{calls:#?}");
    for id in ["gz3ZstBOsS", "f454af74-3074-123e-ec8a-000c29633c29"] {
        let c = only(&calls, id);
        assert_eq!(
            (c.disposition, c.ended_by),
            (Disposition::Answered, EndedBy::Bye),
            "{id}"
        );
    }
    let a = only(&calls, "gz3ZstBOsS");
    assert_eq!(a.src_ip.to_string(), "192.168.2.50");
    assert_eq!(a.started_at.rem_euclid(1_000_000), 220_956);
}

/// #8: Event Socket `log/data` frames, TCP; a cancelled INVITE.
#[test]
fn corpus_freeswitch_event_socket_frames_give_a_cancelled_call() {
    let Some(path) = corpus("freeswitch/fs1.10.3-esl-logdata-siptrace-cancel.log") else {
        return;
    };
    let (framed, stats) = frame(&path, LogFormat::Freeswitch, None);
    assert_eq!(framed.len(), 7);
    assert_exact_byte_counts(&framed, &stats);
    assert!(framed.iter().all(|m| m.transport == Some(Transport::Tcp)));
    let (calls, _, _) = ingest_logs(&[path], &utc());
    assert_eq!(calls.len(), 1);
    let c = only(&calls, "n1TWDpD1hKxKWZ_G8IAYpg..");
    assert_eq!(
        (c.disposition, c.final_status, c.ended_by, c.hangup_side),
        (
            Disposition::NoAnswer,
            Some(487),
            EndedBy::Cancel,
            Some(Side::Caller)
        )
    );
    // The author obfuscated the peer (`127.00.000.001`): it is taken from the Via.
    assert!(c.source.ends_with(ingest::log::PEER_FROM_HEADERS));
}

/// An Event Socket capture of a FreeSWITCH log (each line its own `log/data` frame) with
/// an honest 2 MiB api/response early on, a log frame claiming 99 GB cut after a few bytes
/// in the middle of a SIP message, and a last frame the end of the capture cut: the
/// unbelievable frames are skipped unread and counted, and the call is the plain log's.
#[test]
fn esl_capture_with_huge_and_truncated_frames_still_gives_every_following_record() {
    let berlin = tz("Europe/Berlin");
    let packets = packets("answered_caller_bye");
    let local = packets[0].dst;
    let text = generate::freeswitch(&packets, local, FsLayout::Current, &berlin);
    let dir = tempfile::tempdir().expect("temp dir");
    let plain = write_log(dir.path(), "freeswitch.log", &text, &packets);

    let frame = |kind: &str, body: &str| {
        format!(
            "Content-Type: {kind}\nContent-Length: {}\nLog-Level: 6\n\n{body}",
            body.len()
        )
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut esl = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i == 3 {
            esl.push_str(&frame("api/response", &"x".repeat(2 << 20)));
        }
        if i == lines.len() / 2 {
            esl.push_str("Content-Type: log/data\nContent-Length: 99999999999\n\nrecv 1 b");
        }
        esl.push_str(&frame("log/data", line));
    }
    esl.push_str("Content-Type: log/data\nContent-Length: 400\nLog-Level: 6\n\n2026-");
    let capture = write_log(dir.path(), "esl.log", &esl, &packets);

    let opts = LogOptions {
        timezone: berlin,
        local_address: Some(local),
        ..utc()
    };
    let (want, _, _) = ingest_logs(&[plain], &opts);
    let (got, _, summaries) = ingest_logs(std::slice::from_ref(&capture), &opts);
    let s = &summaries[0];
    assert!(s.error.is_none(), "{}", s.line());
    assert!(
        s.skipped.contains(&("esl_oversize_frame", 2)),
        "{}",
        s.line()
    );
    assert!(s.notes.contains(&("esl_short_frame", 1)), "{}", s.line());
    assert_eq!(want.len(), 1);
    assert_eq!(got.len(), 1, "{got:#?}");
    let got = CallRecord {
        source: want[0].source.clone(),
        ..got[0].clone()
    };
    assert_same("ESL capture", &got, &want[0]);
}

/// #9: CUBE with sequence numbers and msec timestamps; no peer in the log.
#[test]
fn corpus_cisco_cube_invite_503_takes_the_peer_from_via_and_says_so() {
    let Some(path) = corpus("cisco-cube/cisco-doc-217860-cube-invite-503.log") else {
        return;
    };
    let (framed, stats) = frame(&path, LogFormat::Cisco, Some(2022));
    assert_eq!(framed.len(), 2);
    assert_eq!(stats.truncated, 0);
    assert_eq!(
        framed[0].ts_us,
        Some(1_649_316_536_046_000),
        "Apr  7 07:28:56.046 in 2022, UTC"
    );
    let opts = LogOptions {
        year: Some(2022),
        ..utc()
    };
    let (calls, _, _) = ingest_logs(std::slice::from_ref(&path), &opts);
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!((c.final_status, c.ended_by), (Some(503), EndedBy::Rejected));
    assert_eq!(
        (c.src_ip.to_string(), c.src_port),
        ("10.106.117.2".to_string(), 5060)
    );
    assert_eq!(
        c.source,
        format!("{}{}", path.display(), ingest::log::PEER_FROM_HEADERS)
    );
    assert_eq!(c.duration_ms(), 33);
}

/// #10: doc-edited IOS output without timestamps, a missing tag line, no blank line before
/// bodies and a short SDP: thirteen messages, an answered INVITE.
#[test]
fn corpus_cisco_doc_edited_kpml_trace_frames_all_messages_and_answers_the_call() {
    let Some(path) = corpus("cisco-cube/cisco-doc-sip-config-15mt-kpml-invite-200-ack.log") else {
        return;
    };
    let (framed, stats) = frame(&path, LogFormat::Cisco, None);
    assert_eq!(framed.len(), 13);
    assert_eq!(
        framed[0].first_line,
        "INVITE sip:8888@172.18.193.250:5060 SIP/2.0"
    );
    assert!(!framed[0].received);
    assert_eq!(
        stats.truncated, 2,
        "the 200 OK's SDP is 12 bytes short; a SUBSCRIBE lost its body"
    );
    let (calls, _, _) = ingest_logs(&[path], &utc());
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(
        (c.disposition, c.answered_at.is_some()),
        (Disposition::Answered, true)
    );
    assert_eq!(
        c.dst_ip.to_string(),
        "172.18.193.250",
        "from the Request-URI"
    );
}

// ---------------------------------------------------------------------------------------
// Generated logs: the same calls as their captures

const CAPTURES: &[&str] = &[
    "answered_caller_bye",
    "answered_caller_bye_ipv6",
    "answered_callee_bye",
    "busy",
    "cancelled",
    "not_found",
    "auth_challenge",
    "reinvite",
    "messages",
];

fn packets(name: &str) -> Vec<Packet> {
    let path = format!("{}/tests/data/sipp/{name}.pcap", env!("CARGO_MANIFEST_DIR"));
    generate::packets_of(Path::new(&path))
}

/// The records of a capture with its times cut to `precision_us`, as a log would have them.
fn capture_records(packets: &[Packet], precision_us: i64) -> (Vec<CallRecord>, Vec<MessageRecord>) {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let source: Arc<str> = Arc::from("capture");
    let mut out = Vec::new();
    for p in packets {
        let dg = callmeta::net::Datagram {
            ts_us: p.ts_us - p.ts_us.rem_euclid(precision_us),
            src: p.src,
            dst: p.dst,
            transport: Transport::Udp,
            payload: &p.payload,
        };
        ingest::feed_datagram(&mut tracker, &dg, &source, &mut out, |_| {});
    }
    tracker.finish(&mut out);
    split(out)
}

/// Writes a generated log with its modification time a minute after its last message
/// (so the year is inferred as it would be on the PBX).
fn write_log(dir: &Path, name: &str, text: &str, packets: &[Packet]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write log");
    let last = packets.iter().map(|p| p.ts_us).max().unwrap_or(0);
    let when = UNIX_EPOCH + Duration::from_micros(last as u64 + 60_000_000);
    File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
    path
}

/// Asserts that the records of `text` (read with format detection) equal the capture's,
/// every field but `source`, which must name the log (with `suffix`).
fn assert_log_matches_capture(
    format: &str,
    precision_us: i64,
    tz: &TimeZone,
    suffix: &str,
    make: impl Fn(&[Packet], SocketAddr) -> String,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in CAPTURES {
        let packets = packets(name);
        let local = packets[0].dst;
        let path = write_log(
            dir.path(),
            &format!("{name}.{format}.log"),
            &make(&packets, local),
            &packets,
        );
        let opts = LogOptions {
            format: None,
            timezone: tz.clone(),
            year: None,
            local_address: Some(local),
        };
        let (calls, messages, summaries) = ingest_logs(std::slice::from_ref(&path), &opts);
        assert!(
            summaries[0].error.is_none(),
            "{format}/{name}: {}",
            summaries[0].line()
        );
        let (want_calls, want_messages) = capture_records(&packets, precision_us);
        let source = format!("{}{suffix}", path.display());
        assert_eq!(
            calls.len(),
            want_calls.len(),
            "{format}/{name}: calls {calls:#?}"
        );
        assert_eq!(
            messages.len(),
            want_messages.len(),
            "{format}/{name}: messages"
        );
        for (got, want) in calls.iter().zip(&want_calls) {
            assert_eq!(got.source, source, "{format}/{name}");
            let got = CallRecord {
                source: want.source.clone(),
                ..got.clone()
            };
            assert_same(&format!("{format}/{name}"), &got, want);
        }
        for (got, want) in messages.iter().zip(&want_messages) {
            assert_eq!(got.source, source, "{format}/{name}");
            let got = MessageRecord {
                source: want.source.clone(),
                ..got.clone()
            };
            assert_same(&format!("{format}/{name}"), &got, want);
        }
        assert!(!want_calls.is_empty() || !want_messages.is_empty());
    }
}

/// Compares two records field by field (through their `Debug` form) and names the first
/// field that differs.
fn assert_same<T: std::fmt::Debug + PartialEq>(what: &str, got: &T, want: &T) {
    if got == want {
        return;
    }
    let (g, w) = (format!("{got:#?}"), format!("{want:#?}"));
    for (gl, wl) in g.lines().zip(w.lines()) {
        assert_eq!(gl, wl, "{what}: first differing field (log vs capture)");
    }
    panic!("{what}: records differ\nlog: {g}\ncapture: {w}");
}

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).expect("zone in the tz database")
}

#[test]
fn pjsip_log_file_with_the_default_dateformat_gives_the_capture_records_to_the_second() {
    let berlin = tz("Europe/Berlin");
    assert_log_matches_capture("pjsip-default", 1_000_000, &berlin, "", |p, l| {
        generate::pjsip_file(p, l, DateFormat::Default, &berlin)
    });
}

#[test]
fn pjsip_log_file_with_iso_millisecond_dates_gives_the_capture_records_to_the_millisecond() {
    assert_log_matches_capture("pjsip-iso-ms", 1000, &TimeZone::UTC, "", |p, l| {
        generate::pjsip_file(p, l, DateFormat::IsoMillis, &TimeZone::UTC)
    });
}

#[test]
fn pjsip_log_file_with_microsecond_dates_gives_the_capture_records_exactly() {
    let ny = tz("America/New_York");
    assert_log_matches_capture("pjsip-iso-us", 1, &ny, "", |p, l| {
        generate::pjsip_file(p, l, DateFormat::IsoMicros, &ny)
    });
}

#[test]
fn pjsip_console_with_timestamps_on_every_line_gives_the_capture_records() {
    let ny = tz("America/New_York");
    assert_log_matches_capture("pjsip-console", 1_000_000, &ny, "", |p, l| {
        generate::pjsip_console(p, l, &ny)
    });
}

#[test]
fn pjsip_json_formatter_gives_the_capture_records() {
    let berlin = tz("Europe/Berlin");
    assert_log_matches_capture("pjsip-json", 1000, &berlin, "", |p, l| {
        generate::pjsip_json(p, l, &berlin)
    });
}

#[test]
fn chansip_debug_in_the_full_log_gives_the_capture_records() {
    let berlin = tz("Europe/Berlin");
    assert_log_matches_capture("chansip", 1_000_000, &berlin, "", |p, l| {
        generate::chansip_file(p, l, DateFormat::Default, &berlin)
    });
}

#[test]
fn freeswitch_indented_pre_2019_layout_gives_the_capture_records_exactly() {
    let berlin = tz("Europe/Berlin");
    assert_log_matches_capture("fs-indented", 1, &berlin, "", |p, l| {
        generate::freeswitch(p, l, FsLayout::Indented, &berlin)
    });
}

#[test]
fn freeswitch_2019_layout_without_trailing_newline_gives_the_capture_records_exactly() {
    let berlin = tz("Europe/Berlin");
    assert_log_matches_capture("fs-2019", 1, &berlin, "", |p, l| {
        generate::freeswitch(p, l, FsLayout::NoTrailingNewline, &berlin)
    });
}

#[test]
fn freeswitch_current_layout_gives_the_capture_records_exactly() {
    let tokyo = tz("Asia/Tokyo");
    assert_log_matches_capture("fs-2022", 1, &tokyo, "", |p, l| {
        generate::freeswitch(p, l, FsLayout::Current, &tokyo)
    });
}

#[test]
fn kamailio_sipdump_gives_the_capture_records_exactly() {
    assert_log_matches_capture("sipdump", 1, &tz("Europe/Berlin"), "", generate::sipdump);
}

#[test]
fn cisco_debug_ccsip_messages_gives_the_capture_records_with_peers_from_via() {
    let chicago = tz("America/Chicago");
    assert_log_matches_capture(
        "cisco",
        1000,
        &chicago,
        ingest::log::PEER_FROM_HEADERS,
        |p, l| generate::cisco(p, l, &chicago),
    );
}

// ---------------------------------------------------------------------------------------
// Following a log while it is written

use callmeta::source::log::{Checkpoint, FollowConfig, Follower};
use std::io::Write;

/// A framed message reduced to what identifies it.
type Seen = (Option<i64>, bool, usize, String);

fn seen(m: &LogMessage<'_>) -> Seen {
    (
        m.ts_us,
        m.direction == log::Direction::Received,
        m.payload.len(),
        String::from_utf8_lossy(m.payload.split(|&b| b == b'\r').next().unwrap_or_default())
            .into_owned(),
    )
}

/// What reading `text` at once gives.
fn frame_at_once(text: &str, format: LogFormat, tz: &TimeZone) -> Vec<Seen> {
    let mut f = log::framer(format, LogClock::new(tz.clone(), None, now_us()));
    let mut got = Vec::new();
    for l in text.split_inclusive('\n') {
        f.line(l.strip_suffix('\n').unwrap_or(l).as_bytes(), &mut |m| {
            got.push(seen(m))
        });
    }
    f.finish(&mut |m| got.push(seen(m)));
    got
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Several calls' worth of a log in `format`, as the UAS of each capture wrote it.
fn long_log(format: &str, tz: &TimeZone) -> String {
    let mut text = String::new();
    for name in CAPTURES {
        let p = packets(name);
        let local = p[0].dst;
        text.push_str(&match format {
            "pjsip" => generate::pjsip_file(&p, local, DateFormat::IsoMicros, tz),
            "freeswitch" => generate::freeswitch(&p, local, FsLayout::Current, tz),
            "cisco" => generate::cisco(&p, local, tz),
            "sipdump" => generate::sipdump(&p, local),
            _ => generate::chansip_file(&p, local, DateFormat::Default, tz),
        });
    }
    text
}

fn follow_cfg(path: &Path, format: LogFormat) -> FollowConfig {
    FollowConfig {
        path: path.to_path_buf(),
        format,
        timezone: TimeZone::UTC,
        year: Some(2026),
    }
}

/// A deterministic xorshift: the property tests' random write points, reproducible by seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Property: wherever a writer's flushes fall (any split into write chunks, polled after
/// each), following gives exactly the messages of reading the file at once.
#[test]
fn any_split_into_write_chunks_gives_the_same_messages_when_followed() {
    let tz = TimeZone::UTC;
    for (name, format) in [
        ("pjsip", LogFormat::AsteriskPjsip),
        ("chansip", LogFormat::AsteriskChansip),
        ("freeswitch", LogFormat::Freeswitch),
        ("cisco", LogFormat::Cisco),
    ] {
        let text = long_log(name, &tz);
        let want = frame_at_once(&text, format, &tz);
        assert!(want.len() > 40, "{name}: {} messages", want.len());
        for seed in 1..=12u64 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("full");
            let mut file = File::create(&path).unwrap();
            let mut f = Follower::open(follow_cfg(&path, format), None).unwrap();
            let mut got = Vec::new();
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let bytes = text.as_bytes();
            let mut at = 0;
            while at < bytes.len() {
                let n = (1 + rng.below(700)).min(bytes.len() - at);
                file.write_all(&bytes[at..at + n]).unwrap();
                at += n;
                f.poll(u64::MAX, &mut |m| got.push(seen(m))).unwrap();
            }
            f.flush(&mut |m| got.push(seen(m)));
            assert_eq!(got, want, "{name}, seed {seed}");
        }
    }
}

/// Calls then messages, each sorted by Call-ID and start: the order a tracker emits them
/// in depends on when its timers run, the records do not.
fn sorted(records: Vec<Record>) -> (Vec<CallRecord>, Vec<MessageRecord>) {
    let (mut calls, mut messages) = split(records);
    calls.sort_by(|a, b| (&a.call_id, a.started_at).cmp(&(&b.call_id, b.started_at)));
    messages.sort_by(|a, b| (&a.call_id, a.cseq).cmp(&(&b.call_id, b.cseq)));
    (calls, messages)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]

    /// Property (issue 5): however a PBX's writes cut its log (chunk sizes drawn, cycled
    /// until the log is written, a poll after each), following it gives the records that
    /// ingesting the finished file gives, field by field, in every format.
    #[test]
    fn any_split_into_write_chunks_gives_the_records_of_ingest_when_followed(
        which in 0usize..5,
        cuts in proptest::collection::vec(1usize..1500, 1..48),
    ) {
        let tz = TimeZone::UTC;
        let (name, format) = [
            ("pjsip", LogFormat::AsteriskPjsip),
            ("chansip", LogFormat::AsteriskChansip),
            ("freeswitch", LogFormat::Freeswitch),
            ("cisco", LogFormat::Cisco),
            ("sipdump", LogFormat::KamailioSipdump),
        ][which];
        let text = long_log(name, &tz);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full");
        let mut file = File::create(&path).unwrap();
        let mut follower = Follower::open(follow_cfg(&path, format), None).unwrap();
        let source = path.display().to_string();
        let mut feed = ingest::LogFeed::new(&source, None, now_us());
        let mut tracker = Tracker::new(TrackerConfig::default());
        let mut out = Vec::new();
        let mut hand = |m: &LogMessage<'_>| {
            feed.feed(&mut tracker, m, &mut out, |_| {});
        };
        let bytes = text.as_bytes();
        let mut at = 0;
        for n in cuts.iter().cycle() {
            if at == bytes.len() {
                break;
            }
            let n = (*n).min(bytes.len() - at);
            file.write_all(&bytes[at..at + n]).unwrap();
            at += n;
            follower.poll(u64::MAX, &mut hand).unwrap();
        }
        follower.flush(&mut hand);
        tracker.finish(&mut out);
        let followed = sorted(out);
        let opts = LogOptions {
            format: Some(format),
            year: Some(2026),
            ..utc()
        };
        let mut whole = Vec::new();
        ingest::ingest_log_files(std::slice::from_ref(&path), &opts, TrackerConfig::default(), |r| {
            whole.push(r);
            Ok::<(), ()>(())
        })
        .unwrap();
        let whole = sorted(whole);
        proptest::prop_assert!(whole.0.len() >= CAPTURES.len() - 2, "{name}: {} calls", whole.0.len());
        proptest::prop_assert_eq!(followed, whole, "{}", name);
    }
}

/// Rotation by rename (Asterisk `sequential`, logrotate `create`) while a writer thread
/// logs: every message once, in order.
#[test]
fn rotation_by_rename_while_logging_loses_and_repeats_nothing() {
    let tz = TimeZone::UTC;
    let text = long_log("pjsip", &tz);
    let want = frame_at_once(&text, LogFormat::AsteriskPjsip, &tz);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full");
    File::create(&path).unwrap();
    let mut f = Follower::open(follow_cfg(&path, LogFormat::AsteriskPjsip), None).unwrap();
    let records: Vec<String> = split_records(&text);
    let writer = {
        let path = path.clone();
        let dir = dir.path().to_path_buf();
        std::thread::spawn(move || {
            let mut file = File::options().append(true).open(&path).unwrap();
            for (i, r) in records.iter().enumerate() {
                file.write_all(r.as_bytes()).unwrap();
                if i % 15 == 14 {
                    // Rotate: the old file is renamed, a new one created at the path.
                    std::fs::rename(&path, dir.join(format!("full.{i}"))).unwrap();
                    file = File::create(&path).unwrap();
                }
                if i % 4 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    let mut got = Vec::new();
    let mut rotations = 0;
    while !writer.is_finished() {
        rotations += f
            .poll(u64::MAX, &mut |m| got.push(seen(m)))
            .unwrap()
            .rotations;
        std::thread::sleep(Duration::from_micros(300));
    }
    writer.join().unwrap();
    rotations += f
        .poll(u64::MAX, &mut |m| got.push(seen(m)))
        .unwrap()
        .rotations;
    f.flush(&mut |m| got.push(seen(m)));
    assert!(rotations >= 1, "no rotation noticed");
    assert_eq!(got, want);
}

/// copytruncate: the file is copied and truncated in place; the follower starts again at
/// its beginning.
#[test]
fn copytruncate_rotation_loses_and_repeats_nothing() {
    let tz = TimeZone::UTC;
    let text = long_log("pjsip", &tz);
    let want = frame_at_once(&text, LogFormat::AsteriskPjsip, &tz);
    let records = split_records(&text);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full");
    let mut file = File::create(&path).unwrap();
    let mut f = Follower::open(follow_cfg(&path, LogFormat::AsteriskPjsip), None).unwrap();
    let mut got = Vec::new();
    let mut rotations = 0;
    for (i, r) in records.iter().enumerate() {
        file.write_all(r.as_bytes()).unwrap();
        rotations += f
            .poll(u64::MAX, &mut |m| got.push(seen(m)))
            .unwrap()
            .rotations;
        if i % 20 == 19 {
            // logrotate copytruncate: copy, then truncate the file being written (its
            // writer keeps its descriptor, opened with O_APPEND).
            std::fs::copy(&path, dir.path().join(format!("full.{i}"))).unwrap();
            file.set_len(0).unwrap();
            file = File::options().append(true).open(&path).unwrap();
        }
    }
    rotations += f
        .poll(u64::MAX, &mut |m| got.push(seen(m)))
        .unwrap()
        .rotations;
    f.flush(&mut |m| got.push(seen(m)));
    assert!(rotations >= 1);
    assert_eq!(got, want);
}

/// The daemon killed after any poll and restarted from the checkpoint it saved with the
/// messages handed on: every message exactly once.
#[test]
fn restart_from_the_checkpoint_after_any_poll_loses_and_repeats_nothing() {
    let tz = TimeZone::UTC;
    for (name, format) in [
        ("pjsip", LogFormat::AsteriskPjsip),
        ("cisco", LogFormat::Cisco),
        ("chansip", LogFormat::AsteriskChansip),
        ("freeswitch", LogFormat::Freeswitch),
    ] {
        let text = long_log(name, &tz);
        let want = frame_at_once(&text, format, &tz);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full");
        std::fs::write(&path, &text).unwrap();
        let mut committed: Vec<Seen> = Vec::new();
        let mut checkpoint: Option<Checkpoint> = None;
        let mut restarts = 0;
        loop {
            // A new process: resume from the saved checkpoint, poll a little, "commit".
            // It polls 997 bytes at a time until its checkpoint moves (a message longer
            // than a poll keeps it in place), then is killed.
            let mut f = Follower::open(follow_cfg(&path, format), checkpoint).unwrap();
            let mut batch = Vec::new();
            let at = f.checkpoint();
            let mut eof = false;
            while f.checkpoint() == at && !eof {
                eof = f.poll(997, &mut |m| batch.push(seen(m))).unwrap().bytes == 0;
            }
            if eof {
                f.flush(&mut |m| batch.push(seen(m)));
                committed.extend(batch);
                break;
            }
            committed.extend(batch);
            checkpoint = Some(f.checkpoint());
            restarts += 1;
        }
        assert!(restarts > 20, "{name}: {restarts} restarts");
        assert_eq!(committed, want, "{name}");
    }
}

/// Stopped, the log rotated, restarted: the rest of the old file is read (found beside the
/// log by its inode), then the new one.
#[test]
fn restart_after_a_rotation_while_stopped_finishes_the_rotated_file_first() {
    let tz = TimeZone::UTC;
    let text = long_log("pjsip", &tz);
    let want = frame_at_once(&text, LogFormat::AsteriskPjsip, &tz);
    let records = split_records(&text);
    let (first, second) = records.split_at(records.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full");
    std::fs::write(&path, first.concat()).unwrap();
    let mut committed = Vec::new();
    let mut f = Follower::open(follow_cfg(&path, LogFormat::AsteriskPjsip), None).unwrap();
    f.poll(3000, &mut |m| committed.push(seen(m))).unwrap();
    let cp = f.checkpoint();
    drop(f);
    std::fs::rename(&path, dir.path().join("full.1")).unwrap();
    std::fs::write(&path, second.concat()).unwrap();
    let mut f = Follower::open(follow_cfg(&path, LogFormat::AsteriskPjsip), Some(cp)).unwrap();
    for _ in 0..3 {
        f.poll(u64::MAX, &mut |m| committed.push(seen(m))).unwrap();
    }
    f.flush(&mut |m| committed.push(seen(m)));
    assert_eq!(committed, want);
}

/// Splits a generated log into its records (each starting at a `[` prefixed line).
fn split_records(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.starts_with('[') || out.is_empty() {
            out.push(String::new());
        }
        if let Some(last) = out.last_mut() {
            last.push_str(line);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Real Kamailio: its sipdump files and a capture of the same calls agree

use std::process::{Child, Command, Stdio};

/// Children started by a test, stopped by their own PID when it ends (even on panic).
struct Procs(Vec<Child>);

impl Procs {
    /// SIGTERM (so tcpdump flushes and Kamailio exits cleanly), then wait.
    fn terminate(&mut self, mut child: Child) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        for _ in 0..50 {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for mut c in self.0.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Polls `ss` until a UDP socket is bound to `addr`.
fn wait_bound(addr: &str) {
    for _ in 0..100 {
        let out = Command::new("ss")
            .args(["-Hlun", &format!("src {addr}")])
            .output();
        if out.is_ok_and(|o| !o.stdout.is_empty()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing bound to {addr}");
}

const KAMAILIO: &str = "127.0.0.61";
const KAM_UAS: &str = "127.0.0.62";
const KAM_UAC: &str = "127.0.0.63";

fn kamailio_cfg(dump: &Path) -> String {
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
auto_aliases=no
listen=udp:{KAMAILIO}:5060
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "sipdump.so"
modparam("sipdump", "enable", 1)
modparam("sipdump", "mode", 1)
modparam("sipdump", "folder", "{}")
request_route {{
    if (has_totag() || is_method("CANCEL")) {{
        t_relay();
        exit;
    }}
    $du = "sip:{KAM_UAS}:5060";
    t_relay();
}}
"#,
        dump.display()
    )
}

/// Kamailio (Debian's package) proxies SIPp calls of four outcomes on loopback with
/// `sipdump` writing its text files, while tcpdump captures the same traffic: the calls
/// from the sipdump files are the calls from the capture (times within 20 ms: Kamailio
/// stamps a message when it reads or sends it, the kernel when it crosses `lo`).
#[test]
fn kamailio_sipdump_files_give_the_calls_of_a_capture_of_the_same_traffic() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let missing: Vec<&str> = ["kamailio", "sipp", "tcpdump", "ss"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !missing.is_empty() || !is_root() {
        assert!(!ci, "CI=true but missing {missing:?} (or not root): install kamailio, sip-tester, tcpdump, iproute2");
        eprintln!(
            "SKIPPED: needs root and {missing:?} (Debian: kamailio sip-tester tcpdump iproute2)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump");
    let run = dir.path().join("run");
    std::fs::create_dir_all(&dump).unwrap();
    std::fs::create_dir_all(&run).unwrap();
    let cfg = dir.path().join("kamailio.cfg");
    std::fs::write(&cfg, kamailio_cfg(&dump)).unwrap();
    let pcap = dir.path().join("calls.pcap");
    let scenarios = format!("{}/tests/data/sipp/scenarios", env!("CARGO_MANIFEST_DIR"));
    let mut procs = Procs(Vec::new());

    let kam = Command::new("kamailio")
        .args([
            "-f",
            cfg.to_str().unwrap(),
            "-DD",
            "-E",
            "-Y",
            run.to_str().unwrap(),
            "-w",
        ])
        .arg(&run)
        .stdout(Stdio::null())
        .stderr(File::create(dir.path().join("kamailio.log")).unwrap())
        .spawn()
        .expect("start kamailio");
    procs.0.push(kam);
    wait_bound(&format!("{KAMAILIO}:5060"));

    let td_err = dir.path().join("tcpdump.err");
    let td = Command::new("tcpdump")
        .args(["-i", "lo", "--immediate-mode", "-U", "-w"])
        .arg(&pcap)
        .arg(format!(
            "udp and (host {KAMAILIO} or host {KAM_UAS} or host {KAM_UAC})"
        ))
        .stdout(Stdio::null())
        .stderr(File::create(&td_err).unwrap())
        .spawn()
        .expect("start tcpdump");
    procs.0.push(td);
    for _ in 0..100 {
        if std::fs::read_to_string(&td_err).is_ok_and(|s| s.contains("listening on")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let cases = [
        (
            "uas_answer.xml",
            "uac_answer_caller_bye.xml",
            "kam-answered-%u@pbx.example.com",
            "15559870002",
        ),
        (
            "uas_busy.xml",
            "uac_rejected.xml",
            "kam-busy-%u@pbx.example.com",
            "15559870002",
        ),
        (
            "uas_cancel.xml",
            "uac_cancel.xml",
            "kam-cancelled-%u@pbx.example.com",
            "15559870002",
        ),
        (
            "uas_not_found.xml",
            "uac_rejected.xml",
            "kam-not-found-%u@pbx.example.com",
            "15559879999",
        ),
    ];
    for (uas, uac, cid, callee) in cases {
        let mut uas_proc = Command::new("sipp")
            .args([
                "-sf",
                &format!("{scenarios}/{uas}"),
                "-i",
                KAM_UAS,
                "-mi",
                KAM_UAS,
                "-p",
                "5060",
            ])
            .args([
                "-m", "1", "-timeout", "20s", "-nostdin", "-key", "callee", callee,
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the sipp UAS");
        wait_bound(&format!("{KAM_UAS}:5060"));
        let uac_status = Command::new("sipp")
            .arg(format!("{KAMAILIO}:5060"))
            .args([
                "-sf",
                &format!("{scenarios}/{uac}"),
                "-i",
                KAM_UAC,
                "-mi",
                KAM_UAC,
                "-p",
                "15060",
            ])
            .args([
                "-m", "1", "-timeout", "20s", "-nostdin", "-cid_str", cid, "-key", "callee", callee,
            ])
            .args([
                "-key",
                "caller",
                "+15551230001",
                "-key",
                "caller_name",
                "Alice Example",
            ])
            .args(["-key", "pai", "+15551230000"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run the sipp UAC");
        let uas_status = uas_proc.wait().expect("wait for the sipp UAS");
        assert!(
            uac_status.success() && uas_status.success(),
            "{uac}: sipp failed"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let td = procs.0.pop().unwrap();
    procs.terminate(td);
    let kam = procs.0.pop().unwrap();
    procs.terminate(kam);

    let mut from_capture = Vec::new();
    ingest::ingest_files(std::slice::from_ref(&pcap), TrackerConfig::default(), |r| {
        from_capture.push(r);
        Ok::<(), ()>(())
    })
    .unwrap();
    let (want, _) = split(from_capture);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dump)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "kamailio wrote no sipdump file");
    let (got, _, summaries) = ingest_logs(&files, &utc());
    for s in &summaries {
        assert!(s.error.is_none() && s.skipped.is_empty(), "{}", s.line());
    }
    assert_eq!(want.len(), 4, "{want:#?}");
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (g, w) in got.iter().zip(&want) {
        let what = &w.call_id;
        assert_eq!(
            (
                &g.call_id,
                g.disposition,
                g.final_status,
                g.ended_by,
                g.hangup_side,
                g.reason_cause
            ),
            (
                &w.call_id,
                w.disposition,
                w.final_status,
                w.ended_by,
                w.hangup_side,
                w.reason_cause
            ),
            "{what}"
        );
        assert_eq!(
            (
                &g.caller,
                &g.callee,
                &g.asserted_identity,
                &g.codecs,
                &g.user_agent,
                &g.server
            ),
            (
                &w.caller,
                &w.callee,
                &w.asserted_identity,
                &w.codecs,
                &w.user_agent,
                &w.server
            ),
            "{what}"
        );
        assert_eq!(
            (g.src_ip, g.src_port, g.dst_ip, g.dst_port, g.transport),
            (w.src_ip, w.src_port, w.dst_ip, w.dst_port, w.transport),
            "{what}"
        );
        let close = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() < 20_000,
            (a, b) => a == b,
        };
        assert!(
            close(Some(g.started_at), Some(w.started_at)),
            "{what} started_at"
        );
        assert!(close(g.ringing_at, w.ringing_at), "{what} ringing_at");
        assert!(close(g.answered_at, w.answered_at), "{what} answered_at");
        assert!(close(Some(g.ended_at), Some(w.ended_at)), "{what} ended_at");
    }
}

// ---------------------------------------------------------------------------------------
// The sample logs committed beside the generator

/// The sample logs in tests/data/logs/: case (a) in every format, as the callee's PBX
/// (127.0.0.2:5060) wrote them, local times in Europe/Berlin.
fn sample_logs() -> Vec<(&'static str, String)> {
    let berlin = tz("Europe/Berlin");
    let p = packets("answered_caller_bye");
    let l = p[0].dst;
    vec![
        (
            "pjsip-full.log",
            generate::pjsip_file(&p, l, DateFormat::Default, &berlin),
        ),
        (
            "pjsip-full-iso-ms.log",
            generate::pjsip_file(&p, l, DateFormat::IsoMillis, &berlin),
        ),
        ("pjsip-console.log", generate::pjsip_console(&p, l, &berlin)),
        ("pjsip-json.log", generate::pjsip_json(&p, l, &berlin)),
        (
            "chansip-full.log",
            generate::chansip_file(&p, l, DateFormat::Default, &berlin),
        ),
        (
            "freeswitch-indented.log",
            generate::freeswitch(&p, l, FsLayout::Indented, &berlin),
        ),
        (
            "freeswitch-2019.log",
            generate::freeswitch(&p, l, FsLayout::NoTrailingNewline, &berlin),
        ),
        (
            "freeswitch.log",
            generate::freeswitch(&p, l, FsLayout::Current, &berlin),
        ),
        ("kamailio-sipdump.data", generate::sipdump(&p, l)),
        ("cisco.log", generate::cisco(&p, l, &berlin)),
    ]
}

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/logs/answered_caller_bye")
}

/// Rewrites the samples: `cargo test --test logs -- --ignored regenerate_sample_logs`.
#[test]
#[ignore = "writes tests/data/logs/; run by hand after changing the generator"]
fn regenerate_sample_logs() {
    std::fs::create_dir_all(samples_dir()).unwrap();
    for (name, text) in sample_logs() {
        std::fs::write(samples_dir().join(name), text).unwrap();
    }
}

/// The committed samples are exactly what the generator writes, and each is recognised
/// as its format and gives case (a)'s call.
#[test]
fn committed_sample_logs_are_the_generator_output_and_give_the_call() {
    let berlin = tz("Europe/Berlin");
    for (name, text) in sample_logs() {
        let path = samples_dir().join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{name} differs from the generator: run regenerate_sample_logs"
        );
        let opts = LogOptions {
            timezone: berlin.clone(),
            year: Some(2026),
            local_address: "127.0.0.2:5060".parse().ok(),
            ..utc()
        };
        let (calls, _, _) = ingest_logs(std::slice::from_ref(&path), &opts);
        assert_eq!(calls.len(), 1, "{name}");
        assert_eq!(
            calls[0].call_id, "answered-caller-bye-1@pbx.example.com",
            "{name}"
        );
        assert_eq!(calls[0].disposition, Disposition::Answered, "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// Through the binary

/// `callmeta ingest` recognises a capture and a log given together and stores both calls;
/// `--format` forces a log format.
#[test]
fn ingest_command_reads_captures_and_logs_together_and_takes_a_forced_format() {
    let capture = common::sipp_capture("busy.pcap");
    let log = samples_dir().join("freeswitch.log");
    let log = log.to_str().expect("UTF-8 path");
    let db = common::Db::new();
    db.ingest(&[&capture, log]);
    let calls = db.calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(
        common::by_call_id(&calls, "busy-1@pbx.example.com")["source"],
        capture.as_str()
    );
    assert_eq!(
        common::by_call_id(&calls, "answered-caller-bye-1@pbx.example.com")["source"],
        log
    );

    let forced = common::Db::new();
    let db_path = forced.path();
    let out = common::run(&[
        "ingest",
        "--db",
        db_path.to_str().unwrap(),
        "--format",
        "cisco",
        log,
    ]);
    assert!(
        out.contains("0 SIP messages"),
        "a FreeSWITCH log read as Cisco frames nothing: {out}"
    );
}

/// `callmeta ingest --db <fresh store> --retention 36500d ARGS...`: the calls it stored.
/// The long window keeps old log dates from the retention purge that ends every ingest.
fn ingest_command(args: &[&str]) -> Vec<serde_json::Value> {
    let db = common::Db::new();
    let db_path = db.path();
    let mut all = vec![
        "ingest",
        "--db",
        db_path.to_str().expect("UTF-8 path"),
        "--retention",
        "36500d",
    ];
    all.extend_from_slice(args);
    common::run(&all);
    db.calls()
}

fn sample(name: &str) -> String {
    samples_dir()
        .join(name)
        .to_str()
        .expect("UTF-8 path")
        .to_string()
}

/// The chan_sip sample's default dateformat (`[Nov 29 17:26:38]`) is local time: read in
/// UTC it is stored as written; read in Europe/Berlin (UTC+1 in November) an hour earlier.
#[test]
fn ingest_timezone_flag_reads_a_logs_local_times_in_that_zone() {
    let log = sample("chansip-full.log");
    for (zone, started, ended) in [
        (
            "UTC",
            "2026-11-29T17:26:38.000000Z",
            "2026-11-29T17:26:42.000000Z",
        ),
        (
            "Europe/Berlin",
            "2026-11-29T16:26:38.000000Z",
            "2026-11-29T16:26:42.000000Z",
        ),
        (
            "Asia/Kathmandu",
            "2026-11-29T11:41:38.000000Z",
            "2026-11-29T11:41:42.000000Z",
        ),
    ] {
        let calls = ingest_command(&["--timezone", zone, "--year", "2026", &log]);
        assert_eq!(calls.len(), 1, "{zone}: {calls:#?}");
        assert_eq!(
            (&calls[0]["started_at"], &calls[0]["ended_at"]),
            (&started.into(), &ended.into()),
            "{zone}"
        );
    }
}

/// Cisco `datetime msec` stamps (`Nov 29 17:26:38.588`) carry no year: `--year` gives it,
/// whatever the file's modification time.
#[test]
fn ingest_year_flag_sets_the_year_of_a_year_less_log() {
    let log = sample("cisco.log");
    for year in ["2021", "2024"] {
        let calls = ingest_command(&["--timezone", "UTC", "--year", year, &log]);
        assert_eq!(calls.len(), 1, "{year}: {calls:#?}");
        assert_eq!(
            calls[0]["started_at"],
            format!("{year}-11-29T17:26:38.588000Z"),
            "{year}"
        );
    }
}

/// chan_sip names only the peer: `--local-address` is the other end, the destination of
/// an INVITE the PBX received and the source of one it sent. Without it, 0.0.0.0:0.
#[test]
fn ingest_local_address_flag_is_the_local_end_of_every_logged_peer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let packets = packets("answered_caller_bye");
    let berlin = tz("Europe/Berlin");
    let (caller, callee) = (packets[0].src, packets[0].dst);
    let ends = |c: &serde_json::Value| {
        format!(
            "{}:{} -> {}:{}",
            c["src_ip"].as_str().unwrap_or_default(),
            c["src_port"],
            c["dst_ip"].as_str().unwrap_or_default(),
            c["dst_port"]
        )
    };
    // The log of the callee's PBX (INVITE received), then of the caller's (INVITE sent).
    for (pbx, peer, want) in [
        (callee, caller, format!("{caller} -> {callee}")),
        (caller, callee, format!("{caller} -> {callee}")),
    ] {
        let text = generate::chansip_file(&packets, pbx, DateFormat::IsoMillis, &berlin);
        let path = write_log(dir.path(), &format!("{pbx}.log"), &text, &packets);
        let path = path.to_str().expect("UTF-8 path");
        let args = [
            "--timezone",
            "Europe/Berlin",
            "--format",
            "asterisk-chansip",
        ];

        let pbx_arg = pbx.to_string();
        let mut with = args.to_vec();
        with.extend(["--local-address", &pbx_arg, path]);
        let calls = ingest_command(&with);
        assert_eq!(calls.len(), 1, "{pbx}: {calls:#?}");
        assert_eq!(ends(&calls[0]), want, "log of {pbx}");

        let mut without = args.to_vec();
        without.push(path);
        let calls = ingest_command(&without);
        assert_eq!(calls.len(), 1, "{pbx}: {calls:#?}");
        let unset = if pbx == callee {
            format!("{peer} -> 0.0.0.0:0")
        } else {
            format!("0.0.0.0:0 -> {peer}")
        };
        assert_eq!(
            ends(&calls[0]),
            unset,
            "log of {pbx} without --local-address"
        );
    }
}

/// A bad `--timezone`, `--year` or `--local-address` stops `ingest` before it opens the
/// store, with a message naming the flag and what is wrong (never a panic).
#[test]
fn ingest_refuses_a_bad_log_flag_naming_it() {
    let log = sample("chansip-full.log");
    for (flag, value, why) in [
        ("--timezone", "Mars/Olympus", "is not a time zone name"),
        ("--timezone", "", "is not a time zone name"),
        ("--year", "1900", "is not a year between 1970 and 2100"),
        ("--year", "99999", "is not a year between 1970 and 2100"),
        ("--year", "twenty", "invalid digit"),
        ("--local-address", "192.0.2.10", "is not an IP:PORT address"),
        ("--local-address", "pbx:5060", "is not an IP:PORT address"),
        (
            "--local-address",
            "192.0.2.10:65536",
            "is not an IP:PORT address",
        ),
    ] {
        let db = common::Db::new();
        let out = Command::new(env!("CARGO_BIN_EXE_callmeta"))
            .args(["ingest", "--db"])
            .arg(db.path())
            .args([flag, value, &log])
            .output()
            .expect("start the callmeta binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value:?} was accepted");
        assert!(
            stderr.contains(flag) && stderr.contains(why),
            "{flag} {value:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{flag} {value:?}: {stderr}");
        assert!(!db.path().exists(), "{flag} {value:?} created the store");
    }
}
