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
