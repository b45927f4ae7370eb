//! Encapsulations found on span and mirror ports: MPLS label stacks (RFC 3032), GRE
//! (RFC 2784, RFC 2890 keys and sequence numbers, RFC 2637 enhanced GRE for PPP), Cisco
//! ERSPAN type I, II and III inside GRE, and PPP framing. IP-in-IP needs no header of its
//! own and is handled by the decoder.
//!
//! Each function reads one header and says what follows; none copies or allocates, and a
//! header cut short is `Malformed`, never a panic.

/// What follows a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next<'a> {
    /// An Ethernet frame (bridged Ethernet in GRE, ERSPAN, an MPLS pseudowire).
    Ethernet(&'a [u8]),
    /// An IPv4 or IPv6 packet (version from its first nibble).
    Ip(&'a [u8]),
    /// An MPLS label stack.
    Mpls(&'a [u8]),
    /// PPP with its protocol field (RFC 1661 §2), as carried by PPTP's enhanced GRE.
    Ppp(&'a [u8]),
    /// A payload type we do not decode; the value names it for the counter.
    Unsupported(u16),
}

/// The header is shorter than its fields say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

const GRE_CHECKSUM: u16 = 0x8000;
const GRE_ROUTING: u16 = 0x4000;
const GRE_KEY: u16 = 0x2000;
const GRE_SEQ: u16 = 0x1000;
/// Enhanced GRE (RFC 2637 §4.1) carries an acknowledgement number when this bit is set.
const GRE_ACK: u16 = 0x0080;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_TEB: u16 = 0x6558;
const ETH_P_MPLS: u16 = 0x8847;
const ETH_P_MPLS_MC: u16 = 0x8848;
const ETH_P_PPP: u16 = 0x880b;
const ETH_P_ERSPAN2: u16 = 0x88be;
const ETH_P_ERSPAN3: u16 = 0x22eb;

/// Reads a GRE header (IP protocol 47).
pub fn gre(data: &[u8]) -> Result<Next<'_>, Malformed> {
    let [f0, f1, p0, p1, ..] = *data else {
        return Err(Malformed);
    };
    let flags = u16::from_be_bytes([f0, f1]);
    let proto = u16::from_be_bytes([p0, p1]);
    if flags & GRE_ROUTING != 0 {
        // RFC 1701 source routing: deprecated, variable-length, not seen on mirrors.
        return Ok(Next::Unsupported(proto));
    }
    let mut len = 4;
    if flags & GRE_CHECKSUM != 0 {
        len += 4;
    }
    if flags & GRE_KEY != 0 {
        len += 4;
    }
    let seq = flags & GRE_SEQ != 0;
    if seq {
        len += 4;
    }
    if flags & 0x7 == 1 && flags & GRE_ACK != 0 {
        len += 4;
    }
    let payload = data.get(len..).ok_or(Malformed)?;
    Ok(match proto {
        ETH_P_IP | ETH_P_IPV6 => Next::Ip(payload),
        ETH_P_TEB => Next::Ethernet(payload),
        ETH_P_MPLS | ETH_P_MPLS_MC => Next::Mpls(payload),
        ETH_P_PPP => Next::Ppp(payload),
        // ERSPAN type I has no header of its own and no GRE sequence number; type II has
        // both (an 8-byte header whose version field is 1).
        ETH_P_ERSPAN2 if !seq => Next::Ethernet(payload),
        ETH_P_ERSPAN2 => Next::Ethernet(payload.get(8..).ok_or(Malformed)?),
        ETH_P_ERSPAN3 => {
            // Type III: 12 bytes; the O flag (last bit) adds an 8-byte platform subheader.
            let hdr = payload.get(..12).ok_or(Malformed)?;
            let skip = if hdr[11] & 1 != 0 { 20 } else { 12 };
            Next::Ethernet(payload.get(skip..).ok_or(Malformed)?)
        }
        other => Next::Unsupported(other),
    })
}

/// Pops an MPLS label stack (RFC 3032 §2.1) and guesses what follows it: IP by its
/// version nibble, else an Ethernet pseudowire behind a control word (RFC 4448 §3).
pub fn mpls(data: &[u8]) -> Result<Next<'_>, Malformed> {
    let mut at = 0;
    // A stack deeper than 8 labels is not seen on real networks; stop rather than loop.
    for _ in 0..8 {
        let label = data.get(at..at + 4).ok_or(Malformed)?;
        at += 4;
        if label[2] & 1 != 0 {
            let rest = &data[at..];
            return Ok(match rest.first().map(|b| b >> 4) {
                Some(4 | 6) => Next::Ip(rest),
                Some(0) => Next::Ethernet(rest.get(4..).ok_or(Malformed)?),
                _ => Next::Unsupported(ETH_P_MPLS),
            });
        }
    }
    Ok(Next::Unsupported(ETH_P_MPLS))
}

/// Reads PPP framing: optional address/control bytes (0xff 0x03), then a one- or two-byte
/// protocol field (RFC 1661 §2: protocol field compression makes it one byte when odd).
pub fn ppp(data: &[u8]) -> Result<Next<'_>, Malformed> {
    let data = data.strip_prefix(&[0xff, 0x03]).unwrap_or(data);
    let first = *data.first().ok_or(Malformed)?;
    let (proto, rest) = if first & 1 == 1 {
        (u16::from(first), &data[1..])
    } else {
        let p = data.get(..2).ok_or(Malformed)?;
        (u16::from_be_bytes([p[0], p[1]]), &data[2..])
    };
    Ok(match proto {
        0x0021 | 0x0057 => Next::Ip(rest),
        other => Next::Unsupported(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gre_with_key_and_sequence_gives_its_ip_payload() {
        let pkt = [0x30, 0, 0x08, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0x45, 0];
        assert_eq!(gre(&pkt), Ok(Next::Ip(&[0x45, 0])));
    }

    #[test]
    fn erspan_type_two_skips_its_eight_byte_header() {
        let mut pkt = vec![0x10, 0, 0x88, 0xbe, 0, 0, 0, 9];
        pkt.extend_from_slice(&[0x10, 0, 0, 1, 0, 0, 0, 0]);
        pkt.extend_from_slice(b"ETH");
        assert_eq!(gre(&pkt), Ok(Next::Ethernet(b"ETH")));
    }

    #[test]
    fn erspan_type_three_with_platform_subheader_skips_twenty_bytes() {
        let mut pkt = vec![0x10, 0, 0x22, 0xeb, 0, 0, 0, 9];
        let mut hdr = [0u8; 20];
        hdr[11] = 1;
        pkt.extend_from_slice(&hdr);
        pkt.extend_from_slice(b"ETH");
        assert_eq!(gre(&pkt), Ok(Next::Ethernet(b"ETH")));
    }

    #[test]
    fn enhanced_gre_carries_ppp() {
        // Version 1, key present, sequence and acknowledgement present.
        let mut pkt = vec![0x30, 0x81, 0x88, 0x0b, 0, 8, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
        pkt.extend_from_slice(&[0xff, 0x03, 0x00, 0x21, 0x45]);
        let Ok(Next::Ppp(p)) = gre(&pkt) else {
            panic!("ppp expected")
        };
        assert_eq!(ppp(p), Ok(Next::Ip(&[0x45])));
    }

    #[test]
    fn mpls_stack_is_popped_to_ip() {
        let pkt = [0, 0, 0x10, 64, 0, 0, 0x21, 64, 0x60, 0];
        assert_eq!(mpls(&pkt), Ok(Next::Ip(&[0x60, 0])));
    }

    #[test]
    fn truncated_headers_are_malformed() {
        assert_eq!(gre(&[0x30, 0, 8]), Err(Malformed));
        assert_eq!(gre(&[0x30, 0, 8, 0, 0]), Err(Malformed));
        assert_eq!(mpls(&[0, 0, 0]), Err(Malformed));
    }
}
