//! Offline ingest: capture files → frames → datagrams → SIP messages → tracker → records.
//!
//! Several files are one stream in time order (rotated captures, or one capture per
//! interface): frames are merged by timestamp across files, so a call spanning two
//! files is one record. Finished records go to a caller-supplied sink; this module knows
//! nothing of the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::call::{Meta, Record, Tracker, TrackerConfig};
use crate::net::{Datagram, Decoder, LinkType, SkipKind};
use crate::sip;
use crate::source::{CaptureFile, SourceError};

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
    /// Set when the file could not be opened or was damaged part-way; what was read
    /// before the damage is kept.
    pub error: Option<String>,
    pub elapsed: Duration,
}

impl FileSummary {
    fn skip(&mut self, kind: &'static str) {
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
        line.push_str(&format!("; {:.3}s", self.elapsed.as_secs_f64()));
        if let Some(e) = &self.error {
            line.push_str(&format!("; ERROR: {e}"));
        }
        line
    }
}

struct Input {
    cap: CaptureFile,
    link: Option<LinkType>,
    decoder: Decoder,
    name: Arc<str>,
    /// The next frame, copied out of libpcap's buffer so every file can hold one.
    pending: Option<(i64, u32)>,
    buf: Vec<u8>,
    summary: FileSummary,
    started: Instant,
    busy: Duration,
}

impl Input {
    fn refill(&mut self) {
        let t = Instant::now();
        self.pending = match self.cap.next_frame() {
            Ok(Some(frame)) => {
                self.buf.clear();
                self.buf.extend_from_slice(frame.data);
                Some((frame.ts_us, frame.wire_len))
            }
            Ok(None) => None,
            Err(e @ SourceError::Truncated { .. }) | Err(e @ SourceError::Open { .. }) => {
                self.summary.error = Some(e.to_string());
                None
            }
        };
        self.busy += t.elapsed();
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
        while let [b'\r' | b'\n', tail @ ..] = rest {
            rest = tail;
        }
        if rest.is_empty() {
            break;
        }
        if !sip::looks_like_sip(rest) {
            if n == 0 {
                skip("not_sip");
            }
            break;
        }
        match sip::parse(rest) {
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

/// Reads `paths` as one time-ordered stream and hands every finished record to `sink`.
/// A file that cannot be opened or is damaged is reported in its summary; the others
/// are still read. `sink` errors stop the run.
pub fn ingest_files<E>(
    paths: &[PathBuf],
    cfg: TrackerConfig,
    mut sink: impl FnMut(Record) -> Result<(), E>,
) -> Result<Vec<FileSummary>, E> {
    let mut inputs: Vec<Input> = Vec::with_capacity(paths.len());
    let mut failed: Vec<FileSummary> = Vec::new();
    for path in paths {
        let name = display(path);
        match CaptureFile::open(path) {
            Ok(cap) => {
                let link = LinkType::from_dlt(cap.dlt());
                let mut summary = FileSummary {
                    path: name.clone(),
                    ..Default::default()
                };
                if link.is_none() {
                    summary.error = Some(format!(
                        "link type {} is not supported (Ethernet, Linux cooked v1/v2, raw IP and BSD loopback are)",
                        cap.dlt()
                    ));
                }
                let mut input = Input {
                    cap,
                    link,
                    decoder: Decoder::new(),
                    name: Arc::from(name.as_str()),
                    pending: None,
                    buf: Vec::with_capacity(65_536),
                    summary,
                    started: Instant::now(),
                    busy: Duration::ZERO,
                };
                input.refill();
                inputs.push(input);
            }
            Err(e) => failed.push(FileSummary {
                path: name,
                error: Some(e.to_string()),
                ..Default::default()
            }),
        }
    }

    let mut tracker = Tracker::new(cfg);
    let mut out: Vec<Record> = Vec::with_capacity(64);
    loop {
        let next = inputs
            .iter()
            .enumerate()
            .filter_map(|(i, inp)| inp.pending.map(|(ts, _)| (ts, i)))
            .min();
        let Some((ts, i)) = next else { break };
        let input = &mut inputs[i];
        let t = Instant::now();
        input.summary.frames += 1;
        match input.link {
            Some(link) => {
                let (summary, name) = (&mut input.summary, &input.name);
                input.decoder.decode(link, ts, &input.buf, |dg| {
                    let n = feed_datagram(&mut tracker, dg, name, &mut out, |k| summary.skip(k));
                    summary.sip_messages += n;
                });
            }
            None => input.decoder.count_skip(SkipKind::UnsupportedLink),
        }
        input.busy += t.elapsed();
        input.refill();
        drain(&mut out, &mut inputs, &mut sink)?;
    }
    tracker.finish(&mut out);
    drain(&mut out, &mut inputs, &mut sink)?;

    let mut summaries = Vec::with_capacity(paths.len());
    for mut input in inputs {
        for (kind, n) in input.decoder.stats.skipped_kinds() {
            input.summary.skipped.push((kind.as_str(), n));
        }
        // Each file's own reading and decoding time; the whole run's time is the CLI's.
        input.summary.elapsed = input.busy.min(input.started.elapsed());
        summaries.push(input.summary);
    }
    summaries.extend(failed);
    // Report in the order the files were given.
    summaries.sort_by_key(|s| paths.iter().position(|p| display(p) == s.path));
    Ok(summaries)
}

fn drain<E>(
    out: &mut Vec<Record>,
    inputs: &mut [Input],
    sink: &mut impl FnMut(Record) -> Result<(), E>,
) -> Result<(), E> {
    for record in out.drain(..) {
        let source = match &record {
            Record::Call(c) => c.source.as_str(),
            Record::Message(m) => m.source.as_str(),
        };
        if let Some(input) = inputs.iter_mut().find(|i| &*i.name == source) {
            match &record {
                Record::Call(_) => input.summary.calls += 1,
                Record::Message(_) => input.summary.messages += 1,
            }
        }
        sink(record)?;
    }
    Ok(())
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
