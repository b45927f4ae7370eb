//! Where a SIP message begins and ends, for every reader that must find one before it is
//! parsed: the start line that begins it (RFC 3261 §7.1, §7.2), the `Content-Length` that
//! ends its body (§7.3.1, §7.3.3, §20.14), keep-alive CR/LF between messages, and the size
//! caps every reader applies.
//!
//! One piece for all of them, so they cannot disagree about what a message is: the parser
//! ([`super::looks_like_sip`] and its `Content-Length`), the TCP and WebSocket reassembler
//! (`net::framing`, which frames a stream with these rules) and the PBX log framers
//! (`source::log`, which rebuild messages from log lines). It lives in `sip` because these
//! are facts of the SIP grammar, and `sip` depends on no other layer; `net` and `source`
//! borrow them rather than each keeping a copy.
//!
//! What stays with each caller: how a buffer is walked (a stream waits for bytes, a log
//! reads line by line, the parser walks every header once and recognises the name
//! `Content-Length` in its own one-pass dispatch, its measured hot path) and what a bad
//! length costs (a parse error, a resynchronisation, a length not believed).
//!
//! Must never allocate (tests/sip_alloc.rs counts the parser's use of it), panic on any
//! input, or believe a number from the wire beyond [`MAX_BODY`].

use memchr::memchr;

/// Largest body any reader believes or keeps: a `Content-Length` above it is not a length
/// but garbage or an attack. A UDP datagram holds at most 65,507 bytes and no SIP body comes
/// near a mebibyte, so one mebibyte leaves room for anything real while bounding what a
/// stream reassembler waits for. The one number the other caps are derived from, so they
/// cannot drift apart.
pub const MAX_BODY: usize = 1 << 20;

/// Largest header section (start line through the blank line) accepted or waited for.
/// Bounds the work per message and tells a stream reassembler when to stop waiting.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Largest whole message: the largest header section and the largest body. What a reader
/// that holds a message before parsing it (a WebSocket payload, a log framer's buffer) may
/// need to keep.
pub const MAX_MESSAGE: usize = MAX_HEADER_BYTES + MAX_BODY;

/// Longest method token accepted on a request line. The longest registered method is
/// `SUBSCRIBE` (9); extension methods are short words too, and a cap keeps the scan for the
/// space after it short on data that is not SIP.
pub const MAX_METHOD_LEN: usize = 20;

/// What ends a request line (§7.1: `Method SP Request-URI SP SIP-Version`).
const VERSION_SUFFIX: &[u8] = b" SIP/2.0";

/// Whether `line` (one line without its LF; a trailing CR is ignored) is a SIP start line:
/// a status line `SIP/2.0 NNN ...` (§7.2, three-digit Status-Code) or a request line
/// `METHOD SP Request-URI SP SIP/2.0` (§7.1) with a non-empty Request-URI.
///
/// Deliberately stricter than the parser, which also reads `sip/2.0` and tabs: §7.1 says
/// implementations MUST send `SIP/2.0` upper-case and methods are upper-case words, and
/// a cheap check that also resynchronises streams and finds messages in free-text logs
/// must not take a line of a body or of a log for a message's first line.
#[inline]
pub fn is_start_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some(rest) = line.strip_prefix(b"SIP/2.0 ") {
        return rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit);
    }
    if !line.first().is_some_and(u8::is_ascii_uppercase) {
        return false;
    }
    let Some(sp) = memchr(b' ', &line[..line.len().min(MAX_METHOD_LEN + 1)]) else {
        return false;
    };
    line[..sp]
        .iter()
        .all(|&b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
        && line.len() > sp + 1 + VERSION_SUFFIX.len()
        && line.ends_with(VERSION_SUFFIX)
}

/// Whether `buf` starts with a complete start line ([`is_start_line`]) that ends within
/// [`MAX_HEADER_BYTES`]. False until the line's LF has arrived.
#[inline]
pub fn starts_with_start_line(buf: &[u8]) -> bool {
    // Both kinds begin with an upper-case letter: RTP (first byte 0x80..=0xBF), TLS and
    // most binary payloads are rejected here without a scan.
    if !buf.first().is_some_and(u8::is_ascii_uppercase) {
        return false;
    }
    match memchr(b'\n', &buf[..buf.len().min(MAX_HEADER_BYTES)]) {
        Some(nl) => is_start_line(&buf[..nl]),
        None => false,
    }
}

/// Bytes of CR/LF at the start of `buf`: keep-alives (RFC 5626 §3.5.1 double-CRLF pings and
/// single-CRLF pongs) and padding between messages, which carry no message.
#[inline]
pub fn leading_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len())
}

/// Why a `Content-Length` value is not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadLength {
    /// Not a decimal number (§20.14: `1*DIGIT`), or more digits than a `u64` holds.
    NotNumber,
    /// Above [`MAX_BODY`].
    TooLarge,
}

/// The value of a `Content-Length` header, surrounding whitespace already removed.
#[inline]
pub fn content_length_value(value: &[u8]) -> Result<usize, BadLength> {
    let n = decimal(value).ok_or(BadLength::NotNumber)?;
    if n > MAX_BODY as u64 {
        return Err(BadLength::TooLarge);
    }
    // Bounded by MAX_BODY above, so the cast cannot truncate.
    Ok(n as usize)
}

/// Whether a header name (trimmed) is `Content-Length` or its compact form `l` (§7.3.3);
/// names are case-insensitive (§7.3.1).
#[inline]
pub fn is_content_length_name(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")
}

/// The length a header line gives, if it is a `Content-Length` (or `l`) line; `None` for
/// any other line. `line` is without its LF; a trailing CR is ignored. Whitespace may stand
/// on either side of the colon (§7.3.1). A line that starts with whitespace continues the
/// header before it (§7.3.1 folding), so it is never a `Content-Length` of its own.
pub fn content_length_header(line: &[u8]) -> Option<Result<usize, BadLength>> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return None;
    }
    let colon = memchr(b':', line)?;
    if !is_content_length_name(trim_lws(&line[..colon])) {
        return None;
    }
    Some(content_length_value(trim_lws(&line[colon + 1..])))
}

/// A decimal number (§25.1 `1*DIGIT`) of at most 19 digits, so it cannot overflow a u64;
/// `None` when empty, not all digits, or longer. CSeq, Content-Length, ports and
/// delta-seconds are all read with it.
#[inline]
pub(super) fn decimal(digits: &[u8]) -> Option<u64> {
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

/// Linear whitespace, including the CR/LF left inside folded values (§25.1 LWS).
#[inline]
fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

#[inline]
pub(super) fn trim_lws_start(s: &[u8]) -> &[u8] {
    let n = s.iter().position(|&b| !is_lws(b)).unwrap_or(s.len());
    &s[n..]
}

#[inline]
pub(super) fn trim_lws(s: &[u8]) -> &[u8] {
    let s = trim_lws_start(s);
    let n = s.iter().rposition(|&b| !is_lws(b)).map_or(0, |i| i + 1);
    &s[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_request_lines_are_start_lines() {
        assert!(is_start_line(b"SIP/2.0 200 OK\r"));
        assert!(is_start_line(b"SIP/2.0 100"));
        assert!(is_start_line(b"INVITE sip:1@2 SIP/2.0"));
        assert!(is_start_line(b"X-FOO_BAR sip:a SIP/2.0\r"));
    }

    #[test]
    fn other_lines_are_not_start_lines() {
        for line in [
            &b""[..],
            b"SIP/2.0",
            b"SIP/2.0 OK",
            b"SIP/2.0/UDP 10.0.0.1:5060",
            b"invite sip:x@y SIP/2.0",
            b"INVITE SIP/2.0",
            b"INVITE  SIP/2.0",
            b"INVITE sip:x@y SIP/2.0 ",
            b"GET / HTTP/1.1",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ sip:a SIP/2.0",
            b"-INVITE sip:a SIP/2.0",
            b"    -- Executing [1101@default:1]",
            b"a=rtpmap:0 PCMU/8000",
        ] {
            assert!(!is_start_line(line), "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn a_start_line_needs_its_line_end_within_the_header_cap() {
        assert!(starts_with_start_line(b"OPTIONS sip:x SIP/2.0\r\n"));
        assert!(!starts_with_start_line(b"OPTIONS sip:x SIP/2.0"));
        assert!(!starts_with_start_line(&[0x80, 0x00, b'\n']));
        let mut long = b"INVITE sip:".to_vec();
        long.resize(MAX_HEADER_BYTES + 10, b'a');
        long.extend_from_slice(b" SIP/2.0\r\n");
        assert!(!starts_with_start_line(&long));
    }

    #[test]
    fn keepalives_are_leading_crlf() {
        assert_eq!(leading_crlf(b"\r\n\r\nSIP"), 4);
        assert_eq!(leading_crlf(b"\n"), 1);
        assert_eq!(leading_crlf(b"INVITE"), 0);
    }

    #[test]
    fn content_length_lines_in_every_allowed_form() {
        assert_eq!(content_length_header(b"Content-Length: 312"), Some(Ok(312)));
        assert_eq!(
            content_length_header(b"content-length:312\r"),
            Some(Ok(312))
        );
        assert_eq!(
            content_length_header(b"CONTENT-LENGTH \t:  0  "),
            Some(Ok(0))
        );
        assert_eq!(content_length_header(b"l: 5"), Some(Ok(5)));
        assert_eq!(content_length_header(b"L :5"), Some(Ok(5)));
        assert_eq!(content_length_header(b"Contact: <sip:a@b>"), None);
        assert_eq!(content_length_header(b"Content-Type: l"), None);
        assert_eq!(content_length_header(b"no colon"), None);
        // A folded continuation line belongs to the header before it.
        assert_eq!(content_length_header(b" l: 5"), None);
    }

    #[test]
    fn content_length_values_are_bounded_numbers() {
        assert_eq!(content_length_value(b"1048576"), Ok(MAX_BODY));
        assert_eq!(content_length_value(b"0000000000000000005"), Ok(5));
        assert_eq!(content_length_value(b"1048577"), Err(BadLength::TooLarge));
        assert_eq!(
            content_length_value(b"99999999999999999999"),
            Err(BadLength::NotNumber)
        );
        for bad in [&b""[..], b"12a", b"-1", b"+1", b"1 2"] {
            assert_eq!(content_length_value(bad), Err(BadLength::NotNumber));
        }
    }
}
