//! `schedule_task`: asks the schedule router to create/update/suspend/resume/delete a
//! recurring task by writing `<ipc>/schedules/schedule-<ns>.json`.

use std::path::PathBuf;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{Tool, ToolOutput, required, str_arg};
use crate::llm::ToolSpec;
use crate::util::{unix_nanos, write_json_atomic};

const ACTIONS: [&str; 5] = ["create", "update", "suspend", "resume", "delete"];

/// The tool.
pub struct ScheduleTask {
    /// `<ipc>/schedules`.
    pub dir: PathBuf,
}

fn valid_cron(expr: &str) -> bool {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    fields.len() == 5
        && fields.iter().all(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || "*/,-?".contains(c)))
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
                && !valid_cron(s)
            {
                return ToolOutput::err(format!("schedule {s:?} is not a 5-field cron expression"));
            }
            let mut request = json!({"name": name, "action": action});
            if let Some(s) = schedule {
                request["schedule"] = json!(s);
            }
            if let Some(t) = task {
                request["task"] = json!(t);
            }
            let path = self.dir.join(format!("schedule-{}.json", unix_nanos()));
            match write_json_atomic(&path, &request, false) {
                Ok(()) => ToolOutput::Ok(format!("Schedule request '{action}' for {name:?} submitted.")),
                Err(e) => ToolOutput::err(format!("writing schedule request: {e}")),
            }
        })
    }
}
