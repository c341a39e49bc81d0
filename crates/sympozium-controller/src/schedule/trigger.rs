//! Manual triggers: the `sympozium.ai/run-now` annotation asks for one run now, whatever the
//! cron says (like `kubectl create job --from=cronjob`). The concurrency policy is not applied
//! to it: the user asked for this run explicitly. Exactly once per request: the run records
//! the request in its scheduled-time annotation (`manual:<value>`), so a retry after a lost
//! write finds it instead of creating another; the annotation is removed afterwards.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use sympozium_api::labels;
use sympozium_api::{AgentRun, SympoziumInstance, SympoziumSchedule, SympoziumScheduleStatus};
use sympozium_kube::FIELD_MANAGER;

use super::Error;
use super::build::{self, SCHEDULED_TIME_ANNOTATION};
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
    let Some(instance) =
        Api::<SympoziumInstance>::namespaced(ctx.client.clone(), &ns).get_opt(&s.spec.instance_ref).await?
    else {
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
        let memory = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&format!("{}-memory", s.spec.instance_ref))
            .await?
            .and_then(|cm| cm.data.and_then(|d| d.get("MEMORY.md").cloned()));
        let suffix =
            |r: &AgentRun| r.name_any().strip_prefix(&format!("{name}-")).and_then(|n| n.parse::<i64>().ok());
        let mut n = status.total_runs.max(runs.iter().filter_map(suffix).max().unwrap_or(0)) + 1;
        let created = loop {
            let mut run = build::run(s, &instance, memory.as_deref(), n, now);
            run.annotations_mut().insert(SCHEDULED_TIME_ANNOTATION.into(), marker.clone());
            match runs_api
                .create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &run)
                .await
            {
                Ok(created) => break created,
                Err(kube::Error::Api(e)) if e.code == 409 && n < status.total_runs + 100 => n += 1,
                Err(e) => return Err(e.into()),
            }
        };
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
