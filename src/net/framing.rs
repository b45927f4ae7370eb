//! SIP message boundaries in a byte stream (RFC 3261 §18.3): the start line, the blank line
//! ending the headers, and `Content-Length` bytes of body.
//!
//! The TCP and WebSocket reassemblers need to know where one message ends and the next
//! begins; this is the small SIP-aware part DESIGN allows in `net`. What a start line and a
//! `Content-Length` are, and the caps, come from [`crate::sip::framing`], the one place
//! every reader takes them from; this module adds what only a stream needs: waiting for
//! bytes, the blank line, and resynchronising. It reads no header but `Content-Length` (and
//! its compact form `l`), keeps nothing, and never allocates. It must never trust a length
//! from the wire beyond [`crate::sip::MAX_BODY`] or wait for headers beyond
//! [`MAX_HEADER_BYTES`].

use memchr::{memchr, memchr_iter, memmem};

use crate::sip::framing::{content_length_header, is_start_line, MAX_HEADER_BYTES, MAX_METHOD_LEN};
// The reassembler asks these of a stream's first bytes too; they are the parser's rules.
pub use crate::sip::framing::{leading_crlf, starts_with_start_line};

/// Where the message at the start of a buffer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A whole message of this many bytes is present.
    Complete(usize),
    /// The message is not complete yet; wait for more bytes. Once its headers are in, its
    /// total length is known.
    NeedMore(Option<usize>),
    /// The bytes at the start cannot be a message we can frame (no start line, headers
    /// over [`MAX_HEADER_BYTES`], a bad or oversized `Content-Length`): resynchronise.
    Bad,
}

/// Could `buf` still become a start line once more bytes arrive? True for a prefix of one
/// (no line end yet, only start-line characters so far).
fn may_become_start_line(buf: &[u8]) -> bool {
    if buf.len() > MAX_HEADER_BYTES || memchr(b'\n', buf).is_some() {
        return false;
    }
    // A method token, or the `SIP/2.0` of a status line, before the first space.
    let head = &buf[..buf.len().min(MAX_METHOD_LEN + 1)];
    let token = match memchr(b' ', head) {
        Some(sp) => &head[..sp],
        None => head,
    };
    token.iter().all(|&b| {
        b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'/' | b'.')
    })
}

/// Offset of the first line in `buf` that is (or may still become) a SIP start line, for
/// resynchronising a stream seen from its middle or after a gap. `None` when no line can be:
/// everything may be discarded.
pub fn find_start_line(buf: &[u8]) -> Option<usize> {
    let candidates = std::iter::once(0).chain(memchr_iter(b'\n', buf).map(|nl| nl + 1));
    for at in candidates {
        if at >= buf.len() {
            // A line end at the very end: the next line has not begun yet.
            return None;
        }
        let rest = &buf[at..];
        if starts_with_start_line(rest) || may_become_start_line(rest) {
            return Some(at);
        }
    }
    None
}

/// Frames the message at the start of `buf` (which must begin with its start line, leading
/// CR/LF already skipped).
pub fn frame(buf: &[u8]) -> Frame {
    let window = &buf[..buf.len().min(MAX_HEADER_BYTES)];
    let Some(first_nl) = memchr(b'\n', window) else {
        return if buf.len() >= MAX_HEADER_BYTES || !may_become_start_line(buf) {
            Frame::Bad
        } else {
            Frame::NeedMore(None)
        };
    };
    if !is_start_line(&buf[..first_nl]) {
        return Frame::Bad;
    }
    let Some(body_at) = header_end(window, first_nl) else {
        return if buf.len() >= MAX_HEADER_BYTES {
            Frame::Bad
        } else {
            Frame::NeedMore(None)
        };
    };
    let body_len = match content_length(&buf[first_nl + 1..body_at]) {
        // RFC 3261 §18.3: on a stream the header is mandatory; a message without it is
        // taken to end at the blank line (as SIP servers do), rather than stalling the stream.
        Ok(None) => 0,
        Ok(Some(n)) => n,
        Err(()) => return Frame::Bad,
    };
    let total = body_at + body_len;
    if buf.len() >= total {
        Frame::Complete(total)
    } else {
        Frame::NeedMore(Some(total))
    }
}

/// Offset just past the blank line ending the headers (CRLF CRLF, or bare LF LF as some
/// stacks send), searched from the end of the start line.
fn header_end(window: &[u8], first_nl: usize) -> Option<usize> {
    // The start line's own LF may begin the blank-line sequence of a header-less message.
    let from = first_nl;
    let crlf = memmem::find(&window[from..], b"\n\r\n").map(|i| from + i + 3);
    let lf = memmem::find(&window[from..], b"\n\n").map(|i| from + i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The value of `Content-Length` (or compact `l`) among header lines. One that is not a
/// number or over [`crate::sip::MAX_BODY`], or two that disagree, cannot be framed (`Err`), as the
/// parser rejects them too.
fn content_length(headers: &[u8]) -> Result<Option<usize>, ()> {
    let mut found: Option<usize> = None;
    for line in headers.split(|&b| b == b'\n') {
        let Some(n) = content_length_header(line) else {
            continue;
        };
        let n = n.map_err(|_| ())?;
        match found {
            Some(prev) if prev != n => return Err(()),
            _ => found = Some(n),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] =
        b"INVITE sip:bob@b.example SIP/2.0\r\nCall-ID: x\r\nContent-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn a_complete_message_is_framed_by_its_content_length() {
        let mut two = INVITE.to_vec();
        two.extend_from_slice(INVITE);
        assert_eq!(frame(&two), Frame::Complete(INVITE.len()));
    }

    #[test]
    fn every_proper_prefix_of_a_message_needs_more() {
        for cut in 1..INVITE.len() {
            assert!(
                matches!(frame(&INVITE[..cut]), Frame::NeedMore(_)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn compact_l_and_spaced_colon_are_content_length() {
        let m = b"SIP/2.0 200 OK\r\nl : 2\r\n\r\nok";
        assert_eq!(frame(m), Frame::Complete(m.len()));
    }

    #[test]
    fn a_folded_line_is_not_a_content_length_of_its_own() {
        // RFC 3261 §7.3.1: ` l: 9` continues Subject, as the parser reads it.
        let m = b"SIP/2.0 200 OK\r\nSubject: x\r\n l: 9\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(frame(m), Frame::Complete(m.len()));
    }

    #[test]
    fn missing_content_length_ends_at_the_blank_line() {
        let m = b"BYE sip:a@b SIP/2.0\r\nCall-ID: y\r\n\r\nSIP/2.0 200 OK\r\n";
        assert_eq!(frame(m), Frame::Complete(35));
    }

    #[test]
    fn bare_lf_headers_are_framed() {
        let m = b"OPTIONS sip:a SIP/2.0\nContent-Length: 0\n\n";
        assert_eq!(frame(m), Frame::Complete(m.len()));
    }

    #[test]
    fn oversized_or_conflicting_content_length_is_bad() {
        assert_eq!(
            frame(b"SIP/2.0 200 OK\r\nContent-Length: 99999999\r\n\r\n"),
            Frame::Bad
        );
        assert_eq!(
            frame(b"SIP/2.0 200 OK\r\nContent-Length: 1\r\nl: 2\r\n\r\nab"),
            Frame::Bad
        );
    }

    #[test]
    fn a_non_sip_first_line_is_bad() {
        assert_eq!(frame(b"HTTP/1.1 200 OK\r\n\r\n"), Frame::Bad);
        assert_eq!(frame(b"hello"), Frame::Bad);
    }

    #[test]
    fn resync_finds_the_next_start_line_after_body_bytes() {
        let mut s = b"a=rtpmap:0 PCMU/8000\r\n".to_vec();
        s.extend_from_slice(INVITE);
        assert_eq!(find_start_line(&s), Some(22));
        assert_eq!(find_start_line(b"a=sendrecv\r\nm=aud"), None);
        assert_eq!(find_start_line(b"xx\r\nSIP/2."), Some(4));
    }
}
