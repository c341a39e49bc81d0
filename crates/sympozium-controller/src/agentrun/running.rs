//! Running: watch the Job and the `agent` container (sidecars never exit), read the
//! outcome, enforce the timeout.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, LogParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::labels;

use super::inherit::effective_timeout;
use super::result::{Outcome, from_logs};
use super::{Error, Stores, publish, terminal};
use crate::cache;
use crate::context::Context;

/// How long a finished agent's outcome may take to arrive (log or bus) before the run is
/// settled from the exit code alone. Twice the bus's ack wait: an outcome a killed leader
/// received but never acknowledged is redelivered one ack wait later, and must still land
/// inside the grace the next leader counts from when it started acting.
pub const RESULT_GRACE: Duration = Duration::from_secs(2 * sympozium_bus::ACK_WAIT.as_secs());

/// How the agent is doing, from the Job and the `agent` container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentState {
    /// Still working.
    Running,
    /// The agent exited with this code (`reason` from the container or Job).
    Exited {
        /// Exit code.
        code: i32,
        /// Why, when known.
        reason: String,
        /// When it finished.
        at: Option<Timestamp>,
    },
    /// The Job is gone.
    JobMissing,
}

/// What to do about a running run.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Check again later.
    Wait(Duration),
    /// Record this outcome.
    Finish(Outcome),
    /// The run took too long.
    TimedOut,
}

/// Reads the agent's state from its Job and pod.
pub fn agent_state(job: Option<&Job>, pod: Option<&Pod>) -> AgentState {
    let Some(job) = job else { return AgentState::JobMissing };
    let agent = pod
        .and_then(|p| p.status.as_ref()?.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == "agent"))
        .and_then(|c| c.state.as_ref()?.terminated.clone());
    if let Some(t) = agent {
        return AgentState::Exited {
            code: t.exit_code,
            reason: t.reason.unwrap_or_default(),
            at: t.finished_at.map(|f| f.0),
        };
    }
    let status = job.status.clone().unwrap_or_default();
    if status.succeeded.unwrap_or(0) > 0 {
        return AgentState::Exited {
            code: 0,
            reason: "Completed".into(),
            at: status.completion_time.map(|t| t.0),
        };
    }
    if status.failed.unwrap_or(0) > 0 {
        let reason = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Failed")
            .and_then(|c| c.reason.clone())
            .unwrap_or_else(|| "Job failed".into());
        return AgentState::Exited { code: 1, reason, at: None };
    }
    AgentState::Running
}

/// The moment the result grace period of an exited agent counts from: its exit, but never
/// before this controller started acting. A leader killed after receiving an outcome from
/// the bus leaves it unacknowledged; the bus hands it to the next leader only when the ack
/// wait ([`sympozium_bus::ACK_WAIT`], half of [`RESULT_GRACE`]) ends, so a new leader that settled finished
/// runs from their exit codes at once would answer "(no response)" to runs whose result is
/// on its way.
pub fn grace_from(state: AgentState, started: Timestamp, acting_since: Timestamp) -> AgentState {
    match state {
        AgentState::Exited { code, reason, at } => {
            AgentState::Exited { code, reason, at: Some(at.unwrap_or(started).max(acting_since)) }
        }
        other => other,
    }
}

/// Decides, given the agent's state, the outcome read from its log (if any), the start
/// time, the timeout and the current time.
pub fn decide(
    state: &AgentState,
    logged: Option<Outcome>,
    started: Timestamp,
    timeout: Duration,
    now: Timestamp,
) -> Decision {
    let elapsed = now.duration_since(started).as_secs_f64().max(0.0);
    match state {
        AgentState::Running if elapsed > timeout.as_secs_f64() => Decision::TimedOut,
        AgentState::Running => Decision::Wait(Duration::from_secs(5)),
        AgentState::JobMissing => Decision::Finish(Outcome {
            success: false,
            error: Some("Job not found".into()),
            ..Default::default()
        }),
        AgentState::Exited { code, reason, at } => {
            if let Some(outcome) = logged {
                return Decision::Finish(outcome);
            }
            let since = now.duration_since(at.unwrap_or(started)).as_secs_f64();
            if since < RESULT_GRACE.as_secs_f64() {
                // The bus may still deliver the result (its status write wakes the run);
                // otherwise look again when the grace period ends, at most 5 s from now.
                let left = (RESULT_GRACE.as_secs_f64() - since).clamp(1.0, 5.0);
                return Decision::Wait(Duration::from_secs_f64(left));
            }
            if *code == 0 {
                Decision::Finish(Outcome { success: true, ..Default::default() })
            } else {
                let error = format!("agent container exited with code {code} ({reason})");
                Decision::Finish(Outcome { success: false, error: Some(error), ..Default::default() })
            }
        }
    }
}

/// The error of a run stopped at its timeout, naming the limit in seconds (the run's
/// `spec.timeout`, which the Pending step fills in from the instance's `runTimeout`).
pub fn timed_out(timeout: Duration) -> String {
    format!("timed out after {}s (spec.timeout)", timeout.as_secs())
}

async fn agent_log(ctx: &Context, pods: &Api<Pod>, pod: &str) -> Option<String> {
    ctx.metrics.pod_log_read();
    let params = LogParams { container: Some("agent".into()), tail_lines: Some(80), ..Default::default() };
    // A node that cannot serve logs must not stall the reconcile: the bus may still deliver.
    tokio::time::timeout(Duration::from_secs(5), pods.logs(pod, &params)).await.ok()?.ok()
}

/// The run's Job: from the watch cache, or — when the cache does not hold it (just
/// created, or truly gone) — from the API server, so a cache that trails never reads as a
/// missing Job.
pub async fn fetch_job(
    stores: &Stores,
    jobs: &Api<Job>,
    ns: &str,
    name: &str,
) -> Result<Option<Job>, kube::Error> {
    match cache::get(&stores.jobs, ns, name) {
        Some(job) => Ok(Some((*job).clone())),
        None => jobs.get_opt(name).await,
    }
}

/// The run's agent pod (not a post-run pod) from the watch cache; `asked` additionally
/// lists the API server when the cache has none.
async fn agent_pod(
    stores: &Stores,
    pods: &Api<Pod>,
    ns: &str,
    run: &str,
    asked: bool,
) -> Result<Option<Pod>, kube::Error> {
    let is_agent = |p: &Pod| p.labels().get(labels::COMPONENT).map(String::as_str) != Some("post-run");
    if let Some(pod) = cache::labelled(&stores.pods, ns, &[(labels::AGENT_RUN, run)])
        .into_iter()
        .find(|p| is_agent(p.as_ref()))
    {
        return Ok(Some((*pod).clone()));
    }
    if !asked {
        return Ok(None);
    }
    let listed = pods.list(&ListParams::default().labels(&format!("{}={run}", labels::AGENT_RUN))).await?;
    Ok(listed.items.into_iter().find(is_agent))
}

/// How long after a run started a Job missing from the watch cache is taken to be on its way
/// (its creation not yet seen by the watch) rather than looked up.
const JOB_EVENT_WAIT: Duration = Duration::from_secs(10);

/// The Running step.
pub async fn running(
    run: &AgentRun,
    api: &Api<AgentRun>,
    ctx: &Context,
    stores: &Stores,
) -> Result<Action, Error> {
    if super::sandbox::in_sandbox(run) {
        return super::sandbox::running(run, api, ctx, effective_timeout(run, None)).await;
    }
    let ns = run.namespace().unwrap_or_default();
    let name = run.name_any();
    let status = run.status.clone().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let now = ctx.clock.now();
    let started = status.started_at.as_ref().map(|t| t.0).unwrap_or(now);
    let job = match &status.job_name {
        Some(j) => match cache::get(&stores.jobs, &ns, j) {
            Some(job) => Some((*job).clone()),
            // Created moments ago: its watch event, on its way, reconciles the run again.
            // Asking the API server here was a read for most runs of a burst.
            None if now.duration_since(started).as_secs_f64() < JOB_EVENT_WAIT.as_secs_f64() => {
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
            None => jobs.get_opt(j).await?,
        },
        None => None,
    };
    // While the agent works its pod is only needed for its exit: the cache suffices. Once
    // the Job says it has finished, a pod the cache does not show yet is asked for, so the
    // agent's own exit code and log are not missed.
    let finished = matches!(agent_state(job.as_ref(), None), AgentState::Exited { .. });
    let pod = agent_pod(stores, &pods, &ns, &name, finished).await?;
    if status.pod_name.is_none()
        && let Some(p) = &pod
    {
        let pod_name = p.name_any();
        terminal::transition(api, ctx, run, &[AgentRunPhase::Running], |s| {
            s.pod_name = Some(pod_name.clone())
        })
        .await?;
    }

    if super::hooks::has_post_run(run) && status.exit_code.is_some() {
        // The outcome is in (from the log or the bus): run the post-run hooks.
        return super::postrun::start(run, api, ctx).await;
    }
    let state = grace_from(agent_state(job.as_ref(), pod.as_ref()), started, ctx.acting_since);
    let pod_key = pod.as_ref().and_then(|p| p.uid()).unwrap_or_default();
    let logged = match (&state, &pod) {
        (AgentState::Exited { at, .. }, Some(p)) => {
            let since = now.duration_since(at.unwrap_or(started)).as_secs_f64();
            if ctx.log_reads.should_read(&pod_key, since >= RESULT_GRACE.as_secs_f64()) {
                agent_log(ctx, &pods, &p.name_any()).await.and_then(|l| from_logs(&l))
            } else {
                None
            }
        }
        _ => None,
    };
    let decision = decide(&state, logged, started, effective_timeout(run, None), now);
    if !matches!(decision, Decision::Wait(_)) {
        ctx.log_reads.forget(&pod_key);
    }
    match decision {
        Decision::Wait(after) => Ok(Action::requeue(after)),
        Decision::Finish(outcome) => {
            if terminal::complete(api, ctx, run, &outcome, Time(now)).await?.is_some() {
                super::memory::after_finish(&ctx.client, &ctx.settings, run, &outcome).await;
                let (kind, reason) = if outcome.success {
                    (EventType::Normal, "Succeeded")
                } else {
                    (EventType::Warning, "Failed")
                };
                let note = outcome.error.clone().unwrap_or_else(|| "the agent finished".into());
                publish(ctx, run, kind, reason, &note).await;
            }
            Ok(Action::requeue(Duration::from_secs(1)))
        }
        Decision::TimedOut => {
            let message = timed_out(effective_timeout(run, None));
            if terminal::fail(api, ctx, run, &message, Time(now)).await?.is_some() {
                super::memory::store_failure(&ctx.client, &ctx.settings, run, &message).await;
            }
            publish(ctx, run, EventType::Warning, "TimedOut", &message).await;
            Ok(Action::requeue(Duration::from_secs(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_new_leader_waits_the_grace_period_for_results_of_agents_that_exited_before_it() {
        let start = ts("2026-11-23T10:00:00Z");
        let ten = Duration::from_secs(600);
        let exited =
            AgentState::Exited { code: 0, reason: "Completed".into(), at: Some(ts("2026-11-23T10:01:00Z")) };
        // The agent exited at 10:01; a new leader acting since 10:02 looks at 10:02:05: the
        // outcome the old leader held unacknowledged may still come from the bus.
        let acting_since = ts("2026-11-23T10:02:00Z");
        let state = grace_from(exited.clone(), start, acting_since);
        assert_eq!(
            decide(&state, None, start, ten, ts("2026-11-23T10:02:05Z")),
            Decision::Wait(Duration::from_secs(5))
        );
        assert_eq!(
            decide(&state, None, start, ten, ts("2026-11-23T10:03:01Z")),
            Decision::Finish(Outcome { success: true, ..Default::default() })
        );
        // A controller acting since before the exit counts from the exit, as always.
        let state = grace_from(exited, start, ts("2026-11-23T09:00:00Z"));
        assert_eq!(
            decide(&state, None, start, ten, ts("2026-11-23T10:02:01Z")),
            Decision::Finish(Outcome { success: true, ..Default::default() })
        );
        assert_eq!(grace_from(AgentState::Running, start, acting_since), AgentState::Running);
    }

    #[test]
    fn timeout_grace_and_exit_codes() {
        let start = ts("2026-11-23T10:00:00Z");
        let ten = Duration::from_secs(600);
        assert_eq!(
            decide(&AgentState::Running, None, start, ten, ts("2026-11-23T10:05:00Z")),
            Decision::Wait(Duration::from_secs(5))
        );
        assert_eq!(
            decide(&AgentState::Running, None, start, ten, ts("2026-11-23T10:10:01Z")),
            Decision::TimedOut
        );

        let exited =
            |code| AgentState::Exited { code, reason: "Error".into(), at: Some(ts("2026-11-23T10:01:00Z")) };
        assert_eq!(
            decide(&exited(0), None, start, ten, ts("2026-11-23T10:01:10Z")),
            Decision::Wait(Duration::from_secs(5)),
            "waits for the bus"
        );
        assert_eq!(
            decide(&exited(0), None, start, ten, ts("2026-11-23T10:01:58Z")),
            Decision::Wait(Duration::from_secs(2)),
            "looks again when the grace period ends"
        );
        let late = ts("2026-11-23T10:02:01Z");
        assert_eq!(
            decide(&exited(0), None, start, ten, late),
            Decision::Finish(Outcome { success: true, ..Default::default() })
        );
        match decide(&exited(2), None, start, ten, late) {
            Decision::Finish(o) => {
                assert_eq!(o.error.as_deref(), Some("agent container exited with code 2 (Error)"))
            }
            other => panic!("{other:?}"),
        }
        let logged = Outcome { success: true, result: Some("done".into()), ..Default::default() };
        assert_eq!(
            decide(&exited(0), Some(logged.clone()), start, ten, ts("2026-11-23T10:01:01Z")),
            Decision::Finish(logged)
        );
        assert!(
            matches!(decide(&AgentState::JobMissing, None, start, ten, late), Decision::Finish(o) if o.error.as_deref() == Some("Job not found"))
        );
    }
}
