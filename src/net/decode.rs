//! From a captured frame to a transport payload: link layer, IP, UDP.
//!
//! etherparse slices the headers (Ethernet with 802.1Q/QinQ, IPv4, IPv6 with extension
//! headers, UDP); this module adds the link types it lacks (Linux cooked v2, BSD
//! null/loopback, PPPoE sessions) and counts every frame it cannot hand on, by kind.
//! It borrows the frame and never allocates.

use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, NetSlice, SlicedPacket, TransportSlice};

use super::{Datagram, Transport};

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

/// Why a frame did not yield a SIP-capable payload. Each kind is a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipKind {
    /// A link type we do not decode (the whole capture is skipped).
    UnsupportedLink,
    /// ARP, LLDP and any other non-IP ether type.
    NotIp,
    /// Headers that do not parse (truncated frame, bad lengths).
    Malformed,
    /// An IP fragment: reassembly is not done at this stage.
    IpFragment,
    /// TCP segments: stream reassembly is not done at this stage.
    Tcp,
    /// IP-in-IP, GRE and other tunnels: not decapsulated at this stage.
    Tunnel,
    /// SCTP, ICMP and other IP protocols.
    OtherProtocol,
}

impl SkipKind {
    pub const ALL: [SkipKind; 7] = [
        SkipKind::UnsupportedLink,
        SkipKind::NotIp,
        SkipKind::Malformed,
        SkipKind::IpFragment,
        SkipKind::Tcp,
        SkipKind::Tunnel,
        SkipKind::OtherProtocol,
    ];

    /// A stable snake_case name for summaries and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipKind::UnsupportedLink => "unsupported_link",
            SkipKind::NotIp => "not_ip",
            SkipKind::Malformed => "malformed",
            SkipKind::IpFragment => "ip_fragment",
            SkipKind::Tcp => "tcp",
            SkipKind::Tunnel => "tunnel",
            SkipKind::OtherProtocol => "other_protocol",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of what the decoder saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    pub frames: u64,
    pub datagrams: u64,
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

/// Decodes frames of one link type into datagrams, counting what it skips.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    pub stats: DecodeStats,
}

const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Decodes one frame and hands each transport payload it completes to `on` (none when
    /// the frame was skipped and counted; later, reassembly may complete several).
    pub fn decode(
        &mut self,
        link: LinkType,
        ts_us: i64,
        frame: &[u8],
        mut on: impl FnMut(&Datagram<'_>),
    ) {
        self.stats.frames += 1;
        match self
            .slice(link, frame)
            .and_then(|p| self.datagram(ts_us, &p))
        {
            Ok(d) => {
                self.stats.datagrams += 1;
                on(&d);
            }
            Err(kind) => self.stats.skipped[kind.index()] += 1,
        }
    }

    /// Counts a frame that could not even be attributed to a link type.
    pub fn count_skip(&mut self, kind: SkipKind) {
        self.stats.frames += 1;
        self.stats.skipped[kind.index()] += 1;
    }

    fn slice<'a>(&self, link: LinkType, frame: &'a [u8]) -> Result<SlicedPacket<'a>, SkipKind> {
        let sliced = match link {
            LinkType::Ethernet => SlicedPacket::from_ethernet(frame),
            LinkType::LinuxSll => SlicedPacket::from_linux_sll(frame),
            LinkType::LinuxSll2 => {
                // SLL2 (20 bytes): protocol type (2), reserved (2), ifindex (4), ARPHRD (2),
                // packet type (1), address length (1), address (8). etherparse 0.21 has no
                // SLL2 slicer; the protocol type is an ether type.
                let (hdr, rest) = split(frame, 20)?;
                let ether_type = u16::from_be_bytes([hdr[0], hdr[1]]);
                SlicedPacket::from_ether_type(EtherType(ether_type), rest)
            }
            LinkType::RawIp => SlicedPacket::from_ip(frame),
            LinkType::Null | LinkType::Loop => {
                let (hdr, rest) = split(frame, 4)?;
                let be = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
                let le = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
                // AF_INET is 2 everywhere; AF_INET6 is 24, 28 or 30 depending on the BSD,
                // 10 on Linux. The byte order is the capturing host's, so try both.
                let family = if be < 256 { be } else { le };
                match family {
                    2 | 10 | 24 | 28 | 30 => SlicedPacket::from_ip(rest),
                    _ => return Err(SkipKind::NotIp),
                }
            }
        };
        let sliced = sliced.map_err(|_| SkipKind::Malformed)?;
        if sliced.net.is_none() {
            return self.pppoe(&sliced);
        }
        Ok(sliced)
    }

    /// PPPoE session frames (RFC 2516): 6 bytes of PPPoE, 2 of PPP protocol, then IP.
    /// Seen in real captures from DSL access links.
    fn pppoe<'a>(&self, sliced: &SlicedPacket<'a>) -> Result<SlicedPacket<'a>, SkipKind> {
        let Some(payload) = sliced.ether_payload() else {
            return Err(SkipKind::NotIp);
        };
        if payload.ether_type.0 != ETHERTYPE_PPPOE_SESSION {
            return Err(SkipKind::NotIp);
        }
        let (hdr, ip) = split(payload.payload, 8)?;
        match u16::from_be_bytes([hdr[6], hdr[7]]) {
            0x0021 | 0x0057 => SlicedPacket::from_ip(ip).map_err(|_| SkipKind::Malformed),
            _ => Err(SkipKind::NotIp),
        }
    }

    fn datagram<'a>(&self, ts_us: i64, p: &SlicedPacket<'a>) -> Result<Datagram<'a>, SkipKind> {
        let (src_ip, dst_ip, fragmented, ip_number) = match &p.net {
            Some(NetSlice::Ipv4(v4)) => {
                let h = v4.header();
                (
                    IpAddr::V4(h.source_addr()),
                    IpAddr::V4(h.destination_addr()),
                    v4.is_payload_fragmented(),
                    v4.payload().ip_number.0,
                )
            }
            Some(NetSlice::Ipv6(v6)) => {
                let h = v6.header();
                (
                    IpAddr::V6(h.source_addr()),
                    IpAddr::V6(h.destination_addr()),
                    v6.is_payload_fragmented(),
                    v6.payload().ip_number.0,
                )
            }
            _ => return Err(SkipKind::NotIp),
        };
        if fragmented {
            return Err(SkipKind::IpFragment);
        }
        match &p.transport {
            Some(TransportSlice::Udp(udp)) => Ok(Datagram {
                ts_us,
                src: SocketAddr::new(src_ip, udp.source_port()),
                dst: SocketAddr::new(dst_ip, udp.destination_port()),
                transport: Transport::Udp,
                payload: udp.payload(),
            }),
            Some(TransportSlice::Tcp(_)) => Err(SkipKind::Tcp),
            Some(_) => Err(SkipKind::OtherProtocol),
            // 4 = IP-in-IP, 41 = IPv6-in-IP, 47 = GRE.
            None if matches!(ip_number, 4 | 41 | 47) => Err(SkipKind::Tunnel),
            None if ip_number == 17 => Err(SkipKind::Malformed),
            None => Err(SkipKind::OtherProtocol),
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
    fn tcp_segments_are_counted_not_decoded() {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(5060, 5060, 1, 1000);
        let mut frame = Vec::new();
        b.write(&mut frame, b"INVITE").unwrap();
        let mut d = Decoder::new();
        assert!(one(&mut d, LinkType::Ethernet, 0, &frame).is_none());
        assert_eq!(d.stats.skipped(SkipKind::Tcp), 1);
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
