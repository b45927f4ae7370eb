//! Shared pieces of the log framers: line handling, the CRLF-normalised message buffer,
//! peer addresses and the date prefixes PBXs write. What a start line and a Content-Length
//! are, and the size caps, come from [`crate::sip::framing`], as for every other reader.
//!
//! Nothing here allocates per line or per message: [`MsgBuf`] is one reused buffer per
//! source. Inputs are attacker-influenced (SIP headers are copied into logs verbatim), so
//! every number read is bounded before use.

use std::net::{IpAddr, SocketAddr};

use nom::bytes::complete::{tag, take_while_m_n};
use nom::character::complete::{char as ch, digit1};
use nom::combinator::opt;
use nom::IResult;

use crate::net::Transport;
use crate::sip::framing::content_length_header;

/// Largest message a framer keeps: the largest whole message any reader accepts (headers
/// and body at their caps), so a message the parser would take is never cut here. Longer
/// blocks are cut and counted as truncated, so one runaway block cannot grow a buffer
/// without bound.
pub const MAX_MESSAGE: usize = crate::sip::framing::MAX_MESSAGE;

/// Removes one trailing `\r` (a CRLF line read up to its `\n`).
pub fn chomp(line: &[u8]) -> &[u8] {
    match line {
        [rest @ .., b'\r'] => rest,
        _ => line,
    }
}

/// Whether the line holds nothing but whitespace.
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace())
}

/// Whether a line looks like a header field (`token ":"`, RFC 3261 §25.1) or a folded
/// continuation of one.
pub fn is_header_line(line: &[u8]) -> bool {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return true;
    }
    let name_len = line
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
        .count();
    if name_len == 0 {
        return false;
    }
    line[name_len..]
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t'))
        .is_some_and(|&b| b == b':')
}

pub fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

/// Parses a decimal number of at most `max_digits` digits.
pub fn number(s: &[u8], max_digits: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max_digits || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// Parses `addr:port`, `[v6]:port` or a bare IPv6 address with a port after its last `:`
/// (PBX_LOGS.md §1.1: parse the address from the right).
pub fn socket_addr(s: &[u8]) -> Option<SocketAddr> {
    let s = trim(s);
    let colon = memchr::memrchr(b':', s)?;
    let port = u16::try_from(number(&s[colon + 1..], 5)?).ok()?;
    let host = &s[..colon];
    let host = host
        .strip_prefix(b"[")
        .and_then(|h| h.strip_suffix(b"]"))
        .unwrap_or(host);
    let ip: IpAddr = std::str::from_utf8(host).ok()?.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// A transport name as PBXs write it (`UDP`, `tls`, `WSS`...), case-insensitive.
pub fn transport(name: &[u8]) -> Option<Transport> {
    let mut lower = [0u8; 4];
    if name.is_empty() || name.len() > lower.len() {
        return None;
    }
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    std::str::from_utf8(&lower[..name.len()])
        .ok()
        .and_then(Transport::from_name)
}

/// One SIP message being rebuilt from log lines, CRLF-normalised so byte counts and
/// Content-Length match the wire (PBX_LOGS.md §7.2: normalise `\r?\n`). Reused per source.
#[derive(Default)]
pub struct MsgBuf {
    buf: Vec<u8>,
    /// Where the current message starts (several coalesced messages share the buffer).
    base: usize,
    /// Offset just past the blank line that ends the headers.
    hdr_end: Option<usize>,
    content_length: Option<usize>,
    /// Cisco documentation and some pastes drop the blank line before the body: end the
    /// headers at the first line that is not a header (PBX_LOGS.md §5).
    pub lenient_header_end: bool,
    /// The message exceeded [`MAX_MESSAGE`] and was cut.
    overflow: bool,
}

impl std::fmt::Debug for MsgBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgBuf")
            .field("buf", &crate::privacy::Redacted(&self.buf))
            .field("base", &self.base)
            .field("hdr_end", &self.hdr_end)
            .field("content_length", &self.content_length)
            .field("lenient_header_end", &self.lenient_header_end)
            .field("overflow", &self.overflow)
            .finish()
    }
}

impl MsgBuf {
    pub fn clear(&mut self) {
        self.buf.clear();
        self.base = 0;
        self.hdr_end = None;
        self.content_length = None;
        self.overflow = false;
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn headers_done(&self) -> bool {
        self.hdr_end.is_some()
    }

    /// Appends one log line (without its `\n`) as a CRLF-terminated line.
    pub fn push_line(&mut self, line: &[u8]) {
        let line = chomp(line);
        if self.hdr_end.is_none() {
            if self.buf.len() == self.base && is_blank(line) {
                // Blank lines before the start line are the log format's, not the message's.
                return;
            }
            if line.is_empty() {
                self.append(b"");
                self.hdr_end = Some(self.buf.len());
                return;
            }
            if self.lenient_header_end && self.buf.len() > self.base && !is_header_line(line) {
                self.append(b"");
                self.hdr_end = Some(self.buf.len());
            } else if let Some(cl) = content_length_header(line) {
                // A length that is not a number or over the cap is not believed: the
                // message is then framed as if it had none (no PBX log keeps more than
                // 16000 bytes of a message, FreeSWITCH, PBX_LOGS.md §3.2).
                self.content_length = cl.ok();
            }
        }
        self.append(line);
    }

    fn append(&mut self, line: &[u8]) {
        if self.buf.len() + line.len() + 2 > MAX_MESSAGE {
            self.overflow = true;
            return;
        }
        self.buf.extend_from_slice(line);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// Appends raw bytes (formats that log the message unchanged, e.g. sipdump).
    pub fn push_raw(&mut self, bytes: &[u8]) {
        let room = MAX_MESSAGE.saturating_sub(self.buf.len());
        if bytes.len() > room {
            self.overflow = true;
        }
        self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Where the current message ends by its Content-Length, once its headers are complete.
    pub fn expected_end(&self) -> Option<usize> {
        Some(self.hdr_end? + self.content_length?)
    }

    /// Whether headers and a Content-Length body are all there.
    pub fn is_complete(&self) -> bool {
        self.expected_end().is_some_and(|n| self.buf.len() >= n)
    }

    /// Start of the current message in the buffer.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Ends the current message at its Content-Length and starts another one after it in
    /// the same buffer (pjsip's coalesced TCP reads, PBX_LOGS.md §1.4.2).
    pub fn begin_next(&mut self) {
        if let Some(end) = self.expected_end() {
            self.buf.truncate(end);
        }
        self.base = self.buf.len();
        self.hdr_end = None;
        self.content_length = None;
    }

    /// Cuts text after the Content-Length-delimited end (PBX_LOGS.md §1.4.3: do not trust
    /// it) and trailing blank lines of a message without Content-Length; returns whether
    /// the message is shorter than its Content-Length (truncated by the PBX's logger).
    pub fn finalize(&mut self) -> bool {
        if self.hdr_end.is_none() && !self.buf.is_empty() {
            // The log dropped the blank line after the headers (Cisco records end at the
            // next record; a cut block): close them. Complete only when the
            // Content-Length says there is no body.
            self.buf.extend_from_slice(b"\r\n");
            self.hdr_end = Some(self.buf.len());
            if self.content_length.is_none() {
                return true;
            }
        }
        match self.expected_end() {
            Some(n) if self.buf.len() >= n => {
                self.buf.truncate(n);
                self.overflow
            }
            Some(_) => true,
            None => {
                while self.buf.len() > self.hdr_end.unwrap_or(0) && self.buf.ends_with(b"\r\n\r\n")
                {
                    self.buf.truncate(self.buf.len() - 2);
                }
                self.overflow
            }
        }
    }

    /// Keeps only `range` of the buffer (one message of several coalesced ones).
    pub fn keep(&mut self, start: usize, end: usize) {
        self.buf.truncate(end);
        self.buf.drain(..start.min(end));
        self.base = 0;
    }
}

/// A date and time as a log prints it, before time-zone and year are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub year: Option<i16>,
    pub month: i8,
    pub day: i8,
    pub hour: i8,
    pub minute: i8,
    pub second: i8,
    pub micros: i32,
    /// Resolution the log gives: 1 (µs) to 1_000_000 (whole seconds).
    pub precision_us: u32,
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn digits(n: usize) -> impl Fn(&[u8]) -> IResult<&[u8], u32> {
    move |i| {
        let (rest, d) = take_while_m_n(n, n, |b: u8| b.is_ascii_digit())(i)?;
        Ok((rest, d.iter().fold(0, |n, &b| n * 10 + u32::from(b - b'0'))))
    }
}

fn month_name(i: &[u8]) -> IResult<&[u8], i8> {
    let (rest, m) = take_while_m_n(3, 3, |b: u8| b.is_ascii_alphabetic())(i)?;
    match MONTHS.iter().position(|name| name.eq_ignore_ascii_case(m)) {
        Some(p) => Ok((rest, p as i8 + 1)),
        None => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Tag,
        ))),
    }
}

/// `HH:MM:SS[.frac]` with 0–9 fraction digits (`%T`, `%T.%3q`, Cisco `.mmm`, µs).
pub fn time_of_day(i: &[u8]) -> IResult<&[u8], (i8, i8, i8, i32, u32)> {
    let (i, h) = digits(2)(i)?;
    let (i, _) = ch(':')(i)?;
    let (i, m) = digits(2)(i)?;
    let (i, _) = ch(':')(i)?;
    let (i, s) = digits(2)(i)?;
    let (i, frac) = opt(|i| {
        let (i, _) = nom::character::complete::one_of(".,")(i)?;
        take_while_m_n(1, 9, |b: u8| b.is_ascii_digit())(i)
    })(i)?;
    let (micros, precision) = match frac {
        None => (0, 1_000_000),
        Some(f) => {
            let mut us = 0i32;
            for k in 0..6 {
                us = us * 10 + f.get(k).map_or(0, |d| i32::from(d - b'0'));
            }
            (us, 10u32.pow(6u32.saturating_sub(f.len() as u32)))
        }
    };
    if h > 23 || m > 59 || s > 60 {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        )));
    }
    Ok((i, (h as i8, m as i8, s.min(59) as i8, micros, precision)))
}

/// `Mmm dd hh:mm:ss[.frac]` (`%b %e %T`, Asterisk's default; Cisco's `datetime msec`),
/// with an optional year before the time (Cisco `service timestamps ... year`).
pub fn month_day_time(i: &[u8]) -> IResult<&[u8], Stamp> {
    let (i, month) = month_name(i)?;
    let (i, _) = take_while_m_n(1, 2, |b| b == b' ')(i)?;
    let (i, day) = digit1(i)?;
    let day = number(day, 2).unwrap_or(0);
    let (i, _) = ch(' ')(i)?;
    let (i, year) = opt(|i| {
        let (i, y) = digits(4)(i)?;
        let (i, _) = ch(' ')(i)?;
        Ok((i, y))
    })(i)?;
    let (i, (hour, minute, second, micros, precision_us)) = time_of_day(i)?;
    if !(1..=31).contains(&day) {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        )));
    }
    Ok((
        i,
        Stamp {
            year: year.map(|y| y as i16),
            month,
            day: day as i8,
            hour,
            minute,
            second,
            micros,
            precision_us,
        },
    ))
}

/// `YYYY-MM-DD[ T]hh:mm:ss[.frac]` (`%F %T`, `%F %T.%3q`, FreeSWITCH's log lines).
pub fn iso_date_time(i: &[u8]) -> IResult<&[u8], Stamp> {
    let (i, year) = digits(4)(i)?;
    let (i, _) = ch('-')(i)?;
    let (i, month) = digits(2)(i)?;
    let (i, _) = ch('-')(i)?;
    let (i, day) = digits(2)(i)?;
    let (i, _) = nom::character::complete::one_of(" T")(i)?;
    let (i, (hour, minute, second, micros, precision_us)) = time_of_day(i)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        )));
    }
    Ok((
        i,
        Stamp {
            year: Some(year as i16),
            month: month as i8,
            day: day as i8,
            hour,
            minute,
            second,
            micros,
            precision_us,
        },
    ))
}

/// Any of the date formats above.
pub fn any_stamp(i: &[u8]) -> IResult<&[u8], Stamp> {
    nom::branch::alt((iso_date_time, month_day_time))(i)
}

/// What an Asterisk log line starts with (PBX_LOGS.md §1.3).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AsteriskLine<'a> {
    pub stamp: Stamp,
    /// A log-file record (`[date] LEVEL[lwp][C-id] file: `): a new record starts here.
    /// `false` for the console's `timestamp=yes` header, which is on every line.
    pub record: bool,
    /// The text after the prefix.
    pub content: &'a [u8],
}

impl std::fmt::Debug for AsteriskLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsteriskLine")
            .field("stamp", &self.stamp)
            .field("record", &self.record)
            .field("content", &crate::privacy::Redacted(self.content))
            .finish()
    }
}

/// Parses the Asterisk prefix of a line: the file channel's `[date] LEVEL[lwp][C-xxxxxxxx]
/// file: ` (Asterisk 11+, `format_log_default`), 1.8's and 1.4's without the call id, the
/// `plain` formatter's `[date] LEVEL[lwp][C-id]: file:line func: `, or the console's bare
/// `[date] `.
pub fn asterisk_prefix(line: &[u8]) -> Option<AsteriskLine<'_>> {
    let (i, _) = tag::<_, _, nom::error::Error<&[u8]>>("[")(line).ok()?;
    let (i, stamp) = any_stamp(i).ok()?;
    let (i, _) = tag::<_, _, nom::error::Error<&[u8]>>("] ")(i).ok()?;
    match record_prefix(i) {
        Some(content) => Some(AsteriskLine {
            stamp,
            record: true,
            content,
        }),
        None => Some(AsteriskLine {
            stamp,
            record: false,
            content: i,
        }),
    }
}

fn record_prefix(i: &[u8]) -> Option<&[u8]> {
    let level_len = i
        .iter()
        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || **b == b'_' || **b == b'-')
        .count();
    if level_len == 0 {
        return None;
    }
    let i = i[level_len..].strip_prefix(b"[")?;
    let lwp = i.iter().take_while(|b| b.is_ascii_digit()).count();
    if lwp == 0 {
        return None;
    }
    let mut i = i[lwp..].strip_prefix(b"]")?;
    if let Some(rest) = i.strip_prefix(b"[C-") {
        let close = memchr::memchr(b']', rest)?;
        i = &rest[close + 1..];
    }
    if let Some(rest) = i.strip_prefix(b": ") {
        // `plain`: `file:line function: message`.
        let sp = memchr::memchr(b' ', rest)?;
        let after = &rest[sp + 1..];
        let colon = memchr::memmem::find(after, b": ")?;
        return Some(&after[colon + 2..]);
    }
    let rest = i.strip_prefix(b" ")?;
    let colon = memchr::memmem::find(rest, b": ")?;
    if rest[..colon].contains(&b' ') {
        return None;
    }
    Some(&rest[colon + 2..])
}

/// 64-bit FNV-1a: a cheap, stable fingerprint (checkpoints, coalesced-buffer detection).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_asterisk_prefix_with_call_id_gives_the_message_text() {
        let l = asterisk_prefix(
            b"[Jan  2 10:15:00] VERBOSE[1002][C-0000000a] res_pjsip_logger.c: <--- Received",
        )
        .expect("prefix");
        assert!(l.record);
        assert_eq!(l.content, b"<--- Received");
        assert_eq!((l.stamp.month, l.stamp.day, l.stamp.hour), (1, 2, 10));
        assert_eq!(l.stamp.precision_us, 1_000_000);
    }

    #[test]
    fn iso_prefix_with_milliseconds_and_no_call_id_is_a_record() {
        let l = asterisk_prefix(b"[2024-03-05 01:02:03.456] VERBOSE[77] chan_sip.c: x").unwrap();
        assert!(l.record);
        assert_eq!(l.content, b"x");
        assert_eq!(l.stamp.micros, 456_000);
        assert_eq!(l.stamp.precision_us, 1000);
    }

    #[test]
    fn plain_formatter_prefix_skips_file_line_and_function() {
        let l = asterisk_prefix(
            b"[Jan  2 10:15:00] VERBOSE[1002][C-0000000a]: res_pjsip_logger.c:110 logging_on_rx_msg: <--- R",
        )
        .unwrap();
        assert_eq!(l.content, b"<--- R");
    }

    #[test]
    fn console_timestamp_header_is_not_a_record() {
        let l = asterisk_prefix(b"[Mar 30 13:35:51] REGISTER sip:10.49.0.2 SIP/2.0").unwrap();
        assert!(!l.record);
        assert_eq!(l.content, b"REGISTER sip:10.49.0.2 SIP/2.0");
    }

    #[test]
    fn a_sip_line_starting_with_a_bracket_is_not_a_prefix() {
        assert!(asterisk_prefix(b"[2001:db8::1]:5060;transport=udp").is_none());
    }

    #[test]
    fn peer_addresses_parse_from_the_right() {
        assert_eq!(
            socket_addr(b"[2001:db8::1]:5060"),
            "[2001:db8::1]:5060".parse().ok()
        );
        assert_eq!(socket_addr(b"1.2.3.4:5061"), "1.2.3.4:5061".parse().ok());
        assert_eq!(socket_addr(b"127.00.000.001:5060"), None);
    }

    fn msgbuf_of(lines: &[&[u8]]) -> MsgBuf {
        let mut m = MsgBuf::default();
        for l in lines {
            m.push_line(l);
        }
        m
    }

    #[test]
    fn msgbuf_normalises_lf_to_crlf_and_cuts_at_content_length() {
        let mut m = msgbuf_of(&[
            b"INVITE sip:a@b SIP/2.0",
            b"Content-Length: 5",
            b"",
            b"v=0",
            b"junk",
        ]);
        assert!(m.is_complete());
        assert!(!m.finalize());
        assert_eq!(
            m.bytes(),
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nv=0\r\n"
        );
    }

    #[test]
    fn msgbuf_reports_a_body_shorter_than_content_length() {
        let mut m = msgbuf_of(&[b"SIP/2.0 200 OK", b"Content-Length: 500", b"", b"v=0"]);
        assert!(!m.is_complete());
        assert!(m.finalize());
    }

    #[test]
    fn msgbuf_keeps_a_message_whose_body_is_at_the_cap() {
        let cl = format!("Content-Length: {}", crate::sip::MAX_BODY);
        let body = vec![b'a'; crate::sip::MAX_BODY - 2];
        let mut m = msgbuf_of(&[b"MESSAGE sip:a@b SIP/2.0", cl.as_bytes(), b"", &body]);
        assert!(m.is_complete());
        assert!(!m.finalize(), "neither cut nor truncated");
    }

    #[test]
    fn msgbuf_does_not_believe_an_oversized_content_length() {
        let mut m = msgbuf_of(&[
            b"SIP/2.0 200 OK",
            b"Content-Length: 99999999999",
            b"",
            b"v=0",
        ]);
        assert_eq!(m.expected_end(), None);
        assert!(!m.finalize());
    }
}
