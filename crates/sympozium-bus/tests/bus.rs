//! The bus against a real nats-server: round trip with trace context, durable delivery of
//! messages published while the consumer was away, sharing between replicas, and recovery
//! after NATS restarts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sympozium_bus::{Bus, Delivery, topics};
use sympozium_testkit::nats::NatsServer;
use tokio::sync::mpsc::Receiver;

async fn next(rx: &mut Receiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.expect("a delivery in time").expect("open")
}

fn meta(run: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("agentRunID".to_string(), run.to_string()),
        ("instanceName".to_string(), "a".to_string()),
    ])
}

#[tokio::test]
async fn round_trip_with_metadata_and_trace_context() {
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let mut rx = bus.durable("rt", topics::SCHEDULE_UPSERT);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    bus.publish_traced(
        topics::SCHEDULE_UPSERT,
        meta("r1"),
        &json!({"name": "n", "action": "create"}),
        Some(tp),
    )
    .await
    .unwrap();
    let d = next(&mut rx).await;
    assert_eq!(d.envelope.topic, "schedule.upsert");
    assert_eq!(d.envelope.meta("agentRunID"), "r1");
    assert_eq!(d.envelope.data["action"], "create");
    assert_eq!(d.traceparent.as_deref(), Some(tp));
    d.ack().await;
}

#[tokio::test]
async fn durable_consumers_get_what_was_published_while_away_and_survive_nats_restarts() {
    let mut nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    {
        let mut rx = bus.durable("router", topics::SCHEDULE_UPSERT);
        tokio::time::sleep(Duration::from_millis(300)).await;
        bus.publish(topics::SCHEDULE_UPSERT, meta("r0"), &json!({"n": 0})).await.unwrap();
        next(&mut rx).await.ack().await;
    }
    // The consumer is gone; messages keep arriving.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in 1..=3 {
        bus.publish(topics::SCHEDULE_UPSERT, meta("r1"), &json!({ "n": n })).await.unwrap();
    }
    let mut rx = bus.durable("router", topics::SCHEDULE_UPSERT);
    for n in 1..=3 {
        let d = next(&mut rx).await;
        assert_eq!(d.envelope.data["n"], n, "in order, none lost");
        d.ack().await;
    }

    // NATS crashes and comes back on the same store: the same connection and consumer go on.
    nats.restart().await.unwrap();
    let mut published = false;
    for _ in 0..50 {
        if bus.publish(topics::SCHEDULE_UPSERT, meta("r2"), &json!({"n": 4})).await.is_ok() {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(published, "publishing works again after the restart");
    // A crash may replay acknowledged messages (at-least-once; handlers are idempotent),
    // but the new one must arrive.
    loop {
        let d = next(&mut rx).await;
        let n = d.envelope.data["n"].as_i64().unwrap();
        d.ack().await;
        if n == 4 {
            break;
        }
        assert!(n < 4, "only replays of earlier messages before the new one");
    }
}

#[tokio::test]
async fn replicas_sharing_a_durable_name_split_the_work() {
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let mut a = bus.durable("shared", topics::CHANNEL_MESSAGE_RECEIVED);
    let mut b = bus.durable("shared", topics::CHANNEL_MESSAGE_RECEIVED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 0..20 {
        bus.publish(topics::CHANNEL_MESSAGE_RECEIVED, meta("x"), &json!({ "n": n })).await.unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let d = tokio::select! {
            Some(d) = a.recv() => d,
            Some(d) = b.recv() => d,
            () = tokio::time::sleep(Duration::from_secs(20)) => panic!("only {} of 20 delivered", seen.len()),
        };
        seen.push(d.envelope.data["n"].as_i64().unwrap());
        d.ack().await;
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..20).collect::<Vec<_>>(), "every message exactly once across both replicas");
}

/// Whether the stream still has the durable consumer `name`.
async fn consumer_exists(bus: &Bus, name: &str) -> bool {
    let js = async_nats::jetstream::new(bus.client().clone());
    let stream = js.get_stream("sympozium").await.unwrap();
    stream.consumer_info(name).await.is_ok()
}

#[tokio::test]
async fn durable_consumers_nobody_pulls_from_expire() {
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap().with_consumer_expiry(Duration::from_secs(1));
    let mut rx = bus.durable("channel-telegram-ns-gone", topics::CHANNEL_MESSAGE_SEND);
    tokio::time::sleep(Duration::from_millis(300)).await;
    bus.publish(topics::CHANNEL_MESSAGE_SEND, meta("r1"), &json!({"n": 1})).await.unwrap();
    next(&mut rx).await.ack().await;

    // Several expiry periods with a consumer pulling: it stays.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(consumer_exists(&bus, "channel-telegram-ns-gone").await, "a consumer in use is kept");
    bus.publish(topics::CHANNEL_MESSAGE_SEND, meta("r2"), &json!({"n": 2})).await.unwrap();
    assert_eq!(next(&mut rx).await.envelope.data["n"], 2, "and still delivers");

    // Its pod goes away for good (the instance was deleted): NATS forgets the consumer.
    drop(rx);
    let mut gone = false;
    for _ in 0..100 {
        if !consumer_exists(&bus, "channel-telegram-ns-gone").await {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(gone, "an abandoned consumer is removed by the server");
}
