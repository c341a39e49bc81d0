//! Finishing runs: recording the outcome exactly once (the log path and the bus path may
//! race), removing what must not outlive the run, and pruning old runs.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::labels;

use super::result::{Outcome, truncate};
use super::{Error, publish};
use crate::context::Context;

/// How far along a run is: its phase, and within Running whether its pod's name and its
/// exit code are recorded. Phases only move forward and those fields are never cleared, so a
/// copy of lower rank than one already written is stale.
pub fn rank(status: Option<&sympozium_api::AgentRunStatus>) -> u8 {
    let Some(status) = status else { return 0 };
    match status.phase.unwrap_or_default() {
        AgentRunPhase::Pending => 0,
        AgentRunPhase::Running | AgentRunPhase::Serving => {
            1 + u8::from(status.pod_name.is_some()) + u8::from(status.exit_code.is_some())
        }
        AgentRunPhase::PostRunning => 4,
        AgentRunPhase::Succeeded | AgentRunPhase::Failed => 5,
    }
}

/// The copy of a run a status write starts from. A copy the caller already holds (from
/// the controller's store, or returned by its last write) saves a read of the run; when it
/// is stale its resourceVersion makes the write conflict and the run is read again.
#[derive(Clone, Copy)]
pub enum Latest<'a> {
    /// The caller's copy.
    Known(&'a AgentRun),
    /// Only the name: the run is read first.
    Name(&'a str),
}

impl<'a> From<&'a AgentRun> for Latest<'a> {
    fn from(run: &'a AgentRun) -> Self {
        Latest::Known(run)
    }
}

impl<'a> From<&'a str> for Latest<'a> {
    fn from(name: &'a str) -> Self {
        Latest::Name(name)
    }
}

impl Latest<'_> {
    fn name(&self) -> String {
        match self {
            Latest::Known(run) => run.name_any(),
            Latest::Name(name) => (*name).to_string(),
        }
    }

    /// The caller's copy, when it can guard a write (it carries a resourceVersion).
    fn copy(&self) -> Option<AgentRun> {
        match self {
            Latest::Known(run) if run.resource_version().is_some() => Some((*run).clone()),
            _ => None,
        }
    }
}

/// Writes the status `mutate` makes of the latest run, guarded by its resourceVersion:
/// the first attempt uses the caller's copy, each conflict reads the run again. `mutate`
/// returns `false` to write nothing (the run has moved on). Returns the run as written.
async fn write_status(
    api: &Api<AgentRun>,
    ctx: &Context,
    latest: Latest<'_>,
    mutate: impl Fn(&mut AgentRun) -> bool,
) -> Result<Option<AgentRun>, kube::Error> {
    let name = latest.name();
    let mut copy = latest.copy();
    for _ in 0..5 {
        let (mut run, fresh) = match copy.take() {
            Some(run) => (run, false),
            None => match api.get_opt(&name).await? {
                Some(run) => (run, true),
                None => return Ok(None),
            },
        };
        let before = run.status.clone();
        if !mutate(&mut run) {
            // Only the server's copy decides that nothing is to be written: the caller's
            // may be behind it.
            if fresh {
                return Ok(None);
            }
            continue;
        }
        if run.status == before {
            // Already as asked: nothing to write.
            return Ok(Some(run));
        }
        match api.replace_status(&name, &PostParams::default(), &run).await {
            Ok(written) => {
                ctx.progress.set(&written.uid().unwrap_or_default(), rank(written.status.as_ref()));
                return Ok(Some(written));
            }
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Records `outcome` on the run unless it already finished. Guarded by the object's
/// resourceVersion, so of two racing writers (log reader, bus consumer) exactly one wins.
/// Returns the finished run when this call finished it.
pub async fn complete(
    api: &Api<AgentRun>,
    ctx: &Context,
    latest: impl Into<Latest<'_>>,
    outcome: &Outcome,
    now: Time,
) -> Result<Option<AgentRun>, kube::Error> {
    write_status(api, ctx, latest.into(), |run| {
        let post_run = super::hooks::has_post_run(run);
        let status = run.status.get_or_insert_with(Default::default);
        if status.phase.is_some_and(AgentRunPhase::is_terminal)
            || status.phase == Some(AgentRunPhase::PostRunning)
        {
            return false;
        }
        if post_run {
            // Post-run hooks still have to run: record the outcome (once), keep the phase;
            // the controller starts the hooks and finishes the run after them.
            if status.exit_code.is_some() {
                return false;
            }
            status.exit_code = Some(if outcome.success { 0 } else { 1 });
        } else {
            status.phase =
                Some(if outcome.success { AgentRunPhase::Succeeded } else { AgentRunPhase::Failed });
            status.completed_at = Some(now.clone());
        }
        status.result = outcome.result.as_deref().map(truncate);
        status.error = outcome.error.as_deref().map(truncate);
        if outcome.usage.is_some() {
            status.token_usage = outcome.usage;
        }
        true
    })
    .await
}

/// Applies `mutate` to the latest status if the run's phase is one of `from`, guarded by
/// the object's resourceVersion: a stale copy never moves a run backwards (e.g. a finished
/// run back to Running). Returns whether the change was written.
pub async fn transition(
    api: &Api<AgentRun>,
    ctx: &Context,
    latest: impl Into<Latest<'_>>,
    from: &[AgentRunPhase],
    mutate: impl Fn(&mut sympozium_api::AgentRunStatus),
) -> Result<bool, kube::Error> {
    let written = write_status(api, ctx, latest.into(), |run| {
        let status = run.status.get_or_insert_with(Default::default);
        if !from.contains(&status.phase.unwrap_or_default()) {
            return false;
        }
        mutate(status);
        true
    })
    .await?;
    Ok(written.is_some())
}

/// Fails the run with `message`; returns the failed run when this call failed it.
pub async fn fail(
    api: &Api<AgentRun>,
    ctx: &Context,
    latest: impl Into<Latest<'_>>,
    message: &str,
    now: Time,
) -> Result<Option<AgentRun>, kube::Error> {
    let outcome = Outcome { success: false, error: Some(message.to_string()), ..Default::default() };
    complete(api, ctx, latest, &outcome, now).await
}

fn rbac_selector(run: &AgentRun) -> String {
    format!("{}={},sympozium.ai/managed-by=sympozium", labels::AGENT_RUN, run.name_any())
}

/// Removes the run's cluster-wide grants (they have no owner to be collected by).
async fn revoke_cluster_rbac(run: &AgentRun, ctx: &Context) -> Result<(), kube::Error> {
    let lp = ListParams::default().labels(&rbac_selector(run));
    let ns = run.namespace().unwrap_or_default();
    let bindings: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    for b in bindings.list(&lp).await? {
        if b.subjects.iter().flatten().any(|s| s.namespace.as_deref() == Some(&ns)) {
            sympozium_kube::apply::delete_if_exists(&bindings, &b.name_any()).await?;
        }
    }
    let roles: Api<ClusterRole> = Api::all(ctx.client.clone());
    for r in roles.list(&lp).await? {
        if r.labels().get("sympozium.ai/namespace").is_none_or(|n| *n == ns) {
            sympozium_kube::apply::delete_if_exists(&roles, &r.name_any()).await?;
        }
    }
    Ok(())
}

async fn stop_job(run: &AgentRun, ctx: &Context, propagation: PropagationPolicy) -> Result<(), kube::Error> {
    let Some(job) = run.status.as_ref().and_then(|s| s.job_name.clone()) else { return Ok(()) };
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &run.namespace().unwrap_or_default());
    match jobs
        .delete(&job, &DeleteParams { propagation_policy: Some(propagation), ..Default::default() })
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// A finished run: revoke cluster RBAC, stop sidecars still running, prune history.
pub async fn finished(run: &AgentRun, ctx: &Context, stores: &super::Stores) -> Result<Action, Error> {
    super::metering::meter(run, ctx).await?;
    let uid = run.uid().unwrap_or_default();
    if uid.is_empty() || !ctx.cleaned_up.contains(&uid) {
        revoke_cluster_rbac(run, ctx).await?;
        revoke_namespaced_rbac(run, ctx).await?;
        super::sandbox::release(run, ctx).await?;
        // Skill sidecars never exit on their own; the Job goes once the outcome is recorded,
        // unless the run asks to keep it for debugging (`cleanup: keep`).
        if run.spec.cleanup != sympozium_api::agentrun::CleanupPolicy::Keep {
            stop_job(run, ctx, PropagationPolicy::Background).await?;
        }
        ctx.cleaned_up.set(&uid, ());
    }
    prune(run, ctx, stores).await?;
    Ok(Action::await_change())
}

/// Removes the run's namespaced grants as soon as it has finished: least privilege does not
/// wait for the run object to be pruned.
async fn revoke_namespaced_rbac(run: &AgentRun, ctx: &Context) -> Result<(), kube::Error> {
    let ns = run.namespace().unwrap_or_default();
    let lp = ListParams::default().labels(&rbac_selector(run));
    let bindings: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &ns);
    for b in bindings.list(&lp).await? {
        sympozium_kube::apply::delete_if_exists(&bindings, &b.name_any()).await?;
    }
    let roles: Api<Role> = Api::namespaced(ctx.client.clone(), &ns);
    for r in roles.list(&lp).await? {
        sympozium_kube::apply::delete_if_exists(&roles, &r.name_any()).await?;
    }
    Ok(())
}

/// Deletes the instance's oldest finished runs beyond the history limit. The runs are read
/// from the controller's own cache: listing every run of the namespace each time one
/// finishes grows with the square of the runs.
async fn prune(run: &AgentRun, ctx: &Context, stores: &super::Stores) -> Result<(), kube::Error> {
    let ns = run.namespace().unwrap_or_default();
    let api: Api<AgentRun> = Api::namespaced(ctx.client.clone(), &ns);
    let mut finished: Vec<_> = stores.runs.state_filter(|r| {
        r.metadata.namespace.as_deref() == Some(ns.as_str())
            && r.spec.instance_ref == run.spec.instance_ref
            && r.metadata.deletion_timestamp.is_none()
            && r.status.as_ref().and_then(|s| s.phase).is_some_and(AgentRunPhase::is_terminal)
    });
    if finished.len() <= ctx.settings.max_run_history {
        return Ok(());
    }
    finished.sort_by_key(|r| std::cmp::Reverse(r.metadata.creation_timestamp.clone().map(|t| t.0)));
    for old in finished.iter().skip(ctx.settings.max_run_history) {
        sympozium_kube::apply::delete_if_exists(&api, &old.name_any()).await?;
        publish(
            ctx,
            run,
            EventType::Normal,
            "Pruned",
            &format!("deleted old run {} (history limit)", old.name_any()),
        )
        .await;
    }
    Ok(())
}

/// Deletion: revoke cluster RBAC and stop the Job; garbage collection takes the rest.
pub async fn cleanup(run: &AgentRun, ctx: &Context) -> Result<(), Error> {
    revoke_cluster_rbac(run, ctx).await?;
    stop_job(run, ctx, PropagationPolicy::Foreground).await?;
    ctx.cleaned_up.forget(&run.uid().unwrap_or_default());
    ctx.progress.forget(&run.uid().unwrap_or_default());
    Ok(())
}
