//! 5-field cron expressions (minute hour day-of-month month day-of-week) evaluated in an
//! IANA time zone. Ranges, lists, steps (also `2/30`) and month/day names work; seconds,
//! years and `@`-descriptors are refused.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// A parsed schedule: the expression and the time zone it runs in.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    tz: TimeZone,
}

/// Field names and value ranges of the 5 fields, in order.
const FIELDS: [(&str, u32, u32); 5] =
    [("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12), ("day-of-week", 0, 7)];

/// Why a schedule expression or time zone is refused; the message says what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum CronError {
    /// A number outside its field's range.
    #[error("\"{expr}\": {field_name} field \"{field}\": {value} is out of range {min}-{max}")]
    OutOfRange {
        /// The whole expression.
        expr: String,
        /// The field's name (`minute`, …).
        field_name: &'static str,
        /// The field as written.
        field: String,
        /// The number out of range.
        value: u32,
        /// The field's smallest value.
        min: u32,
        /// The field's largest value.
        max: u32,
    },
    /// An `@`-descriptor.
    #[error("\"{0}\": descriptors like @hourly are not supported; use 5 fields, e.g. \"0 * * * *\"")]
    Descriptor(String),
    /// Not 5 fields.
    #[error(
        "\"{expr}\" has {fields} fields; a schedule needs exactly 5: minute hour day-of-month month day-of-week"
    )]
    FieldCount {
        /// The whole expression.
        expr: String,
        /// How many fields it has.
        fields: usize,
    },
    /// The cron parser refused it.
    #[error("\"{expr}\": {source}")]
    Syntax {
        /// The whole expression.
        expr: String,
        /// The parser's error.
        #[source]
        source: croner::errors::CronError,
    },
    /// The time zone is not in the IANA database.
    #[error("unknown time zone \"{name}\"")]
    TimeZone {
        /// The name given.
        name: String,
        /// The lookup's error.
        #[source]
        source: jiff::Error,
    },
    /// No tick follows (e.g. 30 February).
    #[error("no next tick: {0}")]
    NoNextTick(#[source] croner::errors::CronError),
}

/// Names the field and the number when a number is out of its field's range (the cron
/// parser only says "Number out of bounds"). Steps (`*/90`) are not values and pass.
fn check_ranges(expr: &str) -> Result<(), CronError> {
    for (field, (name, min, max)) in expr.split_whitespace().zip(FIELDS) {
        for part in field.split(',') {
            let values = part.split('/').next().unwrap_or_default();
            for value in values.split('-').filter_map(|v| v.parse::<u32>().ok()) {
                if !(min..=max).contains(&value) {
                    return Err(CronError::OutOfRange {
                        expr: expr.to_string(),
                        field_name: name,
                        field: field.to_string(),
                        value,
                        min,
                        max,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Upper bound on ticks counted when reporting missed ones.
pub const MAX_COUNTED_TICKS: usize = 1000;

impl CronSchedule {
    /// Parses `expr` for time zone `tz` (UTC when `None`). The error says what is wrong.
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Self, CronError> {
        let expr = expr.trim();
        if expr.starts_with('@') {
            return Err(CronError::Descriptor(expr.to_string()));
        }
        let fields = expr.split_whitespace().count();
        if fields != 5 {
            return Err(CronError::FieldCount { expr: expr.to_string(), fields });
        }
        check_ranges(expr)?;
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .dom_and_dow(false)
            .sloppy_ranges(true)
            .build();
        let cron =
            parser.parse(expr).map_err(|source| CronError::Syntax { expr: expr.to_string(), source })?;
        let tz = match tz.map(str::trim).filter(|t| !t.is_empty()) {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name)
                .map_err(|source| CronError::TimeZone { name: name.to_string(), source })?,
        };
        Ok(Self { cron, tz })
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Result<Timestamp, CronError> {
        let zoned = after.to_zoned(self.tz.clone());
        self.cron.find_next_occurrence(&zoned, false).map(|z| z.timestamp()).map_err(CronError::NoNextTick)
    }

    /// Ticks in `[from, to]`, counted up to [`MAX_COUNTED_TICKS`].
    pub fn ticks_between(&self, from: Timestamp, to: Timestamp) -> usize {
        let zoned = from.to_zoned(self.tz.clone());
        let mut count = 0;
        let mut cursor = match self.cron.find_next_occurrence(&zoned, true) {
            Ok(z) => z,
            Err(_) => return 0,
        };
        while cursor.timestamp() <= to && count < MAX_COUNTED_TICKS {
            count += 1;
            cursor = match self.cron.find_next_occurrence(&cursor, false) {
                Ok(z) => z,
                Err(_) => break,
            };
        }
        count
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn steps_ranges_lists_and_names() {
        let c = CronSchedule::parse("*/15 9-17 * * MON-FRI", None).unwrap();
        // Saturday 2026-11-21 → next is Monday 09:00 UTC.
        assert_eq!(c.next_after(ts("2026-11-21T12:00:00Z")).unwrap(), ts("2026-11-23T09:00:00Z"));
        assert_eq!(c.next_after(ts("2026-11-23T09:00:00Z")).unwrap(), ts("2026-11-23T09:15:00Z"));
        let c = CronSchedule::parse("0 8,20 1 JAN *", None).unwrap();
        assert_eq!(c.next_after(ts("2026-11-23T00:00:00Z")).unwrap(), ts("2027-01-01T08:00:00Z"));
    }

    #[test]
    fn staggered_persona_intervals_parse() {
        let c = CronSchedule::parse("2/30 * * * *", None).unwrap();
        assert_eq!(c.next_after(ts("2026-11-23T10:00:00Z")).unwrap(), ts("2026-11-23T10:02:00Z"));
        assert_eq!(c.next_after(ts("2026-11-23T10:02:00Z")).unwrap(), ts("2026-11-23T10:32:00Z"));
    }

    #[test]
    fn time_zones_shift_the_ticks() {
        let c = CronSchedule::parse("0 9 * * *", Some("Europe/Warsaw")).unwrap();
        // 09:00 in Warsaw is 08:00 UTC in winter.
        assert_eq!(c.next_after(ts("2026-11-23T00:00:00Z")).unwrap(), ts("2026-11-23T08:00:00Z"));
        assert!(
            CronSchedule::parse("0 9 * * *", Some("Mars/Olympus"))
                .unwrap_err()
                .to_string()
                .contains("unknown time zone")
        );
    }

    #[test]
    fn clear_errors_for_bad_expressions() {
        assert!(CronSchedule::parse("@hourly", None).unwrap_err().to_string().contains("descriptors"));
        assert!(CronSchedule::parse("0 */5 * * * *", None).unwrap_err().to_string().contains("has 6 fields"));
        for (expr, says) in [("61 * * * *", "minute"), ("* * 32 * *", "day-of-month"), ("* 25 * * *", "hour")]
        {
            let e = CronSchedule::parse(expr, None).unwrap_err().to_string();
            assert!(e.contains(says), "{expr}: {e}");
        }
    }

    #[test]
    fn counts_missed_ticks() {
        let c = CronSchedule::parse("*/10 * * * *", None).unwrap();
        assert_eq!(c.ticks_between(ts("2026-11-23T10:00:00Z"), ts("2026-11-23T10:35:00Z")), 4);
        assert_eq!(c.ticks_between(ts("2026-11-23T10:01:00Z"), ts("2026-11-23T10:05:00Z")), 0);
    }
}
