//! The Debian package, built and installed for real.
//!
//! `packaging/build-deb` makes the .deb once per run of this binary (a release build, with
//! cargo-deb installed when missing), and a second .deb of the same binary under a higher
//! version for the upgrade. Then:
//! - the archive lists every file with its owner and mode, the conffile, the computed
//!   Depends and the maintainer scripts' user, directory and unit handling;
//! - lintian reports no error (its warnings are printed);
//! - `systemd-analyze security --offline` rates the unit 2.0 or lower ("OK");
//! - on this machine (root, throwaway: CI's): dpkg -i, checks of the user, directories,
//!   modes and conffile, `systemd-analyze verify` of the installed unit, the installed
//!   daemon run as the callmeta user with only CAP_NET_RAW and CAP_NET_ADMIN (setpriv,
//!   as the unit would: systemd is not PID 1 here) recording a sipp call on loopback,
//!   the records read by a member of the callmeta group and refused to anyone else, an
//!   upgrade keeping an edited conffile, then dpkg -r and dpkg -P.
//!
//! The install test leaves the machine as it found it: a guard purges the package (and
//! deletes the user it made) even when an assertion fails, and it refuses to start when
//! callmeta is installed already. Needs root, dpkg-deb, lintian, systemd-analyze, setpriv
//! and sipp: outside CI a missing one skips with a message, under CI (`CI=true`) it fails.
//! Traffic stays on 127.0.0.0/8, ports 25160-25179; every sipp run is bounded.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::live::*;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Sorts after cargo-deb's default `<version>-1` (dpkg: `+` is greater than the end of
/// the string), so installing it is an upgrade.
const UPGRADE_REVISION: &str = "1+upgradetest1";

/// What every package test needs on the machine.
const TOOLS: &[&str] = &["dpkg-deb", "lintian", "systemd-analyze"];

/// The two packages of this run: the first one and the same binary under a higher version.
struct Debs {
    first: PathBuf,
    upgrade: PathBuf,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} exited {}:\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).into_owned()
}

fn arch() -> String {
    stdout(Command::new("dpkg").arg("--print-architecture"))
        .trim()
        .to_string()
}

/// Builds both packages once for all the tests of this binary.
fn debs() -> &'static Debs {
    static DEBS: OnceLock<Debs> = OnceLock::new();
    DEBS.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| Path::new(ROOT).join("target"), PathBuf::from);
        // Outside target/debian: cargo-deb deletes other versions of the package there.
        let out = target.join("package-test");
        std::fs::create_dir_all(&out).expect("package output directory");
        let arch = arch();
        let first = out.join(format!("callmeta_{VERSION}-1_{arch}.deb"));
        let upgrade = out.join(format!("callmeta_{VERSION}-{UPGRADE_REVISION}_{arch}.deb"));
        let t = Instant::now();
        run(Command::new(Path::new(ROOT).join("packaging/build-deb"))
            .arg("--output")
            .arg(&first)
            .stdout(Stdio::inherit()));
        eprintln!("package built in {:.0}s", t.elapsed().as_secs_f64());
        run(Command::new(Path::new(ROOT).join("packaging/build-deb"))
            .args([
                "--no-build",
                "--deb-version",
                &format!("{VERSION}-{UPGRADE_REVISION}"),
                "--output",
            ])
            .arg(&upgrade)
            .stdout(Stdio::inherit()));
        for deb in [&first, &upgrade] {
            assert!(deb.is_file(), "build-deb made no {}", deb.display());
        }
        Debs { first, upgrade }
    })
}

/// `dpkg-deb -f DEB FIELD`.
fn control_field(deb: &Path, field: &str) -> String {
    stdout(Command::new("dpkg-deb").arg("-f").arg(deb).arg(field))
        .trim()
        .to_string()
}

/// One control-archive member (conffiles, postinst, ...) of a package.
fn control_file(deb: &Path, name: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(dir.path()));
    std::fs::read_to_string(dir.path().join(name)).unwrap_or_default()
}

#[test]
fn the_package_lists_every_file_with_its_owner_and_mode() {
    if !live_ready_with(TOOLS) {
        return;
    }
    let deb = &debs().first;
    let size = std::fs::metadata(deb).expect("deb").len();
    eprintln!("{}: {size} bytes", deb.display());

    // `dpkg-deb -c`: "-rwxr-xr-x root/root 1234 2025-11-29 17:00 ./usr/bin/callmeta".
    let listing = stdout(Command::new("dpkg-deb").arg("-c").arg(deb));
    let entry = |path: &str| -> (String, String) {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"));
        let mut cols = line.split_whitespace();
        let mode = cols.next().unwrap_or_default().to_string();
        let owner = cols.next().unwrap_or_default().to_string();
        (mode, owner)
    };
    let file = "-rw-r--r--";
    for (path, mode) in [
        ("/usr/bin/callmeta", "-rwxr-xr-x"),
        ("/etc/callmeta/callmeta.toml", file),
        ("/usr/lib/systemd/system/callmeta.service", file),
        ("/usr/lib/sysusers.d/callmeta.conf", file),
        ("/usr/share/man/man1/callmeta.1.gz", file),
        ("/usr/share/bash-completion/completions/callmeta", file),
        ("/usr/share/zsh/vendor-completions/_callmeta", file),
        ("/usr/share/doc/callmeta/README.md", file),
        ("/usr/share/doc/callmeta/docs/operations.md", file),
        ("/usr/share/doc/callmeta/docs/call-model.md", file),
        ("/usr/share/doc/callmeta/docs/schema.md", file),
        ("/usr/share/doc/callmeta/docs/privacy.md", file),
        ("/usr/share/doc/callmeta/changelog.Debian.gz", file),
        ("/usr/share/doc/callmeta/copyright", file),
    ] {
        // cargo-deb writes numeric owners: 0/0 is root:root.
        assert_eq!(entry(path), (mode.to_string(), "0/0".to_string()), "{path}");
    }
    // Nothing in /var: the data directory is made by postinst for the callmeta user.
    assert!(
        !listing.contains(" ./var/"),
        "the package ships files in /var:\n{listing}"
    );

    assert_eq!(
        control_file(deb, "conffiles").trim(),
        "/etc/callmeta/callmeta.toml"
    );
    let depends = control_field(deb, "Depends");
    for dep in [
        "libc6",
        "libpcap0.8",
        "systemd | systemd-standalone-sysusers",
    ] {
        assert!(depends.contains(dep), "Depends lacks {dep}: {depends}");
    }
    assert_eq!(
        control_field(deb, "Version"),
        format!("{VERSION}-1"),
        "version"
    );

    let postinst = control_file(deb, "postinst");
    for needle in [
        "systemd-sysusers ${DPKG_ROOT:+--root=\"$DPKG_ROOT\"} callmeta.conf",
        "deb-systemd-helper enable callmeta.service",
        "_dh_action=restart",
        "install -d -o callmeta -g callmeta -m 0750 /var/lib/callmeta",
    ] {
        assert!(
            postinst.contains(needle),
            "postinst lacks `{needle}`:\n{postinst}"
        );
    }
    // The user exists before the directory is given to it.
    assert!(postinst.find("systemd-sysusers") < postinst.find("install -d"));
    let prerm = control_file(deb, "prerm");
    assert!(
        prerm.contains("[ \"$1\" = remove ]") && prerm.contains("deb-systemd-invoke stop"),
        "prerm must stop the unit on remove only (postinst restarts it on upgrade):\n{prerm}"
    );
    let postrm = control_file(deb, "postrm");
    assert!(
        postrm.contains("rm -rf /var/lib/callmeta"),
        "postrm must delete the records on purge:\n{postrm}"
    );

    // The man page and completions are the binary's own.
    let x = tempfile::tempdir().expect("tempdir");
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(x.path()));
    let page = stdout(Command::new("sh").arg("-c").arg(format!(
        "zcat {}/usr/share/man/man1/callmeta.1.gz",
        x.path().display()
    )));
    assert!(
        page.starts_with(".ie") || page.contains(".TH callmeta 1"),
        "{page}"
    );
    for command in ["callmeta run", "callmeta calls", "callmeta forget"] {
        assert!(page.contains(command), "callmeta(1) lacks {command}");
    }
    let bash = std::fs::read_to_string(
        x.path()
            .join("usr/share/bash-completion/completions/callmeta"),
    )
    .expect("bash completion");
    assert!(bash.contains("complete -F _callmeta"), "{bash}");
    let zsh = std::fs::read_to_string(x.path().join("usr/share/zsh/vendor-completions/_callmeta"))
        .expect("zsh completion");
    assert!(zsh.starts_with("#compdef callmeta"), "{zsh}");
    let unit = std::fs::read_to_string(x.path().join("usr/lib/systemd/system/callmeta.service"))
        .expect("unit");
    assert_eq!(
        unit,
        std::fs::read_to_string(Path::new(ROOT).join("packaging/debian/callmeta.service"))
            .expect("packaging unit")
    );
}

#[test]
fn lintian_reports_no_error() {
    if !live_ready_with(TOOLS) {
        return;
    }
    let deb = &debs().first;
    // lintian exits non-zero on errors; read its tags instead of its status.
    let out = Command::new("lintian")
        .args(["--display-info", "--allow-root"])
        .arg(deb)
        .output()
        .expect("start lintian");
    let text = String::from_utf8_lossy(&out.stdout);
    let tags: Vec<&str> = text
        .lines()
        .filter(|l| matches!(l.get(..2), Some("E:" | "W:" | "I:" | "P:" | "X:")))
        .collect();
    eprintln!("lintian: {} tags\n{}", tags.len(), tags.join("\n"));
    let errors: Vec<&&str> = tags.iter().filter(|l| l.starts_with("E:")).collect();
    assert!(
        errors.is_empty(),
        "lintian errors:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() || !tags.is_empty(),
        "lintian failed without a tag: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The "Overall exposure level" of `systemd-analyze security`, and its verdict word.
fn exposure(report: &str) -> (f64, String) {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    let mut words = line
        .rsplit(": ")
        .next()
        .unwrap_or_default()
        .split_whitespace();
    let score = words
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or(f64::NAN);
    (score, words.next().unwrap_or_default().to_string())
}

#[test]
fn the_unit_is_rated_ok_by_systemd_analyze_security() {
    if !live_ready_with(TOOLS) {
        return;
    }
    // systemd is not PID 1 on CI, so the unit cannot be loaded: --offline reads the file
    // (systemd 252 and later) and rates the same settings.
    let unit = Path::new(ROOT).join("packaging/debian/callmeta.service");
    let report = stdout(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&unit),
    );
    let (score, verdict) = exposure(&report);
    eprintln!("systemd-analyze security: exposure {score} {verdict}");
    assert!(score <= 2.0, "exposure {score} {verdict}:\n{report}");
    assert_eq!(verdict, "OK", "{report}");
}

// ---- the install test -------------------------------------------------------------

fn installed_status() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Abbrev}${Version}", "callmeta"])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !s.is_empty() && !s.starts_with("un")).then_some(s)
}

fn getent(db: &str, key: &str) -> Option<Vec<String>> {
    let out = Command::new("getent").args([db, key]).output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(':')
            .map(String::from)
            .collect()
    })
}

/// Purges the package when the test ends, passed or not, and deletes the callmeta user
/// and group if this test made them: the machine is left as it was found.
struct Cleanup {
    user_existed: bool,
    group_existed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["-P", "callmeta"]).status();
        if !self.user_existed && getent("passwd", "callmeta").is_some() {
            let _ = Command::new("userdel").arg("callmeta").status();
        }
        if !self.group_existed && getent("group", "callmeta").is_some() {
            let _ = Command::new("groupdel").arg("callmeta").status();
        }
    }
}

fn dpkg(args: &[&str], deb: Option<&Path>) -> String {
    let mut cmd = Command::new("dpkg");
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    if let Some(deb) = deb {
        cmd.arg(deb);
    }
    let out = run(&mut cmd);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// (mode bits, owner, group) of a path.
fn mode_owner(path: &str) -> (u32, String, String) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let name = |db: &str, id: u32| {
        getent(db, &id.to_string())
            .map(|f| f[0].clone())
            .unwrap_or_else(|| id.to_string())
    };
    (
        m.permissions().mode() & 0o7777,
        name("passwd", m.uid()),
        name("group", m.gid()),
    )
}

/// The filesystem side of the unit's sandbox, rebuilt by hand in a mount namespace of its
/// own (`unshare --mount`, private propagation) because systemd is not PID 1 here:
/// `PrivateDevices=` (a /dev with only the pseudo devices), `PrivateTmp=`,
/// `ProtectHome=`, and `ProtectSystem=strict` with `StateDirectory=` (everything
/// read-only but /var/lib/callmeta). Then it execs its arguments.
const SANDBOX: &str = "set -e
mount --bind /var/lib/callmeta /var/lib/callmeta
mount -o remount,bind,ro /
mount -t tmpfs -o mode=0755,nosuid,noexec tmpfs /dev
mknod -m 0666 /dev/null c 1 3
mknod -m 0666 /dev/zero c 1 5
mknod -m 0666 /dev/full c 1 7
mknod -m 0666 /dev/random c 1 8
mknod -m 0666 /dev/urandom c 1 9
mknod -m 0666 /dev/tty c 5 0
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /root
mount -t tmpfs -o mode=0755 tmpfs /home
exec \"$@\"
";

/// The installed daemon as the unit runs it: in [`SANDBOX`], as user and group callmeta
/// with no supplementary groups, CAP_NET_RAW and CAP_NET_ADMIN ambient and nothing else
/// in any set (bounding included), no new privileges; systemd's STATE_DIRECTORY and
/// WATCHDOG_USEC, and the notify socket. Returns once it said READY=1.
fn start_installed(dir: &Path, notify: &Notify, args: &[&str]) -> Daemon {
    let log = dir.join("installed-daemon.log");
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let caps = "-all,+net_raw,+net_admin";
    // unshare and sh exec, so the child's pid is the daemon's.
    let mut child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .args([SANDBOX, "sandbox"])
        .args([
            "setpriv",
            "--reuid=callmeta",
            "--regid=callmeta",
            "--clear-groups",
            &format!("--inh-caps={caps}"),
            &format!("--ambient-caps={caps}"),
            &format!("--bounding-set={caps}"),
            "--no-new-privs",
            "--",
            "/usr/bin/callmeta",
            "run",
        ])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("NOTIFY_SOCKET", &notify.path)
        .env("STATE_DIRECTORY", "/var/lib/callmeta")
        .env("WATCHDOG_USEC", "2000000")
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start unshare");
    let t = Instant::now();
    while notify.count("READY=1") == 0 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the installed callmeta exited {status} before READY:\n{}",
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

/// `/proc/PID/status` fields.
fn proc_status(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn sipp(args: &[&str], dir: &Path) -> std::process::Child {
    Command::new("sipp")
        .args(args)
        .args([
            "-m",
            "1",
            "-timeout",
            "30s",
            "-nostdin",
            "-key",
            "callee",
            "15559870002",
            "-key",
            "caller",
            "+15551230001",
            "-key",
            "caller_name",
            "Alice Example",
            "-key",
            "pai",
            "+15551230000",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp")
}

fn wait_ok(mut child: std::process::Child, who: &str) {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "sipp {who} exited {status}");
            return;
        }
        if t.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sipp {who} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One answered call, 127.0.0.1:25170 -> 127.0.0.2:25160, caller hangs up.
fn one_call(dir: &Path, call_id: &str) {
    let uas = sipp(
        &[
            "-sf",
            &format!("{SCENARIOS}/uas_answer.xml"),
            "-i",
            "127.0.0.2",
            "-mi",
            "127.0.0.2",
            "-p",
            "25160",
        ],
        dir,
    );
    wait_until("the UAS to listen", Duration::from_secs(10), || {
        Command::new("ss")
            .args(["-Hlun", "sport = :25160 and src 127.0.0.2"])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty())
    });
    let uac = sipp(
        &[
            "127.0.0.2:25160",
            "-sf",
            &format!("{SCENARIOS}/uac_answer_caller_bye.xml"),
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            "25170",
            "-cid_str",
            call_id,
        ],
        dir,
    );
    wait_ok(uac, "UAC");
    wait_ok(uas, "UAS");
}

/// `callmeta calls` on the installed store, run as another user: `nobody` with the
/// given supplementary groups (a billing reader is nobody in the callmeta group).
fn read_as_nobody(groups: &str) -> Output {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=nobody", "--regid=nogroup"]);
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        cmd.arg(format!("--groups={groups}"));
    }
    cmd.args([
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
        "/usr/bin/callmeta",
        "calls",
        "--db",
        "/var/lib/callmeta/calls.db",
        "--format",
        "jsonl",
    ])
    .output()
    .expect("setpriv")
}

#[test]
fn install_run_as_callmeta_upgrade_remove_and_purge_on_this_machine() {
    if !live_ready_with(&["dpkg-deb", "lintian", "systemd-analyze", "sipp", "setpriv"]) {
        return;
    }
    if let Some(status) = installed_status() {
        panic!(
            "callmeta is already installed here ({status}): this test installs and purges \
             the package, so it refuses to touch a machine where someone else installed it \
             (dpkg -P callmeta first if that is a leftover)"
        );
    }
    for path in ["/usr/bin/callmeta", "/etc/callmeta", "/var/lib/callmeta"] {
        assert!(
            !Path::new(path).exists(),
            "{path} exists without the package: refusing to overwrite it"
        );
    }
    let debs = debs();
    let _live = live_lock();
    let _cleanup = Cleanup {
        user_existed: getent("passwd", "callmeta").is_some(),
        group_existed: getent("group", "callmeta").is_some(),
    };

    // Install.
    let log = dpkg(&["-i"], Some(&debs.first));
    eprintln!("dpkg -i:\n{log}");
    let status = installed_status().expect("installed");
    assert_eq!(status, format!("ii {VERSION}-1"));
    let user = getent("passwd", "callmeta").expect("the callmeta user");
    let uid: u32 = user[2].parse().expect("uid");
    assert!(uid < 1000, "callmeta is not a system user: {user:?}");
    assert_eq!(user[5], "/var/lib/callmeta", "home: {user:?}");
    assert_eq!(user[6], "/usr/sbin/nologin", "shell: {user:?}");
    let group = getent("group", "callmeta").expect("the callmeta group");
    assert_eq!(user[3], group[2], "primary group");
    assert_eq!(
        mode_owner("/var/lib/callmeta"),
        (0o750, "callmeta".into(), "callmeta".into())
    );
    assert_eq!(
        mode_owner("/etc/callmeta/callmeta.toml"),
        (0o644, "root".into(), "root".into())
    );
    assert_eq!(
        mode_owner("/usr/bin/callmeta"),
        (0o755, "root".into(), "root".into())
    );
    assert_eq!(
        std::fs::read_to_string("/etc/callmeta/callmeta.toml").expect("conffile"),
        std::fs::read_to_string(Path::new(ROOT).join("config/callmeta.toml")).expect("config")
    );
    let conffiles =
        stdout(Command::new("dpkg-query").args(["-W", "-f", "${Conffiles}", "callmeta"]));
    assert!(
        conffiles.contains("/etc/callmeta/callmeta.toml"),
        "{conffiles}"
    );
    // deb-systemd-helper enables the unit without a running systemd.
    let wants = "/etc/systemd/system/multi-user.target.wants/callmeta.service";
    assert!(
        std::fs::read_link(wants).is_ok(),
        "the unit is not enabled: no {wants}"
    );
    // Now the binary and man page exist, the installed unit verifies as a whole.
    let verify = Command::new("systemd-analyze")
        .args(["verify", "/usr/lib/systemd/system/callmeta.service"])
        .output()
        .expect("systemd-analyze verify");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify:\n{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    stdout(Command::new("/usr/bin/callmeta").args(["check-config"]));

    // The installed daemon as the callmeta user with the unit's two capabilities. Its
    // notify socket is under /run, as systemd's is: the sandbox has a /tmp of its own.
    let dir = tempfile::tempdir_in("/run").expect("tempdir");
    let d = dir.path();
    let notify = Notify::bind(d);
    // The daemon (callmeta) must reach the socket: own it, and let it through the dir.
    std::os::unix::fs::chown(&notify.path, Some(uid), None).expect("chown notify socket");
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let daemon = start_installed(d, &notify, &["--interface", "lo", "--port", "25160"]);
    let pid = daemon.child.id();
    let ids = proc_status(pid, "Uid");
    assert!(
        ids.split_whitespace().all(|u| u == uid.to_string()),
        "Uid: {ids}"
    );
    // CAP_NET_ADMIN is bit 12, CAP_NET_RAW bit 13.
    for set in ["CapPrm", "CapEff", "CapAmb", "CapBnd"] {
        assert_eq!(proc_status(pid, set), "0000000000003000", "{set}");
    }
    assert_eq!(proc_status(pid, "CapInh"), "0000000000003000", "CapInh");
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
    // And it runs in the sandbox: / read-only, /dev a tmpfs of its own.
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let mount = |point: &str| {
        mounts
            .lines()
            .rfind(|l| l.split(' ').nth(4) == Some(point))
            .unwrap_or_else(|| panic!("no {point} in\n{mounts}"))
            .to_string()
    };
    assert!(
        mount("/")
            .split(' ')
            .nth(5)
            .is_some_and(|o| o.starts_with("ro")),
        "{}",
        mount("/")
    );
    assert!(mount("/dev").contains(" - tmpfs "), "{}", mount("/dev"));
    daemon.wait_log("capturing on lo");
    one_call(d, "installed@test");
    wait_until("the watchdog ping", Duration::from_secs(10), || {
        notify.has("WATCHDOG=1")
    });
    let (status, log) = daemon.stop();
    assert!(status.success(), "exit {status}:\n{log}");
    assert!(
        log.contains("id=installed@test"),
        "no log line for the call:\n{log}"
    );
    assert_eq!(
        mode_owner("/var/lib/callmeta/calls.db"),
        (0o640, "callmeta".into(), "callmeta".into())
    );

    // A billing reader: in the callmeta group it reads; outside it, nothing.
    let member = read_as_nobody("callmeta");
    assert!(
        member.status.success(),
        "a callmeta group member cannot read: {}",
        String::from_utf8_lossy(&member.stderr)
    );
    let calls: Vec<Value> = String::from_utf8_lossy(&member.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0]["call_id"], "installed@test");
    assert_eq!(calls[0]["disposition"], "answered");
    assert_eq!(calls[0]["source"], "lo");
    let stranger = read_as_nobody("");
    assert!(
        !stranger.status.success(),
        "someone outside the callmeta group read the store"
    );

    // Upgrade, with the conffile edited by the operator.
    let edited = std::fs::read_to_string("/etc/callmeta/callmeta.toml")
        .expect("conffile")
        .replace("interface = \"any\"", "interface = \"lo\"");
    std::fs::write("/etc/callmeta/callmeta.toml", &edited).expect("edit the conffile");
    let log = dpkg(&["-i"], Some(&debs.upgrade));
    eprintln!("dpkg -i (upgrade):\n{log}");
    assert_eq!(
        installed_status().expect("installed"),
        format!("ii {VERSION}-{UPGRADE_REVISION}")
    );
    assert_eq!(
        std::fs::read_to_string("/etc/callmeta/callmeta.toml").expect("conffile"),
        edited,
        "the upgrade lost the operator's edit"
    );
    let effective = stdout(Command::new("/usr/bin/callmeta").args(["check-config"]));
    assert!(effective.contains("interface = \"lo\""), "{effective}");
    assert_eq!(
        getent("passwd", "callmeta").expect("user")[2],
        uid.to_string()
    );
    assert!(Path::new("/var/lib/callmeta/calls.db").exists());

    // Remove: the program goes, the config, the records and the user stay.
    dpkg(&["-r", "callmeta"], None);
    assert_eq!(
        installed_status().map(|s| s[..2].to_string()),
        Some("rc".to_string())
    );
    for gone in [
        "/usr/bin/callmeta",
        "/usr/lib/systemd/system/callmeta.service",
        "/usr/share/man/man1/callmeta.1.gz",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} survived dpkg -r");
    }
    for kept in ["/etc/callmeta/callmeta.toml", "/var/lib/callmeta/calls.db"] {
        assert!(Path::new(kept).exists(), "dpkg -r deleted {kept}");
    }
    assert!(getent("passwd", "callmeta").is_some());

    // Purge: the config, the records and the unit's enablement go; the user stays.
    dpkg(&["-P", "callmeta"], None);
    assert_eq!(installed_status(), None);
    for gone in ["/etc/callmeta", "/var/lib/callmeta", wants] {
        assert!(
            std::fs::symlink_metadata(gone).is_err(),
            "{gone} survived dpkg -P"
        );
    }
    assert!(
        getent("passwd", "callmeta").is_some(),
        "purge keeps the system user (Debian practice; docs/operations.md)"
    );
}
