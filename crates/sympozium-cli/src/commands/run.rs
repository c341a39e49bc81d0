//! `run <instance> "<task>"`: creates an AgentRun configured like the instance and waits
//! for the answer.

use std::time::Duration;

use kube::api::{ObjectMeta, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client, ResourceExt};
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::{AgentRun, AgentRunSpec, SympoziumInstance, resolve};

use super::not_found;
use crate::cli::RunArgs;

/// Parses `90s`, `10m`, `1h` (or plain seconds).
pub fn parse_timeout(s: &str) -> anyhow::Result<Duration> {
    let (number, unit) =
        s.trim().split_at(s.trim().find(|c: char| !c.is_ascii_digit()).unwrap_or(s.trim().len()));
    let n: u64 = number.parse().map_err(|_| anyhow::anyhow!("--timeout \"{s}\": use e.g. 90s, 10m or 1h"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => anyhow::bail!("--timeout \"{s}\": use e.g. 90s, 10m or 1h"),
    };
    Ok(Duration::from_secs(secs))
}

/// The AgentRun for `task` on `instance`, configured like the instance (provider, model,
/// base URL, credentials). The TUI's chat creates its runs with this too.
pub fn new_run(name: &str, instance: &SympoziumInstance, task: &str) -> AgentRun {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    AgentRun {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            labels: Some([(sympozium_api::labels::INSTANCE.to_string(), name.to_string())].into()),
            ..Default::default()
        },
        spec: AgentRunSpec {
            instance_ref: name.to_string(),
            agent_id: "primary".into(),
            session_key: format!("session-{nanos}"),
            task: task.to_string(),
            model: resolve::model_spec(&instance.spec, &Default::default()),
            ..Default::default()
        },
        status: None,
    }
}

/// Creates the run and, unless `--no-wait`, prints its answer.
pub async fn run(client: &Client, ns: &str, args: &RunArgs, interactive: bool) -> anyhow::Result<i32> {
    if args.task.trim().is_empty() {
        anyhow::bail!(
            "the task is empty: say what the agent should do, e.g. sympozium run my-agent \"list failing pods\""
        );
    }
    let timeout = parse_timeout(&args.timeout)?;
    let instance = Api::<SympoziumInstance>::namespaced(client.clone(), ns)
        .get_opt(&args.instance)
        .await?
        .ok_or_else(|| not_found("instance", &args.instance, ns, "instances"))?;
    let run = new_run(&args.instance, &instance, &args.task);
    let api: Api<AgentRun> = Api::namespaced(client.clone(), ns);
    let created = api.create(&PostParams::default(), &run).await?;
    let name = created.name_any();
    if args.no_wait {
        crate::output::emitln!("agentrun/{name} created");
        return Ok(0);
    }
    if interactive {
        eprintln!("agentrun/{name} created; waiting for the answer (Ctrl-C stops waiting, the run goes on)…");
    }
    let done = |r: Option<&AgentRun>| {
        r.and_then(|r| r.status.as_ref()?.phase).is_some_and(AgentRunPhase::is_terminal)
    };
    // The agent's progress on stderr while we wait (the answer itself goes to stdout).
    let progress =
        tokio::spawn(super::logs::follow_progress(client.clone(), ns.to_string(), name.clone(), |note| {
            eprintln!("  · {note}")
        }));
    let waited = tokio::time::timeout(timeout, await_condition(api.clone(), &name, done)).await;
    progress.abort();
    let finished = match waited {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => anyhow::bail!("agentrun/{name} was deleted before it finished"),
        Ok(Err(e)) => anyhow::bail!("watching agentrun/{name}: {e}"),
        Err(_) => {
            eprintln!(
                "agentrun/{name} is still running after {}; follow it with `sympozium runs get {name} -n {ns}`",
                args.timeout
            );
            return Ok(2);
        }
    };
    let status = finished.status.unwrap_or_default();
    if status.phase == Some(AgentRunPhase::Failed) {
        anyhow::bail!("agentrun/{name} failed: {}", status.error.unwrap_or_else(|| "no reason given".into()));
    }
    crate::output::emitln!("{}", status.result.unwrap_or_default());
    if let Some(u) = status.token_usage {
        eprintln!(
            "tokens: {} in, {} out ({} total), {} tool calls, {:.1}s",
            u.input_tokens,
            u.output_tokens,
            u.total_tokens,
            u.tool_calls,
            u.duration_ms as f64 / 1000.0
        );
    }
    if let Some(c) = status.cost {
        eprintln!(
            "cost: {} {} (input {}, output {}; priced as {})",
            c.total, c.currency, c.input, c.output, c.priced_as
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_timeout("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_timeout("2").unwrap(), Duration::from_secs(2));
        assert!(parse_timeout("soon").is_err());
        assert!(parse_timeout("5d").is_err());
    }
}
