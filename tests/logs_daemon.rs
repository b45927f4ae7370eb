//! `callmeta run` following a PBX trace log for real (issue 5): the daemon process reads an
//! Asterisk chan_pjsip `full` log while this test writes it, in chunks that split lines,
//! rotates it, kills and restarts the daemon; the store must then hold exactly what
//! `callmeta ingest` of the whole log gives, and every call must be logged once.
//!
//! The log is the SIPp calls of tests/data/sipp written by `data/logs/generate.rs` as the
//! callee's PBX logs them, shifted to end about now (a live log; retention keeps them).
//! No root, capture or tool is needed: nothing is skipped.

#[path = "data/logs/generate.rs"]
mod generate;
#[path = "common/live.rs"]
mod live;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use callmeta::call::{CallRecord, MessageRecord};
use callmeta::source::log::time::host_time_zone;
use callmeta::store::{Query, Store};
use generate::{DateFormat, Packet};
use live::{signal, wait_until, Daemon, Notify, BIN};

/// The calls in the order the log gives them. `answered_caller_bye` is the call a stop
/// falls into (between its ACK and its BYE); the MESSAGE comes first so that its
/// transaction (32 s) is over before any stop.
const CALLS: &[&str] = &[
    "messages",
    "busy",
    "cancelled",
    "answered_caller_bye",
    "not_found",
    "auth_challenge",
    "reinvite",
    "answered_callee_bye",
];
/// Text messages in [`CALLS`] (the `messages` capture has two).
const MESSAGES: usize = 2;
const SPANNING: &str = "answered_caller_bye";
const SPANNING_ID: &str = "answered-caller-bye-1@pbx.example.com";

/// Long enough for any wait below (records settle 5 s after their last message).
const WAIT: Duration = Duration::from_secs(40);

fn packets(name: &str) -> Vec<Packet> {
    let path = format!("{}/tests/data/sipp/{name}.pcap", env!("CARGO_MANIFEST_DIR"));
    generate::packets_of(Path::new(&path))
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The whole log, and where the spanning call's BYE record starts in it.
struct Log {
    text: String,
    bye_at: usize,
}

/// The calls of [`CALLS`] as one pjsip `full` log in the host's zone (the zone both the
/// daemon and `ingest` read it in). 6 s between calls, longer than the 5 s settle, so
/// earlier calls are written while later ones go on; 40 s after the MESSAGE.
fn pbx_log() -> Log {
    let calls: Vec<Vec<Packet>> = CALLS.iter().map(|c| packets(c)).collect();
    let span = |p: &[Packet]| p[p.len() - 1].ts_us - p[0].ts_us;
    let gap = |i: usize| if i == 0 { 40_000_000 } else { 6_000_000 };
    let total: i64 = calls
        .iter()
        .enumerate()
        .map(|(i, p)| span(p) + gap(i))
        .sum();
    let mut at = now_us() - total;
    let tz = host_time_zone();
    let (mut text, mut bye_at) = (String::new(), 0);
    for (i, (name, mut p)) in CALLS.iter().zip(calls).enumerate() {
        let shift = at - p[0].ts_us;
        at += span(&p) + gap(i);
        for q in &mut p {
            q.ts_us += shift;
        }
        let local = p[0].dst;
        let part = generate::pjsip_file(&p, local, DateFormat::IsoMicros, &tz);
        if *name == SPANNING {
            let bye = part.find("\nBYE sip:").expect("the call ends with a BYE");
            let record = part[..bye].rfind("\n[").expect("a record header") + 1;
            bye_at = text.len() + record;
        }
        text.push_str(&part);
    }
    Log { text, bye_at }
}

/// Start offsets of the log's records (`[date] ...` lines), to cut it between records.
fn record_starts(text: &str) -> Vec<usize> {
    let mut at = vec![0];
    at.extend(text.match_indices("\n[").map(|(i, _)| i + 1));
    at
}

/// One test's place: a directory, the notify socket, the store, the followed log.
struct Site {
    dir: tempfile::TempDir,
    notify: Notify,
    db: PathBuf,
    log: PathBuf,
    config: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let notify = Notify::bind(dir.path());
        let db = dir.path().join("callmeta.db");
        let log = dir.path().join("full");
        let config = dir.path().join("callmeta.toml");
        File::create(&log).expect("create the log");
        let site = Site {
            dir,
            notify,
            db,
            log,
            config,
        };
        site.configure(&[&site.log]);
        site
    }

    /// Writes the config: follow `logs` (as pjsip), no capture, so no root needed;
    /// batches every 200 ms.
    fn configure(&self, logs: &[&Path]) {
        self.configure_watch(logs, "inotify");
    }

    /// [`Site::configure`] with `watch = "{watch}"` on every log.
    fn configure_watch(&self, logs: &[&Path], watch: &str) {
        let mut text = String::from("[source]\ncapture = []\n\n");
        for log in logs {
            text.push_str(&format!(
                "[[source.log]]\npath = \"{}\"\nformat = \"asterisk-pjsip\"\nwatch = \"{watch}\"\n\n",
                log.display()
            ));
        }
        text.push_str(&format!(
            "[store]\npath = \"{}\"\nflush_interval = \"200ms\"\n\n[logging]\ndestination = \"stdout\"\n",
            self.db.display()
        ));
        std::fs::write(&self.config, text).expect("write config");
    }

    fn start(&self) -> Daemon {
        let config = self.config.to_string_lossy();
        Daemon::start(self.dir.path(), &self.notify, &["-c", &config], &[])
    }

    /// Appends `text` to the log in pieces of 1 to 997 bytes (lines split anywhere), a
    /// few milliseconds apart, as a PBX flushing its buffer would.
    fn write(&self, text: &str) {
        let mut file = File::options()
            .append(true)
            .open(&self.log)
            .expect("open the log");
        let bytes = text.as_bytes();
        let (mut at, mut seed) = (0, 0x9e37_79b9_7f4a_7c15u64);
        while at < bytes.len() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (1 + (seed % 997) as usize).min(bytes.len() - at);
            file.write_all(&bytes[at..at + n]).expect("write the log");
            at += n;
            std::thread::sleep(Duration::from_millis(3));
        }
    }

    fn store(&self) -> Option<Store> {
        Store::open_read_only(&self.db).ok()
    }

    fn calls(&self) -> Vec<CallRecord> {
        self.store()
            .and_then(|s| s.calls(&Query::default()).ok())
            .unwrap_or_default()
    }

    fn messages(&self) -> Vec<MessageRecord> {
        self.store()
            .and_then(|s| s.messages(&Query::default()).ok())
            .unwrap_or_default()
    }

    /// The offset of the saved checkpoint.
    fn checkpoint(&self) -> Option<u64> {
        let name = self.log.display().to_string();
        self.store()?.log_checkpoint(&name).ok()?.map(|c| c.offset)
    }

    /// Waits until the daemon has stored its checkpoint at the end of the log.
    fn wait_read_to_end(&self) {
        let len = std::fs::metadata(&self.log).expect("the log").len();
        wait_until(
            &format!("the checkpoint at the log's end ({len})"),
            WAIT,
            || self.checkpoint() == Some(len),
        );
    }

    fn wait_records(&self, calls: usize, messages: usize) {
        wait_until(
            &format!("{calls} calls and {messages} messages in the store"),
            WAIT,
            || self.calls().len() >= calls && self.messages().len() >= messages,
        );
    }
}

/// `callmeta ingest` of `text` as one file: the records the daemon must give.
fn ingest(dir: &Path, text: &str) -> (Vec<CallRecord>, Vec<MessageRecord>) {
    let log = dir.join("whole.log");
    let db = dir.join("reference.db");
    std::fs::write(&log, text).expect("write the whole log");
    let out = Command::new(BIN)
        .arg("ingest")
        .arg("--db")
        .arg(&db)
        .args(["--format", "asterisk-pjsip"])
        .arg(&log)
        .output()
        .expect("run callmeta ingest");
    assert!(
        out.status.success(),
        "ingest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open_read_only(&db).expect("reference store");
    (
        store.calls(&Query::default()).expect("calls"),
        store.messages(&Query::default()).expect("messages"),
    )
}

/// The daemon's store equals the reference, every field (the source names each file).
fn assert_same_records(site: &Site, text: &str) {
    let (want_calls, want_messages) = ingest(site.dir.path(), text);
    assert_eq!(want_calls.len(), CALLS.len() - 1, "{want_calls:#?}");
    assert_eq!(want_messages.len(), MESSAGES);
    let source = site.log.display().to_string();
    let calls = site.calls();
    assert_eq!(calls.len(), want_calls.len(), "{calls:#?}");
    for (got, want) in calls.iter().zip(&want_calls) {
        assert_eq!(got.source, source);
        let got = CallRecord {
            source: want.source.clone(),
            ..got.clone()
        };
        assert_eq!(&got, want, "the daemon's record differs from ingest's");
    }
    let messages = site.messages();
    assert_eq!(messages.len(), want_messages.len(), "{messages:#?}");
    for (got, want) in messages.iter().zip(&want_messages) {
        assert_eq!(got.source, source);
        let got = MessageRecord {
            source: want.source.clone(),
            ..got.clone()
        };
        assert_eq!(&got, want, "the daemon's message differs from ingest's");
    }
}

/// Each record was produced once over all the daemon's runs: one `call`/`message` line
/// per Call-ID in their logs together.
fn assert_logged_once(logs: &[&str], records: &[&str]) {
    for id in records {
        let needle = format!(" id={id}");
        let n: usize = logs
            .iter()
            .map(|l| l.lines().filter(|l| l.contains(&needle)).count())
            .sum();
        assert_eq!(n, 1, "{id} logged {n} times:\n{}", logs.join("\n----\n"));
    }
}

fn all_ids(site: &Site) -> Vec<String> {
    let mut ids: Vec<String> = site.calls().into_iter().map(|c| c.call_id).collect();
    ids.extend(site.messages().into_iter().map(|m| m.call_id));
    ids
}

#[test]
fn a_log_written_while_the_daemon_follows_it_gives_the_records_of_ingest() {
    let site = Site::new();
    let log = pbx_log();
    let daemon = site.start();
    daemon.wait_log("following ");
    site.write(&log.text);
    // Written while running, not at the stop: the last call settles 5 s after its BYE.
    site.wait_records(CALLS.len() - 1, MESSAGES);
    let (status, out) = daemon.stop();
    assert!(status.success(), "{out}");
    assert_same_records(&site, &log.text);
    let ids = all_ids(&site);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_logged_once(&[&out], &ids);
}

/// The count of inotify wakes in the health line that SIGUSR1 makes the daemon log.
fn inotify_wakes(daemon: &Daemon) -> u64 {
    signal(daemon.child.id(), "USR1");
    daemon.wait_log("health (SIGUSR1)");
    let log = daemon.log();
    let at = log
        .find(" inotify wakes)")
        .expect("the wakes in the health line");
    let digits = log[..at]
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .expect("a count");
    digits.parse().expect("a number of wakes")
}

#[test]
fn writes_to_a_followed_log_wake_its_thread_through_inotify() {
    let site = Site::new();
    let log = pbx_log();
    let daemon = site.start();
    daemon.wait_log(&format!(
        "log {}: woken by inotify at each change in {}",
        site.log.display(),
        site.dir.path().display()
    ));
    site.write(&log.text);
    site.wait_records(CALLS.len() - 1, MESSAGES);
    let wakes = inotify_wakes(&daemon);
    let (status, out) = daemon.stop();
    assert!(status.success(), "{out}");
    assert!(
        wakes > 0,
        "no inotify wake while the log was written:\n{out}"
    );
    assert_same_records(&site, &log.text);
}

#[test]
fn a_log_set_to_poll_is_followed_without_inotify() {
    let site = Site::new();
    site.configure_watch(&[&site.log], "poll");
    let log = pbx_log();
    let daemon = site.start();
    daemon.wait_log(&format!(
        "log {}: polled every 250ms (watch = \"poll\")",
        site.log.display()
    ));
    site.write(&log.text);
    site.wait_records(CALLS.len() - 1, MESSAGES);
    let wakes = inotify_wakes(&daemon);
    let (status, out) = daemon.stop();
    assert!(status.success(), "{out}");
    assert_eq!(wakes, 0, "{out}");
    assert_same_records(&site, &log.text);
}

#[test]
fn a_log_whose_directory_appears_later_is_polled_then_watched() {
    let mut site = Site::new();
    let later = site.dir.path().join("later");
    site.log = later.join("full");
    site.configure(&[&site.log]);
    let log = pbx_log();
    let daemon = site.start();
    daemon.wait_log(&format!(
        "log {}: polled every 250ms until inotify can watch it",
        site.log.display()
    ));
    std::fs::create_dir(&later).expect("create the log's directory");
    File::create(&site.log).expect("create the log");
    daemon.wait_log(&format!("log {}: woken by inotify", site.log.display()));
    site.write(&log.text);
    site.wait_records(CALLS.len() - 1, MESSAGES);
    let wakes = inotify_wakes(&daemon);
    let (status, out) = daemon.stop();
    assert!(status.success(), "{out}");
    assert!(wakes > 0, "{out}");
    assert_same_records(&site, &log.text);
}

#[test]
fn rotation_by_rename_and_by_copytruncate_while_followed_loses_and_repeats_nothing() {
    let site = Site::new();
    let log = pbx_log();
    let starts = record_starts(&log.text);
    let (a, b) = (starts[starts.len() / 3], starts[2 * starts.len() / 3]);
    let daemon = site.start();
    daemon.wait_log("following ");
    site.write(&log.text[..a]);
    // Rename (Asterisk `logger rotate`, logrotate `create`) at once: what the daemon has
    // not read yet is drained from the renamed file.
    std::fs::rename(&site.log, site.dir.path().join("full.1")).expect("rename");
    File::create(&site.log).expect("the new log");
    site.write(&log.text[a..b]);
    // copytruncate: logrotate copies, then truncates the file in place. Lines written
    // between the copy and the truncation are lost to every reader; wait until the daemon
    // has read everything, as the rotation's timing would have to be lucky otherwise.
    site.wait_read_to_end();
    std::fs::copy(&site.log, site.dir.path().join("full.2")).expect("copy");
    File::options()
        .write(true)
        .open(&site.log)
        .and_then(|f| f.set_len(0))
        .expect("truncate");
    // The truncation is noticed by the size shrinking: wait for it before the log grows
    // past the old size again.
    wait_until("both rotations noticed", WAIT, || {
        daemon.log().matches(": rotated").count() >= 2
    });
    site.write(&log.text[b..]);
    site.wait_records(CALLS.len() - 1, MESSAGES);
    let (status, out) = daemon.stop();
    assert!(status.success(), "{out}");
    assert_same_records(&site, &log.text);
    let ids = all_ids(&site);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_logged_once(&[&out], &ids);
}

/// Writes the log up to the spanning call's BYE and waits until the daemon has stored
/// everything before it: the calls finished by then, and the checkpoint at the end.
fn run_to_the_middle_of_a_call(site: &Site, log: &Log) -> Daemon {
    let daemon = site.start();
    daemon.wait_log("following ");
    site.write(&log.text[..log.bye_at]);
    // The MESSAGE, busy and cancelled are over by the spanning call's ACK (and settled
    // on the log's clock); the spanning call is open.
    site.wait_records(2, MESSAGES);
    site.wait_read_to_end();
    daemon
}

/// After the restart: the rest of the log, then every record as `ingest` gives it, each
/// produced by one run only, the spanning call one record (answered before the stop,
/// ended after it).
fn finish_after_restart(site: &Site, log: &Log, first: &str) {
    let second = site.start();
    second.wait_log("1 open calls resumed");
    site.write(&log.text[log.bye_at..]);
    site.wait_records(CALLS.len() - 1, MESSAGES);
    let (status, out) = second.stop();
    assert!(status.success(), "{out}");
    assert_same_records(site, &log.text);
    let spanning = site
        .calls()
        .into_iter()
        .find(|c| c.call_id == SPANNING_ID)
        .expect("the spanning call");
    assert!(spanning.answered_at.is_some_and(|t| t < spanning.ended_at));
    let ids = all_ids(site);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_logged_once(&[first, &out], &ids);
}

#[test]
fn kill_9_between_an_invite_and_its_bye_then_restart_gives_each_call_once() {
    let site = Site::new();
    let log = pbx_log();
    let mut first = run_to_the_middle_of_a_call(&site, &log);
    signal(first.child.id(), "KILL");
    let status = first.child.wait().expect("wait for the killed daemon");
    assert!(!status.success());
    let out = first.log();
    assert!(!out.contains("stopped"), "killed, not stopped:\n{out}");
    finish_after_restart(&site, &log, &out);
}

#[test]
fn sigterm_between_an_invite_and_its_bye_then_restart_gives_each_call_once() {
    let site = Site::new();
    let log = pbx_log();
    let first = run_to_the_middle_of_a_call(&site, &log);
    let (status, out) = first.stop();
    assert!(status.success(), "{out}");
    assert!(out.contains("1 open calls saved"), "{out}");
    finish_after_restart(&site, &log, &out);
}

/// Runs the daemon over the log up to the answer of its first MESSAGE, stops it with
/// `stop`, and checks that the restarted daemon writes that MESSAGE once, answered.
fn message_across_a_restart(stop: impl FnOnce(Daemon) -> String) {
    let site = Site::new();
    let log = pbx_log();
    let request = log.text.find("\nMESSAGE sip:").expect("a MESSAGE request");
    let cut = *record_starts(&log.text)
        .iter()
        .find(|&&at| at > request)
        .expect("the record after the MESSAGE");
    let first = site.start();
    first.wait_log("following ");
    site.write(&log.text[..cut]);
    site.wait_read_to_end();
    let out = stop(first);
    assert!(
        site.messages().is_empty(),
        "written before its answer: {out}"
    );
    let second = site.start();
    second.wait_log("1 open calls resumed");
    site.write(&log.text[cut..]);
    site.wait_records(CALLS.len() - 1, MESSAGES);
    let (status, last) = second.stop();
    assert!(status.success(), "{last}");
    assert_same_records(&site, &log.text);
    assert!(site.messages().iter().all(|m| m.final_status.is_some()));
    let ids = all_ids(&site);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_logged_once(&[&out, &last], &ids);
}

#[test]
fn kill_9_while_a_message_awaits_its_answer_then_restart_gives_it_once_answered() {
    message_across_a_restart(|mut d| {
        signal(d.child.id(), "KILL");
        let status = d.child.wait().expect("wait for the killed daemon");
        assert!(!status.success());
        d.log()
    });
}

#[test]
fn sigterm_while_a_message_awaits_its_answer_saves_it_for_the_restart() {
    message_across_a_restart(|d| {
        let (status, out) = d.stop();
        assert!(status.success(), "{out}");
        assert!(out.contains("1 open calls saved"), "{out}");
        out
    });
}

#[test]
fn sighup_stops_a_removed_log_writing_its_open_call_and_follows_an_added_one() {
    let site = Site::new();
    let log = pbx_log();
    let daemon = site.start();
    daemon.wait_log("following ");
    site.write(&log.text[..log.bye_at]);
    site.wait_records(2, MESSAGES);
    site.wait_read_to_end();
    // The rest of the calls go to another file; the first is no longer followed.
    let other = site.dir.path().join("other");
    std::fs::write(&other, &log.text[log.bye_at..]).expect("write the other log");
    site.configure(&[&other]);
    signal(daemon.child.id(), "HUP");
    daemon.wait_log(&format!("reload: stopped following {}", site.log.display()));
    daemon.wait_log(&format!("reload: following {}", other.display()));
    site.wait_records(CALLS.len() - 1, MESSAGES);
    let (status, out) = daemon.stop();
    assert!(status.success(), "{out}");
    let calls = site.calls();
    let spanning = calls
        .iter()
        .find(|c| c.call_id == SPANNING_ID && c.source == site.log.display().to_string())
        .expect("the open call of the removed log, written as it stood");
    assert_eq!(
        (
            spanning.ended_by.as_str(),
            spanning.timeout_reason.map(|t| t.as_str())
        ),
        ("timeout", Some("capture_end"))
    );
    assert!(spanning.answered_at.is_some());
    // Its BYE, read from the added log, finds no call: no second record for it.
    assert_eq!(
        calls.iter().filter(|c| c.call_id == SPANNING_ID).count(),
        1,
        "{calls:#?}"
    );
    let from_other = calls
        .iter()
        .filter(|c| c.source == other.display().to_string())
        .count();
    assert_eq!(from_other, CALLS.len() - 4, "{calls:#?}");
}
