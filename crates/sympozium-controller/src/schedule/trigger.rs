//! Manual triggers: the `sympozium.ai/run-now` annotation asks for one run now, whatever the
//! cron says (like `kubectl create job --from=cronjob`). The concurrency policy is not applied
//! to it: the user asked for this run explicitly. Exactly once per request: the run records
//! the request in its scheduled-time annotation (`manual:<value>`), so a retry after a lost
//! write finds it instead of creating another; the annotation is removed afterwards.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use sympozium_api::labels;
use sympozium_api::{AgentRun, SympoziumSchedule, SympoziumScheduleStatus};

use super::Error;
use super::build::SCHEDULED_TIME_ANNOTATION;
use crate::context::Context;

/// The scheduled-time annotation value of the run a trigger request creates.
pub fn marker(request: &str) -> String {
    format!("manual:{request}")
}

/// Handles a pending trigger request, if any; returns whether there was one.
pub async fn handle(
    s: &SympoziumSchedule,
    ctx: &Context,
    status: &mut SympoziumScheduleStatus,
    now: Timestamp,
) -> Result<bool, Error> {
    let Some(request) = s.annotations().get(labels::RUN_NOW).cloned() else { return Ok(false) };
    let ns = s.namespace().unwrap_or_default();
    let name = s.name_any();
    let schedules: Api<SympoziumSchedule> = Api::namespaced(ctx.client.clone(), &ns);
    let clear = serde_json::json!({"metadata": {"annotations": {labels::RUN_NOW: null}}});
    let Some(instance) = ctx.instance(&ns, &s.spec.instance_ref).await? else {
        let message = format!("cannot run now: SympoziumInstance \"{}\" not found", s.spec.instance_ref);
        ctx.publish(s, EventType::Warning, "TriggerFailed", &message).await;
        schedules.patch(&name, &PatchParams::default(), &Patch::Merge(&clear)).await?;
        return Ok(true);
    };
    let runs_api: Api<AgentRun> = Api::namespaced(ctx.client.clone(), &ns);
    let runs =
        runs_api.list(&ListParams::default().labels(&format!("{}={name}", labels::SCHEDULE))).await?.items;
    let marker = marker(&request);
    let existing = runs
        .iter()
        .find(|r| r.annotations().get(SCHEDULED_TIME_ANNOTATION).map(String::as_str) == Some(&marker));
    if existing.is_none() {
        let (created, n) =
            super::create_run(s, ctx, &instance, &runs, status.total_runs, now, &marker).await?;
        ctx.publish(
            s,
            EventType::Normal,
            "Triggered",
            &format!("created AgentRun {} on request", created.name_any()),
        )
        .await;
        status.last_run_time = Some(Time(now));
        status.last_run_name = Some(created.name_any());
        status.total_runs = n;
    }
    schedules.patch(&name, &PatchParams::default(), &Patch::Merge(&clear)).await?;
    Ok(true)
}
