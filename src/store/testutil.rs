//! Records for the store's tests: one with every field set, one with every `Option` None.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::call::{CallRecord, Disposition, EndedBy, MessageRecord, Record, Side, TimeoutReason};
use crate::net::Transport;

/// 2026-11-29T14:43:16.123456Z
pub const T0: i64 = 1_795_963_396_123_456;

/// Every field set (not a consistent call: the point is that a swapped or dropped column
/// shows), with values that need CSV quoting and an IPv6 address.
pub fn full_call() -> CallRecord {
    CallRecord {
        call_id: "a84b4c76e66710@pc33.example.com".into(),
        from_tag: "1928301774".into(),
        started_at: T0,
        ringing_at: Some(T0 + 250_111),
        answered_at: Some(T0 + 4_000_222),
        ended_at: T0 + 65_432_999,
        last_seen_at: T0 + 65_500_000,
        pdd_ms: Some(250),
        disposition: Disposition::Answered,
        final_status: Some(200),
        ended_by: EndedBy::Timeout,
        timeout_reason: Some(TimeoutReason::SessionExpired),
        hangup_side: Some(Side::Callee),
        reason_cause: Some(16),
        caller: "+49 30-1234567".into(),
        caller_domain: "pbx.example.com".into(),
        caller_name: Some("Alice, \"the\" caller".into()),
        callee: "004930987654".into(),
        callee_domain: "carrier.example.net".into(),
        asserted_identity: Some("+4930111222".into()),
        src_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        src_port: 5062,
        dst_ip: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20)),
        dst_port: 15060,
        transport: Transport::Tls,
        user_agent: Some("Yealink SIP-T46S 66.86.0.15".into()),
        server: Some("Asterisk PBX 20.5.0".into()),
        codecs: Some("PCMU,PCMA,telephone-event".into()),
        source: "eth0".into(),
    }
}

/// Every `Option` None (so not a realistic timeout record: `timeout_reason` is None too).
pub fn bare_call() -> CallRecord {
    CallRecord {
        call_id: "bare@host".into(),
        from_tag: "t1".into(),
        started_at: T0 + 1,
        ringing_at: None,
        answered_at: None,
        ended_at: T0 + 32_000_001,
        last_seen_at: T0 + 32_000_001,
        pdd_ms: None,
        disposition: Disposition::Failed,
        final_status: None,
        ended_by: EndedBy::Timeout,
        timeout_reason: None,
        hangup_side: None,
        reason_cause: None,
        caller: "100".into(),
        caller_domain: "10.0.0.1".into(),
        caller_name: None,
        callee: "200".into(),
        callee_domain: "10.0.0.2".into(),
        asserted_identity: None,
        src_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        src_port: 5060,
        dst_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        dst_port: 5060,
        transport: Transport::Udp,
        user_agent: None,
        server: None,
        codecs: None,
        source: "trace.pcap".into(),
    }
}

/// A call with the given key parts and numbers, otherwise `bare_call`.
pub fn call(call_id: &str, started_at: i64, caller: &str, callee: &str) -> CallRecord {
    CallRecord {
        call_id: call_id.into(),
        started_at,
        ended_at: started_at + 1_000_000,
        last_seen_at: started_at + 1_000_000,
        caller: caller.into(),
        callee: callee.into(),
        ..bare_call()
    }
}

pub fn full_message() -> MessageRecord {
    MessageRecord {
        call_id: "msg-1@example.com".into(),
        cseq: 4_000_000_000,
        sent_at: T0 + 7,
        answered_at: Some(T0 + 20_007),
        final_status: Some(202),
        sender: "+1 555-0100".into(),
        sender_domain: "a.example.com".into(),
        recipient: "15550199".into(),
        recipient_domain: "b.example.com".into(),
        content_type: Some("text/plain;charset=UTF-8".into()),
        size_bytes: 160,
        src_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
        src_port: 5061,
        dst_ip: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 4)),
        dst_port: 5080,
        transport: Transport::Wss,
        source: "/var/log/pbx/sip.log".into(),
    }
}

pub fn bare_message() -> MessageRecord {
    MessageRecord {
        call_id: "msg-2@example.com".into(),
        cseq: 1,
        sent_at: T0 + 8,
        answered_at: None,
        final_status: None,
        content_type: None,
        ..full_message()
    }
}

pub fn rec(c: CallRecord) -> Record {
    Record::Call(Box::new(c))
}

pub fn msg(m: MessageRecord) -> Record {
    Record::Message(Box::new(m))
}
