//! SIP over WebSocket (RFC 7118) on unencrypted connections: the HTTP/1.1 upgrade
//! (RFC 6455 §4) and the frame format (RFC 6455 §5.2).
//!
//! Used by the TCP reassembler once a connection has upgraded. Each SIP message travels in
//! one WebSocket message (RFC 7118 §4), text or binary, possibly split into fragments
//! (RFC 6455 §5.4). This module only reads headers and de-masks payload bytes into a
//! caller-owned buffer; it keeps no state, never allocates, and never trusts a frame length
//! beyond [`MAX_PAYLOAD`].

use memchr::memmem;

/// Largest frame payload accepted: one whole SIP message at its largest
/// ([`crate::sip::framing::MAX_MESSAGE`]); a larger length is garbage and the stream is
/// abandoned.
pub const MAX_PAYLOAD: u64 = crate::sip::framing::MAX_MESSAGE as u64;

/// Largest HTTP upgrade request or response header section waited for.
pub const MAX_HTTP_HEADERS: usize = 16 << 10;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;

/// A frame header read from the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub opcode: u8,
    /// Bytes of header (2 to 14).
    pub header_len: usize,
    pub payload_len: usize,
    /// Client-to-server frames are masked (RFC 6455 §5.3).
    pub mask: Option<[u8; 4]>,
}

impl FrameHeader {
    pub fn total_len(&self) -> usize {
        self.header_len + self.payload_len
    }

    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The whole frame (header and payload) is in the buffer.
    Frame(FrameHeader),
    NeedMore,
    /// Reserved bits or opcodes, or a length over [`MAX_PAYLOAD`]: not a frame we can follow.
    Bad,
}

/// Reads the frame at the start of `buf` (RFC 6455 §5.2).
pub fn parse_frame(buf: &[u8]) -> Parsed {
    let [b0, b1, ..] = *buf else {
        return Parsed::NeedMore;
    };
    let opcode = b0 & 0x0f;
    // No extension is negotiated for SIP (RFC 7118 §5): RSV bits must be zero.
    if b0 & 0x70 != 0 || !matches!(opcode, 0x0..=0x2 | 0x8..=0xa) {
        return Parsed::Bad;
    }
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Parsed::NeedMore,
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                (u64::from_be_bytes(a), 10)
            }
            None => return Parsed::NeedMore,
        },
        n => (u64::from(n), 2),
    };
    if len > MAX_PAYLOAD {
        return Parsed::Bad;
    }
    let mask = if masked {
        match buf.get(at..at + 4) {
            Some(m) => {
                at += 4;
                Some([m[0], m[1], m[2], m[3]])
            }
            None => return Parsed::NeedMore,
        }
    } else {
        None
    };
    // Bounded by MAX_PAYLOAD above, so the cast cannot truncate.
    let header = FrameHeader {
        fin: b0 & 0x80 != 0,
        opcode,
        header_len: at,
        payload_len: len as usize,
        mask,
    };
    if buf.len() < header.total_len() {
        Parsed::NeedMore
    } else {
        Parsed::Frame(header)
    }
}

/// Appends the frame's payload to `out`, de-masked (RFC 6455 §5.3: byte i XOR mask[i % 4]).
pub fn append_payload(out: &mut Vec<u8>, frame: &[u8], h: &FrameHeader) {
    let payload = &frame[h.header_len..h.total_len()];
    match h.mask {
        None => out.extend_from_slice(payload),
        Some(mask) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4])),
    }
}

/// Whether the first byte could start a data or close frame: used to recognise a WebSocket
/// connection seen after its upgrade (on a configured WebSocket port).
pub fn looks_like_frame(buf: &[u8]) -> bool {
    matches!(buf.first(), Some(0x81 | 0x82 | 0x01 | 0x02 | 0x80 | 0x88))
}

/// What an HTTP message at the start of a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http {
    /// A complete upgrade request or `101 Switching Protocols` response of this many bytes.
    Upgrade(usize),
    /// A complete HTTP message that does not switch to WebSocket.
    Other,
    NeedMore,
}

/// Reads an HTTP/1.1 request or response head at the start of `buf` and tells whether it
/// is a WebSocket upgrade (RFC 6455 §4.1: `Upgrade: websocket`; §4.2.2: status 101).
pub fn http_upgrade(buf: &[u8]) -> Http {
    let window = &buf[..buf.len().min(MAX_HTTP_HEADERS)];
    let Some(end) = memmem::find(window, b"\r\n\r\n").map(|i| i + 4) else {
        return if buf.len() >= MAX_HTTP_HEADERS {
            Http::Other
        } else {
            Http::NeedMore
        };
    };
    let head = &buf[..end];
    let upgrade = if head.starts_with(b"HTTP/1.1 101") {
        true
    } else {
        head.starts_with(b"GET ") && contains_ignore_case(head, b"websocket")
    };
    if upgrade {
        Http::Upgrade(end)
    } else {
        Http::Other
    }
}

/// Whether `buf` starts like an HTTP/1.1 request line or status line we care about.
pub fn starts_like_http(buf: &[u8]) -> bool {
    buf.starts_with(b"GET ") || buf.starts_with(b"HTTP/1.")
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked, as browsers send them.
    pub fn masked(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut f = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    #[test]
    fn a_masked_text_frame_is_unmasked() {
        let f = masked(
            true,
            OP_TEXT,
            b"OPTIONS sip:a SIP/2.0\r\n\r\n",
            [1, 2, 3, 4],
        );
        let Parsed::Frame(h) = parse_frame(&f) else {
            panic!("frame expected")
        };
        assert!(h.fin && h.mask.is_some());
        let mut out = Vec::new();
        append_payload(&mut out, &f, &h);
        assert_eq!(out, b"OPTIONS sip:a SIP/2.0\r\n\r\n");
    }

    #[test]
    fn a_16_bit_length_frame_is_read() {
        let body = vec![b'x'; 300];
        let f = masked(true, OP_BINARY, &body, [9, 9, 9, 9]);
        let Parsed::Frame(h) = parse_frame(&f) else {
            panic!("frame expected")
        };
        assert_eq!((h.header_len, h.payload_len), (8, 300));
    }

    #[test]
    fn a_truncated_frame_needs_more() {
        let f = masked(true, OP_TEXT, b"abcdef", [1, 1, 1, 1]);
        for cut in 0..f.len() {
            assert_eq!(parse_frame(&f[..cut]), Parsed::NeedMore, "cut {cut}");
        }
    }

    #[test]
    fn reserved_bits_and_huge_lengths_are_bad() {
        assert_eq!(parse_frame(&[0xc1, 0x00]), Parsed::Bad);
        let mut huge = vec![0x81, 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(parse_frame(&huge), Parsed::Bad);
    }

    #[test]
    fn upgrade_request_and_101_response_are_recognised() {
        let req = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: sip\r\n\r\n\x81";
        assert_eq!(http_upgrade(req), Http::Upgrade(req.len() - 1));
        let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(http_upgrade(resp), Http::Upgrade(resp.len()));
        assert_eq!(http_upgrade(b"GET / HTTP/1.1\r\n\r\n"), Http::Other);
        assert_eq!(http_upgrade(b"GET / HTTP/1.1\r\nUpgr"), Http::NeedMore);
    }
}
