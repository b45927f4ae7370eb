//! The configuration file (`/etc/callmeta/callmeta.toml`): typed, every key documented in
//! `config/callmeta.toml`, unknown keys refused.
//!
//! Parsing errors come from serde/toml with the line, the key and the allowed names;
//! semantic checks (`validate`) report every problem at once, each naming its key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::call::TrackerConfig;
use crate::net::NetConfig;

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

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub source: Sources,
    pub store: StoreSection,
    pub calls: CallsSection,
    pub retention: RetentionSection,
    pub privacy: PrivacySection,
    pub logging: LoggingSection,
    pub net: NetSection,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sources {
    /// Live capture sources, one capture thread each.
    pub capture: Vec<CaptureSource>,
    /// PBX trace logs followed like `tail -F` (docs/sources.md).
    pub log: Vec<LogSource>,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            capture: vec![CaptureSource::default()],
            log: Vec::new(),
        }
    }
}

/// A PBX's SIP-trace log followed across rotation (`[[source.log]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSource {
    /// The log file, e.g. /var/log/asterisk/full.
    pub path: PathBuf,
    /// `asterisk-pjsip`, `asterisk-chansip`, `freeswitch`, `kamailio-sipdump` or `cisco`.
    pub format: String,
    /// IANA zone the log writes local times in; `None`: the host's zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Year of dates written without one; `None`: the year that puts the time closest
    /// before now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub year: Option<i16>,
    /// The PBX's own SIP address (`ip:port`), the other end of every logged peer.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "local_address"
    )]
    pub local_address: Option<std::net::SocketAddr>,
    /// How growth is noticed: `inotify` (default; polling when inotify cannot watch the
    /// log's directory) or `poll` (network file systems, where inotify misses writes made
    /// on other hosts).
    pub watch: LogWatch,
}

/// `[[source.log]] watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogWatch {
    #[default]
    Inotify,
    Poll,
}

/// Why a log-reading setting is refused: a `[[source.log]]` key or the `ingest` flag of
/// the same name. The caller names the key or flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogSettingError {
    #[error("`{0}` is not a time zone name (e.g. Europe/Berlin, UTC)")]
    TimeZone(String),
    #[error("{0} is not a year between 1970 and 2100")]
    Year(i64),
    #[error("`{0}` is not an IP:PORT address (e.g. 192.0.2.10:5060, [2001:db8::10]:5060)")]
    Address(String),
}

/// A log's zone (`timezone`, `--timezone`): an IANA name.
pub fn log_time_zone(name: &str) -> Result<jiff::tz::TimeZone, LogSettingError> {
    crate::source::log::time::time_zone(name)
        .ok_or_else(|| LogSettingError::TimeZone(name.to_string()))
}

/// The year of a log's year-less dates (`year`, `--year`). Outside 1970-2100 it can only
/// be a typo, and would put every record far outside the retention window.
pub fn log_year(year: i64) -> Result<i16, LogSettingError> {
    i16::try_from(year)
        .ok()
        .filter(|y| (1970..=2100).contains(y))
        .ok_or(LogSettingError::Year(year))
}

/// The PBX's own SIP address (`local_address`, `--local-address`).
pub fn log_local_address(text: &str) -> Result<std::net::SocketAddr, LogSettingError> {
    text.parse()
        .map_err(|_| LogSettingError::Address(text.to_string()))
}

/// `local_address` through [`log_local_address`], so the file and the flag say the same.
fn local_address<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::net::SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    log_local_address(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl Default for LogSource {
    fn default() -> Self {
        LogSource {
            path: PathBuf::new(),
            format: String::new(),
            timezone: None,
            year: None,
            local_address: None,
            watch: LogWatch::Inotify,
        }
    }
}

impl LogSource {
    /// What `source::log::Follower::open` takes; `None` when `problems()` reports this
    /// source (unknown format or zone).
    pub fn follow_config(&self) -> Option<crate::source::log::FollowConfig> {
        let format = crate::source::log::LogFormat::from_name(&self.format)?;
        let timezone = match &self.timezone {
            Some(name) => log_time_zone(name).ok()?,
            None => crate::source::log::time::host_time_zone(),
        };
        if let Some(year) = self.year {
            log_year(year.into()).ok()?;
        }
        Some(crate::source::log::FollowConfig {
            path: self.path.clone(),
            format,
            timezone,
            year: self.year,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// The SQLite database file. Default: `$STATE_DIRECTORY/calls.db` under systemd,
    /// else /var/lib/callmeta/calls.db.
    pub path: Option<PathBuf>,
    /// Records per transaction at most.
    pub batch_size: usize,
    /// A transaction is committed at least this often while records arrive.
    #[serde(with = "duration")]
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

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsSection {
    /// Open dialogs kept at most; past it the oldest is closed (`timeout_reason = evicted`).
    pub max_open_dialogs: usize,
    /// RFC 3261 Timer B: an unanswered INVITE is closed this long after its last retransmission.
    #[serde(with = "duration")]
    pub transaction_timeout: Duration,
    /// A ringing call with no final response is closed this long after the last provisional.
    #[serde(with = "duration")]
    pub ring_timeout: Duration,
    /// An answered call with no BYE and no session timer is closed at this duration.
    #[serde(with = "duration")]
    pub max_call_duration: Duration,
    /// A finished call waits this long for other hops' copies before it is written.
    #[serde(with = "duration")]
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

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSection {
    /// Records whose call ended longer ago than this are deleted.
    #[serde(with = "duration")]
    pub window: Duration,
    /// Records whose call ended longer ago than this have caller, callee, names and
    /// addresses replaced by pseudonyms (under `[privacy] key_file`) until they are
    /// deleted; durations and dispositions stay. `None`: kept as written until deletion.
    #[serde(with = "duration_opt", skip_serializing_if = "Option::is_none")]
    pub anonymise_after: Option<Duration>,
}

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection {
            window: Duration::from_secs(90 * 86_400),
            anonymise_after: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacySection {
    /// Fields replaced by keyed pseudonyms before they are written (`crate::privacy::Field`
    /// names): caller, callee, caller_name, asserted_identity, src_ip, dst_ip.
    pub pseudonymise: Vec<String>,
    /// The HMAC key of the pseudonyms; created (0600) at first start when missing.
    pub key_file: PathBuf,
}

impl Default for PrivacySection {
    fn default() -> Self {
        PrivacySection {
            pseudonymise: Vec::new(),
            key_file: PathBuf::from(crate::privacy::DEFAULT_KEY_FILE),
        }
    }
}

/// How transport payloads are found beyond plain UDP: TLS and WebSocket ports, the
/// any-port heuristic, and the caps of IP defragmentation and TCP reassembly
/// (docs/network.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetSection {
    /// TCP ports where SIP is over TLS: counted per peer, never readable.
    pub tls_ports: Vec<u16>,
    /// TCP ports carrying SIP over WebSocket (RFC 7118).
    pub ws_ports: Vec<u16>,
    /// Recognise SIP on any UDP/TCP port by its start line (capture files, and live
    /// traffic the kernel filter let through).
    pub heuristic: bool,
    pub defrag_max_datagrams: usize,
    pub defrag_max_bytes: usize,
    #[serde(with = "duration")]
    pub defrag_timeout: Duration,
    pub tcp_max_connections: usize,
    pub tcp_max_stream_bytes: usize,
    pub tcp_max_bytes: usize,
    #[serde(with = "duration")]
    pub tcp_idle_timeout: Duration,
    #[serde(with = "duration")]
    pub tcp_gap_timeout: Duration,
}

impl Default for NetSection {
    fn default() -> Self {
        let n = NetConfig::default();
        NetSection {
            tls_ports: n.tls_ports,
            ws_ports: n.ws_ports,
            heuristic: n.heuristic,
            defrag_max_datagrams: n.defrag_max_datagrams,
            defrag_max_bytes: n.defrag_max_bytes,
            defrag_timeout: n.defrag_timeout,
            tcp_max_connections: n.tcp_max_connections,
            tcp_max_stream_bytes: n.tcp_max_stream_bytes,
            tcp_max_bytes: n.tcp_max_bytes,
            tcp_idle_timeout: n.tcp_idle_timeout,
            tcp_gap_timeout: n.tcp_gap_timeout,
        }
    }
}

impl NetSection {
    /// The decoder's settings for a source capturing `ports`: those that are not TLS or
    /// WebSocket ports carry plain SIP.
    pub fn net_config(&self, ports: &[u16]) -> NetConfig {
        let sip_ports = ports
            .iter()
            .copied()
            .filter(|p| !self.tls_ports.contains(p) && !self.ws_ports.contains(p))
            .collect();
        NetConfig {
            sip_ports,
            tls_ports: self.tls_ports.clone(),
            ws_ports: self.ws_ports.clone(),
            heuristic: self.heuristic,
            defrag_max_datagrams: self.defrag_max_datagrams,
            defrag_max_bytes: self.defrag_max_bytes,
            defrag_timeout: self.defrag_timeout,
            tcp_max_connections: self.tcp_max_connections,
            tcp_max_stream_bytes: self.tcp_max_stream_bytes,
            tcp_max_bytes: self.tcp_max_bytes,
            tcp_idle_timeout: self.tcp_idle_timeout,
            tcp_gap_timeout: self.tcp_gap_timeout,
        }
    }

    /// The ports the live kernel filter lets through for a source capturing `ports`.
    pub fn filter_ports(&self, ports: &[u16]) -> Vec<u16> {
        let mut all: Vec<u16> = ports
            .iter()
            .chain(&self.tls_ports)
            .chain(&self.ws_ports)
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogDestination {
    /// journald when started by systemd (`JOURNAL_STREAM` set), else stdout.
    Auto,
    Stdout,
    Journald,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
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
        let mut logs = std::collections::HashSet::new();
        for (i, l) in self.source.log.iter().enumerate() {
            let key = format!("source.log[{i}]");
            if l.path.as_os_str().is_empty() {
                p.push(format!("{key}.path: must name the log file"));
            } else if !logs.insert(l.path.as_path()) {
                p.push(format!(
                    "{key}.path: `{}` is listed twice",
                    l.path.display()
                ));
            }
            if crate::source::log::LogFormat::from_name(&l.format).is_none() {
                p.push(format!(
                    "{key}.format: `{}` is not one of asterisk-pjsip, asterisk-chansip, \
                     freeswitch, kamailio-sipdump, cisco",
                    l.format
                ));
            }
            if let Some(Err(e)) = l.timezone.as_deref().map(log_time_zone) {
                p.push(format!("{key}.timezone: {e}"));
            }
            if let Some(Err(e)) = l.year.map(|y| log_year(y.into())) {
                p.push(format!("{key}.year: {e}"));
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
        for (name, n) in [
            ("net.defrag_max_datagrams", self.net.defrag_max_datagrams),
            ("net.defrag_max_bytes", self.net.defrag_max_bytes),
            ("net.tcp_max_connections", self.net.tcp_max_connections),
            ("net.tcp_max_stream_bytes", self.net.tcp_max_stream_bytes),
            ("net.tcp_max_bytes", self.net.tcp_max_bytes),
        ] {
            if n == 0 {
                p.push(format!("{name}: must be at least 1"));
            }
        }
        if self.net.tcp_max_stream_bytes > self.net.tcp_max_bytes {
            p.push("net.tcp_max_stream_bytes: must not exceed net.tcp_max_bytes".into());
        }
        if self.net.tls_ports.contains(&0) || self.net.ws_ports.contains(&0) {
            p.push("net.tls_ports / net.ws_ports: 0 is not a port (1-65535)".into());
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
        if let Some(after) = self.retention.anonymise_after {
            if after.is_zero() || after >= self.retention.window {
                p.push(format!(
                    "retention.anonymise_after: {} must be longer than 0s and shorter than \
                     retention.window ({}), or records are deleted before they are anonymised",
                    humantime::format_duration(after),
                    humantime::format_duration(self.retention.window)
                ));
            }
        }
        for name in &self.privacy.pseudonymise {
            if crate::privacy::Field::from_name(name).is_none() {
                p.push(format!(
                    "privacy.pseudonymise: `{name}` is not one of {}",
                    crate::privacy::Field::names()
                ));
            }
        }
        if self.privacy.key_file.as_os_str().is_empty() {
            p.push("privacy.key_file: must name a file".into());
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

/// Durations as people write them (`90d`, `32s`, `500ms`, `2w`), in and out: parsed by
/// humantime, printed in the largest unit that is exact (humantime would print 90 days
/// as `2months 29days 2h 52m 48s`).
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration ({e}); write e.g. 500ms, 32s, 5m, 4h, 90d, 2w"
            ))
        })
    }

    pub fn format(d: Duration) -> String {
        if d.subsec_nanos() != 0 {
            return format!("{}ms", d.as_millis());
        }
        let secs = d.as_secs();
        for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
            if secs != 0 && secs % size == 0 {
                return format!("{}{unit}", secs / size);
            }
        }
        format!("{secs}s")
    }
}

/// [`duration`] for optional keys.
mod duration_opt {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
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
            ("[privacy]", "pseudonymize = []"),
            ("[logging]", "fmt = \"json\""),
            ("[[source.capture]]", "iface = \"lo\""),
            ("[net]", "tls = [1]"),
            ("[[source.log]]", "file = \"/var/log/asterisk/full\""),
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
    fn the_effective_config_prints_in_exact_units_and_parses_back() {
        let cfg = Config::default();
        let text = toml::to_string_pretty(&cfg).expect("serialise");
        assert!(
            text.contains("window = \"90d\"") && text.contains("ring_timeout = \"3m\""),
            "{text}"
        );
        assert_eq!(parse(&text).expect("round trip"), cfg);
    }

    #[test]
    fn privacy_and_anonymise_after_are_read_and_checked() {
        let cfg = parse(
            "[retention]\nanonymise_after = \"30d\"\n[privacy]\npseudonymise = [\"caller\", \"src_ip\"]\nkey_file = \"/k\"\n",
        )
        .expect("privacy");
        assert_eq!(
            cfg.retention.anonymise_after,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(cfg.privacy.pseudonymise, vec!["caller", "src_ip"]);
        let err = parse(
            "[retention]\nanonymise_after = \"91d\"\n[privacy]\npseudonymise = [\"phone\"]\n",
        )
        .expect_err("invalid")
        .to_string();
        assert!(err.contains("retention.anonymise_after"), "{err}");
        assert!(err.contains("`phone`") && err.contains("dst_ip"), "{err}");
    }

    #[test]
    fn a_log_source_reads_every_key_and_gives_its_follow_config() {
        let cfg = parse(
            "[[source.log]]\npath = \"/var/log/asterisk/full\"\nformat = \"asterisk-pjsip\"\n\
             timezone = \"Europe/Berlin\"\nyear = 2025\nlocal_address = \"192.0.2.10:5060\"\n",
        )
        .expect("log source");
        let log = &cfg.source.log[0];
        assert_eq!(log.local_address, "192.0.2.10:5060".parse().ok());
        let follow = log.follow_config().expect("valid");
        assert_eq!(follow.format, crate::source::log::LogFormat::AsteriskPjsip);
        assert_eq!(follow.year, Some(2025));
    }

    #[test]
    fn log_source_problems_name_their_keys() {
        let err = parse(
            "[[source.log]]\nformat = \"asterisk\"\ntimezone = \"Mars/Olympus\"\nyear = 1900\n",
        )
        .expect_err("invalid")
        .to_string();
        for key in [
            "source.log[0].path",
            "source.log[0].format",
            "source.log[0].timezone",
            "source.log[0].year",
        ] {
            assert!(err.contains(key), "{key} missing from: {err}");
        }
    }

    #[test]
    fn a_bad_local_address_names_the_key_and_the_expected_form() {
        let err = parse(
            "[[source.log]]\npath = \"/l\"\nformat = \"cisco\"\nlocal_address = \"192.0.2.10\"\n",
        )
        .expect_err("no port")
        .to_string();
        assert!(
            err.contains("local_address") && err.contains("line 4"),
            "{err}"
        );
        assert!(
            err.contains("`192.0.2.10` is not an IP:PORT address"),
            "{err}"
        );
    }

    #[test]
    fn durations_take_humantime_units() {
        let cfg = parse("[retention]\nwindow = \"2w\"\n[calls]\nring_timeout = \"90s\"\n")
            .expect("units");
        assert_eq!(cfg.retention.window, Duration::from_secs(14 * 86_400));
        assert_eq!(cfg.calls.tracker().ring_timeout, 90_000_000);
    }
}
