//! Sub-agents end to end on the test control plane with a real nats-server and a real IPC
//! bridge: a `spawn_subagent` file becomes a child AgentRun (parent, depth, label), the
//! child's result lands in the parent's `/ipc/input`, the instance's limits (maxDepth,
//! maxChildrenPerAgent) refuse with a reason the parent receives, maxConcurrent does not — with two
//! router replicas, each request makes one child and gets one answer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sympozium_api::AgentRun;
use sympozium_bus::{Bus, Envelope, topics};
use sympozium_controller::context::Context;
use sympozium_controller::spawn;
use sympozium_testkit::TestPlane;
use sympozium_testkit::nats::NatsServer;
use tokio::sync::mpsc::Receiver;

const WAIT: Duration = Duration::from_secs(20);

async fn instance(client: &Client, ns: &str, name: &str, limits: Value) {
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance", "metadata": {"name": name},
        "spec": {"agents": {"default": {"model": "gpt-4.1", "subagents": limits}}}});
    Api::<sympozium_api::SympoziumInstance>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply("test"), &Patch::Apply(&body))
        .await
        .unwrap();
}

async fn top_level_run(client: &Client, ns: &str, name: &str, instance: &str) {
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "metadata": {"name": name},
        "spec": {"instanceRef": instance, "agentId": "primary", "sessionKey": "sess-1", "task": "lead",
                 "timeout": "5m", "model": {"provider": "openai", "model": "gpt-4.1", "authSecretRef": "key"}}});
    Api::<AgentRun>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply("test"), &Patch::Apply(&body))
        .await
        .unwrap();
}

async fn children(runs: &Api<AgentRun>, parent: &str) -> Vec<AgentRun> {
    runs.list(&ListParams::default().labels(&format!("sympozium.ai/parent-run={parent}")))
        .await
        .unwrap()
        .items
}

async fn child_count(runs: &Api<AgentRun>, parent: &str, n: usize) -> Vec<AgentRun> {
    let ok = async {
        loop {
            let c = children(runs, parent).await;
            if c.len() >= n {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(WAIT, ok).await.expect("the child runs")
}

async fn finish(runs: &Api<AgentRun>, name: &str, status: Value) {
    runs.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({ "status": status })))
        .await
        .unwrap();
}

async fn read_json(path: &Path) -> Value {
    let found = async {
        loop {
            if let Ok(b) = std::fs::read(path) {
                return serde_json::from_slice::<Value>(&b).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, found).await.unwrap_or_else(|_| panic!("{} in time", path.display()))
}

async fn ask(bus: &Bus, ns: &str, parent: &str, instance: &str, id: &str) {
    let meta = BTreeMap::from([
        ("agentRunID".to_string(), parent.to_string()),
        ("instanceName".to_string(), instance.to_string()),
        ("namespace".to_string(), ns.to_string()),
    ]);
    let req = json!({"id": id, "task": format!("task {id}"), "parentRunId": parent, "instanceName": instance,
        "namespace": ns, "wait": true});
    bus.publish(topics::AGENT_SPAWN_REQUEST, meta, &req).await.unwrap();
}

async fn answer(rx: &mut Receiver<Envelope>) -> Value {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("an answer for the parent").unwrap().data
}

#[tokio::test]
async fn sub_agents_are_spawned_within_limits_and_answer_their_parent() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "spawn").await.unwrap().name().to_string();
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    instance(&client, &ns, "lead", json!({"maxDepth": 2, "maxChildrenPerAgent": 2, "maxConcurrent": 4}))
        .await;
    top_level_run(&client, &ns, "lead-run", "lead").await;

    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    // Two replicas, as with two controller pods: still one child and one answer each.
    let ctx = Arc::new(Context::with_defaults(client.clone(), Some(ns.clone())));
    let router = tokio::spawn(spawn::run(ctx.clone(), bus.clone()));
    let replica = tokio::spawn(spawn::run(ctx.clone(), Bus::connect(&nats.url()).await.unwrap()));

    // The parent's own bridge: the runner's spawn file goes out, the answer comes back.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = sympozium_ipc_bridge::Config::new(dir.path(), "lead-run", &nats.url());
    cfg.instance_name = "lead".into();
    cfg.namespace = ns.clone();
    cfg.exit_delay_ms = 100;
    let bridge = tokio::spawn(sympozium_ipc_bridge::run(cfg));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let request = json!({"id": "1", "task": "count the pods", "parentRunId": "lead-run", "instanceName": "lead",
        "namespace": ns, "wait": true});
    std::fs::write(dir.path().join("spawn/spawn-1.json.tmp"), request.to_string()).unwrap();
    std::fs::rename(dir.path().join("spawn/spawn-1.json.tmp"), dir.path().join("spawn/spawn-1.json"))
        .unwrap();

    let child = child_count(&runs, "lead-run", 1).await.remove(0);
    let parent = child.spec.parent.as_ref().unwrap();
    assert_eq!(
        (parent.run_name.as_str(), parent.session_key.as_str(), parent.spawn_depth),
        ("lead-run", "sess-1", 1)
    );
    assert_eq!(child.spec.task, "count the pods");
    assert_eq!(child.spec.instance_ref, "lead");
    assert_eq!(child.labels()["sympozium.ai/parent-run"], "lead-run");
    assert_eq!(child.owner_references()[0].name, "lead-run");
    finish(&runs, &child.name_any(), json!({"phase": "Succeeded", "result": "There are 7 pods."})).await;
    let result = read_json(&dir.path().join("input/spawn-result-1.json")).await;
    assert_eq!(result["status"], "success");
    assert_eq!(result["response"], "There are 7 pods.");
    std::fs::write(dir.path().join("output/result.json"), r#"{"status":"success","response":"ok"}"#).unwrap();
    tokio::time::timeout(WAIT, bridge).await.unwrap().unwrap().unwrap();

    // Depth: the child spawns a grandchild (depth 2, allowed), which may not go deeper.
    let child_name = child.name_any();
    ask(&bus, &ns, &child_name, "lead", "2").await;
    let grandchild = child_count(&runs, &child_name, 1).await.remove(0);
    assert_eq!(grandchild.spec.parent.as_ref().unwrap().spawn_depth, 2);
    let mut to_grandchild = bus.replay(&topics::spawn_result(&ns, &grandchild.name_any()));
    ask(&bus, &ns, &grandchild.name_any(), "lead", "3").await;
    let refused = answer(&mut to_grandchild).await;
    assert_eq!((refused["id"].as_str(), refused["status"].as_str()), (Some("3"), Some("error")));
    assert!(refused["error"].as_str().unwrap().contains("maxDepth 2"), "{refused}");
    assert!(children(&runs, &grandchild.name_any()).await.is_empty());

    // Children per agent: a second child is fine, a third is refused; a redelivered request
    // does not count twice.
    let mut to_lead = bus.replay(&topics::spawn_result(&ns, "lead-run"));
    assert_eq!(answer(&mut to_lead).await["id"], "1", "the first child's result, replayed");
    ask(&bus, &ns, "lead-run", "lead", "4").await;
    ask(&bus, &ns, "lead-run", "lead", "4").await;
    child_count(&runs, "lead-run", 2).await;
    ask(&bus, &ns, "lead-run", "lead", "5").await;
    let refused = answer(&mut to_lead).await;
    assert_eq!(refused["id"], "5");
    assert!(refused["error"].as_str().unwrap().contains("maxChildrenPerAgent 2"), "{refused}");
    assert_eq!(children(&runs, "lead-run").await.len(), 2);
    // `kubectl describe agentrun lead-run` tells the same story as the answers.
    let refusal = event_note(&client, &ns, "lead-run", "SubagentRefused").await;
    assert!(refusal.as_deref().is_some_and(|n| n.contains("maxChildrenPerAgent 2")), "{refusal:?}");
    let spawned = event_note(&client, &ns, "lead-run", "SubagentSpawned").await;
    assert!(spawned.as_deref().is_some_and(|n| n.contains("sub-agent run lead-run-")), "{spawned:?}");
    // The router's work is on the controller's /metrics like a reconcile's.
    let metrics = ctx.metrics.render();
    assert!(metrics.contains(r#"sympozium_reconciles_total{controller="spawn-router"}"#), "{metrics}");

    // A request naming a namespace this controller does not watch: refused, nothing made.
    let other = plane.namespace(&client, "spawn-other").await.unwrap().name().to_string();
    top_level_run(&client, &other, "lead-run", "lead").await;
    let mut to_other = bus.replay(&topics::spawn_result(&other, "lead-run"));
    ask(&bus, &other, "lead-run", "lead", "elsewhere").await;
    let refused = answer(&mut to_other).await;
    assert_eq!((refused["id"].as_str(), refused["status"].as_str()), (Some("elsewhere"), Some("error")));
    assert!(refused["error"].as_str().unwrap().contains("not watched by this controller"), "{refused}");
    let other_runs: Api<AgentRun> = Api::namespaced(client.clone(), &other);
    assert!(children(&other_runs, "lead-run").await.is_empty());

    // Concurrency across the instance: over maxConcurrent the child is still made (the
    // AgentRun controller queues it until a slot frees; controller tests/agentrun.rs), and
    // the parent hears nothing until a child finishes.
    instance(&client, &ns, "solo", json!({"maxDepth": 3, "maxChildrenPerAgent": 5, "maxConcurrent": 1}))
        .await;
    top_level_run(&client, &ns, "solo-run", "solo").await;
    let mut to_solo = bus.replay(&topics::spawn_result(&ns, "solo-run"));
    ask(&bus, &ns, "solo-run", "solo", "a").await;
    let first = child_count(&runs, "solo-run", 1).await.remove(0);
    ask(&bus, &ns, "solo-run", "solo", "b").await;
    child_count(&runs, "solo-run", 2).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(800), to_solo.recv()).await.is_err(),
        "no refusal over maxConcurrent"
    );
    finish(&runs, &first.name_any(), json!({"phase": "Failed", "error": "model unavailable"})).await;
    let failed = answer(&mut to_solo).await;
    assert_eq!((failed["id"].as_str(), failed["error"].as_str()), (Some("a"), Some("model unavailable")));
    assert!(
        tokio::time::timeout(Duration::from_millis(800), to_lead.recv()).await.is_err(),
        "no duplicate answers for the lead run"
    );
    router.abort();
    replica.abort();
}

/// The note of the Event `reason` about the run `run`, once it is there.
async fn event_note(client: &Client, ns: &str, run: &str, reason: &str) -> Option<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    for _ in 0..40 {
        let found = events.list(&ListParams::default()).await.unwrap().items.into_iter().find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(run)
        });
        if let Some(e) = found {
            return e.note;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}
