//! The runner's OpenTelemetry instruments: runs, run duration, token usage and
//! tool calls. They record on the meter of the shared telemetry init, a no-op while export
//! is off.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};

use crate::llm::Usage;

/// The instruments.
#[derive(Clone)]
pub struct Metrics {
    runs: Counter<u64>,
    run_duration: Histogram<f64>,
    input_tokens: Counter<u64>,
    output_tokens: Counter<u64>,
    tool_invocations: Counter<u64>,
    tool_duration: Histogram<f64>,
}

/// The instruments on the global meter.
pub fn metrics() -> Metrics {
    let meter = sympozium_telemetry::meter();
    Metrics {
        runs: meter
            .u64_counter("sympozium.agent.runs")
            .with_unit("{run}")
            .with_description("Agent runs by outcome")
            .build(),
        run_duration: meter
            .f64_histogram("sympozium.agent.run.duration")
            .with_unit("ms")
            .with_description("Wall time of agent runs")
            .build(),
        input_tokens: meter
            .u64_counter("gen_ai.usage.input_tokens")
            .with_unit("{token}")
            .with_description("Prompt tokens sent to models")
            .build(),
        output_tokens: meter
            .u64_counter("gen_ai.usage.output_tokens")
            .with_unit("{token}")
            .with_description("Completion tokens received from models")
            .build(),
        tool_invocations: meter
            .u64_counter("sympozium.tool.invocations")
            .with_unit("{call}")
            .with_description("Tool calls by tool and outcome")
            .build(),
        tool_duration: meter
            .f64_histogram("sympozium.skill.duration")
            .with_unit("ms")
            .with_description("Wall time of tool calls")
            .build(),
    }
}

impl Metrics {
    /// One model call's usage.
    pub fn tokens(&self, model: &str, instance: &str, usage: Usage) {
        let attrs =
            [KeyValue::new("model", model.to_string()), KeyValue::new("instance", instance.to_string())];
        self.input_tokens.add(usage.input, &attrs);
        self.output_tokens.add(usage.output, &attrs);
    }

    /// One tool call.
    pub fn tool_call(&self, tool: &str, ok: bool, took: Duration) {
        let status = if ok { "success" } else { "error" };
        self.tool_invocations
            .add(1, &[KeyValue::new("tool_name", tool.to_string()), KeyValue::new("status", status)]);
        self.tool_duration
            .record(took.as_secs_f64() * 1000.0, &[KeyValue::new("skill_name", tool.to_string())]);
    }

    /// One finished run.
    pub fn run(&self, instance: &str, namespace: &str, model: &str, ok: bool, took: Duration) {
        let attrs = [
            KeyValue::new("instance", instance.to_string()),
            KeyValue::new("namespace", namespace.to_string()),
            KeyValue::new("model", model.to_string()),
            KeyValue::new("status", if ok { "success" } else { "error" }),
        ];
        self.runs.add(1, &attrs);
        self.run_duration.record(took.as_secs_f64() * 1000.0, &attrs);
    }
}
