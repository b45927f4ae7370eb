//! Link, IP and transport layers: from a captured frame to the payload a SIP parser reads.
//!
//! Input: raw frames with their link type (from `source`). Output: [`Datagram`]s, which
//! borrow the frame's bytes or a reassembly buffer: one UDP datagram, or one SIP message
//! framed out of a TCP or WebSocket stream. Nothing here knows what a call is; the only SIP
//! this layer knows is where a message ends on a stream (`framing`). Nothing here allocates
//! per frame, and every piece of reassembly state is capped by [`NetConfig`]. What is
//! decoded, what is counted as unsupported, and the caps: docs/network.md.

use std::fmt;
use std::net::SocketAddr;

mod config;
pub mod decode;
pub mod defrag;
pub mod encap;
pub mod framing;
mod sctp;
pub mod tcp;
pub mod tls;
pub mod websocket;

pub use config::NetConfig;
pub use decode::{DecodeError, DecodeStats, Decoder, LinkType, SkipKind};
pub use tls::{TlsPeers, TLS_HINT};

/// How a SIP message travelled, as the call record reports it (CALL_MODEL `transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
    Sctp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
            Transport::Sctp => "sctp",
        }
    }

    /// Parses the lower-case name written by [`Transport::as_str`].
    pub fn from_name(name: &str) -> Option<Transport> {
        Some(match name {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            "ws" => Transport::Ws,
            "wss" => Transport::Wss,
            "sctp" => Transport::Sctp,
            _ => return None,
        })
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One transport payload with where and when it was seen: the shape every source
/// (capture or PBX log) hands to the SIP layer. Its `Debug` shows the payload's length,
/// never its bytes (a message body must not reach a log through a `{:?}`).
#[derive(Clone, Copy)]
pub struct Datagram<'a> {
    /// Microseconds since the Unix epoch, UTC, from the capture or log line.
    pub ts_us: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    pub payload: &'a [u8],
}

impl std::fmt::Debug for Datagram<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datagram")
            .field("ts_us", &self.ts_us)
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("transport", &self.transport)
            .field("payload", &crate::privacy::Redacted(self.payload))
            .finish()
    }
}
