//! The SIP message scanner: zero-copy, no allocation per message.
//!
//! Input: one transport payload (a UDP datagram, a reassembled TCP chunk, a message cut
//! out of a PBX log). Output: a [`SipMessage`] whose fields borrow the input. Only the
//! headers callmeta needs are located; everything else is skipped. Nothing here knows
//! about calls or dialogs.
//!
//! Must never: allocate per message (tests/sip_alloc.rs counts), panic on any input, or
//! put message bytes into an error (a [`ParseError`] is a kind and a byte offset). The
//! body is handed on as a slice; [`sdp`] reads codec names and media types from it and
//! nothing else.
//!
//! [`framing`] holds what every reader of SIP (this parser, the TCP/WebSocket reassembler,
//! the PBX log framers) must agree on to find a message: its start line, its
//! `Content-Length`, and the size caps.

pub mod framing;
mod message;
mod parser;
pub mod sdp;

pub use framing::{MAX_BODY, MAX_HEADER_BYTES};
pub use message::{CSeq, Method, NameAddr, SipMessage, StartLine, Uri, Via};
pub use parser::{looks_like_sip, parse, parse_datagram, ParseError};
