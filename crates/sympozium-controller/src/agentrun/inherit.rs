//! What a run inherits from its instance when it does not say (skills, timeout): pure,
//! used by the Pending step (which writes it into the run's spec) and by the phases after.

use std::time::Duration;

use kube::ResourceExt;
use sympozium_api::common::SkillRef;
use sympozium_api::labels;
use sympozium_api::{AgentRun, SympoziumInstance};

/// Timeout when neither the run nor its instance sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Parses a manifest's Go-style duration (`30m`, `1h30m`, `10m0s`, `1.5h`); zero and
/// invalid values (which the CRD schema refuses anyway) mean "not set".
pub fn parse_duration(s: &str) -> Option<Duration> {
    sympozium_protocol::duration::parse(s).ok().filter(|d| !d.is_zero())
}

/// The skills in effect: the run's own, else the instance's (web-proxy runs carry theirs).
pub fn effective_skills(run: &AgentRun, instance: Option<&SympoziumInstance>) -> Vec<SkillRef> {
    let from_web_proxy = run.labels().get(labels::SOURCE).map(String::as_str) == Some("web-proxy");
    match instance {
        Some(i) if run.spec.skills.is_empty() && !from_web_proxy => i.spec.skills.clone(),
        _ => run.spec.skills.clone(),
    }
}

/// The timeout in effect: the run's, else the instance's `runTimeout`, else 10 minutes.
pub fn effective_timeout(run: &AgentRun, instance: Option<&SympoziumInstance>) -> Duration {
    run.spec
        .timeout
        .as_deref()
        .and_then(parse_duration)
        .or_else(|| {
            instance.and_then(|i| i.spec.agents.default.run_timeout.as_deref()).and_then(parse_duration)
        })
        .unwrap_or(DEFAULT_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("10m0s"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("ten"), None);
        assert_eq!(parse_duration(""), None);
    }
}
