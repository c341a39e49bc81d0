//! Reconcile metrics every controller emits: count, failures and duration, per controller,
//! rendered in the Prometheus text format for the `/metrics` endpoint.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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

/// The metrics registry of one process plus the reconcile metrics in it.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<ControllerLabel, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: HistogramFamily,
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
        Self { registry: Arc::new(registry), reconciles, failures, duration }
    }
}

impl Metrics {
    /// Starts timing one reconcile of `controller`; the returned guard records its duration
    /// when dropped.
    pub fn reconcile(&self, controller: &str) -> ReconcileTimer {
        let label = ControllerLabel { controller: controller.to_string() };
        self.reconciles.get_or_create(&label).inc();
        ReconcileTimer { histogram: self.duration.get_or_create(&label).clone(), start: Instant::now() }
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
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
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
}
