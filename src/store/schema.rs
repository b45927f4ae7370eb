//! The store's schema: connection pragmas and the forward-only migrations.
//!
//! `PRAGMA user_version` is the schema version: migration `i` of [`MIGRATIONS`] takes a
//! database from version `i` to `i + 1`, and every pending step runs in ONE transaction, so
//! a crash mid-migration leaves the old version intact. A migration's text is history: once
//! released it must never change (databases in the field were built from it); a change is a
//! new step appended to the list. A database from a newer callmeta is refused, never
//! touched. docs/schema.md documents every table, column and index created here.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Readable UTC time `2026-11-29T14:43:16.123456Z` from integer microseconds, in SQL.
///
/// Floor division (not SQLite's truncating `/`) so times before 1970 format like
/// `crate::time::format_us` does. NULL in, NULL out. Part of migration 1's text: never edit.
macro_rules! us_text {
    ($col:literal) => {
        concat!(
            "strftime('%Y-%m-%dT%H:%M:%S', (",
            $col,
            " - ((",
            $col,
            " % 1000000) + 1000000) % 1000000) / 1000000, 'unixepoch') || printf('.%06dZ', ((",
            $col,
            " % 1000000) + 1000000) % 1000000)"
        )
    };
}

/// Version 1: calls, messages, their indexes and the billing views.
///
/// No STRICT tables and no generated columns, on purpose: billing readers may link an older
/// SQLite (STRICT needs 3.37, generated columns 3.31) and would refuse the whole file.
/// Number search uses expression indexes (3.9+) whose expressions `query.rs` repeats
/// verbatim (`NORM_*`): SQLite only uses an expression index for the identical expression.
const V1: &str = concat!(
    "
CREATE TABLE calls (
    id                INTEGER PRIMARY KEY,
    call_id           TEXT    NOT NULL,
    from_tag          TEXT    NOT NULL,
    started_at        INTEGER NOT NULL,
    ringing_at        INTEGER,
    answered_at       INTEGER,
    ended_at          INTEGER NOT NULL,
    last_seen_at      INTEGER NOT NULL,
    duration_ms       INTEGER NOT NULL,
    billable_ms       INTEGER NOT NULL,
    pdd_ms            INTEGER,
    disposition       TEXT    NOT NULL
        CHECK (disposition IN ('answered', 'busy', 'no_answer', 'failed')),
    final_status      INTEGER,
    ended_by          TEXT    NOT NULL
        CHECK (ended_by IN ('bye', 'cancel', 'rejected', 'timeout')),
    timeout_reason    TEXT
        CHECK (timeout_reason IN ('no_response', 'ring_timeout', 'session_expired',
                                  'max_duration', 'capture_end', 'evicted')),
    hangup_side       TEXT    CHECK (hangup_side IN ('caller', 'callee')),
    reason_cause      INTEGER,
    caller            TEXT    NOT NULL,
    caller_domain     TEXT    NOT NULL,
    caller_name       TEXT,
    callee            TEXT    NOT NULL,
    callee_domain     TEXT    NOT NULL,
    asserted_identity TEXT,
    src_ip            TEXT    NOT NULL,
    src_port          INTEGER NOT NULL,
    dst_ip            TEXT    NOT NULL,
    dst_port          INTEGER NOT NULL,
    transport         TEXT    NOT NULL
        CHECK (transport IN ('udp', 'tcp', 'tls', 'ws', 'wss', 'sctp')),
    user_agent        TEXT,
    server            TEXT,
    codecs            TEXT,
    source            TEXT    NOT NULL
);
CREATE UNIQUE INDEX calls_key ON calls (call_id, from_tag, started_at);
CREATE INDEX calls_started_at ON calls (started_at);
CREATE INDEX calls_caller ON calls (ltrim(replace(replace(caller, ' ', ''), '-', ''), '+'));
CREATE INDEX calls_callee ON calls (ltrim(replace(replace(callee, ' ', ''), '-', ''), '+'));
CREATE INDEX calls_asserted_identity
    ON calls (ltrim(replace(replace(asserted_identity, ' ', ''), '-', ''), '+'));

CREATE TABLE messages (
    id               INTEGER PRIMARY KEY,
    call_id          TEXT    NOT NULL,
    cseq             INTEGER NOT NULL,
    sent_at          INTEGER NOT NULL,
    answered_at      INTEGER,
    final_status     INTEGER,
    sender           TEXT    NOT NULL,
    sender_domain    TEXT    NOT NULL,
    recipient        TEXT    NOT NULL,
    recipient_domain TEXT    NOT NULL,
    content_type     TEXT,
    size_bytes       INTEGER NOT NULL,
    src_ip           TEXT    NOT NULL,
    src_port         INTEGER NOT NULL,
    dst_ip           TEXT    NOT NULL,
    dst_port         INTEGER NOT NULL,
    transport        TEXT    NOT NULL
        CHECK (transport IN ('udp', 'tcp', 'tls', 'ws', 'wss', 'sctp')),
    source           TEXT    NOT NULL
);
CREATE UNIQUE INDEX messages_key ON messages (call_id, cseq, sent_at);
CREATE INDEX messages_sent_at ON messages (sent_at);
CREATE INDEX messages_sender ON messages (ltrim(replace(replace(sender, ' ', ''), '-', ''), '+'));
CREATE INDEX messages_recipient
    ON messages (ltrim(replace(replace(recipient, ' ', ''), '-', ''), '+'));

CREATE VIEW cdr AS SELECT
    call_id,
    from_tag,
    ",
    us_text!("started_at"),
    " AS started_at,
    ",
    us_text!("ringing_at"),
    " AS ringing_at,
    ",
    us_text!("answered_at"),
    " AS answered_at,
    ",
    us_text!("ended_at"),
    " AS ended_at,
    duration_ms, billable_ms, pdd_ms, disposition, final_status, ended_by, timeout_reason,
    hangup_side, reason_cause, caller, caller_domain, caller_name, callee, callee_domain,
    asserted_identity, src_ip, src_port, dst_ip, dst_port, transport, user_agent, server,
    codecs, source,
    started_at AS started_at_us
FROM calls;

CREATE VIEW message_cdr AS SELECT
    call_id,
    cseq,
    ",
    us_text!("sent_at"),
    " AS sent_at,
    ",
    us_text!("answered_at"),
    " AS answered_at,
    final_status, sender, sender_domain, recipient, recipient_domain, content_type,
    size_bytes, src_ip, src_port, dst_ip, dst_port, transport, source,
    sent_at AS sent_at_us
FROM messages;
"
);

/// The forward migrations, oldest first: step `i` takes `user_version` from `i` to `i + 1`.
/// Version 2: the tables of the daemon and the privacy commands.
///
/// - `audit`: one row per access or erasure request served (`forget`, `export`), kept for
///   the retention window; `subject` holds the pseudonymised number, never the clear one.
/// - `log_checkpoints`: where a followed PBX log was read up to (device, inode, offset and
///   a hash of the last line), written in the same transaction as the records it gave,
///   so a restart neither loses nor duplicates a record.
/// - `open_dialogs`: calls still open when the daemon stopped, restored at the next start
///   so a call that spans a restart is one record. `state` is the tracker's own encoding.
const V2: &str = "
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at_us INTEGER NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('forget', 'export')),
    subject TEXT NOT NULL,
    records INTEGER NOT NULL,
    os_user TEXT NOT NULL,
    dry_run INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX audit_at ON audit (at_us);
CREATE TABLE log_checkpoints (
    source TEXT PRIMARY KEY,
    device INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    last_line_hash TEXT NOT NULL,
    updated_at_us INTEGER NOT NULL
);
CREATE TABLE open_dialogs (
    dialog_key BLOB PRIMARY KEY,
    state TEXT NOT NULL,
    saved_at_us INTEGER NOT NULL
);
";

/// Version 3: `open_dialogs` says which source each open call belongs to.
///
/// A followed log saves its open calls with every checkpoint (issue 5), replacing only
/// its own rows, and two sources may see the same Call-ID and From-tag (a capture and
/// the PBX's log of the same call): so the key becomes (source, dialog_key). SQLite cannot
/// change a primary key in place, hence the copy. Rows saved by version 2 take the source
/// the tracker wrote into their state (`json_valid` first: `json_extract` fails the whole
/// statement on one malformed row).
const V3: &str = "
CREATE TABLE open_dialogs_v3 (
    source TEXT NOT NULL,
    dialog_key BLOB NOT NULL,
    state TEXT NOT NULL,
    saved_at_us INTEGER NOT NULL,
    PRIMARY KEY (source, dialog_key)
);
INSERT OR REPLACE INTO open_dialogs_v3 (source, dialog_key, state, saved_at_us)
SELECT coalesce(CASE WHEN json_valid(state) THEN json_extract(state, '$.source') END, ''),
       dialog_key, state, saved_at_us
FROM open_dialogs;
DROP TABLE open_dialogs;
ALTER TABLE open_dialogs_v3 RENAME TO open_dialogs;
";

const MIGRATIONS: &[&str] = &[V1, V2, V3];

/// The released steps, for tests that build an older store and migrate it.
#[cfg(test)]
pub(super) const V1_FOR_TESTS: &str = V1;
#[cfg(test)]
pub(super) const V2_FOR_TESTS: &str = V2;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// `application_id` in the database header, so `file(1)` and tools can tell a callmeta
/// store from any other SQLite file ("CMET").
const APPLICATION_ID: i64 = 0x434D_4554;

/// How long a connection waits for another's lock before failing with SQLITE_BUSY: long
/// enough to ride out a checkpoint or a reader's snapshot, short enough to report a stuck
/// lock instead of hanging.
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |row| row.get::<_, u32>(0))
}

/// The writer connection's pragmas, in the order that matters.
///
/// - `auto_vacuum=INCREMENTAL` first: it only takes effect before the first table exists.
///   Retention can then return freed pages to the file system in small steps
///   (`PRAGMA incremental_vacuum`) without a full `VACUUM` rewriting the store.
/// - `journal_mode=WAL`: billing readers read while the writer commits (persistent, in the
///   file header).
/// - `synchronous=NORMAL`: in WAL mode a power loss may lose the last commits but never
///   corrupts the file; FULL would fsync every batch for no billing benefit (records are
///   re-derived from captures/logs by ingesting again, which the upsert makes idempotent).
/// - `secure_delete=ON`: purged records (retention, `forget`) are overwritten with zeros,
///   not left readable in free pages. Per connection, so set on every open.
pub fn set_writer_pragmas(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let pragma = |name: &'static str, value: &'static str, expect: &'static str| {
        let got: String = conn
            .pragma_update_and_check(None, name, value, |row| {
                row.get::<_, rusqlite::types::Value>(0)
            })
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t.to_ascii_lowercase(),
                other => format!("{other:?}"),
            })
            .map_err(|source| StoreError::Pragma {
                path: path.to_owned(),
                pragma: name,
                source,
            })?;
        if got != expect {
            return Err(StoreError::PragmaRefused {
                path: path.to_owned(),
                pragma: name,
                wanted: expect,
                got,
            });
        }
        Ok(())
    };
    // `PRAGMA auto_vacuum = X` returns no row; read it back separately below.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .map_err(|source| StoreError::Pragma {
            path: path.to_owned(),
            pragma: "auto_vacuum",
            source,
        })?;
    pragma("journal_mode", "WAL", "wal")?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|source| StoreError::Pragma {
            path: path.to_owned(),
            pragma: "synchronous",
            source,
        })?;
    pragma("secure_delete", "ON", "1")?;
    Ok(())
}

/// Keeps the -wal and -shm files when the writer closes (`SQLITE_FCNTL_PERSIST_WAL`).
///
/// Why: a billing reader in the store's group has read-only access to the files and none
/// to the directory (0640 files in a 0750 directory). It can read while the -shm exists,
/// but cannot create one: without this, every reader fails with "attempt to write a
/// readonly database" whenever the daemon is stopped (checked with sqlite3 3.40 as
/// `nobody`). The files keep the database file's mode; closing truncates the -wal (see
/// `Store`'s Drop), so no page images linger in it.
pub fn persist_wal(conn: &Connection) -> rusqlite::Result<()> {
    let mut on: std::os::raw::c_int = 1;
    // SAFETY: `handle()` is this open connection's pointer, valid while `conn` is
    // borrowed, and not used by another thread meanwhile (Connection is not Sync).
    // SQLITE_FCNTL_PERSIST_WAL reads and writes one c_int through the pointer, which points
    // at `on`, alive across the call; "main" is a NUL-terminated static string.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&mut on as *mut std::os::raw::c_int).cast(),
        )
    };
    if rc == rusqlite::ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rc),
            Some("cannot keep the WAL files persistent".into()),
        ))
    }
}

/// Brings the schema to [`SCHEMA_VERSION`] in one IMMEDIATE transaction (taking the write
/// lock first, so two processes opening a fresh store cannot both run the steps).
/// Returns the version found.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<u32, StoreError> {
    let found_err = |from: u32| {
        move |source| StoreError::Migrate {
            path: path.to_owned(),
            from,
            to: SCHEMA_VERSION,
            source,
        }
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(found_err(0))?;
    let found = user_version(&tx).map_err(found_err(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(found);
    }
    if found == 0 {
        // Version 0 with tables is somebody else's database: adding ours would mix them.
        let tables: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(found_err(found))?;
        if tables > 0 {
            return Err(StoreError::Foreign {
                path: path.to_owned(),
            });
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(found_err(found))?;
    }
    for step in &MIGRATIONS[found as usize..] {
        tx.execute_batch(step).map_err(found_err(found))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(found_err(found))?;
    tx.commit().map_err(found_err(found))?;
    Ok(found)
}
