//! An instance's memory on the local node: the instance controller's memory server runs as
//! a pod (the real `sympozium-memory-server` on a PVC the node provisioned) behind its
//! Service; one agent run stores a memory through the Service name, the next finds it; the
//! memory pod is deleted and recreated by its Deployment and the memory is still there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use support::*;
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::{agentrun, instance, skillpack};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::fake_llm::{FakeLlm, Turn};
use sympozium_testkit::{TestPlane, wait_for};

const WAIT: Duration = Duration::from_secs(120);
const FACT: &str = "payments crash-loops: OOMKilled at 128Mi since v2.3";

async fn apply(client: &Client, ns: &str, kind: &str, plural: &str, name: &str, spec: Value) {
    let ar = ApiResource {
        group: "sympozium.ai".into(),
        version: "v1alpha1".into(),
        api_version: "sympozium.ai/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec});
    api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&body)).await.unwrap();
}

async fn run(client: &Client, ns: &str, name: &str, task: &str, base_url: &str) -> AgentRun {
    apply(client, ns, "AgentRun", "agentruns", name, json!({"instanceRef": "sre", "agentId": "primary",
        "sessionKey": name, "task": task, "skills": [{"skillPackRef": "memory"}],
        "model": {"provider": "openai", "model": "gpt-4o", "baseURL": base_url, "authSecretRef": "team-openai-key"}}))
    .await;
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), ns);
    let done = wait_for(&runs, name, "finished", Duration::from_secs(240), |r: Option<&AgentRun>| {
        matches!(
            r.and_then(|r| r.status.as_ref()?.phase),
            Some(AgentRunPhase::Succeeded | AgentRunPhase::Failed)
        )
    })
    .await
    .unwrap();
    assert_eq!(done.status.as_ref().unwrap().phase, Some(AgentRunPhase::Succeeded), "{:?}", done.status);
    done
}

fn memory_pod(pods: &[Pod]) -> Option<Pod> {
    pods.iter()
        .find(|p| p.name_any().starts_with("sre-memory") && p.metadata.deletion_timestamp.is_none())
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memories_stored_through_the_memory_service_survive_the_memory_pod() {
    ensure_built("sympozium-agent-runner", &["sympozium-agent-runner"]);
    ensure_built("sympozium-ipc-bridge", &["sympozium-ipc-bridge"]);
    ensure_built("sympozium-memory", &["sympozium-memory-server"]);
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-memory").await;
    let ns = ns.name().to_string();
    let fake = FakeLlm::start().await.unwrap();
    host_service(&client, &ns, "llm", port_of(&fake.openai_base_url())).await;
    let base_url = format!("http://llm.{ns}.svc/v1");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "team-openai-key"},
            "stringData": {"OPENAI_API_KEY": "sk-node-key"}}))
            .unwrap(),
        )
        .await
        .unwrap();
    plane
        .kubectl(&[
            "apply",
            "-n",
            &ns,
            "-f",
            sympozium_testkit::repo_root().join("deploy/builtin/skillpack-memory.yaml").to_str().unwrap(),
        ])
        .unwrap();
    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "sympoziuminstances",
        "sre",
        json!({
        "agents": {"default": {"model": "gpt-4o", "baseURL": base_url}},
        "authRefs": [{"provider": "openai", "secret": "team-openai-key"}],
        "skills": [{"skillPackRef": "memory"}],
        "memory": {"enabled": true}}),
    )
    .await;
    let ctx = Arc::new(Context::new(
        client.clone(),
        Settings::default(),
        Metrics::default(),
        Some(ns.clone()),
        "node-memory",
    ));
    let tasks = [
        tokio::spawn(instance::run(ctx.clone())),
        tokio::spawn(agentrun::run(ctx.clone())),
        tokio::spawn(skillpack::run(ctx.clone())),
    ];
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let first = wait_for_memory_pod(&pods, None).await;

    fake.push(Turn::tool_call("memory_store", json!({"content": FACT, "tags": ["incident"]})));
    fake.push(Turn::text("Stored the finding."));
    run(&client, &ns, "store-1", "Record what you found about payments.", &base_url).await;

    let seen = |from: usize| fake.requests().iter().skip(from).any(|r| r.body.to_string().contains(FACT));
    let before = fake.requests().len();
    fake.push(Turn::tool_call("memory_search", json!({"query": "payments"})));
    fake.push(Turn::text("payments was OOMKilled before."));
    run(&client, &ns, "find-1", "What do we know about payments?", &base_url).await;
    assert!(seen(before), "the second run found the stored memory through the memory Service");

    // The memory pod goes; its Deployment makes a new one on the same claim.
    pods.delete(&first.name_any(), &DeleteParams::default()).await.unwrap();
    wait_for_memory_pod(&pods, Some(first.name_any())).await;
    let before = fake.requests().len();
    fake.push(Turn::tool_call("memory_search", json!({"query": "payments"})));
    fake.push(Turn::text("Still remembered."));
    run(&client, &ns, "find-2", "What do we know about payments?", &base_url).await;
    assert!(seen(before), "the memory survived the memory pod (its PVC)");
    for t in tasks {
        t.abort();
    }
    // The memory Deployment would otherwise come back on every later node of this plane.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces.delete(&ns, &DeleteParams::default()).await.unwrap();
}

/// Waits for a Ready memory-server pod other than `not`.
async fn wait_for_memory_pod(pods: &Api<Pod>, not: Option<String>) -> Pod {
    for _ in 0..(WAIT.as_secs() * 2) {
        let list = pods.list(&ListParams::default()).await.unwrap().items;
        if let Some(p) = memory_pod(&list).filter(|p| Some(p.name_any()) != not && ready(Some(p))) {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let list = pods.list(&ListParams::default()).await.unwrap().items;
    panic!(
        "no Ready memory pod: {}",
        serde_json::to_string_pretty(
            &list.iter().map(|p| (p.name_any(), p.status.clone())).collect::<Vec<_>>()
        )
        .unwrap()
    );
}
