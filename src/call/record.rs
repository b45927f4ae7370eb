//! The finished records: one per INVITE dialog attempt, one per MESSAGE transaction.
//! Field names and meanings are those of docs/call-model.md; times are microseconds
//! since the Unix epoch, UTC.

use std::net::IpAddr;

use crate::net::Transport;

/// How the call ended, from the final response to the last INVITE of the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Answered,
    Busy,
    NoAnswer,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    Bye,
    Cancel,
    Rejected,
    Timeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TimeoutReason {
    NoResponse,
    RingTimeout,
    SessionExpired,
    MaxDuration,
    CaptureEnd,
    Evicted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Side {
    Caller,
    Callee,
}

macro_rules! names {
    ($ty:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The name used in the store and in exports.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }
            /// The inverse of `as_str`.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

names!(Disposition { Answered => "answered", Busy => "busy", NoAnswer => "no_answer", Failed => "failed" });
names!(EndedBy { Bye => "bye", Cancel => "cancel", Rejected => "rejected", Timeout => "timeout" });
names!(TimeoutReason {
    NoResponse => "no_response",
    RingTimeout => "ring_timeout",
    SessionExpired => "session_expired",
    MaxDuration => "max_duration",
    CaptureEnd => "capture_end",
    Evicted => "evicted",
});
names!(Side { Caller => "caller", Callee => "callee" });

/// One INVITE dialog attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub call_id: String,
    /// From-tag of the initial INVITE: with `call_id` and `started_at`, the record's key.
    pub from_tag: String,
    pub started_at: i64,
    pub ringing_at: Option<i64>,
    pub answered_at: Option<i64>,
    pub ended_at: i64,
    /// Last message seen in the dialog (re-INVITE, UPDATE, INFO, ... included).
    pub last_seen_at: i64,
    pub pdd_ms: Option<i64>,
    pub disposition: Disposition,
    pub final_status: Option<u16>,
    pub ended_by: EndedBy,
    pub timeout_reason: Option<TimeoutReason>,
    pub hangup_side: Option<Side>,
    pub reason_cause: Option<u16>,
    pub caller: String,
    pub caller_domain: String,
    pub caller_name: Option<String>,
    pub callee: String,
    pub callee_domain: String,
    pub asserted_identity: Option<String>,
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dst_ip: IpAddr,
    pub dst_port: u16,
    pub transport: Transport,
    pub user_agent: Option<String>,
    pub server: Option<String>,
    /// Comma-separated codec names (`PCMU,telephone-event`), `None` when no SDP was seen.
    pub codecs: Option<String>,
    pub source: String,
}

impl CallRecord {
    /// `ended_at - started_at`, in whole milliseconds (rounded down).
    pub fn duration_ms(&self) -> i64 {
        (self.ended_at - self.started_at).div_euclid(1000)
    }

    /// `ended_at - answered_at` when answered, else 0, in whole milliseconds.
    pub fn billable_ms(&self) -> i64 {
        self.answered_at
            .map_or(0, |a| (self.ended_at - a).max(0).div_euclid(1000))
    }
}

/// One SIP MESSAGE transaction. The body is never kept: only its type and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub call_id: String,
    pub cseq: u32,
    pub sent_at: i64,
    pub answered_at: Option<i64>,
    pub final_status: Option<u16>,
    pub sender: String,
    pub sender_domain: String,
    pub recipient: String,
    pub recipient_domain: String,
    pub content_type: Option<String>,
    pub size_bytes: u64,
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dst_ip: IpAddr,
    pub dst_port: u16,
    pub transport: Transport,
    pub source: String,
}

/// What the tracker hands on: a finished call or a finished text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Call(Box<CallRecord>),
    Message(Box<MessageRecord>),
}
