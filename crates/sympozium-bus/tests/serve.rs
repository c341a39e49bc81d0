//! `Bus::serve` against a real nats-server: every outcome settles the message as it says
//! (a nak comes back, a term never does, an ack is gone), and `serve_until` stops serving
//! when told to, leaving nothing unacknowledged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sympozium_bus::{Backlog, Bus, Delivery, Handler, Outcome, topics};
use sympozium_testkit::nats::NatsServer;
use tokio::sync::mpsc;

/// Naks `retry` once, terms `drop`, acks the rest; reports each call as `(name, attempt)`.
struct Judge {
    seen: mpsc::UnboundedSender<(String, u32)>,
    retried: bool,
}

impl Handler for Judge {
    async fn handle(&mut self, d: &mut Delivery) -> Outcome {
        let name = d.envelope.data["name"].as_str().unwrap_or_default().to_string();
        let outcome = match name.as_str() {
            "retry" if !self.retried => {
                self.retried = true;
                Outcome::Nak(Duration::from_millis(100))
            }
            "drop" => Outcome::Term,
            _ => Outcome::Ack,
        };
        let attempt = if name == "retry" && outcome == Outcome::Ack { 2 } else { 1 };
        self.seen.send((name, attempt)).unwrap();
        outcome
    }
}

#[tokio::test]
async fn outcomes_settle_messages_and_serving_stops_on_shutdown() {
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let (seen, mut calls) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            bus.serve_until("judge", topics::SCHEDULE_UPSERT, shutdown, Judge { seen, retried: false }).await;
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for name in ["retry", "drop", "keep"] {
        bus.publish(topics::SCHEDULE_UPSERT, BTreeMap::new(), &json!({ "name": name })).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 4 {
        let call =
            tokio::time::timeout(Duration::from_secs(20), calls.recv()).await.expect("in time").unwrap();
        got.push(call);
    }
    got.sort();
    let expected = [("drop", 1), ("keep", 1), ("retry", 1), ("retry", 2)].map(|(n, a)| (n.to_string(), a));
    assert_eq!(got, expected, "the nak came back once; nothing else twice");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), serving).await.expect("serving stops").unwrap();
    // Terminated and acknowledged messages alike are settled: nothing waits for redelivery.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bus.backlog("judge").await.unwrap(), Some(Backlog::default()));
    assert!(
        tokio::time::timeout(Duration::from_secs(1), calls.recv()).await.map_or(true, |c| c.is_none()),
        "no call after shutdown"
    );
}

/// Acknowledges after `delay`, reporting each message's `n`.
struct Slow {
    seen: mpsc::UnboundedSender<i64>,
    delay: Duration,
}

impl Handler for Slow {
    async fn handle(&mut self, d: &mut Delivery) -> Outcome {
        tokio::time::sleep(self.delay).await;
        self.seen.send(d.envelope.data["n"].as_i64().unwrap_or(-1)).unwrap();
        Outcome::Ack
    }
}

#[tokio::test]
async fn messages_pulled_but_not_handled_come_back_at_once_after_shutdown() {
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let (seen, mut calls) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let slow = Slow { seen: seen.clone(), delay: Duration::from_millis(500) };
    let serving = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            bus.serve_until("slow", topics::SCHEDULE_UPSERT, shutdown, slow).await;
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 0..5 {
        bus.publish(topics::SCHEDULE_UPSERT, BTreeMap::new(), &json!({ "n": n })).await.unwrap();
    }
    let first = tokio::time::timeout(Duration::from_secs(20), calls.recv()).await.expect("in time").unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), serving).await.expect("serving stops").unwrap();

    // The next server gets the rest long before ACK_WAIT (30 s) runs out. One the client
    // library receives only after the pump has stopped (a fetch in flight at that moment)
    // cannot be handed back and waits it out.
    let stopped_at = tokio::time::Instant::now();
    let fast = Slow { seen, delay: Duration::ZERO };
    let next = tokio::spawn({
        let bus = bus.clone();
        async move { bus.serve("slow", topics::SCHEDULE_UPSERT, fast).await }
    });
    let (mut all, mut late) = (vec![first], 0);
    while all.len() < 5 {
        let n = tokio::time::timeout(Duration::from_secs(45), calls.recv()).await.expect("in time").unwrap();
        if !all.contains(&n) {
            all.push(n);
            late += usize::from(stopped_at.elapsed() > Duration::from_secs(10));
        }
    }
    next.abort();
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2, 3, 4]);
    assert!(late <= 1, "{late} messages waited out ACK_WAIT");
}
