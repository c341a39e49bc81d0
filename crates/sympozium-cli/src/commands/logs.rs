//! `runs logs <name>`: the agent's log, streamed while the run goes on with `--follow`.

use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client, ResourceExt};
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;

use super::not_found;

/// How `runs logs` was asked.
#[derive(Debug, Clone)]
pub struct LogsRequest {
    /// The run.
    pub name: String,
    /// The container (default `agent`).
    pub container: String,
    /// Keep streaming until the container ends; wait for the pod if there is none yet.
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<i64>,
    /// How long `--follow` waits for the pod to appear and start.
    pub wait: Duration,
}

fn finished(run: &AgentRun) -> bool {
    matches!(
        run.status.as_ref().and_then(|s| s.phase),
        Some(AgentRunPhase::Succeeded | AgentRunPhase::Failed)
    )
}

/// The run's pod: the one its status names, else the one its Job made.
async fn pod_of(client: &Client, ns: &str, run: &AgentRun) -> anyhow::Result<Option<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    if let Some(name) = run.status.as_ref().and_then(|s| s.pod_name.clone()).filter(|n| !n.is_empty())
        && let Some(pod) = pods.get_opt(&name).await?
    {
        return Ok(Some(pod));
    }
    let job = run.status.as_ref().and_then(|s| s.job_name.clone()).unwrap_or_else(|| run.name_any());
    let mut found = pods.list(&ListParams::default().labels(&format!("job-name={job}"))).await?.items;
    found.sort_by_key(|p| p.metadata.creation_timestamp.clone());
    Ok(found.pop())
}

fn started(pod: &Pod, container: &str) -> bool {
    let status = pod.status.as_ref();
    let all = status.into_iter().flat_map(|s| {
        s.container_statuses.iter().flatten().chain(s.init_container_statuses.iter().flatten())
    });
    all.filter(|c| c.name == container)
        .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some() || s.terminated.is_some()))
}

/// `runs logs`.
pub async fn logs(client: &Client, ns: &str, request: &LogsRequest) -> anyhow::Result<i32> {
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + request.wait;
    let pod = loop {
        let run = runs
            .get_opt(&request.name)
            .await?
            .ok_or_else(|| not_found("AgentRun", &request.name, ns, "runs"))?;
        let pod = pod_of(client, ns, &run).await?;
        match pod {
            Some(pod) if started(&pod, &request.container) => break pod,
            Some(_) | None if finished(&run) => {
                // The pod went with its Job; what the agent answered is kept in the status.
                let status = run.status.unwrap_or_default();
                eprintln!(
                    "run \"{}\" has finished and its pod is gone; its recorded {} follows",
                    request.name,
                    if status.result.is_some() { "result" } else { "error" }
                );
                crate::output::emitln!("{}", status.result.or(status.error).unwrap_or_default());
                return Ok(0);
            }
            pod if !request.follow || Instant::now() > deadline => {
                let phase =
                    run.status.and_then(|s| s.phase).map(|p| format!("{p:?}")).unwrap_or("Pending".into());
                let what = if pod.is_some() { "its container has not started" } else { "it has no pod yet" };
                anyhow::bail!(
                    "run \"{}\" is {phase} and {what}; try again or pass --follow to wait",
                    request.name
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    let declared = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
        .any(|c| c.name == request.container);
    if !declared {
        anyhow::bail!("pod {} has no container \"{}\"", pod.name_any(), request.container);
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let params = LogParams {
        container: Some(request.container.clone()),
        follow: request.follow,
        tail_lines: request.tail,
        ..Default::default()
    };
    let mut lines = pods.log_stream(&pod.name_any(), &params).await?.lines();
    while let Some(line) = lines.try_next().await? {
        crate::output::emitln!("{line}");
    }
    Ok(0)
}
