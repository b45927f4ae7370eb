//! Turning the times logs print into microseconds UTC.
//!
//! PBX logs write local time, usually without a zone and often without a year (Asterisk's
//! default `%b %e %T`, Cisco's `datetime msec`) or without a date at all (sofia-sip's
//! `at HH:MM:SS.uuuuuu`, PBX_LOGS.md §3.1). The missing parts come from configuration
//! (`timezone`, `year`) or the file: the year that puts the time closest before the file's
//! modification time, the date of the nearest dated line, with midnight roll-over.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::text::Stamp;

const DAY_US: i64 = 86_400_000_000;

/// Slack when choosing a year: a line may be stamped a little after the reference time
/// (clock steps, a zone set one hour off) without being pushed back a whole year.
const YEAR_SLACK_US: i64 = DAY_US;

/// A time-of-day smaller than the previous one by more than this is the next day
/// (midnight roll-over); smaller steps are interleaved threads writing out of order.
const ROLLOVER_BACKSTEP_US: i64 = 3600 * 1_000_000;

/// A stamp without its microseconds: (year, month, day, hour, minute, second).
type StampKey = (Option<i16>, i8, i8, i8, i8, i8);

/// Converts log times for one source.
#[derive(Debug, Clone)]
pub struct LogClock {
    tz: TimeZone,
    year: Option<i16>,
    /// The file's modification time, µs UTC: what a missing year or date is inferred from.
    reference_us: i64,
    /// The date of time-of-day-only stamps, and the last such time (µs since midnight).
    day: Option<Date>,
    last_tod_us: Option<i64>,
    /// One-entry cache: the last stamp converted, without its microseconds.
    cache: Option<(StampKey, i64)>,
}

impl LogClock {
    pub fn new(tz: TimeZone, year: Option<i16>, reference_us: i64) -> LogClock {
        LogClock {
            tz,
            year,
            reference_us,
            day: None,
            last_tod_us: None,
            cache: None,
        }
    }

    /// The zone local times are read in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    pub fn reference_us(&self) -> i64 {
        self.reference_us
    }

    /// Moves the reference forward (a followed file keeps growing).
    pub fn set_reference_us(&mut self, reference_us: i64) {
        self.reference_us = reference_us;
    }

    /// A stamp in local time; a missing year is the configured one, else the one that puts
    /// the time closest before the reference. `None` for a date that does not exist.
    pub fn stamp_us(&mut self, s: &Stamp) -> Option<i64> {
        self.stamp_in(s, None)
    }

    /// A stamp read in UTC (Cisco `service timestamps` without `localtime`, shown as `UTC`).
    pub fn stamp_utc_us(&mut self, s: &Stamp) -> Option<i64> {
        self.stamp_in(s, Some(&TimeZone::UTC))
    }

    fn stamp_in(&mut self, s: &Stamp, tz: Option<&TimeZone>) -> Option<i64> {
        let key = (s.year, s.month, s.day, s.hour, s.minute, s.second);
        if tz.is_none() {
            if let Some((k, us)) = self.cache {
                if k == key {
                    return Some(us + i64::from(s.micros));
                }
            }
        }
        let tz = tz.unwrap_or(&self.tz).clone();
        let at = |year: i16| -> Option<i64> {
            let dt = DateTime::new(year, s.month, s.day, s.hour, s.minute, s.second, 0).ok()?;
            let ts = tz.to_ambiguous_timestamp(dt).compatible().ok()?;
            Some(ts.as_microsecond())
        };
        let base = match s.year.or(self.year) {
            Some(y) => at(y)?,
            None => {
                let ref_year = self.local_date(self.reference_us)?.year();
                [
                    ref_year + 1,
                    ref_year,
                    ref_year - 1,
                    ref_year - 2,
                    ref_year - 3,
                    ref_year - 4,
                ]
                .into_iter()
                .filter_map(at)
                .find(|&us| us <= self.reference_us + YEAR_SLACK_US)?
            }
        };
        self.cache = Some((key, base));
        Some(base + i64::from(s.micros))
    }

    fn local_date(&self, us: i64) -> Option<Date> {
        let ts = Timestamp::from_microsecond(us).ok()?;
        Some(self.tz.to_datetime(ts).date())
    }

    /// Sets the date time-of-day stamps belong to (from a dated line nearby).
    pub fn set_day(&mut self, day: Date, tod_us: i64) {
        self.day = Some(day);
        self.last_tod_us = Some(tod_us);
    }

    /// The local date of the reference time: the default date of time-of-day stamps.
    pub fn reference_day(&self) -> Option<Date> {
        self.local_date(self.reference_us)
    }

    /// A time of day (local) on the current date, rolling over to the next day at midnight.
    pub fn time_of_day_us(&mut self, hour: i8, minute: i8, second: i8, micros: i32) -> Option<i64> {
        let tod = ((i64::from(hour) * 60 + i64::from(minute)) * 60 + i64::from(second)) * 1_000_000
            + i64::from(micros);
        let mut day = match self.day {
            Some(d) => d,
            None => self.reference_day()?,
        };
        if let Some(last) = self.last_tod_us {
            if tod + ROLLOVER_BACKSTEP_US < last {
                day = day.tomorrow().ok()?;
            }
        }
        self.day = Some(day);
        self.last_tod_us = Some(tod);
        let dt = day.to_datetime(jiff::civil::Time::new(hour, minute, second, 0).ok()?);
        let ts = self.tz.to_ambiguous_timestamp(dt).compatible().ok()?;
        Some(ts.as_microsecond() + i64::from(micros))
    }

    /// The local date of a full stamp (FreeSWITCH log lines carry one).
    pub fn stamp_date(s: &Stamp) -> Option<Date> {
        Date::new(s.year?, s.month, s.day).ok()
    }

    /// Moves the current date back by `days` (the file's roll-overs counted before the
    /// reference date was known).
    pub fn start_day_before(&mut self, day: Date, days: u32) {
        let mut d = day;
        for _ in 0..days {
            match d.yesterday() {
                Ok(y) => d = y,
                Err(_) => break,
            }
        }
        self.day = Some(d);
        self.last_tod_us = None;
    }

    /// Micro-seconds since local midnight of a stamp's time.
    pub fn tod_of(s: &Stamp) -> i64 {
        ((i64::from(s.hour) * 60 + i64::from(s.minute)) * 60 + i64::from(s.second)) * 1_000_000
            + i64::from(s.micros)
    }

    /// Whether a time of day would roll over after `last` (same rule as
    /// [`LogClock::time_of_day_us`]); used by the pre-scan that counts roll-overs.
    pub fn rolls_over(last: i64, tod: i64) -> bool {
        tod + ROLLOVER_BACKSTEP_US < last
    }
}

/// The host's zone, or UTC when it cannot be determined.
pub fn host_time_zone() -> TimeZone {
    TimeZone::try_system().unwrap_or(TimeZone::UTC)
}

/// Looks a zone up by IANA name (`Europe/Berlin`, `UTC`).
pub fn time_zone(name: &str) -> Option<TimeZone> {
    TimeZone::get(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::log::text::month_day_time;

    fn us(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_microsecond()
    }

    #[test]
    fn a_missing_year_is_the_one_closest_before_the_reference() {
        let mut c = LogClock::new(TimeZone::UTC, None, us("2025-01-03T00:00:00Z"));
        let (_, dec) = month_day_time(b"Dec 31 23:59:59").unwrap();
        let (_, jan) = month_day_time(b"Jan  2 10:15:00.250").unwrap();
        assert_eq!(c.stamp_us(&dec), Some(us("2024-12-31T23:59:59Z")));
        assert_eq!(c.stamp_us(&jan), Some(us("2025-01-02T10:15:00.25Z")));
    }

    #[test]
    fn configured_year_and_zone_apply() {
        let tz = time_zone("Europe/Berlin").unwrap();
        let mut c = LogClock::new(tz, Some(2020), 0);
        let (_, s) = month_day_time(b"Jul  1 12:00:00").unwrap();
        assert_eq!(c.stamp_us(&s), Some(us("2020-07-01T10:00:00Z")));
    }

    #[test]
    fn time_of_day_rolls_over_at_midnight_but_not_on_small_steps_back() {
        let mut c = LogClock::new(TimeZone::UTC, None, 0);
        c.set_day(Date::new(2024, 8, 31).unwrap(), 0);
        assert_eq!(
            c.time_of_day_us(23, 59, 59, 0),
            Some(us("2024-08-31T23:59:59Z"))
        );
        assert_eq!(
            c.time_of_day_us(23, 59, 58, 0),
            Some(us("2024-08-31T23:59:58Z"))
        );
        assert_eq!(
            c.time_of_day_us(0, 0, 1, 5),
            Some(us("2024-09-01T00:00:01.000005Z"))
        );
    }
}
