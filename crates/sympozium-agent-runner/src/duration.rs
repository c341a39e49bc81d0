//! Durations in the runner's environment (`RUN_TIMEOUT`, approval timeouts, LLM timeouts):
//! Go-style strings (`"90s"`, `"1h30m"`), or a bare number of seconds.

use std::time::Duration;

use sympozium_protocol::duration::{BareUnit, parse_or_bare};
pub use sympozium_protocol::duration::{DurationError, format as format_duration};

/// Parses a Go duration string; a bare number is taken as seconds.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    parse_or_bare(input, BareUnit::Seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations_and_bare_seconds() {
        assert_eq!(parse_duration("10m0s"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("ten minutes").is_err());
        assert!(parse_duration("5d").is_err());
        assert_eq!(format_duration(Duration::from_secs(600)), "10m0s");
    }
}
