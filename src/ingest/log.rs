//! PBX trace logs: files in, the same records as from the wire out.
//!
//! Each file is recognised by content (or its `--format`), framed into SIP messages by
//! `source::log`, and each message becomes what a capture would have given: `src`/`dst`
//! from the log's peer address and the configured `local_address` by direction, transport
//! as logged (or from the top Via), time from the log (PBX_LOGS.md §7.3). Where the log
//! names no peer (Cisco, §5) it is taken from Via / Request-URI and the record's `source`
//! says so. Files are read in the order given, as one stream (rotated logs oldest first),
//! so a call spanning a rotation is one record.

use std::fs::File;
use std::io::{BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use jiff::tz::TimeZone;

use super::{drain, FileSummary};
use crate::call::{Meta, Record, Tracker, TrackerConfig};
use crate::net::Transport;
use crate::sip::{self, SipMessage, StartLine};
use crate::source::log::{
    self, detect, esl_lines, text, Detected, Direction, EslStats, FramerStats, LogClock, LogFormat,
    LogMessage, DETECT_BYTES,
};

/// How log files are read. The CLI and `[[source.log]]` fill it in.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// `None`: recognise each file by its content.
    pub format: Option<LogFormat>,
    /// The zone local times are written in (default: the host's).
    pub timezone: TimeZone,
    /// The year of dates written without one; `None`: the year that puts the time
    /// closest before the file's modification time.
    pub year: Option<i16>,
    /// The PBX's own SIP address: the other end of every logged peer. Unspecified
    /// (`0.0.0.0:0`) when not configured.
    pub local_address: Option<SocketAddr>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            format: None,
            timezone: log::time::host_time_zone(),
            year: None,
            local_address: None,
        }
    }
}

/// Suffix of `source` when the peer address was not in the log but read from the
/// message's Via or Request-URI (Cisco, or an address the log mangled).
pub const PEER_FROM_HEADERS: &str = " (peer from Via/Request-URI)";

/// Turns framed log messages into tracker input. One per followed or ingested file; the
/// daemon uses it too, so both paths give the same records.
#[derive(Debug)]
pub struct LogFeed {
    source: Arc<str>,
    inferred: Arc<str>,
    local: Option<SocketAddr>,
    /// Time given to messages the log has no time for: the last known one, else this.
    fallback_us: i64,
    last_us: Option<i64>,
}

impl LogFeed {
    /// `source` names the log in records; `fallback_us` (the file's modification time) is
    /// the time of messages logged without one before any timed message.
    pub fn new(source: &str, local: Option<SocketAddr>, fallback_us: i64) -> LogFeed {
        LogFeed {
            source: Arc::from(source),
            inferred: Arc::from(format!("{source}{PEER_FROM_HEADERS}")),
            local,
            fallback_us,
            last_us: None,
        }
    }

    /// Parses one framed message and hands it to the tracker; returns the number of SIP
    /// messages (0 or 1). `skip` counts what could not be used, by kind.
    pub fn feed(
        &mut self,
        tracker: &mut Tracker,
        m: &LogMessage<'_>,
        out: &mut Vec<Record>,
        mut skip: impl FnMut(&'static str),
    ) -> u64 {
        let ts_us = match m.ts_us {
            Some(t) => {
                self.last_us = Some(t);
                t
            }
            None => self.last_us.unwrap_or(self.fallback_us),
        };
        if !sip::looks_like_sip(m.payload) {
            skip("not_sip");
            return 0;
        }
        // Each logged message is one message: the datagram rule applies (a truncated one
        // still gives what its headers hold).
        let msg = match sip::parse_datagram(m.payload) {
            Ok(msg) => msg,
            Err(e) => {
                skip(e.kind());
                return 0;
            }
        };
        let transport = m
            .transport
            .or_else(|| msg.via.and_then(|v| text::transport(v.transport)))
            .unwrap_or(Transport::Udp);
        let (src, dst, inferred) = match m.endpoints {
            Some((src, dst)) => (src, dst, false),
            None => {
                let (peer, inferred) = match m.peer {
                    Some(p) => (Some(p), false),
                    None => (peer_from_headers(&msg, m.direction, transport), true),
                };
                let local = self.local.unwrap_or_else(|| unspecified(peer));
                let peer = peer.unwrap_or_else(|| unspecified(Some(local)));
                match m.direction {
                    Direction::Received => (peer, local, inferred),
                    Direction::Sent => (local, peer, inferred),
                }
            }
        };
        let meta = Meta {
            ts_us,
            src,
            dst,
            transport,
            source: if inferred {
                &self.inferred
            } else {
                &self.source
            },
        };
        tracker.on_message(&meta, &msg, out);
        1
    }
}

fn unspecified(like: Option<SocketAddr>) -> SocketAddr {
    match like {
        Some(SocketAddr::V6(_)) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        _ => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
    }
}

/// The other end from the message itself (PBX_LOGS.md §5): a received request came from
/// its top Via's sent-by, a sent response goes there, a sent request goes to its
/// Request-URI. A received response names no address of its sender.
fn peer_from_headers(
    msg: &SipMessage<'_>,
    direction: Direction,
    transport: Transport,
) -> Option<SocketAddr> {
    let default_port = if transport == Transport::Tls {
        5061
    } else {
        5060
    };
    let host_port = |host: &[u8], port: Option<u16>| -> Option<SocketAddr> {
        let host = host
            .strip_prefix(b"[")
            .and_then(|h| h.strip_suffix(b"]"))
            .unwrap_or(host);
        let ip: IpAddr = std::str::from_utf8(host).ok()?.parse().ok()?;
        Some(SocketAddr::new(ip, port.unwrap_or(default_port)))
    };
    match (direction, msg.start) {
        (Direction::Sent, StartLine::Request { uri, .. }) => host_port(uri.host, uri.port),
        (Direction::Received, StartLine::Response { .. }) => None,
        _ => {
            let sent_by = msg.via?.sent_by;
            text::socket_addr(sent_by).or_else(|| host_port(sent_by, None))
        }
    }
}

/// Recognises a file's format from its first bytes (pcap and pcapng included).
pub fn detect_file(path: &Path) -> std::io::Result<Option<Detected>> {
    let mut head = Vec::with_capacity(DETECT_BYTES);
    File::open(path)?
        .take(DETECT_BYTES as u64)
        .read_to_end(&mut head)?;
    Ok(detect(&head))
}

/// The modification time of a file, µs UTC (what a missing year or date is inferred
/// from).
pub fn modified_us(file: &File) -> Option<i64> {
    let d = file
        .metadata()
        .ok()?
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?;
    i64::try_from(d.as_micros()).ok()
}

/// Adds a framer's counters to a summary's notes.
pub fn note_stats(summary: &mut FileSummary, s: &FramerStats) {
    for (k, n) in [
        ("truncated", s.truncated),
        ("length_mismatch", s.length_mismatch),
        ("coalesced", s.coalesced),
        ("keepalive", s.keepalives),
        ("interleaved", s.interleaved),
        ("bad_header", s.bad_headers),
        ("no_time", s.no_time),
    ] {
        if n > 0 {
            summary.notes.push((k, n));
        }
    }
    if s.no_time > 0 {
        summary.warnings.push(format!(
            "times unknown for {} message(s): the log gives none (console output without \
             timestamps?); they carry the last time seen before them, else the file's \
             modification time",
            s.no_time
        ));
    }
}

/// Reads log files as one stream, in the order given, and hands every finished record to
/// `sink`. A file that cannot be opened or recognised is reported in its summary; the
/// others are still read. `sink` errors stop the run.
pub fn ingest_log_files<E>(
    paths: &[PathBuf],
    opts: &LogOptions,
    cfg: TrackerConfig,
    mut sink: impl FnMut(Record) -> Result<(), E>,
) -> Result<Vec<FileSummary>, E> {
    let mut tracker = Tracker::new(cfg);
    let mut out: Vec<Record> = Vec::with_capacity(64);
    let mut summaries: Vec<FileSummary> = paths
        .iter()
        .map(|p| FileSummary {
            path: p.display().to_string(),
            ..Default::default()
        })
        .collect();
    for (i, path) in paths.iter().enumerate() {
        let started = Instant::now();
        let result = ingest_one(
            path,
            opts,
            &mut tracker,
            &mut out,
            &mut summaries,
            i,
            &mut sink,
        );
        summaries[i].elapsed = started.elapsed();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => summaries[i].error = Some(e),
            Err(e) => return Err(e),
        }
    }
    tracker.finish(&mut out);
    drain(&mut out, &mut summaries, |s| s, &mut sink)?;
    Ok(summaries)
}

/// `Err(E)`: the sink failed; `Ok(Err(msg))`: this file could not be read.
fn ingest_one<E>(
    path: &Path,
    opts: &LogOptions,
    tracker: &mut Tracker,
    out: &mut Vec<Record>,
    summaries: &mut [FileSummary],
    index: usize,
    sink: &mut impl FnMut(Record) -> Result<(), E>,
) -> Result<Result<(), String>, E> {
    let name = summaries[index].path.clone();
    let open = || File::open(path).map_err(|e| format!("cannot open {name}: {e}"));
    let file = match open() {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    let esl;
    let format = match opts.format {
        Some(f) => {
            esl = false;
            f
        }
        None => match detect_file(path) {
            Ok(Some(Detected::Log(f))) => {
                esl = false;
                f
            }
            Ok(Some(Detected::FreeswitchEsl)) => {
                esl = true;
                LogFormat::Freeswitch
            }
            Ok(Some(Detected::Pcap | Detected::Pcapng)) => {
                return Ok(Err(
                    "a capture file, not a log (give it without --format)".into()
                ))
            }
            Ok(None) => {
                return Ok(Err(
                    "not a recognised capture or PBX log (try --format)".to_string()
                ))
            }
            Err(e) => return Ok(Err(format!("cannot read {name}: {e}"))),
        },
    };
    let mtime = modified_us(&file).unwrap_or(0);
    let clock = LogClock::new(opts.timezone.clone(), opts.year, mtime);
    let mut framer = log::framer(format, clock);
    let mut feed = LogFeed::new(&name, opts.local_address, mtime);

    let esl = esl || (opts.format == Some(LogFormat::Freeswitch) && is_esl(path));
    let read_err = |e: std::io::Error| format!("cannot read {name}: {e}");
    // Each pass streams the file again, so a log of any size is read in bounded memory.
    let lines = |esl_stats: &mut EslStats, f: &mut dyn FnMut(&[u8])| -> Result<(), String> {
        let mut r = BufReader::with_capacity(64 * 1024, open()?);
        if esl {
            return esl_lines(&mut r, esl_stats, f).map_err(read_err);
        }
        let mut line = Vec::with_capacity(4096);
        loop {
            line.clear();
            let n = crate::source::log::follow::read_line_bounded(&mut r, &mut line)
                .map_err(read_err)?;
            if n == 0 {
                return Ok(());
            }
            let l = line.strip_suffix(b"\n").unwrap_or(&line);
            f(l);
        }
    };
    if log::needs_prescan(format) {
        if let Err(e) = lines(&mut EslStats::default(), &mut |l| framer.prescan(l)) {
            return Ok(Err(e));
        }
        framer.prescan_done();
    }
    let mut sink_err = None;
    let summary_ptr = index;
    let mut read = {
        let framer = &mut framer;
        let summaries = &mut *summaries;
        let out = &mut *out;
        let tracker = &mut *tracker;
        let feed = &mut feed;
        let sink = &mut *sink;
        let sink_err = &mut sink_err;
        move |l: &[u8]| {
            if sink_err.is_some() {
                return;
            }
            let s = &mut summaries[summary_ptr];
            framer.line(l, &mut |m| {
                s.frames += 1;
                s.sip_messages += feed.feed(tracker, m, out, |k| s.skip(k));
            });
            if !out.is_empty() {
                if let Err(e) = drain(out, summaries, |s| s, sink) {
                    *sink_err = Some(e);
                }
            }
        }
    };
    let mut esl_stats = EslStats::default();
    let result = lines(&mut esl_stats, &mut read);
    if let Some(e) = sink_err {
        return Err(e);
    }
    let s = &mut summaries[index];
    if esl_stats.short > 0 {
        s.notes.push(("esl_short_frame", esl_stats.short));
    }
    if esl_stats.oversize > 0 {
        s.skipped.push(("esl_oversize_frame", esl_stats.oversize));
    }
    framer.finish(&mut |m| {
        s.frames += 1;
        s.sip_messages += feed.feed(tracker, m, out, |k| s.skip(k));
    });
    note_stats(s, framer.stats());
    drain(out, summaries, |s| s, sink)?;
    Ok(result)
}

fn is_esl(path: &Path) -> bool {
    matches!(detect_file(path), Ok(Some(Detected::FreeswitchEsl)))
}
