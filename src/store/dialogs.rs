//! Open calls carried across a daemon restart (table `open_dialogs`, schema v2, keyed by
//! source since v3).
//!
//! The state is the tracker's own encoding, opaque here: the store only keeps it between
//! a stop and the next start. Two lifecycles share the table:
//! - a capture source saves its open calls when it stops, and the next start takes them
//!   out (read and delete) to resume them: a capture cannot be read again, so there is
//!   nothing to keep consistent with;
//! - a followed log updates its rows with every checkpoint, in the checkpoint's
//!   transaction (`writer::write`): the entries that changed since the last one and the
//!   keys of those gone ([`OpenDialogs::Changes`]), or all of them at a stop
//!   ([`OpenDialogs::Replace`]). The next start only reads them: the rows and the
//!   checkpoint must stay a pair until the next batch moves both, or a kill -9 right
//!   after the start would lose the calls whose INVITE lies before the checkpoint.

use std::collections::HashSet;

use rusqlite::{params, Connection};

use super::{Store, StoreError};
use crate::call::OpenChanges;
use crate::privacy::Pseudonymiser;

/// What a followed log's batch does to its saved open calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OpenDialogs {
    /// Leaves them as they are.
    #[default]
    Keep,
    /// Replaces them all with these (key, state).
    Replace(Vec<(Vec<u8>, String)>),
    /// Deletes the removed keys, then saves the changed states.
    Changes(Box<OpenChanges>),
}

impl OpenDialogs {
    /// One update doing what `self` then `later` do (the writer folds a log's batches
    /// into one transaction).
    pub fn then(self, later: OpenDialogs) -> OpenDialogs {
        match (self, later) {
            (earlier, OpenDialogs::Keep) => earlier,
            (_, OpenDialogs::Replace(all)) => OpenDialogs::Replace(all),
            (OpenDialogs::Keep, changes) => changes,
            (OpenDialogs::Replace(mut all), OpenDialogs::Changes(c)) => {
                drop_superseded(&mut all, &c);
                all.extend(c.upsert);
                OpenDialogs::Replace(all)
            }
            (OpenDialogs::Changes(mut a), OpenDialogs::Changes(b)) => {
                // Removals run before upserts, so a key gone and then opened again ends
                // up saved.
                drop_superseded(&mut a.upsert, &b);
                a.remove.extend(b.remove);
                a.upsert.extend(b.upsert);
                OpenDialogs::Changes(a)
            }
        }
    }
}

/// Drops from `states` those a later update replaces or removes.
fn drop_superseded(states: &mut Vec<(Vec<u8>, String)>, later: &OpenChanges) {
    let touched: HashSet<&[u8]> = later
        .remove
        .iter()
        .map(Vec::as_slice)
        .chain(later.upsert.iter().map(|(k, _)| k.as_slice()))
        .collect();
    states.retain(|(k, _)| !touched.contains(k.as_slice()));
}

/// Applies `update` to `source`'s rows, inside the caller's transaction.
pub(super) fn update_source(
    conn: &Connection,
    source: &str,
    update: &OpenDialogs,
    now_us: i64,
    pseudonymiser: Option<&Pseudonymiser>,
) -> rusqlite::Result<()> {
    match update {
        OpenDialogs::Keep => Ok(()),
        OpenDialogs::Replace(all) => replace_source(conn, source, all, now_us, pseudonymiser),
        OpenDialogs::Changes(c) => {
            let mut delete = conn
                .prepare_cached("DELETE FROM open_dialogs WHERE source = ?1 AND dialog_key = ?2")?;
            for key in &c.remove {
                delete.execute(params![source, key])?;
            }
            insert_states(conn, source, &c.upsert, now_us, pseudonymiser)
        }
    }
}

/// Replaces `source`'s rows with `dialogs` (key, state), inside the caller's transaction.
/// With a pseudonymiser, the states hold pseudonyms only, like the records.
pub(super) fn replace_source(
    conn: &Connection,
    source: &str,
    dialogs: &[(Vec<u8>, String)],
    now_us: i64,
    pseudonymiser: Option<&Pseudonymiser>,
) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM open_dialogs WHERE source = ?1")?
        .execute([source])?;
    insert_states(conn, source, dialogs, now_us, pseudonymiser)
}

/// Saves (key, state) rows for `source`, each replacing a row of the same key.
fn insert_states(
    conn: &Connection,
    source: &str,
    dialogs: &[(Vec<u8>, String)],
    now_us: i64,
    pseudonymiser: Option<&Pseudonymiser>,
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT OR REPLACE INTO open_dialogs (source, dialog_key, state, saved_at_us)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (key, state) in dialogs {
        match pseudonymiser {
            Some(p) => insert.execute(params![source, key, p.apply_saved_dialog(state), now_us])?,
            None => insert.execute(params![source, key, state, now_us])?,
        };
    }
    Ok(())
}

/// One saved open call: the source that saw it, its key and its state.
pub type SavedDialog = (String, Vec<u8>, String);

impl Store {
    /// Replaces the open dialogs saved for `source` with `dialogs` (key, state), in one
    /// transaction; other sources' rows stay.
    pub fn save_open_dialogs(
        &mut self,
        source: &str,
        dialogs: &[(Vec<u8>, String)],
        now_us: i64,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let write = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(write)?;
        replace_source(&tx, source, dialogs, now_us, self.pseudonymiser.as_ref()).map_err(write)?;
        tx.commit().map_err(write)
    }

    /// Takes the saved open dialogs of every source but `keep` out of the store (read and
    /// delete in one transaction), oldest first.
    pub fn take_open_dialogs(&mut self, keep: &[&str]) -> Result<Vec<SavedDialog>, StoreError> {
        let path = self.path.clone();
        let write = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(write)?;
        let mut taken = Vec::new();
        {
            let mut select = tx
                .prepare(
                    "SELECT source, dialog_key, state FROM open_dialogs
                     ORDER BY saved_at_us, rowid",
                )
                .map_err(write)?;
            let rows = select
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .map_err(write)?;
            let mut delete = tx
                .prepare("DELETE FROM open_dialogs WHERE source = ?1 AND dialog_key = ?2")
                .map_err(write)?;
            for row in rows {
                let (source, key, state): SavedDialog = row.map_err(write)?;
                if keep.contains(&source.as_str()) {
                    continue;
                }
                delete.execute(params![source, key]).map_err(write)?;
                taken.push((source, key, state));
            }
        }
        tx.commit().map_err(write)?;
        Ok(taken)
    }

    /// The open dialogs saved for `source`, left in place (a followed log's, which its
    /// next checkpoint replaces).
    pub fn open_dialogs(&self, source: &str) -> Result<Vec<(Vec<u8>, String)>, StoreError> {
        let query = |e| StoreError::Query {
            path: self.path.clone(),
            source: e,
        };
        let mut select = self
            .conn
            .prepare(
                "SELECT dialog_key, state FROM open_dialogs WHERE source = ?1
                 ORDER BY saved_at_us, rowid",
            )
            .map_err(query)?;
        let rows = select
            .query_map([source], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(query)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(tag: &str) -> Vec<(Vec<u8>, String)> {
        vec![(format!("call\0{tag}").into_bytes(), "{\"x\":1}".to_string())]
    }

    fn row(key: &str, state: &str) -> (Vec<u8>, String) {
        (key.as_bytes().to_vec(), state.to_string())
    }

    fn changes(upsert: &[(&str, &str)], remove: &[&str]) -> OpenDialogs {
        OpenDialogs::Changes(Box::new(OpenChanges {
            upsert: upsert.iter().map(|(k, s)| row(k, s)).collect(),
            remove: remove.iter().map(|k| k.as_bytes().to_vec()).collect(),
        }))
    }

    /// `source`'s rows after `updates`, each in its own transaction.
    fn rows_after(updates: &[OpenDialogs]) -> Vec<(Vec<u8>, String)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("t.db")).expect("open");
        store
            .save_open_dialogs("other", &[row("a", "theirs")], 1)
            .expect("save");
        for u in updates {
            let tx = store.conn.transaction().expect("transaction");
            update_source(&tx, "/log", u, 1, None).expect("update");
            tx.commit().expect("commit");
        }
        assert_eq!(
            store.open_dialogs("other").expect("read"),
            [row("a", "theirs")]
        );
        let mut rows = store.open_dialogs("/log").expect("read");
        rows.sort();
        rows
    }

    #[test]
    fn changes_delete_and_save_only_the_rows_they_name() {
        let rows = rows_after(&[
            OpenDialogs::Replace(vec![row("a", "1"), row("b", "1"), row("c", "1")]),
            changes(&[("b", "2"), ("d", "1")], &["a"]),
        ]);
        assert_eq!(rows, [row("b", "2"), row("c", "1"), row("d", "1")]);
    }

    #[test]
    fn a_key_removed_and_opened_again_in_one_update_is_saved() {
        let rows = rows_after(&[
            OpenDialogs::Replace(vec![row("a", "old")]),
            changes(&[("a", "new")], &["a"]),
        ]);
        assert_eq!(rows, [row("a", "new")]);
    }

    #[test]
    fn updates_folded_together_leave_the_rows_they_leave_one_by_one() {
        let sequence = [
            OpenDialogs::Replace(vec![row("a", "1"), row("b", "1")]),
            changes(&[("a", "2"), ("c", "1")], &["b"]),
            OpenDialogs::Keep,
            changes(&[("b", "2")], &["a", "c"]),
            changes(&[("a", "3"), ("c", "2")], &["b"]),
        ];
        for split in 0..sequence.len() {
            // The first `split` updates one by one, the rest folded into one.
            let (each, folded) = sequence.split_at(split);
            let mut updates: Vec<OpenDialogs> = each.to_vec();
            if let Some(f) = folded
                .iter()
                .cloned()
                .reduce(|earlier, later| earlier.then(later))
            {
                updates.push(f);
            }
            assert_eq!(
                rows_after(&updates),
                rows_after(&sequence),
                "folded from update {split}"
            );
        }
        assert_eq!(rows_after(&sequence), [row("a", "3"), row("c", "2")]);
    }

    #[test]
    fn saved_open_dialogs_come_back_once_and_are_then_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let mut store = Store::open(&path).expect("open");
        store.save_open_dialogs("lo", &saved("a"), 1).expect("save");
        drop(store);
        let mut store = Store::open(&path).expect("reopen");
        let (key, state) = saved("a").remove(0);
        assert_eq!(
            store.take_open_dialogs(&[]).expect("take"),
            vec![("lo".to_string(), key, state)]
        );
        assert!(store.take_open_dialogs(&[]).expect("take again").is_empty());
    }

    #[test]
    fn a_source_replaces_only_its_own_rows_and_kept_sources_are_not_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("t.db")).expect("open");
        store.save_open_dialogs("lo", &saved("a"), 1).expect("save");
        store
            .save_open_dialogs("/log", &saved("a"), 1)
            .expect("save");
        store
            .save_open_dialogs("/log", &saved("b"), 2)
            .expect("save");
        assert_eq!(store.open_dialogs("/log").expect("read"), saved("b"));
        let taken = store.take_open_dialogs(&["/log"]).expect("take");
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].0, "lo");
        // Read, not taken: still there for the next start.
        assert_eq!(store.open_dialogs("/log").expect("read"), saved("b"));
    }

    #[test]
    fn version_2_rows_take_their_source_from_the_state_when_migrated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        {
            let mut conn = Connection::open(&path).expect("open");
            let tx = conn.transaction().expect("tx");
            for step in [
                super::super::schema::V1_FOR_TESTS,
                super::super::schema::V2_FOR_TESTS,
            ] {
                tx.execute_batch(step).expect("old schema");
            }
            tx.execute_batch(
                "INSERT INTO open_dialogs VALUES (x'01', '{\"source\":\"eth0\"}', 5);
                 INSERT INTO open_dialogs VALUES (x'02', 'not json', 6);
                 PRAGMA user_version = 2; PRAGMA application_id = 1129137492;",
            )
            .expect("rows");
            tx.commit().expect("commit");
        }
        let mut store = Store::open(&path).expect("migrate");
        let taken = store.take_open_dialogs(&[]).expect("take");
        let sources: Vec<&str> = taken.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(sources, ["eth0", ""]);
    }
}
