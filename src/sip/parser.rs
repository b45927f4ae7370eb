//! The scanner: one SIP message at the start of a buffer, located with `memchr`.
//!
//! What it does: finds the start line, walks the header lines once (folding, bare LF and
//! compact names included), keeps only the headers a call record needs, and cuts the body
//! by `Content-Length`. Every field of the result borrows the input.
//!
//! What it must never do: allocate (tests/sip_alloc.rs counts), panic or index out of
//! bounds on any input (every length and number read from the wire is checked), or put a
//! byte of the message into an error (errors carry a kind and a byte offset only, so a log
//! line or counter can never leak content).

use memchr::{memchr, memchr2, memchr3};

use super::message::{CSeq, Method, NameAddr, SipMessage, StartLine, Uri, Via};

/// Largest `Content-Length` accepted. A UDP datagram holds at most 65,507 bytes and no SIP
/// body comes near a mebibyte; a larger value is an attack or garbage, and a stream
/// reassembler must not wait for it.
pub const MAX_CONTENT_LENGTH: usize = 1 << 20;

/// Largest header section (start line through the blank line) accepted. Bounds the work
/// per message and tells a stream reassembler when to stop waiting for the blank line.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Why a payload was not accepted as a SIP message. `kind()` names the counter.
///
/// Every variant carries `at`, the byte offset in the input where the problem was seen.
/// Messages print the kind and that offset only, never message bytes (privacy: nothing of
/// a message's content may reach a log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but CR/LF (RFC 5626 §4.4.1 keep-alives) or an empty buffer.
    #[error("empty: no message before byte {at}")]
    Empty { at: usize },
    /// The first line is neither a request line nor a status line.
    #[error("not_sip at byte {at}")]
    NotSip { at: usize },
    /// The first line starts like SIP but its shape is wrong (RFC 3261 §7.1, §7.2).
    #[error("bad_start_line at byte {at}")]
    BadStartLine { at: usize },
    /// Status code not three digits in 100..=699 (RFC 3261 §7.2, §21).
    #[error("bad_status_code at byte {at}")]
    BadStatusCode { at: usize },
    /// The Request-URI could not be read.
    #[error("bad_uri at byte {at}")]
    BadUri { at: usize },
    /// A header line without a colon, or a continuation line with nothing to continue.
    #[error("bad_header at byte {at}")]
    BadHeader { at: usize },
    /// The buffer ends before the blank line closing the headers (incomplete message).
    #[error("no_header_end at byte {at}")]
    NoHeaderEnd { at: usize },
    /// No blank line within [`MAX_HEADER_BYTES`].
    #[error("headers_too_long at byte {at}")]
    HeadersTooLong { at: usize },
    #[error("missing_call_id at byte {at}")]
    MissingCallId { at: usize },
    #[error("missing_cseq at byte {at}")]
    MissingCSeq { at: usize },
    /// CSeq not `number SP method`, or the number above 2^31 - 1 (RFC 3261 §8.1.1.5).
    #[error("bad_cseq at byte {at}")]
    BadCSeq { at: usize },
    #[error("missing_from at byte {at}")]
    MissingFrom { at: usize },
    #[error("bad_from at byte {at}")]
    BadFrom { at: usize },
    #[error("missing_to at byte {at}")]
    MissingTo { at: usize },
    #[error("bad_to at byte {at}")]
    BadTo { at: usize },
    /// Content-Length not a decimal number (RFC 3261 §20.14).
    #[error("bad_content_length at byte {at}")]
    BadContentLength { at: usize },
    /// Content-Length above [`MAX_CONTENT_LENGTH`].
    #[error("content_length_too_large at byte {at}")]
    ContentLengthTooLarge { at: usize },
    /// Two Content-Length headers that disagree: the message cannot be framed safely.
    #[error("conflicting_content_length at byte {at}")]
    ConflictingContentLength { at: usize },
}

impl ParseError {
    /// A short stable name for counters and summaries (`not_sip`, `missing_call_id`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::Empty { .. } => "empty",
            ParseError::NotSip { .. } => "not_sip",
            ParseError::BadStartLine { .. } => "bad_start_line",
            ParseError::BadStatusCode { .. } => "bad_status_code",
            ParseError::BadUri { .. } => "bad_uri",
            ParseError::BadHeader { .. } => "bad_header",
            ParseError::NoHeaderEnd { .. } => "no_header_end",
            ParseError::HeadersTooLong { .. } => "headers_too_long",
            ParseError::MissingCallId { .. } => "missing_call_id",
            ParseError::MissingCSeq { .. } => "missing_cseq",
            ParseError::BadCSeq { .. } => "bad_cseq",
            ParseError::MissingFrom { .. } => "missing_from",
            ParseError::BadFrom { .. } => "bad_from",
            ParseError::MissingTo { .. } => "missing_to",
            ParseError::BadTo { .. } => "bad_to",
            ParseError::BadContentLength { .. } => "bad_content_length",
            ParseError::ContentLengthTooLarge { .. } => "content_length_too_large",
            ParseError::ConflictingContentLength { .. } => "conflicting_content_length",
        }
    }

    /// The byte offset in the input where the problem was seen.
    pub fn at(&self) -> usize {
        match *self {
            ParseError::Empty { at }
            | ParseError::NotSip { at }
            | ParseError::BadStartLine { at }
            | ParseError::BadStatusCode { at }
            | ParseError::BadUri { at }
            | ParseError::BadHeader { at }
            | ParseError::NoHeaderEnd { at }
            | ParseError::HeadersTooLong { at }
            | ParseError::MissingCallId { at }
            | ParseError::MissingCSeq { at }
            | ParseError::BadCSeq { at }
            | ParseError::MissingFrom { at }
            | ParseError::BadFrom { at }
            | ParseError::MissingTo { at }
            | ParseError::BadTo { at }
            | ParseError::BadContentLength { at }
            | ParseError::ContentLengthTooLarge { at }
            | ParseError::ConflictingContentLength { at } => at,
        }
    }
}

const SIP_VERSION: &[u8] = b"SIP/2.0";

/// Longest method accepted by [`looks_like_sip`]; the longest registered one is
/// `SUBSCRIBE` (9), extension methods are short words too.
const MAX_METHOD_LEN: usize = 20;

/// Cheap test on the first bytes: does this payload start like a SIP request or status line?
///
/// Accepts `SIP/2.0 ` (a status line), or an upper-case method token, one space, and a
/// first line ending in ` SIP/2.0`. Leading CR/LF (keep-alives) are skipped. RTP, whose
/// first byte is 0x80..=0xBF, fails on the first byte. Needs the whole first line.
pub fn looks_like_sip(payload: &[u8]) -> bool {
    let p = skip_crlf(payload);
    let Some(&first) = p.first() else {
        return false;
    };
    if first == b'S' && p.starts_with(b"SIP/2.0 ") {
        return true;
    }
    if !first.is_ascii_uppercase() {
        return false;
    }
    let head = &p[..p.len().min(MAX_METHOD_LEN + 1)];
    let Some(sp) = memchr(b' ', head) else {
        return false;
    };
    if !head[..sp]
        .iter()
        .all(|&b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
    {
        return false;
    }
    let Some(nl) = memchr(b'\n', p) else {
        return false;
    };
    let line = strip_cr(&p[..nl]);
    line.len() > sp + SIP_VERSION.len() && line.ends_with(b" SIP/2.0")
}

/// Parses one SIP message at the start of `buf`.
///
/// Leading CR/LF are skipped. `len` of the result counts from the start of `buf`, so
/// `&buf[msg.len..]` is where a following message starts. Without `Content-Length` the
/// body is the rest of the buffer (RFC 3261 §18.3, the datagram rule); with a
/// `Content-Length` larger than what is there, the body is what is there and
/// `body_truncated` is set. The headers must be complete (closed by a blank line).
pub fn parse(buf: &[u8]) -> Result<SipMessage<'_>, ParseError> {
    let start = buf.len() - skip_crlf(buf).len();
    if start == buf.len() {
        return Err(ParseError::Empty { at: start });
    }

    // The header section, start line included, must end within MAX_HEADER_BYTES.
    let limit = buf.len().min(start.saturating_add(MAX_HEADER_BYTES));
    let window = &buf[..limit];
    let incomplete = |at: usize| {
        if limit < buf.len() {
            ParseError::HeadersTooLong { at }
        } else {
            ParseError::NoHeaderEnd { at }
        }
    };

    let Some(nl) = memchr(b'\n', &window[start..]) else {
        // A payload that is not SIP at all says so, even when it has no line end.
        return Err(match start_line_kind(&window[start..]) {
            Some(_) => incomplete(limit),
            None => ParseError::NotSip { at: start },
        });
    };
    let line = strip_cr(&window[start..start + nl]);
    let start_line = parse_start_line(line, start)?;

    let mut h = Headers::default();
    let mut pos = start + nl + 1;
    // The header being read: (offset of its line, name, value start, value end).
    let mut current: Option<(usize, usize, usize, usize)> = None;
    let body_start = loop {
        let Some(nl) = memchr(b'\n', &window[pos..]) else {
            return Err(incomplete(limit));
        };
        let line_end = pos + nl;
        let content_end = if line_end > pos && window[line_end - 1] == b'\r' {
            line_end - 1
        } else {
            line_end
        };
        if content_end == pos {
            if let Some(cur) = current.take() {
                h.take(window, cur)?;
            }
            break line_end + 1;
        }
        if window[pos] == b' ' || window[pos] == b'\t' {
            // RFC 3261 §7.3.1: a line starting with whitespace continues the previous value.
            match current.as_mut() {
                Some(cur) => cur.3 = content_end,
                None => return Err(ParseError::BadHeader { at: pos }),
            }
        } else {
            if let Some(cur) = current.take() {
                h.take(window, cur)?;
            }
            let Some(colon) = memchr(b':', &window[pos..content_end]) else {
                return Err(ParseError::BadHeader { at: pos });
            };
            current = Some((pos, pos + colon, pos + colon + 1, content_end));
        }
        pos = line_end + 1;
    };

    let end_of_headers = body_start;
    let call_id = h
        .call_id
        .ok_or(ParseError::MissingCallId { at: end_of_headers })?;
    let cseq = h
        .cseq
        .ok_or(ParseError::MissingCSeq { at: end_of_headers })?;
    let from = h
        .from
        .ok_or(ParseError::MissingFrom { at: end_of_headers })?;
    let to = h.to.ok_or(ParseError::MissingTo { at: end_of_headers })?;

    let rest = &buf[body_start..];
    let (body, body_truncated) = match h.content_length {
        Some(n) if n <= rest.len() => (&rest[..n], false),
        Some(_) => (rest, true),
        None => (rest, false),
    };

    Ok(SipMessage {
        start: start_line,
        call_id,
        cseq,
        from,
        to,
        via: h.via,
        contact: h.contact,
        user_agent: h.user_agent,
        server: h.server,
        asserted_identity: h.asserted_identity,
        reason_cause: h.reason_cause,
        session_expires: h.session_expires,
        content_type: h.content_type,
        content_length: h.content_length,
        body,
        body_truncated,
        len: body_start + body.len(),
    })
}

/// The headers found so far. The first occurrence of each wins (RFC 3261 §7.3.1 allows
/// repeating only list headers, and for those the first value is the one we want).
#[derive(Default)]
struct Headers<'a> {
    call_id: Option<&'a [u8]>,
    cseq: Option<CSeq<'a>>,
    from: Option<NameAddr<'a>>,
    to: Option<NameAddr<'a>>,
    via_seen: bool,
    via: Option<Via<'a>>,
    contact: Option<&'a [u8]>,
    user_agent: Option<&'a [u8]>,
    server: Option<&'a [u8]>,
    pai_seen: bool,
    asserted_identity: Option<Uri<'a>>,
    reason_cause: Option<u16>,
    session_expires: Option<u32>,
    content_type: Option<&'a [u8]>,
    content_length: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Name {
    CallId,
    CSeq,
    From,
    To,
    Via,
    Contact,
    UserAgent,
    Server,
    AssertedIdentity,
    Reason,
    SessionExpires,
    ContentType,
    ContentLength,
    Other,
}

/// RFC 3261 §7.3.1: header names are case-insensitive; §7.3.3 and §20 give the compact
/// forms (`x` for Session-Expires is RFC 4028 §4). Compact forms of headers we do not
/// need (k, s, e, o, u, ...) fall into `Other`.
fn header_name(name: &[u8]) -> Name {
    if name.len() == 1 {
        return match name[0].to_ascii_lowercase() {
            b'i' => Name::CallId,
            b'f' => Name::From,
            b't' => Name::To,
            b'v' => Name::Via,
            b'm' => Name::Contact,
            b'l' => Name::ContentLength,
            b'c' => Name::ContentType,
            b'x' => Name::SessionExpires,
            _ => Name::Other,
        };
    }
    const NAMES: [(&[u8], Name); 13] = [
        (b"call-id", Name::CallId),
        (b"cseq", Name::CSeq),
        (b"from", Name::From),
        (b"to", Name::To),
        (b"via", Name::Via),
        (b"contact", Name::Contact),
        (b"user-agent", Name::UserAgent),
        (b"server", Name::Server),
        (b"p-asserted-identity", Name::AssertedIdentity),
        (b"reason", Name::Reason),
        (b"session-expires", Name::SessionExpires),
        (b"content-type", Name::ContentType),
        (b"content-length", Name::ContentLength),
    ];
    for (known, id) in NAMES {
        if known.len() == name.len() && known.eq_ignore_ascii_case(name) {
            return id;
        }
    }
    Name::Other
}

impl<'a> Headers<'a> {
    /// Takes in one complete header (its continuation lines included).
    fn take(
        &mut self,
        buf: &'a [u8],
        (line, name_end, value_start, value_end): (usize, usize, usize, usize),
    ) -> Result<(), ParseError> {
        // RFC 3261 §7.3.1: whitespace is allowed on either side of the colon.
        let name = trim_lws(&buf[line..name_end]);
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(ParseError::BadHeader { at: line });
        }
        let value = trim_lws(&buf[value_start..value_end]);
        match header_name(name) {
            Name::CallId => {
                if self.call_id.is_none() && !value.is_empty() {
                    self.call_id = Some(value);
                }
            }
            Name::CSeq => {
                if self.cseq.is_none() {
                    self.cseq = Some(parse_cseq(value).ok_or(ParseError::BadCSeq { at: line })?);
                }
            }
            Name::From => {
                if self.from.is_none() {
                    self.from =
                        Some(parse_name_addr(value).ok_or(ParseError::BadFrom { at: line })?);
                }
            }
            Name::To => {
                if self.to.is_none() {
                    self.to = Some(parse_name_addr(value).ok_or(ParseError::BadTo { at: line })?);
                }
            }
            Name::Via => {
                // Only the topmost Via matters (RFC 3261 §18.2.1: it names the sender and
                // the transaction); a malformed one is dropped, Via is not required here.
                if !self.via_seen {
                    self.via_seen = true;
                    self.via = parse_via(value);
                }
            }
            Name::Contact => {
                if self.contact.is_none() && !value.is_empty() {
                    self.contact = Some(value);
                }
            }
            Name::UserAgent => {
                if self.user_agent.is_none() && !value.is_empty() {
                    self.user_agent = Some(value);
                }
            }
            Name::Server => {
                if self.server.is_none() && !value.is_empty() {
                    self.server = Some(value);
                }
            }
            Name::AssertedIdentity => {
                // RFC 3325 §9.1: one or more name-addr / addr-spec values; the first counts.
                if !self.pai_seen {
                    self.pai_seen = true;
                    self.asserted_identity = parse_name_addr(value).map(|na| na.uri);
                }
            }
            Name::Reason => {
                if self.reason_cause.is_none() {
                    self.reason_cause = q850_cause(value);
                }
            }
            Name::SessionExpires => {
                if self.session_expires.is_none() {
                    // RFC 4028 §4: delta-seconds *(SEMI se-params).
                    let (delta, _) = split_at_byte(value, b';');
                    self.session_expires =
                        parse_decimal(trim_lws(delta)).and_then(|n| u32::try_from(n).ok());
                }
            }
            Name::ContentType => {
                if self.content_type.is_none() {
                    let (media, _) = split_at_byte(value, b';');
                    let media = trim_lws(media);
                    if !media.is_empty() {
                        self.content_type = Some(media);
                    }
                }
            }
            Name::ContentLength => {
                let n = parse_decimal(value).ok_or(ParseError::BadContentLength { at: line })?;
                if n > MAX_CONTENT_LENGTH as u64 {
                    return Err(ParseError::ContentLengthTooLarge { at: line });
                }
                // Bounded above, so the cast cannot truncate.
                let n = n as usize;
                match self.content_length {
                    None => self.content_length = Some(n),
                    Some(prev) if prev == n => {}
                    Some(_) => return Err(ParseError::ConflictingContentLength { at: line }),
                }
            }
            Name::Other => {}
        }
        Ok(())
    }
}

/// Which kind of start line `line` is, by its first bytes alone.
fn start_line_kind(line: &[u8]) -> Option<bool> {
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        Some(false)
    } else if line.first().is_some_and(|&b| is_token(b)) {
        Some(true)
    } else {
        None
    }
}

/// RFC 3261 §7.1 (Request-Line = Method SP Request-URI SP SIP-Version) and §7.2
/// (Status-Line = SIP-Version SP Status-Code SP Reason-Phrase). `at` is the line's offset.
fn parse_start_line(line: &[u8], at: usize) -> Result<StartLine<'_>, ParseError> {
    match start_line_kind(line) {
        None => Err(ParseError::NotSip { at }),
        Some(false) => {
            // SIP-Version is case-insensitive (RFC 3261 §7.1).
            if line.len() < 8 || !line[..7].eq_ignore_ascii_case(SIP_VERSION) || line[7] != b' ' {
                return Err(ParseError::BadStartLine { at });
            }
            let rest = &line[8..];
            let code = match rest {
                [a, b, c, tail @ ..]
                    if a.is_ascii_digit()
                        && b.is_ascii_digit()
                        && c.is_ascii_digit()
                        && tail.first().is_none_or(|&t| t == b' ' || t == b'\t') =>
                {
                    u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
                }
                _ => return Err(ParseError::BadStatusCode { at: at + 8 }),
            };
            if !(100..=699).contains(&code) {
                return Err(ParseError::BadStatusCode { at: at + 8 });
            }
            let reason = trim_lws(&rest[3..]);
            Ok(StartLine::Response { code, reason })
        }
        Some(true) => {
            let Some(sp) = memchr2(b' ', b'\t', line) else {
                return Err(ParseError::NotSip { at });
            };
            let method = &line[..sp];
            if !method.iter().all(|&b| is_token(b)) {
                return Err(ParseError::NotSip { at });
            }
            let rest = trim_lws(&line[sp..]);
            let last_sp = memchr::memrchr2(b' ', b'\t', rest);
            let version = &rest[last_sp.map_or(0, |i| i + 1)..];
            // A request line of another protocol (`GET / HTTP/1.1`) is not SIP at all.
            if version.len() < 4 || !version[..4].eq_ignore_ascii_case(b"SIP/") {
                return Err(ParseError::NotSip { at });
            }
            let Some(last_sp) = last_sp else {
                return Err(ParseError::BadStartLine { at });
            };
            if !version.eq_ignore_ascii_case(SIP_VERSION) {
                return Err(ParseError::BadStartLine { at });
            }
            let uri = trim_lws(&rest[..last_sp]);
            if uri.is_empty() {
                return Err(ParseError::BadStartLine { at });
            }
            let uri = parse_uri(uri).ok_or(ParseError::BadUri { at: at + sp + 1 })?;
            Ok(StartLine::Request {
                method: method_from(method),
                uri,
            })
        }
    }
}

/// RFC 3261 §7.1: methods are case-sensitive tokens.
fn method_from(token: &[u8]) -> Method<'_> {
    match token {
        b"INVITE" => Method::Invite,
        b"ACK" => Method::Ack,
        b"BYE" => Method::Bye,
        b"CANCEL" => Method::Cancel,
        b"REGISTER" => Method::Register,
        b"OPTIONS" => Method::Options,
        b"INFO" => Method::Info,
        b"UPDATE" => Method::Update,
        b"PRACK" => Method::Prack,
        b"SUBSCRIBE" => Method::Subscribe,
        b"NOTIFY" => Method::Notify,
        b"REFER" => Method::Refer,
        b"MESSAGE" => Method::Message,
        b"PUBLISH" => Method::Publish,
        other => Method::Other(other),
    }
}

/// RFC 3261 §20.16: `CSeq: 1*DIGIT LWS Method`; the number is below 2^31 (§8.1.1.5).
fn parse_cseq(value: &[u8]) -> Option<CSeq<'_>> {
    let digits_end = value
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(value.len());
    let seq = parse_decimal(&value[..digits_end])?;
    if seq > i32::MAX as u64 {
        return None;
    }
    let method = trim_lws(&value[digits_end..]);
    if digits_end == value.len() || method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return None;
    }
    // Bounded by i32::MAX above.
    Some(CSeq {
        seq: seq as u32,
        method: method_from(method),
    })
}

/// A decimal number of at most 19 digits (so it cannot overflow u64); `None` when empty,
/// not all digits, or longer.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        // Leading zeros beyond 19 digits are not worth supporting.
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

/// RFC 3261 §20.10, §25.1: `name-addr / addr-spec` followed by `;params`. Only the first
/// value of a comma-separated list is read. In the bare addr-spec form, everything after
/// `;` is a header parameter (a URI with parameters must be in `<>`, §20.10).
fn parse_name_addr(value: &[u8]) -> Option<NameAddr<'_>> {
    let value = trim_lws(value);
    let (display, uri, params) = if value.first() == Some(&b'"') {
        let close = quoted_end(value, 0)?;
        let display = &value[1..close - 1];
        let rest = trim_lws(&value[close..]);
        if rest.first() != Some(&b'<') {
            return None;
        }
        let gt = memchr(b'>', rest)?;
        (non_empty(display), &rest[1..gt], &rest[gt + 1..])
    } else {
        match memchr(b'<', value) {
            // An unquoted display name is tokens and whitespace; a `;` or `,` before `<`
            // means the `<` belongs to a later value (or a parameter), not to this one.
            Some(lt) if memchr2(b';', b',', &value[..lt]).is_none() => {
                let gt = lt + 1 + memchr(b'>', &value[lt + 1..])?;
                (
                    non_empty(trim_lws(&value[..lt])),
                    &value[lt + 1..gt],
                    &value[gt + 1..],
                )
            }
            _ => {
                let end = memchr2(b';', b',', value).unwrap_or(value.len());
                (None, &value[..end], &value[end..])
            }
        }
    };
    let uri = parse_uri(trim_lws(uri))?;
    let tag = param(first_value(params), b"tag");
    Some(NameAddr { display, uri, tag })
}

/// Offset just past the closing quote of the quoted-string opening at `open`
/// (RFC 3261 §25.1: `\` escapes the next byte).
fn quoted_end(s: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    while i < s.len() {
        let j = i + memchr2(b'"', b'\\', &s[i..])?;
        if s[j] == b'"' {
            return Some(j + 1);
        }
        i = j + 2;
    }
    None
}

/// The text up to the first `,` that is not inside a quoted string or `<...>`: the first
/// value of a list header (RFC 3261 §7.3.1).
fn first_value(s: &[u8]) -> &[u8] {
    let mut i = 0;
    while let Some(off) = memchr3(b',', b'"', b'<', &s[i..]) {
        let j = i + off;
        match s[j] {
            b',' => return &s[..j],
            b'"' => match quoted_end(s, j) {
                Some(end) => i = end,
                None => return s,
            },
            _ => match memchr(b'>', &s[j..]) {
                Some(gt) => i = j + gt + 1,
                None => return s,
            },
        }
    }
    s
}

/// The value of parameter `name` in `;a=1;b=2` (names case-insensitive, RFC 3261 §7.3.1).
/// Quoted values keep their quotes. A parameter without `=` gives an empty value.
fn param<'a>(params: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut rest = params;
    while let Some(semi) = memchr(b';', rest) {
        rest = &rest[semi + 1..];
        let end = param_end(rest);
        let p = &rest[..end];
        let (n, v) = match memchr(b'=', p) {
            Some(eq) => (trim_lws(&p[..eq]), trim_lws(&p[eq + 1..])),
            None => (trim_lws(p), &p[p.len()..]),
        };
        if n.eq_ignore_ascii_case(name) {
            return Some(v);
        }
        rest = &rest[end..];
    }
    None
}

/// Length of one parameter: up to the next `;` outside a quoted string.
fn param_end(s: &[u8]) -> usize {
    let mut i = 0;
    while let Some(off) = memchr2(b';', b'"', &s[i..]) {
        let j = i + off;
        if s[j] == b';' {
            return j;
        }
        match quoted_end(s, j) {
            Some(end) => i = end,
            None => return s.len(),
        }
    }
    s.len()
}

/// RFC 3261 §19.1.1 (sip/sips), RFC 3966 (tel). Other absolute URIs (`urn:service:sos`)
/// keep their opaque part as `user` and an empty host, so a record still names the target.
fn parse_uri(s: &[u8]) -> Option<Uri<'_>> {
    let colon = memchr(b':', s)?;
    let scheme = &s[..colon];
    // RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
    if !scheme.first().is_some_and(|b| b.is_ascii_alphabetic())
        || !scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
    {
        return None;
    }
    let rest = &s[colon + 1..];
    let is_sip = scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips");
    if !is_sip {
        // tel: the number runs to the first parameter (RFC 3966 §3).
        let end = memchr2(b';', b'?', rest).unwrap_or(rest.len());
        let user = trim_lws(&rest[..end]);
        if user.is_empty() {
            return None;
        }
        return Some(Uri {
            scheme,
            user: Some(user),
            host: &rest[..0],
            port: None,
        });
    }
    // userinfo ends at `@`; the user part may itself hold `;` and `?` (user-unreserved,
    // RFC 3261 §25.1, e.g. `sip:+15551234;npdi@host`), so `@` is searched first.
    let (user, hostport) = match memchr(b'@', rest) {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = &userinfo[..memchr(b':', userinfo).unwrap_or(userinfo.len())];
            (Some(user), &rest[at + 1..])
        }
        None => (None, rest),
    };
    let hp_end = memchr2(b';', b'?', hostport).unwrap_or(hostport.len());
    let hostport = &hostport[..hp_end];
    let (host, port) = split_host_port(hostport)?;
    if host.is_empty() {
        return None;
    }
    Some(Uri {
        scheme,
        user,
        host,
        port,
    })
}

/// `host[:port]`, where host may be an IPv6 reference in brackets (RFC 3261 §25.1).
fn split_host_port(hp: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let (host, after) = if hp.first() == Some(&b'[') {
        let close = memchr(b']', hp)?;
        (&hp[..close + 1], &hp[close + 1..])
    } else {
        let end = memchr(b':', hp).unwrap_or(hp.len());
        (&hp[..end], &hp[end..])
    };
    let port = match after {
        [] => None,
        [b':', digits @ ..] => Some(u16::try_from(parse_decimal(trim_lws(digits))?).ok()?),
        _ => return None,
    };
    Some((host, port))
}

/// RFC 3261 §20.42: `SIP / 2.0 / transport LWS sent-by *( SEMI via-params )`; only the
/// first value of the header is read.
fn parse_via(value: &[u8]) -> Option<Via<'_>> {
    let v = first_value(value);
    let s1 = memchr(b'/', v)?;
    if !trim_lws(&v[..s1]).eq_ignore_ascii_case(b"SIP") {
        return None;
    }
    let s2 = s1 + 1 + memchr(b'/', &v[s1 + 1..])?;
    let rest = trim_lws_start(&v[s2 + 1..]);
    let t_end = rest
        .iter()
        .position(|&b| !is_token(b))
        .unwrap_or(rest.len());
    let transport = &rest[..t_end];
    if transport.is_empty() {
        return None;
    }
    let rest = &rest[t_end..];
    let semi = memchr(b';', rest).unwrap_or(rest.len());
    let sent_by = trim_lws(&rest[..semi]);
    if sent_by.is_empty() {
        return None;
    }
    let branch = param(&rest[semi..], b"branch").filter(|b| !b.is_empty());
    Some(Via {
        transport,
        sent_by,
        branch,
    })
}

/// RFC 3326 §2: `Reason: protocol ;cause=N ;text="..."`, comma-separated values; the
/// first `Q.850` value with a numeric cause counts (it may follow a `SIP;cause=` value).
fn q850_cause(value: &[u8]) -> Option<u16> {
    let mut rest = value;
    loop {
        let v = first_value(rest);
        let proto_end = memchr(b';', v).unwrap_or(v.len());
        if trim_lws(&v[..proto_end]).eq_ignore_ascii_case(b"Q.850") {
            if let Some(cause) = param(&v[proto_end..], b"cause") {
                if let Some(n) = parse_decimal(cause).and_then(|n| u16::try_from(n).ok()) {
                    return Some(n);
                }
            }
        }
        if v.len() >= rest.len() {
            return None;
        }
        rest = &rest[v.len() + 1..];
    }
}

fn split_at_byte(s: &[u8], b: u8) -> (&[u8], &[u8]) {
    match memchr(b, s) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, &s[s.len()..]),
    }
}

fn non_empty(s: &[u8]) -> Option<&[u8]> {
    (!s.is_empty()).then_some(s)
}

fn skip_crlf(buf: &[u8]) -> &[u8] {
    let n = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    &buf[n..]
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Linear whitespace, including the CR/LF left inside folded values (RFC 3261 §25.1 LWS).
fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn trim_lws_start(s: &[u8]) -> &[u8] {
    let n = s.iter().position(|&b| !is_lws(b)).unwrap_or(s.len());
    &s[n..]
}

fn trim_lws(s: &[u8]) -> &[u8] {
    let s = trim_lws_start(s);
    let n = s.iter().rposition(|&b| !is_lws(b)).map_or(0, |i| i + 1);
    &s[..n]
}

/// RFC 3261 §25.1 token characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}
