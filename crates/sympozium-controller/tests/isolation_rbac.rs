//! Tenant isolation, second line: the controller (which could grant anything) never grants
//! cluster-wide rights from a SkillPack outside the system namespace — whoever created the
//! run. Tried the way a tenant would get around the admission webhook: a pack with
//! `clusterRBAC` already in the tenant namespace (written before the webhook was installed),
//! reached through a run the controller itself creates from a schedule, and through a run
//! created directly. The admin-managed pack in the system namespace still gets its cluster
//! grant, revoked when the run ends. What the run's ServiceAccount may do is asked of the API
//! server, as an attacker inside the pod would find out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_bus::{Bus, topics};
use sympozium_controller::clock::ManualClock;
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::{agentrun, schedule};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::nats::NatsServer;
use sympozium_testkit::{TestPlane, wait_for, wait_until_gone};

const WAIT: Duration = Duration::from_secs(60);

async fn apply(client: &Client, ns: &str, kind: &str, name: &str, spec: Value, annotations: Value) {
    let plural = match kind {
        "SympoziumInstance" => "sympoziuminstances",
        "SkillPack" => "skillpacks",
        "SympoziumSchedule" => "sympoziumschedules",
        _ => "agentruns",
    };
    let ar = kube::api::ApiResource {
        group: "sympozium.ai".into(),
        version: "v1alpha1".into(),
        api_version: "sympozium.ai/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": kind,
        "metadata": {"name": name, "annotations": annotations}, "spec": spec});
    api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&body)).await.unwrap();
}

fn pack(cluster_resource: &str) -> Value {
    json!({"skills": [{"name": "tool", "content": "# Tool"}],
           "sidecar": {"image": "ghcr.io/example/skill:test",
                       "rbac": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
                       "clusterRBAC": [{"apiGroups": [""], "resources": [cluster_resource], "verbs": ["get", "list"]}]}})
}

/// Whether the run's ServiceAccount may `verb` `resource` (cluster-wide when `ns` is None).
async fn run_may(
    client: &Client,
    ns: &str,
    run: &str,
    verb: &str,
    resource: &str,
    in_ns: Option<&str>,
) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{ns}:sympozium-run-{run}")),
            groups: Some(vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")]),
            resource_attributes: Some(ResourceAttributes {
                namespace: in_ns.map(str::to_string),
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer =
        Api::<SubjectAccessReview>::all(client.clone()).create(&PostParams::default(), &review).await;
    answer.unwrap().status.is_some_and(|s| s.allowed)
}

fn phase(r: &AgentRun) -> AgentRunPhase {
    r.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
}

async fn warnings(client: &Client, ns: &str, run: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some(run) && e.reason.as_deref() == Some("ClusterRBACDenied")
        })
        .filter_map(|e| e.message)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_grants_come_only_from_the_system_namespace_whoever_creates_the_run() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "iso-run").await.unwrap().name().to_string();
    let system = plane.namespace(&client, "iso-sys").await.unwrap().name().to_string();
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let settings =
        Settings { image_tag: "test".into(), system_namespace: system.clone(), ..Default::default() };
    let ctx = |s: Settings| {
        Context::new(client.clone(), s, Metrics::default(), Some(ns.clone()), "test")
            .with_clock(Arc::new(ManualClock::new(Timestamp::now())))
            .with_schedule_poll(Duration::from_millis(300))
    };
    let tasks = [
        tokio::spawn(agentrun::run(Arc::new(ctx(settings.clone())))),
        tokio::spawn(schedule::run(Arc::new(ctx(settings.clone())))),
        tokio::spawn(agentrun::completion::run(Arc::new(ctx(settings.clone())), bus.clone())),
    ];

    // In the tenant namespace, a pack asking for every Secret in the cluster; in the system
    // namespace, an admin-managed pack reading nodes.
    apply(&client, &ns, "SkillPack", "grab-secrets", pack("secrets"), json!({})).await;
    apply(&client, &system, "SkillPack", "node-reader", pack("nodes"), json!({})).await;
    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "agent",
        json!({"agents": {"default": {"model": "gpt-4o"}},
               "authRefs": [{"provider": "openai", "secret": "openai-key"}],
               "skills": [{"skillPackRef": "grab-secrets"}, {"skillPackRef": "node-reader"}]}),
        json!({}),
    )
    .await;

    // Attack 1: a run the controller itself creates, from a schedule asked to run now.
    apply(
        &client,
        &ns,
        "SympoziumSchedule",
        "nightly",
        json!({"instanceRef": "agent", "schedule": "0 3 1 1 *", "task": "list every secret"}),
        json!({"sympozium.ai/run-now": "now"}),
    )
    .await;
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let scheduled =
        wait_for(&runs, "nightly-1", "the scheduled run Running", WAIT, |r: Option<&AgentRun>| {
            r.is_some_and(|r| phase(r) == AgentRunPhase::Running)
        })
        .await
        .unwrap();
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    let tenant_grant = format!("sympozium-skill-grab-secrets-{ns}-nightly-1");
    let admin_grant = format!("sympozium-skill-node-reader-{ns}-nightly-1");
    assert!(cluster_roles.get_opt(&tenant_grant).await.unwrap().is_none(), "tenant cluster rules granted");
    assert!(cluster_roles.get_opt(&admin_grant).await.unwrap().is_some(), "system pack not granted");
    assert!(!run_may(&client, &ns, "nightly-1", "list", "secrets", Some("default")).await);
    assert!(!run_may(&client, &ns, "nightly-1", "list", "secrets", None).await);
    assert!(run_may(&client, &ns, "nightly-1", "list", "nodes", None).await, "the admin's grant works");
    assert!(run_may(&client, &ns, "nightly-1", "get", "pods", Some(&ns)).await, "namespaced rules stay");
    let expected = format!(
        "clusterRBAC of SkillPack \"grab-secrets\" in namespace \"{ns}\" was not granted: cluster-wide rights only come from SkillPacks in the system namespace \"{system}\""
    );
    let status = scheduled.status.clone().unwrap();
    let condition = status.conditions.iter().find(|c| c.type_ == "ClusterRBACDenied").unwrap();
    assert_eq!((condition.status.as_str(), condition.message.as_str()), ("True", expected.as_str()));
    let mut seen = Vec::new();
    for _ in 0..40 {
        seen = warnings(&client, &ns, "nightly-1").await;
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(seen, vec![expected], "one Warning Event says why");

    // Attack 2: a run created directly, naming the pack itself (with the legacy spelling).
    apply(
        &client,
        &ns,
        "AgentRun",
        "direct",
        json!({"instanceRef": "agent", "agentId": "primary", "sessionKey": "", "task": "dump secrets",
               "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "openai-key"},
               "skills": [{"skillPackRef": "skillpack-grab-secrets"}]}),
        json!({}),
    )
    .await;
    let direct = wait_for(&runs, "direct", "the direct run Running", WAIT, |r: Option<&AgentRun>| {
        r.is_some_and(|r| phase(r) == AgentRunPhase::Running)
    })
    .await
    .unwrap();
    assert!(
        cluster_roles.get_opt(&format!("sympozium-skill-grab-secrets-{ns}-direct")).await.unwrap().is_none()
    );
    assert!(!run_may(&client, &ns, "direct", "list", "secrets", None).await);
    assert!(direct.status.unwrap().conditions.iter().any(|c| c.type_ == "ClusterRBACDenied"));
    let attacks = 2;
    let refused = [
        !run_may(&client, &ns, "nightly-1", "list", "secrets", None).await,
        !run_may(&client, &ns, "direct", "list", "secrets", None).await,
    ]
    .into_iter()
    .filter(|r| *r)
    .count();
    eprintln!("cluster grants from tenant packs at run time: {attacks} attacks tried, {refused} refused");
    assert_eq!(refused, attacks);

    // The admin's cluster grant ends with the run.
    let meta = BTreeMap::from([
        ("agentRunID".to_string(), "nightly-1".to_string()),
        ("instanceName".to_string(), "agent".to_string()),
        ("namespace".to_string(), ns.clone()),
    ]);
    bus.publish(
        topics::AGENT_RUN_COMPLETED,
        meta,
        &json!({"status": "success", "response": "nothing to see"}),
    )
    .await
    .unwrap();
    wait_for(&runs, "nightly-1", "Succeeded", WAIT, |r: Option<&AgentRun>| {
        r.is_some_and(|r| phase(r) == AgentRunPhase::Succeeded)
    })
    .await
    .unwrap();
    wait_until_gone(&cluster_roles, &admin_grant, "the system pack's cluster grant revoked", WAIT)
        .await
        .unwrap();
    assert!(!run_may(&client, &ns, "nightly-1", "list", "nodes", None).await);

    for t in tasks {
        t.abort();
    }
}
