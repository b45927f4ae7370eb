//! The network layer's settings: which ports carry SIP, and the caps on reassembly state.
//!
//! `crate::config` owns the configuration file; it fills a [`NetConfig`] (the keys are
//! listed in docs/network.md). Every cap here has a counter in [`super::NetStats`] for what
//! it evicted or dropped. Nothing here reads files or the environment.

use std::time::Duration;

/// Ports and limits for decoding, IP defragmentation and TCP/WebSocket reassembly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// UDP/TCP ports carrying plain SIP. Default 5060 and 5080.
    pub sip_ports: Vec<u16>,
    /// TCP ports where a connection is SIP over TLS (RFC 3261 §26.2): counted, not read.
    /// On UDP these ports are plain SIP (some phones send SIP over UDP to 5061). Default 5061.
    pub tls_ports: Vec<u16>,
    /// TCP ports carrying SIP over WebSocket (RFC 7118). Default 8088 and 8089 (Asterisk's
    /// HTTP and HTTPS ports; an encrypted connection is counted as TLS).
    pub ws_ports: Vec<u16>,
    /// Recognise SIP on any UDP or TCP port by its start line. Off: only the ports above.
    pub heuristic: bool,
    /// Most IP datagrams held for reassembly at once; the oldest is dropped beyond it.
    pub defrag_max_datagrams: usize,
    /// Most bytes held for IP reassembly in total; the oldest datagrams are dropped beyond it.
    pub defrag_max_bytes: usize,
    /// An incomplete datagram is dropped this long after its first fragment (RFC 791 and
    /// Linux `ipfrag_time` use 15–30 s).
    pub defrag_timeout: Duration,
    /// Most TCP connections followed at once; the least recently active is dropped beyond it.
    pub tcp_max_connections: usize,
    /// Most bytes buffered for one direction of one connection (in-order data not yet framed
    /// plus out-of-order segments). A message larger than this is dropped and counted.
    pub tcp_max_stream_bytes: usize,
    /// Most bytes buffered over all connections; the least recently active are dropped.
    pub tcp_max_bytes: usize,
    /// A connection with no segment for this long is forgotten.
    pub tcp_idle_timeout: Duration,
    /// How long a hole in the sequence space is waited for (the sender's retransmission)
    /// before the bytes after it are used and the message across it is counted as broken.
    pub tcp_gap_timeout: Duration,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            sip_ports: vec![5060, 5080],
            tls_ports: vec![5061],
            ws_ports: vec![8088, 8089],
            heuristic: true,
            defrag_max_datagrams: 4096,
            defrag_max_bytes: 16 << 20,
            defrag_timeout: Duration::from_secs(30),
            tcp_max_connections: 16_384,
            // A SIP message is at most 64 KiB of headers plus a body; 256 KiB holds any real
            // one (the corpus' largest, suricata-verify sip-body-large, is about 64 KiB).
            tcp_max_stream_bytes: 256 << 10,
            tcp_max_bytes: 64 << 20,
            // SIP over TCP connections idle for minutes between calls (RFC 5626 keep-alives
            // every 2 min or so); forgetting one costs only a resynchronisation.
            tcp_idle_timeout: Duration::from_secs(600),
            // Linux' minimum RTO is 200 ms; a few backoffs fit in 3 s.
            tcp_gap_timeout: Duration::from_secs(3),
        }
    }
}

impl NetConfig {
    /// Whether `port` is one of the configured SIP, TLS or WebSocket ports.
    pub fn is_sip_port(&self, port: u16) -> bool {
        self.sip_ports.contains(&port)
            || self.tls_ports.contains(&port)
            || self.ws_ports.contains(&port)
    }

    pub fn is_tls_port(&self, port: u16) -> bool {
        self.tls_ports.contains(&port)
    }

    pub fn is_ws_port(&self, port: u16) -> bool {
        self.ws_ports.contains(&port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_are_the_issue_defaults() {
        let c = NetConfig::default();
        for p in [5060, 5061, 5080, 8088, 8089] {
            assert!(c.is_sip_port(p), "{p}");
        }
        assert!(c.is_tls_port(5061) && !c.is_tls_port(5060));
        assert!(!c.is_sip_port(80));
    }
}
