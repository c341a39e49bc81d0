#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Grafana dashboard shipped in the chart queries only metrics our code exports, and
//! shows every one of them. The exported names come from the code itself: the controller's
//! and the memory server's Prometheus registries, rendered after recording one of each.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sympozium_kube::metrics::{Metrics, RunRecord};
use sympozium_memory::metrics::{Metrics as MemoryMetrics, Operation};

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/helm/sympozium/files/grafana/sympozium.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Series names (`name`, `name_bucket`, `name_total`, …) in a Prometheus exposition.
fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Every series our Prometheus endpoints export.
fn exported() -> BTreeSet<String> {
    let m = Metrics::default();
    drop(m.reconcile("sympoziuminstance"));
    m.failure("sympoziuminstance", "kube");
    m.run_finished(&RunRecord {
        instance: "triage".into(),
        model: "gpt-4o".into(),
        succeeded: true,
        duration_ms: 1200,
        input_tokens: 10,
        output_tokens: 2,
        cost: Some((0.01, "USD".into())),
    });
    m.queue_depth("channel-router-inbound", 1, 0);
    m.api_request("get", "pods");
    let memory = MemoryMetrics::global();
    memory.observe(Operation::Store, Duration::from_millis(2), true);
    memory.observe(Operation::Search, Duration::from_millis(3), true);
    let mut names = series(&m.render());
    names.extend(series(&memory.render()));
    names
}

/// Every PromQL expression of every panel (rows included) and template variable.
fn expressions(d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = d["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        panels.extend(p["panels"].as_array().into_iter().flatten());
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(t["expr"].as_str().unwrap_or_else(|| panic!("a target without expr: {t}")).to_string());
        }
    }
    // Query variables only (a datasource variable's "query" is the plugin type).
    for v in d["templating"]["list"].as_array().into_iter().flatten().filter(|v| v["type"] == "query") {
        if let Some(q) = v["query"]["query"].as_str().or(v["query"].as_str()) {
            out.push(q.to_string());
        }
    }
    out
}

/// Metric names (identifiers starting with `sympozium_`, outside label values) used in a
/// PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            quoted = !quoted;
            current.clear();
        } else if quoted {
            continue;
        } else if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            current.push(c);
        } else {
            if current.starts_with("sympozium_") {
                names.push(std::mem::take(&mut current));
            }
            current.clear();
        }
    }
    names
}

#[test]
fn the_dashboard_queries_only_exported_metrics_and_shows_them_all() {
    let exported = exported();
    assert!(exported.contains("sympozium_agent_runs_total"), "{exported:?}");
    let d = dashboard();
    assert_eq!(d["uid"], "sympozium-overview");
    let exprs = expressions(&d);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty() || expr.contains("label_values"), "queries no Sympozium metric: {expr}");
        for name in names {
            assert!(exported.contains(&name), "{name} (in {expr}) is not exported; exported: {exported:#?}");
            used.insert(name);
        }
    }
    // Each exported family shows up (a histogram through any of its series).
    let family = |s: &str| -> String {
        ["_bucket", "_sum", "_count", "_total"]
            .iter()
            .find_map(|suffix| s.strip_suffix(suffix))
            .unwrap_or(s)
            .to_string()
    };
    let shown: BTreeSet<String> = used.iter().map(|s| family(s)).collect();
    let missing: Vec<String> = exported
        .iter()
        .map(|s| family(s))
        .filter(|f| !shown.contains(f))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(missing.is_empty(), "exported but on no panel: {missing:?}");
}

#[test]
fn names_are_read_from_promql() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.95, sum by (le) (rate(sympozium_x_bucket{a=\"sympozium_no\"}[5m])))"
        ),
        vec!["sympozium_x_bucket".to_string()]
    );
}
