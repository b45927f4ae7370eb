//! Where followed PBX logs were read up to (`log_checkpoints`, schema v2), written in the
//! same transaction as the records those lines gave (and the log's open calls, see
//! `dialogs.rs`), so a restart neither loses nor duplicates a record (issue 5).
//!
//! The transaction is the writer's ([`super::writer::write`]): records, checkpoints and
//! open calls are one unit there, so nothing here opens a transaction of its own but
//! [`Store::save_checkpoint`].

use rusqlite::{params, Connection, OptionalExtension};

use super::dialogs::OpenDialogs;
use super::writer::LogProgress;
use super::{Store, StoreError};
use crate::call::Record;
use crate::source::log::Checkpoint;

/// SQLite integers are signed: device and inode numbers are stored as their bit pattern.
fn to_sql(n: u64) -> i64 {
    n as i64
}

/// Saves `checkpoint` for `source`, inside the caller's transaction.
pub(super) fn upsert(
    conn: &Connection,
    source: &str,
    checkpoint: &Checkpoint,
    now_us: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO log_checkpoints
         (source, device, inode, offset, last_line_hash, updated_at_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        source,
        to_sql(checkpoint.device),
        to_sql(checkpoint.inode),
        to_sql(checkpoint.offset),
        format!("{:016x}", checkpoint.last_line_hash),
        now_us
    ])?;
    Ok(())
}

impl Store {
    /// Upserts `records` and saves `checkpoint` for the log `source` in one transaction
    /// (the log's saved open calls are left as they are).
    pub fn write_batch_with_checkpoint(
        &mut self,
        records: &[Record],
        source: &str,
        checkpoint: &Checkpoint,
        now_us: i64,
    ) -> Result<(), StoreError> {
        self.write(
            records,
            &[LogProgress {
                source: source.to_string(),
                checkpoint: *checkpoint,
                open_dialogs: OpenDialogs::Keep,
                at_us: now_us,
            }],
        )
    }

    /// Saves a checkpoint on its own (nothing new was stored since the last one).
    pub fn save_checkpoint(
        &mut self,
        source: &str,
        checkpoint: &Checkpoint,
        now_us: i64,
    ) -> Result<(), StoreError> {
        upsert(&self.conn, source, checkpoint, now_us).map_err(|e| StoreError::Write {
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
    fn a_failed_batch_leaves_the_previous_checkpoint_and_open_calls() {
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
        store
            .save_open_dialogs("log", &[(b"k".to_vec(), "old".into())], 1)
            .unwrap();
        let progress = LogProgress {
            source: "log".into(),
            checkpoint: cp(20),
            open_dialogs: OpenDialogs::Replace(vec![(b"k".to_vec(), "new".into())]),
            at_us: 2,
        };
        assert!(store.write(&records, &[progress]).is_err());
        assert_eq!(store.log_checkpoint("log").unwrap(), Some(cp(10)));
        assert_eq!(
            store.open_dialogs("log").unwrap(),
            [(b"k".to_vec(), "old".to_string())]
        );
        assert!(store.calls(&Default::default()).unwrap().is_empty());
    }
}
