//! PostRunning: the hooks run in their own Job after the agent; the run finishes with the
//! agent's outcome once they are done (a failed hook is reported, never hides the outcome).

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{DeleteParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_kube::apply::create_if_absent;

use super::hooks::{post_run_job, post_run_job_name};
use super::{Error, publish, terminal};
use crate::context::Context;

/// How long post-run hooks may take, counted from their own start.
pub const POST_RUN_BUDGET: Duration = Duration::from_secs(600);

/// Starts the hooks: stops the agent's Job (sidecars never exit) and creates the post-run Job.
pub async fn start(run: &AgentRun, api: &Api<AgentRun>, ctx: &Context) -> Result<Action, Error> {
    let ns = run.namespace().unwrap_or_default();
    let status = run.status.clone().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(agent_job) = &status.job_name {
        let dp =
            DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
        if let Err(e) = jobs.delete(agent_job, &dp).await
            && !sympozium_kube::apply::is_not_found(&e)
        {
            return Err(e.into());
        }
    }
    let exit_code = status.exit_code.unwrap_or(1);
    let answer = status.result.clone().or(status.error.clone()).unwrap_or_default();
    let job = post_run_job(run, exit_code, &answer, &ctx.settings.busybox_image);
    create_if_absent(&jobs, &job).await?;
    let job_name = post_run_job_name(run);
    let moved = terminal::transition(api, ctx, run, &[AgentRunPhase::Running], |s| {
        s.phase = Some(AgentRunPhase::PostRunning);
        s.post_run_job_name = Some(job_name.clone());
    })
    .await?;
    if moved {
        publish(ctx, run, EventType::Normal, "PostRun", &format!("running post-run hooks in Job {job_name}"))
            .await;
    }
    Ok(Action::requeue(Duration::from_secs(5)))
}

/// Finishes the run from the stored outcome; `hooks_failed` adds the PostRunFailed condition.
async fn finish(
    run: &AgentRun,
    api: &Api<AgentRun>,
    ctx: &Context,
    hooks_failed: Option<&str>,
) -> Result<Action, Error> {
    let now = Time(ctx.clock.now());
    let reason = hooks_failed.map(str::to_string);
    terminal::transition(api, ctx, run, &[AgentRunPhase::PostRunning], |s| {
        s.phase = Some(if s.exit_code == Some(0) { AgentRunPhase::Succeeded } else { AgentRunPhase::Failed });
        s.completed_at = Some(now.clone());
        if let Some(message) = &reason {
            s.conditions.retain(|c| c.type_ != "PostRunFailed");
            s.conditions.push(Condition {
                type_: "PostRunFailed".into(),
                status: "True".into(),
                reason: "PostRunJobFailed".into(),
                message: message.clone(),
                last_transition_time: now.clone(),
                observed_generation: run.metadata.generation,
            });
        }
    })
    .await?;
    if let Some(message) = hooks_failed {
        publish(ctx, run, EventType::Warning, "PostRunFailed", message).await;
    }
    Ok(Action::requeue(Duration::from_secs(1)))
}

/// The PostRunning step.
pub async fn post_running(
    run: &AgentRun,
    api: &Api<AgentRun>,
    ctx: &Context,
    stores: &super::Stores,
) -> Result<Action, Error> {
    let ns = run.namespace().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(name) = run.status.as_ref().and_then(|s| s.post_run_job_name.clone()) else {
        return finish(run, api, ctx, Some("post-run Job name missing")).await;
    };
    let Some(job) = super::running::fetch_job(stores, &jobs, &ns, &name).await? else {
        return finish(run, api, ctx, Some(&format!("post-run Job {name} disappeared"))).await;
    };
    let status = job.status.clone().unwrap_or_default();
    if status.succeeded.unwrap_or(0) > 0 {
        return finish(run, api, ctx, None).await;
    }
    if status.failed.unwrap_or(0) > 0 {
        return finish(run, api, ctx, Some(&format!("post-run Job {name} failed"))).await;
    }
    let started = job.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or_else(|| ctx.clock.now());
    if ctx.clock.now().duration_since(started).as_secs_f64() > POST_RUN_BUDGET.as_secs_f64() {
        let dp =
            DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
        let _ = jobs.delete(&name, &dp).await;
        return finish(run, api, ctx, Some("post-run hooks exceeded 10 minutes")).await;
    }
    Ok(Action::requeue(Duration::from_secs(5)))
}
