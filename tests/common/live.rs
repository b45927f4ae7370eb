//! Running `callmeta run` for real in tests: root and tool checks, the daemon started
//! with a fake systemd notify socket, tcpdump recording the same wire.
//!
//! Traffic stays on the loopback interface. Under CI (`CI=true`) a missing tool or
//! privilege fails instead of skipping.
#![allow(dead_code)]

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_callmeta");
pub const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sipp/scenarios");

/// Live tests share the loopback interface and its ports: one at a time.
pub static LIVE: Mutex<()> = Mutex::new(());

pub fn live_lock() -> MutexGuard<'static, ()> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether this machine can run live tests; under CI it must.
pub fn live_ready() -> bool {
    live_ready_with(&["sipp", "tcpdump", "setpriv"])
}

/// Like [`live_ready`], for tests that need other tools.
pub fn live_ready_with(tools: &[&str]) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if !root {
        missing.push("root");
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "CI=true but live tests lack: {missing:?} (.ci/run installs them)"
    );
    eprintln!("SKIPPED: live daemon test needs {missing:?}");
    false
}

pub fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(
            t.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid}");
}

/// Collects what the daemon sends to its systemd notify socket.
pub struct Notify {
    pub path: PathBuf,
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl Notify {
    pub fn bind(dir: &Path) -> Notify {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends when the test process ends; bounded by the socket's life.
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => return,
                }
            }
        });
        Notify { path, seen }
    }

    pub fn has(&self, needle: &str) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|m| m.lines().any(|l| l.starts_with(needle)))
    }

    pub fn count(&self, needle: &str) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|m| m.lines().any(|l| l.starts_with(needle)))
            .count()
    }
}

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `callmeta run ARGS` and waits for READY=1.
    pub fn start(dir: &Path, notify: &Notify, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let before = notify.count("READY=1");
        let n = std::fs::read_dir(dir).map_or(0, |d| d.count());
        let log = dir.join(format!("daemon-{n}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new(BIN);
        cmd.arg("run")
            .args(args)
            .env("NOTIFY_SOCKET", &notify.path)
            .env_remove("JOURNAL_STREAM")
            .stdout(out)
            .stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start callmeta run");
        let t = Instant::now();
        while notify.count("READY=1") == before {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "callmeta run exited {status} before READY:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no READY=1 within 20s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_log(&self, needle: &str) {
        wait_until(
            &format!("`{needle}` in the daemon's log"),
            Duration::from_secs(20),
            || self.log().contains(needle),
        );
    }

    /// SIGTERM, then the exit status (bounded wait).
    pub fn stop(mut self) -> (ExitStatus, String) {
        signal(self.child.id(), "TERM");
        let t = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, self.log());
            }
            if t.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!(
                    "callmeta run did not stop within 20s of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failed assertion must not leave the daemon running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tcpdump writing the same wire the daemon sees.
pub struct Tcpdump {
    child: Child,
    path: PathBuf,
}

impl Tcpdump {
    pub fn start(dir: &Path, filter: &str) -> Tcpdump {
        let path = dir.join("wire.pcap");
        let err_path = dir.join("tcpdump.err");
        let err = std::fs::File::create(&err_path).expect("tcpdump log");
        let child = Command::new("tcpdump")
            .args(["-i", "lo", "--immediate-mode", "-U", "-Z", "root", "-w"])
            .arg(&path)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start tcpdump");
        wait_until("tcpdump to listen", Duration::from_secs(10), || {
            std::fs::read_to_string(&err_path)
                .unwrap_or_default()
                .contains("listening on")
        });
        Tcpdump { child, path }
    }

    pub fn stop(mut self) -> PathBuf {
        std::thread::sleep(Duration::from_millis(300));
        signal(self.child.id(), "TERM");
        let _ = self.child.wait();
        self.path.clone()
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
