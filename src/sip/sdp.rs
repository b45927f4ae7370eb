//! Codec names from an SDP body (RFC 8866 `m=` and `a=rtpmap`), and nothing else:
//! addresses, ports and other attributes are never looked at.

/// Iterates the codec names of every media section, in order, without allocating.
///
/// For each payload format of an `m=` line: the encoding name of its `a=rtpmap` in the
/// same section; for static RTP payload types without rtpmap, the RFC 3551 name
/// (0 → PCMU, 8 → PCMA, 18 → G729, ...); for non-RTP formats (`m=image 0 udptl t38`),
/// the format token itself.
pub fn codecs(body: &[u8]) -> Codecs<'_> {
    Codecs { _body: body }
}

/// Iterator returned by [`codecs`]. (Skeleton: the parser work fills this in.)
pub struct Codecs<'a> {
    _body: &'a [u8],
}

impl<'a> Iterator for Codecs<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        None
    }
}
