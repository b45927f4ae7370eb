//! The configuration file (`/etc/callmeta/callmeta.toml`): typed, every key documented in
//! `config/callmeta.toml`, unknown keys refused.
//!
//! Parsing errors come from serde/toml with the line, the key and the allowed names;
//! semantic checks (`validate`) report every problem at once, each naming its key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::call::TrackerConfig;

/// Where the store lives when neither the config nor `--db` says.
pub const DEFAULT_DB: &str = "/var/lib/callmeta/calls.db";
/// The config file read when `-c` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/callmeta/callmeta.toml";
/// SIP ports captured by default: 5060 (UDP/TCP), 5061 (TLS, counted only), 5080.
pub const DEFAULT_PORTS: [u16; 3] = [5060, 5061, 5080];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub source: Sources,
    pub store: StoreSection,
    pub calls: CallsSection,
    pub retention: RetentionSection,
    pub logging: LoggingSection,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sources {
    /// Live capture sources, one capture thread each.
    pub capture: Vec<CaptureSource>,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            capture: vec![CaptureSource::default()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureSource {
    /// Interface name, or `any` for all interfaces (Linux cooked capture).
    pub interface: String,
    /// SIP ports the kernel filter lets through (UDP and TCP).
    pub ports: Vec<u16>,
    /// Put the interface in promiscuous mode (a span or mirror port needs it).
    pub promiscuous: bool,
    /// Kernel capture buffer, bytes.
    pub buffer_size: u32,
    /// Bytes kept of each frame; SIP over UDP can be 64 KiB.
    pub snaplen: u32,
}

impl Default for CaptureSource {
    fn default() -> Self {
        CaptureSource {
            interface: "any".into(),
            ports: DEFAULT_PORTS.to_vec(),
            promiscuous: false,
            buffer_size: 32 << 20,
            snaplen: 65_535,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// The SQLite database file. Default: `$STATE_DIRECTORY/calls.db` under systemd,
    /// else /var/lib/callmeta/calls.db.
    pub path: Option<PathBuf>,
    /// Records per transaction at most.
    pub batch_size: usize,
    /// A transaction is committed at least this often while records arrive.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Finished records held for the writer; past it they are counted and dropped.
    pub queue: usize,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            path: None,
            batch_size: 500,
            flush_interval: Duration::from_secs(1),
            queue: 100_000,
        }
    }
}

impl StoreSection {
    /// The database path: the configured one, else systemd's state directory, else the default.
    pub fn effective_path(&self) -> PathBuf {
        if let Some(p) = &self.path {
            return p.clone();
        }
        match std::env::var_os("STATE_DIRECTORY") {
            // systemd may list several directories separated by ':'; ours is the first.
            Some(dirs) => {
                let first = dirs
                    .to_string_lossy()
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                Path::new(&first).join("calls.db")
            }
            None => PathBuf::from(DEFAULT_DB),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsSection {
    /// Open dialogs kept at most; past it the oldest is closed (`timeout_reason = evicted`).
    pub max_open_dialogs: usize,
    /// RFC 3261 Timer B: an unanswered INVITE is closed this long after its last retransmission.
    #[serde(with = "humantime_serde")]
    pub transaction_timeout: Duration,
    /// A ringing call with no final response is closed this long after the last provisional.
    #[serde(with = "humantime_serde")]
    pub ring_timeout: Duration,
    /// An answered call with no BYE and no session timer is closed at this duration.
    #[serde(with = "humantime_serde")]
    pub max_call_duration: Duration,
    /// A finished call waits this long for other hops' copies before it is written.
    #[serde(with = "humantime_serde")]
    pub settle: Duration,
}

impl Default for CallsSection {
    fn default() -> Self {
        let t = TrackerConfig::default();
        let d = |us: i64| Duration::from_micros(us as u64);
        CallsSection {
            max_open_dialogs: t.max_open_dialogs,
            transaction_timeout: d(t.transaction_timeout),
            ring_timeout: d(t.ring_timeout),
            max_call_duration: d(t.max_call_duration),
            settle: d(t.settle),
        }
    }
}

impl CallsSection {
    pub fn tracker(&self) -> TrackerConfig {
        let us = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        TrackerConfig {
            max_open_dialogs: self.max_open_dialogs,
            transaction_timeout: us(self.transaction_timeout),
            ring_timeout: us(self.ring_timeout),
            max_call_duration: us(self.max_call_duration),
            settle: us(self.settle),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSection {
    /// Records whose call ended longer ago than this are deleted.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection {
            window: Duration::from_secs(90 * 86_400),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogDestination {
    /// journald when started by systemd (`JOURNAL_STREAM` set), else stdout.
    Auto,
    Stdout,
    Journald,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSection {
    pub format: LogFormat,
    pub destination: LogDestination,
    /// `error`, `warn`, `info` or `debug`.
    pub level: String,
}

impl Default for LoggingSection {
    fn default() -> Self {
        LoggingSection {
            format: LogFormat::Text,
            destination: LogDestination::Auto,
            level: "info".into(),
        }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parses and validates config text; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let problems = cfg.problems();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }

    /// Every semantic problem, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (i, c) in self.source.capture.iter().enumerate() {
            let key = format!("source.capture[{i}]");
            if c.interface.trim().is_empty() {
                p.push(format!("{key}.interface: must name an interface or `any`"));
            }
            if c.ports.is_empty() {
                p.push(format!(
                    "{key}.ports: must list at least one port (1-65535)"
                ));
            }
            if c.ports.contains(&0) {
                p.push(format!("{key}.ports: 0 is not a port (1-65535)"));
            }
            if c.snaplen < 1500 {
                p.push(format!("{key}.snaplen: {} would cut SIP messages; use at least 1500 (65535 recommended)", c.snaplen));
            }
            if c.buffer_size < 1 << 20 {
                p.push(format!(
                    "{key}.buffer_size: {} bytes is too small for bursts; use at least 1048576",
                    c.buffer_size
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.source.capture {
            if !seen.insert(c.interface.as_str()) {
                p.push(format!(
                    "source.capture: interface `{}` is listed twice",
                    c.interface
                ));
            }
        }
        if self.store.batch_size == 0 {
            p.push("store.batch_size: must be at least 1".into());
        }
        if self.store.queue == 0 {
            p.push("store.queue: must be at least 1".into());
        }
        if self.store.flush_interval.is_zero() {
            p.push("store.flush_interval: must be longer than 0s".into());
        }
        if self.calls.max_open_dialogs == 0 {
            p.push("calls.max_open_dialogs: must be at least 1".into());
        }
        for (name, d) in [
            ("calls.transaction_timeout", self.calls.transaction_timeout),
            ("calls.ring_timeout", self.calls.ring_timeout),
            ("calls.max_call_duration", self.calls.max_call_duration),
        ] {
            if d.is_zero() {
                p.push(format!("{name}: must be longer than 0s"));
            }
        }
        if self.retention.window < Duration::from_secs(3600) {
            p.push("retention.window: must be at least 1h".into());
        }
        if !matches!(
            self.logging.level.as_str(),
            "error" | "warn" | "info" | "debug"
        ) {
            p.push(format!(
                "logging.level: `{}` is not one of error, warn, info, debug",
                self.logging.level
            ));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("test.toml"), text)
    }

    #[test]
    fn an_empty_file_gives_the_built_in_defaults() {
        let cfg = parse("").expect("empty config");
        assert_eq!(cfg, Config::default());
        assert_eq!(cfg.source.capture[0].interface, "any");
        assert_eq!(cfg.source.capture[0].ports, vec![5060, 5061, 5080]);
    }

    #[test]
    fn the_shipped_config_parses_to_the_defaults() {
        let text = include_str!("../config/callmeta.toml");
        assert_eq!(parse(text).expect("shipped config"), Config::default());
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_name_line_and_the_allowed_keys() {
        for (table, body) in [
            ("", "colour = 1"),
            ("[store]", "pathh = \"x\""),
            ("[calls]", "ring = \"1s\""),
            ("[retention]", "windw = \"1d\""),
            ("[logging]", "fmt = \"json\""),
            ("[[source.capture]]", "iface = \"lo\""),
        ] {
            let text = format!("{table}\n{body}\n");
            let err = parse(&text).expect_err(&text).to_string();
            let key = body.split(' ').next().unwrap_or_default();
            assert!(err.contains(key), "{err}");
            assert!(
                err.contains("line 2") || (table.is_empty() && err.contains("line 1")),
                "{err}"
            );
            assert!(err.contains("expected"), "{err}");
        }
    }

    #[test]
    fn a_bad_duration_names_the_key() {
        let err = parse("[calls]\nring_timeout = \"soon\"\n")
            .expect_err("bad duration")
            .to_string();
        assert!(err.contains("ring_timeout"), "{err}");
    }

    #[test]
    fn semantic_problems_are_all_reported_at_once() {
        let err = parse("[store]\nbatch_size = 0\n[calls]\nmax_open_dialogs = 0\n[[source.capture]]\ninterface = \"\"\nports = [0]\n")
            .expect_err("invalid")
            .to_string();
        for key in [
            "store.batch_size",
            "calls.max_open_dialogs",
            "source.capture[0].interface",
            "source.capture[0].ports",
        ] {
            assert!(err.contains(key), "{key} missing from: {err}");
        }
    }

    #[test]
    fn durations_take_humantime_units() {
        let cfg = parse("[retention]\nwindow = \"2w\"\n[calls]\nring_timeout = \"90s\"\n")
            .expect("units");
        assert_eq!(cfg.retention.window, Duration::from_secs(14 * 86_400));
        assert_eq!(cfg.calls.tracker().ring_timeout, 90_000_000);
    }
}
