//! Five-field cron schedules (`minute hour day-of-month month day-of-week`, UTC), as
//! CronJobs write them: `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n` and
//! `a-b/n`; day-of-week 0-7 with 0 and 7 both Sunday. When both day fields are
//! restricted a day matching either runs, as in cron.

use k8s_openapi::jiff::civil::{DateTime, date};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{Timestamp, ToSpan};

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_restricted: bool,
    weekdays_restricted: bool,
}

fn field(text: &str, name: &str, min: u32, max: u32) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{name}: step {step:?} is not a positive number"))?;
                (range, step)
            }
            None => (part, 1),
        };
        let number = |s: &str| -> Result<u32, String> {
            s.parse::<u32>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("{name}: {s:?} is not a number from {min} to {max}"))
        };
        let (from, to) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (number(a)?, number(b)?);
            if a > b {
                return Err(format!("{name}: range {range:?} runs backwards"));
            }
            (a, b)
        } else {
            let n = number(range)?;
            // `5/15` means from 5 to the end, every 15.
            (n, if step > 1 { max } else { n })
        };
        let mut v = from;
        while v <= to {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, text != "*"))
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(format!(
                "{text:?} is not a five-field cron schedule (minute hour day-of-month month day-of-week), e.g. \"0 */6 * * *\""
            ));
        };
        let (minutes, _) = field(minute, "minute", 0, 59)?;
        let (hours, _) = field(hour, "hour", 0, 23)?;
        let (days, days_restricted) = field(day, "day of month", 1, 31)?;
        let (months, _) = field(month, "month", 1, 12)?;
        let (mut weekdays, weekdays_restricted) = field(weekday, "day of week", 0, 7)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Self {
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_restricted,
            weekdays_restricted,
        })
    }

    fn day_matches(&self, dt: DateTime) -> bool {
        let day = self.days & (1 << dt.day()) != 0;
        let weekday = self.weekdays & (1 << dt.weekday().to_sunday_zero_offset()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => day || weekday,
            _ => day && weekday,
        }
    }

    /// The first time strictly after `after` (UTC) the schedule fires; `None` when it
    /// never does (`0 0 31 2 *`) within five years.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = after.to_zoned(TimeZone::UTC).datetime();
        let mut dt = start
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let limit = start.checked_add(5.years()).ok()?;
        while dt < limit {
            if self.months & (1 << dt.month()) == 0 {
                let (y, m) = if dt.month() == 12 {
                    (dt.year() + 1, 1)
                } else {
                    (dt.year(), dt.month() + 1)
                };
                dt = date(y, m, 1).at(0, 0, 0, 0);
                continue;
            }
            if !self.day_matches(dt) {
                dt = dt.date().tomorrow().ok()?.at(0, 0, 0, 0);
                continue;
            }
            if self.hours & (1 << dt.hour()) == 0 {
                dt = dt
                    .with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if self.minutes & (1 << dt.minute()) == 0 {
                dt = dt.checked_add(1.minute()).ok()?;
                continue;
            }
            return TimeZone::UTC.to_timestamp(dt).ok();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn next(schedule: &str, after: &str) -> String {
        Schedule::parse(schedule)
            .unwrap()
            .next_after(at(after))
            .unwrap()
            .to_string()
    }

    #[test]
    fn common_schedules() {
        assert_eq!(
            next("0 */6 * * *", "2026-12-04T05:59:30Z"),
            "2026-12-04T06:00:00Z"
        );
        assert_eq!(
            next("0 */6 * * *", "2026-12-04T06:00:00Z"),
            "2026-12-04T12:00:00Z"
        );
        assert_eq!(
            next("*/5 * * * *", "2026-12-04T05:58:00Z"),
            "2026-12-04T06:00:00Z"
        );
        assert_eq!(
            next("30 2 * * 1-5", "2026-12-04T05:00:00Z"),
            "2026-12-07T02:30:00Z",
            "Friday after 02:30 → Monday"
        );
        assert_eq!(
            next("0 0 1 1 *", "2026-12-04T05:00:00Z"),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-12-04T05:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        // Day of month OR day of week when both are restricted: the 15th, or Sundays.
        assert_eq!(
            next("0 12 15 * 0", "2026-12-04T05:00:00Z"),
            "2026-12-06T12:00:00Z"
        );
        assert_eq!(
            next("0 12 * * 7", "2026-12-04T05:00:00Z"),
            "2026-12-06T12:00:00Z"
        );
        assert_eq!(
            next("5/20 * * * *", "2026-12-04T05:06:00Z"),
            "2026-12-04T05:25:00Z"
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (text, says) in [
            ("* * * *", "five-field"),
            ("60 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day of month"),
            ("* * * 13 *", "month"),
            ("* * * * 8", "day of week"),
            ("*/0 * * * *", "step"),
            ("10-5 * * * *", "backwards"),
        ] {
            let error = Schedule::parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
        assert_eq!(
            Schedule::parse("0 0 31 2 *")
                .unwrap()
                .next_after(at("2026-01-01T00:00:00Z")),
            None
        );
    }
}
