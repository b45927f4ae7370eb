//! FreeSWITCH / sofia-sip siptrace (PBX_LOGS.md §3, `tport_logging.c`).
//!
//! A block starts with the stamp `recv|send|sent N bytes from|to proto/[ip]:port at
//! HH:MM:SS.uuuuuu:` and a line of 72 `-`. Three layouts (§3.2): up to May 2019 every line
//! is indented by 3 spaces, written by its own log call (other threads' lines can fall
//! inside) and closed by an indented separator; from 2019 one unindented buffer without a
//! trailing newline; from Feb 2022 the same plus `\n`. Lines are LF only. The stamp has
//! only a time of day: the date comes from FreeSWITCH's own dated log lines
//! (`YYYY-MM-DD hh:mm:ss.uuuuuu [LEVEL] …`), else the file's modification date, counting
//! midnight roll-overs. Event Socket captures are unwrapped first ([`esl_lines`]).

use std::io::{self, BufRead, Read};
use std::net::SocketAddr;

use jiff::civil::Date;

use super::follow::{read_line_bounded, MAX_LINE};
use super::text::{self, chomp, iso_date_time, MsgBuf};
use super::{Direction, Framer, FramerStats, LogClock, LogMessage};
use crate::net::Transport;
use crate::sip::framing::content_length_header;

const SEPARATOR_LEN: usize = 72;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Not yet known: the line after the stamp decides.
    Unknown,
    /// ≤ May 2019: 3-space indent, closing separator.
    Indented,
    /// 2019 and later.
    Plain,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    direction: Direction,
    logged_len: usize,
    transport: Option<Transport>,
    peer: Option<SocketAddr>,
    ts_us: Option<i64>,
    layout: Layout,
}

pub struct Freeswitch {
    clock: LogClock,
    stats: FramerStats,
    msg: MsgBuf,
    block: Option<Block>,
    prescan: Prescan,
}

/// What the pre-scan learns: the first dated line's date and how many midnights passed
/// before it, or the number of midnights in the whole file.
#[derive(Debug, Default)]
struct Prescan {
    last_tod: Option<i64>,
    rollovers: u32,
    first_dated: Option<(Date, u32)>,
}

struct Stamp {
    direction: Direction,
    logged_len: usize,
    transport: Option<Transport>,
    peer: Option<SocketAddr>,
    tod: (i8, i8, i8, i32),
}

fn separator(line: &[u8]) -> Option<Layout> {
    let (layout, dashes) = match line.strip_prefix(b"   ") {
        Some(rest) => (Layout::Indented, rest),
        None => (Layout::Plain, line),
    };
    (dashes.len() == SEPARATOR_LEN && dashes.iter().all(|&b| b == b'-')).then_some(layout)
}

/// `recv 1141 bytes from udp/[10.26.0.81]:5060 at 19:34:41.657063:` (§3.1). Also found
/// after a prefix (2600hz `sipify.sh` Call-ID, drachtio's date, §3.4).
fn stamp(line: &[u8]) -> Option<Stamp> {
    if let Some(s) = stamp_at(line) {
        return Some(s);
    }
    let at = memchr::memmem::find(line, b" bytes ")?;
    let start = line[..at].iter().rposition(|&b| b == b' ')?;
    let word = line[..start]
        .iter()
        .rposition(|&b| b == b' ')
        .map_or(0, |p| p + 1);
    stamp_at(&line[word..])
}

fn stamp_at(line: &[u8]) -> Option<Stamp> {
    let sp = memchr::memchr(b' ', line)?;
    let direction = match &line[..sp] {
        b"recv" => Direction::Received,
        b"send" | b"sent" => Direction::Sent,
        _ => return None,
    };
    let rest = &line[sp + 1..];
    let sp = memchr::memchr(b' ', rest)?;
    let logged_len = usize::try_from(text::number(&rest[..sp], 9)?).ok()?;
    let rest = rest[sp..].strip_prefix(b" bytes ")?;
    let rest = match direction {
        Direction::Received => rest.strip_prefix(b"from ")?,
        Direction::Sent => rest.strip_prefix(b"to ")?,
    };
    let slash = memchr::memchr(b'/', rest)?;
    let transport = text::transport(&rest[..slash]);
    let rest = rest[slash + 1..].strip_prefix(b"[")?;
    let close = memchr::memchr(b']', rest)?;
    let ip = &rest[..close];
    let rest = rest[close + 1..].strip_prefix(b":")?;
    let at = memchr::memmem::find(rest, b" at ")?;
    // The port may be followed by `/flowlabel` and `;comp=sigcomp`.
    let port_len = rest[..at].iter().take_while(|b| b.is_ascii_digit()).count();
    let port = u16::try_from(text::number(&rest[..port_len], 5)?).ok()?;
    let peer = std::str::from_utf8(ip)
        .ok()
        .and_then(|s| s.parse().ok())
        .map(|ip| SocketAddr::new(ip, port));
    let time = chomp(&rest[at + 4..]);
    let time = time.strip_suffix(b":")?;
    let (left, (h, m, s, us, _)) = text::time_of_day(time).ok()?;
    if !left.is_empty() {
        return None;
    }
    Some(Stamp {
        direction,
        logged_len,
        transport,
        peer,
        tod: (h, m, s, us),
    })
}

/// A FreeSWITCH log line's date and time of day: `2024-08-31 20:57:32.802859 95.47% [INFO]`,
/// optionally after a session's `<uuid> ` (mod_logfile `uuid=true`, §3.3).
fn dated_line(line: &[u8]) -> Option<(Date, i64)> {
    let line = if line.len() > 37 && line[36] == b' ' && line[8] == b'-' && line[13] == b'-' {
        &line[37..]
    } else {
        line
    };
    let (rest, s) = iso_date_time(line).ok()?;
    if !rest.starts_with(b" ") {
        return None;
    }
    Some((LogClock::stamp_date(&s)?, LogClock::tod_of(&s)))
}

impl Freeswitch {
    pub fn new(clock: LogClock) -> Freeswitch {
        Freeswitch {
            clock,
            stats: FramerStats::default(),
            msg: MsgBuf::default(),
            block: None,
            prescan: Prescan::default(),
        }
    }

    fn end_block(&mut self, closed: bool, out: &mut dyn FnMut(&LogMessage<'_>)) {
        let Some(block) = self.block.take() else {
            return;
        };
        if self.msg.is_empty() {
            return;
        }
        let no_length = self.msg.expected_end().is_none();
        let truncated = self.msg.finalize()
            || (no_length && self.msg.len() < block.logged_len)
            || (block.layout == Layout::Indented && !closed);
        let m = LogMessage {
            ts_us: block.ts_us,
            precision_us: 1,
            direction: block.direction,
            peer: block.peer,
            endpoints: None,
            transport: block.transport,
            payload: self.msg.bytes(),
            logged_len: Some(block.logged_len),
            truncated,
        };
        self.stats.hand_on(&m, out);
    }
}

impl Framer for Freeswitch {
    fn line(&mut self, line: &[u8], out: &mut dyn FnMut(&LogMessage<'_>)) {
        self.stats.lines += 1;
        let line = chomp(line);
        if let Some(mut block) = self.block {
            if block.layout == Layout::Unknown {
                block.layout = separator(line).unwrap_or(Layout::Plain);
                self.block = Some(block);
                if separator(line).is_some() {
                    return;
                }
            }
            match block.layout {
                Layout::Indented => {
                    if separator(line) == Some(Layout::Indented) {
                        self.end_block(true, out);
                        return;
                    }
                    if let Some(content) = line.strip_prefix(b"   ") {
                        if content.starts_with(b"*** message truncated") {
                            return;
                        }
                        self.msg.push_line(content);
                        return;
                    }
                    if line.is_empty() {
                        self.msg.push_line(line);
                        return;
                    }
                    if stamp(line).is_none() {
                        // Another thread's line inside the message (§3.4.1).
                        self.stats.interleaved += 1;
                        if let Some((day, tod)) = dated_line(line) {
                            self.clock.set_day(day, tod);
                        }
                        return;
                    }
                    self.end_block(false, out);
                }
                _ => {
                    let next = stamp(line).is_some() || dated_line(line).is_some();
                    if !next {
                        self.msg.push_line(line);
                        if self.msg.is_complete() {
                            self.end_block(true, out);
                        }
                        return;
                    }
                    self.end_block(false, out);
                }
            }
        }
        if let Some(s) = stamp(line) {
            let (h, m, sec, us) = s.tod;
            let ts_us = self.clock.time_of_day_us(h, m, sec, us);
            self.msg.clear();
            self.block = Some(Block {
                direction: s.direction,
                logged_len: s.logged_len,
                transport: s.transport,
                peer: s.peer,
                ts_us,
                layout: Layout::Unknown,
            });
        } else if let Some((day, tod)) = dated_line(line) {
            self.clock.set_day(day, tod);
        }
    }

    fn finish(&mut self, out: &mut dyn FnMut(&LogMessage<'_>)) {
        self.end_block(false, out);
    }

    fn in_message(&self) -> bool {
        self.block.is_some()
    }

    fn stats(&self) -> &FramerStats {
        &self.stats
    }

    fn clock_mut(&mut self) -> Option<&mut LogClock> {
        Some(&mut self.clock)
    }

    fn prescan(&mut self, line: &[u8]) {
        let line = chomp(line);
        let p = &mut self.prescan;
        let tod = if let Some(s) = stamp(line) {
            let (h, m, sec, us) = s.tod;
            ((i64::from(h) * 60 + i64::from(m)) * 60 + i64::from(sec)) * 1_000_000 + i64::from(us)
        } else if let Some((day, tod)) = dated_line(line) {
            if p.first_dated.is_none() {
                let rolled = p
                    .last_tod
                    .is_some_and(|last| LogClock::rolls_over(last, tod));
                p.first_dated = Some((day, p.rollovers + u32::from(rolled)));
            }
            tod
        } else {
            return;
        };
        if let Some(last) = p.last_tod {
            if LogClock::rolls_over(last, tod) {
                p.rollovers += 1;
            }
        }
        p.last_tod = Some(tod);
    }

    fn prescan_done(&mut self) {
        let p = std::mem::take(&mut self.prescan);
        match p.first_dated {
            Some((day, before)) => self.clock.start_day_before(day, before),
            None => {
                if let Some(day) = self.clock.reference_day() {
                    self.clock.start_day_before(day, p.rollovers);
                }
            }
        }
    }
}

/// What reading an Event Socket capture counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EslStats {
    /// `log/data` frames read.
    pub frames: u64,
    /// Frames the end of the capture cut before their Content-Length (what there is, is
    /// used).
    pub short: u64,
    /// Frames whose Content-Length is over [`MAX_LINE`] or not a number: skipped unread.
    pub oversize: u64,
}

/// The first header of every `log/data` frame (`mod_event_socket.c` writes it first):
/// where reading resumes after a frame whose length is not believed.
const LOG_DATA_HEADER: &[u8] = b"Content-Type: log/data\n";

/// Reads an Event Socket capture (§3.3) as a stream: hands `f` each line (without its
/// `\n`) of the bodies of its `Content-Type: log/data` frames, in bounded memory: at most
/// [`MAX_LINE`] bytes of a header line or a body are held.
///
/// A Content-Length over [`MAX_LINE`] is not believed (a cut or corrupt capture; no
/// FreeSWITCH log line is that long), so no byte count is trusted: the input is skipped
/// to the next `log/data` frame, which also passes over an honest long frame.
pub fn esl_lines(
    r: &mut impl BufRead,
    stats: &mut EslStats,
    f: &mut dyn FnMut(&[u8]),
) -> io::Result<()> {
    let mut line = Vec::with_capacity(256);
    let mut body = Vec::new();
    // The resync consumed the `log/data` header of the frame that follows.
    let mut resumed = false;
    loop {
        let mut length = Some(0);
        let mut log_data = resumed;
        let mut in_headers = resumed;
        resumed = false;
        // Headers, up to a blank line; blank lines between frames are skipped.
        loop {
            line.clear();
            if read_line_bounded(r, &mut line)? == 0 {
                return Ok(());
            }
            let h = chomp(line.strip_suffix(b"\n").unwrap_or(&line));
            if h.is_empty() {
                if in_headers {
                    break;
                }
                continue;
            }
            in_headers = true;
            // ESL frame headers are written like SIP's (`Content-Length: N`).
            match content_length_header(h) {
                Some(Ok(n)) if n <= MAX_LINE => length = Some(n),
                Some(_) => length = None,
                None => {
                    if let Some(v) = h.strip_prefix(b"Content-Type:") {
                        log_data = text::trim(v) == b"log/data";
                    }
                }
            }
        }
        let Some(n) = length else {
            stats.oversize += 1;
            if !skip_past_log_data_header(r)? {
                return Ok(());
            }
            resumed = true;
            continue;
        };
        let n64 = n as u64;
        if !log_data {
            if io::copy(&mut r.by_ref().take(n64), &mut io::sink())? < n64 {
                stats.short += 1;
            }
            continue;
        }
        body.clear();
        r.by_ref().take(n64).read_to_end(&mut body)?;
        if body.len() < n {
            stats.short += 1;
        }
        stats.frames += 1;
        for l in body
            .strip_suffix(b"\n")
            .unwrap_or(&body)
            .split(|&b| b == b'\n')
        {
            f(l);
        }
    }
}

/// Discards input up to and including the next [`LOG_DATA_HEADER`], wherever it starts
/// (a body without a final newline runs straight into the next frame's headers). Returns
/// whether there was one.
fn skip_past_log_data_header(r: &mut impl BufRead) -> io::Result<bool> {
    let pat = LOG_DATA_HEADER;
    let keep = pat.len() - 1;
    // The last `keep` bytes before this chunk: the header may straddle reads.
    let mut tail: Vec<u8> = Vec::with_capacity(2 * keep);
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(false);
        }
        let carried = tail.len();
        tail.extend_from_slice(&buf[..buf.len().min(keep)]);
        // A match in `tail` ends in this chunk: one wholly before it was found already.
        let end = memchr::memmem::find(&tail, pat)
            .map(|p| p + pat.len() - carried)
            .or_else(|| memchr::memmem::find(buf, pat).map(|p| p + pat.len()));
        if let Some(end) = end {
            r.consume(end);
            return Ok(true);
        }
        let len = buf.len();
        if len >= keep {
            tail.clear();
            tail.extend_from_slice(&buf[len - keep..]);
        } else {
            tail.truncate(carried);
            tail.extend_from_slice(buf);
            let excess = tail.len().saturating_sub(keep);
            tail.drain(..excess);
        }
        r.consume(len);
    }
}

/// [`esl_lines`] over a capture in memory: the `log/data` lines appended to `out`, each
/// ending with a newline.
pub fn esl_unwrap(data: &[u8], out: &mut Vec<u8>) -> EslStats {
    let mut stats = EslStats::default();
    let mut r = data;
    // Reading a slice cannot fail.
    let _ = esl_lines(&mut r, &mut stats, &mut |l| {
        out.extend_from_slice(l);
        out.push(b'\n');
    });
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    fn frame(log: &str, reference_us: i64) -> (Vec<(Option<i64>, String, bool)>, FramerStats) {
        let mut f = Freeswitch::new(LogClock::new(TimeZone::UTC, None, reference_us));
        for l in log.split('\n') {
            f.prescan(l.as_bytes());
        }
        f.prescan_done();
        let mut got = Vec::new();
        let mut out = |m: &LogMessage<'_>| {
            got.push((
                m.ts_us,
                String::from_utf8_lossy(m.payload).into_owned(),
                m.truncated,
            ))
        };
        for l in log.split('\n') {
            f.line(l.as_bytes(), &mut out);
        }
        f.finish(&mut out);
        (got, f.stats().clone())
    }

    const BYE: &str = "BYE sip:a@b SIP/2.0\nContent-Length: 0\n\n";
    const BYE_CRLF: &str = "BYE sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n";
    const DASHES: &str = "------------------------------------------------------------------------";

    #[test]
    fn the_date_comes_from_the_dated_line_and_midnight_rolls_over() {
        let log = format!(
            "2024-08-31 23:59:59.000001 95.47% [INFO] x.c:1 hi\nrecv 42 bytes from udp/[1.2.3.4]:5060 at 23:59:59.500000:\n{DASHES}\n{BYE}\nsend 42 bytes to udp/[1.2.3.4]:5060 at 00:00:00.250000:\n{DASHES}\n{BYE}\n"
        );
        let (got, stats) = frame(&log, 0);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, BYE_CRLF);
        assert_eq!(got[0].0, Some(1_725_148_799_500_000));
        assert_eq!(got[1].0, Some(1_725_148_800_250_000));
        assert_eq!(stats.length_mismatch, 0);
    }

    #[test]
    fn without_dated_lines_the_date_is_the_reference_day_less_its_rollovers() {
        // Reference 2024-09-01 12:00 UTC; one midnight in the file: starts on Aug 31.
        let log = format!(
            "recv 42 bytes from udp/[1.2.3.4]:5060 at 23:00:00.000000:\n{DASHES}\n{BYE}\nrecv 42 bytes from udp/[1.2.3.4]:5060 at 01:00:00.000000:\n{DASHES}\n{BYE}\n"
        );
        let (got, _) = frame(&log, 1_725_192_000_000_000);
        assert_eq!(got[0].0, Some(1_725_145_200_000_000));
        assert_eq!(got[1].0, Some(1_725_152_400_000_000));
    }

    #[test]
    fn old_indented_layout_skips_interleaved_lines_and_stops_at_its_separator() {
        let log = format!(
            "recv 42 bytes from udp/[1.2.3.4]:5060 at 10:00:00.000000:\n   {DASHES}\n   BYE sip:a@b SIP/2.0\nsome other thread\n   Content-Length: 0\n\n   {DASHES}\n"
        );
        let (got, stats) = frame(&log, 0);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, BYE_CRLF);
        assert!(!got[0].2);
        assert_eq!(stats.interleaved, 1);
    }

    #[test]
    fn stamp_reads_ipv6_flow_label_and_sigcomp() {
        let s =
            stamp(b"send 10 bytes to tls/[2001:db8::1]:5061/7;comp=sigcomp at 01:02:03.000004:")
                .unwrap();
        assert_eq!(s.transport, Some(Transport::Tls));
        assert_eq!(s.peer, "[2001:db8::1]:5061".parse().ok());
    }

    #[test]
    fn esl_frames_are_unwrapped_by_content_length() {
        let esl = b"Content-Type: api/response\nContent-Length: 3\n\n+OKContent-Type: log/data\nContent-Length: 5\nLog-Level: 6\n\nhello";
        let mut out = Vec::new();
        let stats = esl_unwrap(esl, &mut out);
        assert_eq!((stats.frames, stats.short, stats.oversize), (1, 0, 0));
        assert_eq!(out, b"hello\n");
    }

    fn log_frame(body: &str) -> String {
        format!(
            "Content-Type: log/data\nContent-Length: {}\nLog-Level: 6\nUser-Data: \n\n{body}",
            body.len()
        )
    }

    /// Streams `esl` through a reader of `capacity` bytes: the lines and the counts.
    fn esl_stream(esl: &[u8], capacity: usize) -> (Vec<String>, EslStats) {
        let mut r = io::BufReader::with_capacity(capacity, esl);
        let mut stats = EslStats::default();
        let mut lines = Vec::new();
        esl_lines(&mut r, &mut stats, &mut |l| {
            lines.push(String::from_utf8_lossy(l).into_owned())
        })
        .expect("reading a slice");
        (lines, stats)
    }

    #[test]
    fn esl_frames_with_unbelievable_lengths_are_skipped_and_the_next_log_frames_read() {
        let huge = "x".repeat(MAX_LINE + 10);
        for (what, bad) in [
            (
                "an honest frame over the cap, no final newline",
                format!(
                    "Content-Type: api/response\nContent-Length: {}\n\n{huge}",
                    huge.len()
                ),
            ),
            (
                "a log frame claiming 99 GB, cut short",
                "Content-Type: log/data\nContent-Length: 99999999999\n\nrecv 42 by".to_string(),
            ),
            (
                "a length that is not a number",
                "Content-Type: log/data\nContent-Length: 1e9\n\nsend 4".to_string(),
            ),
        ] {
            let esl = format!(
                "{}{bad}{}{}",
                log_frame("first\n"),
                log_frame("second\n"),
                log_frame("third")
            );
            // Small readers put the resync header across chunk boundaries.
            for capacity in [7, 16, 23, 64, 64 * 1024] {
                let (lines, stats) = esl_stream(esl.as_bytes(), capacity);
                assert_eq!(lines, ["first", "second", "third"], "{what} / {capacity}");
                assert_eq!(
                    stats,
                    EslStats {
                        frames: 3,
                        short: 0,
                        oversize: 1
                    },
                    "{what} / {capacity}"
                );
            }
        }
    }

    #[test]
    fn esl_frames_cut_by_the_end_of_the_capture_are_counted_and_used() {
        let esl = format!(
            "{}Content-Type: log/data\nContent-Length: 500\n\npartial",
            log_frame("a\n")
        );
        let (lines, stats) = esl_stream(esl.as_bytes(), 64);
        assert_eq!(lines, ["a", "partial"]);
        assert_eq!((stats.frames, stats.short), (2, 1));
        // Cut inside the headers, or inside an oversize frame: nothing more, no panic.
        for cut in [
            "Content-Type: log/data\nContent-Len",
            "Content-Length: 2000000\n\nxx",
        ] {
            let (lines, _) = esl_stream(format!("{}{cut}", log_frame("a\n")).as_bytes(), 64);
            assert_eq!(lines, ["a"], "{cut}");
        }
    }

    #[test]
    fn esl_streaming_gives_the_same_lines_however_the_reads_fall() {
        let corpus: &[&[u8]] = &[
            b"Content-Type: api/response\nContent-Length: 3\n\n+OKContent-Type: log/data\nContent-Length: 5\n\nhello",
            b"\n\r\nContent-Type: log/data\nContent-Length: 0\n\nContent-Length: x\n\nContent-Type: log/data\nContent-Type: log/data\n\n",
            b"Content-Length: 4\nContent-Type: log/data\n\na\nb\nContent-Length: 3000000\n\nContent-Type: log/data\nContent-Length: 2\n\nc\n",
        ];
        for esl in corpus {
            let (want, want_stats) = esl_stream(esl, 64 * 1024);
            for capacity in 1..40 {
                assert_eq!(
                    esl_stream(esl, capacity),
                    (want.clone(), want_stats),
                    "{capacity}"
                );
            }
        }
    }
}
