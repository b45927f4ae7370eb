//! Retention: records are kept for a fixed window after they ended, then deleted for good;
//! optionally anonymised (identifiers replaced by pseudonyms) earlier.
//!
//! The daemon calls [`apply`] at start and then hourly, `callmeta ingest` at the end of a
//! run, `callmeta purge` on demand. Times are wall-clock here, unlike everywhere else in
//! callmeta: the promise to subscribers is "kept for 90 days", counted from now, whatever
//! the time of the capture. A record's end is `ended_at` for calls and its final response
//! (else its sending) for messages. Audit rows are kept for the same window.
//!
//! Must never: delete a record younger than the window, anonymise one younger than
//! `anonymise_after`, pseudonymise a pseudonym again (billing per subscriber must still add
//! up across the anonymisation boundary), or leave deleted or overwritten bytes in the
//! files (see `privacy::erase_freed`).

use std::time::Duration;

use rusqlite::{params, Transaction, TransactionBehavior};

use super::privacy::{erase_freed, Erasure};
use super::{Store, StoreError};
use crate::config::RetentionSection;
use crate::privacy::Pseudonymiser;

/// What to keep, and for how long.
#[derive(Debug, Clone)]
pub struct RetentionPolicy {
    /// Records that ended longer ago than this are deleted.
    pub window: Duration,
    /// Records that ended longer ago than this (and are not yet deleted) have caller,
    /// callee, caller name, asserted identity and addresses replaced by pseudonyms under
    /// this pseudonymiser's key.
    pub anonymise: Option<(Duration, Pseudonymiser)>,
}

impl RetentionPolicy {
    /// The policy of `[retention]`; `pseudonymiser` is needed when `anonymise_after` is set
    /// (the daemon builds it from `[privacy] key_file`).
    pub fn from_config(section: &RetentionSection, pseudonymiser: Option<&Pseudonymiser>) -> Self {
        RetentionPolicy {
            window: section.window,
            anonymise: section
                .anonymise_after
                .zip(pseudonymiser.map(Pseudonymiser::anonymise)),
        }
    }

    /// Delete only: records older than `window`.
    pub fn delete_after(window: Duration) -> Self {
        RetentionPolicy {
            window,
            anonymise: None,
        }
    }
}

/// What one pass did (or, on a dry run, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    pub calls_deleted: u64,
    pub messages_deleted: u64,
    pub audit_deleted: u64,
    pub calls_anonymised: u64,
    pub messages_anonymised: u64,
    /// `None` on a dry run or when nothing was deleted or anonymised.
    pub erasure: Option<Erasure>,
}

impl RetentionOutcome {
    pub fn changed(&self) -> u64 {
        self.calls_deleted
            + self.messages_deleted
            + self.audit_deleted
            + self.calls_anonymised
            + self.messages_anonymised
    }
}

/// Microseconds before `now_us` by `d`, saturating (a window of centuries is "keep all").
fn cutoff(now_us: i64, d: Duration) -> i64 {
    now_us.saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

// `started_at <= ended_at`, so `started_at < cut` is implied; saying it lets SQLite use
// the started_at index instead of scanning the table. Same for messages and sent_at.
const OLD_CALLS: &str = "started_at < ?1 AND ended_at < ?1";
const OLD_MESSAGES: &str = "sent_at < ?1 AND coalesce(answered_at, sent_at) < ?1";

/// SQL true when a text column holds a pseudonym (`h:` and 32 lower-case hex digits),
/// exactly `privacy::is_pseudonym`.
fn pseudonym_sql(col: &str) -> String {
    format!(
        "({col} GLOB 'h:{}' AND length({col}) = 34)",
        "[0-9a-f]".repeat(32)
    )
}

/// SQL true when an address column looks like an address pseudonym (`100::…`). Looser than
/// `privacy::is_ip_pseudonym` (which wants `100::/64`) only for addresses in the
/// discard-only `100::/16` space, which no signalling comes from.
fn ip_pseudonym_sql(col: &str) -> String {
    format!("substr({col}, 1, 5) = '100::'")
}

fn optional(col: &str) -> String {
    format!("({col} IS NULL OR {})", pseudonym_sql(col))
}

/// Deletes and anonymises what `policy` says is due at `now_us` (µs UTC), then erases the
/// freed bytes. One transaction: a failure changes nothing.
pub fn apply(
    store: &mut Store,
    now_us: i64,
    policy: &RetentionPolicy,
    dry_run: bool,
) -> Result<RetentionOutcome, StoreError> {
    let path = store.path.clone();
    let err = |source| StoreError::Write {
        path: path.clone(),
        source,
    };
    let delete_cut = cutoff(now_us, policy.window);
    let tx = store
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    let mut out = RetentionOutcome::default();
    let run = |sql: String| -> rusqlite::Result<u64> {
        if dry_run {
            let count = format!("SELECT count(*) FROM {sql}");
            tx.query_row(&count, params![delete_cut], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        } else {
            tx.execute(&format!("DELETE FROM {sql}"), params![delete_cut])
                .map(|n| n as u64)
        }
    };
    out.calls_deleted = run(format!("calls WHERE {OLD_CALLS}")).map_err(err)?;
    out.messages_deleted = run(format!("messages WHERE {OLD_MESSAGES}")).map_err(err)?;
    out.audit_deleted = run("audit WHERE at_us < ?1".into()).map_err(err)?;
    if let Some((after, p)) = &policy.anonymise {
        let cut = cutoff(now_us, *after);
        out.calls_anonymised = anonymise_calls(&tx, cut, p, dry_run).map_err(err)?;
        out.messages_anonymised = anonymise_messages(&tx, cut, p, dry_run).map_err(err)?;
    }
    tx.commit().map_err(err)?;
    if !dry_run && out.changed() > 0 {
        out.erasure = Some(erase_freed(&store.conn, &path)?);
    }
    Ok(out)
}

fn anonymise_calls(
    tx: &Transaction<'_>,
    cut: i64,
    p: &Pseudonymiser,
    dry_run: bool,
) -> rusqlite::Result<u64> {
    let done = [
        pseudonym_sql("caller"),
        pseudonym_sql("callee"),
        optional("caller_name"),
        optional("asserted_identity"),
        ip_pseudonym_sql("src_ip"),
        ip_pseudonym_sql("dst_ip"),
    ]
    .join(" AND ");
    let mut select = tx.prepare(&format!(
        "SELECT id, caller, callee, caller_name, asserted_identity, src_ip, dst_ip
         FROM calls WHERE {OLD_CALLS} AND NOT ({done})"
    ))?;
    let mut update = tx.prepare(
        "UPDATE calls SET caller = ?2, callee = ?3, caller_name = ?4, asserted_identity = ?5,
             src_ip = ?6, dst_ip = ?7
         WHERE id = ?1",
    )?;
    let mut rows = select.query(params![cut])?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        n += 1;
        if dry_run {
            continue;
        }
        let id: i64 = r.get(0)?;
        let caller: String = r.get(1)?;
        let callee: String = r.get(2)?;
        let name: Option<String> = r.get(3)?;
        let pai: Option<String> = r.get(4)?;
        let src: String = r.get(5)?;
        let dst: String = r.get(6)?;
        update.execute(params![
            id,
            p.number(&caller),
            p.number(&callee),
            name.as_deref().map(|v| p.text(v)),
            pai.as_deref().map(|v| p.number(v)),
            p.ip_text(&src).to_string(),
            p.ip_text(&dst).to_string(),
        ])?;
    }
    Ok(n)
}

fn anonymise_messages(
    tx: &Transaction<'_>,
    cut: i64,
    p: &Pseudonymiser,
    dry_run: bool,
) -> rusqlite::Result<u64> {
    let done = [
        pseudonym_sql("sender"),
        pseudonym_sql("recipient"),
        ip_pseudonym_sql("src_ip"),
        ip_pseudonym_sql("dst_ip"),
    ]
    .join(" AND ");
    let mut select = tx.prepare(&format!(
        "SELECT id, sender, recipient, src_ip, dst_ip
         FROM messages WHERE {OLD_MESSAGES} AND NOT ({done})"
    ))?;
    let mut update = tx.prepare(
        "UPDATE messages SET sender = ?2, recipient = ?3, src_ip = ?4, dst_ip = ?5 WHERE id = ?1",
    )?;
    let mut rows = select.query(params![cut])?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        n += 1;
        if dry_run {
            continue;
        }
        let id: i64 = r.get(0)?;
        let sender: String = r.get(1)?;
        let recipient: String = r.get(2)?;
        let src: String = r.get(3)?;
        let dst: String = r.get(4)?;
        update.execute(params![
            id,
            p.number(&sender),
            p.number(&recipient),
            p.ip_text(&src).to_string(),
            p.ip_text(&dst).to_string(),
        ])?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::{is_ip_pseudonym, is_pseudonym, PseudonymKey};
    use crate::store::testutil::*;
    use crate::store::Query;

    const DAY: i64 = 86_400_000_000;
    const NOW: i64 = T0 + 200 * DAY;

    fn days(n: u64) -> Duration {
        Duration::from_secs(n * 86_400)
    }

    /// A call that ended `age` days before NOW.
    fn ended_days_ago(id: &str, age: i64) -> crate::call::Record {
        let start = NOW - age * DAY - 60_000_000;
        rec(call(id, start, "+1 555-0100", "15550199"))
    }

    fn store_with(records: &[crate::call::Record]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("t.db")).expect("open");
        store.write_batch(records).expect("write");
        (dir, store)
    }

    fn ids(store: &Store) -> Vec<String> {
        let mut v: Vec<String> = store
            .calls(&Query::default())
            .expect("calls")
            .into_iter()
            .map(|c| c.call_id)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn records_that_ended_before_the_window_are_deleted_the_others_kept() {
        let (_dir, mut store) = store_with(&[ended_days_ago("old", 91), ended_days_ago("new", 89)]);
        let out = apply(
            &mut store,
            NOW,
            &RetentionPolicy::delete_after(days(90)),
            false,
        )
        .expect("apply");
        assert_eq!(out.calls_deleted, 1);
        assert_eq!(ids(&store), vec!["new"]);
        assert_eq!(out.erasure.map(|e| e.wal_truncated), Some(true));
    }

    #[test]
    fn purged_and_anonymised_bytes_are_gone_from_the_files_while_the_store_stays_open() {
        use crate::store::privacy::tests::dir_contains;
        let p = Pseudonymiser::new(&PseudonymKey::from_bytes([3; 32]), &[]);
        let mut aged = call("aged-61b0@x", NOW - 40 * DAY, "+4930888", "200");
        aged.caller_name = Some("Aged Name".into());
        let (dir, mut store) = store_with(&[ended_days_ago("purged-2c9e@x", 91), rec(aged)]);
        assert!(dir_contains(dir.path(), b"purged-2c9e@x"));
        let out = apply(&mut store, NOW, &anonymising(&p), false).expect("apply");
        assert_eq!((out.calls_deleted, out.calls_anonymised), (1, 1));
        assert!(!dir_contains(dir.path(), b"purged-2c9e@x"));
        assert!(!dir_contains(dir.path(), b"4930888"));
        assert!(!dir_contains(dir.path(), b"Aged Name"));
        assert!(dir_contains(dir.path(), b"aged-61b0@x"));
    }

    #[test]
    fn a_call_that_started_before_the_window_but_ended_inside_it_is_kept() {
        let mut long = call("long", NOW - 91 * DAY, "1", "2");
        long.ended_at = NOW - 89 * DAY;
        long.last_seen_at = long.ended_at;
        let (_dir, mut store) = store_with(&[rec(long)]);
        apply(
            &mut store,
            NOW,
            &RetentionPolicy::delete_after(days(90)),
            false,
        )
        .expect("apply");
        assert_eq!(ids(&store), vec!["long"]);
    }

    #[test]
    fn messages_and_audit_rows_older_than_the_window_are_deleted() {
        let mut m = full_message();
        m.sent_at = NOW - 100 * DAY;
        m.answered_at = Some(m.sent_at + 1);
        let (_dir, mut store) = store_with(&[msg(m)]);
        store
            .conn
            .execute(
                "INSERT INTO audit (at_us, action, subject, records, os_user)
                 VALUES (?1, 'forget', 'h:00', 1, 'x')",
                [NOW - 100 * DAY],
            )
            .expect("audit row");
        let out = apply(
            &mut store,
            NOW,
            &RetentionPolicy::delete_after(days(90)),
            false,
        )
        .expect("apply");
        assert_eq!((out.messages_deleted, out.audit_deleted), (1, 1));
    }

    #[test]
    fn a_dry_run_counts_and_changes_nothing() {
        let (_dir, mut store) = store_with(&[ended_days_ago("old", 91)]);
        let out = apply(
            &mut store,
            NOW,
            &RetentionPolicy::delete_after(days(90)),
            true,
        )
        .expect("apply");
        assert_eq!((out.calls_deleted, out.erasure), (1, None));
        assert_eq!(ids(&store), vec!["old"]);
    }

    fn anonymising(p: &Pseudonymiser) -> RetentionPolicy {
        RetentionPolicy {
            window: days(90),
            anonymise: Some((days(30), p.anonymise())),
        }
    }

    #[test]
    fn anonymise_after_replaces_identifiers_and_keeps_durations_and_dispositions() {
        let p = Pseudonymiser::new(&PseudonymKey::from_bytes([3; 32]), &[]);
        let mut c = full_call();
        c.started_at = NOW - 40 * DAY;
        c.ringing_at = None;
        c.answered_at = Some(c.started_at + 1_000_000);
        c.ended_at = c.started_at + 61_000_000;
        c.last_seen_at = c.ended_at;
        let (_dir, mut store) = store_with(&[rec(c.clone()), ended_days_ago("young", 29)]);
        let out = apply(&mut store, NOW, &anonymising(&p), false).expect("apply");
        assert_eq!(out.calls_anonymised, 1);
        let calls = store.calls(&Query::default()).expect("calls");
        let got = calls.iter().find(|x| x.call_id == c.call_id).expect("kept");
        assert_eq!(got.caller, p.number(&c.caller));
        assert_eq!(got.callee, p.number(&c.callee));
        assert!(is_pseudonym(got.caller_name.as_deref().unwrap_or_default()));
        assert_eq!(
            got.asserted_identity,
            c.asserted_identity.as_deref().map(|v| p.number(v))
        );
        assert!(is_ip_pseudonym(&got.src_ip) && is_ip_pseudonym(&got.dst_ip));
        assert_eq!(
            (
                got.duration_ms(),
                got.billable_ms(),
                got.disposition,
                got.final_status
            ),
            (
                c.duration_ms(),
                c.billable_ms(),
                c.disposition,
                c.final_status
            )
        );
        let young = calls.iter().find(|x| x.call_id == "young").expect("young");
        assert_eq!(young.caller, "+1 555-0100");
    }

    #[test]
    fn anonymising_twice_changes_nothing_the_second_time() {
        let p = Pseudonymiser::new(&PseudonymKey::from_bytes([3; 32]), &[]);
        let (_dir, mut store) = store_with(&[ended_days_ago("a", 40)]);
        apply(&mut store, NOW, &anonymising(&p), false).expect("first");
        let before = store.calls(&Query::default()).expect("calls");
        let out = apply(&mut store, NOW, &anonymising(&p), false).expect("second");
        assert_eq!(out.calls_anonymised, 0);
        assert_eq!(store.calls(&Query::default()).expect("calls"), before);
    }

    #[test]
    fn anonymised_messages_keep_sender_and_recipient_pseudonyms_of_calls() {
        let p = Pseudonymiser::new(&PseudonymKey::from_bytes([3; 32]), &[]);
        let mut m = full_message();
        m.sent_at = NOW - 40 * DAY;
        m.answered_at = None;
        let (_dir, mut store) = store_with(&[msg(m.clone())]);
        let out = apply(&mut store, NOW, &anonymising(&p), false).expect("apply");
        assert_eq!(out.messages_anonymised, 1);
        let got = &store.messages(&Query::default()).expect("messages")[0];
        assert_eq!(got.sender, p.number(&m.sender));
        assert_eq!(got.recipient, p.number(&m.recipient));
        assert_eq!(got.size_bytes, m.size_bytes);
    }
}
