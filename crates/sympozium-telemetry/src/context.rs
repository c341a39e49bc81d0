//! W3C trace context in and out of `tracing` spans, so a trace crosses processes (bus
//! headers, AgentRun annotations, pod environment) as one trace.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes `span` a child of the remote span named by a `traceparent` value. A malformed or
/// empty value leaves the span a root (a new trace).
pub fn set_parent_from_traceparent(span: &tracing::Span, traceparent: &str) {
    let traceparent = traceparent.trim();
    if traceparent.is_empty() {
        return;
    }
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        // Only fails when the span is disabled or already started with a parent.
        let _ = span.set_parent(cx);
    }
}

/// The `traceparent` of the current span, `None` outside any span (or with telemetry off).
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}
