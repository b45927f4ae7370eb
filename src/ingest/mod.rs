//! Offline ingest: files in, finished records out to a caller-supplied sink.
//!
//! `capture` reads pcap/pcapng files (frames → datagrams → SIP messages → tracker);
//! `log` reads PBX trace logs (lines → framed messages → SIP messages → tracker).
//! What every input path shares lives here, so they all behave the same: the per-file
//! summary and the feeding of one transport payload to the tracker. This module knows
//! nothing of the store.

mod capture;
pub mod log;

pub use capture::{ingest_files, ingest_files_with};
pub use log::{ingest_log_files, LogFeed, LogOptions};

use std::sync::Arc;
use std::time::Duration;

use crate::call::{Meta, Record, Tracker};
use crate::net::{Datagram, Transport};
use crate::sip;

/// What happened to one input file.
#[derive(Debug, Clone, Default)]
pub struct FileSummary {
    pub path: String,
    pub frames: u64,
    pub sip_messages: u64,
    pub calls: u64,
    pub messages: u64,
    /// Frames or payloads not used, by reason (decode skips, `not_sip`, parse errors).
    pub skipped: Vec<(&'static str, u64)>,
    /// Non-zero reassembly counters of the network layer (IP fragments, TCP, WebSocket,
    /// TLS, SCTP), from `net::Decoder::counters`.
    pub net: Vec<(&'static str, u64)>,
    /// TLS connections that could not be read, per peer, with the hint that the PBX's trace
    /// log covers encrypted signalling; `None` when there were none.
    pub tls: Option<String>,
    /// What was noticed but still used, by kind (logs: `truncated`, `coalesced`, ...).
    pub notes: Vec<(&'static str, u64)>,
    /// Things the operator should know about the records (logs: times unknown).
    pub warnings: Vec<String>,
    /// Set when the file could not be opened or was damaged part-way; what was read
    /// before the damage is kept.
    pub error: Option<String>,
    pub elapsed: Duration,
}

impl FileSummary {
    pub(crate) fn skip(&mut self, kind: &'static str) {
        match self.skipped.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.skipped.push((kind, 1)),
        }
    }

    /// The one-line summary `callmeta ingest` prints.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{}: {} frames, {} SIP messages, {} calls, {} messages written",
            self.path, self.frames, self.sip_messages, self.calls, self.messages
        );
        if !self.skipped.is_empty() {
            let mut skipped = self.skipped.clone();
            skipped.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let parts: Vec<String> = skipped.iter().map(|(k, n)| format!("{k}={n}")).collect();
            line.push_str(&format!("; skipped {}", parts.join(" ")));
        }
        if let Some(tls) = &self.tls {
            line.push_str(&format!("; {tls}"));
        }
        if !self.notes.is_empty() {
            let parts: Vec<String> = self.notes.iter().map(|(k, n)| format!("{k}={n}")).collect();
            line.push_str(&format!("; noted {}", parts.join(" ")));
        }
        line.push_str(&format!("; {:.3}s", self.elapsed.as_secs_f64()));
        for w in &self.warnings {
            line.push_str(&format!("; WARNING: {w}"));
        }
        if let Some(e) = &self.error {
            line.push_str(&format!("; ERROR: {e}"));
        }
        line
    }
}

/// Feeds the SIP messages of one datagram to the tracker; returns how many there were.
/// Shared by every input path so they behave the same.
pub fn feed_datagram(
    tracker: &mut Tracker,
    dg: &Datagram<'_>,
    source: &Arc<str>,
    out: &mut Vec<Record>,
    mut skip: impl FnMut(&'static str),
) -> u64 {
    let meta = Meta {
        ts_us: dg.ts_us,
        src: dg.src,
        dst: dg.dst,
        transport: dg.transport,
        source,
    };
    let mut rest = dg.payload;
    let mut n = 0;
    loop {
        // Keep-alives (RFC 5626 §3.5.1) and padding between messages.
        rest = &rest[sip::framing::leading_crlf(rest)..];
        if rest.is_empty() {
            break;
        }
        if !sip::looks_like_sip(rest) {
            if n == 0 {
                skip("not_sip");
            }
            break;
        }
        // A datagram is its own frame; a stream chunk needs its blank line.
        let parsed = match dg.transport {
            Transport::Udp | Transport::Sctp => sip::parse_datagram(rest),
            _ => sip::parse(rest),
        };
        match parsed {
            Ok(msg) => {
                n += 1;
                tracker.on_message(&meta, &msg, out);
                if msg.len == 0 || msg.len >= rest.len() {
                    break;
                }
                rest = &rest[msg.len..];
            }
            Err(e) => {
                skip(e.kind());
                break;
            }
        }
    }
    n
}

/// Hands every finished record in `out` to `sink`, counting each against the summary of
/// the input it came from (its `source`; a log whose peers came from headers carries a
/// suffix, see `log::PEER_FROM_HEADERS`). `summary` finds the summary inside each input,
/// so callers keep their own input types and nothing is allocated.
pub(crate) fn drain<S, E>(
    out: &mut Vec<Record>,
    inputs: &mut [S],
    summary: fn(&mut S) -> &mut FileSummary,
    sink: &mut impl FnMut(Record) -> Result<(), E>,
) -> Result<(), E> {
    for record in out.drain(..) {
        let source = match &record {
            Record::Call(c) => c.source.as_str(),
            Record::Message(m) => m.source.as_str(),
        };
        let source = source
            .strip_suffix(log::PEER_FROM_HEADERS)
            .unwrap_or(source);
        if let Some(summary) = inputs.iter_mut().map(summary).find(|s| s.path == source) {
            match &record {
                Record::Call(_) => summary.calls += 1,
                Record::Message(_) => summary.messages += 1,
            }
        }
        sink(record)?;
    }
    Ok(())
}
