//! LiteLLM's budget durations (`30s`, `5m`, `1h`, `1d`, `1w`, `1mo`, `daily`…) and when a budget
//! next resets (`litellm_core_utils/duration_parser.py`): resets fall on standard boundaries
//! (midnight, Monday, the 1st), in UTC.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Datelike, Duration, Months, NaiveTime, TimeZone, Utc};

/// Whether `value` is a budget in USD: a finite number, 0 or more. Every budget the server
/// accepts (config, API, UI, hooks) is checked here.
pub fn is_valid_budget(value: f64) -> bool {
    value.is_finite() && value >= 0.0
}

/// When a budget period that starts at `now` ends: `None` without a period. Every new or
/// changed period (new users, a hook's, the API's, the UI's) starts here.
pub fn period_end(duration: Option<BudgetDuration>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    duration.map(|duration| duration.next_reset(now))
}

/// The unit of a [`BudgetDuration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationUnit {
    /// `s`
    Seconds,
    /// `m`
    Minutes,
    /// `h`
    Hours,
    /// `d`
    Days,
    /// `w`
    Weeks,
    /// `mo`
    Months,
}

/// A budget period: a positive count of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetDuration {
    count: u32,
    unit: DurationUnit,
}

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid budget duration {0:?}: expected a whole number and a unit (s, m, h, d, w, mo), \
     e.g. 30d, or hourly, daily, weekly, monthly"
)]
pub struct InvalidDuration(pub String);

impl FromStr for BudgetDuration {
    type Err = InvalidDuration;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidDuration(text.to_owned());
        let trimmed = text.trim();
        let (count, unit) = match trimmed {
            "hourly" => (1, DurationUnit::Hours),
            "daily" => (1, DurationUnit::Days),
            "weekly" => (7, DurationUnit::Days),
            "monthly" => (30, DurationUnit::Days),
            _ => {
                let split = trimmed.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
                let (digits, unit) = trimmed.split_at(split);
                let unit = match unit {
                    "s" => DurationUnit::Seconds,
                    "m" => DurationUnit::Minutes,
                    "h" => DurationUnit::Hours,
                    "d" => DurationUnit::Days,
                    "w" => DurationUnit::Weeks,
                    "mo" => DurationUnit::Months,
                    _ => return Err(invalid()),
                };
                (digits.parse::<u32>().map_err(|_| invalid())?, unit)
            }
        };
        if count == 0 || count > 100_000 {
            return Err(invalid());
        }
        Ok(BudgetDuration { count, unit })
    }
}

impl fmt::Display for BudgetDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.unit {
            DurationUnit::Seconds => "s",
            DurationUnit::Minutes => "m",
            DurationUnit::Hours => "h",
            DurationUnit::Days => "d",
            DurationUnit::Weeks => "w",
            DurationUnit::Months => "mo",
        };
        write!(f, "{}{unit}", self.count)
    }
}

impl BudgetDuration {
    /// When a budget with this period, checked at `now`, next resets:
    ///
    /// | period | next reset |
    /// |---|---|
    /// | `1d` | the next midnight |
    /// | `7d`, `1w` | the next Monday, midnight |
    /// | `30d`, `1mo` | the 1st of next month, midnight |
    /// | other `Nd` | today's midnight + N days |
    /// | `Nw` | the next Monday + N-1 weeks |
    /// | `Nmo` | the 1st of the month N months on |
    /// | `Nh`, `Nm`, `Ns` | the next multiple of N hours / minutes / seconds since midnight (at most the next midnight) |
    pub fn next_reset(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let midnight = Utc.from_utc_datetime(&now.date_naive().and_time(NaiveTime::MIN));
        let next_midnight = midnight + Duration::days(1);
        let count = i64::from(self.count);
        let aligned = |step: i64| {
            let since_midnight = (now - midnight).num_seconds();
            let next = (since_midnight / step + 1) * step;
            (midnight + Duration::seconds(next)).min(next_midnight)
        };
        let next_monday = || {
            let days_ahead = 7 - i64::from(now.weekday().num_days_from_monday());
            midnight + Duration::days(days_ahead)
        };
        let first_of_month_in = |months: u32| {
            let first = now.date_naive().with_day(1).unwrap_or(now.date_naive());
            let target = first.checked_add_months(Months::new(months)).unwrap_or(first);
            Utc.from_utc_datetime(&target.and_time(NaiveTime::MIN))
        };
        match (self.unit, self.count) {
            (DurationUnit::Seconds, _) => aligned(count),
            (DurationUnit::Minutes, _) => aligned(count * 60),
            (DurationUnit::Hours, _) => aligned(count * 3600),
            (DurationUnit::Days, 1) => next_midnight,
            (DurationUnit::Days, 7) | (DurationUnit::Weeks, 1) => next_monday(),
            (DurationUnit::Days, 30) | (DurationUnit::Months, 1) => first_of_month_in(1),
            (DurationUnit::Days, _) => midnight + Duration::days(count),
            (DurationUnit::Weeks, _) => next_monday() + Duration::weeks(count - 1),
            (DurationUnit::Months, months) => first_of_month_in(months),
        }
    }
}

impl<'de> serde::Deserialize<'de> for BudgetDuration {
    /// From its text (`30d`, `monthly`…), inside the parser's visit of the value, so that a
    /// config file's error carries the exact key path and line.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = BudgetDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a budget duration such as 30d")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn check(duration: &str, now: &str, expected: &str) {
        let duration: BudgetDuration = duration.parse().unwrap();
        assert_eq!(duration.next_reset(at(now)), at(expected), "{duration} from {now}");
    }

    #[test]
    fn resets_fall_on_standard_boundaries() {
        // 2026-11-27 is a Friday.
        check("1d", "2026-11-27T13:25:00Z", "2026-11-28T00:00:00Z");
        check("daily", "2026-11-27T00:00:00Z", "2026-11-28T00:00:00Z");
        check("7d", "2026-11-27T13:25:00Z", "2026-11-30T00:00:00Z");
        check("1w", "2026-11-30T00:00:01Z", "2026-12-07T00:00:00Z");
        check("weekly", "2026-11-27T13:25:00Z", "2026-11-30T00:00:00Z");
        check("2w", "2026-11-27T13:25:00Z", "2026-12-07T00:00:00Z");
        check("30d", "2026-11-27T13:25:00Z", "2026-12-01T00:00:00Z");
        check("1mo", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z");
        check("monthly", "2026-01-31T10:00:00Z", "2026-02-01T00:00:00Z");
        check("3mo", "2026-11-27T13:25:00Z", "2027-02-01T00:00:00Z");
        check("2d", "2026-11-27T13:25:00Z", "2026-11-29T00:00:00Z");
        check("1h", "2026-11-27T13:25:00Z", "2026-11-27T14:00:00Z");
        check("hourly", "2026-11-27T23:25:00Z", "2026-11-28T00:00:00Z");
        check("5h", "2026-11-27T13:25:00Z", "2026-11-27T15:00:00Z");
        check("7h", "2026-11-27T22:00:00Z", "2026-11-28T00:00:00Z");
        check("15m", "2026-11-27T13:25:00Z", "2026-11-27T13:30:00Z");
        check("30s", "2026-11-27T13:25:10Z", "2026-11-27T13:25:30Z");
    }

    #[test]
    fn bad_durations_say_what_is_expected() {
        for bad in ["", "d", "1", "0d", "-1d", "1y", "1.5d", "1 d", "1mon", "1dd"] {
            let err = bad.parse::<BudgetDuration>().unwrap_err();
            assert!(err.to_string().contains("e.g. 30d"), "{bad}: {err}");
        }
        assert_eq!("30d".parse::<BudgetDuration>().unwrap().to_string(), "30d");
        assert_eq!("weekly".parse::<BudgetDuration>().unwrap().to_string(), "7d");
    }
}
