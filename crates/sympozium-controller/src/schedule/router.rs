//! The schedule router: agents manage their own schedules with the `schedule_task` tool,
//! which reaches this router as `schedule.upsert` on the bus. Each request is checked (a
//! bad cron is refused with the reason, so is a new schedule over the instance's limit),
//! applied in the requesting run's namespace, and answered on
//! `schedule.upsert.result.<run>` so the requesting agent's tool call returns the outcome.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sympozium_api::labels;
use sympozium_api::schedule::{ConcurrencyPolicy, ScheduleType};
use sympozium_api::{AgentRun, SympoziumSchedule, SympoziumScheduleSpec};
use sympozium_bus::payloads::ScheduleResult;
use sympozium_bus::{Bus, Delivery, topics};
use sympozium_kube::FIELD_MANAGER;

use super::cron::{CronError, CronSchedule};
use crate::context::Context;

/// Durable consumer name: replicas share it, so each request is handled once.
pub const CONSUMER: &str = "schedule-router";

/// How many agent-managed schedules one instance may hold when the controller is not told
/// otherwise (`--max-agent-schedules`).
pub const DEFAULT_MAX_AGENT_SCHEDULES: usize = 10;

/// A `schedule.upsert` payload, as the `schedule_task` tool writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRequest {
    /// The tool's request id, echoed in the answer so the tool call waiting for it finds it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Schedule name, unique per instance; the object is `<instance>-<name>`.
    #[serde(default)]
    pub name: String,
    /// `create`, `update`, `suspend`, `resume` or `delete`.
    #[serde(default)]
    pub action: String,
    /// 5-field cron expression (create/update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The task (create/update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// What a valid request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Create (or, if it exists, update) the schedule.
    Create {
        /// Cron expression.
        schedule: String,
        /// Task.
        task: String,
    },
    /// Change the expression and/or task and resume.
    Update {
        /// New expression.
        schedule: Option<String>,
        /// New task.
        task: Option<String>,
    },
    /// Suspend (`true`) or resume (`false`).
    Suspend(bool),
    /// Delete the schedule.
    Delete,
}

/// Why a schedule request is invalid in itself (checked before the cluster is asked).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No name or no action.
    #[error("a schedule request needs a name and an action")]
    MissingNameOrAction,
    /// `<instance>-<name>` is not a DNS label.
    #[error(
        "\"{target}\" is not a valid schedule name: use lowercase letters, digits and '-', at most 63 characters in all"
    )]
    InvalidName {
        /// The object name the request would create.
        target: String,
    },
    /// The cron expression does not parse.
    #[error("invalid schedule: {0}")]
    InvalidCron(#[source] CronError),
    /// `create` without a schedule or a task.
    #[error("create needs both a schedule (5-field cron) and a task")]
    CreateIncomplete,
    /// Not one of the five actions.
    #[error("unknown action \"{action}\": use create, update, suspend, resume or delete")]
    UnknownAction {
        /// The action as sent.
        action: String,
    },
}

/// Why a request was not applied; the text is the answer the agent sees.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The request is invalid.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Finding the requesting run failed.
    #[error("looking up run {run}: {source}")]
    RunLookup {
        /// The run's name.
        run: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// No run of that name belongs to the instance.
    #[error("run \"{run}\" of instance \"{instance}\" not found")]
    RunNotFound {
        /// The run's name.
        run: String,
        /// The instance.
        instance: String,
    },
    /// Runs of that name in several namespaces belong to the instance.
    #[error("run \"{run}\" exists in several namespaces; cannot tell which one asked")]
    RunAmbiguous {
        /// The run's name.
        run: String,
    },
    /// The schedule exists but an operator, not the agent, manages it.
    #[error("schedule \"{target}\" is not managed by this agent")]
    NotManaged {
        /// The schedule.
        target: String,
    },
    /// Creating one more would exceed the instance's agent-managed schedules.
    #[error(
        "limit reached: instance \"{instance}\" already has {held} agent-managed schedules (the limit is {limit}); delete one before creating \"{target}\""
    )]
    LimitReached {
        /// The instance.
        instance: String,
        /// Agent-managed schedules it holds.
        held: usize,
        /// The limit.
        limit: usize,
        /// The schedule asked for.
        target: String,
    },
    /// Changing a schedule that does not exist.
    #[error("schedule \"{target}\" does not exist")]
    NotFound {
        /// The schedule.
        target: String,
    },
    /// The request names a namespace this controller does not watch.
    #[error("namespace \"{namespace}\" is not watched by this controller")]
    OutOfScope {
        /// The namespace named.
        namespace: String,
    },
    /// A Kubernetes call failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn non_blank(s: &Option<String>) -> Option<String> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// Validates a request and names its target `<instance>-<name>`.
pub fn plan(req: &ScheduleRequest, instance: &str) -> Result<(String, Change), PlanError> {
    if req.name.trim().is_empty() || req.action.trim().is_empty() {
        return Err(PlanError::MissingNameOrAction);
    }
    let target = format!("{instance}-{}", req.name.trim());
    if !is_dns_label(&target) {
        return Err(PlanError::InvalidName { target });
    }
    let check = |expr: &str| CronSchedule::parse(expr, None).map(|_| ()).map_err(PlanError::InvalidCron);
    let change = match req.action.trim() {
        "create" => {
            let (Some(schedule), Some(task)) = (non_blank(&req.schedule), non_blank(&req.task)) else {
                return Err(PlanError::CreateIncomplete);
            };
            check(&schedule)?;
            Change::Create { schedule, task }
        }
        "update" => {
            let schedule = non_blank(&req.schedule);
            if let Some(s) = &schedule {
                check(s)?;
            }
            Change::Update { schedule, task: non_blank(&req.task) }
        }
        "suspend" => Change::Suspend(true),
        "resume" => Change::Suspend(false),
        "delete" => Change::Delete,
        other => {
            return Err(PlanError::UnknownAction { action: other.to_string() });
        }
    };
    Ok((target, change))
}

/// The namespace of the requesting run: from the envelope when the bridge sends it, else
/// the one namespace holding an AgentRun of that name for that instance.
async fn namespace_of(ctx: &Context, meta: &BTreeMap<String, String>) -> Result<String, ApplyError> {
    if let Some(ns) = meta.get("namespace").filter(|n| !n.is_empty()) {
        if !ctx.in_scope(ns) {
            return Err(ApplyError::OutOfScope { namespace: ns.clone() });
        }
        return Ok(ns.clone());
    }
    let run = meta.get("agentRunID").cloned().unwrap_or_default();
    let instance = meta.get("instanceName").cloned().unwrap_or_default();
    let runs: Api<AgentRun> = ctx.scoped();
    let found = runs
        .list(&ListParams::default().fields(&format!("metadata.name={run}")))
        .await
        .map_err(|source| ApplyError::RunLookup { run: run.clone(), source })?;
    let namespaces: Vec<_> =
        found.iter().filter(|r| r.spec.instance_ref == instance).filter_map(|r| r.namespace()).collect();
    match namespaces.as_slice() {
        [ns] => Ok(ns.clone()),
        [] => Err(ApplyError::RunNotFound { run, instance }),
        _ => Err(ApplyError::RunAmbiguous { run }),
    }
}

fn managed_by_agent(s: &SympoziumSchedule, instance: &str) -> bool {
    s.labels().get(labels::SOURCE).map(String::as_str) == Some("agent")
        && s.labels().get(labels::INSTANCE).map(String::as_str) == Some(instance)
}

/// Applies one request; `Err` carries the reason shown to the agent. A new schedule is
/// refused once the instance holds `settings.max_agent_schedules` agent-managed schedules
/// in the namespace (changing, suspending or deleting existing ones always works).
pub async fn apply(
    ctx: &Context,
    meta: &BTreeMap<String, String>,
    req: &ScheduleRequest,
) -> Result<String, ApplyError> {
    let max_per_instance = ctx.settings.max_agent_schedules;
    let instance = meta.get("instanceName").cloned().unwrap_or_default();
    let (target, change) = plan(req, &instance)?;
    let ns = namespace_of(ctx, meta).await?;
    let api: Api<SympoziumSchedule> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = api.get_opt(&target).await?;
    if let Some(s) = &existing
        && !managed_by_agent(s, &instance)
    {
        return Err(ApplyError::NotManaged { target });
    }
    let merge = |spec: serde_json::Value| Patch::Merge(json!({ "spec": spec }));
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    if existing.is_none() && matches!(change, Change::Create { .. }) {
        let selector = format!("{}={instance},{}=agent", labels::INSTANCE, labels::SOURCE);
        let held = api.list(&ListParams::default().labels(&selector)).await?;
        // One already on its way out (finalizer pending) no longer counts.
        let held = held
            .iter()
            .filter(|s| managed_by_agent(s, &instance) && s.metadata.deletion_timestamp.is_none())
            .count();
        if held >= max_per_instance {
            return Err(ApplyError::LimitReached { instance, held, limit: max_per_instance, target });
        }
    }
    let result = match (change, existing) {
        (Change::Create { schedule, task }, None) => {
            let mut s = SympoziumSchedule::new(
                &target,
                SympoziumScheduleSpec {
                    instance_ref: instance.clone(),
                    schedule,
                    task,
                    type_: ScheduleType::Heartbeat,
                    concurrency_policy: ConcurrencyPolicy::Forbid,
                    include_memory: Some(true),
                    ..Default::default()
                },
            );
            s.metadata.labels = Some(BTreeMap::from([
                (labels::INSTANCE.to_string(), instance.clone()),
                (labels::SOURCE.to_string(), "agent".to_string()),
            ]));
            api.create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &s)
                .await
                .map(|_| ())
        }
        (Change::Create { schedule, task }, Some(_)) => api
            .patch(&target, &params, &merge(json!({"schedule": schedule, "task": task, "suspend": false})))
            .await
            .map(|_| ()),
        (_, None) => return Err(ApplyError::NotFound { target }),
        (Change::Update { schedule, task }, Some(_)) => {
            let mut spec = json!({"suspend": false});
            if let Some(s) = schedule {
                spec["schedule"] = json!(s);
            }
            if let Some(t) = task {
                spec["task"] = json!(t);
            }
            api.patch(&target, &params, &merge(spec)).await.map(|_| ())
        }
        (Change::Suspend(on), Some(_)) => {
            api.patch(&target, &params, &merge(json!({ "suspend": on }))).await.map(|_| ())
        }
        (Change::Delete, Some(_)) => api.delete(&target, &DeleteParams::default()).await.map(|_| ()),
    };
    result?;
    Ok(target)
}

async fn handle(ctx: &Context, bus: &Bus, delivery: &Delivery) {
    let meta = &delivery.envelope.metadata;
    let req: ScheduleRequest = serde_json::from_value(delivery.envelope.data.clone()).unwrap_or_default();
    let instance = meta.get("instanceName").cloned().unwrap_or_default();
    let outcome = apply(ctx, meta, &req).await;
    let result = ScheduleResult {
        id: req.id.clone(),
        name: req.name.clone(),
        action: req.action.clone(),
        schedule: outcome.as_ref().map_or_else(|_| format!("{instance}-{}", req.name), Clone::clone),
        accepted: outcome.is_ok(),
        error: outcome.as_ref().err().map(ToString::to_string),
    };
    match &outcome {
        Ok(target) => {
            tracing::info!(schedule = %target, action = %req.action, "agent schedule request applied")
        }
        Err(reason) => tracing::warn!(action = %req.action, %reason, "agent schedule request refused"),
    }
    let run = meta.get("agentRunID").cloned().unwrap_or_default();
    if !is_subject_token(&run) {
        // No subject can name it (and no bridge listens): nobody to answer.
        tracing::warn!(%run, "schedule request from a run without a usable name: not answered");
        return;
    }
    let mut reply_meta = meta.clone();
    reply_meta.retain(|k, _| matches!(k.as_str(), "agentRunID" | "instanceName" | "namespace"));
    // The run's namespace (from its proven origin, or found by the run's name).
    let ns = match namespace_of(ctx, meta).await {
        Ok(ns) if is_subject_token(&ns) => ns,
        _ => {
            tracing::warn!(%run, "schedule request from a run in no known namespace: not answered");
            return;
        }
    };
    if let Err(e) = bus.publish(&topics::schedule_upsert_result(&ns, &run), reply_meta, &result).await {
        tracing::warn!(error = %e, "could not publish the schedule result");
    }
    // `kubectl describe agentrun` shows what the agent did to its schedules, and why not.
    if let Ok(Some(requester)) = Api::<AgentRun>::namespaced(ctx.client.clone(), &ns).get_opt(&run).await {
        let (type_, reason, note) = match &outcome {
            Ok(target) => (EventType::Normal, "ScheduleChanged", format!("{} {target}", req.action)),
            Err(why) => {
                (EventType::Warning, "ScheduleRefused", format!("{} {}: {why}", req.action, req.name))
            }
        };
        ctx.publish_as(&requester, "ScheduleRequest", type_, reason, &note).await;
    }
}

/// A run name that is exactly one subject token (no dots, wildcards or spaces), so the
/// answer lands on the subject that run's bridge reads and nowhere else.
fn is_subject_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Schedule requests, as [`Bus::serve`] hands them out.
struct Requests {
    ctx: Arc<Context>,
    bus: Bus,
}

impl sympozium_bus::Handler for Requests {
    async fn handle(&mut self, delivery: &mut Delivery) -> sympozium_bus::Outcome {
        match crate::run_origin::pin(&self.bus, delivery) {
            Ok(()) => handle(&self.ctx, &self.bus, delivery).await,
            Err(reason) => tracing::warn!(%reason, "schedule request dropped"),
        }
        // Answered either way (refusals too): a retry would get the same answer.
        sympozium_bus::Outcome::Ack
    }
}

/// Handles `schedule.upsert` requests until the process stops; each instance may hold at
/// most `settings.max_agent_schedules` agent-managed schedules.
pub async fn run(ctx: Arc<Context>, bus: Bus) {
    let handler =
        crate::routers::observed(&ctx, "schedule-router", Requests { ctx: ctx.clone(), bus: bus.clone() });
    bus.serve(CONSUMER, topics::SCHEDULE_UPSERT, handler).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn req(action: &str, schedule: Option<&str>, task: Option<&str>) -> ScheduleRequest {
        ScheduleRequest {
            id: String::new(),
            name: "nightly".into(),
            action: action.into(),
            schedule: schedule.map(Into::into),
            task: task.map(Into::into),
        }
    }

    #[test]
    fn valid_requests() {
        assert_eq!(
            plan(&req("create", Some("0 2 * * *"), Some("report")), "agent").unwrap(),
            ("agent-nightly".into(), Change::Create { schedule: "0 2 * * *".into(), task: "report".into() })
        );
        assert_eq!(
            plan(&req("update", None, Some("new task")), "agent").unwrap().1,
            Change::Update { schedule: None, task: Some("new task".into()) }
        );
        assert_eq!(plan(&req("suspend", None, None), "agent").unwrap().1, Change::Suspend(true));
        assert_eq!(plan(&req("resume", None, None), "agent").unwrap().1, Change::Suspend(false));
        assert_eq!(plan(&req("delete", None, None), "agent").unwrap().1, Change::Delete);
    }

    #[test]
    fn refusals_say_why() {
        assert!(
            plan(&req("create", Some("@daily"), Some("t")), "a")
                .unwrap_err()
                .to_string()
                .contains("invalid schedule")
        );
        assert!(
            plan(&req("create", Some("0 2 * *"), Some("t")), "a")
                .unwrap_err()
                .to_string()
                .contains("has 4 fields")
        );
        assert!(plan(&req("create", None, Some("t")), "a").unwrap_err().to_string().contains("needs both"));
        assert!(plan(&req("explode", None, None), "a").unwrap_err().to_string().contains("unknown action"));
        let mut bad = req("delete", None, None);
        bad.name = "Not_OK".into();
        assert!(plan(&bad, "a").unwrap_err().to_string().contains("not a valid schedule name"));
        assert!(
            plan(&ScheduleRequest::default(), "a")
                .unwrap_err()
                .to_string()
                .contains("needs a name and an action")
        );
    }
}
