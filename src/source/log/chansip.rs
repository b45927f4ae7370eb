//! Asterisk chan_sip `sip set debug on` (PBX_LOGS.md §2, `channels/chan_sip.c`, 1.4 to 20).
//!
//! Three block shapes with three terminators: received `<--- SIP read from TYPE:addr:port
//! --->` … `<------------->` (13 dashes, LF-only text after `lws2sws()`), sent responses
//! `<--- [Reliably ]Transmitting (NAT|no NAT) to addr:port --->` … `<------------>` (12),
//! sent requests and retransmissions `[Reliably ]Transmitting (…) to addr:port:` or
//! `Retransmitting #n (…) to addr:port:` … `---`. Sent messages carry no transport (the
//! ingest takes it from the top Via). Empty reads and NAT keep-alives are skipped.

use std::net::SocketAddr;

use super::text::{self, asterisk_prefix, chomp, MsgBuf};
use super::{Direction, Framer, FramerStats, LogClock, LogMessage};
use crate::net::Transport;
use crate::sip::framing::is_start_line;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Read,
    Response,
    Request,
}

impl End {
    fn matches(self, line: &[u8]) -> bool {
        match self {
            End::Read => line == b"<------------->",
            End::Response => line == b"<------------>",
            End::Request => line == b"---",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Block {
    direction: Direction,
    end: End,
    transport: Option<Transport>,
    peer: Option<SocketAddr>,
    ts_us: Option<i64>,
    precision_us: u32,
}

pub struct ChanSip {
    clock: LogClock,
    stats: FramerStats,
    msg: MsgBuf,
    block: Option<Block>,
    last_ts: Option<(i64, u32)>,
    /// The last line was a log record with no text: in the `full` file a block's header
    /// follows on the next line (§2), with this record's time. A restart must resume here.
    pending_record: bool,
}

/// `TYPE:addr:port` (1.8+), `addr:port` (1.4) or `TYPE:addr:port` written by 1.6.2's
/// `%s:%s:%d`: the transport is a known name before the first `:`.
fn typed_addr(s: &[u8]) -> (Option<Transport>, Option<SocketAddr>) {
    if let Some(colon) = memchr::memchr(b':', s) {
        if let Some(t) = text::transport(&s[..colon]) {
            return (Some(t), text::socket_addr(&s[colon + 1..]));
        }
        if &s[..colon] == b"UNKNOWN" {
            return (None, text::socket_addr(&s[colon + 1..]));
        }
    }
    (None, text::socket_addr(s))
}

fn header(l: &[u8]) -> Option<(Direction, End, Option<Transport>, Option<SocketAddr>)> {
    if let Some(rest) = l.strip_prefix(b"<--- SIP read from ") {
        let addr = rest.strip_suffix(b" --->")?;
        let (t, p) = typed_addr(addr);
        return Some((Direction::Received, End::Read, t, p));
    }
    if let Some(rest) = l.strip_prefix(b"<--- ") {
        let rest = rest.strip_prefix(b"Reliably ").unwrap_or(rest);
        let rest = rest.strip_prefix(b"Transmitting (")?;
        let close = memchr::memchr(b')', rest)?;
        let addr = rest[close + 1..]
            .strip_prefix(b" to ")?
            .strip_suffix(b" --->")?;
        return Some((
            Direction::Sent,
            End::Response,
            None,
            text::socket_addr(addr),
        ));
    }
    let rest = if let Some(r) = l.strip_prefix(b"Retransmitting #") {
        let sp = memchr::memchr(b' ', r)?;
        r[sp + 1..].strip_prefix(b"(")?
    } else {
        let r = l.strip_prefix(b"Reliably ").unwrap_or(l);
        r.strip_prefix(b"Transmitting (")?
    };
    let close = memchr::memchr(b')', rest)?;
    let addr = rest[close + 1..]
        .strip_prefix(b" to ")?
        .strip_suffix(b":")?;
    Some((Direction::Sent, End::Request, None, text::socket_addr(addr)))
}

impl ChanSip {
    pub fn new(clock: LogClock) -> ChanSip {
        ChanSip {
            clock,
            stats: FramerStats::default(),
            msg: MsgBuf::default(),
            block: None,
            last_ts: None,
            pending_record: false,
        }
    }

    fn end_block(&mut self, terminated: bool, out: &mut dyn FnMut(&LogMessage<'_>)) {
        let Some(block) = self.block.take() else {
            return;
        };
        let first_line = self
            .msg
            .bytes()
            .split(|&b| b == b'\n')
            .next()
            .unwrap_or_default();
        if !is_start_line(first_line) {
            // `--- (0 headers 0 lines) Nat keepalive ---` follows these (§2).
            self.stats.keepalives += 1;
            return;
        }
        let truncated = self.msg.finalize() || !terminated;
        let m = LogMessage {
            ts_us: block.ts_us,
            precision_us: block.precision_us,
            direction: block.direction,
            peer: block.peer,
            endpoints: None,
            transport: block.transport,
            payload: self.msg.bytes(),
            logged_len: None,
            truncated,
        };
        self.stats.hand_on(&m, out);
    }
}

impl Framer for ChanSip {
    fn line(&mut self, line: &[u8], out: &mut dyn FnMut(&LogMessage<'_>)) {
        self.stats.lines += 1;
        let line = chomp(line);
        let (content, record) = match asterisk_prefix(line) {
            Some(p) => {
                if let Some(us) = self.clock.stamp_us(&p.stamp) {
                    self.last_ts = Some((us, p.stamp.precision_us));
                }
                (p.content, p.record)
            }
            None => (line, false),
        };
        self.pending_record = record && content.is_empty();
        if let Some(block) = self.block {
            if block.end.matches(content) {
                self.end_block(true, out);
                return;
            }
            let hdr = header(content);
            if !record && hdr.is_none() {
                self.msg.push_line(content);
                return;
            }
            // A new record or block without the terminator: the logger cut this one.
            self.end_block(false, out);
        }
        if let Some((direction, end, transport, peer)) = header(content) {
            let (ts_us, precision_us) = match self.last_ts {
                Some((t, p)) => (Some(t), p),
                None => (None, 0),
            };
            self.msg.clear();
            self.block = Some(Block {
                direction,
                end,
                transport,
                peer,
                ts_us,
                precision_us,
            });
        }
    }

    fn finish(&mut self, out: &mut dyn FnMut(&LogMessage<'_>)) {
        self.end_block(false, out);
    }

    fn in_message(&self) -> bool {
        self.block.is_some() || self.pending_record
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

    fn frame(log: &str) -> (Vec<(Direction, Option<Transport>, String)>, FramerStats) {
        let mut f = ChanSip::new(LogClock::new(TimeZone::UTC, Some(2025), 0));
        let mut got = Vec::new();
        let mut out = |m: &LogMessage<'_>| {
            got.push((
                m.direction,
                m.transport,
                String::from_utf8_lossy(m.payload).into_owned(),
            ))
        };
        for l in log.split('\n') {
            f.line(l.as_bytes(), &mut out);
        }
        f.finish(&mut out);
        (got, f.stats().clone())
    }

    #[test]
    fn three_terminators_and_mixed_line_endings_give_crlf_messages() {
        let log = "\n<--- SIP read from UDP:1.2.3.4:5060 --->\nOPTIONS sip:a@b SIP/2.0\nContent-Length: 0\n\n<------------->\n--- (2 headers 0 lines) ---\n\n<--- Transmitting (no NAT) to 1.2.3.4:5060 --->\nSIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n\n<------------>\nReliably Transmitting (NAT) to 1.2.3.4:5060:\nBYE sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n\n---\n";
        let (got, stats) = frame(log);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, Direction::Received);
        assert_eq!(got[0].1, Some(Transport::Udp));
        assert_eq!(
            got[0].2,
            "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(got[1].2, "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(got[2].0, Direction::Sent);
        assert_eq!(got[2].1, None);
        assert_eq!(stats.truncated, 0);
    }

    #[test]
    fn nat_keepalive_reads_are_skipped_and_counted() {
        let log = "\n<--- SIP read from UDP:1.2.3.4:5060 --->\njaK\n<------------->\n--- (0 headers 0 lines) Nat keepalive ---\n";
        let (got, stats) = frame(log);
        assert!(got.is_empty());
        assert_eq!(stats.keepalives, 1);
    }

    #[test]
    fn retransmission_header_is_a_sent_request() {
        assert!(matches!(
            header(b"Retransmitting #1 (no NAT) to 10.0.0.1:5060:"),
            Some((Direction::Sent, End::Request, None, Some(_)))
        ));
    }
}
