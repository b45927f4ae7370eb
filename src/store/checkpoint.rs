//! Where followed PBX logs were read up to (`log_checkpoints`, schema v2), written in the
//! same transaction as the records those lines gave, so a restart neither loses nor
//! duplicates a record (issue 5).
//!
//! The records go through the writer's own upsert ([`super::writer::write_batch`]), which
//! opens its own transaction. To put the checkpoint in that transaction without a second
//! copy of the upsert, the connection gets TEMP triggers (connection-local, never in the
//! file) that copy a pending checkpoint from a TEMP table into `log_checkpoints` whenever
//! a call or message row is inserted or updated: the checkpoint commits or rolls back with
//! the records. When no row changed (a replay of records already stored) the checkpoint is
//! then written on its own, which is safe because the records before it are stored.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};
use crate::call::Record;
use crate::source::log::Checkpoint;

const SETUP: &str = "
CREATE TEMP TABLE IF NOT EXISTS pending_checkpoint (
    source TEXT PRIMARY KEY,
    device INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    last_line_hash TEXT NOT NULL,
    updated_at_us INTEGER NOT NULL
);
CREATE TEMP TRIGGER IF NOT EXISTS checkpoint_on_call_insert AFTER INSERT ON main.calls
BEGIN INSERT OR REPLACE INTO log_checkpoints SELECT * FROM temp.pending_checkpoint; END;
CREATE TEMP TRIGGER IF NOT EXISTS checkpoint_on_call_update AFTER UPDATE ON main.calls
BEGIN INSERT OR REPLACE INTO log_checkpoints SELECT * FROM temp.pending_checkpoint; END;
CREATE TEMP TRIGGER IF NOT EXISTS checkpoint_on_message_insert AFTER INSERT ON main.messages
BEGIN INSERT OR REPLACE INTO log_checkpoints SELECT * FROM temp.pending_checkpoint; END;
CREATE TEMP TRIGGER IF NOT EXISTS checkpoint_on_message_update AFTER UPDATE ON main.messages
BEGIN INSERT OR REPLACE INTO log_checkpoints SELECT * FROM temp.pending_checkpoint; END;
";

/// SQLite integers are signed: device and inode numbers are stored as their bit pattern.
fn to_sql(n: u64) -> i64 {
    n as i64
}

impl Store {
    /// Upserts `records` and saves `checkpoint` for the log `source` in one transaction.
    pub fn write_batch_with_checkpoint(
        &mut self,
        records: &[Record],
        source: &str,
        checkpoint: &Checkpoint,
        now_us: i64,
    ) -> Result<(), StoreError> {
        let write = |e| StoreError::Write {
            path: self.path.clone(),
            source: e,
        };
        self.conn.execute_batch(SETUP).map_err(write)?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO temp.pending_checkpoint VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    source,
                    to_sql(checkpoint.device),
                    to_sql(checkpoint.inode),
                    to_sql(checkpoint.offset),
                    format!("{:016x}", checkpoint.last_line_hash),
                    now_us
                ],
            )
            .map_err(write)?;
        let result = super::writer::write_batch(&mut self.conn, records);
        // Always leave the pending row empty, even when the batch failed: a later batch
        // of another source must not carry this checkpoint.
        let cleared = self
            .conn
            .execute("DELETE FROM temp.pending_checkpoint", [])
            .map(|_| ());
        result.and(cleared).map_err(write)?;
        self.save_checkpoint(source, checkpoint, now_us)
    }

    /// Saves a checkpoint on its own (nothing new was stored since the last one).
    pub fn save_checkpoint(
        &mut self,
        source: &str,
        checkpoint: &Checkpoint,
        now_us: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO log_checkpoints
                 (source, device, inode, offset, last_line_hash, updated_at_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    source,
                    to_sql(checkpoint.device),
                    to_sql(checkpoint.inode),
                    to_sql(checkpoint.offset),
                    format!("{:016x}", checkpoint.last_line_hash),
                    now_us
                ],
            )
            .map(|_| ())
            .map_err(|e| StoreError::Write {
                path: self.path.clone(),
                source: e,
            })
    }

    /// The checkpoint saved for `source`, if any. A row that cannot be read back (a hash
    /// that is not hex) is reported as corrupt rather than trusted.
    pub fn log_checkpoint(&self, source: &str) -> Result<Option<Checkpoint>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT rowid, device, inode, offset, last_line_hash FROM log_checkpoints
                 WHERE source = ?1",
                [source],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| StoreError::Query {
                path: self.path.clone(),
                source: e,
            })?;
        let Some((rowid, device, inode, offset, hash)) = row else {
            return Ok(None);
        };
        let last_line_hash = u64::from_str_radix(&hash, 16).map_err(|_| StoreError::Corrupt {
            path: self.path.clone(),
            table: "log_checkpoints",
            rowid,
            column: "last_line_hash",
            value: format!("'{hash}'"),
            expected: "16 hex digits",
        })?;
        Ok(Some(Checkpoint {
            device: device as u64,
            inode: inode as u64,
            offset: offset as u64,
            last_line_hash,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{call, rec};

    fn cp(offset: u64) -> Checkpoint {
        Checkpoint {
            device: 2049,
            inode: u64::MAX - 7,
            offset,
            last_line_hash: 0xdead_beef_0123_4567,
        }
    }

    #[test]
    fn a_checkpoint_written_with_records_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let records = [rec(call("c1@x", 1_000_000, "100", "200"))];
        store
            .write_batch_with_checkpoint(&records, "/var/log/asterisk/full", &cp(4096), 5)
            .unwrap();
        assert_eq!(
            store.log_checkpoint("/var/log/asterisk/full").unwrap(),
            Some(cp(4096))
        );
        assert_eq!(store.log_checkpoint("/other").unwrap(), None);
        assert_eq!(store.calls(&Default::default()).unwrap().len(), 1);
    }

    #[test]
    fn a_failed_batch_leaves_the_previous_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        store.save_checkpoint("log", &cp(10), 1).unwrap();
        // A trigger that fails the second row makes the whole batch roll back.
        store
            .conn
            .execute_batch(
                "CREATE TEMP TRIGGER fail AFTER INSERT ON main.calls WHEN NEW.call_id = 'bad'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        let records = [
            rec(call("good@x", 1, "1", "2")),
            rec(call("bad", 2, "1", "2")),
        ];
        assert!(store
            .write_batch_with_checkpoint(&records, "log", &cp(20), 2)
            .is_err());
        assert_eq!(store.log_checkpoint("log").unwrap(), Some(cp(10)));
        assert!(store.calls(&Default::default()).unwrap().is_empty());
    }
}
