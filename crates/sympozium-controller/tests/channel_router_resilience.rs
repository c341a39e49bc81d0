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

/// The subject a channel pod of the instance `meta` names publishes on (its own).
fn received(meta: &std::collections::BTreeMap<String, String>) -> String {
    let get = |k: &str| meta.get(k).map(String::as_str).filter(|v| !v.is_empty());
    sympozium_bus::topics::channel_received(
        get("namespace").unwrap_or("default"),
        get("instanceName").unwrap_or("none"),
    )
}

const WAIT: Duration = Duration::from_secs(30);

async fn send(bus: &Bus, ns: &str, instance: &str, i: usize) {
    let meta = BTreeMap::from([
        ("channel".to_string(), "telegram".to_string()),
        ("instanceName".to_string(), instance.to_string()),
        ("namespace".to_string(), ns.to_string()),
    ]);
    let data = json!({"channel": "telegram", "instanceName": instance, "senderId": "7", "chatId": format!("chat-{i}"),
        "text": format!("question {i}"), "metadata": {"messageId": format!("m{i}")}});
    bus.publish(&received(&meta), meta, &data).await.unwrap();
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
    let mut out = bus.durable("test-outbound", &topics::every(topics::CHANNEL_MESSAGE_SEND));
    // Two replicas, each with its own connection, as two controller pods would have.
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let b = Bus::connect(&nats.url()).await.unwrap();
        replicas.push(tokio::spawn(channelrouter::run(scoped(&client, &ns), b)));
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
    let later =
        tokio::spawn(channelrouter::run(scoped(&client, &ns), Bus::connect(&nats.url()).await.unwrap()));
    runs(&api, inst, 10).await;
    later.abort();
}

/// Two installations on one cluster (two controllers with `--watch-namespace`, each with its
/// own bus), or two tests on one plane: each router answers the channel runs of its own
/// namespace only. A router that watched every namespace took the other's replies — it
/// claimed a finished run of the other namespace and published the answer on its own bus,
/// where no channel pod of that instance listens, so the user never got it.
#[tokio::test]
async fn routers_scoped_to_their_namespaces_never_take_each_others_replies() {
    let plane = TestPlane::get().unwrap();
    let client: Client = plane.client().await.unwrap();
    let inst = "dave";
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance", "metadata": {"name": inst},
        "spec": {"agents": {"default": {"model": "gpt-4.1"}}, "channels": [{"type": "telegram", "configRef": {"secret": "tg"}}]}});
    let mut sides = Vec::new();
    for prefix in ["chan-scope-a", "chan-scope-b"] {
        let ns = plane.namespace(&client, prefix).await.unwrap().name().to_string();
        Api::<sympozium_api::SympoziumInstance>::namespaced(client.clone(), &ns)
            .patch(inst, &PatchParams::apply("test"), &Patch::Apply(&body))
            .await
            .unwrap();
        let nats = NatsServer::start().await.unwrap();
        let bus = Bus::connect(&nats.url()).await.unwrap();
        let out = bus.durable("test-outbound", &topics::every(topics::CHANNEL_MESSAGE_SEND));
        let router =
            tokio::spawn(channelrouter::run(scoped(&client, &ns), Bus::connect(&nats.url()).await.unwrap()));
        sides.push((ns, nats, bus, out, router));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut made = Vec::new();
    for (ns, _, bus, _, _) in &sides {
        for i in 0..3 {
            send(bus, ns, inst, i).await;
        }
        made.push(runs(&Api::namespaced(client.clone(), ns), inst, 3).await);
    }
    // A completion naming a run of the other namespace arrives on A's bus: not A's to answer.
    let (ns_b, foreign) = (&sides[1].0, made[1][0].name_any());
    let meta = BTreeMap::from([
        ("agentRunID".to_string(), foreign),
        ("instanceName".to_string(), inst.to_string()),
        ("namespace".to_string(), ns_b.clone()),
    ]);
    sides[0]
        .2
        .publish(topics::AGENT_RUN_COMPLETED, meta, &json!({"status": "success", "response": "stolen"}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Every run of both namespaces ends without a completion event: the watch path answers.
    for ((ns, ..), runs) in sides.iter().zip(&made) {
        let api: Api<AgentRun> = Api::namespaced(client.clone(), ns);
        for r in runs {
            let status = json!({"status": {"phase": "Failed", "error": format!("done in {ns}")}});
            api.patch_status(&r.name_any(), &PatchParams::default(), &Patch::Merge(status)).await.unwrap();
        }
    }
    for ((ns, _, _, out, router), runs) in sides.iter_mut().zip(&made) {
        let got = replies(out, 3).await;
        let want: BTreeSet<(String, String)> =
            runs.iter().map(|r| (chat_of(r), format!("Error: done in {ns}"))).collect();
        assert_eq!(got, want, "each reply on its own namespace's bus, once");
        router.abort();
    }
}

/// A router context watching `ns` only, with default settings.
fn scoped(client: &Client, ns: &str) -> std::sync::Arc<sympozium_controller::context::Context> {
    std::sync::Arc::new(sympozium_controller::context::Context::with_defaults(
        client.clone(),
        Some(ns.to_string()),
    ))
}
