//! `GET /ws/stream` through a real WebSocket client against a real nats-server: chunks a
//! run publishes arrive as envelopes, filtered by namespace and run; the token guards the
//! upgrade; without a bus the route says 503.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sympozium_bus::jwt::Trust;
use sympozium_bus::scope::Identity;
use sympozium_bus::{Bus, BusOptions, topics};
use sympozium_testkit::nats::NatsServer;
use tokio_tungstenite::tungstenite::Message;

async fn serve(h: &common::Harness) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = h.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("ws://{addr}")
}

async fn next_text(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("no frame in 20s")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test]
async fn stream_chunks_reach_the_browser_as_the_operator_user() {
    // The bus in operator mode with minted users: the API server is only the operator.
    let trust = Trust::generate();
    let config = trust.server_config().unwrap();
    let nats = NatsServer::start_with_config(move |_, _| config).await.unwrap();
    let issuer = trust.issuer();
    let as_user = |identity: Identity| BusOptions {
        user: Some(issuer.mint(&identity, None).unwrap()),
        ..Default::default()
    };
    // The controller makes the stream; a run publishes; the server reads as operator.
    let _controller = Bus::connect_with(&nats.url(), as_user(Identity::Controller)).await.unwrap();
    let agent = Bus::connect_with(&nats.url(), as_user(Identity::run("team", "run-a", None))).await.unwrap();
    let operator = Bus::connect_with(&nats.url(), as_user(Identity::Operator)).await.unwrap();
    let h = common::Harness::new("api-ws", Some(operator)).await;
    let base = serve(&h).await;

    // No token, wrong token: the upgrade is refused with 401.
    for url in [format!("{base}/ws/stream"), format!("{base}/ws/stream?token=wrong")] {
        match tokio_tungstenite::connect_async(&url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
            other => panic!("{url}: expected 401, got {:?}", other.map(|_| ())),
        }
    }

    let url = format!("{base}/ws/stream?token={}&namespace={}", common::TOKEN, h.ns);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut one_run, _) = tokio_tungstenite::connect_async(format!("{url}&run=run-b")).await.unwrap();
    // Give the subscriptions a moment to reach NATS before publishing (core subscriptions
    // see only what is published after them).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let publish = |ns: &str, run: &str, i: u64, text: &str| {
        let meta = BTreeMap::from([
            ("agentRunID".to_string(), run.to_string()),
            ("namespace".to_string(), ns.to_string()),
            ("instanceName".to_string(), "helper".to_string()),
        ]);
        let body = json!({"type": "text", "content": text, "index": i});
        let agent = agent.clone();
        async move { agent.publish(topics::AGENT_STREAM_CHUNK, meta, &body).await.unwrap() }
    };
    publish("someone-else", "run-x", 0, "not yours").await;
    publish(&h.ns, "run-a", 0, "Hello").await;
    publish(&h.ns, "run-b", 0, "World").await;
    let first = next_text(&mut ws).await;
    assert_eq!(first["topic"], "agent.stream.chunk");
    assert_eq!(first["metadata"]["agentRunID"], "run-a", "another namespace's chunk leaked: {first}");
    assert_eq!(first["data"]["content"], "Hello");
    assert!(first["timestamp"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(next_text(&mut ws).await["data"]["content"], "World");
    assert_eq!(next_text(&mut one_run).await["metadata"]["agentRunID"], "run-b");
    ws.send(Message::Close(None)).await.unwrap();
    drop(nats);
}

#[tokio::test]
async fn without_a_bus_the_stream_is_unavailable() {
    let h = common::Harness::new("api-ws-off", None).await;
    let base = serve(&h).await;
    match tokio_tungstenite::connect_async(format!("{base}/ws/stream?token={}", common::TOKEN)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
}
