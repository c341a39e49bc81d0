//! Go-style duration strings (`"90s"`, `"1h30m"`, `"10m0s"`, `"250ms"`), the form manifests
//! of the original use for timeouts, and the one parser every Sympozium program uses.
//!
//! Manifests follow Go's `time.ParseDuration`: a unit is required. Flags and environment
//! variables may also take a bare number in a unit the flag documents (seconds for
//! timeouts, milliseconds for OpenTelemetry's batch settings, as that convention uses):
//! [`parse_or_bare`].

use std::time::Duration;

/// Why a duration string was refused. The message names the input and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was given.
    #[error("empty duration (expected e.g. 30s, 10m or 1h30m)")]
    Empty,
    /// A number without a unit where a unit is required.
    #[error("{0:?} has no unit (expected e.g. 30s, 10m or 1h30m)")]
    MissingUnit(String),
    /// A unit Go does not know (`d`, `w`, …).
    #[error("{input:?} has unknown unit {unit:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unit found.
        unit: String,
    },
    /// Not a duration at all, or too large to represent.
    #[error("{0:?} is not a duration such as 30s, 10m or 1h30m")]
    Invalid(String),
}

/// A unit a bare number is read in by [`parse_or_bare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareUnit {
    /// `"45"` means 45 seconds.
    Seconds,
    /// `"500"` means 500 milliseconds.
    Milliseconds,
}

/// Parses a Go duration: one or more `<number><unit>` terms (`1h30m`, `1.5h`, `10m0s`),
/// units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`. `"0"` is zero, as in Go.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(DurationError::Invalid(input.to_string()));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| DurationError::Invalid(input.to_string()))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "" => return Err(DurationError::MissingUnit(input.to_string())),
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => {
                return Err(DurationError::UnknownUnit { input: input.to_string(), unit: unit.to_string() });
            }
        };
        rest = &rest[unit_len..];
        total += value * factor;
    }
    Duration::try_from_secs_f64(total).map_err(|_| DurationError::Invalid(input.to_string()))
}

/// Like [`parse`], but a bare number is read in `unit` (flags and environment variables).
pub fn parse_or_bare(input: &str, unit: BareUnit) -> Result<Duration, DurationError> {
    let s = input.trim();
    match s.parse::<f64>() {
        Ok(n) => {
            let secs = match unit {
                BareUnit::Seconds => n,
                BareUnit::Milliseconds => n / 1000.0,
            };
            Duration::try_from_secs_f64(secs).map_err(|_| DurationError::Invalid(input.to_string()))
        }
        Err(_) => parse(s),
    }
}

/// Like [`parse_or_bare`] and refusing zero: for timeouts and intervals, where zero would
/// mean "never wait" or "spin".
pub fn parse_positive(input: &str, unit: BareUnit) -> Result<Duration, DurationError> {
    match parse_or_bare(input, unit)? {
        d if d.is_zero() => Err(DurationError::Invalid(format!("{input} (must be greater than zero)"))),
        d => Ok(d),
    }
}

/// Formats a duration the way Go prints it (`"10m0s"`, `"1h0m0s"`, `"1.500s"`, `"250ms"`),
/// so messages show durations as users wrote them. [`parse`] reads every output back.
pub fn format(d: Duration) -> String {
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    let millis = d.subsec_millis();
    if total == 0 {
        return format!("{millis}ms");
    }
    let sec = if millis == 0 { format!("{s}s") } else { format!("{s}.{millis:03}s") };
    match (h, m) {
        (0, 0) => sec,
        (0, m) => format!("{m}m{sec}"),
        (h, m) => format!("{h}h{m}m{sec}"),
    }
}

/// Whole seconds with an `s` (`"600s"`): how the controller hands a timeout to a pod.
pub fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn go_forms_parse() {
        assert_eq!(parse("10m0s"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse(" 90s "), Ok(Duration::from_secs(90)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn refusals_name_the_input_and_reason() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(parse("30"), Err(DurationError::MissingUnit("30".into())));
        assert_eq!(parse("1h30"), Err(DurationError::MissingUnit("1h30".into())));
        let e = parse("5d").unwrap_err();
        assert_eq!(e.to_string(), "\"5d\" has unknown unit \"d\" (use ns, us, ms, s, m or h)");
        assert!(matches!(parse("ten minutes"), Err(DurationError::Invalid(_))));
        assert!(matches!(parse("99999999999999999999999h"), Err(DurationError::Invalid(_))), "overflow");
        assert!(matches!(parse(".h"), Err(DurationError::Invalid(_))));
    }

    #[test]
    fn bare_numbers_only_where_a_unit_is_documented() {
        assert_eq!(parse_or_bare("45", BareUnit::Seconds), Ok(Duration::from_secs(45)));
        assert_eq!(parse_or_bare("500", BareUnit::Milliseconds), Ok(Duration::from_millis(500)));
        assert_eq!(parse_or_bare("2m", BareUnit::Milliseconds), Ok(Duration::from_secs(120)));
        assert!(
            parse_positive("0s", BareUnit::Seconds).unwrap_err().to_string().contains("greater than zero")
        );
        assert!(parse_or_bare("-5", BareUnit::Seconds).is_err());
    }

    #[test]
    fn formatting_round_trips() {
        assert_eq!(format(Duration::from_secs(600)), "10m0s");
        assert_eq!(format(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format(Duration::from_millis(1500)), "1.500s");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(seconds(Duration::from_secs(900)), "900s");
        for d in [1, 59, 61, 3599, 3601, 86_400] {
            let d = Duration::from_secs(d);
            assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
