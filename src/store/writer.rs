//! Writing records: the batched upsert, and the writer thread that owns the connection.
//!
//! The tracker threads hand finished records to [`Writer`] over a bounded channel; the
//! writer thread commits them in batches, one transaction per `batch_size` records or per
//! `flush_interval` after a batch's first record, whichever comes first (batched commits
//! measured ≈ 326 k rows/s here against 31 k in autocommit, DESIGN.md).
//!
//! A followed log sends a [`Batch`]: its records with the [`LogProgress`] they bring
//! (checkpoint and open calls), committed in the same transaction as the records, so the
//! store always holds a matching pair of "read up to here" and "these calls were open
//! there" (issue 5). Batches may block the sender (the log file is its buffer); single
//! records from capture never do.
//!
//! Must never: lose a record without counting it (a full queue under `try_send` counts a
//! drop, a batch that still fails after the bounded retries counts as unwritten and is
//! reported by `finish`), block the caller of `try_send`, or retry forever.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
pub use std::sync::mpsc::TrySendError;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, LazyLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, TransactionBehavior};

use super::dialogs::{self, OpenDialogs};
use super::{checkpoint, Store, StoreError};
use crate::call::{CallRecord, MessageRecord, Record};
use crate::privacy::Pseudonymiser;
use crate::source::log::Checkpoint;

/// Columns written for a call, in statement parameter order (the key first).
const CALL_COLUMNS: &[&str] = &[
    "call_id",
    "from_tag",
    "started_at",
    "ringing_at",
    "answered_at",
    "ended_at",
    "last_seen_at",
    "duration_ms",
    "billable_ms",
    "pdd_ms",
    "disposition",
    "final_status",
    "ended_by",
    "timeout_reason",
    "hangup_side",
    "reason_cause",
    "caller",
    "caller_domain",
    "caller_name",
    "callee",
    "callee_domain",
    "asserted_identity",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "transport",
    "user_agent",
    "server",
    "codecs",
    "source",
];
const CALL_KEY: &[&str] = &["call_id", "from_tag", "started_at"];

const MESSAGE_COLUMNS: &[&str] = &[
    "call_id",
    "cseq",
    "sent_at",
    "answered_at",
    "final_status",
    "sender",
    "sender_domain",
    "recipient",
    "recipient_domain",
    "content_type",
    "size_bytes",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "transport",
    "source",
];
const MESSAGE_KEY: &[&str] = &["call_id", "cseq", "sent_at"];

/// `INSERT ... ON CONFLICT (key) DO UPDATE SET every other column = excluded.column WHERE
/// guard`: the guard decides whether the incoming version is at least as complete.
fn upsert_sql(table: &str, columns: &[&str], key: &[&str], guard: &str) -> String {
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| !key.contains(c))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {} WHERE {guard}",
        columns.join(", "),
        placeholders.join(", "),
        key.join(", "),
        updates.join(", "),
    )
}

/// A call seen further (a later `last_seen_at`, e.g. the complete record from the next
/// capture file after a `capture_end` timeout) replaces the stored one; ingesting an
/// older, shorter view again does not undo it. Equal means the same input again: rewrite.
static CALL_UPSERT: LazyLock<String> = LazyLock::new(|| {
    upsert_sql(
        "calls",
        CALL_COLUMNS,
        CALL_KEY,
        "excluded.last_seen_at >= calls.last_seen_at",
    )
});

/// A message's only later fact is its final response: never replace an answered version
/// with an unanswered one.
static MESSAGE_UPSERT: LazyLock<String> = LazyLock::new(|| {
    upsert_sql(
        "messages",
        MESSAGE_COLUMNS,
        MESSAGE_KEY,
        "excluded.answered_at IS NOT NULL OR messages.answered_at IS NULL",
    )
});

/// How far a followed log's records go, saved in their transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogProgress {
    /// The log's configured path (`log_checkpoints.source`, `open_dialogs.source`).
    pub source: String,
    /// Every message before it was given to the tracker whose records come with it.
    pub checkpoint: Checkpoint,
    /// What turns the source's saved open calls into that tracker's at the checkpoint.
    pub open_dialogs: OpenDialogs,
    /// When it was taken, µs UTC (`updated_at_us`, `saved_at_us`).
    pub at_us: i64,
}

/// Records and, from a followed log, the progress they bring: one unit for the writer,
/// never split across transactions.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<Record>,
    pub progress: Option<LogProgress>,
}

/// One transaction for the records and the logs' progress, with cached prepared
/// statements: all of it is stored or none.
pub(super) fn write(
    conn: &mut Connection,
    records: &[Record],
    progress: &[LogProgress],
    pseudonymiser: Option<&Pseudonymiser>,
) -> rusqlite::Result<()> {
    // IMMEDIATE: take the write lock up front so busy_timeout applies, rather than failing
    // with SQLITE_BUSY when a deferred transaction tries to upgrade.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut calls = tx.prepare_cached(&CALL_UPSERT)?;
        let mut messages = tx.prepare_cached(&MESSAGE_UPSERT)?;
        for record in records {
            match record {
                Record::Call(c) => insert_call(&mut calls, c)?,
                Record::Message(m) => insert_message(&mut messages, m)?,
            }
        }
    }
    for p in progress {
        checkpoint::upsert(&tx, &p.source, &p.checkpoint, p.at_us)?;
        dialogs::update_source(&tx, &p.source, &p.open_dialogs, p.at_us, pseudonymiser)?;
    }
    tx.commit()
}

fn insert_call(stmt: &mut rusqlite::CachedStatement<'_>, c: &CallRecord) -> rusqlite::Result<()> {
    stmt.execute(params![
        c.call_id,
        c.from_tag,
        c.started_at,
        c.ringing_at,
        c.answered_at,
        c.ended_at,
        c.last_seen_at,
        c.duration_ms(),
        c.billable_ms(),
        c.pdd_ms,
        c.disposition.as_str(),
        c.final_status,
        c.ended_by.as_str(),
        c.timeout_reason.map(|t| t.as_str()),
        c.hangup_side.map(|s| s.as_str()),
        c.reason_cause,
        c.caller,
        c.caller_domain,
        c.caller_name,
        c.callee,
        c.callee_domain,
        c.asserted_identity,
        c.src_ip.to_string(),
        c.src_port,
        c.dst_ip.to_string(),
        c.dst_port,
        c.transport.as_str(),
        c.user_agent,
        c.server,
        c.codecs,
        c.source,
    ])?;
    Ok(())
}

fn insert_message(
    stmt: &mut rusqlite::CachedStatement<'_>,
    m: &MessageRecord,
) -> rusqlite::Result<()> {
    // SQLite integers are i64; a body longer than 8 EiB cannot exist, so saturating loses
    // nothing real and keeps one absurd value from failing its whole batch.
    let size_bytes = i64::try_from(m.size_bytes).unwrap_or(i64::MAX);
    stmt.execute(params![
        m.call_id,
        m.cseq,
        m.sent_at,
        m.answered_at,
        m.final_status,
        m.sender,
        m.sender_domain,
        m.recipient,
        m.recipient_domain,
        m.content_type,
        size_bytes,
        m.src_ip.to_string(),
        m.src_port,
        m.dst_ip.to_string(),
        m.dst_port,
        m.transport.as_str(),
        m.source,
    ])?;
    Ok(())
}

/// How the writer thread batches.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Records per transaction at most (0 is treated as 1).
    pub batch_size: usize,
    /// Longest a record waits in a partial batch before it is committed.
    pub flush_interval: Duration,
    /// Capacity of the channel in records (0 is treated as 1): `send` blocks and
    /// `try_send` drops when it is full.
    pub queue: usize,
}

/// The writer's counters, a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Call records committed (an upsert of an already stored record counts too).
    pub calls_written: u64,
    pub messages_written: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Records refused by `try_send`: the queue was full (or the writer had stopped).
    pub dropped: u64,
    /// Records in batches that still failed after the retries: not in the store.
    pub unwritten: u64,
    /// Failed batch attempts that were retried.
    pub retries: u64,
    /// Records accepted but not yet committed or given up on: the store's lag.
    pub pending: u64,
    /// The last commit failed and is being retried (a full disk, a lost directory).
    pub failing: bool,
}

/// How long a failing batch is retried.
#[derive(Debug, Clone, Copy)]
pub enum Retry {
    /// After each of these delays, then the batch is given up and counted unwritten.
    Bounded(&'static [Duration]),
    /// With exponential backoff up to this delay for as long as the writer runs (the
    /// daemon: records wait in the bounded queue, and `try_send` counts what overflows),
    /// then [`RETRY_DELAYS`] once the writer is finishing.
    UntilFinish(Duration),
}

/// Delays between attempts at a failing batch (disk full, a lock held past the busy
/// timeout): bounded, about 3.25 s in all, during which the queue absorbs new records.
pub const RETRY_DELAYS: &[Duration] = &[
    Duration::from_millis(50),
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    calls_written: AtomicU64,
    messages_written: AtomicU64,
    batches: AtomicU64,
    dropped: AtomicU64,
    unwritten: AtomicU64,
    retries: AtomicU64,
    failing: std::sync::atomic::AtomicBool,
    finishing: std::sync::atomic::AtomicBool,
}

impl Counters {
    fn snapshot(&self) -> WriterStats {
        let calls_written = self.calls_written.load(Relaxed);
        let messages_written = self.messages_written.load(Relaxed);
        let unwritten = self.unwritten.load(Relaxed);
        WriterStats {
            calls_written,
            messages_written,
            batches: self.batches.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            unwritten,
            retries: self.retries.load(Relaxed),
            failing: self.failing.load(Relaxed),
            // Counters are read one by one: saturate rather than wrap on a racing update.
            pending: self
                .accepted
                .load(Relaxed)
                .saturating_sub(calls_written + messages_written + unwritten),
        }
    }
}

/// What travels on the writer's channel: a capture's record on its own (no allocation
/// beyond the record's), or a followed log's batch.
enum Item {
    Record(Record),
    Batch(Batch),
}

impl Item {
    /// The batch handed back by a refused `try_send_batch` (always a batch there).
    fn into_batch(self) -> Batch {
        match self {
            Item::Batch(b) => b,
            Item::Record(r) => Batch {
                records: vec![r],
                progress: None,
            },
        }
    }
}

/// The store writer: a thread owning the read-write connection, fed by a bounded channel.
///
/// Call [`Writer::finish`] to flush and learn about errors; dropping a `Writer` also
/// flushes and joins, but can only discard an error.
pub struct Writer {
    tx: Option<SyncSender<Item>>,
    thread: Option<JoinHandle<Option<StoreError>>>,
    counters: Arc<Counters>,
}

impl Writer {
    pub fn spawn(store: Store, cfg: WriterConfig) -> Writer {
        Self::spawn_with_retries(store, cfg, Retry::Bounded(RETRY_DELAYS))
    }

    /// A writer that retries failing commits until it is finished (see [`Retry`]).
    pub fn spawn_with_retries(store: Store, cfg: WriterConfig, retry: Retry) -> Writer {
        let (tx, rx) = sync_channel(cfg.queue.max(1));
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(store, rx, &cfg, retry, &thread_counters));
        match thread {
            Ok(thread) => Writer {
                tx: Some(tx),
                thread: Some(thread),
                counters,
            },
            // Out of threads at start-up: a writer whose every send fails with WriterGone
            // (the receiver went down with the closure) rather than a panic here.
            Err(_) => Writer {
                tx: Some(tx),
                thread: None,
                counters,
            },
        }
    }

    /// Queues a record, blocking while the queue is full (offline ingest: lose nothing).
    pub fn send(&self, r: Record) -> Result<(), StoreError> {
        let tx = self.tx.as_ref().ok_or(StoreError::WriterGone)?;
        tx.send(Item::Record(r))
            .map_err(|_| StoreError::WriterGone)?;
        self.counters.accepted.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Queues a batch, blocking while the queue is full.
    pub fn send_batch(&self, b: Batch) -> Result<(), StoreError> {
        let tx = self.tx.as_ref().ok_or(StoreError::WriterGone)?;
        let n = b.records.len() as u64;
        tx.send(Item::Batch(b))
            .map_err(|_| StoreError::WriterGone)?;
        self.counters.accepted.fetch_add(n, Relaxed);
        Ok(())
    }

    /// Queues a batch if there is room; otherwise hands it back (`Full`: try again later;
    /// `Disconnected`: the writer has stopped). Nothing is counted as dropped: the caller
    /// keeps the batch (a followed log waits, and can still answer its control channel).
    pub fn try_send_batch(&self, b: Batch) -> Result<(), TrySendError<Batch>> {
        let Some(tx) = &self.tx else {
            return Err(TrySendError::Disconnected(b));
        };
        let n = b.records.len() as u64;
        match tx.try_send(Item::Batch(b)) {
            Ok(()) => {
                self.counters.accepted.fetch_add(n, Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(i)) => Err(TrySendError::Full(i.into_batch())),
            Err(TrySendError::Disconnected(i)) => Err(TrySendError::Disconnected(i.into_batch())),
        }
    }

    /// Queues a record if there is room; otherwise drops it, counts it in
    /// [`WriterStats::dropped`] and returns false (live capture: never block).
    pub fn try_send(&self, r: Record) -> bool {
        let sent = match &self.tx {
            Some(tx) => match tx.try_send(Item::Record(r)) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
            None => false,
        };
        let counter = if sent {
            &self.counters.accepted
        } else {
            &self.counters.dropped
        };
        counter.fetch_add(1, Relaxed);
        sent
    }

    /// The counters now, while the writer runs.
    pub fn stats(&self) -> WriterStats {
        self.counters.snapshot()
    }

    /// Flushes every queued record, stops the thread and returns the final counters, or
    /// the first write error with the number of records that could not be written.
    pub fn finish(mut self) -> Result<WriterStats, StoreError> {
        self.shutdown()?;
        Ok(self.counters.snapshot())
    }

    fn shutdown(&mut self) -> Result<(), StoreError> {
        // Closing the channel is the thread's signal to flush what is queued and return.
        self.counters.finishing.store(true, Relaxed);
        drop(self.tx.take());
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        match thread.join() {
            Ok(None) => Ok(()),
            Ok(Some(first)) => Err(StoreError::Unwritten {
                unwritten: self.counters.unwritten.load(Relaxed),
                first: Box::new(first),
            }),
            Err(_) => Err(StoreError::WriterPanicked),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // An early return (`?`) in the owner must not lose queued records: flush and
        // join. The error, if any, can only be discarded here; `finish` reports it.
        let _ = self.shutdown();
    }
}

/// What the writer thread has collected for its next transaction.
#[derive(Default)]
struct Pending {
    records: Vec<Record>,
    /// At most one per log: a later checkpoint supersedes an earlier one of the same
    /// log, whose records are in `records` already; their open-call updates are folded.
    progress: Vec<LogProgress>,
}

impl Pending {
    fn add(&mut self, item: Item) {
        match item {
            Item::Record(r) => self.records.push(r),
            Item::Batch(mut b) => {
                self.records.append(&mut b.records);
                if let Some(p) = b.progress {
                    match self.progress.iter_mut().find(|q| q.source == p.source) {
                        Some(q) => {
                            let earlier = std::mem::take(&mut q.open_dialogs);
                            *q = LogProgress {
                                open_dialogs: earlier.then(p.open_dialogs),
                                ..p
                            };
                        }
                        None => self.progress.push(p),
                    }
                }
            }
        }
    }

    fn clear(&mut self) {
        self.records.clear();
        self.progress.clear();
    }
}

/// The writer thread: collect a batch, commit it, repeat until the channel closes.
/// Returns the first error that made records unwritten.
fn run(
    mut store: Store,
    rx: Receiver<Item>,
    cfg: &WriterConfig,
    retry: Retry,
    counters: &Counters,
) -> Option<StoreError> {
    let batch_size = cfg.batch_size.max(1);
    let mut batch = Pending {
        records: Vec::with_capacity(batch_size.min(65_536)),
        progress: Vec::new(),
    };
    let mut first_error = None;
    // Block without a deadline while idle: nothing to flush.
    while let Ok(item) = rx.recv() {
        batch.add(item);
        let deadline = Instant::now() + cfg.flush_interval;
        let mut closed = false;
        while batch.records.len() < batch_size {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(left) {
                Ok(item) => batch.add(item),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if let Err(e) = commit(&mut store, &batch, retry, counters) {
            // The logs' checkpoints went down with their records: the store keeps the
            // previous ones, so those lines are read again at the next start.
            counters
                .unwritten
                .fetch_add(batch.records.len() as u64, Relaxed);
            first_error.get_or_insert(e);
        }
        batch.clear();
        if closed {
            break;
        }
    }
    first_error
}

/// Writes one batch, retrying a failed transaction as `retry` says.
fn commit(
    store: &mut Store,
    batch: &Pending,
    retry: Retry,
    counters: &Counters,
) -> Result<(), StoreError> {
    let result = commit_with_retries(store, batch, retry, counters);
    counters.failing.store(result.is_err(), Relaxed);
    result
}

fn commit_with_retries(
    store: &mut Store,
    batch: &Pending,
    retry: Retry,
    counters: &Counters,
) -> Result<(), StoreError> {
    if let Retry::UntilFinish(max) = retry {
        let mut delay = Duration::from_millis(50);
        while !counters.finishing.load(Relaxed) {
            match store.write(&batch.records, &batch.progress) {
                Ok(()) => {
                    count_committed(&batch.records, counters);
                    return Ok(());
                }
                Err(_) => {
                    counters.failing.store(true, Relaxed);
                    counters.retries.fetch_add(1, Relaxed);
                    // Sleep in short steps so a finishing daemon is not held up.
                    let until = Instant::now() + delay;
                    while Instant::now() < until && !counters.finishing.load(Relaxed) {
                        std::thread::sleep(Duration::from_millis(20).min(delay));
                    }
                    delay = (delay * 2).min(max);
                }
            }
        }
    }
    let retry_delays = match retry {
        Retry::Bounded(delays) => delays,
        Retry::UntilFinish(_) => RETRY_DELAYS,
    };
    let mut delays = retry_delays.iter();
    loop {
        match store.write(&batch.records, &batch.progress) {
            Ok(()) => {
                count_committed(&batch.records, counters);
                return Ok(());
            }
            Err(e) => match delays.next() {
                // The transaction rolled back as a whole: the same batch can be retried.
                Some(delay) => {
                    counters.retries.fetch_add(1, Relaxed);
                    std::thread::sleep(*delay);
                }
                None => return Err(e),
            },
        }
    }
}

fn count_committed(batch: &[Record], counters: &Counters) {
    let calls = batch
        .iter()
        .filter(|r| matches!(r, Record::Call(_)))
        .count() as u64;
    counters.calls_written.fetch_add(calls, Relaxed);
    counters
        .messages_written
        .fetch_add(batch.len() as u64 - calls, Relaxed);
    counters.batches.fetch_add(1, Relaxed);
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::store::testutil::*;
    use crate::store::Query;

    fn temp_store() -> (tempfile::TempDir, PathBuf, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("callmeta.db");
        let store = Store::open(&path).expect("open");
        (dir, path, store)
    }

    const FAST_RETRIES: &[Duration] = &[Duration::from_millis(1), Duration::from_millis(1)];

    fn numbered(i: i64) -> Record {
        rec(call(&format!("call-{i}"), T0 + i, "100", "200"))
    }

    #[test]
    fn commits_in_batches_of_batch_size_and_finish_returns_the_counts() {
        let (_dir, path, store) = temp_store();
        // A flush interval far longer than the test: only batch_size and finish flush.
        let writer = Writer::spawn(
            store,
            WriterConfig {
                batch_size: 4,
                flush_interval: Duration::from_secs(3600),
                queue: 16,
            },
        );
        for i in 0..9 {
            writer.send(numbered(i)).expect("send");
        }
        writer.send(msg(full_message())).expect("send");
        let stats = writer.finish().expect("finish");
        assert_eq!(
            stats,
            WriterStats {
                calls_written: 9,
                messages_written: 1,
                batches: 3, // 4 + 4 + the 2 left flushed by finish
                dropped: 0,
                unwritten: 0,
                retries: 0,
                pending: 0,
                failing: false,
            }
        );
        let reader = Store::open_read_only(&path).expect("reader");
        assert_eq!(reader.calls(&Query::default()).expect("calls").len(), 9);
        assert_eq!(
            reader.messages(&Query::default()).expect("messages").len(),
            1
        );
    }

    #[test]
    fn flush_interval_commits_a_partial_batch() {
        let (_dir, path, store) = temp_store();
        let writer = Writer::spawn(
            store,
            WriterConfig {
                batch_size: 1000,
                flush_interval: Duration::from_millis(20),
                queue: 16,
            },
        );
        writer.send(numbered(1)).expect("send");
        let reader = Store::open_read_only(&path).expect("reader");
        // Poll rather than sleep a fixed time: the interval bounds the wait, not the test.
        let deadline = Instant::now() + Duration::from_secs(10);
        while reader.calls(&Query::default()).expect("calls").is_empty() {
            assert!(Instant::now() < deadline, "partial batch never committed");
            std::thread::sleep(Duration::from_millis(5));
        }
        let stats = writer.stats();
        assert_eq!(
            (stats.batches, stats.calls_written, stats.pending),
            (1, 1, 0)
        );
        assert_eq!(writer.finish().expect("finish").batches, 1);
    }

    #[test]
    fn try_send_drops_and_counts_when_the_queue_is_full() {
        let (_dir, path, store) = temp_store();
        // Another connection holds the write lock, so the writer thread sits in its first
        // commit (waiting within the busy timeout) while we fill the queue behind it.
        let mut blocker = rusqlite::Connection::open(&path).expect("blocker");
        let lock = blocker
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("lock");
        let writer = Writer::spawn(
            store,
            WriterConfig {
                batch_size: 1,
                flush_interval: Duration::from_secs(3600),
                queue: 2,
            },
        );
        let accepted = (0..10).filter(|i| writer.try_send(numbered(*i))).count() as u64;
        // The stuck thread holds at most one record (batch_size 1), the queue two.
        assert!((2..=3).contains(&accepted), "accepted {accepted}");
        assert_eq!(writer.stats().dropped, 10 - accepted);
        lock.rollback().expect("release");
        let stats = writer.finish().expect("finish");
        assert_eq!(stats.dropped, 10 - accepted);
        assert_eq!(stats.calls_written, accepted);
    }

    #[test]
    fn a_daemon_writer_keeps_retrying_and_holds_records_while_the_store_fails() {
        let (_dir, path, store) = temp_store();
        drop(store);
        let read_only = Store::open_read_only(&path).expect("read-only");
        let writer = Writer::spawn_with_retries(
            read_only,
            WriterConfig {
                batch_size: 1,
                flush_interval: Duration::from_millis(1),
                queue: 4,
            },
            Retry::UntilFinish(Duration::from_millis(5)),
        );
        for i in 0..3 {
            assert!(writer.try_send(numbered(i)));
        }
        let t = Instant::now();
        while writer.stats().retries < 5 && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let stats = writer.stats();
        assert!(stats.failing, "{stats:?}");
        assert!(stats.retries >= 5, "{stats:?}");
        assert_eq!(
            (stats.pending, stats.unwritten),
            (3, 0),
            "nothing given up while running"
        );
        assert!(matches!(
            writer.finish(),
            Err(StoreError::Unwritten { unwritten: 3, .. })
        ));
    }

    #[test]
    fn a_batch_that_keeps_failing_is_retried_then_reported_by_finish() {
        let (_dir, path, store) = temp_store();
        drop(store);
        // A read-only connection: every write fails, like a full disk would.
        let read_only = Store::open_read_only(&path).expect("read-only");
        let writer = Writer::spawn_with_retries(
            read_only,
            WriterConfig {
                batch_size: 2,
                flush_interval: Duration::from_secs(3600),
                queue: 8,
            },
            Retry::Bounded(FAST_RETRIES),
        );
        for i in 0..5 {
            writer.send(numbered(i)).expect("send");
        }
        match writer.finish() {
            Err(StoreError::Unwritten { unwritten, first }) => {
                assert_eq!(unwritten, 5);
                assert!(matches!(*first, StoreError::Write { .. }), "{first}");
            }
            other => panic!("expected Unwritten, got {other:?}"),
        }
    }

    fn progress(offset: u64, open: &[&str]) -> LogProgress {
        LogProgress {
            source: "/var/log/asterisk/full".into(),
            checkpoint: Checkpoint {
                device: 1,
                inode: 2,
                offset,
                last_line_hash: 3,
            },
            open_dialogs: OpenDialogs::Replace(
                open.iter()
                    .map(|k| (k.as_bytes().to_vec(), format!("{{\"k\":\"{k}\"}}")))
                    .collect(),
            ),
            at_us: 7,
        }
    }

    #[test]
    fn a_log_batch_stores_records_checkpoint_and_open_calls_and_the_latest_progress_wins() {
        let (_dir, path, store) = temp_store();
        let writer = Writer::spawn(
            store,
            WriterConfig {
                batch_size: 100,
                flush_interval: Duration::from_secs(3600),
                queue: 8,
            },
        );
        writer
            .send_batch(Batch {
                records: vec![numbered(1)],
                progress: Some(progress(100, &["a", "b"])),
            })
            .expect("send");
        // Same transaction (the flush interval is an hour): the later progress replaces
        // the earlier one, the records add up.
        writer
            .send_batch(Batch {
                records: vec![numbered(2)],
                progress: Some(progress(200, &["b"])),
            })
            .expect("send");
        let stats = writer.finish().expect("finish");
        assert_eq!((stats.calls_written, stats.batches), (2, 1));
        let store = Store::open(&path).expect("reopen");
        let cp = store
            .log_checkpoint("/var/log/asterisk/full")
            .expect("checkpoint");
        assert_eq!(cp.map(|c| c.offset), Some(200));
        let open = store.open_dialogs("/var/log/asterisk/full").expect("open");
        assert_eq!(
            OpenDialogs::Replace(open),
            progress(200, &["b"]).open_dialogs
        );
        assert_eq!(store.calls(&Query::default()).expect("calls").len(), 2);
    }

    #[test]
    fn a_full_queue_hands_a_log_batch_back_without_counting_a_drop() {
        let (_dir, path, store) = temp_store();
        let mut blocker = rusqlite::Connection::open(&path).expect("blocker");
        let lock = blocker
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("lock");
        let writer = Writer::spawn(
            store,
            WriterConfig {
                batch_size: 1,
                flush_interval: Duration::from_secs(3600),
                queue: 1,
            },
        );
        let mut refused = None;
        for i in 0..5 {
            let b = Batch {
                records: vec![numbered(i)],
                progress: Some(progress(i as u64, &[])),
            };
            if let Err(TrySendError::Full(b)) = writer.try_send_batch(b) {
                refused = Some(b);
                break;
            }
        }
        let refused = refused.expect("the queue filled up");
        assert_eq!(refused.records.len(), 1, "the batch comes back whole");
        assert_eq!(writer.stats().dropped, 0);
        lock.rollback().expect("release");
        writer.send_batch(refused).expect("send after all");
        let stats = writer.finish().expect("finish");
        assert_eq!((stats.dropped, stats.unwritten), (0, 0));
    }

    #[test]
    fn dropping_the_writer_still_flushes_queued_records() {
        let (_dir, path, store) = temp_store();
        let writer = Writer::spawn(
            store,
            WriterConfig {
                batch_size: 100,
                flush_interval: Duration::from_secs(3600),
                queue: 8,
            },
        );
        writer.send(numbered(1)).expect("send");
        drop(writer);
        let reader = Store::open_read_only(&path).expect("reader");
        assert_eq!(reader.calls(&Query::default()).expect("calls").len(), 1);
    }
}
