//! The SkillPack controller and built-in skill mirroring on the real test control plane:
//! a pack becomes its ConfigMap with status, follows edits and goes away with the pack;
//! built-in skills are mirrored into run namespaces without ever overwriting a local pack.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sympozium_api::{AgentRun, SkillPack};
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::skillpack::{self, mirror};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::{TestPlane, wait_for, wait_until_gone};

const WAIT: Duration = Duration::from_secs(30);

async fn setup(prefix: &str) -> (Client, String, tokio::task::JoinHandle<()>) {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, prefix).await.unwrap().name().to_string();
    let ctx = Context::new(client.clone(), Settings::default(), Metrics::default(), Some(ns.clone()), "test");
    let task = tokio::spawn(skillpack::run(Arc::new(ctx)));
    (client, ns, task)
}

async fn apply_pack(client: &Client, ns: &str, name: &str, spec: serde_json::Value) {
    let api: Api<SkillPack> = Api::namespaced(client.clone(), ns);
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SkillPack", "metadata": {"name": name}, "spec": spec});
    api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&body)).await.unwrap();
}

fn data_has(cm: Option<&ConfigMap>, key: &str, value: &str) -> bool {
    cm.and_then(|c| c.data.as_ref()).and_then(|d| d.get(key)).is_some_and(|v| v == value)
}

#[tokio::test]
async fn a_pack_becomes_its_configmap_follows_edits_and_leaves_with_the_pack() {
    let (client, ns, task) = setup("skillpack").await;
    apply_pack(
        &client,
        &ns,
        "k8s-ops",
        json!({"skills": [{"name": "triage", "description": "Find broken pods", "content": "Check events."},
                          {"name": "logs", "content": "kubectl logs"}]}),
    )
    .await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm = wait_for(&configmaps, "k8s-ops", "skill ConfigMap", WAIT, |c: Option<&ConfigMap>| {
        data_has(c, "triage.md", "# triage\n\n> Find broken pods\n\nCheck events.")
    })
    .await
    .unwrap();
    assert_eq!(cm.data.as_ref().unwrap()["logs.md"], "kubectl logs");
    assert_eq!(cm.labels()["sympozium.ai/component"], "skillpack");
    assert_eq!(cm.labels()["sympozium.ai/skillpack"], "k8s-ops");
    assert_eq!(cm.owner_references()[0].kind, "SkillPack");

    let packs: Api<SkillPack> = Api::namespaced(client.clone(), &ns);
    let pack = wait_for(&packs, "k8s-ops", "Ready status", WAIT, |p: Option<&SkillPack>| {
        p.and_then(|p| p.status.as_ref()).is_some_and(|s| s.phase.as_deref() == Some("Ready"))
    })
    .await
    .unwrap();
    let status = pack.status.unwrap();
    assert_eq!((status.skill_count, status.config_map_name.as_deref()), (2, Some("k8s-ops")));
    assert_eq!(status.conditions[0].type_, "Ready");
    assert!(pack.metadata.finalizers.unwrap().contains(&"sympozium.ai/skillpack-finalizer".to_string()));

    // Editing the pack rewrites the ConfigMap; a hand edit is reverted.
    apply_pack(&client, &ns, "k8s-ops", json!({"skills": [{"name": "triage", "content": "v2"}]})).await;
    wait_for(&configmaps, "k8s-ops", "edited skills", WAIT, |c: Option<&ConfigMap>| {
        data_has(c, "triage.md", "v2") && c.is_some_and(|c| c.data.as_ref().unwrap().len() == 1)
    })
    .await
    .unwrap();
    wait_for(&packs, "k8s-ops", "skillCount 1", WAIT, |p: Option<&SkillPack>| {
        p.and_then(|p| p.status.as_ref()).is_some_and(|s| s.skill_count == 1)
    })
    .await
    .unwrap();
    configmaps
        .patch("k8s-ops", &PatchParams::default(), &Patch::Merge(json!({"data": {"triage.md": "tampered"}})))
        .await
        .unwrap();
    wait_for(&configmaps, "k8s-ops", "hand edit reverted", WAIT, |c: Option<&ConfigMap>| {
        data_has(c, "triage.md", "v2")
    })
    .await
    .unwrap();

    packs.delete("k8s-ops", &DeleteParams::default()).await.unwrap();
    wait_until_gone(&packs, "k8s-ops", "pack (finalizer released)", WAIT).await.unwrap();
    wait_until_gone(&configmaps, "k8s-ops", "its ConfigMap", WAIT).await.unwrap();
    task.abort();
}

#[tokio::test]
async fn built_in_skills_are_mirrored_without_overwriting_local_packs() {
    let (client, ns, task) = setup("skill-mirror").await;
    let plane = TestPlane::get().unwrap();
    let system = plane.namespace(&client, "skill-system").await.unwrap().name().to_string();
    let system_cms: Api<ConfigMap> = Api::namespaced(client.clone(), &system);
    for (name, labels) in [
        ("sre-observability", json!({"sympozium.ai/component": "skillpack"})),
        ("github-gitops", json!({"sympozium.ai/component": "skillpack"})),
        ("controller-settings", json!({})),
    ] {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
            "data": {format!("{name}.md"): "built-in v1"}}))
        .unwrap();
        system_cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    // The user already has a local pack named like a built-in.
    apply_pack(&client, &ns, "github-gitops", json!({"skills": [{"name": "mine", "content": "local"}]}))
        .await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    wait_for(&configmaps, "github-gitops", "local pack ConfigMap", WAIT, |c: Option<&ConfigMap>| {
        data_has(c, "mine.md", "local")
    })
    .await
    .unwrap();

    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let run: AgentRun =
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "r1"},
        "spec": {"instanceRef": "i", "agentId": "a", "sessionKey": "", "task": "t",
                 "model": {"provider": "openai", "model": "m", "authSecretRef": ""},
                 "skills": [{"skillPackRef": "sre-observability"}, {"skillPackRef": "github-gitops"},
                            {"configMapRef": "controller-settings"}]}}))
        .unwrap();
    let run = runs.create(&PostParams::default(), &run).await.unwrap();

    let mirrored = mirror::mirror_skills(&client, &system, &run, &run.spec.skills).await.unwrap();
    assert_eq!(mirrored, ["sre-observability"]);
    let copy = configmaps.get("sre-observability").await.unwrap();
    assert_eq!(copy.data.as_ref().unwrap()["sre-observability.md"], "built-in v1");
    assert_eq!(copy.labels()["sympozium.ai/component"], "skillpack-mirror");
    assert_eq!(copy.labels()["sympozium.ai/agent-run"], "r1");
    assert_eq!(copy.owner_references()[0].uid, run.uid().unwrap());
    assert!(configmaps.get_opt("controller-settings").await.unwrap().is_none(), "non-skill ConfigMaps stay");
    assert!(data_has(configmaps.get_opt("github-gitops").await.unwrap().as_ref(), "mine.md", "local"));

    // A newer built-in refreshes the mirror; a second pass changes nothing.
    system_cms
        .patch(
            "sre-observability",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"sre-observability.md": "built-in v2"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        mirror::mirror_skills(&client, &system, &run, &run.spec.skills).await.unwrap(),
        ["sre-observability"]
    );
    assert!(data_has(
        configmaps.get_opt("sre-observability").await.unwrap().as_ref(),
        "sre-observability.md",
        "built-in v2"
    ));
    assert!(mirror::mirror_skills(&client, &system, &run, &run.spec.skills).await.unwrap().is_empty());

    // A local pack created later takes its ConfigMap over from the mirror, and mirroring
    // then leaves it alone.
    apply_pack(
        &client,
        &ns,
        "sre-observability",
        json!({"skills": [{"name": "own", "content": "local sre"}]}),
    )
    .await;
    let taken = wait_for(
        &configmaps,
        "sre-observability",
        "taken over by the local pack",
        WAIT,
        |c: Option<&ConfigMap>| data_has(c, "own.md", "local sre"),
    )
    .await
    .unwrap();
    assert_eq!(taken.labels()["sympozium.ai/component"], "skillpack");
    assert_eq!(taken.owner_references().len(), 1);
    assert_eq!(taken.owner_references()[0].kind, "SkillPack");
    assert!(mirror::mirror_skills(&client, &system, &run, &run.spec.skills).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(data_has(configmaps.get_opt("sre-observability").await.unwrap().as_ref(), "own.md", "local sre"));
    task.abort();
}

#[tokio::test]
async fn only_offered_system_secrets_are_copied_and_a_users_own_secret_wins() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "skill-secret").await.unwrap().name().to_string();
    let system = plane.namespace(&client, "skill-secret-sys").await.unwrap().name().to_string();
    let system_secrets: Api<Secret> = Api::namespaced(client.clone(), &system);
    for (name, offered) in [("gitops-token", true), ("controller-key", false), ("shared", true)] {
        let labels = if offered { json!({"sympozium.ai/skill-secret": "true"}) } else { json!({}) };
        let secret: Secret = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
            "stringData": {"GH_TOKEN": format!("system-{name}")}}))
        .unwrap();
        system_secrets.create(&PostParams::default(), &secret).await.unwrap();
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let own: Secret =
        serde_json::from_value(json!({"metadata": {"name": "shared"}, "stringData": {"GH_TOKEN": "mine"}}))
            .unwrap();
    secrets.create(&PostParams::default(), &own).await.unwrap();
    let run: AgentRun =
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "r1"},
        "spec": {"instanceRef": "i", "agentId": "a", "sessionKey": "", "task": "t",
                 "model": {"provider": "openai", "model": "m", "authSecretRef": ""}}}))
        .unwrap();
    let run =
        Api::<AgentRun>::namespaced(client.clone(), &ns).create(&PostParams::default(), &run).await.unwrap();
    let names = ["gitops-token".to_string(), "controller-key".to_string(), "shared".to_string()];
    let copied = mirror::mirror_secrets(&client, &system, &run, &names).await.unwrap();
    assert_eq!(copied, ["gitops-token"]);
    let copy = secrets.get("gitops-token").await.unwrap();
    assert_eq!(copy.data.as_ref().unwrap()["GH_TOKEN"].0, b"system-gitops-token");
    assert_eq!(copy.owner_references()[0].uid, run.uid().unwrap());
    assert!(secrets.get_opt("controller-key").await.unwrap().is_none(), "unlabelled system Secrets stay");
    assert_eq!(secrets.get("shared").await.unwrap().data.unwrap()["GH_TOKEN"].0, b"mine");
    assert!(mirror::mirror_secrets(&client, &system, &run, &names).await.unwrap().is_empty());
}
