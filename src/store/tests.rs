//! The store against real SQLite files in temporary directories.

use std::path::PathBuf;

use tempfile::TempDir;

use super::testutil::*;
use super::*;
use crate::call::{Disposition, EndedBy, TimeoutReason};

fn temp_db() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("callmeta.db");
    (dir, path)
}

fn pragma_text(store: &Store, name: &str) -> String {
    store
        .conn()
        .pragma_query_value(None, name, |r| r.get::<_, rusqlite::types::Value>(0))
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .expect("pragma")
}

fn count(store: &Store, table: &str) -> i64 {
    store
        .conn()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

#[test]
fn open_creates_schema_with_version_and_pragmas() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).expect("open");
    assert_eq!(
        pragma_text(&store, "user_version"),
        SCHEMA_VERSION.to_string()
    );
    assert_eq!(SCHEMA_VERSION, 3);
    assert_eq!(pragma_text(&store, "journal_mode"), "wal");
    assert_eq!(pragma_text(&store, "synchronous"), "1"); // NORMAL
    assert_eq!(pragma_text(&store, "secure_delete"), "1");
    assert_eq!(pragma_text(&store, "auto_vacuum"), "2"); // INCREMENTAL
    assert_eq!(
        pragma_text(&store, "application_id"),
        0x434D_4554.to_string()
    );
    assert_eq!(count(&store, "calls"), 0);
    assert_eq!(count(&store, "messages"), 0);
}

#[test]
fn reopening_keeps_pragmas_and_data() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    store.write_batch(&[rec(full_call())]).expect("write");
    drop(store);
    let store = Store::open(&path).expect("reopen");
    assert_eq!(pragma_text(&store, "auto_vacuum"), "2");
    assert_eq!(pragma_text(&store, "secure_delete"), "1");
    assert_eq!(
        store.calls(&Query::default()).expect("calls"),
        vec![full_call()]
    );
}

#[test]
fn new_db_file_is_mode_0640_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = temp_db();
    // umask is process-wide and tests run in parallel: rely on the explicit chmod instead
    // of changing it, and check the exact mode (0o644 would mean the umask leaked).
    drop(Store::open(&path).expect("open"));
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
}

#[test]
fn open_creates_no_directory() {
    let (dir, _) = temp_db();
    let path = dir.path().join("missing-dir").join("callmeta.db");
    let err = Store::open(&path).expect_err("must fail");
    assert!(matches!(err, StoreError::Create { .. }), "{err}");
    assert!(err.to_string().contains("missing-dir"), "{err}");
    assert!(!dir.path().join("missing-dir").exists());
}

#[test]
fn full_call_reads_back_equal_field_by_field() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    store.write_batch(&[rec(full_call())]).expect("write");
    let got = store.calls(&Query::default()).expect("calls");
    assert_eq!(got, vec![full_call()]);
    // And the derived columns are the record's own.
    let (d, b): (i64, i64) = store
        .conn()
        .query_row("SELECT duration_ms, billable_ms FROM calls", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("row");
    assert_eq!(
        (d, b),
        (full_call().duration_ms(), full_call().billable_ms())
    );
}

#[test]
fn call_with_every_option_none_reads_back_equal() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    store.write_batch(&[rec(bare_call())]).expect("write");
    assert_eq!(
        store.calls(&Query::default()).expect("calls"),
        vec![bare_call()]
    );
}

#[test]
fn messages_read_back_equal_with_and_without_options() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    store
        .write_batch(&[msg(full_message()), msg(bare_message())])
        .expect("write");
    assert_eq!(
        store.messages(&Query::default()).expect("messages"),
        vec![full_message(), bare_message()]
    );
}

#[test]
fn writing_the_same_batch_twice_leaves_one_row_each() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    let batch = [rec(full_call()), rec(bare_call()), msg(full_message())];
    store.write_batch(&batch).expect("first");
    store.write_batch(&batch).expect("second");
    assert_eq!(count(&store, "calls"), 2);
    assert_eq!(count(&store, "messages"), 1);
}

#[test]
fn upsert_replaces_an_earlier_less_complete_version() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    // The first file ended with the call still ringing...
    let early = CallRecord {
        answered_at: None,
        ended_at: T0 + 2_000_000,
        last_seen_at: T0 + 2_000_000,
        disposition: Disposition::Failed,
        final_status: None,
        ended_by: EndedBy::Timeout,
        timeout_reason: Some(TimeoutReason::CaptureEnd),
        hangup_side: None,
        ..full_call()
    };
    store.write_batch(&[rec(early.clone())]).expect("early");
    // ...the next file saw it answered and hung up.
    store.write_batch(&[rec(full_call())]).expect("complete");
    assert_eq!(
        store.calls(&Query::default()).expect("calls"),
        vec![full_call()]
    );
    // Ingesting the first file again does not undo it.
    store.write_batch(&[rec(early)]).expect("early again");
    assert_eq!(
        store.calls(&Query::default()).expect("calls"),
        vec![full_call()]
    );
}

#[test]
fn message_upsert_keeps_the_answered_version() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    let unanswered = MessageRecord {
        answered_at: None,
        final_status: None,
        ..full_message()
    };
    store.write_batch(&[msg(unanswered.clone())]).expect("1");
    store.write_batch(&[msg(full_message())]).expect("2");
    store.write_batch(&[msg(unanswered)]).expect("3");
    assert_eq!(
        store.messages(&Query::default()).expect("messages"),
        vec![full_message()]
    );
}

#[test]
fn same_call_id_and_tag_at_a_new_start_is_a_new_record() {
    // CALL_MODEL: Call-ID reuse after the end starts a new record.
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    let later = CallRecord {
        started_at: T0 + 3_600_000_000,
        ended_at: T0 + 3_601_000_000,
        last_seen_at: T0 + 3_601_000_000,
        ..bare_call()
    };
    store
        .write_batch(&[rec(bare_call()), rec(later.clone())])
        .expect("write");
    assert_eq!(
        store.calls(&Query::default()).expect("calls"),
        vec![bare_call(), later]
    );
}

#[test]
fn since_and_until_select_a_half_open_range_in_start_order() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    let (a, b, c) = (
        call("a", T0, "1", "2"),
        call("b", T0 + 10, "1", "2"),
        call("c", T0 + 20, "1", "2"),
    );
    // Written out of order: results come back by started_at.
    store
        .write_batch(&[rec(c.clone()), rec(a.clone()), rec(b.clone())])
        .expect("write");
    let q = |since, until| Query {
        since_us: since,
        until_us: until,
        number: None,
    };
    let ids = |q: Query| -> Vec<String> {
        store
            .calls(&q)
            .expect("calls")
            .into_iter()
            .map(|c| c.call_id)
            .collect()
    };
    assert_eq!(ids(q(None, None)), ["a", "b", "c"]);
    assert_eq!(ids(q(Some(T0 + 10), None)), ["b", "c"]);
    assert_eq!(ids(q(None, Some(T0 + 20))), ["a", "b"]);
    assert_eq!(ids(q(Some(T0 + 10), Some(T0 + 20))), ["b"]);
    assert_eq!(ids(q(Some(T0 + 21), None)), Vec::<String>::new());
}

#[test]
fn number_matches_caller_callee_or_pai_ignoring_plus_spaces_and_dashes() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    let by_caller = call("caller", T0, "+49 30-123", "999");
    let by_callee = call("callee", T0 + 1, "888", "4930123");
    let by_pai = CallRecord {
        asserted_identity: Some("+4930-123".into()),
        ..call("pai", T0 + 2, "777", "666")
    };
    let other = call("other", T0 + 3, "493012", "49301234");
    store
        .write_batch(&[rec(by_caller), rec(by_callee), rec(by_pai), rec(other)])
        .expect("write");
    for number in ["+4930123", "49 30 123", "+49-30-123", "4930123"] {
        let q = Query {
            number: Some(number.into()),
            ..Query::default()
        };
        let ids: Vec<String> = store
            .calls(&q)
            .expect("calls")
            .into_iter()
            .map(|c| c.call_id)
            .collect();
        assert_eq!(ids, ["caller", "callee", "pai"], "searching {number:?}");
    }
}

#[test]
fn number_search_combines_with_time_range_and_uses_the_indexes() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    store
        .write_batch(&[
            rec(call("early", T0, "100", "200")),
            rec(call("late", T0 + 100, "100", "200")),
        ])
        .expect("write");
    let q = Query {
        since_us: Some(T0 + 50),
        until_us: None,
        number: Some("+100".into()),
    };
    let got = store.calls(&q).expect("calls");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].call_id, "late");

    // The query's normalisation must be the indexes' expression exactly, or SQLite scans.
    let (sql, _) = query::call_sql(&Query {
        number: Some("1".into()),
        ..Query::default()
    });
    let plan: Vec<String> = {
        let mut stmt = store
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        stmt.query_map(["1"], |r| r.get::<_, String>(3))
            .expect("plan rows")
            .collect::<Result<_, _>>()
            .expect("plan text")
    };
    let plan = plan.join("\n");
    for index in ["calls_caller", "calls_callee", "calls_asserted_identity"] {
        assert!(plan.contains(index), "{index} not used:\n{plan}");
    }
    let (sql, _) = query::message_sql(&Query {
        number: Some("1".into()),
        ..Query::default()
    });
    let mut stmt = store
        .conn()
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("plan");
    let plan: Vec<String> = stmt
        .query_map(["1"], |r| r.get::<_, String>(3))
        .expect("plan rows")
        .collect::<Result<_, _>>()
        .expect("plan text");
    let plan = plan.join("\n");
    for index in ["messages_sender", "messages_recipient"] {
        assert!(plan.contains(index), "{index} not used:\n{plan}");
    }
}

#[test]
fn message_filters_use_sent_at_sender_and_recipient() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    let to_me = MessageRecord {
        recipient: "+1-555-0100".into(),
        sender: "42".into(),
        ..bare_message()
    };
    // full_message: sender "+1 555-0100", sent at T0 + 7; to_me sent at T0 + 8.
    store
        .write_batch(&[msg(full_message()), msg(to_me.clone())])
        .expect("write");
    let q = Query {
        number: Some("15550100".into()),
        ..Query::default()
    };
    assert_eq!(store.messages(&q).expect("m").len(), 2);
    let q = Query {
        since_us: Some(T0 + 8),
        ..q
    };
    assert_eq!(store.messages(&q).expect("m"), vec![to_me]);
}

#[test]
fn a_row_that_does_not_decode_is_an_error_naming_the_column() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    store.write_batch(&[rec(full_call())]).expect("write");
    store
        .conn()
        .execute("UPDATE calls SET src_ip = 'not-an-ip'", [])
        .expect("corrupt");
    let err = store.calls(&Query::default()).expect_err("must fail");
    match &err {
        StoreError::Corrupt {
            table,
            column,
            value,
            ..
        } => {
            assert_eq!((*table, *column), ("calls", "src_ip"));
            assert_eq!(value, "'not-an-ip'");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    // An integer out of its field's range (a port of 70000) too.
    store
        .conn()
        .execute(
            "UPDATE calls SET src_ip = '192.0.2.1', dst_port = 70000",
            [],
        )
        .expect("corrupt");
    let err = store.calls(&Query::default()).expect_err("must fail");
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                column: "dst_port",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("dst_port"), "{err}");
}

#[test]
fn bad_enum_text_is_an_error_naming_the_column() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    store.write_batch(&[rec(full_call())]).expect("write");
    // The CHECK constraints keep bad names out; a store edited by hand may still have them.
    store
        .conn()
        .execute_batch(
            "PRAGMA ignore_check_constraints = ON;
             UPDATE calls SET disposition = 'hung';",
        )
        .expect("corrupt");
    let err = store.calls(&Query::default()).expect_err("must fail");
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                column: "disposition",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn check_constraints_refuse_unknown_enum_names() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    store.write_batch(&[rec(full_call())]).expect("write");
    let r = store
        .conn()
        .execute("UPDATE calls SET transport = 'carrier-pigeon'", []);
    assert!(r.is_err());
}

#[test]
fn a_db_from_a_newer_schema_is_refused_and_left_untouched() {
    let (_dir, path) = temp_db();
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        conn.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
            .expect("future db");
    }
    for err in [
        Store::open(&path).expect_err("open must fail"),
        Store::open_read_only(&path).expect_err("read-only must fail"),
    ] {
        assert!(
            matches!(
                err,
                StoreError::TooNew {
                    found: 99,
                    supported: SCHEMA_VERSION,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("callmeta.db"), "{err}");
    }
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(
        mode, "delete",
        "a refused store must not even be switched to WAL"
    );
}

#[test]
fn a_foreign_sqlite_db_is_refused() {
    let (_dir, path) = temp_db();
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        conn.execute_batch("CREATE TABLE invoices (x);")
            .expect("db");
    }
    let err = Store::open(&path).expect_err("must fail");
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
}

#[test]
fn a_file_that_is_not_sqlite_is_an_open_error_naming_the_path() {
    let (_dir, path) = temp_db();
    std::fs::write(
        &path,
        b"this is a text file, not a database, padded to be long enough",
    )
    .expect("write");
    let err = Store::open(&path).expect_err("must fail");
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.to_string().contains("callmeta.db"), "{err}");
}

#[test]
fn reading_a_missing_db_is_a_clear_error_and_creates_nothing() {
    let (dir, path) = temp_db();
    let err = Store::open_read_only(&path).expect_err("must fail");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("callmeta.db"), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
    assert!(left.is_empty(), "created {left:?}");
}

#[test]
fn reading_an_unmigrated_file_asks_for_migration() {
    let (_dir, path) = temp_db();
    std::fs::File::create(&path).expect("empty file");
    let err = Store::open_read_only(&path).expect_err("must fail");
    assert!(
        matches!(err, StoreError::NeedsMigration { found: 0, .. }),
        "{err}"
    );
}

#[test]
fn read_only_store_refuses_writes() {
    let (_dir, path) = temp_db();
    drop(Store::open(&path).expect("create"));
    let mut ro = Store::open_read_only(&path).expect("read-only");
    let err = ro.write_batch(&[rec(full_call())]).expect_err("must fail");
    assert!(matches!(err, StoreError::Write { .. }), "{err}");
}

#[test]
fn read_only_reader_reads_while_the_writer_holds_the_db() {
    let (_dir, path) = temp_db();
    let mut writer = Store::open(&path).expect("writer");
    writer.write_batch(&[rec(full_call())]).expect("first");
    let reader = Store::open_read_only(&path).expect("reader while writer open");
    assert_eq!(
        reader.calls(&Query::default()).expect("read"),
        vec![full_call()]
    );
    // The writer keeps committing; the reader sees each commit on its next query.
    writer.write_batch(&[rec(bare_call())]).expect("second");
    assert_eq!(reader.calls(&Query::default()).expect("read").len(), 2);
    // The writer goes away: reads go on.
    drop(writer);
    assert_eq!(reader.calls(&Query::default()).expect("read").len(), 2);
}

#[test]
fn writer_leaves_an_empty_wal_and_the_shm_for_readers_when_it_closes() {
    // A group reader cannot create the -shm in the daemon's directory (docs/schema.md).
    let (_dir, path) = temp_db();
    let mut writer = Store::open(&path).expect("writer");
    writer.write_batch(&[rec(full_call())]).expect("write");
    let wal = path.with_extension("db-wal");
    assert!(std::fs::metadata(&wal).expect("wal").len() > 0);
    drop(writer);
    assert_eq!(std::fs::metadata(&wal).expect("wal kept").len(), 0);
    assert!(path.with_extension("db-shm").exists(), "shm kept");
    // Nothing was lost by the truncation: the data is in the main file.
    let reader = Store::open_read_only(&path).expect("reader");
    assert_eq!(
        reader.calls(&Query::default()).expect("read"),
        vec![full_call()]
    );
}

#[test]
fn read_only_reader_opens_after_the_writer_closed() {
    let (_dir, path) = temp_db();
    let mut writer = Store::open(&path).expect("writer");
    writer.write_batch(&[rec(full_call())]).expect("write");
    drop(writer);
    let reader = Store::open_read_only(&path).expect("reader");
    assert_eq!(
        reader.calls(&Query::default()).expect("read"),
        vec![full_call()]
    );
}

#[test]
fn cdr_view_shows_readable_utc_timestamps() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    let before_1970 = call("old", -1_500_000, "1", "2"); // 1969-12-31T23:59:58.500000Z
    store
        .write_batch(&[rec(full_call()), rec(before_1970), msg(full_message())])
        .expect("write");
    type CdrRow = (String, String, Option<String>, Option<String>, String, i64);
    let rows: Vec<CdrRow> = {
        let mut stmt = store
            .conn()
            .prepare(
                "SELECT call_id, started_at, ringing_at, answered_at, ended_at, billable_ms
                 FROM cdr ORDER BY started_at_us",
            )
            .expect("cdr");
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("decode")
    };
    let c = full_call();
    assert_eq!(
        rows,
        vec![
            (
                "old".to_owned(),
                "1969-12-31T23:59:58.500000Z".to_owned(),
                None,
                None,
                "1969-12-31T23:59:59.500000Z".to_owned(),
                0
            ),
            (
                c.call_id.clone(),
                "2026-11-29T14:43:16.123456Z".to_owned(),
                Some(crate::time::format_us(c.ringing_at.unwrap_or_default())),
                Some(crate::time::format_us(c.answered_at.unwrap_or_default())),
                crate::time::format_us(c.ended_at),
                c.billable_ms()
            ),
        ]
    );
    let sent: String = store
        .conn()
        .query_row("SELECT sent_at FROM message_cdr", [], |r| r.get(0))
        .expect("message_cdr");
    assert_eq!(sent, crate::time::format_us(full_message().sent_at));
}
