//! End to end through the binary: SIPp-made captures (tests/data/sipp/, see its README.md
//! for how they were recorded and why each expected value is what it is) go through
//! `callmeta ingest`, and the records read back with `callmeta calls|messages --format jsonl`
//! must equal the golden records below, every field of them.

mod common;

use common::*;
use serde_json::{json, Value};

/// Case (a): INVITE, 100, 180, 200, ACK, BYE from the caller (Reason cause 16), 200.
#[test]
fn answered_call_hung_up_by_caller_gives_one_bye_record() {
    let path = sipp_capture("answered_caller_bye.pcap");
    let db = ingest(&[&path]);
    assert_call(
        &only_call(&db),
        &[
            ("call_id", json!("answered-caller-bye-1@pbx.example.com")),
            ("started_at", json!("2026-11-29T16:26:38.588716Z")),
            ("ringing_at", json!("2026-11-29T16:26:38.712364Z")),
            ("answered_at", json!("2026-11-29T16:26:40.217652Z")),
            ("ended_at", json!("2026-11-29T16:26:42.724298Z")),
            ("duration_ms", json!(4135)),
            ("billable_ms", json!(2506)),
            ("pdd_ms", json!(123)),
            ("disposition", json!("answered")),
            ("final_status", json!(200)),
            ("ended_by", json!("bye")),
            ("timeout_reason", json!(null)),
            ("hangup_side", json!("caller")),
            ("reason_cause", json!(16)),
            ("caller", json!("+15551230001")),
            ("caller_domain", json!("pbx.example.com")),
            ("caller_name", json!("Alice Example")),
            ("callee", json!("15559870002")),
            ("callee_domain", json!("carrier.example.net")),
            ("asserted_identity", json!("+15551230000")),
            ("src_ip", json!("127.0.0.1")),
            ("src_port", json!(15060)),
            ("dst_ip", json!("127.0.0.2")),
            ("dst_port", json!(5060)),
            ("transport", json!("udp")),
            ("user_agent", json!("ExamplePBX/4.2.1")),
            ("server", json!("CarrierSBC/7.3")),
            ("codecs", json!("PCMU,telephone-event")),
            ("source", json!(path)),
        ],
    );
}

/// Case (b): the BYE comes from the callee (its From-tag is the dialog's To-tag); the
/// callee's User-Agent on that BYE and the caller's Server on the 200 must not leak into
/// `user_agent` / `server`.
#[test]
fn answered_call_hung_up_by_callee_is_a_callee_hangup() {
    let path = sipp_capture("answered_callee_bye.pcap");
    let db = ingest(&[&path]);
    assert_call(
        &only_call(&db),
        &[
            ("call_id", json!("answered-callee-bye-1@pbx.example.com")),
            ("started_at", json!("2026-11-29T16:26:54.504209Z")),
            ("ringing_at", json!("2026-11-29T16:26:54.628466Z")),
            ("answered_at", json!("2026-11-29T16:26:56.132118Z")),
            ("ended_at", json!("2026-11-29T16:26:58.636448Z")),
            ("duration_ms", json!(4132)),
            ("billable_ms", json!(2504)),
            ("pdd_ms", json!(124)),
            ("disposition", json!("answered")),
            ("final_status", json!(200)),
            ("ended_by", json!("bye")),
            ("timeout_reason", json!(null)),
            ("hangup_side", json!("callee")),
            ("reason_cause", json!(16)),
            ("caller", json!("+15551230001")),
            ("caller_domain", json!("pbx.example.com")),
            ("caller_name", json!("Alice Example")),
            ("callee", json!("15559870002")),
            ("callee_domain", json!("carrier.example.net")),
            ("asserted_identity", json!("+15551230000")),
            ("src_ip", json!("127.0.0.1")),
            ("src_port", json!(15060)),
            ("dst_ip", json!("127.0.0.2")),
            ("dst_port", json!(5060)),
            ("transport", json!("udp")),
            ("user_agent", json!("ExamplePBX/4.2.1")),
            ("server", json!("CarrierSBC/7.3")),
            ("codecs", json!("PCMU,telephone-event")),
            ("source", json!(path)),
        ],
    );
}

/// Case (c): 486 after ringing, with Reason Q.850 cause 17 on the 486; codecs fall back to
/// the offer since no answer carried SDP.
#[test]
fn busy_here_after_ringing_gives_a_busy_record_rejected_by_the_callee() {
    let path = sipp_capture("busy.pcap");
    let db = ingest(&[&path]);
    assert_call(
        &only_call(&db),
        &[
            ("call_id", json!("busy-1@pbx.example.com")),
            ("started_at", json!("2026-11-29T16:26:59.228963Z")),
            ("ringing_at", json!("2026-11-29T16:26:59.352381Z")),
            ("answered_at", json!(null)),
            ("ended_at", json!("2026-11-29T16:27:00.356249Z")),
            ("duration_ms", json!(1127)),
            ("billable_ms", json!(0)),
            ("pdd_ms", json!(123)),
            ("disposition", json!("busy")),
            ("final_status", json!(486)),
            ("ended_by", json!("rejected")),
            ("timeout_reason", json!(null)),
            ("hangup_side", json!("callee")),
            ("reason_cause", json!(17)),
            ("caller", json!("+15551230001")),
            ("caller_domain", json!("pbx.example.com")),
            ("caller_name", json!("Alice Example")),
            ("callee", json!("15559870002")),
            ("callee_domain", json!("carrier.example.net")),
            ("asserted_identity", json!("+15551230000")),
            ("src_ip", json!("127.0.0.1")),
            ("src_port", json!(15060)),
            ("dst_ip", json!("127.0.0.2")),
            ("dst_port", json!(5060)),
            ("transport", json!("udp")),
            ("user_agent", json!("ExamplePBX/4.2.1")),
            ("server", json!("CarrierSBC/7.3")),
            ("codecs", json!("PCMU,PCMA,telephone-event")),
            ("source", json!(path)),
        ],
    );
}

/// Case (d): CANCEL while ringing (Reason cause 16 on the CANCEL), 200 to the CANCEL, 487:
/// ended at the 487, not at the CANCEL.
#[test]
fn cancel_while_ringing_gives_no_answer_ended_at_the_487_by_the_caller() {
    let path = sipp_capture("cancelled.pcap");
    let db = ingest(&[&path]);
    assert_call(
        &only_call(&db),
        &[
            ("call_id", json!("cancelled-1@pbx.example.com")),
            ("started_at", json!("2026-11-29T16:27:01.093079Z")),
            ("ringing_at", json!("2026-11-29T16:27:01.220582Z")),
            ("answered_at", json!(null)),
            ("ended_at", json!("2026-11-29T16:27:02.725773Z")),
            ("duration_ms", json!(1632)),
            ("billable_ms", json!(0)),
            ("pdd_ms", json!(127)),
            ("disposition", json!("no_answer")),
            ("final_status", json!(487)),
            ("ended_by", json!("cancel")),
            ("timeout_reason", json!(null)),
            ("hangup_side", json!("caller")),
            ("reason_cause", json!(16)),
            ("caller", json!("+15551230001")),
            ("caller_domain", json!("pbx.example.com")),
            ("caller_name", json!("Alice Example")),
            ("callee", json!("15559870002")),
            ("callee_domain", json!("carrier.example.net")),
            ("asserted_identity", json!("+15551230000")),
            ("src_ip", json!("127.0.0.1")),
            ("src_port", json!(15060)),
            ("dst_ip", json!("127.0.0.2")),
            ("dst_port", json!(5060)),
            ("transport", json!("udp")),
            ("user_agent", json!("ExamplePBX/4.2.1")),
            ("server", json!("CarrierSBC/7.3")),
            ("codecs", json!("PCMU,PCMA,telephone-event")),
            ("source", json!(path)),
        ],
    );
}

/// Case (e): 404 with no ringing: the post-dial delay runs to the 404 itself.
#[test]
fn not_found_without_ringing_gives_a_failed_record_with_pdd_to_the_404() {
    let path = sipp_capture("not_found.pcap");
    let db = ingest(&[&path]);
    assert_call(
        &only_call(&db),
        &[
            ("call_id", json!("not-found-1@pbx.example.com")),
            ("started_at", json!("2026-11-29T16:27:03.460548Z")),
            ("ringing_at", json!(null)),
            ("answered_at", json!(null)),
            ("ended_at", json!("2026-11-29T16:27:03.712884Z")),
            ("duration_ms", json!(252)),
            ("billable_ms", json!(0)),
            ("pdd_ms", json!(252)),
            ("disposition", json!("failed")),
            ("final_status", json!(404)),
            ("ended_by", json!("rejected")),
            ("timeout_reason", json!(null)),
            ("hangup_side", json!("callee")),
            ("reason_cause", json!(1)),
            ("caller", json!("+15551230001")),
            ("caller_domain", json!("pbx.example.com")),
            ("caller_name", json!("Alice Example")),
            ("callee", json!("15559879999")),
            ("callee_domain", json!("carrier.example.net")),
            ("asserted_identity", json!("+15551230000")),
            ("src_ip", json!("127.0.0.1")),
            ("src_port", json!(15060)),
            ("dst_ip", json!("127.0.0.2")),
            ("dst_port", json!(5060)),
            ("transport", json!("udp")),
            ("user_agent", json!("ExamplePBX/4.2.1")),
            ("server", json!("CarrierSBC/7.3")),
            ("codecs", json!("PCMU,PCMA,telephone-event")),
            ("source", json!(path)),
        ],
    );
}

/// Case (f): 407 challenge, ACK, INVITE again with credentials (same Call-ID and From-tag,
/// CSeq 2): ONE answered call, started at the challenged INVITE; the 407 is not the PDD end.
#[test]
fn auth_challenge_and_retry_are_one_answered_call_from_the_first_invite() {
    let path = sipp_capture("auth_challenge.pcap");
    let db = ingest(&[&path]);
    assert_call(
        &only_call(&db),
        &[
            ("call_id", json!("auth-challenge-1@pbx.example.com")),
            ("started_at", json!("2026-11-29T16:27:04.520231Z")),
            ("ringing_at", json!("2026-11-29T16:27:04.673027Z")),
            ("answered_at", json!("2026-11-29T16:27:06.176581Z")),
            ("ended_at", json!("2026-11-29T16:27:08.180124Z")),
            ("duration_ms", json!(3659)),
            ("billable_ms", json!(2003)),
            ("pdd_ms", json!(152)),
            ("disposition", json!("answered")),
            ("final_status", json!(200)),
            ("ended_by", json!("bye")),
            ("timeout_reason", json!(null)),
            ("hangup_side", json!("caller")),
            ("reason_cause", json!(16)),
            ("caller", json!("+15551230001")),
            ("caller_domain", json!("pbx.example.com")),
            ("caller_name", json!("Alice Example")),
            ("callee", json!("15559870002")),
            ("callee_domain", json!("carrier.example.net")),
            ("asserted_identity", json!("+15551230000")),
            ("src_ip", json!("127.0.0.1")),
            ("src_port", json!(15060)),
            ("dst_ip", json!("127.0.0.2")),
            ("dst_port", json!(5060)),
            ("transport", json!("udp")),
            ("user_agent", json!("ExamplePBX/4.2.1")),
            ("server", json!("CarrierSBC/7.3")),
            ("codecs", json!("PCMU,telephone-event")),
            ("source", json!(path)),
        ],
    );
}

/// Case (g): a re-INVITE to PCMA during the call: its 200 is not the answer, and the
/// codec list gains PCMA after the first answer's codecs.
#[test]
fn reinvite_keeps_the_first_answer_and_adds_its_codecs() {
    let path = sipp_capture("reinvite.pcap");
    let db = ingest(&[&path]);
    assert_call(
        &only_call(&db),
        &[
            ("call_id", json!("reinvite-1@pbx.example.com")),
            ("started_at", json!("2026-11-29T16:27:08.748661Z")),
            ("ringing_at", json!("2026-11-29T16:27:08.872904Z")),
            ("answered_at", json!("2026-11-29T16:27:10.376905Z")),
            ("ended_at", json!("2026-11-29T16:27:12.884639Z")),
            ("duration_ms", json!(4135)),
            ("billable_ms", json!(2507)),
            ("pdd_ms", json!(124)),
            ("disposition", json!("answered")),
            ("final_status", json!(200)),
            ("ended_by", json!("bye")),
            ("timeout_reason", json!(null)),
            ("hangup_side", json!("caller")),
            ("reason_cause", json!(16)),
            ("caller", json!("+15551230001")),
            ("caller_domain", json!("pbx.example.com")),
            ("caller_name", json!("Alice Example")),
            ("callee", json!("15559870002")),
            ("callee_domain", json!("carrier.example.net")),
            ("asserted_identity", json!("+15551230000")),
            ("src_ip", json!("127.0.0.1")),
            ("src_port", json!(15060)),
            ("dst_ip", json!("127.0.0.2")),
            ("dst_port", json!(5060)),
            ("transport", json!("udp")),
            ("user_agent", json!("ExamplePBX/4.2.1")),
            ("server", json!("CarrierSBC/7.3")),
            ("codecs", json!("PCMU,telephone-event,PCMA")),
            ("source", json!(path)),
        ],
    );
}

/// Case (a) over IPv6 loopback.
#[test]
fn ipv6_capture_gives_the_answered_call_with_ipv6_addresses() {
    let path = sipp_capture("answered_caller_bye_ipv6.pcap");
    let db = ingest(&[&path]);
    assert_call(
        &only_call(&db),
        &[
            ("call_id", json!("answered-caller-bye-1@pbx.example.com")),
            ("started_at", json!("2026-11-29T16:26:43.304139Z")),
            ("ringing_at", json!("2026-11-29T16:26:43.428376Z")),
            ("answered_at", json!("2026-11-29T16:26:44.932021Z")),
            ("ended_at", json!("2026-11-29T16:26:47.436479Z")),
            ("duration_ms", json!(4132)),
            ("billable_ms", json!(2504)),
            ("pdd_ms", json!(124)),
            ("disposition", json!("answered")),
            ("final_status", json!(200)),
            ("ended_by", json!("bye")),
            ("timeout_reason", json!(null)),
            ("hangup_side", json!("caller")),
            ("reason_cause", json!(16)),
            ("caller", json!("+15551230001")),
            ("caller_domain", json!("pbx.example.com")),
            ("caller_name", json!("Alice Example")),
            ("callee", json!("15559870002")),
            ("callee_domain", json!("carrier.example.net")),
            ("asserted_identity", json!("+15551230000")),
            ("src_ip", json!("::1")),
            ("src_port", json!(15060)),
            ("dst_ip", json!("::1")),
            ("dst_port", json!(5060)),
            ("transport", json!("udp")),
            ("user_agent", json!("ExamplePBX/4.2.1")),
            ("server", json!("CarrierSBC/7.3")),
            ("codecs", json!("PCMU,telephone-event")),
            ("source", json!(path)),
        ],
    );
}

/// Case (a) captured with `tcpdump -i any`: Linux cooked v2 (SLL2) link type.
#[test]
fn linux_cooked_v2_capture_gives_the_answered_call() {
    let path = sipp_capture("answered_caller_bye_sll2.pcap");
    let db = ingest(&[&path]);
    assert_call(
        &only_call(&db),
        &[
            ("call_id", json!("answered-caller-bye-1@pbx.example.com")),
            ("started_at", json!("2026-11-29T16:26:48.044750Z")),
            ("ringing_at", json!("2026-11-29T16:26:48.168700Z")),
            ("answered_at", json!("2026-11-29T16:26:49.672258Z")),
            ("ended_at", json!("2026-11-29T16:26:52.175969Z")),
            ("duration_ms", json!(4131)),
            ("billable_ms", json!(2503)),
            ("pdd_ms", json!(123)),
            ("disposition", json!("answered")),
            ("final_status", json!(200)),
            ("ended_by", json!("bye")),
            ("timeout_reason", json!(null)),
            ("hangup_side", json!("caller")),
            ("reason_cause", json!(16)),
            ("caller", json!("+15551230001")),
            ("caller_domain", json!("pbx.example.com")),
            ("caller_name", json!("Alice Example")),
            ("callee", json!("15559870002")),
            ("callee_domain", json!("carrier.example.net")),
            ("asserted_identity", json!("+15551230000")),
            ("src_ip", json!("127.0.0.1")),
            ("src_port", json!(15060)),
            ("dst_ip", json!("127.0.0.2")),
            ("dst_port", json!(5060)),
            ("transport", json!("udp")),
            ("user_agent", json!("ExamplePBX/4.2.1")),
            ("server", json!("CarrierSBC/7.3")),
            ("codecs", json!("PCMU,telephone-event")),
            ("source", json!(path)),
        ],
    );
}

/// The same call recorded over IPv6 and with the SLL2 link type gives the same record as over
/// IPv4 on Ethernet-framed loopback, but for the addresses, the times (each recording has its
/// own) and the source.
#[test]
fn ipv6_and_sll2_captures_match_the_ipv4_record_but_for_addresses_and_times() {
    let strip = |name: &str| -> Value {
        let path = sipp_capture(name);
        let mut record = only_call(&ingest(&[&path]));
        let object = record.as_object_mut().expect("a JSON object");
        for varying in [
            "started_at",
            "ringing_at",
            "answered_at",
            "ended_at",
            "duration_ms",
            "billable_ms",
            "pdd_ms",
            "src_ip",
            "src_port",
            "dst_ip",
            "dst_port",
            "source",
        ] {
            object.remove(varying);
        }
        record
    };
    let ipv4 = strip("answered_caller_bye.pcap");
    assert_eq!(strip("answered_caller_bye_ipv6.pcap"), ipv4, "IPv6");
    assert_eq!(strip("answered_caller_bye_sll2.pcap"), ipv4, "SLL2");
}

/// Case (h): two MESSAGE transactions, one answered 200 and one 404: one record each, with
/// the body's size but never its text.
#[test]
fn messages_answered_200_and_404_give_one_record_each() {
    let path = sipp_capture("messages.pcap");
    let db = ingest(&[&path]);
    let messages = db.messages();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert_message(
        by_call_id(&messages, "message-delivered-1@pbx.example.com"),
        &[
            ("call_id", json!("message-delivered-1@pbx.example.com")),
            ("cseq", json!(1)),
            ("sent_at", json!("2026-11-29T16:27:26.608396Z")),
            ("answered_at", json!("2026-11-29T16:27:26.760434Z")),
            ("final_status", json!(200)),
            ("sender", json!("+15551230001")),
            ("sender_domain", json!("pbx.example.com")),
            ("recipient", json!("15559870002")),
            ("recipient_domain", json!("carrier.example.net")),
            ("content_type", json!("text/plain")),
            ("size_bytes", json!(44)),
            ("src_ip", json!("127.0.0.1")),
            ("src_port", json!(15060)),
            ("dst_ip", json!("127.0.0.2")),
            ("dst_port", json!(5060)),
            ("transport", json!("udp")),
            ("source", json!(path)),
        ],
    );
    assert_message(
        by_call_id(&messages, "message-unknown-user-1@pbx.example.com"),
        &[
            ("call_id", json!("message-unknown-user-1@pbx.example.com")),
            ("cseq", json!(1)),
            ("sent_at", json!("2026-11-29T16:27:27.144818Z")),
            ("answered_at", json!("2026-11-29T16:27:27.296406Z")),
            ("final_status", json!(404)),
            ("sender", json!("+15551230001")),
            ("sender_domain", json!("pbx.example.com")),
            ("recipient", json!("15559879999")),
            ("recipient_domain", json!("carrier.example.net")),
            ("content_type", json!("text/plain")),
            ("size_bytes", json!(16)),
            ("src_ip", json!("127.0.0.1")),
            ("src_port", json!(15060)),
            ("dst_ip", json!("127.0.0.2")),
            ("dst_port", json!(5060)),
            ("transport", json!("udp")),
            ("source", json!(path)),
        ],
    );
}

/// A MESSAGE is billed as a message, never as a call.
#[test]
fn messages_give_no_call_records() {
    let db = ingest(&[&sipp_capture("messages.pcap")]);
    // Guard against passing vacuously (nothing read at all).
    assert_eq!(
        db.messages().len(),
        2,
        "the capture's messages were not read"
    );
    assert_eq!(db.calls(), Vec::<Value>::new());
}

/// Ingesting a file a second time (a re-run after a crash, an operator mistake) must not
/// duplicate anything: records are keyed by (Call-ID, From-tag, started_at).
#[test]
fn ingesting_the_same_capture_twice_keeps_one_record_per_call_and_message() {
    let path = sample_capture();
    let db = ingest(&[&path]);
    db.ingest(&[&path]);
    assert_eq!(db.calls().len(), 4, "{:#?}", db.calls());
    assert_eq!(db.messages().len(), 1, "{:#?}", db.messages());
}

/// The Quick-start sample: four overlapping calls (answered, busy, cancelled, not found) and
/// one MESSAGE, interleaved in one capture, each ending the way it did on the wire.
#[test]
fn quick_start_sample_gives_four_calls_and_one_message() {
    let db = ingest(&[&sample_capture()]);
    let calls = db.calls();
    assert_eq!(calls.len(), 4, "{calls:#?}");
    for (call_id, disposition, final_status, ended_by, caller, callee) in [
        (
            "sample-answered-1@pbx.example.com",
            "answered",
            200,
            "bye",
            "+15551230001",
            "15559870002",
        ),
        (
            "sample-busy-1@pbx.example.com",
            "busy",
            486,
            "rejected",
            "+15551230003",
            "15559870004",
        ),
        (
            "sample-cancelled-1@pbx.example.com",
            "no_answer",
            487,
            "cancel",
            "+15551230005",
            "15559870006",
        ),
        (
            "sample-not-found-1@pbx.example.com",
            "failed",
            404,
            "rejected",
            "+15551230007",
            "15559879999",
        ),
    ] {
        let call = by_call_id(&calls, call_id);
        assert_eq!(call["disposition"], disposition, "{call_id} disposition");
        assert_eq!(call["final_status"], final_status, "{call_id} final_status");
        assert_eq!(call["ended_by"], ended_by, "{call_id} ended_by");
        assert_eq!(call["caller"], caller, "{call_id} caller");
        assert_eq!(call["callee"], callee, "{call_id} callee");
    }
    let messages = db.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0]["call_id"], "sample-message-1@pbx.example.com");
    assert_eq!(messages[0]["final_status"], 200);
}
