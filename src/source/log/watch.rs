//! Noticing that a followed log grew, through inotify (the `notify` crate), for the
//! daemon's control plane.
//!
//! The directory of each log is watched rather than the file: a rename rotation or a
//! logrotate `create` replaces the file, and a watch on the old inode would go quiet
//! exactly when the new file starts. Events are passed to the control plane's tokio
//! loop through a bounded channel; the control plane wakes the log's pipeline thread,
//! which reads with [`super::follow::Follower::poll`] as before. Nothing here reads the
//! file: a missed or merged event costs latency only, since the pipeline still looks at
//! the file on a slow timer, and an overflowing queue (the kernel's or ours) wakes every
//! log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Events queued between notify's thread and the control plane; beyond it, every log is
/// woken once instead (the queue bounds memory when a log is written faster than the
/// control plane turns).
const QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("inotify is not available: {0} (see fs.inotify.max_user_instances)")]
    Init(notify::Error),
    #[error("cannot watch directory {}: {source} (see fs.inotify.max_user_watches)", .dir.display())]
    Watch { dir: PathBuf, source: notify::Error },
}

/// What woke the control plane.
#[derive(Debug, PartialEq, Eq)]
pub enum Woken {
    /// Entries of a watched directory that changed.
    Paths(Vec<PathBuf>),
    /// Events were lost (queue overflow, a rescan notice, a watch error): look at every log.
    All,
}

/// The inotify watches of the followed logs' directories.
pub struct LogWatcher {
    watcher: notify::RecommendedWatcher,
    /// Watched directory → the number of logs in it.
    dirs: HashMap<PathBuf, usize>,
    events: mpsc::Receiver<Woken>,
    overflow: Arc<AtomicBool>,
}

/// The directory a log's events name it under: its parent as written in the config, `.`
/// for a bare file name (notify joins entry names to the path it was given).
pub fn watched_dir(log: &Path) -> PathBuf {
    match log.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether a change to `changed` concerns the log at `log`: the log itself, or a file
/// beside it whose name starts with the log's (its rotated copies: `full.1`,
/// `full-20261129`, `full.2026-11-29.0`), which a writer may still append to through an
/// open descriptor after the rename.
pub fn concerns(log: &Path, changed: &Path) -> bool {
    let (Some(name), Some(other)) = (log.file_name(), changed.file_name()) else {
        return false;
    };
    changed.parent() == Some(watched_dir(log).as_path())
        && other
            .as_encoded_bytes()
            .starts_with(name.as_encoded_bytes())
}

impl LogWatcher {
    /// Starts inotify (no watches yet). Must be called inside the tokio runtime.
    pub fn new() -> Result<LogWatcher, WatchError> {
        let (tx, events) = mpsc::channel(QUEUE);
        let overflow = Arc::new(AtomicBool::new(false));
        let lost = Arc::clone(&overflow);
        let watcher = notify::recommended_watcher(move |e: notify::Result<Event>| {
            let woken = match e {
                // Our own reads (open, access, close without write) change nothing.
                Ok(e) if matches!(e.kind, EventKind::Access(_)) && !e.need_rescan() => return,
                Ok(e) if !e.need_rescan() => Woken::Paths(e.paths),
                _ => Woken::All,
            };
            if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(woken) {
                lost.store(true, Ordering::Release);
            }
        })
        .map_err(WatchError::Init)?;
        Ok(LogWatcher {
            watcher,
            dirs: HashMap::new(),
            events,
            overflow,
        })
    }

    /// Watches the directory of `log` (once for all logs in it).
    pub fn watch(&mut self, log: &Path) -> Result<(), WatchError> {
        let dir = watched_dir(log);
        if let Some(n) = self.dirs.get_mut(&dir) {
            *n += 1;
            return Ok(());
        }
        self.watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch {
                dir: dir.clone(),
                source,
            })?;
        self.dirs.insert(dir, 1);
        Ok(())
    }

    /// Drops one log's share of its directory's watch.
    pub fn unwatch(&mut self, log: &Path) {
        let dir = watched_dir(log);
        if let Some(n) = self.dirs.get_mut(&dir) {
            *n -= 1;
            if *n == 0 {
                self.dirs.remove(&dir);
                // The directory may be gone already, taking its watch with it.
                let _ = self.watcher.unwatch(&dir);
            }
        }
    }

    /// The next change; never returns while nothing changes.
    pub async fn next(&mut self) -> Woken {
        if self.overflow.swap(false, Ordering::Acquire) {
            return Woken::All;
        }
        match self.events.recv().await {
            Some(w) => {
                if self.overflow.swap(false, Ordering::Acquire) {
                    Woken::All
                } else {
                    w
                }
            }
            // notify's thread is gone: nothing more will come, the timers carry on.
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    #[test]
    fn a_rotated_copy_beside_the_log_concerns_it_and_other_files_do_not() {
        let log = Path::new("/var/log/asterisk/full");
        assert!(concerns(log, Path::new("/var/log/asterisk/full")));
        assert!(concerns(log, Path::new("/var/log/asterisk/full.1")));
        assert!(concerns(log, Path::new("/var/log/asterisk/full-20261129")));
        assert!(!concerns(log, Path::new("/var/log/asterisk/messages")));
        assert!(!concerns(log, Path::new("/var/log/other/full")));
    }

    #[test]
    fn a_bare_file_name_is_watched_in_the_current_directory() {
        assert_eq!(watched_dir(Path::new("full")), PathBuf::from("."));
        assert!(concerns(Path::new("full"), Path::new("./full")));
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    }

    /// Waits for an event naming `path`, up to a bound that only a missing event reaches.
    async fn woken_for(w: &mut LogWatcher, path: &Path) -> bool {
        let wait = async {
            loop {
                match w.next().await {
                    Woken::All => return true,
                    Woken::Paths(p) if p.iter().any(|p| p == path) => return true,
                    Woken::Paths(_) => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .unwrap_or(false)
    }

    #[test]
    fn an_append_to_a_watched_log_is_reported_with_its_path() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("full");
        std::fs::write(&log, b"first\n").expect("writing the log");
        runtime().block_on(async {
            let mut w = LogWatcher::new().expect("inotify");
            w.watch(&log).expect("a watch on the directory");
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&log)
                .expect("opening the log");
            f.write_all(b"second\n").expect("appending");
            assert!(woken_for(&mut w, &log).await);
        });
    }

    #[test]
    fn a_log_created_after_the_watch_began_is_reported() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("full");
        runtime().block_on(async {
            let mut w = LogWatcher::new().expect("inotify");
            w.watch(&log).expect("a watch on the directory");
            std::fs::write(&log, b"new file\n").expect("creating the log");
            assert!(woken_for(&mut w, &log).await);
        });
    }

    #[test]
    fn a_missing_directory_cannot_be_watched_and_says_which() {
        runtime().block_on(async {
            let mut w = LogWatcher::new().expect("inotify");
            let err = w
                .watch(Path::new("/nonexistent-callmeta-dir/full"))
                .expect_err("no such directory");
            assert!(
                err.to_string().contains("/nonexistent-callmeta-dir"),
                "{err}"
            );
        });
    }

    #[test]
    fn two_logs_in_one_directory_share_its_watch_until_both_are_gone() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        runtime().block_on(async {
            let mut w = LogWatcher::new().expect("inotify");
            w.watch(&dir.path().join("a")).expect("watch a");
            w.watch(&dir.path().join("b")).expect("watch b");
            assert_eq!(w.dirs.get(dir.path()), Some(&2));
            w.unwatch(&dir.path().join("a"));
            assert_eq!(w.dirs.get(dir.path()), Some(&1));
            w.unwatch(&dir.path().join("b"));
            assert!(w.dirs.is_empty());
        });
    }
}
