//! Latencies of the memory server's store and search operations (database time, not HTTP),
//! as Prometheus histograms on `GET /metrics` and as OpenTelemetry histograms exported
//! with the rest of the server's telemetry.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of the latency histograms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    /// `ok` or `error`.
    outcome: String,
}

type Latency = Family<Outcome, Histogram, fn() -> Histogram>;

fn buckets() -> Histogram {
    // 100 µs to ~3 s: SQLite answers in well under a millisecond until the disk is slow.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The memory server's metrics (one set per process: the server serves one database).
pub struct Metrics {
    registry: Registry,
    store: Latency,
    search: Latency,
    otel_store: opentelemetry::metrics::Histogram<f64>,
    otel_search: opentelemetry::metrics::Histogram<f64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Which operation a latency belongs to.
#[derive(Clone, Copy, Debug)]
pub enum Operation {
    /// `POST /store`.
    Store,
    /// `POST /search`.
    Search,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("sympozium_memory");
        let store: Latency = Family::new_with_constructor(buckets);
        let search: Latency = Family::new_with_constructor(buckets);
        registry.register("store_duration_seconds", "Time to store one memory", store.clone());
        registry.register("search_duration_seconds", "Time to answer one search", search.clone());
        let meter = sympozium_telemetry::meter();
        let histogram = |name: &'static str, what: &'static str| {
            meter.f64_histogram(name).with_unit("s").with_description(what).build()
        };
        Self {
            registry,
            store,
            search,
            otel_store: histogram("sympozium.memory.store.duration", "Time to store one memory"),
            otel_search: histogram("sympozium.memory.search.duration", "Time to answer one search"),
        }
    }

    /// The process's metrics (created on first use, after telemetry init has installed the
    /// meter provider).
    pub fn global() -> Arc<Metrics> {
        static METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();
        METRICS.get_or_init(|| Arc::new(Metrics::new())).clone()
    }

    /// Records one operation's latency.
    pub fn observe(&self, op: Operation, took: Duration, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        let seconds = took.as_secs_f64();
        let (family, otel) = match op {
            Operation::Store => (&self.store, &self.otel_store),
            Operation::Search => (&self.search, &self.otel_search),
        };
        family.get_or_create(&Outcome { outcome: outcome.into() }).observe(seconds);
        otel.record(seconds, &[KeyValue::new("outcome", outcome)]);
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug, and an empty
        // page is the honest answer then.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
