//! Cisco IOS / IOS-XE CUBE `debug ccsip messages` (PBX_LOGS.md §5).
//!
//! A message is `[NNNNNN: ][*|.]Mmm dd hh:mm:ss.mmm[ TZ]: //<id>/<guid>/SIP/Msg/ccsipDisplayMsg:`
//! then `Received:` or `Sent:`, then the message, LF-only, up to the next log record (a
//! line starting with a sequence number, a timestamp or `//`). No peer address or
//! transport is printed: the ingest takes them from Via / Request-URI and says so in the
//! record's source. Documentation copies drop the tag line, the timestamps or the blank
//! line before the body; all are tolerated.

use super::text::{self, chomp, month_day_time, MsgBuf, Stamp};
use super::{Direction, Framer, FramerStats, LogClock, LogMessage};
use crate::sip::framing::content_length_header;

pub struct Cisco {
    clock: LogClock,
    stats: FramerStats,
    msg: MsgBuf,
    /// The lines of the current message, `\n`-separated, kept until the record ends so
    /// blank lines can be judged with the line after them.
    lines: Vec<u8>,
    block: Option<(Direction, Option<i64>, u32)>,
    /// Time of the last `ccsipDisplayMsg:` tag line.
    tag_ts: Option<(Option<i64>, u32)>,
}

/// A record's stamp and whether it is shown as UTC.
type RecordStamp = Option<(Stamp, bool)>;

/// A log record's first line: its stamp (if any) and the text after it. `None` for a
/// line that does not start a record.
fn record(line: &[u8]) -> Option<(RecordStamp, &[u8])> {
    if line.starts_with(b"//") || (line.starts_with(b"/") && line.windows(5).any(|w| w == b"/SIP/"))
    {
        return Some((None, line));
    }
    let mut i = line;
    let seq = i.iter().take_while(|b| b.is_ascii_digit()).count();
    if seq > 0 && i[seq..].starts_with(b": ") {
        i = &i[seq + 2..];
    }
    let i = i
        .strip_prefix(b"*")
        .or_else(|| i.strip_prefix(b"."))
        .unwrap_or(i);
    if let Ok((rest, stamp)) = month_day_time(i) {
        // Optional ` TZ` (show-timezone), then `:`.
        let (utc, rest) = match rest.strip_prefix(b" ") {
            Some(r) => {
                let zl = r.iter().take_while(|b| b.is_ascii_alphabetic()).count();
                let zone = &r[..zl];
                (zone == b"UTC" || zone == b"GMT", &r[zl..])
            }
            None => (false, rest),
        };
        let rest = rest.strip_prefix(b":")?;
        return Some((Some((stamp, utc)), rest.strip_prefix(b" ").unwrap_or(rest)));
    }
    // `service timestamps debug uptime`: `1w2d: ` or `00:01:23: `; no wall-clock time.
    if seq > 0 && seq == line.len() {
        return None;
    }
    let up = line
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b':')
        .count();
    if up > 0 && line[up..].starts_with(b" ") && line[up - 1] == b':' && line[0].is_ascii_digit() {
        return Some((None, &line[up + 1..]));
    }
    None
}

fn direction(line: &[u8]) -> Option<Direction> {
    match text::trim(line) {
        b"Received:" => Some(Direction::Received),
        b"Sent:" => Some(Direction::Sent),
        _ => None,
    }
}

impl Cisco {
    pub fn new(clock: LogClock) -> Cisco {
        let mut msg = MsgBuf::default();
        msg.lenient_header_end = true;
        Cisco {
            clock,
            stats: FramerStats::default(),
            msg,
            lines: Vec::new(),
            block: None,
            tag_ts: None,
        }
    }

    fn end_block(&mut self, out: &mut dyn FnMut(&LogMessage<'_>)) {
        let Some((direction, ts_us, precision_us)) = self.block.take() else {
            return;
        };
        self.msg.clear();
        let mut seen_length = false;
        let mut it = self.lines.split(|&b| b == b'\n').peekable();
        while let Some(line) = it.next() {
            // Blank lines between headers (web copies, §5) are not the end of the headers
            // when another header follows and no Content-Length was seen yet.
            if !self.msg.headers_done()
                && line.is_empty()
                && !self.msg.is_empty()
                && !seen_length
                && it.peek().is_some_and(|n| text::is_header_line(n))
            {
                continue;
            }
            if !self.msg.headers_done() && content_length_header(line).is_some() {
                seen_length = true;
            }
            self.msg.push_line(line);
        }
        if self.msg.is_empty() {
            return;
        }
        let truncated = self.msg.finalize();
        let m = LogMessage {
            ts_us,
            precision_us,
            direction,
            peer: None,
            endpoints: None,
            transport: None,
            payload: self.msg.bytes(),
            logged_len: None,
            truncated,
        };
        self.stats.hand_on(&m, out);
    }
}

impl Framer for Cisco {
    fn line(&mut self, line: &[u8], out: &mut dyn FnMut(&LogMessage<'_>)) {
        self.stats.lines += 1;
        let line = chomp(line);
        let dir = direction(line);
        let rec = if dir.is_none() { record(line) } else { None };
        if self.block.is_some() {
            if dir.is_none() && rec.is_none() {
                if !self.lines.is_empty() {
                    self.lines.push(b'\n');
                }
                self.lines.extend_from_slice(line);
                if self.lines.len() > text::MAX_MESSAGE {
                    self.end_block(out);
                }
                return;
            }
            self.end_block(out);
        }
        if let Some(d) = dir {
            let (ts, precision) = self.tag_ts.take().unwrap_or((None, 0));
            self.lines.clear();
            self.block = Some((d, ts, precision));
            return;
        }
        if let Some((stamp, rest)) = rec {
            self.tag_ts = None;
            if rest.windows(16).any(|w| w == b"ccsipDisplayMsg:") {
                let ts = stamp.and_then(|(s, utc)| {
                    let us = if utc {
                        self.clock.stamp_utc_us(&s)
                    } else {
                        self.clock.stamp_us(&s)
                    };
                    us.map(|us| (us, s.precision_us))
                });
                self.tag_ts = Some(match ts {
                    Some((us, p)) => (Some(us), p),
                    None => (None, 0),
                });
            }
        }
    }

    fn finish(&mut self, out: &mut dyn FnMut(&LogMessage<'_>)) {
        self.end_block(out);
    }

    fn in_message(&self) -> bool {
        self.block.is_some() || self.tag_ts.is_some()
    }

    fn stats(&self) -> &FramerStats {
        &self.stats
    }

    fn clock_mut(&mut self) -> Option<&mut LogClock> {
        Some(&mut self.clock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    #[test]
    fn record_lines_with_sequence_numbers_timestamps_and_tags_are_recognised() {
        assert!(
            record(b"007592: Apr  7 07:28:56.046: //-1/xxxxxxxxxxxx/SIP/Msg/ccsipDisplayMsg:")
                .is_some_and(|(s, _)| s.is_some())
        );
        assert!(
            record(b"*Oct 14 00:25:06.327 UTC: //1/2/SIP/Msg/ccsipDisplayMsg:")
                .is_some_and(|(s, _)| s.is_some_and(|(_, utc)| utc))
        );
        assert!(record(b"//-1/xxxxxxxxxxxx/SIP/Msg/ccsipDisplayMsg:").is_some());
        assert!(record(b"Via: SIP/2.0/UDP 10.106.117.2:5060").is_none());
        assert!(record(b"v=0").is_none());
    }

    #[test]
    fn missing_blank_line_before_the_body_is_restored() {
        let mut f = Cisco::new(LogClock::new(TimeZone::UTC, Some(2022), 0));
        let log = "007592: Apr  7 07:28:56.046: //-1/x/SIP/Msg/ccsipDisplayMsg:\nSent: \nINVITE sip:a@1.2.3.4 SIP/2.0\nContent-Length: 5\nv=0\n//-1/x/SIP/Msg/ccsipDisplayMsg:\n";
        let mut got = Vec::new();
        for l in log.split('\n') {
            f.line(l.as_bytes(), &mut |m| {
                got.push((m.ts_us, m.payload.to_vec()))
            });
        }
        f.finish(&mut |m| got.push((m.ts_us, m.payload.to_vec())));
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].1,
            b"INVITE sip:a@1.2.3.4 SIP/2.0\r\nContent-Length: 5\r\n\r\nv=0\r\n"
        );
        assert_eq!(got[0].0, Some(1_649_316_536_046_000));
    }
}
