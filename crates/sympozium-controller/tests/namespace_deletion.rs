//! Namespaces holding Sympozium objects always finish deleting (spec: no stuck
//! finalizers). Every kind with a finalizer (instance, AgentRun, PersonaPack, SkillPack,
//! schedule) plus a policy is created in a fresh namespace on the real test control plane
//! (whose kube-controller-manager runs the namespace controller), the controllers put their
//! finalizers on, and then the namespace is deleted:
//!
//! - with the controllers running, it is gone within the bound;
//! - with the controllers down, it stays `Terminating` with our finalizers holding the
//!   objects (nothing else can release them: this is what an operator sees while the
//!   controller is down), and once the controllers start again the deletion finishes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sympozium_api::labels;
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::{agentrun, instance, personapack, policy, schedule, skillpack};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::{TestPlane, wait_until_gone};

/// How long a namespace may take to go once its objects can be released.
const BOUND: Duration = Duration::from_secs(90);

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("sympozium.ai", "v1alpha1", kind), plural)
}

/// `(kind, plural, name, finalizer or "" when the kind has none)`.
const OBJECTS: &[(&str, &str, &str, &str)] = &[
    ("SympoziumPolicy", "sympoziumpolicies", "strict", ""),
    ("SkillPack", "skillpacks", "k8s-ops", labels::SKILL_PACK_FINALIZER),
    ("SympoziumInstance", "sympoziuminstances", "agent", labels::INSTANCE_FINALIZER),
    ("AgentRun", "agentruns", "agent-run-1", labels::AGENT_RUN_FINALIZER),
    ("SympoziumSchedule", "sympoziumschedules", "agent-nightly", labels::SCHEDULE_FINALIZER),
    ("PersonaPack", "personapacks", "team", labels::PERSONA_PACK_FINALIZER),
];

fn spec(kind: &str) -> Value {
    match kind {
        "SympoziumPolicy" => json!({"toolGating": {"defaultAction": "allow", "rules": []}}),
        "SkillPack" => json!({"skills": [{"name": "triage", "content": "Check events."}],
            "sidecar": {"image": "ghcr.io/x/skill-k8s-ops:1",
                        "rbac": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}}),
        "SympoziumInstance" => json!({"agents": {"default": {"model": "gpt-4o"}}, "policyRef": "strict",
            "authRefs": [{"provider": "openai", "secret": "openai-key"}],
            "skills": [{"skillPackRef": "k8s-ops"}], "memory": {"enabled": true}}),
        "AgentRun" => {
            json!({"instanceRef": "agent", "agentId": "primary", "sessionKey": "s1", "task": "list pods",
            "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "openai-key"}})
        }
        "SympoziumSchedule" => {
            json!({"instanceRef": "agent", "schedule": "0 3 * * *", "task": "nightly check",
            "type": "scheduled"})
        }
        _ => json!({"enabled": true, "authRefs": [{"provider": "openai", "secret": "openai-key"}],
            "personas": [{"name": "sre", "systemPrompt": "Keep prod up.", "skills": ["k8s-ops"],
                          "schedule": {"type": "heartbeat", "cron": "*/30 * * * *", "task": "check"}}]}),
    }
}

/// The controllers that own a finalizer, scoped to `ns`; dropping the handle stops them.
struct Controllers(tokio::task::JoinHandle<()>);

impl Drop for Controllers {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn start(client: &Client, ns: &str, identity: &str) -> Controllers {
    let settings = Settings { image_tag: "test".into(), ..Default::default() };
    let ctx = Arc::new(Context::new(client.clone(), settings, Metrics::default(), Some(ns.into()), identity));
    Controllers(tokio::spawn(async move {
        futures::join!(
            instance::run(ctx.clone()),
            agentrun::run(ctx.clone()),
            personapack::run(ctx.clone()),
            skillpack::run(ctx.clone()),
            schedule::run(ctx.clone()),
            policy::run(ctx),
        );
    }))
}

async fn populate(client: &Client, ns: &str) {
    for (kind, plural, name, _) in OBJECTS {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource(kind, plural));
        let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": kind, "metadata": {"name": name},
            "spec": spec(kind)});
        api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&body))
            .await
            .unwrap_or_else(|e| panic!("creating {kind} {name}: {e}"));
    }
}

/// Waits until every kind with a finalizer carries it (so the deletion has something to wait
/// for, and the test could fail).
async fn finalizers_on(client: &Client, ns: &str) {
    for (kind, plural, name, finalizer) in OBJECTS.iter().filter(|o| !o.3.is_empty()) {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource(kind, plural));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let obj = api.get(name).await.unwrap();
            if obj.finalizers().iter().any(|f| f == finalizer) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{kind} {name} never got {finalizer}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

async fn namespace(prefix: &str) -> (TestPlane, Client, String) {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, prefix).await.unwrap().name().to_string();
    (plane, client, ns)
}

#[tokio::test]
async fn a_namespace_with_every_kind_deletes_while_the_controllers_run() {
    let (_plane, client, ns) = namespace("nsdel-live").await;
    let _controllers = start(&client, &ns, "live");
    populate(&client, &ns).await;
    finalizers_on(&client, &ns).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete(&ns, &DeleteParams::default()).await.unwrap();
    wait_until_gone(&namespaces, &ns, "namespace with Sympozium objects", BOUND).await.unwrap();
}

#[tokio::test]
async fn a_namespace_deleted_while_the_controllers_are_down_finishes_when_they_return() {
    let (_plane, client, ns) = namespace("nsdel-down").await;
    let controllers = start(&client, &ns, "first");
    populate(&client, &ns).await;
    finalizers_on(&client, &ns).await;
    drop(controllers);
    // Let the aborted watches close before the deletion starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete(&ns, &DeleteParams::default()).await.unwrap();

    // Down: the namespace controller marks our objects deleted, but their finalizers hold.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let terminating = namespaces.get(&ns).await.expect("still there while the controllers are down");
    assert!(terminating.metadata.deletion_timestamp.is_some(), "Terminating");
    let runs: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &resource("AgentRun", "agentruns"));
    let held = runs.get("agent-run-1").await.expect("the run is held by its finalizer");
    assert!(held.metadata.deletion_timestamp.is_some(), "marked for deletion");
    assert!(held.finalizers().iter().any(|f| f == labels::AGENT_RUN_FINALIZER));

    // Back: the restarted controllers release everything and the namespace goes.
    let _controllers = start(&client, &ns, "second");
    wait_until_gone(&namespaces, &ns, "namespace after the controllers restart", BOUND).await.unwrap();
}
