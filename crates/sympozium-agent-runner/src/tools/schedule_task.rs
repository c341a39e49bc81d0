//! `schedule_task`: asks the schedule router to create/update/suspend/resume/delete a
//! recurring task by writing `<ipc>/schedules/schedule-<id>.json`
//! (`{id, name, action, schedule?, task?}`), then waits for the router's answer, which the IPC
//! bridge writes to `<ipc>/input/schedule-result-<id>.json`
//! (`{id, name, action, schedule, accepted, error?}`): the tool's result is what the platform
//! did, or why it refused (bad cron, the instance's schedule limit, admission).

use std::path::PathBuf;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{Tool, ToolOutput, required, str_arg};
use crate::llm::ToolSpec;
use crate::util::{unix_nanos, write_json_atomic};
use sympozium_protocol::ipc;

const ACTIONS: [&str; 5] = ["create", "update", "suspend", "resume", "delete"];
const POLL: Duration = Duration::from_millis(200);

/// How long the tool waits for the platform's answer by default.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The tool.
pub struct ScheduleTask {
    /// `<ipc>` root.
    pub ipc: PathBuf,
    /// How long to wait for the answer.
    pub answer_timeout: Duration,
}

impl ScheduleTask {
    /// The tool over the IPC root `ipc`, waiting [`ANSWER_TIMEOUT`] for answers.
    pub fn new(ipc: PathBuf) -> Self {
        Self { ipc, answer_timeout: ANSWER_TIMEOUT }
    }

    async fn answer(&self, id: &str, action: &str, name: &str) -> ToolOutput {
        let path = self.ipc.join(ipc::INPUT).join(ipc::schedule_result(id));
        let deadline = tokio::time::Instant::now() + self.answer_timeout;
        while tokio::time::Instant::now() < deadline {
            if let Ok(bytes) = tokio::fs::read(&path).await
                && let Ok(value) = serde_json::from_slice::<Value>(&bytes)
            {
                let text = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                return if value.get("accepted").and_then(Value::as_bool) == Some(true) {
                    ToolOutput::Ok(format!(
                        "Schedule {action} for {name:?} applied (object {}).",
                        text("schedule")
                    ))
                } else {
                    ToolOutput::err(format!("schedule {action} for {name:?} refused: {}", text("error")))
                };
            }
            tokio::time::sleep(POLL).await;
        }
        ToolOutput::err(format!(
            "schedule {action} for {name:?} was sent but no answer came within {}s, so whether it applied is unknown (the event bus may be down or not configured)",
            self.answer_timeout.as_secs()
        ))
    }
}

/// Checks `expr` with the same 5-field parser the schedule controller uses, so a schedule
/// the controller would refuse is refused here, with the reason, while the agent can fix it.
fn check_cron(expr: &str) -> Result<(), CronError> {
    let fields = expr.split_whitespace().count();
    if fields != 5 || expr.trim_start().starts_with('@') {
        return Err(CronError::Fields(expr.to_string()));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .dom_and_dow(false)
        .sloppy_ranges(true)
        .build()
        .parse(expr.trim())
        .map(|_| ())
        .map_err(|source| CronError::Invalid { expr: expr.to_string(), source })
}

/// Why a schedule the agent asked for is refused.
#[derive(Debug, thiserror::Error)]
enum CronError {
    #[error("schedule {0:?} is not a 5-field cron expression (minute hour day-of-month month day-of-week)")]
    Fields(String),
    #[error("schedule {expr:?} is not a valid cron expression: {source}")]
    Invalid {
        expr: String,
        #[source]
        source: croner::errors::CronError,
    },
}

impl Tool for ScheduleTask {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "schedule_task".into(),
            description: "Create, update, suspend, resume or delete a recurring task of this agent.".into(),
            parameters: json!({"type": "object", "properties": {
                "name": {"type": "string"},
                "action": {"type": "string", "enum": ACTIONS},
                "schedule": {"type": "string", "description": "5-field cron expression"},
                "task": {"type": "string"}},
                "required": ["name", "action"]}),
        }
    }

    fn call(&self, args: Value) -> BoxFuture<'_, ToolOutput> {
        Box::pin(async move {
            let name = match required(&args, "name") {
                Ok(n) => n,
                Err(e) => return e,
            };
            let action = match required(&args, "action") {
                Ok(a) if ACTIONS.contains(&a) => a,
                Ok(a) => {
                    return ToolOutput::err(format!(
                        "unknown action {a:?}; use one of {}",
                        ACTIONS.join(", ")
                    ));
                }
                Err(e) => return e,
            };
            let schedule = str_arg(&args, "schedule").filter(|s| !s.trim().is_empty());
            let task = str_arg(&args, "task").filter(|s| !s.trim().is_empty());
            if action == "create" && (schedule.is_none() || task.is_none()) {
                return ToolOutput::err("create needs both 'schedule' and 'task'");
            }
            if action == "update" && schedule.is_none() && task.is_none() {
                return ToolOutput::err("update needs 'schedule' or 'task'");
            }
            if let Some(s) = schedule
                && let Err(reason) = check_cron(s)
            {
                return ToolOutput::err(reason.to_string());
            }
            let id = unix_nanos().to_string();
            let mut request = json!({"id": id, "name": name, "action": action});
            if let Some(s) = schedule {
                request["schedule"] = json!(s);
            }
            if let Some(t) = task {
                request["task"] = json!(t);
            }
            let path = self.ipc.join(ipc::SCHEDULES).join(ipc::schedule_request(&id));
            if let Err(e) = write_json_atomic(&path, &request, false) {
                return ToolOutput::err(format!("writing schedule request: {e}"));
            }
            self.answer(&id, action, name).await
        })
    }
}

#[cfg(test)]
mod cron_tests {
    use super::check_cron;

    #[test]
    fn the_controllers_rules() {
        assert!(check_cron("*/15 9-17 * * MON-FRI").is_ok());
        assert!(check_cron("2/30 * * * *").is_ok());
        assert!(check_cron("61 * * * *").unwrap_err().to_string().contains("not a valid cron expression"));
        assert!(check_cron("@hourly").unwrap_err().to_string().contains("5-field"));
        assert!(check_cron("0 0 * * * *").unwrap_err().to_string().contains("5-field"));
    }
}
