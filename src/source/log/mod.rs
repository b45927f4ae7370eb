//! PBX trace logs as a source: SIP messages cut out of the text a PBX writes when its SIP
//! trace is on (Asterisk `pjsip set logger on` / `sip set debug on`, FreeSWITCH
//! `siptrace`, Kamailio `sipdump`, Cisco `debug ccsip messages`).
//!
//! The formats, their versions and pitfalls are those of ../shared/PBX_LOGS.md (cited by
//! section below). Each format has a *framer*: lines in, [`LogMessage`]s out, each with its
//! time, direction, peer and transport where the log gives them, the message normalised
//! to CRLF in a buffer the framer reuses (no allocation per message). A framer is fed
//! complete lines only, so the same log gives the same messages whether it is read at once
//! or followed while it grows, however the writer's flushes fall ([`follow`]).
//!
//! Like every source, this knows nothing of calls: `ingest::log` and the daemon hand the
//! messages to the SIP parser and the tracker. Malformed input is counted in
//! [`FramerStats`] and skipped, never a panic; counters and errors never carry message
//! bytes.

use std::net::SocketAddr;

use crate::net::Transport;

mod chansip;
mod cisco;
mod detect;
pub mod follow;
mod freeswitch;
mod pjsip;
mod sipdump;
pub mod text;
pub mod time;
pub mod watch;

pub use detect::{detect, Detected, DETECT_BYTES};
pub use follow::{Checkpoint, FollowConfig, FollowError, Follower, Progress};
pub use freeswitch::{esl_lines, esl_unwrap, EslStats};
pub use time::LogClock;

/// The log formats callmeta reads (the names of `--format` and `[[source.log]] format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// Asterisk chan_pjsip `pjsip set logger on` (PBX_LOGS.md §1).
    AsteriskPjsip,
    /// Asterisk chan_sip `sip set debug on` (§2).
    AsteriskChansip,
    /// FreeSWITCH / sofia-sip siptrace, plain or from Event Socket `log/data` frames (§3).
    Freeswitch,
    /// Kamailio `sipdump` module text files (§4).
    KamailioSipdump,
    /// Cisco IOS / CUBE `debug ccsip messages` (§5).
    Cisco,
}

impl LogFormat {
    pub const ALL: [LogFormat; 5] = [
        LogFormat::AsteriskPjsip,
        LogFormat::AsteriskChansip,
        LogFormat::Freeswitch,
        LogFormat::KamailioSipdump,
        LogFormat::Cisco,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::AsteriskPjsip => "asterisk-pjsip",
            LogFormat::AsteriskChansip => "asterisk-chansip",
            LogFormat::Freeswitch => "freeswitch",
            LogFormat::KamailioSipdump => "kamailio-sipdump",
            LogFormat::Cisco => "cisco",
        }
    }

    pub fn from_name(name: &str) -> Option<LogFormat> {
        LogFormat::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the PBX received or sent the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Received,
    Sent,
}

/// One SIP message cut out of a log.
#[derive(Clone, Copy)]
pub struct LogMessage<'a> {
    /// µs UTC; `None` when the log gives no time for it (console output without
    /// `timestamp=yes`, Cisco output without `service timestamps`).
    pub ts_us: Option<i64>,
    /// Resolution of `ts_us`: 1 (µs) to 1_000_000 (whole seconds).
    pub precision_us: u32,
    pub direction: Direction,
    /// The other end, when the log names it.
    pub peer: Option<SocketAddr>,
    /// Source and destination, when the log names both (Kamailio sipdump).
    pub endpoints: Option<(SocketAddr, SocketAddr)>,
    pub transport: Option<Transport>,
    /// The message, CRLF line endings, cut at its Content-Length.
    pub payload: &'a [u8],
    /// The byte count the log printed (`(N bytes)`, `recv N bytes`).
    pub logged_len: Option<usize>,
    /// Shorter than its Content-Length or byte count: the PBX's logger cut it (§1.3, §3.2).
    pub truncated: bool,
}

impl std::fmt::Debug for LogMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMessage")
            .field("ts_us", &self.ts_us)
            .field("precision_us", &self.precision_us)
            .field("direction", &self.direction)
            .field("peer", &self.peer)
            .field("endpoints", &self.endpoints)
            .field("transport", &self.transport)
            .field("payload", &crate::privacy::Redacted(self.payload))
            .field("logged_len", &self.logged_len)
            .field("truncated", &self.truncated)
            .finish()
    }
}

/// What a framer counted. Never holds message bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FramerStats {
    /// Lines read.
    pub lines: u64,
    /// Messages handed on.
    pub messages: u64,
    /// Messages shorter than their Content-Length or logged byte count (still handed on).
    pub truncated: u64,
    /// Messages whose length differs from the logged byte count (doc-edited samples,
    /// lost CRs) without being truncated.
    pub length_mismatch: u64,
    /// pjsip rx blocks that held several messages of one TCP read (§1.4.2).
    pub coalesced: u64,
    /// chan_sip keep-alive and empty reads, skipped (§2).
    pub keepalives: u64,
    /// Message lines of old-layout FreeSWITCH blocks interrupted by other threads' lines,
    /// and other lines inside a block that are not part of the message.
    pub interleaved: u64,
    /// Lines that looked like a message header but could not be read.
    pub bad_headers: u64,
    /// Messages with no time in the log.
    pub no_time: u64,
}

impl FramerStats {
    /// Hands one framed message on, counting it the one way every framer does: handed on,
    /// truncated or else off its logged byte count, without a time.
    pub fn hand_on(&mut self, m: &LogMessage<'_>, out: &mut dyn FnMut(&LogMessage<'_>)) {
        if m.truncated {
            self.truncated += 1;
        } else if m.logged_len.is_some_and(|n| n != m.payload.len()) {
            self.length_mismatch += 1;
        }
        if m.ts_us.is_none() {
            self.no_time += 1;
        }
        self.messages += 1;
        out(m);
    }
}

/// A format's framer: complete lines in (without their `\n`), messages out.
pub trait Framer: Send {
    /// Reads one line. `out` is called for every message the line completes.
    fn line(&mut self, line: &[u8], out: &mut dyn FnMut(&LogMessage<'_>));
    /// The input ended (or paused long enough): hands on a message still being collected.
    fn finish(&mut self, out: &mut dyn FnMut(&LogMessage<'_>));
    /// Whether a message is being collected: a checkpoint taken now would cut it.
    fn in_message(&self) -> bool;
    fn stats(&self) -> &FramerStats;
    /// Looks at a line before framing starts (FreeSWITCH: dates and midnight roll-overs
    /// before the first message). Default: nothing.
    fn prescan(&mut self, _line: &[u8]) {}
    /// The pre-scan is over.
    fn prescan_done(&mut self) {}
    /// The clock of formats that read local times (a follower moves its reference).
    fn clock_mut(&mut self) -> Option<&mut LogClock> {
        None
    }
}

/// A framer for `format`, reading times with `clock`.
pub fn framer(format: LogFormat, clock: LogClock) -> Box<dyn Framer> {
    match format {
        LogFormat::AsteriskPjsip => Box::new(pjsip::Pjsip::new(clock)),
        LogFormat::AsteriskChansip => Box::new(chansip::ChanSip::new(clock)),
        LogFormat::Freeswitch => Box::new(freeswitch::Freeswitch::new(clock)),
        LogFormat::KamailioSipdump => Box::new(sipdump::Sipdump::new()),
        LogFormat::Cisco => Box::new(cisco::Cisco::new(clock)),
    }
}

/// Whether a format needs [`Framer::prescan`] over the whole file before framing.
pub fn needs_prescan(format: LogFormat) -> bool {
    format == LogFormat::Freeswitch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handing_on_counts_truncation_before_length_mismatch_and_missing_times() {
        let mut stats = FramerStats::default();
        let mut seen = 0;
        let mut out = |_: &LogMessage<'_>| seen += 1;
        let m = LogMessage {
            ts_us: None,
            precision_us: 1,
            direction: Direction::Received,
            peer: None,
            endpoints: None,
            transport: None,
            payload: b"SIP/2.0 200 OK\r\n\r\n",
            logged_len: Some(99),
            truncated: true,
        };
        stats.hand_on(&m, &mut out);
        stats.hand_on(
            &LogMessage {
                ts_us: Some(0),
                truncated: false,
                ..m
            },
            &mut out,
        );
        assert_eq!(seen, 2);
        assert_eq!(
            (
                stats.messages,
                stats.truncated,
                stats.length_mismatch,
                stats.no_time
            ),
            (2, 1, 1, 1)
        );
    }
}
