//! The channel router under stress on the test control plane with a real nats-server: two
//! router replicas make exactly one run and one reply per message; a NATS restart in the
//! middle of a conversation loses nothing and duplicates nothing (runs that fail while NATS
//! is down still answer once it is back); messages sent while no router runs are handled
//! when one starts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sympozium_api::AgentRun;
use sympozium_bus::{Bus, Delivery, topics};
use sympozium_controller::channelrouter;
use sympozium_testkit::TestPlane;
use sympozium_testkit::nats::NatsServer;
use tokio::sync::mpsc::Receiver;

const WAIT: Duration = Duration::from_secs(30);

async fn send(bus: &Bus, ns: &str, instance: &str, i: usize) {
    let meta = BTreeMap::from([
        ("channel".to_string(), "telegram".to_string()),
        ("instanceName".to_string(), instance.to_string()),
        ("namespace".to_string(), ns.to_string()),
    ]);
    let data = json!({"channel": "telegram", "instanceName": instance, "senderId": "7", "chatId": format!("chat-{i}"),
        "text": format!("question {i}"), "metadata": {"messageId": format!("m{i}")}});
    bus.publish(topics::CHANNEL_MESSAGE_RECEIVED, meta, &data).await.unwrap();
}

async fn runs(api: &Api<AgentRun>, instance: &str, n: usize) -> Vec<AgentRun> {
    let list = async || {
        api.list(&ListParams::default().labels(&format!("sympozium.ai/instance={instance}")))
            .await
            .unwrap()
            .items
    };
    let enough = async {
        loop {
            let r = list().await;
            if r.len() >= n {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(WAIT, enough).await.unwrap_or_else(|_| panic!("{n} runs in time"));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let r = list().await;
    assert_eq!(r.len(), n, "exactly one run per message");
    r
}

async fn replies(rx: &mut Receiver<Delivery>, n: usize) -> BTreeSet<(String, String)> {
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        let d = tokio::time::timeout(WAIT, rx.recv()).await.expect("a reply in time").unwrap();
        d.ack().await;
        let key = (
            d.envelope.data["chatId"].as_str().unwrap().to_string(),
            d.envelope.data["text"].as_str().unwrap().to_string(),
        );
        assert!(seen.insert(key.clone()), "duplicate reply {key:?}");
    }
    if let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(1500), rx.recv()).await {
        panic!("extra reply: {}", d.envelope.data);
    }
    seen
}

fn chat_of(run: &AgentRun) -> String {
    run.annotations()["sympozium.ai/reply-chat-id"].clone()
}

#[tokio::test]
async fn replicas_restarts_and_downtime_lose_and_duplicate_nothing() {
    let plane = TestPlane::get().unwrap();
    let client: Client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "chan-resilience").await.unwrap().name().to_string();
    let inst = "carol";
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance", "metadata": {"name": inst},
        "spec": {"agents": {"default": {"model": "gpt-4.1"}}, "channels": [{"type": "telegram", "configRef": {"secret": "tg"}}]}});
    Api::<sympozium_api::SympoziumInstance>::namespaced(client.clone(), &ns)
        .patch(inst, &PatchParams::apply("test"), &Patch::Apply(&body))
        .await
        .unwrap();
    let api: Api<AgentRun> = Api::namespaced(client.clone(), &ns);

    let mut nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let mut out = bus.durable("test-outbound", topics::CHANNEL_MESSAGE_SEND);
    // Two replicas, each with its own connection, as two controller pods would have.
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let b = Bus::connect(&nats.url()).await.unwrap();
        replicas.push(tokio::spawn(channelrouter::run(client.clone(), b)));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..8 {
        send(&bus, &ns, inst, i).await;
    }
    let made = runs(&api, inst, 8).await;

    // NATS crashes mid-conversation; two runs fail while it is down.
    nats.kill();
    let by_chat: BTreeMap<String, String> = made.iter().map(|r| (chat_of(r), r.name_any())).collect();
    for i in [6, 7] {
        let status = json!({"status": {"phase": "Failed", "error": format!("crash {i}")}});
        api.patch_status(&by_chat[&format!("chat-{i}")], &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.restart().await.unwrap();
    for i in 0..6 {
        let meta = BTreeMap::from([
            ("agentRunID".to_string(), by_chat[&format!("chat-{i}")].clone()),
            ("instanceName".to_string(), inst.to_string()),
            ("namespace".to_string(), ns.clone()),
        ]);
        bus.publish(
            topics::AGENT_RUN_COMPLETED,
            meta,
            &json!({"status": "success", "response": format!("answer {i}")}),
        )
        .await
        .unwrap();
    }
    let got = replies(&mut out, 8).await;
    let mut want: BTreeSet<(String, String)> =
        (0..6).map(|i| (format!("chat-{i}"), format!("answer {i}"))).collect();
    want.extend([6, 7].map(|i| (format!("chat-{i}"), format!("Error: crash {i}"))));
    assert_eq!(got, want);

    // No router at all for a while: messages wait for the next one.
    for r in replicas {
        r.abort();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 8..10 {
        send(&bus, &ns, inst, i).await;
    }
    let later = tokio::spawn(channelrouter::run(client.clone(), Bus::connect(&nats.url()).await.unwrap()));
    runs(&api, inst, 10).await;
    later.abort();
}
