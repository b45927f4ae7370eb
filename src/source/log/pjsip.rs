//! Asterisk chan_pjsip `pjsip set logger on` (PBX_LOGS.md §1, `res/res_pjsip_logger.c`).
//!
//! A block is `<--- Received|Transmitting SIP request|response (N bytes) from|to
//! TYPE:addr:port --->`, then the raw message, then one `\n`; no terminator. The message
//! ends at its Content-Length (N is kept to check it). Lines may carry the log file's
//! prefix (first line of a record only), the console's `timestamp=yes` header (every
//! line), no prefix at all (CLI output: the time comes from the last prefixed line, or is
//! unknown), or be JSON records (`formatter = json`, whole block in `"message"`).

use std::net::SocketAddr;

use super::text::{self, asterisk_prefix, chomp, fnv1a, MsgBuf, Stamp};
use super::{Direction, Framer, FramerStats, LogClock, LogMessage};
use crate::net::Transport;
use crate::sip::framing::is_start_line;

#[derive(Debug, Clone, Copy)]
struct Block {
    direction: Direction,
    logged_len: usize,
    transport: Option<Transport>,
    peer: Option<SocketAddr>,
    ts_us: Option<i64>,
    precision_us: u32,
    /// rx over a stream transport: the block may hold a whole TCP read (§1.4.2), so the
    /// message is chosen when the block ends.
    stream_rx: bool,
    /// The current message is complete; waiting to see whether another one follows.
    awaiting_next: bool,
}

pub struct Pjsip {
    clock: LogClock,
    stats: FramerStats,
    msg: MsgBuf,
    block: Option<Block>,
    /// Time of the last prefixed line: the time of unprefixed console blocks.
    last_ts: Option<(i64, u32)>,
    /// Messages of the current block (start, end) in `msg`.
    subs: Vec<(usize, usize)>,
    /// Fingerprint of the first message of the last multi-message block, and which one
    /// of them was kept: the next block of the same read keeps the one after it.
    prev_first: u64,
    prev_pick: usize,
}

/// The block header: direction, N, TYPE and peer (§1.1: parse the address from the
/// right; TYPE is the text before the first `:`).
pub(super) fn header(
    l: &[u8],
) -> Option<(Direction, usize, Option<Transport>, Option<SocketAddr>)> {
    let l = l.strip_prefix(b"<--- ")?;
    let (direction, rest) = if let Some(r) = l.strip_prefix(b"Received SIP ") {
        (Direction::Received, r)
    } else {
        (Direction::Sent, l.strip_prefix(b"Transmitting SIP ")?)
    };
    let rest = rest
        .strip_prefix(b"request (")
        .or_else(|| rest.strip_prefix(b"response ("))?;
    let sp = memchr::memchr(b' ', rest)?;
    let n = usize::try_from(text::number(&rest[..sp], 9)?).ok()?;
    let rest = rest[sp..].strip_prefix(b" bytes) ")?;
    let rest = match direction {
        Direction::Received => rest.strip_prefix(b"from ")?,
        Direction::Sent => rest.strip_prefix(b"to ")?,
    };
    let rest = chomp(rest);
    let addr = rest.strip_suffix(b" --->").unwrap_or(rest);
    let colon = memchr::memchr(b':', addr)?;
    Some((
        direction,
        n,
        text::transport(&addr[..colon]),
        text::socket_addr(&addr[colon + 1..]),
    ))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A log-file record's first line: ends any block.
    Record,
    /// A console line (with or without `timestamp=yes`).
    Console,
}

impl Pjsip {
    pub fn new(clock: LogClock) -> Pjsip {
        Pjsip {
            clock,
            stats: FramerStats::default(),
            msg: MsgBuf::default(),
            block: None,
            last_ts: None,
            subs: Vec::new(),
            prev_first: 0,
            prev_pick: 0,
        }
    }

    fn stamp(&mut self, s: &Stamp) -> Option<(i64, u32)> {
        let us = self.clock.stamp_us(s)?;
        self.last_ts = Some((us, s.precision_us));
        self.last_ts
    }

    fn content(
        &mut self,
        content: &[u8],
        kind: Kind,
        ts: Option<(i64, u32)>,
        out: &mut dyn FnMut(&LogMessage<'_>),
    ) {
        if let Some(block) = self.block {
            let hdr = header(content);
            if kind == Kind::Record || hdr.is_some() {
                self.end_block(out);
            } else if block.awaiting_next {
                if is_start_line(content) {
                    self.msg.begin_next();
                    self.msg.push_line(content);
                    if let Some(b) = &mut self.block {
                        b.awaiting_next = false;
                    }
                    return;
                }
                self.end_block(out);
            } else {
                self.msg.push_line(content);
                if self.msg.is_complete() {
                    self.complete(out);
                }
                return;
            }
        }
        if content.starts_with(b"<--- ") {
            match header(content) {
                Some((direction, logged_len, transport, peer)) => {
                    let (ts_us, precision_us) = match ts.or(self.last_ts) {
                        Some((t, p)) => (Some(t), p),
                        None => (None, 0),
                    };
                    self.msg.clear();
                    self.subs.clear();
                    self.block = Some(Block {
                        direction,
                        logged_len,
                        transport,
                        peer,
                        ts_us,
                        precision_us,
                        stream_rx: direction == Direction::Received
                            && !matches!(transport, Some(Transport::Udp)),
                        awaiting_next: false,
                    });
                }
                None if content.contains(&b'(') && content.windows(4).any(|w| w == b"SIP ") => {
                    self.stats.bad_headers += 1
                }
                None => {}
            }
        }
    }

    /// The current message is complete by its Content-Length.
    fn complete(&mut self, out: &mut dyn FnMut(&LogMessage<'_>)) {
        let Some(block) = self.block else { return };
        let start = self.msg.base();
        let end = self.msg.expected_end().unwrap_or(self.msg.len());
        if !block.stream_rx {
            // tx prints the buffer capacity (`%.*s`): nothing after Content-Length is
            // trusted (§1.4.3). UDP rx is one datagram.
            self.subs.clear();
            self.subs.push((start, end));
            self.end_block(out);
            return;
        }
        self.subs.push((start, end));
        if let Some(b) = &mut self.block {
            b.awaiting_next = true;
        }
    }

    fn end_block(&mut self, out: &mut dyn FnMut(&LogMessage<'_>)) {
        let Some(block) = self.block.take() else {
            return;
        };
        let truncated = if self.subs.is_empty() {
            if self.msg.is_empty() {
                return;
            }
            let no_length = self.msg.expected_end().is_none();
            self.msg.finalize() || (no_length && self.msg.len() < block.logged_len)
        } else {
            let pick = self.pick(block.logged_len);
            let (start, end) = self.subs[pick];
            self.msg.keep(start, end);
            false
        };
        self.emit(&block, truncated, out);
    }

    /// Chooses the message of a block that holds one TCP read (§1.4.2): the one whose
    /// length is N; when the same read is logged again (same first message), the next such
    /// one after the message kept last time.
    fn pick(&mut self, n: usize) -> usize {
        let subs = &self.subs;
        if subs.len() == 1 {
            return 0;
        }
        self.stats.coalesced += 1;
        let bytes = self.msg.bytes();
        let first = fnv1a(&bytes[subs[0].0..subs[0].1]);
        let fits = |i: &usize| subs[*i].1 - subs[*i].0 == n;
        let after = if first == self.prev_first {
            (self.prev_pick + 1..subs.len()).find(fits)
        } else {
            None
        };
        let pick = after.or_else(|| (0..subs.len()).find(fits)).unwrap_or(0);
        self.prev_first = first;
        self.prev_pick = pick;
        pick
    }

    fn emit(&mut self, block: &Block, truncated: bool, out: &mut dyn FnMut(&LogMessage<'_>)) {
        let m = LogMessage {
            ts_us: block.ts_us,
            precision_us: block.precision_us,
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

    /// `formatter = json`: one object per record, the block in `logmsg.message` (Asterisk
    /// `format_log_json()`).
    fn json(&mut self, line: &[u8], out: &mut dyn FnMut(&LogMessage<'_>)) -> bool {
        #[derive(serde::Deserialize)]
        struct Rec {
            timestamp: Option<String>,
            logmsg: LogMsg,
        }
        #[derive(serde::Deserialize)]
        struct LogMsg {
            message: String,
        }
        let Ok(rec) = serde_json::from_slice::<Rec>(line) else {
            return false;
        };
        let ts = rec
            .timestamp
            .as_deref()
            .and_then(|t| text::any_stamp(t.as_bytes()).ok())
            .and_then(|(_, s)| self.stamp(&s));
        let mut kind = Kind::Record;
        for l in rec.logmsg.message.split('\n') {
            self.content(l.as_bytes(), kind, ts, out);
            kind = Kind::Console;
        }
        true
    }
}

impl Framer for Pjsip {
    fn line(&mut self, line: &[u8], out: &mut dyn FnMut(&LogMessage<'_>)) {
        self.stats.lines += 1;
        let line = chomp(line);
        if line.first() == Some(&b'{') && self.block.is_none() && self.json(line, out) {
            return;
        }
        match asterisk_prefix(line) {
            Some(p) => {
                let ts = self.stamp(&p.stamp);
                let kind = if p.record {
                    Kind::Record
                } else {
                    Kind::Console
                };
                self.content(p.content, kind, ts, out);
            }
            None => self.content(line, Kind::Console, None, out),
        }
    }

    fn finish(&mut self, out: &mut dyn FnMut(&LogMessage<'_>)) {
        self.end_block(out);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    type Got = Vec<(Option<i64>, Direction, String, bool)>;

    fn frame(log: &str) -> (Got, FramerStats) {
        let mut f = Pjsip::new(LogClock::new(TimeZone::UTC, Some(2025), 0));
        let mut got = Vec::new();
        let mut out = |m: &LogMessage<'_>| {
            got.push((
                m.ts_us,
                m.direction,
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

    const OPTIONS: &str = "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn header_parses_ipv6_peer_and_websocket_type() {
        let (d, n, t, p) =
            header(b"<--- Received SIP request (12 bytes) from WSS:[2001:db8::1]:443 --->")
                .unwrap();
        assert_eq!((d, n, t), (Direction::Received, 12, Some(Transport::Wss)));
        assert_eq!(p, "[2001:db8::1]:443".parse().ok());
    }

    #[test]
    fn file_prefix_gives_the_time_and_ends_at_content_length() {
        let log = format!(
            "[Jan  2 10:15:00] VERBOSE[1][C-0000000a] res_pjsip_logger.c: <--- Transmitting SIP request ({} bytes) to UDP:1.2.3.4:5060 --->\n{OPTIONS}\n[Jan  2 10:15:01] VERBOSE[1] app.c: next\n",
            OPTIONS.len()
        );
        let (got, stats) = frame(&log);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].2, OPTIONS);
        assert_eq!(got[0].0, Some(1_735_812_900_000_000));
        assert_eq!(stats.length_mismatch, 0);
    }

    #[test]
    fn console_block_without_time_takes_the_last_prefixed_line_or_none() {
        let log = format!(
            "<--- Received SIP request ({0} bytes) from UDP:1.2.3.4:5060 --->\n{OPTIONS}\n[Jan  2 10:15:00] x\n<--- Received SIP request ({0} bytes) from UDP:1.2.3.4:5060 --->\n{OPTIONS}\n",
            OPTIONS.len()
        );
        let (got, stats) = frame(&log);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, None);
        assert_eq!(got[1].0, Some(1_735_812_900_000_000));
        assert_eq!(stats.no_time, 1);
    }

    #[test]
    fn a_block_cut_by_the_next_record_is_counted_truncated_and_still_handed_on() {
        let log = "[Jan  2 10:15:00] VERBOSE[1] res_pjsip_logger.c: <--- Received SIP request (900 bytes) from UDP:1.2.3.4:5060 --->\nINVITE sip:a@b SIP/2.0\nContent-Length: 300\n\nv=0\n[Jan  2 10:15:01] VERBOSE[1] app.c: next\n";
        let (got, stats) = frame(log);
        assert_eq!(got.len(), 1);
        assert!(got[0].3);
        assert_eq!(stats.truncated, 1);
    }

    #[test]
    fn coalesced_tcp_reads_keep_each_message_once() {
        let a = OPTIONS;
        let b = "BYE sip:a@b SIP/2.0\r\nCall-ID: y\r\nContent-Length: 0\r\n\r\n";
        let c = "ACK sip:a@b SIP/2.0\r\nCall-ID: z\r\nContent-Length: 0\r\n\r\n";
        let buf = format!("{a}{b}{c}");
        let mut log = String::new();
        for m in [a, b, c] {
            log.push_str(&format!(
                "<--- Received SIP request ({} bytes) from TCP:1.2.3.4:5060 --->\n{buf}\n",
                m.len()
            ));
        }
        let (got, stats) = frame(&log);
        let got: Vec<&str> = got.iter().map(|g| g.2.as_str()).collect();
        assert_eq!(got, vec![a, b, c]);
        assert_eq!(stats.coalesced, 3);
    }

    #[test]
    fn json_formatter_records_are_framed() {
        let msg = format!(
            "<--- Received SIP request ({} bytes) from UDP:1.2.3.4:5060 --->\n{OPTIONS}\n",
            OPTIONS.len()
        );
        let rec = serde_json::json!({"hostname": "h", "timestamp": "2025-01-02 10:15:00.5",
            "identifiers": {"lwp": 1, "callid": ""},
            "logmsg": {"location": {"filename": "res_pjsip_logger.c", "function": "f", "line": 1},
                       "level": "VERBOSE", "message": msg}});
        let (got, _) = frame(&format!("{rec}\n"));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, Some(1_735_812_900_500_000));
        assert_eq!(got[0].2, OPTIONS);
    }
}
