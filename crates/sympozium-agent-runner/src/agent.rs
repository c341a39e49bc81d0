//! The tool-calling loop: ask the model, run the tools it asks for (sequentially, in order),
//! feed results back, until it answers — bounded by the iteration limit and the circuit
//! breaker.

use crate::error::RunError;
use crate::llm::{ChatRequest, Message, Provider, StreamSink, ToolSpec};
use crate::output::Stats;
use crate::tools::Toolbox;

/// Loop limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Maximum rounds of tool calls.
    pub max_tool_iterations: u32,
    /// Consecutive all-failed rounds before aborting.
    pub max_consecutive_tool_errors: u32,
}

/// What one loop works with.
pub struct LoopInput<'a> {
    /// The model.
    pub provider: &'a dyn Provider,
    /// Tools that can be run.
    pub toolbox: &'a Toolbox,
    /// Tools offered to the model.
    pub tools: &'a [ToolSpec],
    /// System prompt.
    pub system: &'a str,
    /// Task (first user message).
    pub task: &'a str,
    /// Limits.
    pub limits: Limits,
    /// `gen_ai.system` of the model calls (provider name, e.g. `openai`).
    pub system_name: &'a str,
    /// `gen_ai.request.model`.
    pub model: &'a str,
    /// `sympozium.instance` attribute of the metrics.
    pub instance: &'a str,
}

/// Runs the loop; returns the final answer. `stats` is updated as the loop goes so the caller
/// can report usage even when the loop fails or is cancelled by the run deadline.
pub async fn run_loop(
    input: LoopInput<'_>,
    sink: &mut dyn StreamSink,
    stats: &mut Stats,
) -> Result<String, RunError> {
    let LoopInput { provider, toolbox, tools, system, task, limits, system_name, model, instance } = input;
    let metrics = crate::telemetry::metrics();
    let mut messages = vec![Message::User(task.to_string())];
    let mut rounds: u32 = 0;
    let mut failed_rounds: u32 = 0;
    loop {
        let request = ChatRequest { system, messages: &messages, tools };
        // One span per model call, named and attributed per the GenAI semantic conventions.
        let chat = tracing::info_span!("gen_ai.chat", otel.name = %format!("chat {model}"), otel.kind = "client",
            gen_ai.operation.name = "chat", gen_ai.system = %system_name, gen_ai.request.model = %model,
            gen_ai.usage.input_tokens = tracing::field::Empty, gen_ai.usage.output_tokens = tracing::field::Empty,
            gen_ai.response.finish_reasons = tracing::field::Empty, otel.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty);
        let turn = tracing::Instrument::instrument(provider.complete(request, sink), chat.clone()).await;
        sink.flush();
        let turn = match turn {
            Ok(t) => t,
            Err(e) => {
                chat.record("otel.status_code", "ERROR");
                chat.record("error.type", "model_call_failed");
                chat.in_scope(|| tracing::warn!(error = %e, "model call failed"));
                return Err(e.into());
            }
        };
        chat.record("gen_ai.usage.input_tokens", i64::try_from(turn.usage.input).unwrap_or(i64::MAX));
        chat.record("gen_ai.usage.output_tokens", i64::try_from(turn.usage.output).unwrap_or(i64::MAX));
        chat.record("gen_ai.response.finish_reasons", if turn.wants_tools { "tool_calls" } else { "stop" });
        metrics.tokens(model, instance, turn.usage);
        stats.usage += turn.usage;
        if !turn.wants_tools {
            return Ok(turn.text);
        }
        if rounds >= limits.max_tool_iterations {
            return Err(RunError::IterationLimit(limits.max_tool_iterations));
        }
        rounds += 1;
        let mut results = Vec::with_capacity(turn.tool_calls.len());
        for call in &turn.tool_calls {
            let span = tracing::info_span!("gen_ai.execute_tool", otel.name = %format!("execute_tool {}", call.name),
                gen_ai.operation.name = "execute_tool", gen_ai.tool.name = %call.name,
                gen_ai.tool.call.id = %call.id, otel.status_code = tracing::field::Empty);
            let started = std::time::Instant::now();
            let result = tracing::Instrument::instrument(toolbox.execute(call), span.clone()).await;
            span.in_scope(|| {
                tracing::info!(tool = %call.name, call_id = %call.id, duration_ms = started.elapsed().as_millis(),
                    status = if result.is_error { "error" } else { "success" }, "tool call");
            });
            if result.is_error {
                span.record("otel.status_code", "ERROR");
            }
            metrics.tool_call(&call.name, !result.is_error, started.elapsed());
            stats.tool_calls += 1;
            results.push(result);
        }
        if results.iter().all(|r| r.is_error) {
            failed_rounds += 1;
            if failed_rounds >= limits.max_consecutive_tool_errors {
                let last = results
                    .iter()
                    .map(|r| format!("{}: {}", r.name, r.content))
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(RunError::CircuitBreaker { count: failed_rounds, last });
            }
        } else {
            failed_rounds = 0;
        }
        messages.push(Message::Assistant {
            text: turn.text,
            tool_calls: turn.tool_calls,
            thinking: turn.thinking,
        });
        messages.push(Message::ToolResults(results));
    }
}
