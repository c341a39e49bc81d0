#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Queue depths of the controller's durable consumers, sampled from a real nats-server:
//! messages waiting for the channel router show up on `/metrics`, and go back to zero
//! once handled.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sympozium_bus::{Bus, topics};
use sympozium_controller::channelrouter::INBOUND_CONSUMER;
use sympozium_controller::queue_depth;
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::nats::NatsServer;

/// The subject a channel pod of the instance `meta` names publishes on (its own).
fn received(meta: &std::collections::BTreeMap<String, String>) -> String {
    let get = |k: &str| meta.get(k).map(String::as_str).filter(|v| !v.is_empty());
    sympozium_bus::topics::channel_received(
        get("namespace").unwrap_or("default"),
        get("instanceName").unwrap_or("none"),
    )
}

/// `(pending, unacknowledged)` of the router's inbound consumer on `/metrics`.
fn depth(metrics: &Metrics) -> (u64, u64) {
    let text = metrics.render();
    let value = |state: &str| {
        let prefix =
            format!("sympozium_bus_consumer_pending{{consumer=\"{INBOUND_CONSUMER}\",state=\"{state}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {state} sample in\n{text}"))
    };
    (value("pending"), value("unacknowledged"))
}

async fn until(bus: &Bus, metrics: &Metrics, what: &str, f: impl Fn((u64, u64)) -> bool) -> (u64, u64) {
    for _ in 0..100 {
        queue_depth::sample(bus, metrics).await;
        let d = depth(metrics);
        if f(d) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: depth stayed {:?}", depth(metrics));
}

#[tokio::test]
async fn waiting_messages_show_as_queue_depth_until_handled() {
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let metrics = Metrics::default();

    // No consumer yet: an empty queue, not an error.
    queue_depth::sample(&bus, &metrics).await;
    assert_eq!(depth(&metrics), (0, 0));

    let mut inbound = bus.durable(INBOUND_CONSUMER, &topics::every(topics::CHANNEL_MESSAGE_RECEIVED));
    for _ in 0..100 {
        if bus.backlog(INBOUND_CONSUMER).await.unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let meta = BTreeMap::from([("instanceName".to_string(), "sre".to_string())]);
    for i in 0..3 {
        bus.publish(&received(&meta), meta.clone(), &json!({"text": format!("m{i}")})).await.unwrap();
    }
    // Three messages nobody has handled: waiting or delivered and not yet acknowledged.
    until(&bus, &metrics, "three messages waiting", |(p, u)| p + u == 3).await;

    for _ in 0..3 {
        let d = tokio::time::timeout(Duration::from_secs(10), inbound.recv()).await.unwrap().unwrap();
        d.ack().await;
    }
    until(&bus, &metrics, "an empty queue after handling", |d| d == (0, 0)).await;
}
