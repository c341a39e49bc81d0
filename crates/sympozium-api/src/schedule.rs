//! `SympoziumSchedule`: recurring agent runs on a 5-field cron.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a SympoziumSchedule.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "sympozium.ai",
    version = "v1alpha1",
    kind = "SympoziumSchedule",
    doc = "Recurring agent work: creates an AgentRun for an instance on every tick of a 5-field cron expression.",
    category = "sympozium",
    plural = "sympoziumschedules",
    namespaced,
    status = "SympoziumScheduleStatus",
    printcolumn = r#"{"name":"Instance","type":"string","jsonPath":".spec.instanceRef"}"#,
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Last Run","type":"date","jsonPath":".status.lastRunTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SympoziumScheduleSpec {
    /// The SympoziumInstance whose agent runs.
    #[schemars(length(min = 1))]
    pub instance_ref: String,
    /// 5-field cron expression (minute hour day-of-month month day-of-week).
    #[schemars(length(max = 256))]
    #[x_kube(validation = kube::core::Rule::new(r"self.matches('^\\s*[0-9A-Za-z*,/?-]+(\\s+[0-9A-Za-z*,/?-]+){4}\\s*$')").message("must be a 5-field cron expression (minute hour day-of-month month day-of-week), e.g. \"*/15 * * * *\""))]
    pub schedule: String,
    /// The task each run performs.
    #[schemars(length(min = 1))]
    pub task: String,
    /// Kind of schedule (a label; all kinds behave alike).
    #[serde(rename = "type", default)]
    pub type_: ScheduleType,
    /// Pause the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// What to do when the previous run is still active.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// Prepend the instance's memory to the task (default true).
    #[serde(default = "crate::common::default_some_true", skip_serializing_if = "Option::is_none")]
    pub include_memory: Option<bool>,
    /// IANA time zone the cron expression is evaluated in, e.g. `Europe/Warsaw` (default
    /// UTC). Additive to the original API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$')").message("must be an IANA time zone name such as UTC or Europe/Warsaw"))]
    pub time_zone: Option<String>,
}

/// The cron expression for a persona's heartbeat `interval`, staggered by `offset` minutes
/// (persona index × 2) so a team does not hit a shared model all at once. Anything that
/// already looks like a cron expression (contains a space) is returned unchanged; unknown
/// intervals become hourly.
pub fn interval_to_cron(interval: &str, offset: u32) -> String {
    let interval = interval.trim().to_ascii_lowercase();
    if interval.contains(' ') {
        return interval;
    }
    let every = |n: u32| format!("{}/{n} * * * *", offset % n);
    match interval.as_str() {
        "1m" | "1min" => "* * * * *".into(),
        "5m" | "5min" => every(5),
        "10m" | "10min" => every(10),
        "15m" | "15min" => every(15),
        "30m" | "30min" => every(30),
        "1h" | "60m" => format!("{} * * * *", offset % 60),
        "2h" | "3h" | "4h" | "6h" | "12h" => {
            let hours = interval.trim_end_matches('h');
            format!("{} */{hours} * * *", offset % 60)
        }
        "24h" | "1d" => format!("{} 0 * * *", offset % 60),
        _ => format!("{} * * * *", offset % 60),
    }
}

/// Field names and value ranges of the 5 cron fields, in order.
const CRON_FIELDS: [(&str, u32, u32); 5] =
    [("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12), ("day-of-week", 0, 7)];

/// Why `expr` is not a 5-field cron expression the controller runs, `None` when it is one.
/// Checked by clients before they write a schedule (wizards, the API server) so the user
/// hears which field is wrong; the CRD's CEL rule only checks the shape.
pub fn cron_problem(expr: &str) -> Option<String> {
    let expr = expr.trim();
    if expr.is_empty() {
        return Some("is empty; give 5 fields, e.g. \"0 * * * *\" (hourly)".into());
    }
    if expr.starts_with('@') {
        return Some(format!(
            "\"{expr}\": descriptors like @hourly are not supported; use 5 fields, e.g. \"0 * * * *\""
        ));
    }
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return Some(format!(
            "\"{expr}\" has {} fields; a schedule needs exactly 5: minute hour day-of-month month day-of-week",
            fields.len()
        ));
    }
    for (field, (name, min, max)) in fields.iter().zip(CRON_FIELDS) {
        if let Some(bad) = field.chars().find(|c| !(c.is_ascii_alphanumeric() || "*,/?-".contains(*c))) {
            return Some(format!("\"{expr}\": {name} field \"{field}\" has '{bad}'"));
        }
        for part in field.split(',') {
            if part.is_empty() {
                return Some(format!("\"{expr}\": {name} field \"{field}\" has an empty list item"));
            }
            // Steps (`*/90`) are not values; only what comes before the `/` is range-checked.
            let values = part.split('/').next().unwrap_or_default();
            for value in values.split('-').filter_map(|v| v.parse::<u32>().ok()) {
                if !(min..=max).contains(&value) {
                    return Some(format!(
                        "\"{expr}\": {name} field \"{field}\": {value} is out of range {min}-{max}"
                    ));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{cron_problem, interval_to_cron};

    #[test]
    fn interval_table_with_stagger() {
        assert_eq!(interval_to_cron("1m", 4), "* * * * *");
        assert_eq!(interval_to_cron("5min", 7), "2/5 * * * *");
        assert_eq!(interval_to_cron("15m", 2), "2/15 * * * *");
        assert_eq!(interval_to_cron("30m", 0), "0/30 * * * *");
        assert_eq!(interval_to_cron(" 30M ", 32), "2/30 * * * *");
        assert_eq!(interval_to_cron("1h", 62), "2 * * * *");
        assert_eq!(interval_to_cron("6h", 4), "4 */6 * * *");
        assert_eq!(interval_to_cron("1d", 0), "0 0 * * *");
        assert_eq!(interval_to_cron("0 9 * * 1-5", 4), "0 9 * * 1-5");
        assert_eq!(interval_to_cron("", 6), "6 * * * *");
        assert_eq!(interval_to_cron("45m", 6), "6 * * * *");
    }

    #[test]
    fn cron_problems_name_the_field() {
        for ok in ["0 * * * *", "*/30 * * * *", "0 9 * * 1-5", "0 0 1 jan *", "2/15 * * * *", "0 */6 * * *"] {
            assert_eq!(cron_problem(ok), None, "{ok}");
        }
        let why = |e: &str| cron_problem(e).unwrap_or_default();
        assert!(why("").contains("empty"));
        assert!(why("@hourly").contains("descriptors"));
        assert!(why("* * * *").contains("has 4 fields"), "{}", why("* * * *"));
        assert!(why("61 * * * *").contains("minute field \"61\": 61 is out of range 0-59"));
        assert!(why("0 25 * * *").contains("hour field"));
        assert!(why("0 * * 13 *").contains("month field"));
        assert!(why("0 * * * 1;2").contains("day-of-week field"));
        assert!(why("0,, * * * *").contains("empty list item"));
    }
}

/// Kinds of schedule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleType {
    /// Periodic self-check and memory review.
    Heartbeat,
    /// A fixed-time job.
    #[default]
    Scheduled,
    /// A periodic scan for work.
    Sweep,
}

impl ScheduleType {
    /// The lowercase name used in labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Heartbeat => "heartbeat",
            Self::Scheduled => "scheduled",
            Self::Sweep => "sweep",
        }
    }
}

/// Concurrency policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Skip a tick while the previous run is active.
    #[default]
    Forbid,
    /// Start runs regardless.
    Allow,
    /// Stop the active run, then start the new one.
    Replace,
}

/// Observed state of a SympoziumSchedule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SympoziumScheduleStatus {
    /// `Active`, `Suspended` or `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// When the last run was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<Time>,
    /// When the next run is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<Time>,
    /// Name of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_name: Option<String>,
    /// Runs created so far.
    #[serde(default)]
    pub total_runs: i64,
    /// Standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
