//! Privacy by construction, proved on bytes: what must never be kept is looked for in every
//! byte of the store's files (database, -wal, -shm, key), of everything callmeta printed,
//! and of its exports.
//!
//! - Canaries: tests/data/privacy/canary.pcap (recorded by record.sh beside it) carries
//!   unique strings in a MESSAGE body, SDP lines other than rtpmap, RTP and RTCP payloads
//!   and malformed SIP. None may come out anywhere.
//! - Retention, `forget`: deleted records' Call-IDs and numbers are gone from the files.
//! - Pseudonymisation: stable under one key, different under another, and `forget` /
//!   `export` still take the clear number.
//!
//! Adding an input path or a command to the canary proof is one call: run it into the same
//! [`Evidence`] (e.g. `callmeta run` on the capture, a PBX log through ingest) and
//! `assert_no_canary` covers it.

mod common;
#[path = "data/logs/generate.rs"]
mod generate;

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use callmeta::call::{CallRecord, Disposition, EndedBy, MessageRecord, Record, Side};
use callmeta::net::Transport;
use callmeta::privacy::{is_pseudonym, PseudonymKey, Pseudonymiser};
use callmeta::store::Store;
use common::{jsonl, sipp_capture};
use serde_json::Value;

/// Every canary of canary.pcap, as record.sh wrote them.
const CANARIES: &[&str] = &[
    // The MESSAGE body.
    "CNRY-MSGBODY-8c41f0",
    // SDP of the offer: origin user, session name and information, connection address,
    // attributes other than rtpmap.
    "cnry-sdporigin-4a9b3d",
    "CNRY-SDPSESSION-71fd2c",
    "CNRY-SDPINFO-c5e812",
    "198.51.100.173",
    "CNRY-SDPATTR-2b7e95",
    "CNRY-SDPCRYPTO-9d04b1",
    // SDP of the answer.
    "cnry-answerorigin-6e21f7",
    "CNRY-ANSWERSESSION-0b93d5",
    "CNRY-SDPANSWER-e03a61",
    // Media on the ports the SDP announced.
    "CNRY-RTP-PAYLOAD-5f0d18",
    "CNRY-RTCP-CNAME-93c2aa",
    // Malformed SIP: a header without a colon, a bad status line, a MESSAGE without
    // Call-ID, a MESSAGE whose body is cut short, and a non-SIP payload on port 5060.
    "CNRY-MALFORMED-HEADER-0e6b47",
    "CNRY-MALFORMED-REASON-a17c30",
    "CNRY-NOCALLID-BODY-d4e9a2",
    "CNRY-TRUNCATED-BODY-38f5c1",
    "CNRY-NOTSIP-6a0e77",
];

/// The canary capture's subscriber: caller of its call and sender of its messages.
const CANARY_CALLER: &str = "+1 555-777-0001";
const CANARY_CALL_IDS: &[&str] = &[
    "canary-call-1@pbx.example.com",
    "canary-message-1@pbx.example.com",
    "truncated-message-1@pbx.example.com",
];

fn canary_capture() -> String {
    format!(
        "{}/tests/data/privacy/canary.pcap",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A retention window long enough that the recorded captures are never purged by the
/// `ingest` that stores them, whenever the tests run.
const KEEP: &str = "36500d";

// ---------------------------------------------------------------------------------------
// Helpers

/// Runs the binary with logging at debug level (`RUST_LOG`, `CALLMETA_LOG`: whichever the
/// logging picks up), returns its whole output.
fn callmeta(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callmeta"))
        .args(args)
        .env("RUST_LOG", "debug")
        .env("CALLMETA_LOG", "debug")
        .output()
        .expect("start the callmeta binary")
}

fn succeed(args: &[&str]) -> Output {
    let out = callmeta(args);
    assert!(
        out.status.success(),
        "callmeta {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// A store directory (0700, as tempfile makes it) with the store `t.db` and its key.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        Site {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    fn db(&self) -> PathBuf {
        self.dir.path().join("t.db")
    }
    fn key(&self) -> PathBuf {
        self.dir.path().join("pseudonym.key")
    }
    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Everything callmeta left behind: files (directories are read recursively) and the
/// output of each run. `assert_no_canary` greps all of it, byte for byte.
#[derive(Default)]
struct Evidence {
    paths: Vec<PathBuf>,
    outputs: Vec<(String, Vec<u8>)>,
}

impl Evidence {
    fn path(&mut self, p: &Path) -> &mut Self {
        self.paths.push(p.to_owned());
        self
    }

    /// Runs callmeta (it must succeed) and keeps its stdout and stderr.
    fn run(&mut self, args: &[&str]) -> Output {
        let out = succeed(args);
        self.outputs
            .push((format!("stdout of {}", args.join(" ")), out.stdout.clone()));
        self.outputs
            .push((format!("stderr of {}", args.join(" ")), out.stderr.clone()));
        out
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut todo = self.paths.clone();
        while let Some(p) = todo.pop() {
            if p.is_dir() {
                for e in std::fs::read_dir(&p).expect("read_dir") {
                    todo.push(e.expect("dir entry").path());
                }
            } else if p.is_file() {
                // Sockets (the fake notify socket) hold no bytes to search.
                out.push(p);
            }
        }
        out.sort();
        out
    }

    /// Every (name, bytes) there is to search.
    fn haystacks(&self) -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<(String, Vec<u8>)> = self
            .files()
            .into_iter()
            .map(|f| {
                let bytes = std::fs::read(&f).expect("read evidence file");
                (f.display().to_string(), bytes)
            })
            .collect();
        all.extend(self.outputs.iter().cloned());
        all
    }

    /// Fails naming each needle found and where.
    fn assert_absent(&self, needles: &[&[u8]]) {
        let mut found = Vec::new();
        for (name, bytes) in self.haystacks() {
            for needle in needles {
                if contains(&bytes, needle) {
                    found.push(format!("`{}` in {name}", String::from_utf8_lossy(needle)));
                }
            }
        }
        assert!(
            found.is_empty(),
            "found what must be gone:\n{}",
            found.join("\n")
        );
    }

    fn assert_present(&self, needle: &[u8]) {
        assert!(
            self.haystacks().iter().any(|(_, b)| contains(b, needle)),
            "control `{}` not found: the search would prove nothing",
            String::from_utf8_lossy(needle)
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The proof of item 1: no canary in any byte of the store's files, the exports or
/// anything printed.
fn assert_no_canary(evidence: &Evidence, canaries: &[&str]) {
    let needles: Vec<&[u8]> = canaries.iter().map(|c| c.as_bytes()).collect();
    evidence.assert_absent(&needles);
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as i64
}

const DAY_US: i64 = 86_400_000_000;

/// An answered call that ended `age_days` ago, with its own Call-ID and numbers.
fn call_ended_days_ago(call_id: &str, caller: &str, age_days: i64) -> CallRecord {
    let ended = now_us() - age_days * DAY_US;
    let start = ended - 65_000_000;
    CallRecord {
        call_id: call_id.into(),
        from_tag: "ft".into(),
        started_at: start,
        ringing_at: Some(start + 300_000),
        answered_at: Some(start + 5_000_000),
        ended_at: ended,
        last_seen_at: ended,
        pdd_ms: Some(300),
        disposition: Disposition::Answered,
        final_status: Some(200),
        ended_by: EndedBy::Bye,
        timeout_reason: None,
        hangup_side: Some(Side::Caller),
        reason_cause: None,
        caller: caller.into(),
        caller_domain: "pbx.example".into(),
        caller_name: Some(format!("Name of {caller}")),
        callee: "4930999".into(),
        callee_domain: "carrier.example".into(),
        asserted_identity: None,
        src_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        src_port: 5060,
        dst_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        dst_port: 5060,
        transport: Transport::Udp,
        user_agent: None,
        server: None,
        codecs: Some("PCMA".into()),
        source: "eth0".into(),
    }
}

fn message_sent_days_ago(call_id: &str, sender: &str, age_days: i64) -> MessageRecord {
    let sent = now_us() - age_days * DAY_US;
    MessageRecord {
        call_id: call_id.into(),
        cseq: 1,
        sent_at: sent,
        answered_at: Some(sent + 20_000),
        final_status: Some(200),
        sender: sender.into(),
        sender_domain: "pbx.example".into(),
        recipient: "4930999".into(),
        recipient_domain: "carrier.example".into(),
        content_type: Some("text/plain".into()),
        size_bytes: 42,
        src_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        src_port: 5060,
        dst_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        dst_port: 5060,
        transport: Transport::Udp,
        source: "eth0".into(),
    }
}

fn write_records(db: &Path, records: Vec<Record>) {
    let mut store = Store::open(db).expect("open store");
    store.write_batch(&records).expect("write records");
}

fn calls(db: &Path) -> Vec<Value> {
    jsonl(&String::from_utf8_lossy(
        &succeed(&["calls", "--db", s(db), "--format", "jsonl"]).stdout,
    ))
}

fn messages(db: &Path) -> Vec<Value> {
    jsonl(&String::from_utf8_lossy(
        &succeed(&["messages", "--db", s(db), "--format", "jsonl"]).stdout,
    ))
}

fn call_ids(records: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = records
        .iter()
        .map(|r| r["call_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

// ---------------------------------------------------------------------------------------
// 1. Nothing but metadata: the canary proof

#[test]
fn every_canary_is_in_the_capture_so_their_absence_means_something() {
    let bytes = std::fs::read(canary_capture()).expect("canary capture");
    for c in CANARIES {
        assert!(contains(&bytes, c.as_bytes()), "{c} not in canary.pcap");
    }
}

#[test]
fn no_canary_reaches_the_store_the_output_or_the_exports_through_ingest() {
    let site = Site::new();
    let db = site.db();
    let mut ev = Evidence::default();
    ev.path(site.dir.path());
    let capture = canary_capture();
    ev.run(&["ingest", "--db", s(&db), "--retention", KEEP, &capture]);
    // What was stored is metadata of one call and two messages: the proof is not vacuous.
    assert_eq!(call_ids(&calls(&db)), vec!["canary-call-1@pbx.example.com"]);
    assert_eq!(messages(&db).len(), 2);
    for format in ["table", "csv", "jsonl"] {
        ev.run(&["calls", "--db", s(&db), "--format", format]);
        ev.run(&["messages", "--db", s(&db), "--format", format]);
    }
    for format in ["csv", "jsonl"] {
        let out = site.out(&format!("export-{format}"));
        ev.run(&[
            "export",
            "--db",
            s(&db),
            "--number",
            CANARY_CALLER,
            "--format",
            format,
            "--output",
            s(&out),
        ]);
    }
    ev.run(&[
        "forget",
        "--db",
        s(&db),
        "--number",
        CANARY_CALLER,
        "--dry-run",
    ]);
    ev.run(&["purge", "--db", s(&db), "--dry-run"]);
    ev.assert_present(b"canary-call-1@pbx.example.com");
    assert_no_canary(&ev, CANARIES);
}

#[test]
fn no_canary_reaches_a_fully_pseudonymised_store() {
    let site = Site::new();
    let db = site.db();
    let mut ev = Evidence::default();
    ev.path(site.dir.path());
    ev.run(&[
        "ingest",
        "--db",
        s(&db),
        "--retention",
        KEEP,
        "--pseudonymise",
        "caller,callee,caller_name,asserted_identity,src_ip,dst_ip",
        &canary_capture(),
    ]);
    ev.run(&["calls", "--db", s(&db), "--format", "jsonl"]);
    ev.assert_present(b"canary-call-1@pbx.example.com");
    assert_no_canary(&ev, CANARIES);
}

#[test]
fn parse_errors_show_the_kind_and_position_never_the_message_bytes() {
    let malformed: &[&[u8]] = &[
        b"INVITE sip:1@h SIP/2.0\r\nCNRY-MALFORMED-HEADER-0e6b47 no colon\r\n\r\n",
        b"SIP/2.0 999 CNRY-MALFORMED-REASON-a17c30\r\nCall-ID: x\r\n\r\n",
        b"MESSAGE sip:1@h SIP/2.0\r\nFrom: <sip:2@h>;tag=1\r\nTo: <sip:1@h>\r\n\
          CSeq: 1 MESSAGE\r\nContent-Length: 25\r\n\r\nCNRY-NOCALLID-BODY-d4e9a2",
        b"CNRY-NOTSIP-6a0e77 GET / HTTP/1.1\r\n\r\n",
        b"INVITE sip:CNRY-URI-77a1 SIP/2.0\r\n\r\n",
    ];
    let mut errors = 0;
    for input in malformed {
        if let Err(e) = callmeta::sip::parse(input) {
            errors += 1;
            for text in [e.to_string(), format!("{e:?}"), e.kind().to_owned()] {
                assert!(!text.contains("CNRY"), "{text}");
            }
        }
    }
    assert!(errors >= 4, "only {errors} inputs were refused");
}

// ---------------------------------------------------------------------------------------
// 2. Retention

#[test]
fn purge_deletes_records_that_ended_before_the_window_and_keeps_the_others() {
    let site = Site::new();
    let db = site.db();
    write_records(
        &db,
        vec![
            Record::Call(Box::new(call_ended_days_ago(
                "old-call-5e1a@pbx",
                "+4930555001",
                91,
            ))),
            Record::Message(Box::new(message_sent_days_ago(
                "old-msg-77c2@pbx",
                "+4930555002",
                95,
            ))),
            Record::Call(Box::new(call_ended_days_ago(
                "recent-call-19fd@pbx",
                "+4930555003",
                89,
            ))),
        ],
    );
    let mut ev = Evidence::default();
    ev.path(site.dir.path());
    ev.run(&["purge", "--db", s(&db), "--older-than", "90d"]);
    assert_eq!(call_ids(&calls(&db)), vec!["recent-call-19fd@pbx"]);
    assert!(messages(&db).is_empty());
    ev.assert_present(b"recent-call-19fd@pbx");
    ev.assert_absent(&[
        b"old-call-5e1a@pbx",
        b"old-msg-77c2@pbx",
        b"4930555001",
        b"4930555002",
    ]);
}

#[test]
fn purge_dry_run_deletes_nothing() {
    let site = Site::new();
    let db = site.db();
    write_records(
        &db,
        vec![Record::Call(Box::new(call_ended_days_ago(
            "old@pbx", "1", 91,
        )))],
    );
    let out = succeed(&["purge", "--db", s(&db), "--dry-run"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 calls"));
    assert_eq!(call_ids(&calls(&db)), vec!["old@pbx"]);
}

#[test]
fn ingest_applies_the_retention_window_at_the_end_of_the_run() {
    let site = Site::new();
    let db = site.db();
    write_records(
        &db,
        vec![Record::Call(Box::new(call_ended_days_ago(
            "expired-3c0b@pbx",
            "+4930555004",
            120,
        )))],
    );
    let mut ev = Evidence::default();
    ev.path(site.dir.path());
    // The default window: 90 days.
    ev.run(&["ingest", "--db", s(&db), &canary_capture()]);
    let ids = call_ids(&calls(&db));
    assert!(!ids.contains(&"expired-3c0b@pbx".to_owned()), "{ids:?}");
    ev.assert_absent(&[b"expired-3c0b@pbx", b"4930555004"]);
}

#[test]
fn anonymise_after_leaves_no_clear_number_name_or_address_in_the_files() {
    let site = Site::new();
    let db = site.db();
    let mut old = call_ended_days_ago("aged-call-8f2d@pbx", "+4930555005", 40);
    old.src_ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 77));
    write_records(&db, vec![Record::Call(Box::new(old.clone()))]);
    let mut ev = Evidence::default();
    ev.path(site.dir.path());
    ev.run(&[
        "ingest",
        "--db",
        s(&db),
        "--retention",
        "90d",
        "--anonymise-after",
        "30d",
        "--key-file",
        s(&site.key()),
        &canary_capture(),
    ]);
    let stored = calls(&db);
    let aged = common::by_call_id(&stored, "aged-call-8f2d@pbx");
    assert!(
        is_pseudonym(aged["caller"].as_str().unwrap_or_default()),
        "{aged}"
    );
    assert_eq!(aged["billable_ms"], old.billable_ms());
    assert_eq!(aged["disposition"], "answered");
    ev.assert_present(b"aged-call-8f2d@pbx");
    ev.assert_absent(&[b"4930555005", b"Name of +4930555005", b"203.0.113.77"]);
}

// ---------------------------------------------------------------------------------------
// 3. Erasure on request

/// The canary capture and another subscriber's busy call, ingested together.
fn two_subscribers(site: &Site) {
    succeed(&[
        "ingest",
        "--db",
        s(&site.db()),
        "--retention",
        KEEP,
        &canary_capture(),
        &sipp_capture("busy.pcap"),
    ]);
}

#[test]
fn forget_erases_every_byte_of_the_subscribers_records_and_keeps_the_others() {
    let site = Site::new();
    two_subscribers(&site);
    let db = site.db();
    let mut ev = Evidence::default();
    ev.path(site.dir.path());
    let out = ev.run(&["forget", "--db", s(&db), "--number", CANARY_CALLER]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("deleted 1 calls and 2 messages"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(call_ids(&calls(&db)), vec!["busy-1@pbx.example.com"]);
    assert!(messages(&db).is_empty());
    ev.assert_present(b"busy-1@pbx.example.com");
    let mut gone: Vec<&[u8]> = CANARY_CALL_IDS.iter().map(|c| c.as_bytes()).collect();
    gone.extend([&b"15557770001"[..], b"Canary Caller"]);
    ev.assert_absent(&gone);
}

#[test]
fn forget_writes_an_audit_entry_that_names_the_pseudonym_not_the_number() {
    let site = Site::new();
    two_subscribers(&site);
    succeed(&["forget", "--db", s(&site.db()), "--number", "15557770001"]);
    let store = Store::open_read_only(&site.db()).expect("open");
    let log = store.audit_log().expect("audit log");
    assert_eq!(log.len(), 1, "{log:?}");
    let key = PseudonymKey::load(&site.key()).expect("the key forget created");
    let entry = &log[0];
    assert_eq!(entry.action, "forget");
    assert_eq!(
        entry.subject,
        Pseudonymiser::new(&key, &[]).number(CANARY_CALLER)
    );
    assert_eq!((entry.records, entry.dry_run), (3, false));
    assert!(!entry.os_user.is_empty());
    assert!(entry.at_us > now_us() - 3_600_000_000);
    assert!(!format!("{entry:?}").contains("5557770001"));
}

// ---------------------------------------------------------------------------------------
// 4. Access: export

#[test]
fn export_writes_every_record_of_the_subscriber_in_call_model_fields_and_is_audited() {
    let site = Site::new();
    two_subscribers(&site);
    let db = site.db();
    let out = site.out("request-17");
    succeed(&[
        "export",
        "--db",
        s(&db),
        "--number",
        "+15557770001",
        "--format",
        "jsonl",
        "--output",
        s(&out),
    ]);
    let calls = jsonl(&std::fs::read_to_string(out.join("calls.jsonl")).expect("calls"));
    let messages = jsonl(&std::fs::read_to_string(out.join("messages.jsonl")).expect("messages"));
    assert_eq!(call_ids(&calls), vec!["canary-call-1@pbx.example.com"]);
    assert_eq!(messages.len(), 2);
    let fields: Vec<&String> = calls[0].as_object().expect("object").keys().collect();
    assert_eq!(fields.len(), common::CALL_FIELDS.len());
    assert_eq!(mode(&out.join("calls.jsonl")), 0o600);
    let log = Store::open_read_only(&db)
        .expect("open")
        .audit_log()
        .expect("audit");
    assert_eq!((log[0].action.as_str(), log[0].records), ("export", 3));
}

// ---------------------------------------------------------------------------------------
// 5. Pseudonymisation

const ALL_FIELDS: &str = "caller,callee,caller_name,asserted_identity,src_ip,dst_ip";

fn pseudonymised_ingest(site: &Site, key: &Path) -> Vec<Value> {
    succeed(&[
        "ingest",
        "--db",
        s(&site.db()),
        "--retention",
        KEEP,
        "--pseudonymise",
        ALL_FIELDS,
        "--key-file",
        s(key),
        &canary_capture(),
    ]);
    calls(&site.db())
}

#[test]
fn pseudonyms_are_stable_across_runs_with_the_same_key() {
    let (a, b) = (Site::new(), Site::new());
    let key = a.key();
    let first = pseudonymised_ingest(&a, &key);
    let second = pseudonymised_ingest(&b, &key);
    assert_eq!(first, second);
    let caller = first[0]["caller"].as_str().unwrap_or_default();
    assert!(is_pseudonym(caller), "{caller}");
    // The message of the same subscriber carries the same pseudonym: billing adds up.
    assert_eq!(messages(&a.db())[0]["sender"], first[0]["caller"]);
    let mut ev = Evidence::default();
    ev.path(a.dir.path());
    ev.assert_present(b"canary-call-1@pbx.example.com");
    ev.assert_absent(&[
        b"5557770001",
        b"5558880002",
        b"5557770000",
        b"Canary Caller",
    ]);
}

#[test]
fn another_key_gives_other_pseudonyms() {
    let (a, b) = (Site::new(), Site::new());
    let first = pseudonymised_ingest(&a, &a.key());
    let second = pseudonymised_ingest(&b, &b.key());
    assert_ne!(first[0]["caller"], second[0]["caller"]);
    assert_ne!(first[0]["src_ip"], second[0]["src_ip"]);
}

#[test]
fn forget_and_export_take_the_clear_number_on_a_pseudonymised_store() {
    let site = Site::new();
    pseudonymised_ingest(&site, &site.key());
    let db = site.db();
    let out = site.out("export");
    succeed(&[
        "export",
        "--db",
        s(&db),
        "--number",
        CANARY_CALLER,
        "--format",
        "csv",
        "--output",
        s(&out),
    ]);
    let csv = std::fs::read_to_string(out.join("calls.csv")).expect("calls.csv");
    assert!(csv.contains("canary-call-1@pbx.example.com"), "{csv}");
    let forgot = succeed(&["forget", "--db", s(&db), "--number", CANARY_CALLER]);
    assert!(String::from_utf8_lossy(&forgot.stdout).contains("deleted 1 calls and 2 messages"));
    assert!(calls(&db).is_empty());
}

#[test]
fn forget_refuses_a_pseudonymised_store_without_its_key() {
    let site = Site::new();
    let key = site.out("elsewhere.key");
    pseudonymised_ingest(&site, &key);
    // No --key-file: the default beside the store does not exist and would be a new key.
    let out = callmeta(&["forget", "--db", s(&site.db()), "--number", CANARY_CALLER]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--key-file"));
    assert_eq!(calls(&site.db()).len(), 1);
    // No new key was left behind to make the next request silently miss the records.
    assert!(!site.key().exists());
}

// ---------------------------------------------------------------------------------------
// 6. Store protection

#[test]
fn database_wal_and_shm_are_created_0640_and_the_key_0600() {
    let site = Site::new();
    pseudonymised_ingest(&site, &site.key());
    let db = site.db();
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        assert_eq!(mode(&p), 0o640, "{}", p.display());
    }
    assert_eq!(mode(&site.key()), 0o600);
}

#[test]
fn ingest_refuses_a_world_writable_store_directory() {
    let site = Site::new();
    std::fs::set_permissions(site.dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod");
    let out = callmeta(&["ingest", "--db", s(&site.db()), &canary_capture()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("writable by everyone"));
    assert!(!site.db().exists());
}

#[test]
fn ingest_warns_about_a_world_readable_database() {
    let site = Site::new();
    succeed(&[
        "ingest",
        "--db",
        s(&site.db()),
        "--retention",
        KEEP,
        &canary_capture(),
    ]);
    std::fs::set_permissions(site.db(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = succeed(&[
        "ingest",
        "--db",
        s(&site.db()),
        "--retention",
        KEEP,
        &canary_capture(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("readable by everyone"),
        "{stderr}"
    );
}

/// Item 1 through the daemon: the canary capture replayed onto the loopback interface
/// (tcpreplay) while `callmeta run` captures the SIP, RTP and RTCP ports with logging at
/// debug level; then no canary in its log, its store files or the listings.
#[test]
fn no_canary_reaches_the_store_or_the_log_through_run_at_debug_level() {
    use common::live::*;
    if !live_ready_with(&["tcpreplay"]) {
        return;
    }
    let _lock = live_lock();
    let site = Site::new();
    let db = site.db();
    let conf = site.out("callmeta.toml");
    std::fs::write(
        &conf,
        format!(
            "[[source.capture]]\ninterface = \"lo\"\nports = [5060, 15060, 40000, 40001, 50000, 50001]\n\n\
             [store]\npath = \"{}\"\n\n[logging]\ndestination = \"stdout\"\nlevel = \"debug\"\n",
            db.display()
        ),
    )
    .expect("config");
    let logs = tempfile::tempdir().expect("tempdir");
    let notify = Notify::bind(logs.path());
    let daemon = Daemon::start(logs.path(), &notify, &["-c", s(&conf)], &[]);
    let replay = Command::new("tcpreplay")
        .args(["--intf1=lo", "--quiet"])
        .arg(canary_capture())
        .output()
        .expect("tcpreplay");
    assert!(
        replay.status.success(),
        "tcpreplay: {}",
        String::from_utf8_lossy(&replay.stderr)
    );
    daemon.wait_log("canary-call-1@pbx.example.com");
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");

    let mut ev = Evidence::default();
    ev.path(site.dir.path()).path(logs.path());
    assert!(
        log.contains("DEBUG") || log.contains("canary-call-1"),
        "{log}"
    );
    ev.run(&["calls", "--db", s(&db), "--format", "jsonl"]);
    ev.run(&["messages", "--db", s(&db), "--format", "jsonl"]);
    assert_eq!(call_ids(&calls(&db)), vec!["canary-call-1@pbx.example.com"]);
    ev.assert_present(b"canary-call-1@pbx.example.com");
    assert_no_canary(&ev, CANARIES);
}

/// Item 1 through PBX trace logs: the canary capture's SIP written as Asterisk pjsip,
/// chan_sip and FreeSWITCH would log it, then ingested; no canary reaches the store or
/// the output. (The logs themselves hold the canaries, as a PBX's would, and are kept
/// out of the evidence.)
#[test]
fn no_canary_reaches_the_store_or_the_output_through_pbx_trace_logs() {
    use generate::{DateFormat, FsLayout};
    let utc = jiff::tz::TimeZone::UTC;
    // What a PBX logs is its SIP: the datagrams to and from its port 5060.
    let sip: Vec<generate::Packet> = generate::packets_of(std::path::Path::new(&canary_capture()))
        .into_iter()
        .filter(|p| p.src.port() == 5060 || p.dst.port() == 5060)
        .collect();
    let local: std::net::SocketAddr = "127.0.0.2:5060".parse().expect("address");
    let logs = tempfile::tempdir().expect("tempdir");
    let written = [
        (
            "pjsip.log",
            generate::pjsip_file(&sip, local, DateFormat::IsoMicros, &utc),
        ),
        (
            "chansip.log",
            generate::chansip_file(&sip, local, DateFormat::IsoMillis, &utc),
        ),
        (
            "freeswitch.log",
            generate::freeswitch(&sip, local, FsLayout::Current, &utc),
        ),
    ];
    for (name, text) in &written {
        let first = CANARIES.iter().find(|c| text.contains(*c));
        assert!(
            first.is_some(),
            "{name} must carry canaries, or the test proves nothing"
        );
        std::fs::write(logs.path().join(name), text).expect("write log");
    }
    for (name, _) in &written {
        let site = Site::new();
        let db = site.db();
        let mut ev = Evidence::default();
        ev.path(site.dir.path());
        let log = logs.path().join(name);
        ev.run(&["ingest", "--db", s(&db), "--retention", KEEP, s(&log)]);
        ev.run(&["calls", "--db", s(&db), "--format", "jsonl"]);
        ev.run(&["messages", "--db", s(&db), "--format", "jsonl"]);
        assert_eq!(
            call_ids(&calls(&db)),
            vec!["canary-call-1@pbx.example.com"],
            "{name}"
        );
        ev.assert_present(b"canary-call-1@pbx.example.com");
        assert_no_canary(&ev, CANARIES);
    }
}
