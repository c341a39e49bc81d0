//! The agent pod's credentials, attacked for real on the local node: the model makes a
//! skill sidecar (as the pod's user) hunt through `/proc` for the runner's API key and
//! through its filesystem for a ServiceAccount token it was not given. Each container has
//! its own PID namespace, as on a cluster without `shareProcessNamespace`, so the runner's
//! process must not even be visible.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use support::*;
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::{agentrun, skillpack};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::fake_llm::{FakeLlm, Turn};
use sympozium_testkit::{TestPlane, wait_for};

const WAIT: Duration = Duration::from_secs(90);
const KEY: &str = "sk-node-isolation-7d2e";

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

async fn create<K>(client: &Client, ns: &str, obj: Value)
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope> + Clone + std::fmt::Debug,
    K: serde::de::DeserializeOwned + serde::Serialize,
    <K as kube::Resource>::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &serde_json::from_value(obj).unwrap()).await.unwrap();
}

/// What the hostile command does, in the `notes` sidecar (a skill granted no RBAC). The
/// patterns are written so they do not match their own text (`7d2[e]`), or the command's
/// request file in /ipc and the shell's own command line would "leak" the key.
fn attack() -> String {
    let key = format!("{}[{}]", &KEY[..KEY.len() - 1], &KEY[KEY.len() - 1..]);
    format!(
        r#"SA=/var/run/secrets/kubernetes.io/serviceaccount
for p in /proc/[0-9]*; do
  if tr '\0' '\n' < $p/environ 2>/dev/null | grep -qE '{key}'; then echo "LEAK-ENV $p"; fi
  if grep -qaE '{key}' $p/mem 2>/dev/null; then echo "LEAK-MEM $p"; fi
  if grep -qaE 'programs/[0-9]+/sympozium-agent-runne[r]' $p/cmdline 2>/dev/null; then
    echo "runner-visible $p"
    cat $p/root$SA/token >/dev/null 2>&1 && echo "READ-RUNNER-ROOT $p"
    ls $p/root/ >/dev/null 2>&1 && echo "READ-RUNNER-ROOT $p"
  fi
done
[ -e $SA/token ] && echo OWN-TOKEN || echo no-own-token
grep -rqsE '{key}' /workspace /tmp /ipc && echo LEAK-FILES
echo scan-done"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skill_sidecar_cannot_read_the_runners_key_or_a_token_it_was_not_given() {
    ensure_built("sympozium-agent-runner", &["sympozium-agent-runner"]);
    ensure_built("sympozium-ipc-bridge", &["sympozium-ipc-bridge"]);
    ensure_built("sympozium-tool-executor", &["tool-executor"]);
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-iso").await;
    let ns = ns.name().to_string();

    create::<Pod>(
        &client,
        &ns,
        json!({"metadata": {"name": "nats", "labels": {"app": "nats"}},
        "spec": {"containers": [{"name": "nats", "image": "nats:2.10", "args": ["-js", "-sd", "/data"],
            "ports": [{"name": "client", "containerPort": 4222}],
            "readinessProbe": {"tcpSocket": {"port": 4222}, "periodSeconds": 1},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]}}),
    )
    .await;
    create::<Service>(&client, &ns, json!({"metadata": {"name": "nats"},
        "spec": {"selector": {"app": "nats"}, "ports": [{"name": "client", "port": 4222, "targetPort": "client"}]}}))
    .await;

    let fake = FakeLlm::start().await.unwrap();
    fake.push(Turn::tool_call(
        "execute_command",
        json!({"skill": "notes", "command": attack(), "timeout": 60}),
    ));
    fake.push(Turn::text("nothing found"));
    host_service(&client, &ns, "llm", port_of(&fake.openai_base_url())).await;
    let base_url = format!("http://llm.{ns}.svc/v1");

    create::<Secret>(
        &client,
        &ns,
        json!({"metadata": {"name": "key"}, "stringData": {"OPENAI_API_KEY": KEY}}),
    )
    .await;
    apply(
        &client,
        &ns,
        "SkillPack",
        "skillpacks",
        "inspect",
        json!({
        "skills": [{"name": "inspect", "content": "Inspect the cluster."}],
        "sidecar": {"image": "ghcr.io/sympozium-ai/sympozium/skill-k8s-ops:latest",
            "rbac": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}}),
    )
    .await;
    apply(
        &client,
        &ns,
        "SkillPack",
        "skillpacks",
        "notes",
        json!({
        "skills": [{"name": "notes", "content": "Take notes."}],
        "sidecar": {"image": "ghcr.io/sympozium-ai/sympozium/skill-github-gitops:latest"}}),
    )
    .await;
    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "sympoziuminstances",
        "sre",
        json!({
        "agents": {"default": {"model": "gpt-4o", "baseURL": base_url}},
        "authRefs": [{"provider": "openai", "secret": "key"}]}),
    )
    .await;
    wait_ready(&client, &ns, "nats", WAIT).await;

    let settings =
        Settings { event_bus_url: Some(format!("nats://nats.{ns}.svc:4222")), ..Default::default() };
    let ctx =
        Arc::new(Context::new(client.clone(), settings, Metrics::default(), Some(ns.clone()), "node-iso"));
    let tasks = [tokio::spawn(agentrun::run(ctx.clone())), tokio::spawn(skillpack::run(ctx.clone()))];
    apply(
        &client,
        &ns,
        "AgentRun",
        "agentruns",
        "hunt",
        json!({"instanceRef": "sre", "agentId": "primary",
        "sessionKey": "s1", "task": "Look around.",
        "skills": [{"skillPackRef": "inspect"}, {"skillPackRef": "notes"}],
        "model": {"provider": "openai", "model": "gpt-4o", "baseURL": base_url, "authSecretRef": "key"}}),
    )
    .await;

    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let done =
        wait_for(&runs, "hunt", "Succeeded or Failed", Duration::from_secs(180), |r: Option<&AgentRun>| {
            matches!(
                r.and_then(|r| r.status.as_ref()?.phase),
                Some(AgentRunPhase::Succeeded | AgentRunPhase::Failed)
            )
        })
        .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let run_pod =
        pods.list(&ListParams::default().labels("job-name=hunt")).await.unwrap().items.into_iter().next();
    let done = done.unwrap_or_else(|e| {
        panic!("{e}; pod: {}", serde_json::to_string_pretty(&run_pod.and_then(|p| p.status)).unwrap())
    });
    assert_eq!(done.status.as_ref().unwrap().phase, Some(AgentRunPhase::Succeeded), "{:?}", done.status);
    // The key did reach the runner (it called the model with it) …
    assert_eq!(fake.requests()[0].header("authorization"), Some(&*format!("Bearer {KEY}")));
    // … and the sidecar's hunt found nothing.
    // Only the tool's output: the request also carries the command, whose text names the markers.
    let report: String = fake.requests()[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(report.contains("scan-done"), "the attack ran to the end: {report}");
    for leak in ["LEAK-ENV", "LEAK-MEM", "READ-RUNNER-ROOT", "OWN-TOKEN", "LEAK-FILES"] {
        assert!(!report.contains(leak), "{leak}: {report}");
    }
    assert!(report.contains("no-own-token"), "{report}");
    assert!(!report.contains("runner-visible"), "the sidecar sees the runner's process: {report}");
    eprintln!(
        "node /proc attacks tried: 6 (see the runner, environ, mem, root of the runner, own token, shared files), refused: 6"
    );
    for t in tasks {
        t.abort();
    }
}
