//! Codec names from an SDP body (RFC 8866 `m=` and `a=rtpmap`), and nothing else:
//! addresses, ports and other attributes are never looked at, and nothing is kept.
//!
//! Input: the body of a SIP message whose Content-Type is `application/sdp`. Must never
//! allocate (the iterators borrow the body) nor panic on any input; CRLF and bare-LF line
//! ends are both accepted (RFC 8866 §5 asks for CRLF, PBX logs lose the CRs).

use memchr::memchr;

/// Iterates the codec names of every media section, in order, without allocating.
///
/// For each payload format of an `m=` line: the encoding name of its `a=rtpmap` in the
/// same section; for static RTP payload types without rtpmap, the RFC 3551 name
/// (0 → PCMU, 8 → PCMA, 18 → G729, ...); for non-RTP formats (`m=image 0 udptl t38`),
/// the format token itself. A dynamic payload type (96-127) without an rtpmap has no
/// name and is skipped.
pub fn codecs(body: &[u8]) -> Codecs<'_> {
    Codecs {
        sections: Sections { rest: body },
        current: None,
    }
}

/// Iterates the media type (`audio`, `video`, `image`, ...) of every `m=` line, in order.
pub fn media(body: &[u8]) -> Media<'_> {
    Media {
        sections: Sections { rest: body },
    }
}

/// Iterator returned by [`codecs`].
pub struct Codecs<'a> {
    sections: Sections<'a>,
    current: Option<Section<'a>>,
}

impl<'a> Iterator for Codecs<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if let Some(sec) = self.current.as_mut() {
                while let Some(fmt) = next_token(&mut sec.formats) {
                    if !sec.rtp {
                        return Some(fmt);
                    }
                    if let Some(name) =
                        rtpmap_name(sec.attributes, fmt).or_else(|| static_name(fmt))
                    {
                        return Some(name);
                    }
                }
            }
            self.current = Some(self.sections.next()?);
        }
    }
}

/// Iterator returned by [`media`].
pub struct Media<'a> {
    sections: Sections<'a>,
}

impl<'a> Iterator for Media<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        self.sections.next().map(|s| s.media)
    }
}

/// One media section: its `m=` line cut into fields, and the lines after it up to the
/// next `m=` line (RFC 8866 §5: a media description runs to the next `m=` or the end).
struct Section<'a> {
    media: &'a [u8],
    rtp: bool,
    /// The payload formats not yet returned, space-separated.
    formats: &'a [u8],
    attributes: &'a [u8],
}

struct Sections<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Sections<'a> {
    type Item = Section<'a>;
    fn next(&mut self) -> Option<Section<'a>> {
        let start = find_line(self.rest, b"m=")?;
        let sec = &self.rest[start..];
        let line_end = memchr(b'\n', sec).unwrap_or(sec.len());
        let line = &sec[2..line_end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let after = &sec[line_end..];
        let sec_end = find_line(after, b"m=").unwrap_or(after.len());
        let attributes = &after[..sec_end];
        self.rest = &after[sec_end..];

        // RFC 8866 §5.14: m=<media> <port>[/<number of ports>] <proto> <fmt> ...
        let mut fields = line;
        let media = next_token(&mut fields).unwrap_or_default();
        let _port = next_token(&mut fields);
        let proto = next_token(&mut fields).unwrap_or_default();
        // RTP/AVP, RTP/SAVP, RTP/AVPF, UDP/TLS/RTP/SAVPF (RFC 3551, 3711, 4585, 5764).
        let rtp = proto.windows(4).any(|w| w == b"RTP/");
        Some(Section {
            media,
            rtp,
            formats: fields,
            attributes,
        })
    }
}

/// Offset of the first line of `s` that starts with `prefix` (line starts: offset 0 and
/// after each LF). Plain line walking: SDP bodies are a few hundred bytes, where building
/// a substring finder per call costs more than it saves.
fn find_line(s: &[u8], prefix: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        if s[at..].starts_with(prefix) {
            return Some(at);
        }
        at += memchr(b'\n', &s[at..])? + 1;
    }
}

/// The next space-separated token of `s`, advancing `s` past it.
fn next_token<'a>(s: &mut &'a [u8]) -> Option<&'a [u8]> {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t')?;
    let rest = &s[start..];
    let end = rest
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(rest.len());
    *s = &rest[end..];
    Some(&rest[..end])
}

/// RFC 8866 §6.6: `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<params>]`.
fn rtpmap_name<'a>(attributes: &'a [u8], pt: &[u8]) -> Option<&'a [u8]> {
    let mut rest = attributes;
    while let Some(at) = find_line(rest, b"a=rtpmap:") {
        let tail = &rest[at + 9..];
        let nl = memchr(b'\n', tail);
        let line = &tail[..nl.unwrap_or(tail.len())];
        rest = nl.map_or(&tail[tail.len()..], |i| &tail[i + 1..]);
        let mut fields = line.strip_suffix(b"\r").unwrap_or(line);
        if next_token(&mut fields) != Some(pt) {
            continue;
        }
        let enc = next_token(&mut fields)?;
        let name = &enc[..memchr(b'/', enc).unwrap_or(enc.len())];
        return (!name.is_empty()).then_some(name);
    }
    None
}

/// RFC 3551 §6, Tables 4 and 5: the statically assigned RTP payload types. Reserved and
/// unassigned numbers have no name.
fn static_name(pt: &[u8]) -> Option<&'static [u8]> {
    let n: u8 = match pt {
        [d] if d.is_ascii_digit() => d - b'0',
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => (a - b'0') * 10 + (b - b'0'),
        _ => return None,
    };
    Some(match n {
        0 => b"PCMU",
        3 => b"GSM",
        4 => b"G723",
        5 | 6 | 16 | 17 => b"DVI4",
        7 => b"LPC",
        8 => b"PCMA",
        9 => b"G722",
        10 | 11 => b"L16",
        12 => b"QCELP",
        13 => b"CN",
        14 => b"MPA",
        15 => b"G728",
        18 => b"G729",
        25 => b"CelB",
        26 => b"JPEG",
        28 => b"nv",
        31 => b"H261",
        32 => b"MPV",
        33 => b"MP2T",
        34 => b"H263",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &[u8] = b"v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 18 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
m=video 51372 RTP/AVP 99 34\r\n\
a=rtpmap:99 H264/90000\r\n";

    fn names(body: &[u8]) -> Vec<&[u8]> {
        codecs(body).collect()
    }

    #[test]
    fn rtpmap_names_and_static_types_in_m_line_order() {
        assert_eq!(
            names(OFFER),
            [
                &b"PCMU"[..],
                b"PCMA",
                b"G729",
                b"telephone-event",
                b"H264",
                b"H263"
            ]
        );
    }

    #[test]
    fn media_types_in_order() {
        let m: Vec<&[u8]> = media(OFFER).collect();
        assert_eq!(m, [&b"audio"[..], b"video"]);
    }

    #[test]
    fn bare_lf_body_gives_the_same_codecs() {
        let lf: Vec<u8> = OFFER.iter().copied().filter(|&b| b != b'\r').collect();
        assert_eq!(names(&lf), names(OFFER));
    }

    #[test]
    fn rtpmap_of_one_section_does_not_name_a_format_of_another() {
        // 96 is mapped in the video section only; in the audio section it has no name.
        let body = b"v=0\nm=audio 1 RTP/AVP 96 0\nm=video 2 RTP/AVP 96\na=rtpmap:96 VP8/90000\n";
        assert_eq!(names(body), [&b"PCMU"[..], b"VP8"]);
    }

    #[test]
    fn rtpmap_overrides_the_static_name() {
        let body = b"m=audio 1 RTP/AVP 18\r\na=rtpmap:18 G729a/8000\r\n";
        assert_eq!(names(body), [&b"G729a"[..]]);
    }

    #[test]
    fn t38_image_section_gives_the_format_token() {
        let body = b"v=0\r\nm=image 40000 udptl t38\r\nc=IN IP4 192.0.2.1\r\n";
        assert_eq!(names(body), [&b"t38"[..]]);
        assert_eq!(media(body).collect::<Vec<_>>(), [&b"image"[..]]);
    }

    #[test]
    fn srtp_and_webrtc_profiles_count_as_rtp() {
        let body = b"m=audio 1 UDP/TLS/RTP/SAVPF 111 9\na=rtpmap:111 opus/48000/2\n";
        assert_eq!(names(body), [&b"opus"[..], b"G722"]);
    }

    #[test]
    fn the_whole_static_table_is_known() {
        let expected: [(u8, &[u8]); 20] = [
            (0, b"PCMU"),
            (3, b"GSM"),
            (4, b"G723"),
            (5, b"DVI4"),
            (6, b"DVI4"),
            (7, b"LPC"),
            (8, b"PCMA"),
            (9, b"G722"),
            (10, b"L16"),
            (11, b"L16"),
            (12, b"QCELP"),
            (13, b"CN"),
            (14, b"MPA"),
            (15, b"G728"),
            (16, b"DVI4"),
            (17, b"DVI4"),
            (18, b"G729"),
            (25, b"CelB"),
            (26, b"JPEG"),
            (31, b"H261"),
        ];
        for (pt, name) in expected {
            assert_eq!(
                static_name(pt.to_string().as_bytes()),
                Some(name),
                "pt {pt}"
            );
        }
        for pt in [1u8, 2, 19, 20, 24, 27, 35, 72, 96, 127] {
            assert_eq!(static_name(pt.to_string().as_bytes()), None, "pt {pt}");
        }
    }

    #[test]
    fn dynamic_type_without_rtpmap_is_skipped() {
        assert_eq!(names(b"m=audio 1 RTP/AVP 97 8\r\n"), [&b"PCMA"[..]]);
    }

    #[test]
    fn body_without_media_gives_nothing() {
        assert!(names(b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n").is_empty());
        assert!(names(b"").is_empty());
        assert!(names(b"m=").is_empty());
    }

    #[test]
    fn rtpmap_not_at_line_start_is_ignored() {
        let body = b"m=audio 1 RTP/AVP 96\r\nx=a=rtpmap:96 FAKE/8000\r\n";
        assert!(names(body).is_empty());
    }

    #[test]
    fn rtpmap_text_inside_an_rtpmap_line_is_not_a_second_rtpmap() {
        let body = b"m=audio 1 RTP/AVP 96 97\r\na=rtpmap:97 a=rtpmap:96 FAKE/8000\r\n";
        // 96 stays unnamed (skipped); 97 is named by its own (odd) encoding token.
        assert_eq!(names(body), [&b"a=rtpmap:96"[..]]);
    }

    #[test]
    fn garbage_does_not_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"m=a \r\n:/rtpmap0123456789RTP/AVP";
        let mut buf = [0u8; 64];
        for _ in 0..20_000 {
            for b in buf.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = alphabet[(seed % alphabet.len() as u64) as usize];
            }
            let len = (seed >> 58) as usize;
            codecs(&buf[..len]).for_each(drop);
            media(&buf[..len]).for_each(drop);
        }
    }
}
