//! `callmeta run` for real: live capture on the loopback interface, sipp calls of every
//! outcome, signals, a fake systemd notify socket, restart and reload.
//!
//! The proof of every record: tcpdump records the same wire while the daemon runs, and
//! `callmeta ingest` of that capture must give the same records, field by field (only
//! `source` differs). The capture-file path is itself pinned to hand-checked records by
//! tests/e2e_sipp.rs, so the daemon's records are checked against the scenario too.
//!
//! Needs root (capture, setpriv, mount), sipp and tcpdump. Outside CI a missing one skips
//! with a message; under CI (`CI=true`) it fails, since .ci/run installs them.
//! Traffic goes to 127.0.0.0/8 only, on ports 25060-25099 so other tests' SIP does not
//! mix in; every sipp run is bounded (-m 1, -timeout).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::live::*;
use serde_json::Value;

/// One sipp call: a UAS in the background, the UAC to completion, both bounded.
struct Call<'a> {
    uas: &'a str,
    uac: &'a str,
    uas_ip: &'a str,
    uac_ip: &'a str,
    port: u16,
    uac_port: u16,
    call_id: &'a str,
    callee: &'a str,
}

fn scenario(dir: &Path, name: &str, pause_ms: Option<(u32, u32)>) -> String {
    let text = std::fs::read_to_string(Path::new(SCENARIOS).join(name)).expect("scenario");
    let Some((from, to)) = pause_ms else {
        return format!("{SCENARIOS}/{name}");
    };
    let path = dir.join(format!("long-{name}"));
    std::fs::write(
        &path,
        text.replace(
            &format!("milliseconds=\"{from}\""),
            &format!("milliseconds=\"{to}\""),
        ),
    )
    .expect("write scenario");
    path.display().to_string()
}

impl Call<'_> {
    fn keys(&self) -> Vec<String> {
        [
            "-key",
            "callee",
            self.callee,
            "-key",
            "caller",
            "+15551230001",
            "-key",
            "caller_name",
            "Alice Example",
            "-key",
            "pai",
            "+15551230000",
            "-key",
            "text",
            "Running late.",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn start_uas(&self, dir: &Path) -> Child {
        let child = Command::new("sipp")
            .args([
                "-sf",
                self.uas,
                "-i",
                self.uas_ip,
                "-mi",
                self.uas_ip,
                "-p",
                &self.port.to_string(),
                "-m",
                "1",
                "-timeout",
                "60s",
                "-nostdin",
            ])
            .args(self.keys())
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp UAS");
        let ss = format!("sport = :{} and src {}", self.port, self.uas_ip);
        wait_until("the UAS to listen", Duration::from_secs(10), || {
            Command::new("ss")
                .args(["-Hlun", &ss])
                .output()
                .is_ok_and(|o| !o.stdout.is_empty())
        });
        child
    }

    fn start_uac(&self, dir: &Path) -> Child {
        Command::new("sipp")
            .arg(format!("{}:{}", self.uas_ip, self.port))
            .args([
                "-sf",
                self.uac,
                "-i",
                self.uac_ip,
                "-mi",
                self.uac_ip,
                "-p",
                &self.uac_port.to_string(),
                "-m",
                "1",
                "-timeout",
                "60s",
                "-nostdin",
                "-cid_str",
                self.call_id,
            ])
            .args(self.keys())
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp UAC")
    }

    /// Runs the call to its end.
    fn run(&self, dir: &Path) {
        let uas = self.start_uas(dir);
        finish(self.start_uac(dir), "UAC", self.call_id);
        finish(uas, "UAS", self.call_id);
    }
}

fn finish(mut child: Child, who: &str, call: &str) {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait sipp") {
            assert!(status.success(), "sipp {who} of {call} exited {status}");
            return;
        }
        if t.elapsed() > Duration::from_secs(70) {
            let _ = child.kill();
            panic!("sipp {who} of {call} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn jsonl(args: &[&str]) -> Vec<Value> {
    let out = Command::new(BIN).args(args).output().expect("run callmeta");
    assert!(
        out.status.success(),
        "callmeta {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn records(db: &Path, kind: &str) -> Vec<Value> {
    let db = db.to_string_lossy();
    let mut v = jsonl(&[kind, "--db", &db, "--format", "jsonl"]);
    v.sort_by_key(|r| r["call_id"].as_str().unwrap_or_default().to_string());
    v
}

/// Records of `ingest` over the capture tcpdump made: the reference.
fn reference(dir: &Path, capture: &Path, kind: &str) -> Vec<Value> {
    let db = dir.join("reference.db");
    if !db.exists() {
        let out = Command::new(BIN)
            .arg("ingest")
            .arg("--db")
            .arg(&db)
            .arg(capture)
            .output()
            .expect("ingest");
        assert!(
            out.status.success(),
            "ingest: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    records(&db, kind)
}

fn without_source(mut v: Vec<Value>) -> Vec<Value> {
    for r in &mut v {
        if let Some(o) = r.as_object_mut() {
            o.remove("source");
        }
    }
    v
}

fn assert_same_records(live: Vec<Value>, wire: Vec<Value>) {
    assert!(!wire.is_empty(), "the reference capture gave no records");
    let (live, wire) = (without_source(live), without_source(wire));
    assert_eq!(live.len(), wire.len(), "live {live:#?}\nwire {wire:#?}");
    for (l, w) in live.iter().zip(&wire) {
        assert_eq!(l, w, "the daemon's record differs from the capture's");
    }
}

fn field<'v>(records: &'v [Value], call_id: &str, name: &str) -> &'v Value {
    let r = records
        .iter()
        .find(|r| r["call_id"] == call_id)
        .unwrap_or_else(|| panic!("no record for {call_id} in {records:#?}"));
    &r[name]
}

const FILTER: &str = "udp portrange 25060-25099";

/// One live test's place: a temporary directory with its notify socket and store.
struct Site {
    dir: tempfile::TempDir,
    notify: Notify,
    db: std::path::PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let notify = Notify::bind(dir.path());
        let db = dir.path().join("live.db");
        Site { dir, notify, db }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `callmeta run` capturing port 25060 on lo into this site's store, plus `extra`.
    fn start(&self, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let db = self.db.to_string_lossy();
        let mut args = vec!["--interface", "lo", "--port", "25060", "--db", &db];
        args.extend_from_slice(extra);
        Daemon::start(self.path(), &self.notify, &args, env)
    }
}

#[test]
fn run_records_every_outcome_exactly_as_the_capture_file_does() {
    if !live_ready() {
        return;
    }
    let _lock = live_lock();
    let site = Site::new();
    let (d, db) = (site.path(), &site.db);
    let wire = Tcpdump::start(d, FILTER);
    let daemon = site.start(&[], &[]);
    let cases: [(&str, &str, &str, &str); 8] = [
        (
            "uas_answer.xml",
            "uac_answer_caller_bye.xml",
            "live-caller-bye@test",
            "15559870002",
        ),
        (
            "uas_answer_callee_bye.xml",
            "uac_answer_callee_bye.xml",
            "live-callee-bye@test",
            "15559870002",
        ),
        (
            "uas_busy.xml",
            "uac_rejected.xml",
            "live-busy@test",
            "15559870002",
        ),
        (
            "uas_cancel.xml",
            "uac_cancel.xml",
            "live-cancel@test",
            "15559870002",
        ),
        (
            "uas_not_found.xml",
            "uac_rejected.xml",
            "live-not-found@test",
            "15559879999",
        ),
        (
            "uas_auth.xml",
            "uac_auth.xml",
            "live-auth@test",
            "15559870002",
        ),
        (
            "uas_answer.xml",
            "uac_reinvite.xml",
            "live-reinvite@test",
            "15559870002",
        ),
        (
            "uas_message.xml",
            "uac_message.xml",
            "live-message@test",
            "15559870002",
        ),
    ];
    for (i, (uas, uac, call_id, callee)) in cases.iter().enumerate() {
        let (uas, uac) = (scenario(d, uas, None), scenario(d, uac, None));
        Call {
            uas: &uas,
            uac: &uac,
            uas_ip: "127.0.0.2",
            uac_ip: "127.0.0.1",
            port: 25060,
            uac_port: 25070 + i as u16,
            call_id,
            callee,
        }
        .run(d);
    }
    let (status, log) = daemon.stop();
    assert!(status.success(), "exit {status}:\n{log}");
    let capture = wire.stop();

    let calls = records(db, "calls");
    assert_eq!(calls.len(), 7, "{calls:#?}");
    for (id, disposition, ended_by, side) in [
        ("live-caller-bye@test", "answered", "bye", "caller"),
        ("live-callee-bye@test", "answered", "bye", "callee"),
        ("live-busy@test", "busy", "rejected", "callee"),
        ("live-cancel@test", "no_answer", "cancel", "caller"),
        ("live-not-found@test", "failed", "rejected", "callee"),
        ("live-auth@test", "answered", "bye", "caller"),
        ("live-reinvite@test", "answered", "bye", "caller"),
    ] {
        assert_eq!(field(&calls, id, "disposition"), disposition, "{id}");
        assert_eq!(field(&calls, id, "ended_by"), ended_by, "{id}");
        assert_eq!(field(&calls, id, "hangup_side"), side, "{id}");
        assert_eq!(field(&calls, id, "source"), "lo", "{id}");
    }
    assert_eq!(
        field(&calls, "live-reinvite@test", "codecs"),
        "PCMU,telephone-event,PCMA"
    );
    // One readable line per call in the log.
    assert!(
        log.lines().any(|l| l.contains("call ")
            && l.contains("+15551230001 -> 15559870002 busy")
            && l.contains("id=live-busy@test")),
        "{log}"
    );
    assert_same_records(calls, reference(d, &capture, "calls"));
    let messages = records(db, "messages");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["final_status"], 200);
    assert_same_records(messages, reference(d, &capture, "messages"));
}

#[test]
fn a_call_answered_before_a_restart_and_ended_after_it_is_one_record() {
    if !live_ready() {
        return;
    }
    let _lock = live_lock();
    let site = Site::new();
    let (d, notify, db) = (site.path(), &site.notify, &site.db);
    let args = [
        "--interface",
        "lo",
        "--port",
        "25060",
        "--db",
        &db.to_string_lossy(),
    ]
    .map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let wire = Tcpdump::start(d, FILTER);
    let first = Daemon::start(d, notify, &args, &[]);
    // The caller talks 8 s before its BYE: time to restart the daemon in between.
    let uac = scenario(d, "uac_answer_caller_bye.xml", Some((2500, 8000)));
    let uas = scenario(d, "uas_answer.xml", None);
    let call = Call {
        uas: &uas,
        uac: &uac,
        uas_ip: "127.0.0.2",
        uac_ip: "127.0.0.1",
        port: 25060,
        uac_port: 25071,
        call_id: "live-restart@test",
        callee: "15559870002",
    };
    let uas_child = call.start_uas(d);
    let uac_child = call.start_uac(d);
    first.wait_log("capturing on lo");
    // Wait for the answer (the UAS answers after 1.6 s), then restart.
    std::thread::sleep(Duration::from_millis(2500));
    let stopped_at = callmeta::time::now_us();
    let (status, log) = first.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("1 open calls saved"), "{log}");
    let second = Daemon::start(d, notify, &args, &[]);
    second.wait_log("1 open calls resumed");
    finish(uac_child, "UAC", call.call_id);
    finish(uas_child, "UAS", call.call_id);
    let (status, log) = second.stop();
    assert!(status.success(), "{log}");
    let capture = wire.stop();

    let calls = records(db, "calls");
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0]["ended_by"], "bye");
    // Answered before the first daemon stopped, hung up after: one record spans both.
    let at = |field: &str| {
        calls[0][field]
            .as_str()
            .and_then(|t| callmeta::time::parse_us(t).ok())
            .unwrap_or_else(|| panic!("{field} in {calls:#?}"))
    };
    assert!(
        at("answered_at") < stopped_at && stopped_at < at("ended_at"),
        "{calls:#?}"
    );
    assert_same_records(calls, reference(d, &capture, "calls"));
}

fn write_config(path: &Path, ports: &str, db: &Path) {
    std::fs::write(
        path,
        format!("[[source.capture]]\ninterface = \"lo\"\nports = {ports}\n\n[store]\npath = \"{}\"\n\n[logging]\ndestination = \"stdout\"\n", db.display()),
    )
    .expect("write config");
}

#[test]
fn sighup_adds_a_port_without_losing_the_open_call_and_refuses_a_broken_config() {
    if !live_ready() {
        return;
    }
    let _lock = live_lock();
    let site = Site::new();
    let (d, notify, db) = (site.path(), &site.notify, &site.db);
    let conf = d.join("callmeta.toml");
    write_config(&conf, "[25060]", db);
    let daemon = Daemon::start(d, notify, &["-c", &conf.to_string_lossy()], &[]);

    let uac = scenario(d, "uac_answer_caller_bye.xml", Some((2500, 6000)));
    let uas = scenario(d, "uas_answer.xml", None);
    let long = Call {
        uas: &uas,
        uac: &uac,
        uas_ip: "127.0.0.2",
        uac_ip: "127.0.0.1",
        port: 25060,
        uac_port: 25072,
        call_id: "live-open-during-reload@test",
        callee: "15559870002",
    };
    let long_uas = long.start_uas(d);
    let long_uac = long.start_uac(d);
    std::thread::sleep(Duration::from_millis(2500));

    write_config(&conf, "[25060, 25080]", db);
    signal(daemon.child.id(), "HUP");
    // The TLS and WebSocket ports ([net]) are in the filter too.
    daemon.wait_log("25060, 25080]");
    let busy = (
        scenario(d, "uas_busy.xml", None),
        scenario(d, "uac_rejected.xml", None),
    );
    Call {
        uas: &busy.0,
        uac: &busy.1,
        uas_ip: "127.0.0.3",
        uac_ip: "127.0.0.1",
        port: 25080,
        uac_port: 25073,
        call_id: "live-new-port@test",
        callee: "15559870004",
    }
    .run(d);

    std::fs::write(
        &conf,
        "[[source.capture]]\ninterface = \"lo\"\nports = [25060]\ncolour = \"red\"\n",
    )
    .expect("write");
    signal(daemon.child.id(), "HUP");
    daemon.wait_log("reload refused");
    // Still on the previous config, port 25080 included.
    Call {
        uas: &busy.0,
        uac: &busy.1,
        uas_ip: "127.0.0.3",
        uac_ip: "127.0.0.1",
        port: 25080,
        uac_port: 25074,
        call_id: "live-after-refusal@test",
        callee: "15559870004",
    }
    .run(d);
    finish(long_uac, "UAC", long.call_id);
    finish(long_uas, "UAS", long.call_id);
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("colour"),
        "the refusal names the bad key:\n{log}"
    );

    let calls = records(db, "calls");
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert_eq!(
        field(&calls, "live-open-during-reload@test", "ended_by"),
        "bye"
    );
    assert_eq!(
        field(&calls, "live-open-during-reload@test", "disposition"),
        "answered"
    );
    assert_eq!(field(&calls, "live-new-port@test", "final_status"), 486);
    assert_eq!(
        field(&calls, "live-after-refusal@test", "final_status"),
        486
    );
}

#[test]
fn systemd_hears_ready_status_watchdog_and_stopping() {
    if !live_ready() {
        return;
    }
    let _lock = live_lock();
    let site = Site::new();
    let notify = &site.notify;
    let daemon = site.start(&[], &[("WATCHDOG_USEC", "2000000")]);
    wait_until("WATCHDOG=1", Duration::from_secs(10), || {
        notify.has("WATCHDOG=1")
    });
    wait_until("STATUS=", Duration::from_secs(10), || notify.has("STATUS="));
    assert!(notify.has("READY=1"));
    signal(daemon.child.id(), "USR1");
    daemon.wait_log("health (SIGUSR1)");
    let (status, _) = daemon.stop();
    assert!(status.success());
    wait_until("STOPPING=1", Duration::from_secs(5), || {
        notify.has("STOPPING=1")
    });
}

#[test]
fn a_missing_interface_is_a_clear_error_and_a_failed_exit() {
    if !live_ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("x.db");
    let out = Command::new(BIN)
        .args([
            "run",
            "--interface",
            "nosuchif0",
            "--db",
            &db.to_string_lossy(),
        ])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("interface `nosuchif0` does not exist"),
        "{err}"
    );
}

/// A directory the unprivileged `nobody` user owns, for running the daemon as nobody.
fn nobody_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = Command::new("chown")
        .args(["nobody"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "chown nobody");
    dir
}

fn as_nobody(args: &[&str]) -> (bool, String) {
    let out = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(BIN)
        .args(args)
        .output()
        .expect("setpriv");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn capturing_without_privileges_names_the_missing_capabilities() {
    if !live_ready() {
        return;
    }
    let dir = nobody_dir();
    let db = dir.path().join("x.db");
    let (ok, err) = as_nobody(&["run", "--interface", "lo", "--db", &db.to_string_lossy()]);
    assert!(!ok);
    assert!(
        err.contains("no permission to capture on `lo`") && err.contains("CAP_NET_RAW"),
        "{err}"
    );
}

#[test]
fn an_unwritable_store_directory_is_a_clear_error() {
    if !live_ready() {
        return;
    }
    // Root-owned and 0755: nobody cannot create the store there.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("x.db");
    let (ok, err) = as_nobody(&["run", "--interface", "lo", "--db", &db.to_string_lossy()]);
    assert!(!ok);
    assert!(
        err.contains("the store must be writable") && err.contains(&db.display().to_string()),
        "{err}"
    );
}

/// A small tmpfs for the store, removed on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> SmallDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m,mode=0750", "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount a tmpfs");
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_holds_records_in_the_queue_until_space_returns() {
    if !live_ready() {
        return;
    }
    let _lock = live_lock();
    let site = Site::new();
    let (d, notify) = (site.path(), &site.notify);
    let disk = SmallDisk::mount();
    let db = disk.dir.path().join("live.db");
    let db_arg = db.to_string_lossy();
    let args = ["--interface", "lo", "--port", "25060", "--db", &db_arg];
    let daemon = Daemon::start(d, notify, &args, &[]);
    // Fill the disk (dd stops at ENOSPC by itself).
    let filler = disk.dir.path().join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .stderr(Stdio::null())
        .status();
    let busy = (
        scenario(d, "uas_busy.xml", None),
        scenario(d, "uac_rejected.xml", None),
    );
    for (i, id) in [
        "live-disk-full-1@test",
        "live-disk-full-2@test",
        "live-disk-full-3@test",
    ]
    .iter()
    .enumerate()
    {
        Call {
            uas: &busy.0,
            uac: &busy.1,
            uas_ip: "127.0.0.2",
            uac_ip: "127.0.0.1",
            port: 25060,
            uac_port: 25075 + i as u16,
            call_id: id,
            callee: "15559870002",
        }
        .run(d);
    }
    // Calls are written 5 s (settle) after they end; the writes fail and are retried.
    daemon.wait_log("is failing (disk full?)");
    wait_until(
        "STATUS to show the failing store",
        Duration::from_secs(15),
        || {
            notify.has("STATUS=") && {
                let seen = notify.seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.iter().any(|m| m.contains("STORE FAILING"))
            }
        },
    );
    std::fs::remove_file(&filler).expect("free the disk");
    daemon.wait_log("writes again");
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    let calls = records(&db, "calls");
    assert_eq!(
        calls.len(),
        3,
        "nothing lost while the queue had room: {calls:#?}\n{log}"
    );
}

#[test]
fn json_logs_carry_the_record_fields_one_object_per_line() {
    if !live_ready() {
        return;
    }
    let _lock = live_lock();
    let site = Site::new();
    let d = site.path();
    let daemon = site.start(&["--log-format", "json"], &[]);
    let busy = (
        scenario(d, "uas_busy.xml", None),
        scenario(d, "uac_rejected.xml", None),
    );
    Call {
        uas: &busy.0,
        uac: &busy.1,
        uas_ip: "127.0.0.2",
        uac_ip: "127.0.0.1",
        port: 25060,
        uac_port: 25090,
        call_id: "live-json@test",
        callee: "15559870002",
    }
    .run(d);
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let call = lines
        .iter()
        .find(|l| l["call_id"] == "live-json@test")
        .unwrap_or_else(|| panic!("no call line in {log}"));
    assert_eq!(call["caller"], "+15551230001");
    assert_eq!(call["callee"], "15559870002");
    assert_eq!(call["disposition"], "busy");
    assert!(
        call["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("call ") && m.contains("status=486")),
        "{call}"
    );
}
