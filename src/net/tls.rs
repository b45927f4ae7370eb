//! SIP over TLS (RFC 3261 §26.2, usually TCP 5061) cannot be read from the wire: this module
//! recognises it and counts such connections per peer, so an operator learns that part of
//! the signalling is missing and that the PBX's trace log source covers it.
//!
//! It looks at the TLS record header only (RFC 8446 §5.1); it never buffers or keeps any
//! byte of an encrypted connection, and its per-peer table is bounded.

use std::collections::HashMap;
use std::net::IpAddr;

/// The hint printed wherever TLS connections are reported.
pub const TLS_HINT: &str = "SIP over TLS cannot be read from the wire: \
add the PBX's SIP trace log as a source, it covers encrypted signalling";

/// Most peers counted one by one; beyond it they are summed in `other_peers`.
pub const MAX_PEERS: usize = 1024;

/// Whether `buf` starts with a TLS record header: content type 20..=23 (change_cipher_spec,
/// alert, handshake, application_data), legacy version 3.x, a length within 2^14 + 2048.
pub fn looks_like_tls(buf: &[u8]) -> bool {
    let [ty, major, minor, hi, lo, ..] = *buf else {
        return false;
    };
    (20..=23).contains(&ty)
        && major == 3
        && minor <= 4
        && usize::from(u16::from_be_bytes([hi, lo])) <= (1 << 14) + 2048
}

/// Whether the record is a ClientHello (handshake type 1): its sender is the client.
pub fn is_client_hello(buf: &[u8]) -> bool {
    buf.first() == Some(&22) && buf.get(5) == Some(&1)
}

/// TLS connections seen, per peer (the client side: phone, trunk or other proxy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPeers {
    peers: HashMap<IpAddr, u64>,
    pub other_peers: u64,
    pub connections: u64,
}

impl TlsPeers {
    pub fn count(&mut self, peer: IpAddr) {
        self.connections += 1;
        if let Some(n) = self.peers.get_mut(&peer) {
            *n += 1;
        } else if self.peers.len() < MAX_PEERS {
            self.peers.insert(peer, 1);
        } else {
            self.other_peers += 1;
        }
    }

    /// Peers with their connection counts, most connections first.
    pub fn by_peer(&self) -> Vec<(IpAddr, u64)> {
        let mut v: Vec<(IpAddr, u64)> = self.peers.iter().map(|(a, n)| (*a, *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// One line for a summary or the health report; `None` when no TLS was seen.
    pub fn summary(&self) -> Option<String> {
        if self.connections == 0 {
            return None;
        }
        let mut parts: Vec<String> = self
            .by_peer()
            .iter()
            .take(10)
            .map(|(a, n)| format!("{a}={n}"))
            .collect();
        if self.peers.len() > 10 || self.other_peers > 0 {
            parts.push("...".into());
        }
        Some(format!(
            "{} TLS connection(s) not readable (peers: {}); {TLS_HINT}",
            self.connections,
            parts.join(" ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_hello_record_is_tls() {
        let hello = [22, 3, 1, 0, 200, 1, 0, 0, 196];
        assert!(looks_like_tls(&hello) && is_client_hello(&hello));
        assert!(looks_like_tls(&[23, 3, 3, 0, 40]));
    }

    #[test]
    fn sip_text_is_not_tls() {
        assert!(!looks_like_tls(b"INVITE sip:a SIP/2.0\r\n"));
        assert!(!looks_like_tls(b"\r\n\r\n"));
    }

    #[test]
    fn peers_are_counted_and_summarised_with_the_hint() {
        let mut t = TlsPeers::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        t.count(a);
        t.count(a);
        assert_eq!(t.by_peer(), vec![(a, 2)]);
        let s = t.summary().expect("summary");
        assert!(s.contains("192.0.2.1=2") && s.contains("trace log"));
    }
}
