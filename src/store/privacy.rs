//! Subscriber requests against the store: erasure (`forget`), access (`export`), the audit
//! log they write, and the secure erasure of freed pages that deletions share with
//! retention.
//!
//! A subscriber is named by their clear number; rows match it in clear (normalised like
//! number search) or as its pseudonym under the store's key, so requests work whether or
//! not the fields were pseudonymised at write time. The audit row names the subscriber by
//! pseudonym only: the log of erasures must not be a copy of what was erased.
//!
//! Must never: write a clear number into `audit`, leave a deleted record's bytes in a free
//! page, the database file's tail or the -wal (secure_delete, incremental vacuum,
//! TRUNCATE checkpoint), or report an erasure as complete when a reader kept the WAL.

use std::fmt;
use std::path::Path;

use rusqlite::{params, Connection, TransactionBehavior};

use super::{query, Query, Store, StoreError};
use crate::call::{CallRecord, MessageRecord};
use crate::privacy::{normalise_number, Pseudonymiser};

/// The number normalisation of the indexes (schema.rs), for SQL built here.
macro_rules! norm {
    ($col:literal) => {
        concat!("ltrim(replace(replace(", $col, ", ' ', ''), '-', ''), '+')")
    };
}

const CALL_MATCH: &str = concat!(
    norm!("caller"),
    " IN (?1, ?2) OR ",
    norm!("callee"),
    " IN (?1, ?2) OR ",
    norm!("asserted_identity"),
    " IN (?1, ?2)"
);
const MESSAGE_MATCH: &str = concat!(
    norm!("sender"),
    " IN (?1, ?2) OR ",
    norm!("recipient"),
    " IN (?1, ?2)"
);

/// One subscriber: their normalised number and its pseudonym. `Debug` shows only the
/// pseudonym, so the clear number cannot reach a log through it.
#[derive(Clone)]
pub struct Subject {
    clear: String,
    pseudonym: String,
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subject({})", self.pseudonym)
    }
}

impl Subject {
    pub fn new(number: &str, pseudonymiser: &Pseudonymiser) -> Subject {
        Subject {
            clear: normalise_number(number),
            pseudonym: pseudonymiser.number(number),
        }
    }

    /// What the audit log records.
    pub fn pseudonym(&self) -> &str {
        &self.pseudonym
    }
}

/// Who served a request, when, and whether it changed anything.
#[derive(Debug, Clone)]
pub struct Request {
    pub at_us: i64,
    pub os_user: String,
    pub dry_run: bool,
}

/// What a secure erasure did after a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Erasure {
    /// Free pages handed back to the file system (the file shrank by as many pages).
    pub freed_pages: i64,
    /// The -wal was checkpointed and truncated to 0 bytes. False when a reader's open
    /// snapshot kept it: the old page images stay there until the next checkpoint.
    pub wal_truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ForgetOutcome {
    pub calls: u64,
    pub messages: u64,
    /// `None` on a dry run (nothing was deleted).
    pub erasure: Option<Erasure>,
}

/// Everything stored about one subscriber.
#[derive(Debug, Clone, Default)]
pub struct SubjectRecords {
    pub calls: Vec<CallRecord>,
    pub messages: Vec<MessageRecord>,
}

/// One row of the `audit` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at_us: i64,
    /// `forget` or `export`.
    pub action: String,
    /// The subscriber's pseudonym.
    pub subject: String,
    pub records: u64,
    pub os_user: String,
    pub dry_run: bool,
}

fn write_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Write {
        path: path.to_owned(),
        source,
    }
}

fn query_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Query {
        path: path.to_owned(),
        source,
    }
}

fn audit(
    conn: &Connection,
    action: &str,
    subject: &Subject,
    records: u64,
    req: &Request,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO audit (at_us, action, subject, records, os_user, dry_run)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            req.at_us,
            action,
            subject.pseudonym,
            i64::try_from(records).unwrap_or(i64::MAX),
            req.os_user,
            req.dry_run,
        ],
    )?;
    Ok(())
}

/// Hands freed pages back to the file system and empties the WAL.
///
/// With `secure_delete` the deleted cells and freed pages were overwritten with zeros, but
/// only in the new page images (in the -wal); the old images stay in the -wal frames, and
/// free pages in the file, until this runs: `incremental_vacuum` moves live pages down and
/// truncates the file, the TRUNCATE checkpoint writes the zeroed pages into the database
/// and cuts the -wal to 0 bytes.
pub(super) fn erase_freed(conn: &Connection, path: &Path) -> Result<Erasure, StoreError> {
    let err = write_err(path);
    let freed_pages: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .map_err(&err)?;
    // Returns no rows; stepping it to the end frees every page on the freelist.
    conn.execute_batch("PRAGMA incremental_vacuum")
        .map_err(&err)?;
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .map_err(&err)?;
    Ok(Erasure {
        freed_pages,
        wal_truncated: busy == 0,
    })
}

impl Store {
    /// Deletes every call where `subject` is caller, callee or asserted identity and every
    /// message where they are sender or recipient, erases the freed bytes and writes one
    /// audit row, all records or none. A dry run only counts, and audits that it did.
    pub fn forget(
        &mut self,
        subject: &Subject,
        req: &Request,
    ) -> Result<ForgetOutcome, StoreError> {
        let path = self.path.clone();
        let err = write_err(&path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let (calls, messages) = if req.dry_run {
            let count = |table: &str, cond: &str| {
                tx.query_row(
                    &format!("SELECT count(*) FROM {table} WHERE {cond}"),
                    params![subject.clear, subject.pseudonym],
                    |r| r.get::<_, i64>(0),
                )
            };
            (
                count("calls", CALL_MATCH).map_err(&err)?,
                count("messages", MESSAGE_MATCH).map_err(&err)?,
            )
        } else {
            let delete = |table: &str, cond: &str| {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE {cond}"),
                    params![subject.clear, subject.pseudonym],
                )
                .map(|n| n as i64)
            };
            (
                delete("calls", CALL_MATCH).map_err(&err)?,
                delete("messages", MESSAGE_MATCH).map_err(&err)?,
            )
        };
        let (calls, messages) = (calls as u64, messages as u64);
        audit(&tx, "forget", subject, calls + messages, req).map_err(&err)?;
        tx.commit().map_err(&err)?;
        let erasure = if req.dry_run {
            None
        } else {
            Some(erase_freed(&self.conn, &path)?)
        };
        Ok(ForgetOutcome {
            calls,
            messages,
            erasure,
        })
    }

    /// Every record of `subject` (in clear or pseudonymised), ordered by time, and one
    /// audit row saying how many were handed out.
    pub fn export_subject(
        &mut self,
        subject: &Subject,
        req: &Request,
    ) -> Result<SubjectRecords, StoreError> {
        let mut out = SubjectRecords::default();
        for number in [&subject.clear, &subject.pseudonym] {
            let q = Query {
                number: Some(number.clone()),
                ..Query::default()
            };
            out.calls.extend(query::calls(&self.conn, &self.path, &q)?);
            out.messages
                .extend(query::messages(&self.conn, &self.path, &q)?);
        }
        // A row can hold the subscriber in clear in one field and pseudonymised in another
        // (only some fields pseudonymised): it matched twice, hand it out once.
        out.calls.sort_by(|a, b| {
            (a.started_at, &a.call_id, &a.from_tag).cmp(&(b.started_at, &b.call_id, &b.from_tag))
        });
        out.calls.dedup_by(|a, b| {
            (a.started_at, &a.call_id, &a.from_tag) == (b.started_at, &b.call_id, &b.from_tag)
        });
        out.messages
            .sort_by(|a, b| (a.sent_at, &a.call_id, a.cseq).cmp(&(b.sent_at, &b.call_id, b.cseq)));
        out.messages
            .dedup_by(|a, b| (a.sent_at, &a.call_id, a.cseq) == (b.sent_at, &b.call_id, b.cseq));
        let n = (out.calls.len() + out.messages.len()) as u64;
        audit(&self.conn, "export", subject, n, req).map_err(write_err(&self.path))?;
        Ok(out)
    }

    /// Whether any number or address column holds a pseudonym (`h:`…, `100::`…).
    pub fn holds_pseudonyms(&self) -> Result<bool, StoreError> {
        let h = |col: &str| format!("substr({col}, 1, 2) = 'h:'");
        let ip = |col: &str| format!("substr({col}, 1, 5) = '100::'");
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM calls WHERE {} OR {} OR {} OR {} OR {} OR {})
                 OR EXISTS (SELECT 1 FROM messages WHERE {} OR {} OR {} OR {})",
            h("caller"),
            h("callee"),
            h("caller_name"),
            h("asserted_identity"),
            ip("src_ip"),
            ip("dst_ip"),
            h("sender"),
            h("recipient"),
            ip("src_ip"),
            ip("dst_ip"),
        );
        self.conn
            .query_row(&sql, [], |r| r.get(0))
            .map_err(query_err(&self.path))
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let err = query_err(&self.path);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT at_us, action, subject, records, os_user, dry_run FROM audit
                 ORDER BY at_us, id",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AuditEntry {
                    at_us: r.get(0)?,
                    action: r.get(1)?,
                    subject: r.get(2)?,
                    records: r.get::<_, i64>(3)?.max(0) as u64,
                    os_user: r.get(4)?,
                    dry_run: r.get(5)?,
                })
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::privacy::{Field, PseudonymKey};
    use crate::store::testutil::*;

    fn pseudonymiser() -> Pseudonymiser {
        Pseudonymiser::new(&PseudonymKey::from_bytes([7; 32]), &[])
    }

    fn req(dry_run: bool) -> Request {
        Request {
            at_us: T0,
            os_user: "tester".into(),
            dry_run,
        }
    }

    fn store_with(records: &[crate::call::Record]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("t.db")).expect("open");
        store.write_batch(records).expect("write");
        (dir, store)
    }

    #[test]
    fn normalisation_is_the_one_of_number_search() {
        for n in ["+49 30-123", "--+1", " + 5", "4930123", "h:ab"] {
            assert_eq!(normalise_number(n), query::normalise_number(n), "{n}");
        }
    }

    #[test]
    fn forget_deletes_calls_where_the_number_is_callee_or_asserted_identity() {
        let mut a = call("a@x", T0, "100", "+49 30-999");
        a.asserted_identity = None;
        let mut b = call("b@x", T0 + 1, "101", "102");
        b.asserted_identity = Some("4930999".into());
        let c = call("c@x", T0 + 2, "103", "104");
        let (_dir, mut store) = store_with(&[rec(a), rec(b), rec(c)]);
        let subject = Subject::new("+4930999", &pseudonymiser());
        let out = store.forget(&subject, &req(false)).expect("forget");
        assert_eq!((out.calls, out.messages), (2, 0));
        let left = store.calls(&Query::default()).expect("calls");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].call_id, "c@x");
    }

    /// Whether any file in `dir` holds `needle`, byte for byte.
    pub(crate) fn dir_contains(dir: &Path, needle: &[u8]) -> bool {
        std::fs::read_dir(dir).expect("read_dir").any(|e| {
            let bytes = std::fs::read(e.expect("entry").path()).expect("read");
            bytes.windows(needle.len()).any(|w| w == needle)
        })
    }

    #[test]
    fn forget_leaves_no_byte_of_the_records_in_the_files_while_the_store_stays_open() {
        // The daemon never closes its store: the erasure must not wait for the close.
        let (dir, mut store) = store_with(&[
            rec(call("gone-4d1f@x", T0, "+4930777", "200")),
            rec(call("kept-8e2a@x", T0 + 1, "300", "400")),
        ]);
        assert!(dir_contains(dir.path(), b"gone-4d1f@x"));
        let out = store
            .forget(&Subject::new("4930777", &pseudonymiser()), &req(false))
            .expect("forget");
        assert_eq!(out.erasure.map(|e| e.wal_truncated), Some(true));
        assert!(!dir_contains(dir.path(), b"gone-4d1f@x"));
        assert!(!dir_contains(dir.path(), b"4930777"));
        assert!(dir_contains(dir.path(), b"kept-8e2a@x"));
    }

    #[test]
    fn a_reader_holding_the_wal_is_reported_as_an_incomplete_erasure() {
        let (dir, mut store) = store_with(&[rec(call("a@x", T0, "100", "200"))]);
        let reader = Store::open_read_only(&dir.path().join("t.db")).expect("reader");
        let tx = reader.conn.unchecked_transaction().expect("read tx");
        let _snapshot: i64 = tx
            .query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
            .expect("read");
        let out = store
            .forget(&Subject::new("100", &pseudonymiser()), &req(false))
            .expect("forget");
        assert_eq!(out.erasure.map(|e| e.wal_truncated), Some(false));
    }

    #[test]
    fn forget_matches_pseudonymised_rows_by_the_clear_number() {
        let p = pseudonymiser();
        let store_p = Pseudonymiser::new(&PseudonymKey::from_bytes([7; 32]), &[Field::Caller]);
        let (_dir, mut store) = store_with(&[]);
        store.set_pseudonymiser(Some(store_p));
        store
            .write_batch(&[rec(call("a@x", T0, "+1 555-0100", "200"))])
            .expect("write");
        let stored = store.calls(&Query::default()).expect("calls");
        assert_eq!(stored[0].caller, p.number("15550100"));
        let out = store
            .forget(&Subject::new("15550100", &p), &req(false))
            .expect("forget");
        assert_eq!(out.calls, 1);
    }

    #[test]
    fn a_dry_run_counts_deletes_nothing_and_is_audited_as_such() {
        let (_dir, mut store) = store_with(&[rec(call("a@x", T0, "100", "200"))]);
        let subject = Subject::new("100", &pseudonymiser());
        let out = store.forget(&subject, &req(true)).expect("forget");
        assert_eq!((out.calls, out.erasure), (1, None));
        assert_eq!(store.calls(&Query::default()).expect("calls").len(), 1);
        let log = store.audit_log().expect("audit");
        assert_eq!(log.len(), 1);
        assert!(log[0].dry_run);
    }

    #[test]
    fn the_audit_row_names_the_pseudonym_never_the_number() {
        let (_dir, mut store) = store_with(&[msg(full_message())]);
        let p = pseudonymiser();
        let subject = Subject::new("+1 555-0100", &p);
        let out = store.forget(&subject, &req(false)).expect("forget");
        assert_eq!(out.messages, 1);
        assert_eq!(
            store.audit_log().expect("audit"),
            vec![AuditEntry {
                at_us: T0,
                action: "forget".into(),
                subject: p.number("15550100"),
                records: 1,
                os_user: "tester".into(),
                dry_run: false,
            }]
        );
        assert!(!format!("{subject:?}").contains("15550100"));
    }

    #[test]
    fn export_returns_every_record_of_the_subject_once_and_is_audited() {
        let p = pseudonymiser();
        // Caller in clear, callee as the pseudonym of the same number: matched twice.
        let both = call("a@x", T0, "100", &p.number("100"));
        let other = call("b@x", T0 + 1, "300", "400");
        let (_dir, mut store) = store_with(&[rec(both), rec(other), msg(full_message())]);
        let got = store
            .export_subject(&Subject::new("100", &p), &req(false))
            .expect("export");
        assert_eq!(got.calls.len(), 1);
        assert_eq!(got.messages.len(), 0);
        let log = store.audit_log().expect("audit");
        assert_eq!((log[0].action.as_str(), log[0].records), ("export", 1));
    }
}
