//! The parsed view of one SIP message. Every slice borrows the input buffer; nothing here
//! owns or copies message bytes, so a `SipMessage` must not outlive the buffer it was
//! parsed from (the tracker copies what a record keeps).

/// A SIP method (RFC 3261 §7.1 and extensions). Method names are case-sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method<'a> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Other(&'a [u8]),
}

/// A SIP, SIPS or tel URI, reduced to what a record needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Uri<'a> {
    /// `sip`, `sips`, `tel`, ... as written.
    pub scheme: &'a [u8],
    /// The user part (`alice` of `sip:alice@host`), or the number of a `tel:` URI.
    /// Percent-escapes are left as written.
    pub user: Option<&'a [u8]>,
    /// Host without port; IPv6 references keep their brackets (`[2001:db8::1]`).
    /// Empty for `tel:` URIs.
    pub host: &'a [u8],
    pub port: Option<u16>,
}

/// A `From`, `To` or similar name-addr / addr-spec header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NameAddr<'a> {
    /// Display name without quotes (escapes left as written); `None` when absent or empty.
    pub display: Option<&'a [u8]>,
    pub uri: Uri<'a>,
    /// The `tag` parameter.
    pub tag: Option<&'a [u8]>,
}

/// The `CSeq` header (RFC 3261 §20.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    pub method: Method<'a>,
}

/// The topmost `Via` value (RFC 3261 §20.42).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Via<'a> {
    /// Transport token as written (`UDP`, `TCP`, `TLS`, `WS`, `WSS`, `SCTP`).
    pub transport: &'a [u8],
    /// `host[:port]` as written.
    pub sent_by: &'a [u8],
    pub branch: Option<&'a [u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    Request { method: Method<'a>, uri: Uri<'a> },
    Response { code: u16, reason: &'a [u8] },
}

/// One parsed SIP message. Its `Debug` shows the body's length, never its bytes: a
/// MESSAGE text or SDP must not reach a log through a `{:?}`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SipMessage<'a> {
    pub start: StartLine<'a>,
    pub call_id: &'a [u8],
    pub cseq: CSeq<'a>,
    pub from: NameAddr<'a>,
    pub to: NameAddr<'a>,
    /// The first Via value of the first Via header (several values may share one line).
    pub via: Option<Via<'a>>,
    /// The raw value of the first Contact header.
    pub contact: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub server: Option<&'a [u8]>,
    /// The URI of the first P-Asserted-Identity value.
    pub asserted_identity: Option<Uri<'a>>,
    /// `cause` of the first `Reason: Q.850;cause=N` value.
    pub reason_cause: Option<u16>,
    /// Delta-seconds of Session-Expires (RFC 4028), parameters ignored.
    pub session_expires: Option<u32>,
    /// An `Authorization` or `Proxy-Authorization` header with a value is present
    /// (RFC 3261 §22.2, §22.3). Only the fact is kept, never the credentials.
    pub has_credentials: bool,
    /// The media type, parameters stripped (`application/sdp`).
    pub content_type: Option<&'a [u8]>,
    pub content_length: Option<usize>,
    /// The body: `Content-Length` bytes when the header is present and the input holds
    /// them, else everything after the blank line (truncated bodies are kept as far as
    /// they go; `body_truncated` says so).
    pub body: &'a [u8],
    pub body_truncated: bool,
    /// Bytes of the input this message occupies (start line through body); a stream or a
    /// datagram holding several messages continues at this offset.
    pub len: usize,
}

impl std::fmt::Debug for SipMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipMessage")
            .field("start", &self.start)
            .field("call_id", &self.call_id)
            .field("cseq", &self.cseq)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("via", &self.via)
            .field("content_type", &self.content_type)
            .field("content_length", &self.content_length)
            .field("body", &crate::privacy::Redacted(self.body))
            .field("body_truncated", &self.body_truncated)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<'a> SipMessage<'a> {
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn method(&self) -> Option<Method<'a>> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// Whether the body is an SDP session description.
    pub fn has_sdp(&self) -> bool {
        !self.body.is_empty()
            && self
                .content_type
                .is_some_and(|ct| ct.eq_ignore_ascii_case(b"application/sdp"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_output_shows_the_body_length_not_its_bytes() {
        let m = crate::sip::parse(b"MESSAGE sip:b@h SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nFrom: <sip:a@h>;tag=x\r\nTo: <sip:b@h>\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nsecret words")
            .expect("parsed");
        let shown = format!("{m:?}");
        assert!(
            shown.contains("<12 bytes>") && !shown.contains("secret"),
            "{shown}"
        );
    }
}
