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

/// Where a run is, as far as its log goes.
enum Seen {
    /// The container has started (or ended) in this pod: its log can be read.
    Started(Box<Pod>),
    /// The run is over and its container's log is not there to read.
    Finished(AgentRun),
    /// Not yet: the run exists, with or without a pod.
    Waiting(AgentRun, bool),
}

/// Looks once; `None` when the run does not exist.
async fn look(client: &Client, ns: &str, name: &str, container: &str) -> anyhow::Result<Option<Seen>> {
    let Some(run) = Api::<AgentRun>::namespaced(client.clone(), ns).get_opt(name).await? else {
        return Ok(None);
    };
    let pod = pod_of(client, ns, &run).await?;
    Ok(Some(match pod {
        Some(pod) if started(&pod, container) => Seen::Started(Box::new(pod)),
        _ if finished(&run) => Seen::Finished(run),
        pod => Seen::Waiting(run, pod.is_some()),
    }))
}

/// How often to look for a run's pod: short runs finish in about a second.
const POLL: Duration = Duration::from_millis(150);

/// `runs logs`.
pub async fn logs(client: &Client, ns: &str, request: &LogsRequest) -> anyhow::Result<i32> {
    let deadline = Instant::now() + request.wait;
    let pod = loop {
        let seen = look(client, ns, &request.name, &request.container)
            .await?
            .ok_or_else(|| not_found("AgentRun", &request.name, ns, "runs"))?;
        match seen {
            Seen::Started(pod) => break *pod,
            Seen::Finished(run) => {
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
            Seen::Waiting(run, has_pod) if !request.follow || Instant::now() > deadline => {
                let phase =
                    run.status.and_then(|s| s.phase).map(|p| format!("{p:?}")).unwrap_or("Pending".into());
                let what = if has_pod { "its container has not started" } else { "it has no pod yet" };
                anyhow::bail!(
                    "run \"{}\" is {phase} and {what}; try again or pass --follow to wait",
                    request.name
                )
            }
            Seen::Waiting(..) => tokio::time::sleep(POLL).await,
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

/// One runner log line as a short progress note (`running tool memory_store`), or `None`
/// for lines that are not progress (the result marker, blank lines).
pub fn progress_note(line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() || sympozium_protocol::markers::is_result_line(line) {
        return None;
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else { return Some(line.to_string()) };
    let message = value["message"].as_str().or(value["fields"]["message"].as_str())?;
    let detail = ["tool", "model", "error"]
        .iter()
        .find_map(|k| value[*k].as_str().or(value["fields"][*k].as_str()).map(|v| format!(" {v}")))
        .unwrap_or_default();
    Some(format!("{message}{detail}"))
}

/// Follows the agent container of `run` once it starts, handing each progress note to
/// `note`; ends when the container does. Failures (no pod yet, a node that serves no logs)
/// just end it: progress is a courtesy, the answer comes from the run's status.
pub async fn follow_progress(client: Client, ns: String, run: String, note: impl Fn(String)) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod = loop {
        match look(&client, &ns, &run, "agent").await {
            Ok(Some(Seen::Started(pod))) => break *pod,
            Ok(Some(Seen::Waiting(..))) => tokio::time::sleep(POLL).await,
            _ => return,
        }
    };
    let params = LogParams { container: Some("agent".into()), follow: true, ..Default::default() };
    let Ok(stream) = pods.log_stream(&pod.name_any(), &params).await else { return };
    let mut lines = stream.lines();
    while let Ok(Some(line)) = lines.try_next().await {
        if let Some(n) = progress_note(&line) {
            note(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::progress_note;

    #[test]
    fn runner_log_lines_become_short_notes() {
        let tool = r#"{"timestamp":"t","level":"INFO","message":"running tool","tool":"memory_store"}"#;
        assert_eq!(progress_note(tool).as_deref(), Some("running tool memory_store"));
        let nested = r#"{"level":"INFO","fields":{"message":"run started"}}"#;
        assert_eq!(progress_note(nested).as_deref(), Some("run started"));
        assert_eq!(progress_note("__SYMPOZIUM_RESULT__{}__SYMPOZIUM_END__"), None);
        assert_eq!(progress_note("  "), None);
        assert_eq!(progress_note("plain text").as_deref(), Some("plain text"));
    }
}
