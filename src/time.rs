//! Time at the edges: integer microseconds UTC inside, RFC 3339 text outside.

use jiff::Timestamp;

/// Formats microseconds since the epoch as `2026-11-29T14:43:16.123456Z`.
pub fn format_us(us: i64) -> String {
    match Timestamp::from_microsecond(us) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        // Out of jiff's range (years beyond ±9999): keep the number rather than lose it.
        Err(_) => format!("@{us}us"),
    }
}

/// The wall clock in microseconds since the epoch. Only the edges use it (retention,
/// a quiet wire's timers, audit entries); records take their times from the data.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Parses an RFC 3339 timestamp (any offset) or a plain date `YYYY-MM-DD` (midnight UTC)
/// into microseconds since the epoch.
pub fn parse_us(text: &str) -> Result<i64, String> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts.as_microsecond());
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return jiff::tz::TimeZone::UTC
            .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
            .map(|ts| ts.as_microsecond())
            .map_err(|e| e.to_string());
    }
    Err(format!(
        "`{text}` is neither an RFC 3339 time (2026-11-29T14:43:16Z) nor a date (2026-11-29)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_microseconds_with_six_digits_and_z() {
        assert_eq!(
            format_us(1_764_427_396_123_456),
            "2025-11-29T14:43:16.123456Z"
        );
        assert_eq!(format_us(0), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn parses_rfc3339_with_offset_and_plain_dates() {
        assert_eq!(
            parse_us("2025-11-29T14:43:16.123456Z"),
            Ok(1_764_427_396_123_456)
        );
        assert_eq!(
            parse_us("2025-11-29T15:43:16.123456+01:00"),
            Ok(1_764_427_396_123_456)
        );
        assert_eq!(parse_us("1970-01-02"), Ok(86_400_000_000));
        assert!(parse_us("yesterday").is_err());
    }
}
