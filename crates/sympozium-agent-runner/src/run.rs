//! One whole run: resolve the task, build provider and tools, assemble the prompt, run the
//! loop under the run deadline, then write every output. Every path — including failures
//! before the first LLM call — ends in a [`RunReport`] so `main` can always print the marker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::agent::{Limits, LoopInput, run_loop};
use crate::approval::Approver;
use crate::config::Config;
use crate::error::RunError;
use crate::llm::{self, AwsCredentials};
use crate::output::{ChunkWriter, Stats, result_json, write_result};
use crate::prompt::{self, MemoryMode, PromptInputs};
use crate::tools::{
    EditFile, ExecuteCommand, FetchUrl, ListDirectory, MemoryClient, ReadFile, ScheduleTask,
    SendChannelMessage, SpawnSubagent, Tool, Toolbox, WriteFile, load_mcp_tools, memory_tools,
};
use crate::util::truncate_chars;
use sympozium_protocol::ipc;

/// What `main` needs to finish the process.
#[derive(Debug)]
pub struct RunReport {
    /// The result document (also in `result.json`).
    pub result: Value,
    /// Exit code (0 success, 1 error).
    pub exit_code: i32,
    /// Legacy memory to print as a marker, if any.
    pub memory: Option<String>,
}

/// Runs the agent, as the span `sympozium.agent.run` continuing the run's trace
/// (`TRACEPARENT`), with a child span per model call and tool call.
pub async fn run(config: Config, aws: AwsCredentials) -> RunReport {
    use tracing::field::Empty;
    let span = tracing::info_span!("sympozium.agent.run", instance = %config.instance_name,
        tenant.namespace = %config.namespace, model = %config.model.model, gen_ai.system = %config.model.provider,
        sympozium.agent_run.id = %config.agent_run_id, task.summary = Empty, gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty, gen_ai.tool.call.count = Empty, otel.status_code = Empty,
        error.type = Empty);
    sympozium_telemetry::set_parent_from_traceparent(&span, &config.traceparent);
    tracing::Instrument::instrument(run_in_span(config, aws, span.clone()), span).await
}

async fn run_in_span(config: Config, aws: AwsCredentials, span: tracing::Span) -> RunReport {
    let started = Instant::now();
    tracing::info!(
        agent_run_id = %config.agent_run_id,
        instance = %config.instance_name,
        namespace = %config.namespace,
        provider = %config.model.provider,
        model = %config.model.model,
        "run started"
    );
    let mut stats = Stats::default();
    let mut chunks = ChunkWriter::new(&config.roots.ipc);
    if config.memory_enabled && config.memory_server_url.is_empty() && !config.debug {
        chunks.hide_memory_blocks();
    }
    let outcome = {
        let work = execute(&config, &aws, &mut stats, &mut chunks);
        tokio::select! {
            outcome = work => outcome,
            signal = terminated() => Err(RunError::Terminated(signal)),
        }
    };
    let (outcome, memory) = match outcome {
        Ok((response, memory)) => (Ok(response), memory),
        Err(e) => (Err(e.to_string()), None),
    };
    if let Ok(response) = &outcome {
        chunks.write_whole(response);
    }
    let mut result = result_json(&outcome, stats, started.elapsed());
    // The legacy memory block also travels in result.json, so the controller can persist it
    // from the bus when the pod's log cannot be read.
    if let Some(m) = &memory {
        result["memory"] = serde_json::Value::String(m.clone());
    }
    if let Err(e) = write_result(&config.roots.ipc, &result) {
        tracing::error!(error = %e, "cannot write result.json");
    }
    span.record("gen_ai.usage.input_tokens", i64::try_from(stats.usage.input).unwrap_or(i64::MAX));
    span.record("gen_ai.usage.output_tokens", i64::try_from(stats.usage.output).unwrap_or(i64::MAX));
    span.record("gen_ai.tool.call.count", i64::try_from(stats.tool_calls).unwrap_or(i64::MAX));
    if outcome.is_err() {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", "agent_run_failed");
    }
    crate::telemetry::metrics().run(
        &config.instance_name,
        &config.namespace,
        &config.model.model,
        outcome.is_ok(),
        started.elapsed(),
    );
    match &outcome {
        Ok(_) => tracing::info!(
            agent_run_id = %config.agent_run_id,
            duration_ms = started.elapsed().as_millis() as u64,
            input_tokens = stats.usage.input,
            output_tokens = stats.usage.output,
            tool_calls = stats.tool_calls,
            status = "success",
            "run finished"
        ),
        Err(e) => tracing::error!(
            agent_run_id = %config.agent_run_id,
            duration_ms = started.elapsed().as_millis() as u64,
            tool_calls = stats.tool_calls,
            status = "error",
            error = %e,
            "run finished"
        ),
    }
    RunReport { result, exit_code: if outcome.is_ok() { 0 } else { 1 }, memory }
}

/// The first line of the task, at most 100 characters (a span attribute, not the prompt).
fn summary(task: &str) -> String {
    let line = task.lines().next().unwrap_or_default().trim();
    let mut out: String = line.chars().take(100).collect();
    if line.chars().count() > 100 {
        out.push('…');
    }
    out
}

fn read_task(config: &Config) -> Result<String, RunError> {
    if !config.task.trim().is_empty() {
        return Ok(config.task.clone());
    }
    let path = config.roots.ipc.join(ipc::INPUT).join(ipc::TASK);
    let task = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("task").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    if task.trim().is_empty() {
        return Err(RunError::MissingTask(path.display().to_string()));
    }
    Ok(task)
}

async fn execute(
    config: &Config,
    aws: &AwsCredentials,
    stats: &mut Stats,
    chunks: &mut ChunkWriter,
) -> Result<(String, Option<String>), RunError> {
    let task = read_task(config)?;
    tracing::Span::current().record("task.summary", summary(&task).as_str());
    write_trace_context(config);
    // Tool requests carry the run span's context, so the MCP bridge's spans join this trace
    // under the run (the incoming `TRACEPARENT` when telemetry is off).
    let traceparent =
        sympozium_telemetry::current_traceparent().unwrap_or_else(|| config.traceparent.clone());
    let provider = llm::build(config, aws)?;
    let memory_client = if config.memory_server_url.is_empty() {
        None
    } else {
        Some(Arc::new(
            MemoryClient::new(&config.memory_server_url, &config.memory_auth_token)
                .map_err(|e| crate::error::LlmError::Config(e.to_string()))?,
        ))
    };
    let roots = &config.roots;
    let mut tools: Vec<Box<dyn Tool>> = Vec::new();
    let mut mcp_names = Vec::new();
    if config.tools_enabled {
        if !config.skill_sidecars.is_empty() || config.sandbox {
            tools.push(Box::new(ExecuteCommand {
                tools_dir: roots.ipc.join(ipc::TOOLS),
                sidecars: config.skill_sidecars.clone(),
                sandbox: config.sandbox,
                meta: trace_meta(&traceparent),
                pickup_timeout: config.exec_pickup_timeout,
            }));
        }
        tools.push(Box::new(ReadFile { roots: roots.clone() }));
        tools.push(Box::new(ListDirectory { roots: roots.clone() }));
        tools.push(Box::new(WriteFile { roots: roots.clone() }));
        tools.push(Box::new(EditFile { roots: roots.clone() }));
        tools.push(Box::new(FetchUrl { policy: config.policy.clone() }));
        tools.push(Box::new(SendChannelMessage { dir: roots.ipc.join(ipc::MESSAGES) }));
        tools.push(Box::new(ScheduleTask::new(roots.ipc.clone())));
        tools.push(Box::new(SpawnSubagent {
            ipc: roots.ipc.clone(),
            parent_run_id: config.agent_run_id.clone(),
            instance_name: config.instance_name.clone(),
            namespace: config.namespace.clone(),
        }));
        if let Some(client) = &memory_client {
            tools.extend(memory_tools(client.clone()));
        }
        for tool in
            load_mcp_tools(&roots.ipc.join(ipc::TOOLS), config.mcp_manifest_wait, trace_meta(&traceparent))
                .await
        {
            mcp_names.push(tool.spec().name);
            tools.push(Box::new(tool));
        }
    }
    let approver = (!config.event_bus_url.is_empty()).then(|| {
        Approver::new(
            &config.event_bus_url,
            &config.agent_run_id,
            &config.instance_name,
            &config.namespace,
            config.policy.approval_timeout,
        )
        .with_bus_options(
            crate::approval::bus_options(
                &config.nats_creds,
                &config.origin_key,
                &config.namespace,
                &config.agent_run_id,
                &config.instance_name,
            )
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "tool approvals cannot reach the bus");
                sympozium_bus::BusOptions::default()
            }),
        )
    });
    let toolbox = Toolbox::new(tools, config.policy.clone(), approver);
    let offered = toolbox.offered();
    let offered_names: Vec<String> = offered.iter().map(|t| t.name.clone()).collect();
    mcp_names.retain(|n| offered_names.contains(n));

    let legacy_memory = config.memory_enabled && memory_client.is_none();
    let (task, memory_mode) = match &memory_client {
        Some(client) => (task.clone(), MemoryMode::Server { context: auto_context(client, &task).await }),
        None if legacy_memory => {
            let memory = std::fs::read_to_string(roots.memory.join("MEMORY.md")).unwrap_or_default();
            (prompt::prepend_legacy_memory(&task, &memory), MemoryMode::Legacy)
        }
        None => (task.clone(), MemoryMode::None),
    };
    let system = prompt::build(&PromptInputs {
        base: &config.system_prompt,
        skills: prompt::load_skills(&roots.skills),
        tools_enabled: config.tools_enabled,
        offered: &offered_names,
        sidecars: &config.skill_sidecars,
        sandbox: config.sandbox,
        permissions: config.permissions.as_deref(),
        source_channel: &config.source_channel,
        source_chat_id: &config.source_chat_id,
        mcp_tools: &mcp_names,
        memory: memory_mode,
    });
    let limits = Limits {
        max_tool_iterations: config.max_tool_iterations,
        max_consecutive_tool_errors: config.max_consecutive_tool_errors,
    };
    let looped = tokio::time::timeout(
        config.run_timeout,
        run_loop(
            LoopInput {
                provider: provider.as_ref(),
                toolbox: &toolbox,
                tools: &offered,
                system: &system,
                task: &task,
                limits,
                system_name: &config.model.provider,
                model: &config.model.model,
                instance: &config.instance_name,
            },
            chunks,
            stats,
        ),
    )
    .await;
    let response = match looped {
        Ok(r) => r?,
        Err(_) => return Err(RunError::RunTimeout(config.run_timeout)),
    };
    let (memory, response) =
        if legacy_memory { prompt::extract_memory(&response, config.debug) } else { (None, response) };
    if let Some(client) = &memory_client
        && config.memory_auto_store
        && !response.is_empty()
    {
        let content =
            format!("Task: {}\n\nResponse: {}", truncate_chars(&task, 500), truncate_chars(&response, 1000));
        let tags = ["auto".to_string(), "agent-run".to_string()];
        if let Err(e) = client.store(&content, &tags).await {
            tracing::warn!(error = %e, "auto-store to memory failed");
        }
    }
    Ok((response, memory))
}

/// Searches memory for the task and formats the hits, cut at an entry boundary within
/// 2000 characters. Failures only cost the context, never the run.
async fn auto_context(client: &MemoryClient, task: &str) -> Option<String> {
    let query: String = task.chars().take(200).collect();
    let entries = match client.search(&query, 3, Duration::from_secs(3)).await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(error = %e, "memory auto-context failed");
            return None;
        }
    };
    let mut out = String::new();
    for entry in &entries {
        let formatted = crate::tools::format_entry_public(entry);
        let sep = if out.is_empty() { "" } else { "\n---\n" };
        if out.len() + sep.len() + formatted.len() > 2000 {
            break;
        }
        out.push_str(sep);
        out.push_str(&formatted);
    }
    (!out.is_empty()).then_some(out)
}

/// `(trace_id, span_id)` of a well-formed W3C `traceparent`.
fn parse_traceparent(traceparent: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = traceparent.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    if parts.len() != 4 || !hex(parts[0], 2) || !hex(parts[1], 32) || !hex(parts[2], 16) || !hex(parts[3], 2)
    {
        return None;
    }
    if parts[1].chars().all(|c| c == '0') || parts[2].chars().all(|c| c == '0') {
        return None;
    }
    Some((parts[1], parts[2]))
}

/// `_meta` for sidecar and MCP requests, so their work joins the run's trace.
fn trace_meta(traceparent: &str) -> Option<Value> {
    let (trace_id, span_id) = parse_traceparent(traceparent)?;
    Some(serde_json::json!({"trace_id": trace_id, "span_id": span_id, "traceparent": traceparent}))
}

/// Writes `<workspace>/.sympozium/trace-context.json` so tools and skills can join the run's
/// trace. Only for a well-formed `traceparent`; failures are logged, never fatal.
fn write_trace_context(config: &Config) {
    let Some((trace_id, span_id)) = parse_traceparent(&config.traceparent) else { return };
    let context = serde_json::json!({
        "trace_id": trace_id, "span_id": span_id, "traceparent": config.traceparent,
        "agent_run_id": config.agent_run_id, "instance_name": config.instance_name,
        "namespace": config.namespace, "model": config.model.model,
    });
    let path = config.roots.workspace.join(".sympozium").join("trace-context.json");
    if let Err(e) = crate::util::write_json_atomic(&path, &context, true) {
        tracing::warn!(error = %e, "cannot write trace context");
    }
}

/// Resolves when the pod is asked to stop (SIGTERM from the kubelet, SIGINT), so the run can
/// still report a result instead of vanishing.
async fn terminated() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        std::future::pending().await
    }
}
