//! The followed logs' side of the daemon: one pipeline thread per `[[source.log]]` that
//! reads, frames, parses and tracks, and hands records to the writer in batches with the
//! log's checkpoint and open calls (one transaction, so a kill -9 loses and repeats
//! nothing).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{Sink, SourceStats};
use crate::call::{Record, Tracker, TrackerConfig};
use crate::config::LogSource;
use crate::ingest::LogFeed;
use crate::privacy::Pseudonymiser;
use crate::source::log::{Checkpoint, Follower, LogMessage};
use crate::store::{Batch, LogProgress, OpenDialogs, Store, TrySendError, Writer};
use crate::time::now_us;

/// How often a followed log is looked at when inotify does not watch it (`watch =
/// "poll"`, or its directory could not be watched): one `read` and one `stat` per turn
/// cost nothing measurable and bound the delay to a quarter second.
pub(super) const LOG_POLL_EVERY: Duration = Duration::from_millis(250);

/// How often a log woken by inotify is looked at anyway: the tracker's timers and the
/// quiet-log flush run on it, and it bounds the delay of a write whose event was lost
/// (a directory replaced under its watch).
pub(super) const LOG_WATCHED_IDLE: Duration = Duration::from_secs(1);

/// Bytes read from one log per turn at most, so a large backlog still lets the thread
/// answer its control channel, commit progress and turn its heartbeat.
const LOG_POLL_BYTES: u64 = 4 << 20;

/// A log that has not grown for this long hands on the message it is still collecting
/// (Cisco ends a message only at the next record, PBX_LOGS.md §5).
const LOG_QUIET_FLUSH: Duration = Duration::from_secs(2);

/// At a stop, how long a log thread waits for room in a full writer queue (a failing
/// store) before leaving its last batch unsaved: the stored checkpoint then stays where
/// it was and those lines are read again at the next start.
const LOG_STOP_WAIT: Duration = Duration::from_secs(5);

/// Messages from the control plane to a log thread.
pub(super) enum LogControl {
    /// `finish`: the source was removed, so its open calls are written as they stand
    /// rather than saved for a resume.
    Stop {
        finish: bool,
    },
    /// Same path, other format, zone, year or local address.
    Reconfigure(LogSource),
    SetTracker(TrackerConfig),
    /// The log (or a file beside it) changed: inotify, through the control plane.
    Wake,
}

pub(super) struct LogHandle {
    pub(super) cfg: LogSource,
    pub(super) control: Sender<LogControl>,
    /// Seen by a thread waiting for room in the writer's queue, which does not read its
    /// channel meanwhile.
    pub(super) stopping: Arc<AtomicBool>,
    pub(super) thread: JoinHandle<()>,
    pub(super) stats: Arc<SourceStats>,
    /// A `Wake` is in the channel and not yet taken: a busy log's events send one.
    pub(super) woken: Arc<AtomicBool>,
    /// inotify watches the log's directory: the thread waits for a `Wake` instead of
    /// polling.
    pub(super) watched: Arc<AtomicBool>,
}

impl LogHandle {
    /// Wakes the thread unless a wake is already on its way.
    pub(super) fn wake(&self) {
        if !self.woken.swap(true, Relaxed) {
            let _ = self.control.send(LogControl::Wake);
        }
    }
}

/// The name of a followed log in records, checkpoints and saved open calls.
pub(super) fn log_name(cfg: &LogSource) -> String {
    cfg.path.display().to_string()
}

/// What a log thread resumes from: the checkpoint and open calls its last batch saved.
pub(super) struct LogResume {
    pub(super) checkpoint: Option<Checkpoint>,
    pub(super) open: Vec<(Vec<u8>, String)>,
}

impl LogResume {
    pub(super) fn read(store: &Store, cfg: &LogSource) -> Result<LogResume> {
        let name = log_name(cfg);
        Ok(LogResume {
            checkpoint: store
                .log_checkpoint(&name)
                .with_context(|| format!("reading the checkpoint of {name}"))?,
            open: store
                .open_dialogs(&name)
                .with_context(|| format!("reading the open calls of {name}"))?,
        })
    }
}

/// Everything a log thread owns: the follower, the feed and tracker behind it, and what
/// it has produced but not yet handed to the writer.
struct LogPipeline {
    name: Arc<str>,
    follower: Follower,
    feed: LogFeed,
    tracker: Tracker,
    sink: Sink,
    control: Receiver<LogControl>,
    stopping: Arc<AtomicBool>,
    woken: Arc<AtomicBool>,
    watched: Arc<AtomicBool>,
    /// The writer's cadence: a batch at most every `flush_every`, sooner at `batch_size`.
    flush_every: Duration,
    batch_size: usize,
    out: Vec<Record>,
    /// Records prepared and logged, waiting for the next batch.
    pending: Vec<Record>,
    /// The writer has stopped (it panicked): reading on would only grow `pending`, so the
    /// log is left where the store last took it until the daemon stops.
    writer_gone: bool,
    /// The checkpoint of the last batch handed to the writer.
    sent: Option<Checkpoint>,
    last_sent: Instant,
    /// The last message time read and when: the log's own clock, to run timers while
    /// the log is quiet.
    clock: Option<(i64, Instant)>,
    last_growth: Instant,
    flushed: bool,
    /// The last batch was not taken: the next saves every open call, not the changes.
    resync: bool,
    sip: u64,
    errors: u64,
}

pub(super) fn spawn_log(
    cfg: &LogSource,
    tracker_cfg: TrackerConfig,
    resume: LogResume,
    writer: Arc<Writer>,
    pseudonyms: Option<Arc<Pseudonymiser>>,
    store_cfg: &crate::config::StoreSection,
) -> Result<LogHandle> {
    let name = log_name(cfg);
    let follow = cfg
        .follow_config()
        .with_context(|| format!("log {name}: format or time zone not usable"))?;
    let follower = Follower::open(follow, resume.checkpoint)?;
    let mut tracker = Tracker::new(tracker_cfg);
    tracker.track_changes();
    let bad = tracker.resume(resume.open);
    if bad > 0 {
        tracing::warn!("log {name}: {bad} saved open calls could not be read back (saved by another version) and were dropped");
    }
    let (control, rx) = mpsc::channel();
    let stats = Arc::new(SourceStats::default());
    stats.heartbeat_us.store(now_us(), Relaxed);
    let stopping = Arc::new(AtomicBool::new(false));
    let woken = Arc::new(AtomicBool::new(false));
    let watched = Arc::new(AtomicBool::new(false));
    let mut pipeline = LogPipeline {
        name: Arc::from(name.as_str()),
        feed: LogFeed::new(&name, cfg.local_address, now_us()),
        sent: resume.checkpoint,
        follower,
        tracker,
        sink: Sink {
            writer,
            pseudonyms,
            stats: Arc::clone(&stats),
        },
        control: rx,
        stopping: Arc::clone(&stopping),
        woken: Arc::clone(&woken),
        watched: Arc::clone(&watched),
        flush_every: store_cfg.flush_interval,
        batch_size: store_cfg.batch_size.max(1),
        out: Vec::with_capacity(64),
        pending: Vec::new(),
        writer_gone: false,
        last_sent: Instant::now(),
        clock: None,
        last_growth: Instant::now(),
        flushed: true,
        resync: false,
        sip: 0,
        errors: 0,
    };
    let file = cfg
        .path
        .file_name()
        .map_or_else(|| name.clone(), |f| f.to_string_lossy().into_owned());
    let thread = std::thread::Builder::new()
        .name(format!("log-{file}"))
        .spawn(move || pipeline.run())
        .context("starting a log thread")?;
    Ok(LogHandle {
        cfg: cfg.clone(),
        control,
        stopping,
        thread,
        stats,
        woken,
        watched,
    })
}

impl LogPipeline {
    /// Follows the log until Stop: poll, track, and hand records to the writer with the
    /// checkpoint and open calls they go with.
    fn run(&mut self) {
        let finish = loop {
            if let Some(finish) = self.take_control() {
                break finish;
            }
            if self.writer_gone {
                // No heartbeat: the watchdog stops and systemd restarts a daemon whose
                // store writer is gone.
                if let Some(finish) = self.wait(LOG_POLL_EVERY) {
                    break finish;
                }
                continue;
            }
            let read = self.turn();
            self.sink.stats.heartbeat_us.store(now_us(), Relaxed);
            let due = !self.pending.is_empty() || self.sent != Some(self.follower.checkpoint());
            if due
                && (self.last_sent.elapsed() >= self.flush_every
                    || self.pending.len() >= self.batch_size)
            {
                let open = if self.resync {
                    // A batch was not taken: its changes are lost, so save everything.
                    self.tracker.clear_changes();
                    OpenDialogs::Replace(self.tracker.snapshot())
                } else {
                    OpenDialogs::Changes(Box::new(self.tracker.changes()))
                };
                self.resync = !self.send_with(open, false);
            }
            // A backlog is read on at once; a caught-up log waits for inotify's wake or
            // its timer, and no longer than its pending records may wait.
            if read < LOG_POLL_BYTES {
                let mut idle = if self.watched.load(Relaxed) {
                    LOG_WATCHED_IDLE
                } else {
                    LOG_POLL_EVERY
                };
                if !self.pending.is_empty() {
                    idle = idle.min(self.flush_every.saturating_sub(self.last_sent.elapsed()));
                }
                if let Some(finish) = self.wait(idle) {
                    break finish;
                }
            }
        };
        let open = if finish {
            self.tracker.finish(&mut self.out);
            Vec::new()
        } else {
            self.tracker.suspend(&mut self.out)
        };
        self.take_out();
        let saved = open.len();
        if self.send_with(OpenDialogs::Replace(open), true) && !finish {
            tracing::info!("log {}: stopped, {saved} open calls saved", self.name);
        }
    }

    /// Applies control messages; `Some(finish)` when told to stop.
    fn take_control(&mut self) -> Option<bool> {
        let mut stop = None;
        while let Ok(c) = self.control.try_recv() {
            stop = stop.or(self.apply(c));
        }
        stop
    }

    /// Sleeps until a control message (a wake among them) or `idle` has passed; `Some(finish)`
    /// when told to stop.
    fn wait(&mut self, idle: Duration) -> Option<bool> {
        match self.control.recv_timeout(idle) {
            Ok(c) => self.apply(c),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            // The daemon is gone without a Stop (it panicked): save what can be saved.
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(false),
        }
    }

    fn apply(&mut self, c: LogControl) -> Option<bool> {
        match c {
            LogControl::Stop { finish } => return Some(finish),
            LogControl::SetTracker(cfg) => self.tracker.set_config(cfg),
            LogControl::Reconfigure(cfg) => self.reconfigure(&cfg),
            LogControl::Wake => {
                // Cleared before the read, so a write after it sends another wake.
                self.woken.store(false, Relaxed);
                self.sink.stats.wakes.fetch_add(1, Relaxed);
            }
        }
        None
    }

    /// New reading settings for the same file: resume at the checkpoint with a framer
    /// for them (a message half collected is read again), keep the tracker.
    fn reconfigure(&mut self, cfg: &LogSource) {
        let Some(follow) = cfg.follow_config() else {
            return;
        };
        match Follower::open(follow, Some(self.follower.checkpoint())) {
            Ok(f) => {
                self.follower = f;
                self.feed = LogFeed::new(&self.name, cfg.local_address, now_us());
                tracing::info!("log {}: now read as {}", self.name, cfg.format);
            }
            Err(e) => tracing::error!("{e}; keeping the previous settings"),
        }
    }

    /// One poll: returns the bytes read.
    fn turn(&mut self) -> u64 {
        let (tracker, feed, out, clock) = (
            &mut self.tracker,
            &mut self.feed,
            &mut self.out,
            &mut self.clock,
        );
        let (sip, errors) = (&mut self.sip, &mut self.errors);
        let mut hand = |m: &LogMessage<'_>| {
            if let Some(ts) = m.ts_us {
                *clock = Some((ts, Instant::now()));
            }
            *sip += feed.feed(tracker, m, out, |_| *errors += 1);
        };
        let progress = match self.follower.poll(LOG_POLL_BYTES, &mut hand) {
            Ok(p) => p,
            Err(e) => {
                if !self.sink.stats.failed.swap(true, Relaxed) {
                    tracing::error!("{e}; retrying every {}ms", LOG_POLL_EVERY.as_millis());
                }
                return 0;
            }
        };
        if self.sink.stats.failed.swap(false, Relaxed) {
            tracing::info!("log {}: readable again", self.name);
        }
        if progress.bytes > 0 {
            self.last_growth = Instant::now();
            self.flushed = false;
        } else if !self.flushed && self.last_growth.elapsed() >= LOG_QUIET_FLUSH {
            self.follower.flush(&mut hand);
            self.flushed = true;
        }
        if progress.bytes == 0 {
            // A quiet log: run timers on the log's own clock (its last time plus the
            // time since), never the wall clock, so an old log replayed or a zone
            // mistake cannot time out calls that the log shows going on.
            if let Some((ts, at)) = self.clock {
                let since = i64::try_from(at.elapsed().as_micros()).unwrap_or(i64::MAX);
                self.tracker
                    .advance(ts.saturating_add(since), &mut self.out);
            }
        }
        self.take_out();
        if progress.rotations > 0 {
            tracing::info!(
                "log {}: rotated ({} so far); the new file is read from its start",
                self.name,
                self.follower.rotations
            );
        }
        let stats = &self.sink.stats;
        stats.bytes.fetch_add(progress.bytes, Relaxed);
        stats
            .rotations
            .fetch_add(u64::from(progress.rotations), Relaxed);
        stats.sip_messages.store(self.sip, Relaxed);
        stats.parse_errors.store(self.errors, Relaxed);
        stats.open.store(self.tracker.open() as u64, Relaxed);
        progress.bytes
    }

    /// Moves the tracker's finished records to the pending batch, logged.
    fn take_out(&mut self) {
        for mut r in self.out.drain(..) {
            self.sink.prepare(&mut r);
            self.pending.push(r);
        }
    }

    /// Hands the pending records to the writer with the checkpoint and `open`, the open
    /// calls at it. While the writer's queue is full the thread waits (the log is the
    /// buffer); a batch the writer cannot take stays pending, and its checkpoint unsaved.
    /// `stopping`: the last batch, given up after [`LOG_STOP_WAIT`]. Returns whether the
    /// writer took it.
    fn send_with(&mut self, open: OpenDialogs, stopping: bool) -> bool {
        let checkpoint = self.follower.checkpoint();
        let mut batch = Batch {
            records: std::mem::take(&mut self.pending),
            progress: Some(LogProgress {
                source: self.name.to_string(),
                checkpoint,
                open_dialogs: open,
                at_us: now_us(),
            }),
        };
        let started = Instant::now();
        loop {
            match self.sink.writer.try_send_batch(batch) {
                Ok(()) => {
                    self.sent = Some(checkpoint);
                    self.last_sent = Instant::now();
                    return true;
                }
                Err(TrySendError::Full(b)) => {
                    // The log is the buffer: wait for the store rather than read on, but
                    // keep proving life to the watchdog (the store's trouble is reported
                    // by the control plane) and let a stop through.
                    let give_up = if stopping {
                        started.elapsed() >= LOG_STOP_WAIT
                    } else {
                        self.stopping.load(Relaxed)
                    };
                    if give_up {
                        if stopping {
                            tracing::error!(
                                "log {}: the store took no batch within {}s of the stop; its last {} records are read again from the log at the next start",
                                self.name,
                                LOG_STOP_WAIT.as_secs(),
                                b.records.len()
                            );
                        }
                        self.pending = b.records;
                        return false;
                    }
                    batch = b;
                    self.sink.stats.heartbeat_us.store(now_us(), Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(TrySendError::Disconnected(b)) => {
                    self.writer_gone = true;
                    tracing::error!(
                        "log {}: the store writer has stopped; {} records are read again at the next start",
                        self.name,
                        b.records.len()
                    );
                    self.pending = b.records;
                    return false;
                }
            }
        }
    }
}

pub(super) fn stop_log(l: LogHandle, finish: bool) {
    l.stopping.store(true, Relaxed);
    let _ = l.control.send(LogControl::Stop { finish });
    if l.thread.join().is_err() {
        tracing::error!(
            "log thread for {} panicked; its last records are read again at the next start",
            l.cfg.path.display()
        );
    }
}
