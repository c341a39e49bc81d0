//! Warm-pool claims on the real test control plane (agent-sandbox CRDs, no agent-sandbox
//! controller: this test plays its part by creating and failing the sandbox pod): a run the
//! pooled pod can carry claims it with every container's identity injected; a run that needs
//! what a pooled pod cannot take (a skill sidecar with RBAC, another Secret) gets its own
//! Sandbox with those fields and a Warning Event saying why; a failed sandbox pod or a
//! vanished claim fails the run at once, far inside its one-hour timeout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_controller::agentrun::sandbox::{extension_resource, sandbox_resource};
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::{agentrun, instance};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::{TestPlane, wait_for};

const WAIT: Duration = Duration::from_secs(60);

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

async fn exists(client: &Client, ns: &str, ar: &ApiResource, name: &str) -> DynamicObject {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    wait_for(&api, name, &ar.kind, WAIT, |o: Option<&DynamicObject>| o.is_some()).await.unwrap()
}

async fn run(client: &Client, ns: &str, name: &str, extra: Value) {
    let mut spec = json!({"instanceRef": "pooled", "agentId": "primary", "sessionKey": "", "task": "audit the images",
        "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "team-key"}});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    apply(client, ns, "AgentRun", "agentruns", name, spec).await;
}

async fn event_note(client: &Client, ns: &str, run: &str, reason: &str) -> String {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    for _ in 0..240 {
        let found = events.list(&ListParams::default()).await.unwrap().items.into_iter().find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(run)
        });
        if let Some(note) = found.and_then(|e| e.note) {
            return note;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no {reason} Event for {run}");
}

async fn phase(runs: &Api<AgentRun>, name: &str, want: AgentRunPhase) -> AgentRun {
    wait_for(runs, name, &format!("{want:?}"), WAIT, |r: Option<&AgentRun>| {
        r.and_then(|r| r.status.as_ref()?.phase) == Some(want)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn claims_keep_the_runs_pod_or_fall_back_and_failures_surface_fast() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let crds = sympozium_testkit::repo_root()
        .join("crates/sympozium-controller/tests/fixtures/agent-sandbox-crds.yaml");
    plane.kubectl(&["apply", "--server-side", "-f", crds.to_str().unwrap()]).unwrap();
    plane
        .kubectl(&["wait", "--for=condition=Established", "--timeout=60s", "-f", crds.to_str().unwrap()])
        .unwrap();
    let ns = plane.namespace(&client, "warm-claims").await.unwrap().name().to_string();
    let ctx = Arc::new(
        Context::new(client.clone(), Settings::default(), Metrics::default(), Some(ns.clone()), "test")
            .with_agent_sandbox(true),
    );
    let tasks = [tokio::spawn(agentrun::run(ctx.clone())), tokio::spawn(instance::run(ctx.clone()))];
    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "sympoziuminstances",
        "pooled",
        json!({
        "agents": {"default": {"model": "gpt-4o", "runTimeout": "1h",
            "agentSandbox": {"enabled": true, "runtimeClass": "gvisor", "warmPool": {"size": 1}}}},
        "authRefs": [{"provider": "openai", "secret": "team-key"}]}),
    )
    .await;
    exists(&client, &ns, &extension_resource("SandboxTemplate", "sandboxtemplates"), "wp-pooled").await;
    apply(
        &client,
        &ns,
        "SkillPack",
        "skillpacks",
        "k8s-ops",
        json!({
        "skills": [{"name": "ops", "content": "Use kubectl."}],
        "sidecar": {"image": "ghcr.io/sympozium-ai/sympozium/skill-k8s-ops:test",
            "rbac": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}}),
    )
    .await;
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);

    // A run the pooled pod can carry: claimed, and every container learns whose run it is
    // (the bridge too, or it would report under the template's name).
    run(&client, &ns, "r-fits", json!({})).await;
    let claim =
        exists(&client, &ns, &extension_resource("SandboxClaim", "sandboxclaims"), "sbc-r-fits").await;
    let env = claim.data["spec"]["env"].as_array().unwrap();
    for container in ["agent", "ipc-bridge"] {
        assert!(
            env.iter().any(|e| e["name"] == "AGENT_RUN_ID"
                && e["value"] == "r-fits"
                && e["containerName"] == container),
            "{container}: {env:?}"
        );
    }
    assert!(env.iter().any(|e| e["name"] == "TASK" && e["value"] == "audit the images"));

    // A run with a skill sidecar (and its RBAC): its own Sandbox, sidecar and token included.
    run(&client, &ns, "r-sidecar", json!({"skills": [{"skillPackRef": "k8s-ops"}]})).await;
    let own = exists(&client, &ns, &sandbox_resource(), "sb-r-sidecar").await;
    let pod = &own.data["spec"]["podTemplate"]["spec"];
    let names: Vec<&str> =
        pod["containers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"skill-k8s-ops"), "{names:?}");
    assert_eq!(pod["serviceAccountName"], "sympozium-run-r-sidecar");
    assert_eq!(pod["runtimeClassName"], "gvisor");
    let note = event_note(&client, &ns, "r-sidecar", "WarmPoolBypassed").await;
    assert!(note.contains("no container skill-k8s-ops") && note.contains("RBAC"), "{note}");
    let claims: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &extension_resource("SandboxClaim", "sandboxclaims"));
    assert!(claims.get_opt("sbc-r-sidecar").await.unwrap().is_none());

    // Another provider Secret than the pool's: not injectable either.
    run(
        &client,
        &ns,
        "r-secret",
        json!({"model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "other-key"}}),
    )
    .await;
    exists(&client, &ns, &sandbox_resource(), "sb-r-secret").await;
    let note = event_note(&client, &ns, "r-secret", "WarmPoolBypassed").await;
    assert!(note.contains("Secret other-key"), "{note}");

    // The sandbox controller's pod for r-sidecar fails: the run fails with the reason.
    phase(&runs, "r-sidecar", AgentRunPhase::Running).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let sandbox_pod: Pod = serde_json::from_value(json!({"metadata": {"name": "sb-r-sidecar",
        "labels": {"sympozium.ai/agent-run": "r-sidecar"}},
        // Bound to a node nobody simulates, so the test plane's kwok node does not rewrite
        // the status this test sets.
        "spec": {"restartPolicy": "Never", "nodeName": "sandbox-test-node",
                 "containers": [{"name": "agent", "image": "runner"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &sandbox_pod).await.unwrap();
    let failed = json!({"status": {"phase": "Failed", "reason": "Evicted",
        "message": "The node was low on resource: memory."}});
    pods.patch_status("sb-r-sidecar", &PatchParams::default(), &Patch::Merge(&failed)).await.unwrap();
    let done = phase(&runs, "r-sidecar", AgentRunPhase::Failed).await;
    let error = done.status.unwrap().error.unwrap_or_default();
    assert!(
        error.contains("sandbox pod sb-r-sidecar failed: The node was low on resource: memory."),
        "{error}"
    );

    // The claim of r-fits vanishes: the run fails, naming it.
    phase(&runs, "r-fits", AgentRunPhase::Running).await;
    claims.delete("sbc-r-fits", &DeleteParams::default()).await.unwrap();
    let done = phase(&runs, "r-fits", AgentRunPhase::Failed).await;
    assert!(done.status.unwrap().error.unwrap_or_default().contains("SandboxClaim sbc-r-fits disappeared"));
    for t in tasks {
        t.abort();
    }
}
