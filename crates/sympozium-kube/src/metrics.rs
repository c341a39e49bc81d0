//! Reconcile metrics every controller emits (count, failures and duration, per controller)
//! and the outcome of agent runs (count and duration by phase, tokens and cost by model and
//! instance), rendered in the Prometheus text format for the `/metrics` endpoint and
//! recorded on the OpenTelemetry meter as well (exported when telemetry is configured).

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::KeyValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-controller metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    /// Controller name, e.g. `sympoziuminstance`.
    pub controller: String,
}

/// Labels of failure metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Controller name.
    pub controller: String,
    /// Short error kind, e.g. `kube` or `invalid`.
    pub reason: String,
}

type HistogramFamily = Family<ControllerLabel, Histogram, fn() -> Histogram>;

/// Labels of run outcome metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// Instance the run belongs to.
    pub instance: String,
    /// `succeeded` or `failed`.
    pub status: String,
}

/// Labels of token and cost metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UsageLabels {
    /// Instance the run belongs to.
    pub instance: String,
    /// Model name.
    pub model: String,
    /// `input`/`output` for tokens, the currency for cost.
    pub kind: String,
}

/// One finished run, as metered.
#[derive(Clone, Debug, Default)]
pub struct RunRecord {
    /// Instance name.
    pub instance: String,
    /// Model name.
    pub model: String,
    /// Whether the run succeeded.
    pub succeeded: bool,
    /// Wall time reported by the run.
    pub duration_ms: i64,
    /// Prompt tokens.
    pub input_tokens: i64,
    /// Completion tokens.
    pub output_tokens: i64,
    /// Cost and currency, when the model has a price.
    pub cost: Option<(f64, String)>,
}

type RunHistogramFamily = Family<RunLabels, Histogram, fn() -> Histogram>;

/// Labels of queue-depth metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// The durable bus consumer, e.g. `channel-router-inbound`.
    pub consumer: String,
    /// `pending` (not yet delivered) or `unacknowledged` (delivered, being handled).
    pub state: String,
}

/// Labels of API request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiRequestLabels {
    /// Kubernetes verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection` (`other` for non-resource paths).
    pub verb: String,
    /// Resource, with its subresource when there is one (`agentruns/status`, `pods/log`).
    pub resource: String,
}

fn run_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.5, 2.0, 14))
}

/// The same measurements on the OpenTelemetry meter (names in docs/observability.md).
#[derive(Clone)]
struct Otel {
    reconcile_duration: opentelemetry::metrics::Histogram<f64>,
    runs: opentelemetry::metrics::Counter<u64>,
    run_duration: opentelemetry::metrics::Histogram<f64>,
    errors: opentelemetry::metrics::Counter<u64>,
    tokens: opentelemetry::metrics::Counter<u64>,
    cost: opentelemetry::metrics::Counter<f64>,
    queue_depth: opentelemetry::metrics::Gauge<u64>,
}

impl Otel {
    fn new() -> Self {
        let m = opentelemetry::global::meter("sympozium");
        Self {
            reconcile_duration: m
                .f64_histogram("sympozium.reconcile.duration")
                .with_unit("s")
                .with_description("Time spent in one reconcile")
                .build(),
            runs: m
                .u64_counter("sympozium.agent.runs")
                .with_unit("{run}")
                .with_description("Finished agent runs")
                .build(),
            run_duration: m
                .f64_histogram("sympozium.agent.duration_ms")
                .with_unit("ms")
                .with_description("Duration of finished agent runs")
                .build(),
            errors: m.u64_counter("sympozium.errors").with_description("Failed agent runs").build(),
            tokens: m
                .u64_counter("sympozium.agent.tokens")
                .with_unit("{token}")
                .with_description("Tokens used by finished runs, by model and instance")
                .build(),
            cost: m
                .f64_counter("sympozium.agent.cost")
                .with_description("Cost of finished runs by the price table")
                .build(),
            queue_depth: m
                .u64_gauge("sympozium.bus.consumer.pending")
                .with_unit("{message}")
                .with_description("Messages waiting for a durable bus consumer, by consumer and state")
                .build(),
        }
    }
}

/// The metrics registry of one process plus the reconcile metrics in it.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<ControllerLabel, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: HistogramFamily,
    runs: Family<RunLabels, Counter>,
    run_duration: RunHistogramFamily,
    tokens: Family<UsageLabels, Counter>,
    cost: Family<UsageLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    queue_depth: Family<QueueLabels, Gauge>,
    pod_log_reads: Counter,
    api_requests: Family<ApiRequestLabels, Counter>,
    otel: Otel,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sympozium");
        let reconciles = Family::<ControllerLabel, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration: HistogramFamily = Family::new_with_constructor(duration_histogram);
        registry.register("reconciles", "Reconciles run, per controller", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, per controller and reason",
            failures.clone(),
        );
        registry.register("reconcile_duration_seconds", "Time spent in one reconcile", duration.clone());
        let runs = Family::<RunLabels, Counter>::default();
        let run_duration: RunHistogramFamily = Family::new_with_constructor(run_histogram);
        let tokens = Family::<UsageLabels, Counter>::default();
        let cost = Family::<UsageLabels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register("agent_runs", "Finished agent runs, per instance and outcome", runs.clone());
        registry.register(
            "agent_run_duration_seconds",
            "Duration of finished agent runs",
            run_duration.clone(),
        );
        registry.register("agent_tokens", "Tokens of finished runs; kind is input or output", tokens.clone());
        registry.register(
            "agent_cost",
            "Cost of finished runs by the price table; kind is the currency",
            cost.clone(),
        );
        let queue_depth = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "bus_consumer_pending",
            "Messages waiting for a durable bus consumer; state is pending (not delivered) or unacknowledged",
            queue_depth.clone(),
        );
        let pod_log_reads = Counter::default();
        registry.register(
            "pod_log_reads",
            "Reads of a finished agent container's log (the run's outcome is parsed from it)",
            pod_log_reads.clone(),
        );
        let api_requests = Family::<ApiRequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Requests sent to the Kubernetes API server, per verb and resource",
            api_requests.clone(),
        );
        Self {
            registry: Arc::new(registry),
            reconciles,
            failures,
            duration,
            runs,
            run_duration,
            tokens,
            cost,
            queue_depth,
            pod_log_reads,
            api_requests,
            otel: Otel::new(),
        }
    }
}

impl Metrics {
    /// Starts timing one reconcile of `controller`; the returned guard records its duration
    /// when dropped.
    pub fn reconcile(&self, controller: &str) -> ReconcileTimer {
        let label = ControllerLabel { controller: controller.to_string() };
        self.reconciles.get_or_create(&label).inc();
        ReconcileTimer {
            histogram: self.duration.get_or_create(&label).clone(),
            otel: self.otel.reconcile_duration.clone(),
            controller: controller.to_string(),
            start: Instant::now(),
        }
    }

    /// Records one finished run (call once per run).
    pub fn run_finished(&self, run: &RunRecord) {
        let status = if run.succeeded { "succeeded" } else { "failed" };
        let labels = RunLabels { instance: run.instance.clone(), status: status.into() };
        self.runs.get_or_create(&labels).inc();
        let seconds = run.duration_ms.max(0) as f64 / 1000.0;
        self.run_duration.get_or_create(&labels).observe(seconds);
        let usage = |kind: &str| UsageLabels {
            instance: run.instance.clone(),
            model: run.model.clone(),
            kind: kind.into(),
        };
        let (input, output) = (run.input_tokens.max(0) as u64, run.output_tokens.max(0) as u64);
        self.tokens.get_or_create(&usage("input")).inc_by(input);
        self.tokens.get_or_create(&usage("output")).inc_by(output);
        let instance = KeyValue::new("sympozium.instance", run.instance.clone());
        let attrs = [KeyValue::new("sympozium.agent.status", status), instance.clone()];
        self.otel.runs.add(1, &attrs);
        self.otel.run_duration.record(run.duration_ms.max(0) as f64, &attrs);
        if !run.succeeded {
            self.otel.errors.add(1, &[KeyValue::new("error.type", "agent_run_failed"), instance.clone()]);
        }
        let model = KeyValue::new("gen_ai.request.model", run.model.clone());
        for (kind, n) in [("input", input), ("output", output)] {
            self.otel
                .tokens
                .add(n, &[instance.clone(), model.clone(), KeyValue::new("gen_ai.token.type", kind)]);
        }
        if let Some((amount, currency)) = &run.cost {
            self.cost.get_or_create(&usage(currency)).inc_by(*amount);
            self.otel.cost.add(*amount, &[instance, model, KeyValue::new("currency", currency.clone())]);
        }
    }

    /// Records the queue depth of the durable bus consumer `consumer`.
    pub fn queue_depth(&self, consumer: &str, pending: u64, unacknowledged: u64) {
        for (state, n) in [("pending", pending), ("unacknowledged", unacknowledged)] {
            let labels = QueueLabels { consumer: consumer.to_string(), state: state.to_string() };
            self.queue_depth.get_or_create(&labels).set(i64::try_from(n).unwrap_or(i64::MAX));
            self.otel.queue_depth.record(
                n,
                &[
                    KeyValue::new("messaging.consumer.group.name", consumer.to_string()),
                    KeyValue::new("state", state),
                ],
            );
        }
    }

    /// Counts one read of a pod's log.
    pub fn pod_log_read(&self) {
        self.pod_log_reads.inc();
    }

    /// Counts one request to the Kubernetes API server.
    pub fn api_request(&self, verb: &str, resource: &str) {
        self.api_requests
            .get_or_create(&ApiRequestLabels { verb: verb.to_string(), resource: resource.to_string() })
            .inc();
    }

    /// Counts a failed reconcile.
    pub fn failure(&self, controller: &str, reason: &str) {
        self.failures
            .get_or_create(&FailureLabels { controller: controller.to_string(), reason: reason.to_string() })
            .inc();
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error here would be a bug in the encoder.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Records a reconcile's duration when dropped.
#[derive(Debug)]
pub struct ReconcileTimer {
    histogram: Histogram,
    otel: opentelemetry::metrics::Histogram<f64>,
    controller: String,
    start: Instant,
}

impl std::fmt::Debug for Otel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otel").finish_non_exhaustive()
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        let seconds = self.start.elapsed().as_secs_f64();
        self.histogram.observe(seconds);
        self.otel
            .record(seconds, &[KeyValue::new("sympozium.controller", std::mem::take(&mut self.controller))]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_failures_and_durations() {
        let m = Metrics::default();
        drop(m.reconcile("sympoziuminstance"));
        drop(m.reconcile("sympoziuminstance"));
        m.failure("sympoziuminstance", "kube");
        let text = m.render();
        assert!(text.contains(r#"sympozium_reconciles_total{controller="sympoziuminstance"} 2"#), "{text}");
        assert!(
            text.contains(
                r#"sympozium_reconcile_failures_total{controller="sympoziuminstance",reason="kube"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"sympozium_reconcile_duration_seconds_count{controller="sympoziuminstance"} 2"#)
        );
    }

    #[test]
    fn renders_run_outcomes_tokens_and_cost() {
        let m = Metrics::default();
        let run = RunRecord {
            instance: "triage".into(),
            model: "gpt-4o".into(),
            succeeded: true,
            duration_ms: 1500,
            input_tokens: 1000,
            output_tokens: 200,
            cost: Some((0.0045, "USD".into())),
        };
        m.run_finished(&run);
        m.run_finished(&RunRecord { succeeded: false, cost: None, ..run });
        let text = m.render();
        for line in [
            r#"sympozium_agent_runs_total{instance="triage",status="succeeded"} 1"#,
            r#"sympozium_agent_runs_total{instance="triage",status="failed"} 1"#,
            r#"sympozium_agent_tokens_total{instance="triage",model="gpt-4o",kind="input"} 2000"#,
            r#"sympozium_agent_tokens_total{instance="triage",model="gpt-4o",kind="output"} 400"#,
            r#"sympozium_agent_cost_total{instance="triage",model="gpt-4o",kind="USD"} 0.0045"#,
            r#"sympozium_agent_run_duration_seconds_count{instance="triage",status="succeeded"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn renders_queue_depths_and_keeps_the_latest() {
        let m = Metrics::default();
        m.queue_depth("channel-router-inbound", 7, 1);
        m.queue_depth("channel-router-inbound", 3, 0);
        let text = m.render();
        for line in [
            r#"sympozium_bus_consumer_pending{consumer="channel-router-inbound",state="pending"} 3"#,
            r#"sympozium_bus_consumer_pending{consumer="channel-router-inbound",state="unacknowledged"} 0"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
