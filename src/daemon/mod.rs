//! `callmeta run`: the wiring of the long-running daemon.
//!
//! Start-up order: config → store (writable, open calls of the last run taken back, log
//! checkpoints read) → captures and logs opened → READY=1. Then one plain thread per
//! capture source runs decode, parse and track without locks, and one per followed log
//! runs follow, frame, parse and track the same way; the store writer runs on its own
//! thread; this thread runs the control plane on tokio (signals, timers, health,
//! watchdog), never touching a packet. SIGHUP reloads, SIGTERM/SIGINT drain and stop,
//! SIGUSR1 logs health.
//!
//! A capture never waits for the disk (a full queue drops and counts); a followed log
//! does (its file is the buffer), and hands its records to the writer with its checkpoint
//! and its open calls, one transaction, so a kill -9 loses and repeats nothing (issue 5).
//! Like `main.rs` this is the edge: errors are `anyhow`, with the cause and the fix.

mod logs;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sd_notify::NotifyState;

use crate::call::{Record, Tracker, TrackerConfig};
use crate::config::{
    CaptureSource, Config, ConfigError, LogFormat, LogSource, LogWatch, NetSection, DEFAULT_CONFIG,
};
use crate::ingest::feed_datagram;
use crate::logging;
use crate::net::{Decoder, LinkType, NetConfig};
use crate::privacy::{self, PseudonymKey, Pseudonymiser};
use crate::source::log::watch::{concerns, watched_dir, LogWatcher, Woken};
use crate::source::{LiveCapture, LiveConfig};
use crate::store::retention::{self, RetentionPolicy};
use crate::store::{self as store, Retry, SavedDialog, Store, Writer, WriterConfig, WriterStats};
use crate::time::now_us;
use logs::{
    log_name, spawn_log, stop_log, LogControl, LogHandle, LogResume, LOG_POLL_EVERY,
    LOG_WATCHED_IDLE,
};

/// Command-line settings that override the config file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Capture on these interfaces instead of the configured sources.
    pub interfaces: Vec<String>,
    /// Capture these ports (on every source) instead of the configured ones.
    pub ports: Vec<u16>,
    pub db: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
}

/// Reads the config: `path`, else /etc/callmeta/callmeta.toml when it exists, else the
/// built-in defaults; then applies the overrides and validates the result.
pub fn load_config(path: Option<&Path>, o: &Overrides) -> Result<Config, ConfigError> {
    let (mut cfg, name) = match path {
        Some(p) => (Config::load(p)?, p.to_path_buf()),
        None if Path::new(DEFAULT_CONFIG).exists() => (
            Config::load(Path::new(DEFAULT_CONFIG))?,
            PathBuf::from(DEFAULT_CONFIG),
        ),
        None => (Config::default(), PathBuf::from("(built-in defaults)")),
    };
    if !o.interfaces.is_empty() {
        let template = cfg.source.capture.first().cloned().unwrap_or_default();
        cfg.source.capture = o
            .interfaces
            .iter()
            .map(|i| CaptureSource {
                interface: i.clone(),
                ..template.clone()
            })
            .collect();
    }
    if !o.ports.is_empty() {
        for c in &mut cfg.source.capture {
            c.ports = o.ports.clone();
        }
    }
    if let Some(db) = &o.db {
        cfg.store.path = Some(db.clone());
    }
    if let Some(f) = o.log_format {
        cfg.logging.format = f;
    }
    let problems = cfg.problems();
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigError::Invalid {
            path: name,
            problems,
        })
    }
}

/// What libpcap opens for a source: its ports plus the TLS and WebSocket ports, so the
/// kernel filter lets through what the decoder knows how to read or count.
fn live_config(c: &CaptureSource, net: &NetSection) -> LiveConfig {
    LiveConfig {
        interface: c.interface.clone(),
        ports: net.filter_ports(&c.ports),
        promiscuous: c.promiscuous,
        buffer_size: c.buffer_size,
        snaplen: c.snaplen,
    }
}

/// Messages from the control plane to a capture thread.
enum Control {
    Stop,
    /// New kernel filter ports and decoder settings (a reload of ports or `[net]`).
    SetPorts(Vec<u16>, NetConfig),
    Reopen(LiveConfig, NetConfig),
    SetTracker(TrackerConfig),
}

/// Counters a capture thread publishes for health, STATUS and the watchdog.
#[derive(Default)]
struct SourceStats {
    frames: AtomicU64,
    sip_messages: AtomicU64,
    parse_errors: AtomicU64,
    calls: AtomicU64,
    open: AtomicU64,
    kernel_drops: AtomicU64,
    /// TLS connections seen (SIP that cannot be read from the wire).
    tls_connections: AtomicU64,
    interface_drops: AtomicU64,
    /// Wall-clock µs of the thread's last loop turn: the watchdog's proof of life.
    heartbeat_us: AtomicI64,
    failed: AtomicBool,
    /// Followed logs: bytes read, rotations noticed, and inotify wakes taken.
    bytes: AtomicU64,
    rotations: AtomicU64,
    wakes: AtomicU64,
}

struct Source {
    cfg: CaptureSource,
    control: Sender<Control>,
    thread: JoinHandle<Vec<(Vec<u8>, String)>>,
    stats: Arc<SourceStats>,
}

/// How often the retention window is applied (and at start).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// How often a capture thread reads pcap's drop counters.
const STATS_EVERY: Duration = Duration::from_secs(5);

fn spawn_source(
    cfg: &CaptureSource,
    net: &NetSection,
    tracker_cfg: TrackerConfig,
    resumed: Vec<(Vec<u8>, String)>,
    writer: Arc<Writer>,
    pseudonyms: Option<Arc<Pseudonymiser>>,
) -> Result<Source> {
    let live = LiveCapture::open(&live_config(cfg, net))?;
    let decoder = Decoder::with_config(net.net_config(&cfg.ports));
    let (control, rx) = mpsc::channel();
    let stats = Arc::new(SourceStats::default());
    stats.heartbeat_us.store(now_us(), Relaxed);
    let mut tracker = Tracker::new(tracker_cfg);
    let bad = tracker.resume(resumed);
    if bad > 0 {
        tracing::warn!("{bad} saved open calls could not be read back (saved by another version) and were dropped");
    }
    let thread_stats = Arc::clone(&stats);
    let thread = std::thread::Builder::new()
        .name(format!("capture-{}", cfg.interface))
        .spawn(move || {
            let sink = Sink {
                writer,
                pseudonyms,
                stats: Arc::clone(&thread_stats),
            };
            capture_loop(live, decoder, tracker, rx, &sink, thread_stats)
        })
        .context("starting a capture thread")?;
    Ok(Source {
        cfg: cfg.clone(),
        control,
        thread,
        stats,
    })
}

/// Where a source thread's finished records go: pseudonymised (so the log line shows
/// what the store keeps), logged, then queued for the writer: a capture's without ever
/// blocking ([`Sink::put`]), a log's in its next batch ([`Sink::prepare`] then
/// [`Sink::deliver`]).
struct Sink {
    writer: Arc<Writer>,
    pseudonyms: Option<Arc<Pseudonymiser>>,
    stats: Arc<SourceStats>,
}

impl Sink {
    /// Makes a finished record what the store will keep, and logs its line.
    fn prepare(&self, r: &mut Record) {
        if let Some(p) = &self.pseudonyms {
            p.apply(r);
        }
        logging::record(r);
        self.stats.calls.fetch_add(1, Relaxed);
    }

    fn put(&self, mut r: Record) {
        self.prepare(&mut r);
        // Never block capture on the disk: a full queue drops and counts.
        self.writer.try_send(r);
    }
}

/// The per-source pipeline: frames → datagrams → SIP → tracker → records, until Stop.
/// Returns the calls still open, for the store to carry over to the next start.
fn capture_loop(
    mut live: LiveCapture,
    mut decoder: Decoder,
    mut tracker: Tracker,
    control: Receiver<Control>,
    sink: &Sink,
    stats: Arc<SourceStats>,
) -> Vec<(Vec<u8>, String)> {
    let name: Arc<str> = Arc::from(live.interface());
    let mut link = LinkType::from_dlt(live.dlt());
    let mut tls_seen = 0u64;
    let mut out: Vec<Record> = Vec::with_capacity(64);
    let mut last_stats = Instant::now();
    let mut last_drops = (0u64, 0u64);
    let (mut sip, mut errors) = (0u64, 0u64);
    loop {
        let mut stop = false;
        while let Ok(c) = control.try_recv() {
            match c {
                Control::Stop => stop = true,
                Control::SetPorts(ports, net) => {
                    match live.set_ports(&ports) {
                        Ok(()) => tracing::info!("capture on {name}: now ports {ports:?}"),
                        Err(e) => tracing::error!("{e}; keeping the previous filter"),
                    }
                    if decoder.config() != &net {
                        // Reassembly state restarts with the new caps; streams resynchronise.
                        decoder = Decoder::with_config(net);
                    }
                }
                Control::Reopen(cfg, net) => match LiveCapture::open(&cfg) {
                    Ok(new) => {
                        live = new;
                        link = LinkType::from_dlt(live.dlt());
                        decoder = Decoder::with_config(net);
                        tracing::info!("capture on {name}: reopened with the new settings");
                    }
                    Err(e) => tracing::error!("{e}; keeping the previous capture"),
                },
                Control::SetTracker(cfg) => tracker.set_config(cfg),
            }
        }
        if stop {
            break;
        }
        let result = live.dispatch(|frame| {
            let Some(link) = link else { return };
            decoder.decode(link, frame.ts_us, frame.data, |dg| {
                sip += feed_datagram(&mut tracker, dg, &name, &mut out, |_| errors += 1);
            });
        });
        match result {
            // A quiet wire: let timers run on the wall clock so a call whose BYE never
            // comes is still closed.
            Ok(0) => tracker.advance(now_us(), &mut out),
            Ok(_) => {}
            Err(e) => {
                stats.failed.store(true, Relaxed);
                tracing::error!("{e}; retrying in 1s");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        }
        stats.failed.store(false, Relaxed);
        for r in out.drain(..) {
            sink.put(r);
        }
        stats.frames.store(decoder.stats.frames, Relaxed);
        stats.sip_messages.store(sip, Relaxed);
        stats.parse_errors.store(errors, Relaxed);
        stats.open.store(tracker.open() as u64, Relaxed);
        stats.heartbeat_us.store(now_us(), Relaxed);
        if last_stats.elapsed() >= STATS_EVERY {
            last_stats = Instant::now();
            if let Some(s) = live.stats() {
                let (kernel, iface) = (s.dropped, s.if_dropped);
                if kernel > last_drops.0 || iface > last_drops.1 {
                    tracing::warn!(
                        "capture on {name} dropped {} frames in the kernel and {} at the interface in the last {}s: raise source.capture.buffer_size or reduce the ports",
                        kernel.saturating_sub(last_drops.0),
                        iface.saturating_sub(last_drops.1),
                        STATS_EVERY.as_secs()
                    );
                }
                last_drops = (kernel, iface);
                stats.kernel_drops.store(kernel, Relaxed);
                stats.interface_drops.store(iface, Relaxed);
            }
            let tls = decoder.tls();
            if tls.connections > tls_seen {
                tls_seen = tls.connections;
                if let Some(summary) = tls.summary() {
                    tracing::warn!("capture on {name}: {summary}");
                }
            }
            stats.tls_connections.store(tls_seen, Relaxed);
        }
    }
    let saved = tracker.suspend(&mut out);
    for r in out.drain(..) {
        sink.put(r);
    }
    saved
}

fn stop_source(s: Source) -> Vec<(Vec<u8>, String)> {
    // The capture thread sees it within one read timeout (200 ms).
    let _ = s.control.send(Control::Stop);
    match s.thread.join() {
        Ok(saved) => saved,
        Err(_) => {
            tracing::error!(
                "capture thread for {} panicked; its open calls are lost",
                s.cfg.interface
            );
            Vec::new()
        }
    }
}

/// An open call as the tracker saves it: (key, state).
type OpenDialog = (Vec<u8>, String);

/// The capture sources' open calls saved at the last stop, by the source that saw them.
/// A call saved by a source no longer configured (a renamed interface) goes on with the
/// first capture source; with none, it is returned in `orphans`, to be written as it
/// stands.
fn group_saved(
    saved: Vec<SavedDialog>,
    sources: &[CaptureSource],
) -> (BTreeMap<String, Vec<OpenDialog>>, Vec<OpenDialog>) {
    let mut by_source: BTreeMap<String, Vec<OpenDialog>> = BTreeMap::new();
    let mut orphans = Vec::new();
    for (source, key, state) in saved {
        let owner = sources
            .iter()
            .find(|c| c.interface == source)
            .or(sources.first());
        match owner {
            Some(c) => by_source
                .entry(c.interface.clone())
                .or_default()
                .push((key, state)),
            None => orphans.push((key, state)),
        }
    }
    (by_source, orphans)
}

struct Daemon {
    cfg: Config,
    config_path: Option<PathBuf>,
    overrides: Overrides,
    db: PathBuf,
    sources: Vec<Source>,
    logs: Vec<LogHandle>,
    writer: Arc<Writer>,
    pseudonyms: Option<Arc<Pseudonymiser>>,
    started: Instant,
}

impl Daemon {
    fn totals(&self) -> (u64, u64, u64, u64) {
        let (mut open, mut frames, mut kernel, mut sip) = (0, 0, 0, 0);
        for s in &self.sources {
            open += s.stats.open.load(Relaxed);
            frames += s.stats.frames.load(Relaxed);
            kernel += s.stats.kernel_drops.load(Relaxed) + s.stats.interface_drops.load(Relaxed);
            sip += s.stats.sip_messages.load(Relaxed);
        }
        for l in &self.logs {
            open += l.stats.open.load(Relaxed);
            sip += l.stats.sip_messages.load(Relaxed);
        }
        (open, frames, kernel, sip)
    }

    /// Followed logs: bytes read, rotations, unreadable ones, inotify wakes.
    fn log_totals(&self) -> (u64, u64, usize, u64) {
        let (mut bytes, mut rotations, mut failing, mut wakes) = (0, 0, 0, 0);
        for l in &self.logs {
            bytes += l.stats.bytes.load(Relaxed);
            rotations += l.stats.rotations.load(Relaxed);
            failing += usize::from(l.stats.failed.load(Relaxed));
            wakes += l.stats.wakes.load(Relaxed);
        }
        (bytes, rotations, failing, wakes)
    }

    fn status(&self) -> String {
        let (open, _, drops, _) = self.totals();
        let w: WriterStats = self.writer.stats();
        let mut s = format!(
            "{open} calls open, {} written, {} dropped, {drops} capture drops",
            w.calls_written + w.messages_written,
            w.dropped
        );
        if w.failing {
            s.push_str(&format!("; STORE FAILING, {} records waiting", w.pending));
        }
        let (_, _, unreadable, _) = self.log_totals();
        if unreadable > 0 {
            s.push_str(&format!("; {unreadable} LOGS UNREADABLE"));
        }
        s
    }

    fn health(&self, what: &str) {
        let (open, frames, drops, sip) = self.totals();
        let (bytes, rotations, unreadable, wakes) = self.log_totals();
        let w = self.writer.stats();
        tracing::info!(
            "health ({what}): up {}s; {} sources, {} logs ({bytes} bytes read, {rotations} rotations, {unreadable} unreadable, {wakes} inotify wakes); {frames} frames, {sip} SIP messages, {open} calls open; store {}: {} calls and {} messages written, {} pending, {} dropped, {} unwritten{}; {drops} capture drops",
            self.started.elapsed().as_secs(),
            self.sources.len(),
            self.logs.len(),
            self.db.display(),
            w.calls_written,
            w.messages_written,
            w.pending,
            w.dropped,
            w.unwritten,
            if w.failing { ", FAILING" } else { "" }
        );
        let tls: u64 = self
            .sources
            .iter()
            .map(|s| s.stats.tls_connections.load(Relaxed))
            .sum();
        if tls > 0 {
            tracing::warn!(
                "health ({what}): {tls} TLS connections carried SIP that cannot be read from the wire; add the PBX's SIP trace log as a [[source.log]] to record those calls"
            );
        }
    }

    /// Whether every capture and log thread turned its loop recently: the watchdog only
    /// pings then.
    fn alive(&self, within: Duration) -> bool {
        let now = now_us();
        let limit = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        // A quiet watched log's thread sleeps up to LOG_WATCHED_IDLE between turns.
        let (captures, logs) = (limit(within), limit(within + LOG_WATCHED_IDLE));
        let fresh = |s: &SourceStats, limit: i64| now - s.heartbeat_us.load(Relaxed) <= limit;
        self.sources.iter().all(|s| fresh(&s.stats, captures))
            && self.logs.iter().all(|l| fresh(&l.stats, logs))
    }

    /// SIGHUP: build and validate the new config; on any error keep running the old one.
    fn reload(&mut self) {
        let new = match load_config(self.config_path.as_deref(), &self.overrides) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("reload refused, the running configuration stays: {e}");
                return;
            }
        };
        if new.store.effective_path() != self.db {
            tracing::warn!("reload: store.path changed; it takes effect at the next restart");
        }
        if new.logging != self.cfg.logging {
            tracing::warn!("reload: logging settings take effect at the next restart");
        }
        let tracker = new.calls.tracker();
        let old: Vec<Source> = std::mem::take(&mut self.sources);
        let mut kept = Vec::new();
        let mut removed = Vec::new();
        for s in old {
            match new
                .source
                .capture
                .iter()
                .find(|c| c.interface == s.cfg.interface)
            {
                Some(c) => {
                    let mut s = s;
                    if *c != s.cfg || new.net != self.cfg.net {
                        let mut only_ports = c.clone();
                        only_ports.ports = s.cfg.ports.clone();
                        let net = new.net.net_config(&c.ports);
                        let msg = if only_ports == s.cfg {
                            Control::SetPorts(new.net.filter_ports(&c.ports), net)
                        } else {
                            Control::Reopen(live_config(c, &new.net), net)
                        };
                        let _ = s.control.send(msg);
                        s.cfg = c.clone();
                    }
                    let _ = s.control.send(Control::SetTracker(tracker));
                    kept.push(s);
                }
                None => removed.push(s),
            }
        }
        for s in removed {
            let name = s.cfg.interface.clone();
            let saved = stop_source(s);
            // A removed source's open calls are written as they stand.
            let mut t = Tracker::new(tracker);
            t.resume(saved);
            let mut out = Vec::new();
            t.finish(&mut out);
            for mut r in out {
                if let Some(p) = &self.pseudonyms {
                    p.apply(&mut r);
                }
                logging::record(&r);
                self.writer.try_send(r);
            }
            tracing::info!("reload: stopped capture on {name}");
        }
        for c in &new.source.capture {
            if kept.iter().any(|s| s.cfg.interface == c.interface) {
                continue;
            }
            match spawn_source(
                c,
                &new.net,
                tracker,
                Vec::new(),
                Arc::clone(&self.writer),
                self.pseudonyms.clone(),
            ) {
                Ok(s) => {
                    tracing::info!("reload: capturing on {} ports {:?}", c.interface, c.ports);
                    kept.push(s);
                }
                Err(e) => tracing::error!("reload: {e:#}"),
            }
        }
        self.sources = kept;
        self.reload_logs(&new, tracker);
        self.cfg = new;
        self.health("reloaded");
    }

    /// SIGHUP for followed logs: a removed one writes its open calls as they stand, a
    /// changed one is read on from its checkpoint with the new settings, a new one
    /// starts from its saved checkpoint (or the file's start).
    fn reload_logs(&mut self, new: &Config, tracker: TrackerConfig) {
        let old: Vec<LogHandle> = std::mem::take(&mut self.logs);
        let mut kept = Vec::new();
        for mut l in old {
            match new.source.log.iter().find(|c| c.path == l.cfg.path) {
                Some(c) => {
                    if *c != l.cfg {
                        let _ = l.control.send(LogControl::Reconfigure(c.clone()));
                        l.cfg = c.clone();
                    }
                    let _ = l.control.send(LogControl::SetTracker(tracker));
                    kept.push(l);
                }
                None => {
                    let path = l.cfg.path.display().to_string();
                    stop_log(l, true);
                    tracing::info!("reload: stopped following {path}");
                }
            }
        }
        let added: Vec<&LogSource> = new
            .source
            .log
            .iter()
            .filter(|c| !kept.iter().any(|l| l.cfg.path == c.path))
            .collect();
        if !added.is_empty() {
            // A second connection, like retention's: the writer owns the first.
            let store = Store::open(&self.db);
            for c in added {
                let started = store
                    .as_ref()
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .and_then(|st| LogResume::read(st, c))
                    .and_then(|resume| {
                        spawn_log(
                            c,
                            tracker,
                            resume,
                            Arc::clone(&self.writer),
                            self.pseudonyms.clone(),
                            &new.store,
                        )
                    });
                match started {
                    Ok(l) => {
                        tracing::info!("reload: following {} as {}", c.path.display(), c.format);
                        kept.push(l);
                    }
                    Err(e) => tracing::error!("reload: log {}: {e:#}", c.path.display()),
                }
            }
        }
        self.logs = kept;
    }

    /// Deletes (and anonymises) what the retention window says is due, on a connection
    /// of its own beside the writer's; a failure is logged and retried at the next hour.
    fn retention(&self) {
        let policy = RetentionPolicy::from_config(&self.cfg.retention, self.pseudonyms.as_deref());
        let result = Store::open(&self.db)
            .and_then(|mut s| retention::apply(&mut s, now_us(), &policy, false));
        match result {
            Ok(r) if r.changed() > 0 => tracing::info!(
                "retention: {} calls, {} messages and {} audit entries deleted; {} calls and {} messages anonymised",
                r.calls_deleted,
                r.messages_deleted,
                r.audit_deleted,
                r.calls_anonymised,
                r.messages_anonymised
            ),
            Ok(_) => tracing::debug!("retention: nothing due"),
            Err(e) => tracing::error!("retention: {e}"),
        }
    }

    /// SIGTERM: stop capture, write every finished record, carry the open calls over.
    fn shutdown(self) -> Result<()> {
        let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
        // Logs first: each hands its last batch (records, checkpoint, open calls) to the
        // writer before the writer is finished.
        for l in self.logs {
            stop_log(l, false);
        }
        let mut saved = Vec::new();
        for s in self.sources {
            let name = s.cfg.interface.clone();
            saved.push((name, stop_source(s)));
        }
        let stats = match Arc::try_unwrap(self.writer) {
            Ok(w) => w.finish(),
            Err(_) => bail!("internal: the store writer is still shared at shutdown"),
        };
        let mut store = Store::open(&self.db)?;
        store.set_pseudonymiser(
            self.pseudonyms
                .as_deref()
                .filter(|p| !p.fields().is_empty())
                .cloned(),
        );
        for (name, open) in &saved {
            store
                .save_open_dialogs(name, open, now_us())
                .context("saving the open calls for the next start")?;
        }
        let saved: Vec<_> = saved.into_iter().flat_map(|(_, open)| open).collect();
        match stats {
            Ok(w) => tracing::info!(
                "stopped: {} calls and {} messages written this run, {} dropped, {} open calls saved for the next start (followed logs save their own)",
                w.calls_written,
                w.messages_written,
                w.dropped,
                saved.len()
            ),
            Err(e) => tracing::error!("stopped with unwritten records: {e}"),
        }
        Ok(())
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config_path: Option<PathBuf>, overrides: Overrides) -> Result<()> {
    let cfg = load_config(config_path.as_deref(), &overrides)?;
    logging::init(
        cfg.logging.format,
        cfg.logging.destination,
        &cfg.logging.level,
    )
    .map_err(|e| anyhow::anyhow!("logging: {e}"))?;
    let db = cfg.store.effective_path();
    if db.parent().is_some_and(|p| p.is_dir()) {
        for warning in store::check_permissions(&db)? {
            tracing::warn!("{warning}");
        }
    }
    let fields = privacy::parse_fields(&cfg.privacy.pseudonymise)?;
    let pseudonyms = if fields.is_empty() && cfg.retention.anonymise_after.is_none() {
        None
    } else {
        let (key, created) = PseudonymKey::load_or_create(&cfg.privacy.key_file)
            .with_context(|| format!("the pseudonym key {}", cfg.privacy.key_file.display()))?;
        if created {
            tracing::info!("created pseudonym key {} (mode 0600): back it up; without it pseudonyms cannot be matched to numbers", cfg.privacy.key_file.display());
        }
        Some(Arc::new(Pseudonymiser::new(&key, &fields)))
    };
    let mut store = Store::open(&db).with_context(|| {
        format!(
            "the store must be writable: create {} owned by the daemon's user (the package's StateDirectory does) or set store.path / --db",
            db.parent().map_or_else(|| ".".into(), |p| p.display().to_string())
        )
    })?;
    // A followed log's open calls stay in the store, paired with its checkpoint until its
    // next batch replaces both; a capture's are taken out as they are resumed.
    let log_names: Vec<String> = cfg.source.log.iter().map(log_name).collect();
    let keep: Vec<&str> = log_names.iter().map(String::as_str).collect();
    let saved = store
        .take_open_dialogs(&keep)
        .context("reading the open calls of the last run")?;
    let mut resumed = saved.len();
    let mut log_resumes = Vec::new();
    for l in &cfg.source.log {
        let r = LogResume::read(&store, l)?;
        resumed += r.open.len();
        log_resumes.push(r);
    }
    let writer = Arc::new(Writer::spawn_with_retries(
        store,
        WriterConfig {
            batch_size: cfg.store.batch_size,
            flush_interval: cfg.store.flush_interval,
            queue: cfg.store.queue,
        },
        Retry::UntilFinish(Duration::from_secs(30)),
    ));
    let (mut saved, orphans) = group_saved(saved, &cfg.source.capture);
    if !orphans.is_empty() {
        // Saved by a capture source and no capture is configured now: nothing will see
        // the rest of these calls, so they are written as they stand.
        let mut t = Tracker::new(cfg.calls.tracker());
        t.resume(orphans);
        let mut out = Vec::new();
        t.finish(&mut out);
        for mut r in out {
            if let Some(p) = &pseudonyms {
                p.apply(&mut r);
            }
            logging::record(&r);
            writer
                .send(r)
                .context("writing the open calls of the last run")?;
        }
    }
    let mut sources = Vec::new();
    let mut logs = Vec::new();
    let mut failed = None;
    for c in &cfg.source.capture {
        let resume = saved.remove(&c.interface).unwrap_or_default();
        match spawn_source(
            c,
            &cfg.net,
            cfg.calls.tracker(),
            resume.clone(),
            Arc::clone(&writer),
            pseudonyms.clone(),
        ) {
            Ok(s) => sources.push(s),
            Err(e) => {
                failed = Some((
                    e.context(format!("capture on `{}`", c.interface)),
                    (c.interface.clone(), resume),
                ));
                break;
            }
        }
    }
    if failed.is_none() {
        for (l, resume) in cfg.source.log.iter().zip(log_resumes) {
            match spawn_log(
                l,
                cfg.calls.tracker(),
                resume,
                Arc::clone(&writer),
                pseudonyms.clone(),
                &cfg.store,
            ) {
                Ok(h) => logs.push(h),
                Err(e) => {
                    failed = Some((
                        e.context(format!("following `{}`", l.path.display())),
                        (String::new(), Vec::new()),
                    ));
                    break;
                }
            }
        }
    }
    if let Some((e, (name, resume))) = failed {
        // Stop what started, keeping the calls resumed so far for the next try.
        for l in logs {
            stop_log(l, false);
        }
        let mut back = vec![(name, resume)];
        back.extend(saved);
        for s in sources {
            back.push((s.cfg.interface.clone(), stop_source(s)));
        }
        drop(writer);
        if let Ok(mut store) = Store::open(&db) {
            store.set_pseudonymiser(
                pseudonyms
                    .as_deref()
                    .filter(|p| !p.fields().is_empty())
                    .cloned(),
            );
            for (name, open) in back.iter().filter(|(_, o)| !o.is_empty()) {
                let _ = store.save_open_dialogs(name, open, now_us());
            }
        }
        return Err(e);
    }
    let mut daemon = Daemon {
        cfg,
        config_path,
        overrides,
        db,
        sources,
        logs,
        writer,
        pseudonyms,
        started: Instant::now(),
    };
    daemon.retention();
    for s in &daemon.sources {
        tracing::info!("capturing on {} ports {:?}", s.cfg.interface, s.cfg.ports);
    }
    for l in &daemon.logs {
        tracing::info!("following {} as {}", l.cfg.path.display(), l.cfg.format);
    }
    tracing::info!(
        "callmeta {} started: store {}, {resumed} open calls resumed from the last run",
        env!("CARGO_PKG_VERSION"),
        daemon.db.display()
    );
    let _ = sd_notify::notify(
        false,
        &[NotifyState::Ready, NotifyState::Status(&daemon.status())],
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control plane")?;
    runtime.block_on(control_plane(&mut daemon))?;
    daemon.shutdown()
}

/// The watchdog period systemd asks for (`WATCHDOG_USEC`), as sd_watchdog_enabled(3)
/// reads it: `WATCHDOG_PID`, when set, must be ours.
fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// The control plane's inotify watches of the followed logs (`watch = "inotify"`).
#[derive(Default)]
struct LogWatches {
    /// Started when a log first wants it.
    watcher: Option<LogWatcher>,
    /// inotify could not start: every log is polled.
    unavailable: bool,
    /// Logs watched now.
    watched: HashSet<PathBuf>,
    /// Logs whose polling was reported (said once each).
    told: HashSet<PathBuf>,
}

impl LogWatches {
    fn start(d: &Daemon) -> LogWatches {
        let mut w = LogWatches::default();
        w.sync(d);
        w
    }

    /// Watches the logs that want inotify and are not watched yet, and drops the watches
    /// of logs removed or set to `poll` (after a reload).
    fn sync(&mut self, d: &Daemon) {
        let wanted = |l: &&LogHandle| l.cfg.watch == LogWatch::Inotify;
        if self.watcher.is_none() && !self.unavailable && d.logs.iter().any(|l| wanted(&l)) {
            match LogWatcher::new() {
                Ok(w) => self.watcher = Some(w),
                Err(e) => {
                    self.unavailable = true;
                    tracing::warn!(
                        "{e}; followed logs are polled every {}ms instead",
                        LOG_POLL_EVERY.as_millis()
                    );
                }
            }
        }
        if let Some(watcher) = self.watcher.as_mut() {
            let keep: Vec<&PathBuf> = d.logs.iter().filter(wanted).map(|l| &l.cfg.path).collect();
            self.watched.retain(|p| {
                let kept = keep.contains(&p);
                if !kept {
                    watcher.unwatch(p);
                }
                kept
            });
        }
        for l in &d.logs {
            if self.watched.contains(&l.cfg.path) {
                continue;
            }
            let refused = match (wanted(&l), self.watcher.as_mut()) {
                (true, Some(watcher)) => match watcher.watch(&l.cfg.path) {
                    Ok(()) => None,
                    Err(e) => Some(e.to_string()),
                },
                (true, None) => Some("inotify is not available".to_owned()),
                (false, _) => Some("watch = \"poll\"".to_owned()),
            };
            match refused {
                None => {
                    self.watched.insert(l.cfg.path.clone());
                    self.told.remove(&l.cfg.path);
                    l.watched.store(true, Relaxed);
                    tracing::info!(
                        "log {}: woken by inotify at each change in {}",
                        l.cfg.path.display(),
                        watched_dir(&l.cfg.path).display()
                    );
                }
                Some(why) => {
                    l.watched.store(false, Relaxed);
                    if self.told.insert(l.cfg.path.clone()) {
                        let every = LOG_POLL_EVERY.as_millis();
                        let path = l.cfg.path.display();
                        if wanted(&l) {
                            tracing::warn!("log {path}: polled every {every}ms until inotify can watch it: {why}");
                        } else {
                            tracing::info!("log {path}: polled every {every}ms ({why})");
                        }
                    }
                }
            }
        }
    }

    async fn next(&mut self) -> Woken {
        match self.watcher.as_mut() {
            Some(w) => w.next().await,
            None => std::future::pending().await,
        }
    }

    /// Wakes the pipeline threads of the logs a change concerns.
    fn wake(&self, d: &Daemon, woken: &Woken) {
        for l in d.logs.iter().filter(|l| self.watched.contains(&l.cfg.path)) {
            let concerned = match woken {
                Woken::All => true,
                Woken::Paths(paths) => paths.iter().any(|p| concerns(&l.cfg.path, p)),
            };
            if concerned {
                l.wake();
            }
        }
    }
}

async fn control_plane(d: &mut Daemon) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut usr1 = signal(SignalKind::user_defined1()).context("SIGUSR1 handler")?;
    let watchdog = watchdog_period();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_status = Instant::now();
    let mut last_ping = Instant::now();
    let mut was_failing = false;
    let mut last_retention = Instant::now();
    let mut watches = LogWatches::start(d);
    loop {
        tokio::select! {
            woken = watches.next() => watches.wake(d, &woken),
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                d.reload();
                watches.sync(d);
                let _ = sd_notify::notify(false, &[NotifyState::Status(&d.status())]);
            }
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = usr1.recv() => d.health("SIGUSR1"),
            _ = tick.tick() => {
                let failing = d.writer.stats().failing;
                if failing != was_failing {
                    if failing {
                        tracing::error!("store {} is failing (disk full?): records wait in the queue and are retried", d.db.display());
                    } else {
                        tracing::info!("store {} writes again", d.db.display());
                    }
                    was_failing = failing;
                }
                // A log whose directory did not exist yet is watched once it does.
                watches.sync(d);
                if last_retention.elapsed() >= RETENTION_EVERY {
                    last_retention = Instant::now();
                    d.retention();
                }
                if last_status.elapsed() >= Duration::from_secs(5) {
                    last_status = Instant::now();
                    let _ = sd_notify::notify(false, &[NotifyState::Status(&d.status())]);
                }
                if let Some(period) = watchdog {
                    // Ping at half the period, and only while every capture thread is
                    // turning: a stuck pipeline lets systemd restart us.
                    if last_ping.elapsed() >= period / 2 && d.alive(period / 2) {
                        last_ping = Instant::now();
                        let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
                    }
                }
            }
        }
    }
    Ok(())
}
