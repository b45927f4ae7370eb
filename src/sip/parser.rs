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

use super::framing::{
    self, content_length_value, decimal as parse_decimal, leading_crlf, trim_lws, trim_lws_start,
    BadLength, MAX_HEADER_BYTES,
};
use super::message::{CSeq, Method, NameAddr, SipMessage, StartLine, Uri, Via};

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
    /// Content-Length above [`framing::MAX_BODY`].
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

/// Cheap test on the first bytes: does this payload start like a SIP request or status line?
///
/// Leading CR/LF (keep-alives) are skipped; then the first line must be a start line as
/// [`framing::is_start_line`] has it (the same test the stream and log framers apply). RTP,
/// whose first byte is 0x80..=0xBF, fails on the first byte. Needs the whole first line.
pub fn looks_like_sip(payload: &[u8]) -> bool {
    framing::starts_with_start_line(skip_crlf(payload))
}

/// Parses one SIP message at the start of `buf`.
///
/// Leading CR/LF are skipped. `len` of the result counts from the start of `buf`, so
/// `&buf[msg.len..]` is where a following message starts. Without `Content-Length` the
/// body is the rest of the buffer (RFC 3261 §18.3, the datagram rule); with a
/// `Content-Length` larger than what is there, the body is what is there and
/// `body_truncated` is set. The headers must be complete (closed by a blank line).
pub fn parse(buf: &[u8]) -> Result<SipMessage<'_>, ParseError> {
    parse_framed(buf, false)
}

/// Parses a message that is a whole datagram (UDP, SCTP): the end of the datagram also
/// ends the header section when the blank line is missing (RFC 3261 §18.3: for message
/// transports the datagram is the message), as truncated and hand-made captures need.
pub fn parse_datagram(buf: &[u8]) -> Result<SipMessage<'_>, ParseError> {
    parse_framed(buf, true)
}

fn parse_framed(buf: &[u8], datagram: bool) -> Result<SipMessage<'_>, ParseError> {
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

    let mut h = Headers {
        datagram,
        ..Headers::default()
    };
    let mut pos = start + nl + 1;
    // The header being read: (offset of its line, name, value start, value end).
    let mut current: Option<(usize, usize, usize, usize)> = None;
    let body_start = loop {
        let line_end = match memchr(b'\n', &window[pos..]) {
            Some(nl) => pos + nl,
            // The datagram ends inside the headers: its last line is the last header.
            None if datagram && limit == buf.len() && pos < limit => limit,
            None if datagram && limit == buf.len() => {
                if let Some(cur) = current.take() {
                    h.take(window, cur)?;
                }
                break limit;
            }
            None => return Err(incomplete(limit)),
        };
        let content_end = if line_end > pos && window[line_end - 1] == b'\r' {
            line_end - 1
        } else {
            line_end
        };
        if content_end == pos {
            if let Some(cur) = current.take() {
                h.take(window, cur)?;
            }
            // A datagram may end in a lone CR with no LF after it: the body starts at
            // its end, never past it.
            break (line_end + 1).min(limit);
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
            // A header line without a colon is skipped, as Wireshark does: one broken
            // line must not cost the whole call (seen in fuzzed and hand-edited traces).
            if let Some(colon) = find(b':', &window[pos..content_end]) {
                current = Some((pos, pos + colon, pos + colon + 1, content_end));
            }
        }
        if line_end >= limit {
            if let Some(cur) = current.take() {
                h.take(window, cur)?;
            }
            break limit;
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
        has_credentials: h.has_credentials,
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
    has_credentials: bool,
    content_type: Option<&'a [u8]>,
    content_length: Option<usize>,
    /// The message is a whole datagram: an unreadable Content-Length can be ignored,
    /// since the datagram's end frames the body anyway (zeek's invalid-content-length).
    datagram: bool,
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
    /// Authorization or Proxy-Authorization: only whether one is there is kept.
    Credentials,
    ContentType,
    ContentLength,
    Other,
}

/// RFC 3261 §7.3.1: header names are case-insensitive; §7.3.3 and §20 give the compact
/// forms (`x` for Session-Expires is RFC 4028 §4; Authorization and Proxy-Authorization
/// have none). Compact forms of headers we do not need (k, s, e, o, u, ...) fall into
/// `Other`.
fn header_name(name: &[u8]) -> Name {
    let Some(first) = name.first().map(u8::to_ascii_lowercase) else {
        return Name::Other;
    };
    if name.len() == 1 {
        return match first {
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
    // Dispatch on length and first letter, then one case-insensitive compare: this runs for
    // every header line, so no table walk (measured: a walk over 13 names was the hot spot).
    let (known, kind) = match (name.len(), first) {
        (2, b't') => (&TO, Name::To),
        (3, b'v') => (&VIA, Name::Via),
        (4, b'f') => (&FROM, Name::From),
        (4, b'c') => (&CSEQ, Name::CSeq),
        (6, b's') => (&SERVER, Name::Server),
        (6, b'r') => (&REASON, Name::Reason),
        (7, b'c') if name[1] | 0x20 == b'a' => (&CALL_ID, Name::CallId),
        (7, b'c') => (&CONTACT, Name::Contact),
        (10, b'u') => (&USER_AGENT, Name::UserAgent),
        (12, b'c') => (&CONTENT_TYPE, Name::ContentType),
        (13, b'a') => (&AUTHORIZATION, Name::Credentials),
        (14, b'c') => (&CONTENT_LENGTH, Name::ContentLength),
        (15, b's') => (&SESSION_EXPIRES, Name::SessionExpires),
        (19, b'p') if name[1] | 0x20 == b'r' => (&PROXY_AUTHORIZATION, Name::Credentials),
        (19, b'p') => (&P_ASSERTED_IDENTITY, Name::AssertedIdentity),
        _ => return Name::Other,
    };
    if known.matches(name) {
        kind
    } else {
        Name::Other
    }
}

static TO: Folded = Folded::new(b"to");
static VIA: Folded = Folded::new(b"via");
static FROM: Folded = Folded::new(b"from");
static CSEQ: Folded = Folded::new(b"cseq");
static SERVER: Folded = Folded::new(b"server");
static REASON: Folded = Folded::new(b"reason");
static CALL_ID: Folded = Folded::new(b"call-id");
static CONTACT: Folded = Folded::new(b"contact");
static USER_AGENT: Folded = Folded::new(b"user-agent");
static CONTENT_TYPE: Folded = Folded::new(b"content-type");
static AUTHORIZATION: Folded = Folded::new(b"authorization");
static CONTENT_LENGTH: Folded = Folded::new(b"content-length");
static SESSION_EXPIRES: Folded = Folded::new(b"session-expires");
static PROXY_AUTHORIZATION: Folded = Folded::new(b"proxy-authorization");
static P_ASSERTED_IDENTITY: Folded = Folded::new(b"p-asserted-identity");

/// A lower-case header name as three little-endian words ([`words`]), so a
/// case-insensitive compare is a few word operations instead of a byte loop (measured: the
/// byte loop was a tenth of a parse). Each word has a mask with the case bit 0x20 set only
/// where the name has a letter: `(w | mask) == word` holds exactly when the bytes are
/// equal ignoring ASCII case. Setting 0x20 everywhere would let CR (0x0D) pass for `-`
/// (0x2D).
struct Folded {
    len: usize,
    word: [u64; 3],
    mask: [u64; 3],
}

impl Folded {
    const fn new(name: &[u8]) -> Folded {
        assert!(name.len() >= 2 && name.len() <= 24);
        let mut letters = [0u8; 24];
        let mut i = 0;
        while i < name.len() {
            assert!(!name[i].is_ascii_uppercase());
            if name[i].is_ascii_lowercase() {
                letters[i] = 0x20;
            }
            i += 1;
        }
        let (letters, _) = letters.split_at(name.len());
        Folded {
            len: name.len(),
            word: const_words(name),
            mask: const_words(letters),
        }
    }

    #[inline]
    fn matches(&self, name: &[u8]) -> bool {
        if name.len() != self.len {
            return false;
        }
        let w = words(name);
        ((w[0] | self.mask[0]) ^ self.word[0])
            | ((w[1] | self.mask[1]) ^ self.word[1])
            | ((w[2] | self.mask[2]) ^ self.word[2])
            == 0
    }
}

/// `s` (2 to 24 bytes) as three overlapping little-endian words that together cover every
/// byte: 8-byte words at 0, at 8 or `len - 8`, and at `len - 8`; shorter names pack two
/// overlapping 4- or 2-byte loads into the first word. Fixed-size loads only, no copy.
#[inline]
fn words(s: &[u8]) -> [u64; 3] {
    let n = s.len();
    if n >= 8 {
        let mid = if n > 16 { 8 } else { n - 8 };
        [le(s, 0), le(s, mid), le(s, n - 8)]
    } else if n >= 4 {
        [le4(s, 0) | le4(s, n - 4) << 32, 0, 0]
    } else if n >= 2 {
        [le2(s, 0) | le2(s, n - 2) << 16, 0, 0]
    } else {
        [0, 0, 0]
    }
}

#[inline]
fn le(s: &[u8], at: usize) -> u64 {
    s.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

#[inline]
fn le4(s: &[u8], at: usize) -> u64 {
    s.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b| u64::from(u32::from_le_bytes(b)))
}

#[inline]
fn le2(s: &[u8], at: usize) -> u64 {
    s.get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b| u64::from(u16::from_le_bytes(b)))
}

/// [`words`] at compile time, for the patterns.
const fn const_words(s: &[u8]) -> [u64; 3] {
    let n = s.len();
    if n >= 8 {
        let mid = if n > 16 { 8 } else { n - 8 };
        [
            const_le(s, 0, 8),
            const_le(s, mid, 8),
            const_le(s, n - 8, 8),
        ]
    } else if n >= 4 {
        [const_le(s, 0, 4) | const_le(s, n - 4, 4) << 32, 0, 0]
    } else if n >= 2 {
        [const_le(s, 0, 2) | const_le(s, n - 2, 2) << 16, 0, 0]
    } else {
        [0, 0, 0]
    }
}

const fn const_le(s: &[u8], at: usize, k: usize) -> u64 {
    let mut v = 0u64;
    let mut i = 0;
    while i < k {
        v |= (s[at + i] as u64) << (8 * i);
        i += 1;
    }
    v
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
        // Only the headers we read are looked at further: a known name is a token by
        // construction, and any other line (even a malformed name) is skipped unread,
        // as Wireshark does. This is most header lines, so it is the hot path.
        let kind = header_name(name);
        if kind == Name::Other {
            return Ok(());
        }
        let value = trim_lws(&buf[value_start..value_end]);
        match kind {
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
            Name::Credentials => {
                // An empty value carries no credentials.
                self.has_credentials |= !value.is_empty();
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
                let n = match content_length_value(value) {
                    Ok(n) => n,
                    // The datagram's end frames the body anyway.
                    Err(BadLength::NotNumber) if self.datagram => return Ok(()),
                    Err(BadLength::NotNumber) => {
                        return Err(ParseError::BadContentLength { at: line })
                    }
                    Err(BadLength::TooLarge) => {
                        return Err(ParseError::ContentLengthTooLarge { at: line })
                    }
                };
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
    // RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), ended by the first colon.
    // One pass: the first byte that is not a scheme character must be that colon.
    let colon = s
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.'))?;
    if s[colon] != b':' {
        return None;
    }
    let scheme = &s[..colon];
    if !scheme.first().is_some_and(|b| b.is_ascii_alphabetic()) {
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
        // The first colon is searched for once, the second only after it.
        let colon = memchr(b':', hp);
        if colon.is_some_and(|c| memchr(b':', &hp[c + 1..]).is_some()) {
            // An IPv6 address without brackets (`sip:9876@fe80:0:0:0:21a:a0ff:fe07:32e0`):
            // not RFC 3261 syntax, but real phones send it (heplify's sip_ipv6_udp
            // capture). It cannot carry a port, so all of it is the host.
            (hp, &hp[hp.len()..])
        } else {
            let end = colon.unwrap_or(hp.len());
            (&hp[..end], &hp[end..])
        }
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

/// The first `needle` in `s`, for searches that usually end within a few dozen bytes (the
/// colon after a header name): the first [`NEAR`] bytes are scanned a word at a time, with
/// almost no setup, where `memchr` pays more to set up its vector loop than such a short
/// scan costs (measured with callgrind). The rest goes to `memchr`. Where a search often
/// runs to the end of its slice (a URI's parts), `memchr` measured no worse, so it stays.
#[inline]
fn find(needle: u8, s: &[u8]) -> Option<usize> {
    const LOW: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let pattern = LOW * u64::from(needle);
    // The high bit of the lowest zero byte of `w ^ pattern` (the first match) is set and no
    // bit below it; bits above it may be wrong (borrows), so only the lowest is used.
    let first = |w: u64| {
        let x = w ^ pattern;
        x.wrapping_sub(LOW) & !x & HIGH
    };
    let near = &s[..s.len().min(NEAR)];
    let mut chunks = near.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let m = first(chunk.try_into().map_or(0, u64::from_le_bytes));
        if m != 0 {
            return Some(at + (m.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    if near.len() % 8 != 0 {
        if near.len() >= 8 {
            // The last 8 bytes as one word: the bytes it shares with the word before were
            // found clean, so its first match is the first in the tail.
            let last = near.len() - 8;
            let m = first(near[last..].try_into().map_or(0, u64::from_le_bytes));
            if m != 0 {
                return Some(last + (m.trailing_zeros() / 8) as usize);
            }
        } else if let Some(i) = near.iter().position(|&b| b == needle) {
            return Some(i);
        }
    }
    memchr(needle, &s[near.len()..]).map(|i| near.len() + i)
}

/// How far [`find`] scans by words before handing over to `memchr`.
const NEAR: usize = 64;

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
    &buf[leading_crlf(buf)..]
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// RFC 3261 §25.1 token characters.
fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// [`is_token`] as a table: it runs on every byte of every header name.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = include_bytes!("../../tests/data/sip/invite_sdp.sip");
    const OK_200: &[u8] = include_bytes!("../../tests/data/sip/ok_200_sdp.sip");

    /// A minimal valid request with the given extra header lines (CRLF ends).
    fn request_with(extra: &str) -> Vec<u8> {
        format!(
            "INVITE sip:bob@example.com SIP/2.0\r\n\
             Call-ID: c1\r\nCSeq: 1 INVITE\r\n\
             From: <sip:alice@example.com>;tag=f1\r\nTo: <sip:bob@example.com>\r\n\
             {extra}\r\n"
        )
        .into_bytes()
    }

    fn kind(buf: &[u8]) -> &'static str {
        match parse(buf) {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        }
    }

    #[test]
    fn realistic_invite_gives_every_field() {
        let m = parse(INVITE).unwrap();
        let StartLine::Request { method, uri } = m.start else {
            panic!("not a request");
        };
        assert_eq!(method, Method::Invite);
        assert_eq!(uri.scheme, b"sip");
        assert_eq!(uri.user, Some(&b"+15551230002"[..]));
        assert_eq!(uri.host, b"biloxi.example.com");
        assert_eq!(uri.port, None);
        assert_eq!(m.call_id, b"a84b4c76e66710@pc33.atlanta.example.com");
        assert_eq!(
            m.cseq,
            CSeq {
                seq: 314159,
                method: Method::Invite
            }
        );
        assert_eq!(m.from.display, Some(&b"Alice Liddell"[..]));
        assert_eq!(m.from.uri.user, Some(&b"+15551230001"[..]));
        assert_eq!(m.from.uri.host, b"atlanta.example.com");
        assert_eq!(m.from.tag, Some(&b"1928301774"[..]));
        assert_eq!(m.to.display, Some(&b"Bob"[..]));
        assert_eq!(m.to.tag, None);
        let via = m.via.unwrap();
        assert_eq!(via.transport, b"UDP");
        assert_eq!(via.sent_by, b"198.51.100.10:5060");
        assert_eq!(via.branch, Some(&b"z9hG4bK776asdhds"[..]));
        assert_eq!(
            m.contact,
            Some(&b"<sip:+15551230001@198.51.100.10:5060;transport=udp>"[..])
        );
        assert_eq!(m.user_agent, Some(&b"Yealink SIP-T46S 66.86.0.15"[..]));
        assert_eq!(m.server, None);
        let pai = m.asserted_identity.unwrap();
        assert_eq!(
            (pai.user, pai.host),
            (Some(&b"+15551230001"[..]), &b"atlanta.example.com"[..])
        );
        assert_eq!(m.session_expires, Some(1800));
        assert_eq!(m.content_type, Some(&b"application/sdp"[..]));
        assert_eq!(m.content_length, Some(m.body.len()));
        assert!(m.body.starts_with(b"v=0\r\n") && m.body.ends_with(b"a=sendrecv\r\n"));
        assert!(!m.body_truncated);
        assert_eq!(m.len, INVITE.len());
        assert!(m.has_sdp());
    }

    #[test]
    fn status_line_gives_code_and_reason() {
        let m = parse(OK_200).unwrap();
        assert_eq!(
            m.start,
            StartLine::Response {
                code: 200,
                reason: b"OK"
            }
        );
        assert_eq!(m.cseq.method, Method::Invite);
        assert_eq!(m.to.tag, Some(&b"a6c85cf"[..]));
        assert_eq!(m.server, Some(&b"Asterisk PBX 20.5.0"[..]));
        assert_eq!(m.len, OK_200.len());
    }

    #[test]
    fn status_line_without_reason_phrase_is_accepted() {
        let buf = b"SIP/2.0 183\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@h>\r\nTo: <sip:b@h>\r\n\r\n";
        assert_eq!(
            parse(buf).unwrap().start,
            StartLine::Response {
                code: 183,
                reason: b""
            }
        );
    }

    #[test]
    fn compact_header_forms_are_understood() {
        let m = parse(include_bytes!("../../tests/data/sip/invite_compact.sip")).unwrap();
        assert_eq!(m.call_id, b"compact-7a9f@198.51.100.10");
        assert_eq!(m.from.tag, Some(&b"88sja8x"[..]));
        assert_eq!(m.to.uri.user, Some(&b"bob"[..]));
        assert_eq!(m.via.unwrap().branch, Some(&b"z9hG4bKcompact1"[..]));
        assert_eq!(m.contact, Some(&b"<sip:alice@198.51.100.10>"[..]));
        assert_eq!(m.session_expires, Some(900));
        assert_eq!(m.content_type, Some(&b"application/sdp"[..]));
        assert_eq!(m.content_length, Some(291));
        assert_eq!(m.body.len(), 291);
    }

    #[test]
    fn header_names_are_case_insensitive_with_space_around_colon() {
        let buf = b"BYE sip:b@h SIP/2.0\r\ncall-id :x9\r\ncseq:   2   BYE\r\nFROM\t: <sip:a@h>;TAG=t1\r\nto:<sip:b@h>\r\nCONTENT-LENGTH : 0\r\n\r\n";
        let m = parse(buf).unwrap();
        assert_eq!(m.call_id, b"x9");
        assert_eq!(
            m.cseq,
            CSeq {
                seq: 2,
                method: Method::Bye
            }
        );
        assert_eq!(m.from.tag, Some(&b"t1"[..]));
        assert_eq!(m.content_length, Some(0));
    }

    #[test]
    fn every_known_header_name_and_compact_form_is_recognised() {
        let cases: [(&[u8], Name); 24] = [
            (b"Call-ID", Name::CallId),
            (b"i", Name::CallId),
            (b"CSeq", Name::CSeq),
            (b"From", Name::From),
            (b"F", Name::From),
            (b"To", Name::To),
            (b"t", Name::To),
            (b"Via", Name::Via),
            (b"v", Name::Via),
            (b"Contact", Name::Contact),
            (b"m", Name::Contact),
            (b"User-Agent", Name::UserAgent),
            (b"Server", Name::Server),
            (b"P-Asserted-Identity", Name::AssertedIdentity),
            (b"Reason", Name::Reason),
            (b"Session-Expires", Name::SessionExpires),
            (b"x", Name::SessionExpires),
            (b"content-type", Name::ContentType),
            (b"c", Name::ContentType),
            (b"CONTENT-LENGTH", Name::ContentLength),
            (b"l", Name::ContentLength),
            (b"Authorization", Name::Credentials),
            (b"proxy-AUTHORIZATION", Name::Credentials),
            (b"p-ASSERTED-identity", Name::AssertedIdentity),
        ];
        for (name, want) in cases {
            assert!(
                header_name(name) == want,
                "{}",
                String::from_utf8_lossy(name)
            );
        }
        for other in [
            &b"Call-IX"[..],
            b"Contacts",
            b"Tx",
            b"k",
            b"s",
            b"Subject",
            b"Cseq-X",
            b"Server2",
            b"Authorisation",
            b"Proxy-Authenticate",
            b"WWW-Authenticate",
            b"Proxy-Authorizatiox",
        ] {
            assert!(
                header_name(other) == Name::Other,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn find_agrees_with_memchr_at_every_length_and_offset() {
        // Word scan, overlapping last word, short byte scan and the memchr hand-over.
        for len in 0..150 {
            let mut s: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert_eq!(find(b':', &s), None);
            for at in 0..len {
                s[at] = b':';
                assert_eq!(find(b':', &s), Some(at), "len {len} at {at}");
                // A second match after the first must not win, nor a 0x3B borrow.
                if at + 1 < len {
                    s[at + 1] = b';';
                    assert_eq!(find(b':', &s), memchr(b':', &s));
                }
                s[at] = 0xBA;
                assert_eq!(find(b':', &s), memchr(b':', &s));
                s = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            }
        }
    }

    #[test]
    fn folded_name_compare_is_exactly_eq_ignore_ascii_case() {
        // Every known name with every byte value at every position: the word compare must
        // agree with the byte compare (CR for `-` was the trap of a plain OR 0x20).
        for (known, text) in [
            (&TO, &b"to"[..]),
            (&VIA, b"via"),
            (&FROM, b"from"),
            (&CSEQ, b"cseq"),
            (&SERVER, b"server"),
            (&REASON, b"reason"),
            (&CALL_ID, b"call-id"),
            (&CONTACT, b"contact"),
            (&USER_AGENT, b"user-agent"),
            (&CONTENT_TYPE, b"content-type"),
            (&AUTHORIZATION, b"authorization"),
            (&CONTENT_LENGTH, b"content-length"),
            (&SESSION_EXPIRES, b"session-expires"),
            (&PROXY_AUTHORIZATION, b"proxy-authorization"),
            (&P_ASSERTED_IDENTITY, b"p-asserted-identity"),
        ] {
            assert!(known.matches(text) && known.matches(&text.to_ascii_uppercase()));
            assert!(!known.matches(&text[1..]));
            let mut name = text.to_vec();
            for i in 0..name.len() {
                for b in 0..=255u8 {
                    name[i] = b;
                    assert_eq!(
                        known.matches(&name),
                        name.eq_ignore_ascii_case(text),
                        "{}",
                        String::from_utf8_lossy(&name)
                    );
                }
                name[i] = text[i];
            }
        }
    }

    #[test]
    fn authorization_or_proxy_authorization_with_a_value_sets_has_credentials() {
        let digest = "Digest username=\"9002\", realm=\"asterisk\", response=\"38140f\"";
        for (extra, want) in [
            (String::new(), false),
            (format!("Authorization: {digest}\r\n"), true),
            (format!("proxy-authorization :{digest}\r\n"), true),
            // Folded onto a continuation line, as some UAs write long digests.
            (
                "AUTHORIZATION:\r\n  Digest username=\"a\"\r\n".to_string(),
                true,
            ),
            ("Authorization:   \r\n".to_string(), false),
            (format!("Proxy-Authenticate: {digest}\r\n"), false),
            (format!("WWW-Authenticate: {digest}\r\n"), false),
        ] {
            let buf = request_with(&extra);
            let m = parse(&buf).unwrap();
            assert_eq!(m.has_credentials, want, "{extra:?}");
        }
    }

    #[test]
    fn folded_headers_give_right_sub_fields() {
        let m = parse(include_bytes!("../../tests/data/sip/invite_folded.sip")).unwrap();
        assert_eq!(m.from.display, Some(&b"Alice"[..]));
        assert_eq!(m.from.uri.user, Some(&b"alice"[..]));
        assert_eq!(m.from.tag, Some(&b"fold77"[..]));
        assert_eq!(m.to.display, Some(&b"Bob"[..]));
        assert_eq!(m.to.uri.host, b"biloxi.example.com");
        assert_eq!(
            m.cseq,
            CSeq {
                seq: 7,
                method: Method::Invite
            }
        );
        let via = m.via.unwrap();
        assert_eq!(via.sent_by, b"198.51.100.10:5060");
        assert_eq!(via.branch, Some(&b"z9hG4bKfolded1"[..]));
        assert_eq!(m.body.len(), 291);
    }

    #[test]
    fn bare_lf_line_ends_parse_like_crlf() {
        let lf = include_bytes!("../../tests/data/sip/invite_lf_only.sip");
        assert!(!lf.contains(&b'\r'));
        let m = parse(lf).unwrap();
        assert_eq!(m.call_id, b"lf-only-call@10.0.0.2");
        assert_eq!(m.from.tag, Some(&b"lf-tag-1"[..]));
        assert_eq!(m.user_agent, Some(&b"MicroSIP/3.21.3"[..]));
        assert_eq!(m.content_length, Some(m.body.len()));
        assert!(m.body.starts_with(b"v=0\no="));
        assert_eq!(m.len, lf.len());
    }

    #[test]
    fn leading_keepalive_crlfs_are_skipped_and_counted_in_len() {
        let mut buf = b"\r\n\r\n".to_vec();
        buf.extend_from_slice(OK_200);
        let m = parse(&buf).unwrap();
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.len, buf.len());
    }

    #[test]
    fn keepalive_alone_is_empty_not_an_error_of_content() {
        assert_eq!(parse(b"\r\n\r\n"), Err(ParseError::Empty { at: 4 }));
        assert_eq!(parse(b""), Err(ParseError::Empty { at: 0 }));
    }

    #[test]
    fn ipv6_references_in_uris_and_via() {
        let m = parse(include_bytes!("../../tests/data/sip/invite_ipv6.sip")).unwrap();
        let StartLine::Request { uri, .. } = m.start else {
            panic!()
        };
        assert_eq!(uri.host, b"[2001:db8::20]");
        assert_eq!(uri.port, Some(5060));
        assert_eq!(m.from.uri.host, b"[2001:db8::10]");
        assert_eq!(m.from.uri.port, None);
        assert_eq!(m.via.unwrap().sent_by, b"[2001:db8::10]:5060");
        assert_eq!(m.via.unwrap().branch, Some(&b"z9hG4bKv6abc"[..]));
    }

    #[test]
    fn tel_uri_gives_number_and_empty_host() {
        let m = parse(include_bytes!("../../tests/data/sip/invite_tel_uri.sip")).unwrap();
        let StartLine::Request { uri, .. } = m.start else {
            panic!()
        };
        assert_eq!(uri.scheme, b"tel");
        assert_eq!(uri.user, Some(&b"+15551230002"[..]));
        assert_eq!(uri.host, b"");
        assert_eq!(m.from.uri.user, Some(&b"+15551230001"[..]));
        assert_eq!(m.from.tag, Some(&b"telfrom"[..]));
        assert_eq!(
            m.asserted_identity.unwrap().user,
            Some(&b"+15551230001"[..])
        );
    }

    #[test]
    fn tel_uri_parameters_are_not_part_of_the_number() {
        let uri = parse_uri(b"tel:7042;phone-context=example.com").unwrap();
        assert_eq!(uri.user, Some(&b"7042"[..]));
    }

    #[test]
    fn sips_uri_with_params_and_headers_keeps_host_clean() {
        let uri =
            parse_uri(b"sips:bob:secret@Biloxi.example.com:5061;transport=tls?subject=x").unwrap();
        assert_eq!(uri.scheme, b"sips");
        assert_eq!(uri.user, Some(&b"bob"[..]));
        assert_eq!(uri.host, b"Biloxi.example.com");
        assert_eq!(uri.port, Some(5061));
        let uri = parse_uri(b"sip:host.example;maddr=239.255.255.1").unwrap();
        assert_eq!(
            (uri.user, uri.host, uri.port),
            (None, &b"host.example"[..], None)
        );
    }

    #[test]
    fn user_part_may_hold_semicolons() {
        // RFC 3261 §25.1 user-unreserved allows `;` in the user part (RFC 4694 npdi).
        let uri = parse_uri(b"sip:+15551234;npdi;rn=+1555@gw.example;user=phone").unwrap();
        assert_eq!(uri.user, Some(&b"+15551234;npdi;rn=+1555"[..]));
        assert_eq!(uri.host, b"gw.example");
    }

    #[test]
    fn non_sip_absolute_uri_keeps_opaque_part_as_user() {
        let uri = parse_uri(b"urn:service:sos").unwrap();
        assert_eq!(
            (uri.scheme, uri.user, uri.host),
            (&b"urn"[..], Some(&b"service:sos"[..]), &b""[..])
        );
    }

    #[test]
    fn bare_addr_spec_parameters_belong_to_the_header() {
        let buf = request_with("");
        assert_eq!(parse(&buf).unwrap().from.tag, Some(&b"f1"[..]));
        let na = parse_name_addr(b"sip:alice@atlanta.example.com;tag=abc;user=phone").unwrap();
        assert_eq!(na.uri.host, b"atlanta.example.com");
        assert_eq!(na.tag, Some(&b"abc"[..]));
        assert_eq!(na.display, None);
    }

    #[test]
    fn tag_inside_angle_brackets_is_a_uri_parameter_not_the_tag() {
        let na = parse_name_addr(b"<sip:a@h;tag=inside>;x=1").unwrap();
        assert_eq!(na.tag, None);
    }

    #[test]
    fn quoted_display_name_keeps_escapes_and_special_bytes() {
        let na = parse_name_addr(br#""Smith, \"J\" <x>" <sip:j@h>;tag=7"#).unwrap();
        assert_eq!(na.display, Some(&br#"Smith, \"J\" <x>"#[..]));
        assert_eq!(na.uri.user, Some(&b"j"[..]));
        assert_eq!(na.tag, Some(&b"7"[..]));
    }

    #[test]
    fn unquoted_token_display_name() {
        let na =
            parse_name_addr(b"Anonymous Caller <sip:anonymous@anonymous.invalid>;tag=z").unwrap();
        assert_eq!(na.display, Some(&b"Anonymous Caller"[..]));
        assert_eq!(na.uri.host, b"anonymous.invalid");
        let na = parse_name_addr(b"\"\" <sip:a@h>").unwrap();
        assert_eq!(na.display, None);
    }

    #[test]
    fn quoted_tag_value_with_semicolon_does_not_hide_the_tag() {
        let na = parse_name_addr(b"<sip:a@h>;x=\"a;tag=no\";tag=yes").unwrap();
        assert_eq!(na.tag, Some(&b"yes"[..]));
    }

    #[test]
    fn top_via_is_first_value_of_first_header() {
        let m = parse(include_bytes!(
            "../../tests/data/sip/response_multi_via.sip"
        ))
        .unwrap();
        let via = m.via.unwrap();
        assert_eq!(via.sent_by, b"proxy.biloxi.example.com:5060");
        assert_eq!(via.branch, Some(&b"z9hG4bK721e4.1"[..]));
        assert_eq!(via.transport, b"UDP");
    }

    #[test]
    fn via_with_spaces_around_slashes() {
        let via = parse_via(b"SIP / 2.0 / TCP  client.example:5060 ; branch = z9hG4bK9").unwrap();
        assert_eq!(via.transport, b"TCP");
        assert_eq!(via.sent_by, b"client.example:5060");
        assert_eq!(via.branch, Some(&b"z9hG4bK9"[..]));
    }

    #[test]
    fn missing_via_is_allowed() {
        assert_eq!(parse(&request_with("")).unwrap().via, None);
    }

    #[test]
    fn reason_q850_after_a_sip_value() {
        let m = parse(include_bytes!("../../tests/data/sip/bye_reason.sip")).unwrap();
        assert_eq!(m.reason_cause, Some(16));
    }

    #[test]
    fn reason_q850_in_a_second_header_and_comma_in_text() {
        let buf = request_with(
            "Reason: SIP;cause=487;text=\"a, Q.850;cause=1\"\r\nReason: Q.850 ; cause = 17\r\n",
        );
        assert_eq!(parse(&buf).unwrap().reason_cause, Some(17));
    }

    #[test]
    fn reason_without_q850_gives_none() {
        let buf = request_with("Reason: SIP;cause=200;text=\"elsewhere\"\r\n");
        assert_eq!(parse(&buf).unwrap().reason_cause, None);
    }

    #[test]
    fn session_expires_ignores_parameters_and_bad_values() {
        assert_eq!(
            parse(&request_with("Session-Expires: 90 ;refresher=uas\r\n"))
                .unwrap()
                .session_expires,
            Some(90)
        );
        assert_eq!(
            parse(&request_with("Session-Expires: 99999999999\r\n"))
                .unwrap()
                .session_expires,
            None
        );
    }

    #[test]
    fn content_type_parameters_are_stripped() {
        let m = parse(include_bytes!("../../tests/data/sip/message_body.sip")).unwrap();
        assert_eq!(m.content_type, Some(&b"text/plain"[..]));
        assert_eq!(m.body, b"Watson, come here.");
        assert_eq!(m.method(), Some(Method::Message));
    }

    #[test]
    fn truncated_body_is_kept_and_flagged() {
        let cut = &INVITE[..INVITE.len() - 10];
        let m = parse(cut).unwrap();
        assert!(m.body_truncated);
        assert_eq!(m.body.len(), m.content_length.unwrap() - 10);
        assert_eq!(m.len, cut.len());
    }

    #[test]
    fn two_messages_in_one_buffer_parse_one_after_the_other() {
        let mut buf = INVITE.to_vec();
        buf.extend_from_slice(OK_200);
        let first = parse(&buf).unwrap();
        assert_eq!(first.len, INVITE.len());
        assert_eq!(first.method(), Some(Method::Invite));
        let second = parse(&buf[first.len..]).unwrap();
        assert_eq!(second.status(), Some(200));
        assert_eq!(first.len + second.len, buf.len());
    }

    #[test]
    fn without_content_length_the_body_is_the_rest() {
        let mut buf = request_with("");
        buf.extend_from_slice(b"rest of datagram");
        let m = parse(&buf).unwrap();
        assert_eq!(m.content_length, None);
        assert_eq!(m.body, b"rest of datagram");
        assert_eq!(m.len, buf.len());
    }

    #[test]
    fn huge_content_length_is_rejected() {
        assert_eq!(
            kind(&request_with("Content-Length: 1048577\r\n")),
            "content_length_too_large"
        );
        assert_eq!(
            kind(&request_with("Content-Length: 99999999999999999999999\r\n")),
            "bad_content_length"
        );
        assert_eq!(
            kind(&request_with("Content-Length: 12a\r\n")),
            "bad_content_length"
        );
        assert_eq!(
            kind(&request_with("Content-Length: -1\r\n")),
            "bad_content_length"
        );
    }

    #[test]
    fn conflicting_content_lengths_are_rejected_equal_ones_accepted() {
        assert_eq!(
            kind(&request_with("Content-Length: 0\r\nl: 5\r\n")),
            "conflicting_content_length"
        );
        assert_eq!(kind(&request_with("Content-Length: 0\r\nl: 0\r\n")), "ok");
    }

    #[test]
    fn cseq_limits() {
        let ok = request_with("").replace_cseq(b"CSeq: 2147483647 INVITE");
        assert_eq!(parse(&ok).unwrap().cseq.seq, 2_147_483_647);
        for bad in [
            &b"CSeq: 2147483648 INVITE"[..],
            b"CSeq: 99999999999999999999999 INVITE",
            b"CSeq: INVITE",
            b"CSeq: 1",
            b"CSeq: 1x INVITE",
            b"CSeq: -1 INVITE",
        ] {
            assert_eq!(
                kind(&request_with("").replace_cseq(bad)),
                "bad_cseq",
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    trait ReplaceCSeq {
        fn replace_cseq(self, line: &[u8]) -> Vec<u8>;
    }
    impl ReplaceCSeq for Vec<u8> {
        fn replace_cseq(self, line: &[u8]) -> Vec<u8> {
            let s = String::from_utf8(self).unwrap();
            s.replace("CSeq: 1 INVITE", std::str::from_utf8(line).unwrap())
                .into_bytes()
        }
    }

    #[test]
    fn unknown_method_is_kept_as_other() {
        let buf = b"PING sip:b@h SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 PING\r\nFrom: <sip:a@h>\r\nTo: <sip:b@h>\r\n\r\n";
        let m = parse(buf).unwrap();
        assert_eq!(m.method(), Some(Method::Other(b"PING")));
        assert_eq!(m.cseq.method, Method::Other(b"PING"));
    }

    #[test]
    fn malformed_start_lines_give_their_kinds() {
        let rest = "\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@h>\r\nTo: <sip:b@h>\r\n\r\n";
        let cases = [
            ("GET / HTTP/1.1", "not_sip"),
            ("\u{80}\u{12}", "not_sip"),
            ("HELLO", "not_sip"),
            ("INVITE sip:b@h SIP/3.0", "bad_start_line"),
            ("INVITE SIP/2.0", "bad_start_line"),
            ("SIP/2.0200 OK", "bad_start_line"),
            ("SIP/3.0 200 OK", "bad_start_line"),
            ("SIP/2.0 099 Early", "bad_status_code"),
            ("SIP/2.0 700 Late", "bad_status_code"),
            ("SIP/2.0 2000 OK", "bad_status_code"),
            ("SIP/2.0 20x OK", "bad_status_code"),
            ("SIP/2.0 OK", "bad_status_code"),
            ("INVITE bob SIP/2.0", "bad_uri"),
            ("INVITE sip:bob@ SIP/2.0", "bad_uri"),
            ("INVITE sip:bob@h:99999 SIP/2.0", "bad_uri"),
            ("INVITE sip:bob@[2001:db8::1 SIP/2.0", "bad_uri"),
            ("INVITE tel: SIP/2.0", "bad_uri"),
        ];
        for (line, want) in cases {
            assert_eq!(kind(format!("{line}{rest}").as_bytes()), want, "{line}");
        }
    }

    #[test]
    fn missing_and_malformed_mandatory_headers_give_their_kinds() {
        let full = [
            "Call-ID: c\r\n",
            "CSeq: 1 INVITE\r\n",
            "From: <sip:a@h>;tag=1\r\n",
            "To: <sip:b@h>\r\n",
        ];
        let missing = [
            "missing_call_id",
            "missing_cseq",
            "missing_from",
            "missing_to",
        ];
        for (skip, want) in missing.iter().enumerate() {
            let mut buf = String::from("INVITE sip:b@h SIP/2.0\r\n");
            for (i, h) in full.iter().enumerate() {
                if i != skip {
                    buf.push_str(h);
                }
            }
            buf.push_str("\r\n");
            assert_eq!(kind(buf.as_bytes()), *want);
        }
        let base = "INVITE sip:b@h SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n";
        let cases = [
            (
                "From: \"unterminated <sip:a@h>\r\nTo: <sip:b@h>\r\n",
                "bad_from",
            ),
            ("From: <sip:a@h\r\nTo: <sip:b@h>\r\n", "bad_from"),
            ("From: <sip:a@h>\r\nTo: nothing\r\n", "bad_to"),
            // A line without a colon is skipped, not fatal.
            (
                "From: <sip:a@h>\r\nTo: <sip:b@h>\r\nNo colon here\r\n",
                "ok",
            ),
            // An unknown header, even a malformed name, is skipped unread.
            ("From: <sip:a@h>\r\nTo: <sip:b@h>\r\nBad Name: x\r\n", "ok"),
            ("Call-ID:\r\nFrom: <sip:a@h>\r\nTo: <sip:b@h>\r\n", "ok"),
        ];
        for (headers, want) in cases {
            assert_eq!(
                kind(format!("{base}{headers}\r\n").as_bytes()),
                want,
                "{headers}"
            );
        }
        assert_eq!(
            kind(b"INVITE sip:b@h SIP/2.0\r\n Call-ID: c\r\n\r\n"),
            "bad_header"
        );
        assert_eq!(kind(b"INVITE sip:b@h SIP/2.0\r\nCall-ID:\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@h>\r\nTo: <sip:b@h>\r\n\r\n"), "missing_call_id");
    }

    #[test]
    fn headers_without_blank_line_are_incomplete() {
        let head_only = &INVITE[..memchr::memmem::find(INVITE, b"\r\n\r\n").unwrap() + 2];
        assert_eq!(kind(head_only), "no_header_end");
        assert_eq!(kind(b"INVITE sip:b@h SIP/2.0"), "no_header_end");
    }

    #[test]
    fn endless_headers_are_too_long() {
        let mut buf = request_with("").replace_cseq(b"CSeq: 1 INVITE");
        buf.truncate(buf.len() - 2);
        while buf.len() <= MAX_HEADER_BYTES + 100 {
            buf.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(kind(&buf), "headers_too_long");
    }

    #[test]
    fn error_messages_give_kind_and_offset_never_content() {
        let secret = b"INVITE sip:b@h SIP/2.0\r\nCall-ID: SECRET\r\nCSeq: 1 INVITE\r\nFrom: <sip:SECRET@h>\r\n\r\n";
        let err = parse(secret).unwrap_err();
        assert_eq!(err.kind(), "missing_to");
        assert_eq!(err.at(), secret.len());
        let text = err.to_string();
        assert_eq!(text, format!("missing_to at byte {}", secret.len()));
        assert!(!text.contains("SECRET"));
    }

    #[test]
    fn every_prefix_of_an_invite_errors_or_parses() {
        for cut in 0..=INVITE.len() {
            match parse(&INVITE[..cut]) {
                Ok(m) => {
                    assert!(m.len <= cut);
                    assert_eq!(m.call_id, b"a84b4c76e66710@pc33.atlanta.example.com");
                }
                Err(e) => assert!(!e.kind().is_empty()),
            }
        }
        // Headers complete from the blank line on: every longer prefix parses.
        let header_end = memchr::memmem::find(INVITE, b"\r\n\r\n").unwrap() + 4;
        for cut in header_end..=INVITE.len() {
            let m = parse(&INVITE[..cut]).unwrap();
            assert_eq!(m.body_truncated, cut < INVITE.len());
        }
    }

    #[test]
    fn random_garbage_does_not_panic() {
        // Bytes drawn from an alphabet rich in SIP syntax so the scanner goes deep.
        let alphabet = b"SIP/2.0 INVITE sip:@[]<>;,\"\\:=\r\n\t1234567890tag=branch=Call-ID:CSeq:From:To:Via:l:";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut buf = [0u8; 256];
        for round in 0..50_000 {
            for b in buf.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = if round % 2 == 0 {
                    alphabet[(seed % alphabet.len() as u64) as usize]
                } else {
                    seed as u8
                };
            }
            let len = (seed >> 56) as usize;
            let _ = parse(&buf[..len]);
            let _ = parse_datagram(&buf[..len]);
            let _ = looks_like_sip(&buf[..len]);
        }
        // Valid messages with random bytes overwritten.
        for round in 0..20_000u64 {
            let mut m = INVITE.to_vec();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % m.len();
                m[i] = alphabet[((seed >> 32) % alphabet.len() as u64) as usize];
            }
            if let Ok(p) = parse(&m) {
                assert!(p.len <= m.len(), "round {round}");
            }
            if let Ok(p) = parse_datagram(&m) {
                assert!(p.len <= m.len(), "round {round}");
            }
        }
    }

    #[test]
    fn looks_like_sip_accepts_requests_and_responses() {
        assert!(looks_like_sip(INVITE));
        assert!(looks_like_sip(OK_200));
        assert!(looks_like_sip(b"\r\n\r\nOPTIONS sip:x@y SIP/2.0\r\n"));
        assert!(looks_like_sip(b"SIP/2.0 100 Trying\r\n"));
        assert!(looks_like_sip(include_bytes!(
            "../../tests/data/sip/invite_lf_only.sip"
        )));
    }

    #[test]
    fn looks_like_sip_rejects_rtp_http_and_fragments() {
        let rtp = [
            0x80u8, 0x08, 0x12, 0x34, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef,
        ];
        assert!(!looks_like_sip(&rtp));
        assert!(!looks_like_sip(b"GET / HTTP/1.1\r\n"));
        assert!(!looks_like_sip(b"invite sip:x@y SIP/2.0\r\n"));
        assert!(!looks_like_sip(b"INVITE sip:x@y SIP/2.0"));
        assert!(!looks_like_sip(b"INVITE SIP/2.0\r\n"));
        assert!(!looks_like_sip(b"\r\n\r\n"));
        assert!(!looks_like_sip(b""));
        assert!(!looks_like_sip(b"SIP/2.0"));
        // A status line needs its three-digit code, as the stream and log framers require.
        assert!(!looks_like_sip(b"SIP/2.0 OK\r\n"));
    }

    #[test]
    fn a_header_line_without_colon_is_skipped_and_the_rest_still_read() {
        let m = parse(b"BYE sip:b@h SIP/2.0\r\nCall-ID: c1\r\ngarbage line\r\nCSeq: 2 BYE\r\nFrom: <sip:a@h>;tag=x\r\nTo: <sip:b@h>;tag=y\r\n\r\n")
            .expect("parsed despite the broken line");
        assert_eq!((m.call_id, m.cseq.seq), (&b"c1"[..], 2));
    }

    #[test]
    fn a_datagram_without_the_blank_line_ends_its_headers_at_its_end() {
        let d = b"SIP/2.0 200 OK\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@h>;tag=x\r\nTo: <sip:b@h>;tag=y";
        assert_eq!(parse(d).err().map(|e| e.kind()), Some("no_header_end"));
        let m = parse_datagram(d).expect("datagram rule");
        assert_eq!(
            (m.to.tag, m.body, m.len),
            (Some(&b"y"[..]), &b""[..], d.len())
        );
        for cut in 0..d.len() {
            let _ = parse_datagram(&d[..cut]);
        }
        let with_crlf = b"SIP/2.0 200 OK\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@h>;tag=x\r\nTo: <sip:b@h>;tag=y\r\n";
        assert_eq!(
            parse_datagram(with_crlf).expect("datagram rule").to.tag,
            Some(&b"y"[..])
        );
    }

    #[test]
    fn an_unbracketed_ipv6_host_is_taken_whole() {
        let m = parse(b"INVITE sip:4321@fec0:0:0:0:216:d3ff:fe0d:22c SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nFrom: <sip:9876@fe80:0:0:0:21a:a0ff:fe07:32e0>;tag=a\r\nTo: <sip:4321@fec0:0:0:0:216:d3ff:fe0d:22c>\r\n\r\n")
            .expect("parsed");
        assert_eq!(m.from.uri.host, b"fe80:0:0:0:21a:a0ff:fe07:32e0");
        assert_eq!(
            (m.from.uri.port, m.from.uri.user),
            (None, Some(&b"9876"[..]))
        );
    }

    #[test]
    fn an_unreadable_content_length_is_ignored_in_a_datagram_only() {
        let d = b"SIP/2.0 200 OK\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@h>;tag=x\r\nTo: <sip:b@h>;tag=y\r\nContent-Length: xyz\r\n\r\n";
        assert_eq!(parse(d).err().map(|e| e.kind()), Some("bad_content_length"));
        assert_eq!(parse_datagram(d).expect("datagram").content_length, None);
    }

    #[test]
    fn a_datagram_ending_in_a_lone_cr_after_its_headers_parses_without_panic() {
        let d = b"SIP/2.0 200 OK\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@h>;tag=x\r\nTo: <sip:b@h>;tag=y\r\n\r";
        let m = parse_datagram(d).expect("parsed");
        assert_eq!((m.body, m.len), (&b""[..], d.len()));
        // Every prefix and every datagram of a real message goes through the datagram rule too.
        for cut in 0..=INVITE.len() {
            let _ = parse_datagram(&INVITE[..cut]);
        }
    }
}
