#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Store and search latencies of the real server binary: on its Prometheus `/metrics`
//! (open to scrapers while the data routes still need the token) and exported over OTLP to
//! a real OpenTelemetry Collector.

mod common;

use std::time::Duration;

use common::ServerProcess;
use serde_json::Value;
use sympozium_testkit::otelcol::OtelCollector;

const TOKEN: &str = "memory-token-for-metrics";

/// `<name>{outcome="ok"} <n>` from the exposition text.
fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{outcome=\"ok\"}}")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
}

/// The latest point count of the OTLP histogram `name`.
fn histogram_count(collector: &OtelCollector, name: &str) -> u64 {
    collector
        .metrics()
        .iter()
        .filter(|m| m["name"] == name)
        .flat_map(|m| m["histogram"]["dataPoints"].as_array().cloned().unwrap_or_default())
        .filter_map(|p: Value| p["count"].as_str().and_then(|c| c.parse().ok()))
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn store_and_search_latencies_reach_metrics_and_the_collector() {
    let collector = OtelCollector::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = collector.grpc_endpoint();
    let server = ServerProcess::start(
        &dir.path().join("memory.db"),
        &[
            ("MEMORY_AUTH_TOKEN", TOKEN),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("SYMPOZIUM_OTEL_BATCH_TIMEOUT", "200ms"),
        ],
    );
    let client = server.client().with_token(TOKEN);
    for note in ["the payments pod restarts at 02:00", "cart uses redis 7", "ingress cert renewed"] {
        client.store(note, &["ops".to_string()]).await.unwrap();
    }
    assert_eq!(client.search("redis", 5).await.unwrap().len(), 1);
    client.search("payments", 5).await.unwrap();

    let http = reqwest::Client::new();
    let metrics = http.get(format!("{}/metrics", server.url)).send().await.unwrap();
    assert_eq!(metrics.status(), 200, "Prometheus scrapes without the token");
    let text = metrics.text().await.unwrap();
    assert_eq!(sample(&text, "sympozium_memory_store_duration_seconds_count"), Some(3), "{text}");
    assert_eq!(sample(&text, "sympozium_memory_search_duration_seconds_count"), Some(2), "{text}");
    assert!(!text.contains("redis") && !text.contains("payments"), "metrics carry no memory content");
    let list = http.get(format!("{}/list", server.url)).send().await.unwrap();
    assert_eq!(list.status(), 401, "the data routes still need the token");

    let mut counts = (0, 0);
    for _ in 0..200 {
        counts = (
            histogram_count(&collector, "sympozium.memory.store.duration"),
            histogram_count(&collector, "sympozium.memory.search.duration"),
        );
        if counts == (3, 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counts, (3, 2), "OTLP histograms; collector log:\n{}", collector.log());
    let unit = collector
        .metrics()
        .into_iter()
        .find(|m| m["name"] == "sympozium.memory.store.duration")
        .map(|m| m["unit"].clone());
    assert_eq!(unit, Some(Value::from("s")));
}
