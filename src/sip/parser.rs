//! Skeleton: replaced by the real scanner.

use super::message::SipMessage;

/// Why a payload was not accepted as a SIP message. `kind()` names the counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not a SIP start line")]
    NotSip,
}

impl ParseError {
    /// A short stable name for counters and summaries (`not_sip`, `no_call_id`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::NotSip => "not_sip",
        }
    }
}

/// Cheap test on the first bytes: does this payload start like a SIP request or status line?
pub fn looks_like_sip(payload: &[u8]) -> bool {
    payload.starts_with(b"SIP/2.0 ")
}

/// Parses one SIP message at the start of `buf`.
pub fn parse(_buf: &[u8]) -> Result<SipMessage<'_>, ParseError> {
    Err(ParseError::NotSip)
}
