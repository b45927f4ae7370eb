//! Recognising an input by its content: pcap, pcapng, or one of the log formats.
//!
//! Looks at the first 256 KiB only and counts the lines that only one format writes
//! (PBX_LOGS.md §0): a file is the format with most such lines. Nothing is guessed from
//! file names.

use super::pjsip;
use super::LogFormat;

/// How much of a file detection reads.
pub const DETECT_BYTES: usize = 256 * 1024;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// A libpcap capture (any byte order, µs or ns).
    Pcap,
    Pcapng,
    Log(LogFormat),
    /// FreeSWITCH siptrace inside Event Socket `log/data` frames.
    FreeswitchEsl,
}

/// Recognises `head`, the first bytes of a file; `None` when nothing fits.
pub fn detect(head: &[u8]) -> Option<Detected> {
    match head.get(..4) {
        Some([0xa1, 0xb2, 0xc3, 0xd4])
        | Some([0xd4, 0xc3, 0xb2, 0xa1])
        | Some([0xa1, 0xb2, 0x3c, 0x4d])
        | Some([0x4d, 0x3c, 0xb2, 0xa1]) => return Some(Detected::Pcap),
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => return Some(Detected::Pcapng),
        _ => {}
    }
    let mut score = [0u32; 5];
    let mut esl = 0u32;
    for line in head.split(|&b| b == b'\n') {
        let line = super::text::chomp(line);
        let idx = |f: LogFormat| LogFormat::ALL.iter().position(|&g| g == f).unwrap_or(0);
        if let Some(at) = memchr::memmem::find(line, b"<--- ") {
            let l = &line[at..];
            if pjsip::header(l).is_some() {
                score[idx(LogFormat::AsteriskPjsip)] += 2;
            } else if l.starts_with(b"<--- SIP read from ")
                || (l.contains(&b'(') && l.windows(13).any(|w| w == b"Transmitting "))
            {
                score[idx(LogFormat::AsteriskChansip)] += 2;
            }
        } else if line == b"<------------->" || line == b"<------------>" {
            score[idx(LogFormat::AsteriskChansip)] += 1;
        } else if (line.starts_with(b"Reliably Transmitting (")
            || line.starts_with(b"Retransmitting #"))
            || (line.windows(16).any(|w| w == b"chan_sip.c: Rel"))
        {
            score[idx(LogFormat::AsteriskChansip)] += 2;
        } else if is_fs_stamp(line) {
            score[idx(LogFormat::Freeswitch)] += 2;
        } else if line == b"Content-Type: log/data" {
            esl += 2;
        } else if line == b"tag: rcv" || line == b"tag: snd" || line == b"~~~~~~~~~~~~~~~~~~~~" {
            score[idx(LogFormat::KamailioSipdump)] += 1;
        } else if line.windows(16).any(|w| w == b"ccsipDisplayMsg:")
            || super::text::trim(line) == b"Received:"
            || super::text::trim(line) == b"Sent:"
        {
            score[idx(LogFormat::Cisco)] += 1;
        }
    }
    if esl > 0 && esl >= score.iter().copied().max().unwrap_or(0) {
        return Some(Detected::FreeswitchEsl);
    }
    let (best, &n) = score.iter().enumerate().max_by_key(|(_, &n)| n)?;
    (n > 0).then(|| Detected::Log(LogFormat::ALL[best]))
}

fn is_fs_stamp(line: &[u8]) -> bool {
    let Some(at) = memchr::memmem::find(line, b" bytes ") else {
        return false;
    };
    let head = &line[..at];
    (head.starts_with(b"recv ")
        || head.starts_with(b"send ")
        || head.starts_with(b"sent ")
        || head.windows(6).any(|w| w == b" recv " || w == b" send "))
        && line.windows(2).any(|w| w == b"/[")
        && line.ends_with(b":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_is_recognised_by_its_lines() {
        let cases: [(&[u8], Detected); 6] = [
            (
                b"<--- Received SIP request (5 bytes) from UDP:1.2.3.4:5060 --->\n",
                Detected::Log(LogFormat::AsteriskPjsip),
            ),
            (
                b"\n<--- SIP read from UDP:1.2.3.4:5060 --->\nx\n<------------->\n",
                Detected::Log(LogFormat::AsteriskChansip),
            ),
            (
                b"recv 5 bytes from udp/[1.2.3.4]:5060 at 10:00:00.000000:\n",
                Detected::Log(LogFormat::Freeswitch),
            ),
            (
                b"====================\ntag: rcv\n~~~~~~~~~~~~~~~~~~~~\n",
                Detected::Log(LogFormat::KamailioSipdump),
            ),
            (
                b"000001: Apr  7 07:28:56.046: //-1/x/SIP/Msg/ccsipDisplayMsg:\nReceived:\n",
                Detected::Log(LogFormat::Cisco),
            ),
            (
                b"Content-Type: log/data\nContent-Length: 2\n\nhi",
                Detected::FreeswitchEsl,
            ),
        ];
        for (head, want) in cases {
            assert_eq!(detect(head), Some(want));
        }
    }

    #[test]
    fn capture_magics_are_recognised_and_other_text_is_not() {
        assert_eq!(
            detect(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]),
            Some(Detected::Pcap)
        );
        assert_eq!(detect(&[0x0a, 0x0d, 0x0d, 0x0a]), Some(Detected::Pcapng));
        assert_eq!(detect(b"hello\nworld\n"), None);
    }
}
