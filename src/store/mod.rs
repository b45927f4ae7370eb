//! The SQLite store: finished call and message records in, billing rows and exports out.
//!
//! One writer connection (owned by the [`Writer`] thread in the daemon, or used directly by
//! offline tools) and any number of read-only connections (the CLI's query commands, billing
//! readers in other processes). Records are upserted on their natural keys so ingesting the
//! same input twice never duplicates a row. The schema is versioned (`PRAGMA user_version`)
//! and documented in docs/schema.md; billing reads it, so it only changes by appending a
//! migration.
//!
//! Must never: create anything but the database file itself (no directories), modify a
//! database from a newer schema version, panic on a row it cannot decode, or drop a
//! record silently (drops are counted in [`WriterStats`]).

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::call::{CallRecord, MessageRecord, Record};
use crate::privacy::Pseudonymiser;

mod checkpoint;
mod dialogs;
pub mod export;
mod privacy;
mod query;
pub mod retention;
mod schema;
mod writer;

pub use dialogs::{OpenDialogs, SavedDialog};
pub use export::Format;
pub use privacy::{AuditEntry, Erasure, ForgetOutcome, Request, Subject, SubjectRecords};
pub use retention::{RetentionOutcome, RetentionPolicy};
pub use schema::SCHEMA_VERSION;
pub use writer::{Batch, LogProgress, Retry, TrySendError, Writer, WriterConfig, WriterStats};

/// Permissions of a newly created store: the owner (the daemon) writes, its group (billing
/// readers) reads, nobody else sees call metadata.
pub const DB_FILE_MODE: u32 = 0o640;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create store {}: {source}", .path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error(
        "store {} does not exist (it is created by `callmeta run` or `callmeta ingest`)",
        .path.display()
    )]
    NotFound { path: PathBuf },
    #[error("cannot access store {}: {source}", .path.display())]
    Access { path: PathBuf, source: io::Error },
    #[error("cannot open store {}: {source}", .path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot set PRAGMA {pragma} on store {}: {source}", .path.display())]
    Pragma {
        path: PathBuf,
        pragma: &'static str,
        source: rusqlite::Error,
    },
    #[error(
        "store {}: PRAGMA {pragma} is `{got}`, expected `{wanted}` \
         (WAL needs a local file system that supports shared memory)",
        .path.display()
    )]
    PragmaRefused {
        path: PathBuf,
        pragma: &'static str,
        wanted: &'static str,
        got: String,
    },
    #[error("cannot migrate store {} from schema version {from} to {to}: {source}", .path.display())]
    Migrate {
        path: PathBuf,
        from: u32,
        to: u32,
        source: rusqlite::Error,
    },
    #[error(
        "store {} has schema version {found}, newer than version {supported} that this \
         callmeta supports: use a newer callmeta (the store was left untouched)",
        .path.display()
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "store {} has schema version {found}, this callmeta reads version {supported}: \
         open it once read-write (`callmeta run` or `callmeta ingest`) to migrate it",
        .path.display()
    )]
    NeedsMigration {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "{} is not a callmeta store: it has tables but no schema version (left untouched)",
        .path.display()
    )]
    Foreign { path: PathBuf },
    #[error("cannot write to store {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot query store {}: {source}", .path.display())]
    Query {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "store {}: row {rowid} of {table}: column {column} holds {value}, expected {expected}",
        .path.display()
    )]
    Corrupt {
        path: PathBuf,
        table: &'static str,
        rowid: i64,
        column: &'static str,
        /// What was found, as text (`NULL`, `'abc'`, `70000`).
        value: String,
        expected: &'static str,
    },
    #[error("store writer could not write {unwritten} record(s); first error: {first}")]
    Unwritten {
        unwritten: u64,
        #[source]
        first: Box<StoreError>,
    },
    #[error("store writer thread has stopped; the record was not queued")]
    WriterGone,
    #[error("store writer thread panicked; records still queued were lost")]
    WriterPanicked,
    #[error(
        "store directory {} is writable by everyone (mode {mode:04o}): anyone could replace \
         the store or its key; refusing to start (chmod o-w, and see docs/privacy.md)",
        .path.display()
    )]
    UnsafeDirectory { path: PathBuf, mode: u32 },
}

/// A store file or directory whose permissions weaken the store's access control, without
/// making it unsafe to run (see [`check_permissions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionWarning {
    pub path: PathBuf,
    pub mode: u32,
    pub what: &'static str,
}

impl std::fmt::Display for PermissionWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} has mode {:04o}: {}",
            self.path.display(),
            self.mode,
            self.what
        )
    }
}

/// Checks the directory holding the store at `db` (and the store's files in it, those that
/// exist) before anything is opened. The daemon and `ingest` call it first.
///
/// Refuses a world-writable directory: whoever can write there can swap the database or
/// the pseudonym key, or plant a -wal that SQLite would replay. Warns about store files
/// readable by everyone (call metadata is personal data) and a group-writable directory.
pub fn check_permissions(db: &Path) -> Result<Vec<PermissionWarning>, StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fn access(path: &Path) -> impl Fn(io::Error) -> StoreError + '_ {
        move |source| StoreError::Access {
            path: path.to_owned(),
            source,
        }
    }
    let mode = std::fs::metadata(dir)
        .map_err(access(dir))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o002 != 0 {
        return Err(StoreError::UnsafeDirectory {
            path: dir.to_owned(),
            mode,
        });
    }
    let mut warnings = Vec::new();
    if mode & 0o020 != 0 {
        warnings.push(PermissionWarning {
            path: dir.to_owned(),
            mode,
            what: "the store directory is group-writable: group members can replace the store",
        });
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        match std::fs::metadata(&path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o7777;
                if mode & 0o004 != 0 {
                    warnings.push(PermissionWarning {
                        path,
                        mode,
                        what: "readable by everyone: call metadata is personal data \
                               (chmod 640 and give readers the store's group)",
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(access(&path)(e)),
        }
    }
    Ok(warnings)
}

/// Filters of `callmeta calls` / `callmeta messages`. All given filters must match.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Keep records that started (messages: were sent) at or after this time, µs UTC.
    pub since_us: Option<i64>,
    /// Keep records that started (messages: were sent) strictly before this time, µs UTC.
    pub until_us: Option<i64>,
    /// A number equal to caller, callee or asserted identity (messages: sender or
    /// recipient), ignoring spaces, dashes and leading `+` on both sides.
    pub number: Option<String>,
}

/// A connection to the store: read-write (from [`Store::open`]) or read-only (from
/// [`Store::open_read_only`]).
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    writable: bool,
    /// Applied to every record before it is written (`[privacy] pseudonymise`).
    pseudonymiser: Option<Pseudonymiser>,
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.writable {
            // The -wal survives the close (persistent WAL, see schema::persist_wal): empty
            // it so old page images, including those of purged records, do not stay on
            // disk. Best effort: a reader's open snapshot can make it return early, and
            // the next checkpoint does the work then.
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

impl Store {
    /// Opens the store read-write, creating the file (mode 0640, never its directory) if it
    /// does not exist, setting the pragmas and migrating the schema to [`SCHEMA_VERSION`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // Create the file ourselves so its mode does not depend on the umask SQLite would
        // inherit; the -wal and -shm files SQLite creates copy the database file's mode.
        let created = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(DB_FILE_MODE)
            .open(path)
        {
            Ok(file) => {
                // `mode` is still filtered by the umask: set it exactly.
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(std::fs::Permissions::from_mode(DB_FILE_MODE))
                    .map_err(|source| StoreError::Create {
                        path: path.to_owned(),
                        source,
                    })?;
                true
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(source) => {
                return Err(StoreError::Create {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let result = Self::open_existing(path);
        if result.is_err() && created {
            // Leave nothing behind when a brand-new store could not be set up (an empty
            // file would later be mistaken for a store). Best effort: the open error is the
            // one worth reporting.
            let _ = std::fs::remove_file(path);
            for suffix in ["-wal", "-shm"] {
                let mut side = path.as_os_str().to_owned();
                side.push(suffix);
                let _ = std::fs::remove_file(side);
            }
        }
        result
    }

    fn open_existing(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        // No SQLITE_OPEN_CREATE: the file exists (we just made it, or it was there).
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(schema::BUSY_TIMEOUT).map_err(open_err)?;
        // Refuse a newer schema before changing anything, even a pragma. Reading the
        // header is also where "file is not a database" surfaces.
        let found = schema::user_version(&conn).map_err(open_err)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: path.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        schema::set_writer_pragmas(&conn, path)?;
        schema::persist_wal(&conn).map_err(|source| StoreError::Pragma {
            path: path.to_owned(),
            pragma: "SQLITE_FCNTL_PERSIST_WAL",
            source,
        })?;
        schema::migrate(&mut conn, path)?;
        Ok(Store {
            conn,
            path: path.to_owned(),
            writable: true,
            pseudonymiser: None,
        })
    }

    /// Opens an existing store for queries only; never creates or modifies anything.
    ///
    /// Works while a writer has the store open (WAL) and after it closed (the writer keeps
    /// the -wal and -shm files). Needs read access to the database, -wal and -shm files;
    /// see docs/schema.md, "Reading the store".
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        // Checked first because SQLite's own message for this is "unable to open database
        // file", which does not say why.
        match std::fs::metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    path: path.to_owned(),
                })
            }
            Err(source) => {
                return Err(StoreError::Access {
                    path: path.to_owned(),
                    source,
                })
            }
        }
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(schema::BUSY_TIMEOUT).map_err(open_err)?;
        let found = schema::user_version(&conn).map_err(open_err)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: path.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            return Err(StoreError::NeedsMigration {
                path: path.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(Store {
            conn,
            path: path.to_owned(),
            writable: false,
            pseudonymiser: None,
        })
    }

    /// The database file this store was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Upserts `records` in one transaction: all or none are written.
    ///
    /// A record whose key (calls: call_id, from_tag, started_at; messages: call_id, cseq,
    /// sent_at) is already stored replaces the stored one when it is at least as complete:
    /// see docs/schema.md, "Upsert".
    /// With a pseudonymiser set, its fields are replaced before anything is written.
    pub fn write_batch(&mut self, records: &[Record]) -> Result<(), StoreError> {
        self.write(records, &[])
    }

    /// Like [`Store::write_batch`], with followed logs' checkpoints and open calls in the
    /// same transaction: the records, the checkpoints and the open calls are all stored,
    /// or none of them.
    pub fn write(
        &mut self,
        records: &[Record],
        progress: &[LogProgress],
    ) -> Result<(), StoreError> {
        let pseudonymised: Vec<Record>;
        let records = match &self.pseudonymiser {
            Some(p) => {
                pseudonymised = records
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        p.apply(&mut r);
                        r
                    })
                    .collect();
                &pseudonymised
            }
            None => records,
        };
        let pseudonymiser = self.pseudonymiser.as_ref();
        writer::write(&mut self.conn, records, progress, pseudonymiser).map_err(|source| {
            StoreError::Write {
                path: self.path.clone(),
                source,
            }
        })
    }

    /// Pseudonymises the configured fields of every record written from now on (write
    /// time, so clear values never reach the file). Set it before handing the store to a
    /// [`Writer`].
    pub fn set_pseudonymiser(&mut self, pseudonymiser: Option<Pseudonymiser>) {
        self.pseudonymiser = pseudonymiser;
    }

    /// Calls matching `q`, ordered by `started_at`.
    pub fn calls(&self, q: &Query) -> Result<Vec<CallRecord>, StoreError> {
        query::calls(&self.conn, &self.path, q)
    }

    /// Text messages matching `q`, ordered by `sent_at`.
    pub fn messages(&self, q: &Query) -> Result<Vec<MessageRecord>, StoreError> {
        query::messages(&self.conn, &self.path, q)
    }

    /// The raw connection, for tests of the schema itself.
    #[cfg(test)]
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests;
