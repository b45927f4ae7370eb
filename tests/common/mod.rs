//! Helpers for the end-to-end tests: run the built `callmeta` binary on captures, read its
//! JSON-lines exports back, and compare records field by field.
//!
//! Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod live;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

/// Every field of a call record, as named in CALL_MODEL.md (and the JSON export).
pub const CALL_FIELDS: &[&str] = &[
    "call_id",
    "started_at",
    "ringing_at",
    "answered_at",
    "ended_at",
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

/// Every field of a text-message record.
pub const MESSAGE_FIELDS: &[&str] = &[
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

/// Absolute path of a capture under tests/data/sipp/, as the string given to `ingest` (and
/// therefore the expected `source`).
pub fn sipp_capture(name: &str) -> String {
    format!("{}/tests/data/sipp/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Absolute path of the Quick-start sample capture.
pub fn sample_capture() -> String {
    format!("{}/samples/calls.pcap", env!("CARGO_MANIFEST_DIR"))
}

/// A store in its own temporary directory, removed when dropped.
pub struct Db {
    dir: TempDir,
}

impl Db {
    pub fn new() -> Db {
        Db {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("t.db")
    }

    /// `callmeta ingest --db <db> <captures...>`; panics with the binary's output on failure.
    pub fn ingest(&self, captures: &[&str]) {
        let db = self.path();
        // The captures are dated; a long window keeps them from the retention purge
        // that ends every ingest.
        let mut args = vec!["ingest", "--db", path_str(&db), "--retention", "36500d"];
        args.extend_from_slice(captures);
        run(&args);
    }

    /// `callmeta calls --db <db> --format jsonl`, one JSON object per line.
    pub fn calls(&self) -> Vec<Value> {
        jsonl(&run(&[
            "calls",
            "--db",
            path_str(&self.path()),
            "--format",
            "jsonl",
        ]))
    }

    /// `callmeta messages --db <db> --format jsonl`, one JSON object per line.
    pub fn messages(&self) -> Vec<Value> {
        jsonl(&run(&[
            "messages",
            "--db",
            path_str(&self.path()),
            "--format",
            "jsonl",
        ]))
    }
}

/// A fresh store with `captures` ingested in one run.
pub fn ingest(captures: &[&str]) -> Db {
    let db = Db::new();
    db.ingest(captures);
    db
}

/// The store's only call record; fails (showing them all) when there is not exactly one.
pub fn only_call(db: &Db) -> Value {
    let calls = db.calls();
    assert_eq!(
        calls.len(),
        1,
        "expected exactly one call record: {calls:#?}"
    );
    calls.into_iter().next().unwrap()
}

/// The record whose `call_id` is `call_id`; fails when there is none or more than one.
pub fn by_call_id<'a>(records: &'a [Value], call_id: &str) -> &'a Value {
    let found: Vec<&Value> = records.iter().filter(|r| r["call_id"] == call_id).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one record with call_id {call_id}: {records:#?}"
    );
    found[0]
}

/// Asserts a call record field by field. `expected` must list every field of CALL_FIELDS
/// (so a golden record cannot silently skip one); the first difference fails naming the field.
pub fn assert_call(actual: &Value, expected: &[(&str, Value)]) {
    assert_fields("call", CALL_FIELDS, actual, expected);
}

/// Asserts a text-message record field by field, like `assert_call`.
pub fn assert_message(actual: &Value, expected: &[(&str, Value)]) {
    assert_fields("message", MESSAGE_FIELDS, actual, expected);
}

fn assert_fields(kind: &str, all: &[&str], actual: &Value, expected: &[(&str, Value)]) {
    let listed: Vec<&str> = expected.iter().map(|(name, _)| *name).collect();
    for name in all {
        assert!(
            listed.contains(name),
            "test bug: the expected {kind} record does not list `{name}`"
        );
    }
    for name in &listed {
        assert!(
            all.contains(name),
            "test bug: `{name}` is not a {kind} record field"
        );
    }
    let object = actual
        .as_object()
        .unwrap_or_else(|| panic!("a {kind} record is not a JSON object: {actual}"));
    for (name, want) in expected {
        let got = object
            .get(*name)
            .unwrap_or_else(|| panic!("{kind} record has no field `{name}`: {actual:#}"));
        assert_eq!(
            got, want,
            "{kind} record field `{name}`: got {got}, want {want}\nrecord: {actual:#}"
        );
    }
}

/// Runs the binary, returns its stdout; panics with status, stdout and stderr on failure.
pub fn run(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_callmeta"))
        .args(args)
        .output()
        .expect("start the callmeta binary");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "callmeta {} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Parses JSON lines (blank lines ignored); panics naming the line that is not JSON.
pub fn jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"))
        })
        .collect()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}
