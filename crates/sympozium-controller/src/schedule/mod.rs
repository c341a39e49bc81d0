//! The SympoziumSchedule controller: creates an AgentRun `<schedule>-<n>` on every cron
//! tick, honouring `suspend` and the concurrency policy, exactly once per tick.

pub mod build;
pub mod cron;
pub mod plan;
pub mod router;
pub mod trigger;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::labels::{self, SCHEDULE_FINALIZER};
use sympozium_api::schedule::ConcurrencyPolicy;
use sympozium_api::{AgentRun, SympoziumInstance, SympoziumSchedule, SympoziumScheduleStatus};
use sympozium_kube::FIELD_MANAGER;

use self::plan::{Inputs, Plan};
use crate::context::{Context, backoff_key};

/// Name used in metrics and logs.
pub const CONTROLLER: &str = "sympoziumschedule";

/// Errors of one reconcile.
pub use crate::context::ReconcileError as Error;

/// Runs the controller until the process is asked to stop.
pub async fn run(ctx: Arc<Context>) {
    // A run finishing matters to Forbid/Replace: re-evaluate its schedule.
    let run_mapper = |run: AgentRun| {
        let ns = run.namespace()?;
        run.labels().get(labels::SCHEDULE).map(|s| ObjectRef::<SympoziumSchedule>::new(s).within(&ns))
    };
    Controller::new(ctx.scoped::<SympoziumSchedule>(), watcher::Config::default())
        .with_config(ctx.controller_config())
        .watches(ctx.scoped::<AgentRun>(), watcher::Config::default().labels(labels::SCHEDULE), run_mapper)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[tracing::instrument(skip_all, fields(schedule = %schedule.name_any(), namespace = schedule.namespace().unwrap_or_default()))]
async fn reconcile(schedule: Arc<SympoziumSchedule>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = schedule.namespace().unwrap_or_default();
    let api: Api<SympoziumSchedule> = Api::namespaced(ctx.client.clone(), &ns);
    let key = backoff_key(CONTROLLER, &*schedule);
    // Added here, the work goes on in this reconcile (see `crate::finalizers`).
    let schedule = match crate::finalizers::ensure(&api, SCHEDULE_FINALIZER, schedule).await {
        Ok(schedule) => schedule,
        Err(e) => {
            return ctx.settle(&key, Err(kube::runtime::finalizer::Error::AddFinalizer(e)), Error::Finalizer);
        }
    };
    let result = finalizer(&api, SCHEDULE_FINALIZER, schedule, |event| async {
        match event {
            Finalizer::Apply(s) => evaluate(&s, &api, &ctx).await,
            // Runs outlive their schedule (they are history); nothing to clean up.
            Finalizer::Cleanup(_) => Ok(Action::await_change()),
        }
    })
    .await;
    ctx.settle(&key, result, Error::Finalizer)
}

fn requeue_until(next: Timestamp, now: Timestamp, ctx: &Context) -> Action {
    let wait = next.duration_since(now).as_secs_f64().max(0.0);
    let wait = Duration::from_secs_f64(wait).max(Duration::from_millis(200)).min(ctx.schedule_poll);
    Action::requeue(wait)
}

async fn evaluate(
    s: &SympoziumSchedule,
    api: &Api<SympoziumSchedule>,
    ctx: &Context,
) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let status = s.status.clone().unwrap_or_default();
    let created = s.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
    let inputs = Inputs { now, created, generation: s.metadata.generation, spec: &s.spec, status: &status };
    let mut next_status = status.clone();
    // A trigger request runs whatever the plan says (suspended schedules included: the
    // user asked for this run explicitly).
    trigger::handle(s, ctx, &mut next_status, now).await?;
    let action = match plan::plan(&inputs) {
        Plan::Suspended => {
            next_status.phase = Some("Suspended".into());
            next_status.next_run_time = None;
            set_ready(&mut next_status, s, true, "Suspended", "the schedule is suspended");
            Action::requeue(ctx.schedule_poll)
        }
        Plan::Invalid(message) => {
            if status.phase.as_deref() != Some("Error") {
                ctx.publish(s, EventType::Warning, "InvalidSchedule", &message).await;
            }
            next_status.phase = Some("Error".into());
            next_status.next_run_time = None;
            set_ready(&mut next_status, s, false, "InvalidSchedule", &message);
            // A fixed spec triggers a new reconcile; nothing to retry until then.
            Action::await_change()
        }
        Plan::Wait { next } => {
            next_status.phase = Some("Active".into());
            next_status.next_run_time = Some(Time(next));
            set_ready(&mut next_status, s, true, "Active", &format!("next run at {next}"));
            requeue_until(next, now, ctx)
        }
        Plan::Due { tick, missed, next } => fire(s, ctx, &mut next_status, tick, missed, next, now).await?,
    };
    if Some(&next_status) != s.status.as_ref() {
        let patch = serde_json::json!({
            "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumSchedule", "status": next_status,
        });
        api.patch_status(&s.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
            .await?;
    }
    Ok(action)
}

fn is_active(run: &AgentRun) -> bool {
    run.metadata.deletion_timestamp.is_none()
        && matches!(
            run.status.as_ref().and_then(|s| s.phase).unwrap_or_default(),
            AgentRunPhase::Pending | AgentRunPhase::Running | AgentRunPhase::Serving
        )
}

/// Handles a due tick: skip (Forbid), replace, or create the run — once.
async fn fire(
    s: &SympoziumSchedule,
    ctx: &Context,
    status: &mut SympoziumScheduleStatus,
    tick: Timestamp,
    missed: usize,
    next: Timestamp,
    now: Timestamp,
) -> Result<Action, Error> {
    let ns = s.namespace().unwrap_or_default();
    let name = s.name_any();
    let instances: Api<SympoziumInstance> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(instance) = instances.get_opt(&s.spec.instance_ref).await? else {
        let message = format!("SympoziumInstance \"{}\" not found", s.spec.instance_ref);
        status.phase = Some("Error".into());
        set_ready(status, s, false, "InstanceNotFound", &message);
        return Ok(Action::requeue(ctx.schedule_poll));
    };
    let runs_api: Api<AgentRun> = Api::namespaced(ctx.client.clone(), &ns);
    let runs =
        runs_api.list(&ListParams::default().labels(&format!("{}={name}", labels::SCHEDULE))).await?.items;
    let tick_text = tick.to_string();
    let already = runs.iter().find(|r| {
        r.annotations().get(build::SCHEDULED_TIME_ANNOTATION).map(String::as_str) == Some(tick_text.as_str())
    });

    status.phase = Some("Active".into());
    status.next_run_time = Some(Time(next));
    if let Some(run) = already {
        // The run exists but the status write after it was lost: record it, create nothing.
        record_run(status, run, runs.len(), now);
        note_missed(status, s, tick, missed);
        set_ready(status, s, true, "Active", &format!("next run at {next}"));
        return Ok(requeue_until(next, now, ctx));
    }

    let active: Vec<_> = runs.iter().filter(|r| is_active(r)).collect();
    match s.spec.concurrency_policy {
        ConcurrencyPolicy::Forbid if !active.is_empty() => {
            let message = format!("skipped the {tick} tick: {} is still running", active[0].name_any());
            ctx.publish(s, EventType::Normal, "Skipped", &message).await;
            set_ready(status, s, true, "Active", &message);
            return Ok(requeue_until(next, now, ctx));
        }
        ConcurrencyPolicy::Replace => {
            for run in &active {
                runs_api.delete(&run.name_any(), &DeleteParams::background()).await?;
                ctx.publish(
                    s,
                    EventType::Normal,
                    "Replaced",
                    &format!("stopped {} for the {tick} run", run.name_any()),
                )
                .await;
            }
        }
        _ => {}
    }

    let (created, n) =
        create_run(s, ctx, &instance, &runs, status.total_runs, tick, &tick.to_string()).await?;
    ctx.publish(
        s,
        EventType::Normal,
        "Created",
        &format!("created AgentRun {} for the {tick} tick", created.name_any()),
    )
    .await;
    status.last_run_time = Some(Time(now));
    status.last_run_name = Some(created.name_any());
    status.total_runs = n;
    note_missed(status, s, tick, missed);
    set_ready(status, s, true, "Active", &format!("next run at {next}"));
    Ok(requeue_until(next, now, ctx))
}

/// Creates the next run `<schedule>-<n>` for `tick`, recording `scheduled_time` (what makes
/// the creation idempotent) on it; skips numbers a run already holds. Returns it and `n`.
pub(crate) async fn create_run(
    s: &SympoziumSchedule,
    ctx: &Context,
    instance: &SympoziumInstance,
    runs: &[AgentRun],
    total_runs: i64,
    tick: Timestamp,
    scheduled_time: &str,
) -> Result<(AgentRun, i64), Error> {
    let ns = s.namespace().unwrap_or_default();
    let name = s.name_any();
    let runs_api: Api<AgentRun> = Api::namespaced(ctx.client.clone(), &ns);
    let memory = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&format!("{}-memory", s.spec.instance_ref))
        .await?
        .and_then(|cm| cm.data.and_then(|d| d.get("MEMORY.md").cloned()));
    let suffix =
        |r: &AgentRun| r.name_any().strip_prefix(&format!("{name}-")).and_then(|n| n.parse::<i64>().ok());
    let mut n = total_runs.max(runs.iter().filter_map(suffix).max().unwrap_or(0)) + 1;
    loop {
        let mut run = build::run(s, instance, memory.as_deref(), n, tick);
        run.annotations_mut().insert(build::SCHEDULED_TIME_ANNOTATION.into(), scheduled_time.into());
        match runs_api
            .create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &run)
            .await
        {
            Ok(created) => return Ok((created, n)),
            // A run of that name exists (e.g. a user's): take the next number.
            Err(kube::Error::Api(e)) if e.code == 409 && n < total_runs + 100 => n += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reports ticks missed while the controller was away (replacing an older report).
fn note_missed(status: &mut SympoziumScheduleStatus, s: &SympoziumSchedule, tick: Timestamp, missed: usize) {
    status.conditions.retain(|c| c.type_ != "MissedTicks");
    if missed > 1 {
        let message = format!(
            "{missed} ticks passed since {tick} while the controller was not running; ran once to catch up"
        );
        status.conditions.push(condition(
            "MissedTicks",
            true,
            "CaughtUp",
            &message,
            s.metadata.generation,
            None,
        ));
    }
}

fn record_run(status: &mut SympoziumScheduleStatus, run: &AgentRun, existing: usize, now: Timestamp) {
    status.last_run_name = Some(run.name_any());
    status.last_run_time = Some(run.metadata.creation_timestamp.clone().unwrap_or(Time(now)));
    status.total_runs = status.total_runs.max(i64::try_from(existing).unwrap_or(i64::MAX));
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    previous: Option<&Condition>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let since = previous.filter(|p| p.status == status).map(|p| p.last_transition_time.clone());
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: since.unwrap_or_else(|| Time(Timestamp::now())),
        observed_generation: generation,
    }
}

fn set_ready(
    status: &mut SympoziumScheduleStatus,
    s: &SympoziumSchedule,
    ok: bool,
    reason: &str,
    message: &str,
) {
    let previous = status.conditions.iter().find(|c| c.type_ == "Ready").cloned();
    let ready = condition("Ready", ok, reason, message, s.metadata.generation, previous.as_ref());
    status.conditions.retain(|c| c.type_ != "Ready");
    status.conditions.insert(0, ready);
}

fn error_policy(s: Arc<SympoziumSchedule>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retry(CONTROLLER, "kube", &*s, error)
}
