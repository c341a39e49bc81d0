//! Skills and policies reaching agent pods on the real test control plane: built-in skills
//! mirrored into the run's namespace, host access only where the policy allows host mounts
//! (a Warning Event names the refused skill), and a NetworkPolicy from the policy's
//! `networkPolicy` that selects the pod the Job really creates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_controller::agentrun;
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::{TestPlane, wait_for, wait_until_gone};

const WAIT: Duration = Duration::from_secs(30);

async fn apply(client: &Client, ns: &str, kind: &str, plural: &str, name: &str, spec: serde_json::Value) {
    let ar = kube::api::ApiResource {
        group: "sympozium.ai".into(),
        version: "v1alpha1".into(),
        api_version: "sympozium.ai/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec});
    api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&body)).await.unwrap();
}

async fn start_run(
    client: &Client,
    ns: &str,
    name: &str,
    instance: &str,
    skills: serde_json::Value,
) -> AgentRun {
    apply(
        client,
        ns,
        "AgentRun",
        "agentruns",
        name,
        json!({"instanceRef": instance, "agentId": "primary",
        "sessionKey": "", "task": "inspect the node",
        "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "openai-key"}, "skills": skills}),
    )
    .await;
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), ns);
    wait_for(&runs, name, "Running", WAIT, |r: Option<&AgentRun>| {
        r.and_then(|r| r.status.as_ref()).and_then(|s| s.phase) == Some(AgentRunPhase::Running)
    })
    .await
    .unwrap()
}

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

#[tokio::test]
async fn policies_govern_host_access_and_network_and_built_in_skills_are_mirrored() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "skill-run").await.unwrap().name().to_string();
    let system = plane.namespace(&client, "skill-run-sys").await.unwrap().name().to_string();
    let settings =
        Settings { image_tag: "test".into(), system_namespace: system.clone(), ..Default::default() };
    let ctx = Context::new(client.clone(), settings, Metrics::default(), Some(ns.clone()), "test");
    let task = tokio::spawn(agentrun::run(Arc::new(ctx)));

    let builtin: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "sre-observability",
        "labels": {"sympozium.ai/component": "skillpack"}}, "data": {"slo.md": "Check the SLOs."}}))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &system)
        .create(&PostParams::default(), &builtin)
        .await
        .unwrap();
    let offered: Secret = serde_json::from_value(json!({"metadata": {"name": "node-token",
        "labels": {"sympozium.ai/skill-secret": "true"}}, "stringData": {"TOKEN": "t"}}))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &system)
        .create(&PostParams::default(), &offered)
        .await
        .unwrap();
    apply(
        &client,
        &ns,
        "SkillPack",
        "skillpacks",
        "node-debug",
        json!({
        "skills": [{"name": "debug", "content": "Inspect the node."}],
        "sidecar": {"image": "ghcr.io/sympozium-ai/sympozium/skill-k8s-ops:test",
            "rbac": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}], "secretRef": "node-token",
            "hostAccess": {"enabled": true, "hostNetwork": true, "privileged": true,
                           "mounts": [{"hostPath": "/var/log", "mountPath": "/host/log"}]}}}),
    )
    .await;
    apply(
        &client,
        &ns,
        "SympoziumPolicy",
        "sympoziumpolicies",
        "locked",
        json!({
        "sandboxPolicy": {"required": false, "allowHostMounts": false},
        "networkPolicy": {"denyAll": true, "allowedEgress": [{"host": "10.20.0.0/16", "port": 443}]}}),
    )
    .await;
    apply(
        &client,
        &ns,
        "SympoziumPolicy",
        "sympoziumpolicies",
        "hosts-ok",
        json!({
        "sandboxPolicy": {"required": false, "allowHostMounts": true}}),
    )
    .await;
    for (instance, policy) in [("locked-agent", "locked"), ("host-agent", "hosts-ok")] {
        apply(
            &client,
            &ns,
            "SympoziumInstance",
            "sympoziuminstances",
            instance,
            json!({
            "agents": {"default": {"model": "gpt-4o"}}, "policyRef": policy}),
        )
        .await;
    }
    let skills = json!([{"skillPackRef": "node-debug"}, {"skillPackRef": "sre-observability"}]);

    // Locked policy: no host access (and a Warning naming the skill), isolated network.
    start_run(&client, &ns, "locked", "locked-agent", skills.clone()).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let pod = jobs.get("locked").await.unwrap().spec.unwrap().template.spec.unwrap();
    let sidecar = pod.containers.iter().find(|c| c.name == "skill-node-debug").unwrap();
    assert!(sidecar.volume_mounts.iter().flatten().all(|m| !m.mount_path.starts_with("/host")));
    assert_eq!(sidecar.security_context.as_ref().unwrap().privileged, None);
    assert_eq!(sidecar.security_context.as_ref().unwrap().run_as_non_root, Some(true));
    assert_eq!(pod.host_network, None);
    let skill_env = sidecar.env.iter().flatten().find(|e| e.name == "SYMPOZIUM_SKILL").unwrap();
    assert_eq!(
        skill_env.value.as_deref(),
        Some("node-debug"),
        "the tool executor serves its skill's directory"
    );
    let note =
        event_note(&client, &ns, "locked", "HostAccessDenied").await.expect("a HostAccessDenied event");
    assert!(note.contains("node-debug") && note.contains("allowHostMounts"), "{note}");

    let secret = Api::<Secret>::namespaced(client.clone(), &ns).get("node-token").await.unwrap();
    assert_eq!(
        secret.labels()["sympozium.ai/component"],
        "skill-secret-mirror",
        "offered skill Secret copied"
    );
    assert!(sidecar.volume_mounts.iter().flatten().any(|m| m.mount_path == "/secrets/node-token"));
    let mirror = Api::<ConfigMap>::namespaced(client.clone(), &ns).get("sre-observability").await.unwrap();
    assert_eq!(mirror.labels()["sympozium.ai/component"], "skillpack-mirror");
    assert_eq!(mirror.data.unwrap()["slo.md"], "Check the SLOs.");

    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    let np = policies.get("sympozium-run-locked").await.unwrap();
    assert_eq!(np.owner_references()[0].name, "locked");
    let spec = np.spec.unwrap();
    let selector = spec.pod_selector.unwrap().match_labels.unwrap();
    let selector_text: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let lp = ListParams::default().labels(&selector_text.join(","));
    let mut selected = Vec::new();
    for _ in 0..80 {
        selected = pods.list(&lp).await.unwrap().items;
        if !selected.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(selected.len(), 1, "the NetworkPolicy selects the run's real pod");
    assert_eq!(selected[0].labels()["job-name"], "locked");
    let egress = spec.egress.unwrap();
    let cidrs: Vec<_> = egress
        .iter()
        .flat_map(|r| r.to.iter().flatten())
        .filter_map(|p| p.ip_block.as_ref().map(|b| b.cidr.clone()))
        .collect();
    assert!(cidrs.contains(&"10.20.0.0/16".to_string()), "{cidrs:?}");
    assert!(cidrs.len() >= 2, "the skill's RBAC also opens the Kubernetes API: {cidrs:?}");
    assert_eq!(spec.policy_types.unwrap(), ["Ingress", "Egress"]);

    // The skill's RBAC is bound to this run's ServiceAccount only, and leaves with the run.
    let roles: Api<Role> = Api::namespaced(client.clone(), &ns);
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
    let binding = bindings.get("sympozium-skill-node-debug-locked").await.unwrap();
    let subjects = binding.subjects.unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str(), subjects[0].namespace.as_deref()),
        ("ServiceAccount", "sympozium-run-locked", Some(ns.as_str()))
    );
    assert_eq!(pod.service_account_name.as_deref(), Some("sympozium-run-locked"));
    assert_eq!(
        roles.get("sympozium-skill-node-debug-locked").await.unwrap().rules.unwrap()[0].verbs,
        ["get"]
    );
    Api::<AgentRun>::namespaced(client.clone(), &ns)
        .delete("locked", &DeleteParams::default())
        .await
        .unwrap();
    wait_until_gone(&roles, "sympozium-skill-node-debug-locked", "the run's Role", WAIT).await.unwrap();
    wait_until_gone(&policies, "sympozium-run-locked", "the run's NetworkPolicy", WAIT).await.unwrap();
    wait_until_gone(&bindings, "sympozium-skill-node-debug-locked", "the RoleBinding", WAIT).await.unwrap();

    // A policy that allows host mounts: the sidecar gets them; no network policy set.
    start_run(&client, &ns, "hosted", "host-agent", skills).await;
    let pod = jobs.get("hosted").await.unwrap().spec.unwrap().template.spec.unwrap();
    let sidecar = pod.containers.iter().find(|c| c.name == "skill-node-debug").unwrap();
    assert!(sidecar.volume_mounts.iter().flatten().any(|m| m.mount_path == "/host/log"));
    assert_eq!(sidecar.security_context.as_ref().unwrap().privileged, Some(true));
    assert_eq!(pod.host_network, Some(true));
    assert!(pod.volumes.iter().flatten().any(|v| v.host_path.as_ref().is_some_and(|h| h.path == "/var/log")));
    assert!(
        policies.get_opt("sympozium-run-hosted").await.unwrap().is_none(),
        "no networkPolicy, no isolation"
    );
    task.abort();
}
