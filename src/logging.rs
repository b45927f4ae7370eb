//! The daemon's log: one readable line per finished call or text message, plus its own
//! health, to journald (with structured fields) or stdout (text or JSON).
//!
//! Only record fields are ever logged: never message bytes, bodies or parse input.

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{filter::LevelFilter, fmt, Registry};

use crate::call::{CallRecord, Disposition, EndedBy, MessageRecord, Record};
use crate::config::{LogDestination, LogFormat};
use crate::time::format_us;

/// Sets up the global subscriber. `JOURNAL_STREAM` (set by systemd) selects journald for
/// `auto`; journald gets the record fields as its own fields (`CALL_ID`, `CALLER`,
/// `CALLEE`, `DISPOSITION`), so `journalctl -u callmeta CALLER=+1555...` works.
pub fn init(format: LogFormat, destination: LogDestination, level: &str) -> Result<(), String> {
    let level = match level {
        "error" => Level::ERROR,
        "warn" => Level::WARN,
        "debug" => Level::DEBUG,
        _ => Level::INFO,
    };
    let filter = LevelFilter::from_level(level);
    let journald = match destination {
        LogDestination::Journald => true,
        LogDestination::Stdout => false,
        LogDestination::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
    };
    let result = if journald {
        let layer = tracing_journald::layer()
            .map_err(|e| format!("cannot reach journald: {e}"))?
            .with_field_prefix(None)
            .with_syslog_identifier("callmeta".into());
        Registry::default()
            .with(layer.with_filter(filter))
            .try_init()
    } else {
        match format {
            LogFormat::Json => Registry::default()
                .with(
                    fmt::layer()
                        .json()
                        .flatten_event(true)
                        .with_target(false)
                        .with_writer(std::io::stdout)
                        .with_filter(filter),
                )
                .try_init(),
            LogFormat::Text => Registry::default()
                .with(
                    fmt::layer()
                        .with_target(false)
                        .with_ansi(std::io::stdout().is_terminal())
                        .with_writer(std::io::stdout)
                        .with_filter(filter),
                )
                .try_init(),
        }
    };
    result.map_err(|e| e.to_string())
}

/// Logs one finished record at info level.
pub fn record(r: &Record) {
    match r {
        Record::Call(c) => tracing::info!(
            call_id = %c.call_id,
            caller = %c.caller,
            callee = %c.callee,
            disposition = c.disposition.as_str(),
            "{}",
            call_line(c)
        ),
        Record::Message(m) => tracing::info!(
            call_id = %m.call_id,
            caller = %m.sender,
            callee = %m.recipient,
            "{}",
            message_line(m)
        ),
    }
}

fn seconds(ms: i64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// `call 2026-11-29T14:43:16.123Z +15551230001 -> +15559870002 answered 183.2s by caller
/// status=200 pdd=1.4s udp 10.0.0.5:5060 -> 10.0.0.9:5060 id=<call-id>`: the time is
/// the start, the duration is the talk time for answered calls and the whole attempt
/// otherwise.
pub fn call_line(c: &CallRecord) -> String {
    let started = format_us(c.started_at);
    // Milliseconds are enough for a reader; the store keeps microseconds.
    let started = format!("{}Z", &started[..started.len().saturating_sub(4)]);
    let duration = if c.disposition == Disposition::Answered {
        c.billable_ms()
    } else {
        c.duration_ms()
    };
    let mut line = format!(
        "call {started} {} -> {} {} {}",
        or_dash(&c.caller),
        or_dash(&c.callee),
        c.disposition.as_str(),
        seconds(duration)
    );
    match (c.ended_by, c.hangup_side, c.timeout_reason) {
        (EndedBy::Timeout, _, Some(reason)) => {
            line.push_str(&format!(" timeout={}", reason.as_str()))
        }
        (_, Some(side), _) => line.push_str(&format!(" by {}", side.as_str())),
        _ => {}
    }
    match c.final_status {
        Some(code) => line.push_str(&format!(" status={code}")),
        None => line.push_str(" status=-"),
    }
    if let Some(pdd) = c.pdd_ms {
        line.push_str(&format!(" pdd={}", seconds(pdd)));
    }
    if let Some(cause) = c.reason_cause {
        line.push_str(&format!(" cause={cause}"));
    }
    line.push_str(&format!(
        " {} {} -> {} id={}",
        c.transport,
        std::net::SocketAddr::new(c.src_ip, c.src_port),
        std::net::SocketAddr::new(c.dst_ip, c.dst_port),
        c.call_id
    ));
    line
}

/// `message 2026-11-29T14:43:16.123Z +15551230001 -> +15559870002 status=200 44 bytes ...`
pub fn message_line(m: &MessageRecord) -> String {
    let sent = format_us(m.sent_at);
    let sent = format!("{}Z", &sent[..sent.len().saturating_sub(4)]);
    format!(
        "message {sent} {} -> {} status={} {} bytes {} {} -> {} id={}",
        or_dash(&m.sender),
        or_dash(&m.recipient),
        m.final_status.map_or("-".to_string(), |c| c.to_string()),
        m.size_bytes,
        m.transport,
        std::net::SocketAddr::new(m.src_ip, m.src_port),
        std::net::SocketAddr::new(m.dst_ip, m.dst_port),
        m.call_id
    )
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{Side, TimeoutReason};
    use crate::net::Transport;

    fn call() -> CallRecord {
        CallRecord {
            call_id: "abc@host".into(),
            from_tag: "t".into(),
            started_at: 1_764_427_396_123_456,
            ringing_at: Some(1_764_427_397_500_000),
            answered_at: Some(1_764_427_400_000_000),
            ended_at: 1_764_427_583_200_000,
            last_seen_at: 1_764_427_583_200_000,
            pdd_ms: Some(1376),
            disposition: Disposition::Answered,
            final_status: Some(200),
            ended_by: EndedBy::Bye,
            timeout_reason: None,
            hangup_side: Some(Side::Caller),
            reason_cause: None,
            caller: "+15551230001".into(),
            caller_domain: "a".into(),
            caller_name: None,
            callee: "+15559870002".into(),
            callee_domain: "b".into(),
            asserted_identity: None,
            src_ip: "10.0.0.5".parse().unwrap(),
            src_port: 5060,
            dst_ip: "10.0.0.9".parse().unwrap(),
            dst_port: 5060,
            transport: Transport::Udp,
            user_agent: None,
            server: None,
            codecs: None,
            source: "lo".into(),
        }
    }

    #[test]
    fn an_answered_call_reads_as_one_greppable_line() {
        assert_eq!(
            call_line(&call()),
            "call 2025-11-29T14:43:16.123Z +15551230001 -> +15559870002 answered 183.2s by caller \
             status=200 pdd=1.4s udp 10.0.0.5:5060 -> 10.0.0.9:5060 id=abc@host"
        );
    }

    #[test]
    fn a_timed_out_call_names_its_timer_instead_of_a_side() {
        let mut c = call();
        c.ended_by = EndedBy::Timeout;
        c.hangup_side = None;
        c.timeout_reason = Some(TimeoutReason::SessionExpired);
        assert!(
            call_line(&c).contains(" timeout=session_expired status=200 "),
            "{}",
            call_line(&c)
        );
    }
}
