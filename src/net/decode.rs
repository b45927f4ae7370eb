//! From a captured frame to transport payloads: link layer, encapsulations, IP (with
//! defragmentation), UDP, TCP (with stream reassembly), SCTP.
//!
//! Link types: Ethernet (802.1Q/QinQ VLAN tags, PPPoE sessions), Linux cooked v1 and v2,
//! raw IP, BSD null/loopback. Encapsulations (`encap`): MPLS, GRE (with ERSPAN I/II/III
//! and PPP), IP-in-IP and IPv6-in-IP. etherparse slices IPv4, IPv6 with its extension
//! headers, UDP and TCP; fragments go to the bounded [`Defragmenter`], TCP segments to the
//! bounded [`Reassembler`]. Every frame that yields nothing is counted by kind.
//!
//! It must never allocate per frame (reassembly buffers are owned and reused), never panic
//! on wire data, and never hold state without a cap from [`NetConfig`].

use std::net::{IpAddr, SocketAddr};

use etherparse::{IpSlice, Ipv6ExtensionSlice, TcpSlice, UdpSlice};

use super::config::NetConfig;
use super::defrag::{DefragStats, Defragmenter, Fragment};
use super::encap::{self, Next};
use super::tcp::{Reassembler, Segment, TcpStats};
use super::tls::TlsPeers;
use super::{sctp, Datagram, Transport};

/// Link-layer header types we decode, from the capture's DLT / LINKTYPE value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    /// Linux cooked capture v1 (`tcpdump -i any` before libpcap 1.10).
    LinuxSll,
    /// Linux cooked capture v2 (`tcpdump -i any` on Debian 12).
    LinuxSll2,
    /// Bare IPv4 or IPv6, version from the first nibble.
    RawIp,
    /// BSD loopback: a 4-byte address family in the capturing host's byte order.
    Null,
    /// OpenBSD loopback: the same family, in network byte order.
    Loop,
}

impl LinkType {
    /// Maps a libpcap DLT (or a file's LINKTYPE, where they differ) to a link type.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        Some(match dlt {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            // DLT_RAW is 12 on most systems, 14 on OpenBSD; LINKTYPE_RAW is 101;
            // LINKTYPE_IPV4 / IPV6 are 228 / 229.
            12 | 14 | 101 | 228 | 229 => LinkType::RawIp,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            _ => return None,
        })
    }
}

/// Why a frame yielded no payload. Each kind is a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipKind {
    /// A link type we do not decode (the whole capture is skipped).
    UnsupportedLink,
    /// ARP, LLDP and any other non-IP ether type.
    NotIp,
    /// Headers that do not parse (truncated frame, bad lengths).
    Malformed,
    /// An encapsulation we do not decode (GRE carrying something other than IP, Ethernet,
    /// ERSPAN, MPLS or PPP; MPLS not followed by IP or an Ethernet pseudowire; nesting
    /// deeper than 8 levels).
    UnsupportedEncapsulation,
    /// ICMP and other IP protocols.
    OtherProtocol,
    /// UDP on a port that is not a SIP port while the heuristic is off.
    NotSipPort,
}

impl SkipKind {
    pub const ALL: [SkipKind; 6] = [
        SkipKind::UnsupportedLink,
        SkipKind::NotIp,
        SkipKind::Malformed,
        SkipKind::UnsupportedEncapsulation,
        SkipKind::OtherProtocol,
        SkipKind::NotSipPort,
    ];

    /// A stable snake_case name for summaries and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipKind::UnsupportedLink => "unsupported_link",
            SkipKind::NotIp => "not_ip",
            SkipKind::Malformed => "malformed",
            SkipKind::UnsupportedEncapsulation => "unsupported_encapsulation",
            SkipKind::OtherProtocol => "other_protocol",
            SkipKind::NotSipPort => "not_sip_port",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of what the decoder saw, frame by frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    pub frames: u64,
    /// Payloads handed on: UDP datagrams, SIP messages framed from TCP or WebSocket, SCTP
    /// user messages.
    pub datagrams: u64,
    /// Frames decoded through a tunnel or mirror encapsulation (GRE, ERSPAN, MPLS, IP-in-IP).
    pub encapsulated: u64,
    pub sctp_messages: u64,
    /// SCTP user messages split over several DATA chunks: not reassembled, dropped.
    pub sctp_fragmented: u64,
    skipped: [u64; SkipKind::ALL.len()],
}

impl DecodeStats {
    pub fn skipped(&self, kind: SkipKind) -> u64 {
        self.skipped[kind.index()]
    }

    /// Non-zero skip counters, by kind.
    pub fn skipped_kinds(&self) -> impl Iterator<Item = (SkipKind, u64)> + '_ {
        SkipKind::ALL
            .iter()
            .map(|k| (*k, self.skipped[k.index()]))
            .filter(|(_, n)| *n > 0)
    }
}

/// Kept for symmetry with the other stages' error types: decoding itself never fails, it
/// skips and counts.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("link type {0} is not supported (Ethernet, Linux cooked v1/v2, raw IP and BSD loopback are)")]
    UnsupportedLink(i32),
}

/// Deepest nesting of encapsulations followed (VLAN tags excluded).
const MAX_DEPTH: u8 = 8;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_MPLS_MC: u16 = 0x8848;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;

type Sink<'s> = dyn FnMut(&Datagram<'_>) + 's;

/// Decodes frames into payloads, reassembling IP fragments and TCP streams, counting what
/// it skips. One per input stream (capture file or interface).
pub struct Decoder {
    pub stats: DecodeStats,
    cfg: NetConfig,
    defrag: Defragmenter,
    tcp: Reassembler,
    last_ts: i64,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder with the default [`NetConfig`].
    pub fn new() -> Decoder {
        Decoder::with_config(NetConfig::default())
    }

    pub fn with_config(cfg: NetConfig) -> Decoder {
        let timeout_us = i64::try_from(cfg.defrag_timeout.as_micros()).unwrap_or(i64::MAX);
        Decoder {
            stats: DecodeStats::default(),
            defrag: Defragmenter::new(cfg.defrag_max_datagrams, cfg.defrag_max_bytes, timeout_us),
            tcp: Reassembler::new(cfg.clone()),
            cfg,
            last_ts: i64::MIN,
        }
    }

    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    pub fn defrag_stats(&self) -> DefragStats {
        self.defrag.stats
    }

    pub fn tcp_stats(&self) -> TcpStats {
        self.tcp.stats
    }

    /// TLS connections seen, per peer: signalling we cannot read.
    pub fn tls(&self) -> &TlsPeers {
        &self.tcp.tls
    }

    /// Datagrams held incomplete by IP reassembly, and their bytes.
    pub fn defrag_pending(&self) -> (usize, usize) {
        (self.defrag.pending(), self.defrag.bytes())
    }

    /// TCP connections followed, and the bytes they buffer.
    pub fn tcp_pending(&self) -> (usize, usize) {
        (self.tcp.connections(), self.tcp.bytes())
    }

    /// Every non-zero reassembly counter (IP fragments, TCP, WebSocket, TLS, SCTP), named
    /// for summaries and the health report.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let d = &self.defrag.stats;
        let t = &self.tcp.stats;
        let all = [
            ("ip_fragments", d.fragments),
            ("ip_reassembled", d.reassembled),
            ("ip_frag_timed_out", d.timed_out),
            ("ip_frag_evicted", d.evicted),
            ("ip_frag_invalid", d.invalid),
            ("encapsulated", self.stats.encapsulated),
            ("tcp_segments", t.segments),
            ("tcp_messages", t.messages),
            ("tcp_retransmissions", t.retransmissions),
            ("tcp_overlaps", t.overlaps),
            ("tcp_out_of_order", t.out_of_order),
            ("tcp_gaps", t.gaps),
            ("tcp_broken_messages", t.broken_messages),
            ("tcp_resync_bytes", t.resync_bytes),
            ("tcp_keepalives", t.keepalives),
            ("tcp_not_followed", t.not_followed),
            ("tcp_connections", t.connections),
            ("tcp_idle_closed", t.idle_closed),
            ("tcp_evicted", t.evicted),
            ("tcp_dropped_bytes", t.dropped_bytes),
            ("ws_upgrades", t.ws_upgrades),
            ("ws_messages", t.ws_messages),
            ("ws_lost", t.ws_lost),
            ("tls_connections", self.tcp.tls.connections),
            ("sctp_messages", self.stats.sctp_messages),
            ("sctp_fragmented", self.stats.sctp_fragmented),
        ];
        all.into_iter().filter(|(_, n)| *n > 0).collect()
    }

    /// Decodes one frame and hands each transport payload it completes to `on`: none when
    /// the frame was skipped (and counted) or only part of something, several when it
    /// completes several SIP messages of a TCP stream.
    pub fn decode(
        &mut self,
        link: LinkType,
        ts_us: i64,
        frame: &[u8],
        mut on: impl FnMut(&Datagram<'_>),
    ) {
        self.stats.frames += 1;
        self.last_ts = self.last_ts.max(ts_us);
        let mut handed = 0u64;
        let mut count = |d: &Datagram<'_>| {
            handed += 1;
            on(d);
        };
        if let Err(kind) = self.link(link, ts_us, frame, &mut count) {
            self.stats.skipped[kind.index()] += 1;
        }
        self.stats.datagrams += handed;
    }

    /// End of input: holes still open in TCP streams are given up (what follows them is
    /// used), then every connection is forgotten and partial messages counted as broken.
    pub fn finish(&mut self, mut on: impl FnMut(&Datagram<'_>)) {
        let mut handed = 0u64;
        let mut count = |d: &Datagram<'_>| {
            handed += 1;
            on(d);
        };
        self.tcp.finish(self.last_ts, &mut count);
        self.defrag.expire(i64::MAX);
        self.stats.datagrams += handed;
    }

    /// Counts a frame that could not even be attributed to a link type.
    pub fn count_skip(&mut self, kind: SkipKind) {
        self.stats.frames += 1;
        self.stats.skipped[kind.index()] += 1;
    }

    fn link(
        &mut self,
        link: LinkType,
        ts: i64,
        frame: &[u8],
        on: &mut Sink<'_>,
    ) -> Result<(), SkipKind> {
        match link {
            LinkType::Ethernet => self.ethernet(ts, frame, 0, on),
            LinkType::LinuxSll => {
                // SLL (16 bytes): packet type (2), ARPHRD (2), address length (2), address (8),
                // protocol type (2), an ether type for Ethernet-like devices.
                let (hdr, rest) = split(frame, 16)?;
                self.ether(ts, u16::from_be_bytes([hdr[14], hdr[15]]), rest, 0, on)
            }
            LinkType::LinuxSll2 => {
                // SLL2 (20 bytes): protocol type (2), reserved (2), ifindex (4), ARPHRD (2),
                // packet type (1), address length (1), address (8). etherparse 0.21 has no
                // SLL2 slicer; the protocol type is an ether type.
                let (hdr, rest) = split(frame, 20)?;
                self.ether(ts, u16::from_be_bytes([hdr[0], hdr[1]]), rest, 0, on)
            }
            LinkType::RawIp => self.ip(ts, frame, 0, on),
            LinkType::Null | LinkType::Loop => {
                let (hdr, rest) = split(frame, 4)?;
                let be = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
                let le = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
                // AF_INET is 2 everywhere; AF_INET6 is 24, 28 or 30 depending on the BSD,
                // 10 on Linux. The byte order is the capturing host's, so try both.
                let family = if be < 256 { be } else { le };
                match family {
                    2 | 10 | 24 | 28 | 30 => self.ip(ts, rest, 0, on),
                    _ => Err(SkipKind::NotIp),
                }
            }
        }
    }

    fn ethernet(
        &mut self,
        ts: i64,
        frame: &[u8],
        depth: u8,
        on: &mut Sink<'_>,
    ) -> Result<(), SkipKind> {
        let (hdr, rest) = split(frame, 14)?;
        self.ether(ts, u16::from_be_bytes([hdr[12], hdr[13]]), rest, depth, on)
    }

    /// Follows an ether type through VLAN tags, MPLS and PPPoE to IP.
    fn ether(
        &mut self,
        ts: i64,
        mut ether_type: u16,
        mut data: &[u8],
        depth: u8,
        on: &mut Sink<'_>,
    ) -> Result<(), SkipKind> {
        loop {
            match ether_type {
                ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => return self.ip(ts, data, depth, on),
                ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                    // 802.1Q tag: TCI (2), then the inner ether type (2).
                    let (tag, rest) = split(data, 4)?;
                    ether_type = u16::from_be_bytes([tag[2], tag[3]]);
                    data = rest;
                }
                ETHERTYPE_MPLS | ETHERTYPE_MPLS_MC => {
                    let next = encap::mpls(data).map_err(|_| SkipKind::Malformed)?;
                    return self.next(ts, next, depth, on);
                }
                ETHERTYPE_PPPOE_SESSION => {
                    // PPPoE session (RFC 2516): 6 bytes, then PPP. Seen on DSL access links.
                    let (_, ppp) = split(data, 6)?;
                    let next = encap::ppp(ppp).map_err(|_| SkipKind::Malformed)?;
                    return match next {
                        Next::Ip(packet) => self.ip(ts, packet, depth, on),
                        _ => Err(SkipKind::NotIp),
                    };
                }
                _ => return Err(SkipKind::NotIp),
            }
        }
    }

    /// Decodes what an encapsulation header said follows it.
    fn next(
        &mut self,
        ts: i64,
        next: Next<'_>,
        depth: u8,
        on: &mut Sink<'_>,
    ) -> Result<(), SkipKind> {
        if depth >= MAX_DEPTH {
            return Err(SkipKind::UnsupportedEncapsulation);
        }
        let depth = depth + 1;
        if depth == 1 {
            self.stats.encapsulated += 1;
        }
        match next {
            Next::Ethernet(frame) => self.ethernet(ts, frame, depth, on),
            Next::Ip(packet) => self.ip(ts, packet, depth, on),
            Next::Mpls(stack) => {
                let next = encap::mpls(stack).map_err(|_| SkipKind::Malformed)?;
                self.next(ts, next, depth, on)
            }
            Next::Ppp(ppp) => {
                let next = encap::ppp(ppp).map_err(|_| SkipKind::Malformed)?;
                self.next(ts, next, depth, on)
            }
            Next::Unsupported(_) => Err(SkipKind::UnsupportedEncapsulation),
        }
    }

    /// IPv4 or IPv6 (extension headers: hop-by-hop, routing, fragment, destination options,
    /// authentication), fragments through the defragmenter.
    fn ip(&mut self, ts: i64, packet: &[u8], depth: u8, on: &mut Sink<'_>) -> Result<(), SkipKind> {
        let ip = IpSlice::from_slice(packet).map_err(|_| SkipKind::Malformed)?;
        let (src, dst) = (ip.source_addr(), ip.destination_addr());
        let proto = ip.payload_ip_number().0;
        let fragment = match &ip {
            IpSlice::Ipv4(v4) if v4.is_payload_fragmented() => {
                let h = v4.header();
                Some(Fragment {
                    src,
                    dst,
                    id: u32::from(h.identification()),
                    proto,
                    offset: h.fragments_offset(),
                    more: h.more_fragments(),
                    payload: v4.payload().payload,
                })
            }
            IpSlice::Ipv6(v6) if v6.is_payload_fragmented() => {
                let frag = v6.extensions().clone().into_iter().find_map(|e| match e {
                    Ipv6ExtensionSlice::Fragment(f) => Some(f),
                    _ => None,
                });
                let Some(f) = frag else {
                    return Err(SkipKind::Malformed);
                };
                Some(Fragment {
                    src,
                    dst,
                    id: f.identification(),
                    proto,
                    offset: f.fragment_offset(),
                    more: f.more_fragments(),
                    payload: v6.payload().payload,
                })
            }
            _ => None,
        };
        match fragment {
            None => self.transport(ts, src, dst, proto, ip.payload().payload, depth, on),
            Some(f) => {
                let Some(whole) = self.defrag.add(ts, &f) else {
                    return Ok(());
                };
                let r = self.transport(
                    ts,
                    whole.src,
                    whole.dst,
                    whole.proto,
                    &whole.data,
                    depth,
                    on,
                );
                self.defrag.recycle(whole.data);
                r
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn transport(
        &mut self,
        ts: i64,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        payload: &[u8],
        depth: u8,
        on: &mut Sink<'_>,
    ) -> Result<(), SkipKind> {
        match proto {
            17 => {
                let udp = UdpSlice::from_slice(payload).map_err(|_| SkipKind::Malformed)?;
                let (sp, dp) = (udp.source_port(), udp.destination_port());
                if !self.cfg.heuristic && !self.cfg.is_sip_port(sp) && !self.cfg.is_sip_port(dp) {
                    return Err(SkipKind::NotSipPort);
                }
                on(&Datagram {
                    ts_us: ts,
                    src: SocketAddr::new(src, sp),
                    dst: SocketAddr::new(dst, dp),
                    transport: Transport::Udp,
                    payload: udp.payload(),
                });
                Ok(())
            }
            6 => {
                let tcp = TcpSlice::from_slice(payload).map_err(|_| SkipKind::Malformed)?;
                let seg = Segment {
                    ts_us: ts,
                    src: SocketAddr::new(src, tcp.source_port()),
                    dst: SocketAddr::new(dst, tcp.destination_port()),
                    seq: tcp.sequence_number(),
                    syn: tcp.syn(),
                    fin: tcp.fin(),
                    rst: tcp.rst(),
                    payload: tcp.payload(),
                };
                self.tcp.segment(&seg, on);
                Ok(())
            }
            132 => {
                let (sp, dp) = match payload {
                    [a, b, c, d, ..] => {
                        (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))
                    }
                    _ => return Err(SkipKind::Malformed),
                };
                let (src, dst) = (SocketAddr::new(src, sp), SocketAddr::new(dst, dp));
                let mut n = 0;
                let skipped = sctp::data_chunks(payload, |data| {
                    n += 1;
                    on(&Datagram {
                        ts_us: ts,
                        src,
                        dst,
                        transport: Transport::Sctp,
                        payload: data,
                    });
                })
                .map_err(|_| SkipKind::Malformed)?;
                self.stats.sctp_messages += n;
                self.stats.sctp_fragmented += skipped;
                Ok(())
            }
            // IPv4-in-IP (RFC 2003) and IPv6-in-IP (RFC 4213).
            4 | 41 => self.next(ts, Next::Ip(payload), depth, on),
            47 => {
                let next = encap::gre(payload).map_err(|_| SkipKind::Malformed)?;
                self.next(ts, next, depth, on)
            }
            // MPLS-in-IP (RFC 4023).
            137 => self.next(ts, Next::Mpls(payload), depth, on),
            _ => Err(SkipKind::OtherProtocol),
        }
    }
}

fn split(data: &[u8], at: usize) -> Result<(&[u8], &[u8]), SkipKind> {
    if data.len() < at {
        Err(SkipKind::Malformed)
    } else {
        Ok(data.split_at(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn udp_ipv4_eth(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(5060, 5070);
        let mut out = Vec::new();
        b.write(&mut out, payload).expect("build");
        out
    }

    /// Decodes one frame, returning the payload and addresses of the datagram it gave.
    fn one(
        d: &mut Decoder,
        link: LinkType,
        ts: i64,
        frame: &[u8],
    ) -> Option<(Vec<u8>, SocketAddr, SocketAddr, i64)> {
        let mut got = None;
        d.decode(link, ts, frame, |dg| {
            got = Some((dg.payload.to_vec(), dg.src, dg.dst, dg.ts_us))
        });
        got
    }

    #[test]
    fn ethernet_ipv4_udp_yields_addresses_ports_and_payload() {
        let frame = udp_ipv4_eth(b"OPTIONS sip:x SIP/2.0\r\n\r\n");
        let mut d = Decoder::new();
        let (payload, src, dst, ts) = one(&mut d, LinkType::Ethernet, 7, &frame).expect("datagram");
        assert_eq!(src, "10.0.0.1:5060".parse().unwrap());
        assert_eq!(dst, "10.0.0.2:5070".parse().unwrap());
        assert_eq!(payload, b"OPTIONS sip:x SIP/2.0\r\n\r\n");
        assert_eq!(ts, 7);
        assert_eq!(d.stats.datagrams, 1);
    }

    #[test]
    fn vlan_and_qinq_tagged_frames_are_decoded() {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .double_vlan(10.try_into().unwrap(), 20.try_into().unwrap())
            .ipv6([1; 16], [2; 16], 64)
            .udp(5060, 5060);
        let mut frame = Vec::new();
        b.write(&mut frame, b"x").unwrap();
        let mut d = Decoder::new();
        let (payload, src, _, _) = one(&mut d, LinkType::Ethernet, 0, &frame).expect("datagram");
        assert!(src.is_ipv6());
        assert_eq!(payload, b"x");
    }

    #[test]
    fn linux_sll2_header_is_skipped_by_its_protocol_type() {
        let eth = udp_ipv4_eth(b"hello");
        let mut frame = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        frame.extend_from_slice(&eth[14..]);
        let mut d = Decoder::new();
        assert_eq!(
            one(&mut d, LinkType::LinuxSll2, 0, &frame)
                .expect("datagram")
                .0,
            b"hello"
        );
    }

    #[test]
    fn bsd_null_loopback_accepts_either_byte_order() {
        let eth = udp_ipv4_eth(b"hi");
        for hdr in [[2u8, 0, 0, 0], [0, 0, 0, 2]] {
            let mut frame = hdr.to_vec();
            frame.extend_from_slice(&eth[14..]);
            let mut d = Decoder::new();
            assert_eq!(
                one(&mut d, LinkType::Null, 0, &frame).expect("datagram").0,
                b"hi"
            );
        }
    }

    #[test]
    fn pppoe_session_frames_are_decoded() {
        let eth = udp_ipv4_eth(b"pppoe");
        let mut frame = eth[..12].to_vec();
        frame.extend_from_slice(&[0x88, 0x64, 0x11, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x21]);
        frame.extend_from_slice(&eth[14..]);
        let mut d = Decoder::new();
        assert_eq!(
            one(&mut d, LinkType::Ethernet, 0, &frame)
                .expect("datagram")
                .0,
            b"pppoe"
        );
    }

    #[test]
    fn a_tcp_segment_holding_a_whole_message_yields_it() {
        let msg = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(5060, 5060, 1, 1000);
        let mut frame = Vec::new();
        b.write(&mut frame, msg).unwrap();
        let mut d = Decoder::new();
        let (payload, ..) = one(&mut d, LinkType::Ethernet, 0, &frame).expect("message");
        assert_eq!(payload, msg);
    }

    #[test]
    fn truncated_and_garbage_frames_are_counted_as_malformed() {
        let frame = udp_ipv4_eth(b"hello");
        let mut d = Decoder::new();
        for cut in 0..frame.len() - 5 {
            let _ = one(&mut d, LinkType::Ethernet, 0, &frame[..cut]);
        }
        assert_eq!(d.stats.datagrams, 0);
        assert!(d.stats.skipped(SkipKind::Malformed) > 0);
        assert!(one(&mut d, LinkType::LinuxSll2, 0, &[1, 2, 3]).is_none());
    }
}
