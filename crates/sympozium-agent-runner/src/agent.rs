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
}

/// Runs the loop; returns the final answer. `stats` is updated as the loop goes so the caller
/// can report usage even when the loop fails or is cancelled by the run deadline.
pub async fn run_loop(
    input: LoopInput<'_>,
    sink: &mut dyn StreamSink,
    stats: &mut Stats,
) -> Result<String, RunError> {
    let LoopInput { provider, toolbox, tools, system, task, limits } = input;
    let mut messages = vec![Message::User(task.to_string())];
    let mut rounds: u32 = 0;
    let mut failed_rounds: u32 = 0;
    loop {
        let request = ChatRequest { system, messages: &messages, tools };
        let turn = provider.complete(request, sink).await;
        sink.flush();
        let turn = turn?;
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
            let span = tracing::info_span!("gen_ai.execute_tool", gen_ai.tool.name = %call.name,
                gen_ai.tool.call.id = %call.id);
            let started = std::time::Instant::now();
            let result = tracing::Instrument::instrument(toolbox.execute(call), span.clone()).await;
            span.in_scope(|| {
                tracing::info!(tool = %call.name, call_id = %call.id, duration_ms = started.elapsed().as_millis(),
                    status = if result.is_error { "error" } else { "success" }, "tool call");
            });
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
