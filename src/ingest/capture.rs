//! Capture files: several are one stream in time order (rotated captures, or one capture
//! per interface). Frames are merged by timestamp across files, so a call spanning two
//! files is one record. Each file has its own decoder (its own IP and TCP reassembly
//! state, capped by the [`NetConfig`]); at its end, holes still open in its TCP streams are
//! given up and what follows them is used.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{drain, feed_datagram, FileSummary};
use crate::call::{Record, Tracker, TrackerConfig};
use crate::net::{DecodeError, Decoder, LinkType, NetConfig, SkipKind};
use crate::source::{CaptureFile, SourceError};

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

/// Reads `paths` as one time-ordered stream and hands every finished record to `sink`,
/// with the default network settings ([`ingest_files_with`] takes them).
pub fn ingest_files<E>(
    paths: &[PathBuf],
    cfg: TrackerConfig,
    sink: impl FnMut(Record) -> Result<(), E>,
) -> Result<Vec<FileSummary>, E> {
    ingest_files_with(paths, cfg, &NetConfig::default(), sink)
}

/// Reads `paths` as one time-ordered stream and hands every finished record to `sink`.
/// A file that cannot be opened or is damaged is reported in its summary; the others
/// are still read. `sink` errors stop the run.
pub fn ingest_files_with<E>(
    paths: &[PathBuf],
    cfg: TrackerConfig,
    net: &NetConfig,
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
                    summary.error = Some(DecodeError::UnsupportedLink(cap.dlt()).to_string());
                }
                let mut input = Input {
                    cap,
                    link,
                    decoder: Decoder::with_config(net.clone()),
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
        if input.pending.is_none() {
            // This file is done: what its TCP streams still hold is used or counted now,
            // while the other files' calls are still in time order.
            let (summary, name) = (&mut input.summary, &input.name);
            input.decoder.finish(|dg| {
                let n = feed_datagram(&mut tracker, dg, name, &mut out, |k| summary.skip(k));
                summary.sip_messages += n;
            });
        }
        drain(&mut out, &mut inputs, |i| &mut i.summary, &mut sink)?;
    }
    tracker.finish(&mut out);
    drain(&mut out, &mut inputs, |i| &mut i.summary, &mut sink)?;

    let mut summaries = Vec::with_capacity(paths.len());
    for mut input in inputs {
        for (kind, n) in input.decoder.stats.skipped_kinds() {
            input.summary.skipped.push((kind.as_str(), n));
        }
        input.summary.net = input.decoder.counters();
        input.summary.tls = input.decoder.tls().summary();
        // Each file's own reading and decoding time; the whole run's time is the CLI's.
        input.summary.elapsed = input.busy.min(input.started.elapsed());
        summaries.push(input.summary);
    }
    summaries.extend(failed);
    // Report in the order the files were given.
    summaries.sort_by_key(|s| paths.iter().position(|p| display(p) == s.path));
    Ok(summaries)
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
