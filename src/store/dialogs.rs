//! Open calls carried across a daemon restart (table `open_dialogs`, schema v2).
//!
//! The state is the tracker's own encoding, opaque here: the store only keeps it between
//! a stop and the next start, and removes it as it hands it back.

use rusqlite::params;

use super::{Store, StoreError};

impl Store {
    /// Replaces the saved open dialogs with `dialogs` (key, state), in one transaction.
    pub fn save_open_dialogs(
        &mut self,
        dialogs: &[(Vec<u8>, String)],
        now_us: i64,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let write = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(write)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO open_dialogs (dialog_key, state, saved_at_us) VALUES (?1, ?2, ?3)",
                )
                .map_err(write)?;
            for (key, state) in dialogs {
                insert.execute(params![key, state, now_us]).map_err(write)?;
            }
        }
        tx.commit().map_err(write)
    }

    /// Takes the saved open dialogs out of the store (read and delete in one transaction).
    pub fn take_open_dialogs(&mut self) -> Result<Vec<(Vec<u8>, String)>, StoreError> {
        let path = self.path.clone();
        let write = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(write)?;
        let dialogs = {
            let mut select = tx
                .prepare("SELECT dialog_key, state FROM open_dialogs ORDER BY saved_at_us, rowid")
                .map_err(write)?;
            let rows = select
                .query_map([], |row| {
                    Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(write)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(write)?
        };
        tx.execute("DELETE FROM open_dialogs", []).map_err(write)?;
        tx.commit().map_err(write)?;
        Ok(dialogs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_open_dialogs_come_back_once_and_are_then_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let mut store = Store::open(&path).expect("open");
        let saved = vec![(b"call\0tag".to_vec(), "{\"x\":1}".to_string())];
        store.save_open_dialogs(&saved, 1).expect("save");
        drop(store);
        let mut store = Store::open(&path).expect("reopen");
        assert_eq!(store.take_open_dialogs().expect("take"), saved);
        assert!(store.take_open_dialogs().expect("take again").is_empty());
    }
}
