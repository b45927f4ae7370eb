//! The SIP message scanner: zero-copy, no allocation per message.
//!
//! Input: one transport payload (a UDP datagram, a reassembled TCP chunk, a message cut
//! out of a PBX log). Output: a [`SipMessage`] whose fields borrow the input. Only the
//! headers callmeta needs are located; everything else is skipped. Nothing here knows
//! about calls or dialogs.

mod message;
mod parser;
pub mod sdp;

pub use message::{CSeq, Method, NameAddr, SipMessage, StartLine, Uri, Via};
pub use parser::{looks_like_sip, parse, ParseError, MAX_CONTENT_LENGTH, MAX_HEADER_BYTES};
