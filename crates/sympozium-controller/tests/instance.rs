//! The SympoziumInstance controller against the real test control plane: the seed instance
//! gets exactly its children, spec edits converge, deletion removes everything, and a
//! missing channel Secret is reported without a retry storm.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, PersistentVolumeClaim, Secret, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_controller::context::Context;
use sympozium_controller::instance;
use sympozium_controller::settings::Settings;
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::{TestPlane, wait_for, wait_until_gone};

const WAIT: Duration = Duration::from_secs(60);

struct Harness {
    client: Client,
    ns: String,
    metrics: Metrics,
    controller: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.controller.abort();
    }
}

async fn harness(prefix: &str) -> Harness {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, prefix).await.unwrap().name().to_string();
    let metrics = Metrics::default();
    let settings = Settings { image_tag: "test".into(), ..Default::default() };
    let ctx = Arc::new(Context::new(client.clone(), settings, metrics.clone(), Some(ns.clone()), "test"));
    let controller = tokio::spawn(instance::run(ctx));
    Harness { client, ns, metrics, controller }
}

impl Harness {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn secret(&self, name: &str, data: &str) {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name}, "stringData": {"TOKEN": data}}))
        .unwrap();
        self.api::<Secret>()
            .patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&secret))
            .await
            .unwrap();
    }

    async fn apply_instance(&self, name: &str, spec: serde_json::Value) {
        let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
                          "metadata": {"name": name}, "spec": spec});
        self.api::<SympoziumInstance>()
            .patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&body))
            .await
            .unwrap();
    }

    async fn exists<K>(&self, name: &str, what: &str) -> K
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + 'static,
    {
        wait_for(&self.api::<K>(), name, what, WAIT, |o: Option<&K>| o.is_some()).await.unwrap()
    }

    async fn gone<K>(&self, name: &str, what: &str)
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + 'static,
    {
        wait_until_gone(&self.api::<K>(), name, what, WAIT).await.unwrap();
    }

    async fn instance_where(
        &self,
        name: &str,
        what: &str,
        cond: impl Fn(&SympoziumInstance) -> bool + Send + 'static,
    ) -> SympoziumInstance {
        let api = self.api::<SympoziumInstance>();
        wait_for(&api, name, what, WAIT, move |o: Option<&SympoziumInstance>| o.is_some_and(&cond))
            .await
            .unwrap()
    }
}

fn seed_spec() -> serde_json::Value {
    let text = std::fs::read_to_string(
        sympozium_testkit::repo_root().join("deploy/samples/sympoziuminstance-my-agent.yaml"),
    )
    .unwrap();
    let doc: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    doc["spec"].clone()
}

fn env_value(d: &Deployment, name: &str) -> Option<String> {
    d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

#[tokio::test]
async fn seed_instance_gets_exactly_its_children_and_reaches_running() {
    let h = harness("inst-seed").await;
    h.secret("telegram-creds", "bot-token").await;
    h.secret("openai-key", "sk-test").await;
    h.apply_instance("my-agent", seed_spec()).await;

    let channel: Deployment = h.exists("my-agent-channel-telegram", "telegram channel Deployment").await;
    let labels = channel.labels();
    assert_eq!(labels["sympozium.ai/component"], "channel");
    assert_eq!(labels["sympozium.ai/channel"], "telegram");
    assert_eq!(labels["sympozium.ai/instance"], "my-agent");
    let owner = &channel.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("SympoziumInstance", "my-agent", Some(true))
    );
    assert_eq!(env_value(&channel, "INSTANCE_NAME").as_deref(), Some("my-agent"));
    assert_eq!(
        env_value(&channel, "OTEL_EXPORTER_OTLP_ENDPOINT").as_deref(),
        Some("otel-collector.observability.svc:4317")
    );
    let pod = channel.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("ghcr.io/sympozium-ai/sympozium/channel-telegram:test")
    );
    assert_eq!(
        pod.containers[0].env_from.as_ref().unwrap()[0].secret_ref.as_ref().unwrap().name,
        "telegram-creds"
    );

    let cm: ConfigMap = h.exists("my-agent-memory", "legacy memory ConfigMap").await;
    assert!(cm.data.unwrap()["MEMORY.md"].contains("No memories recorded yet"));
    let pvc: PersistentVolumeClaim = h.exists("my-agent-memory-db", "memory database PVC").await;
    assert_eq!(pvc.labels()["sympozium.ai/component"], "memory-db");
    let memory: Deployment = h.exists("my-agent-memory", "memory server Deployment").await;
    let c = &memory.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
    assert_eq!(c.startup_probe.as_ref().unwrap().failure_threshold, Some(30));
    assert_eq!(env_value(&memory, "MEMORY_DB_PATH").as_deref(), Some("/data/memory.db"));
    let svc: Service = h.exists("my-agent-memory", "memory Service").await;
    assert_eq!(svc.spec.unwrap().ports.unwrap()[0].port, 8080);

    // Exactly these children: one channel Deployment plus the memory server, nothing else.
    let owned: Vec<String> = h
        .api::<Deployment>()
        .list(&ListParams::default().labels("sympozium.ai/instance=my-agent"))
        .await
        .unwrap()
        .iter()
        .map(|d| d.name_any())
        .collect();
    assert_eq!(owned.len(), 2, "{owned:?}");
    assert!(
        h.api::<AgentRun>().list(&ListParams::default()).await.unwrap().items.is_empty(),
        "no web endpoint"
    );

    let inst = h
        .instance_where("my-agent", "phase Running with the telegram channel connected", |i| {
            i.status.as_ref().is_some_and(|s| {
                s.phase.as_deref() == Some("Running")
                    && s.channels.first().is_some_and(|c| c.status == "Connected")
            })
        })
        .await;
    assert!(inst.finalizers().contains(&"sympozium.ai/finalizer".to_string()));
    let ready = &inst.status.unwrap().conditions[0];
    assert_eq!((ready.type_.as_str(), ready.status.as_str()), ("Ready", "True"));
}

#[tokio::test]
async fn spec_edits_converge_the_children() {
    let h = harness("inst-edit").await;
    h.secret("tg", "a").await;
    h.secret("slack-a", "x").await;
    h.secret("slack-b", "y").await;
    let base = |channels: serde_json::Value, skills: serde_json::Value| {
        json!({"agents": {"default": {"model": "gpt-4o"}}, "channels": channels, "skills": skills,
               "authRefs": [{"secret": "team-anthropic-key"}]})
    };
    h.apply_instance(
        "edit",
        base(
            json!([{"type": "telegram", "configRef": {"secret": "tg"}}]),
            json!([{"skillPackRef": "memory"}]),
        ),
    )
    .await;
    let _: Deployment = h.exists("edit-channel-telegram", "telegram channel").await;
    let _: Service = h.exists("edit-memory", "memory Service").await;

    // A deleted child comes back.
    h.api::<Service>().delete("edit-memory", &DeleteParams::default()).await.unwrap();
    let svc = wait_for(
        &h.api::<Service>(),
        "edit-memory",
        "memory Service recreated",
        WAIT,
        |s: Option<&Service>| s.is_some_and(|s| s.metadata.deletion_timestamp.is_none()),
    )
    .await
    .unwrap();
    assert_eq!(svc.owner_references()[0].name, "edit");

    // Add slack, remove telegram.
    h.apply_instance(
        "edit",
        base(
            json!([{"type": "slack", "configRef": {"secret": "slack-a"}}]),
            json!([{"skillPackRef": "memory"}]),
        ),
    )
    .await;
    let _: Deployment = h.exists("edit-channel-slack", "slack channel added").await;
    h.gone::<Deployment>("edit-channel-telegram", "removed telegram channel").await;
    // Slack can call the pod (Events API): its webhook Service selects the channel pod.
    let hook: Service = h.exists("edit-channel-slack", "slack webhook Service").await;
    let spec = hook.spec.unwrap();
    let port = &spec.ports.unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("webhook"), 3000));
    assert_eq!(spec.selector.unwrap()["sympozium.ai/channel"], "slack");
    assert!(h.api::<Service>().get_opt("edit-channel-telegram").await.unwrap().is_none(), "Telegram polls");

    // A changed secret name rolls the Deployment to the new credentials.
    h.apply_instance(
        "edit",
        base(
            json!([{"type": "slack", "configRef": {"secret": "slack-b"}}]),
            json!([{"skillPackRef": "memory"}]),
        ),
    )
    .await;
    let uses = |secret: &'static str| {
        move |d: Option<&Deployment>| {
            d.and_then(|d| d.spec.as_ref()?.template.spec.as_ref()?.containers[0].env_from.clone())
                .is_some_and(|e| e[0].secret_ref.as_ref().is_some_and(|s| s.name == secret))
        }
    };
    let before =
        wait_for(&h.api::<Deployment>(), "edit-channel-slack", "slack uses slack-b", WAIT, uses("slack-b"))
            .await
            .unwrap();
    let version = |d: &Deployment| {
        d.spec.as_ref().unwrap().template.metadata.as_ref().unwrap().annotations.as_ref().unwrap()
            ["sympozium.ai/config-version"]
            .clone()
    };
    // New secret content rolls the pods too, without the controller reading the values.
    let old_version = version(&before);
    h.secret("slack-b", "rotated").await;
    wait_for(
        &h.api::<Deployment>(),
        "edit-channel-slack",
        "rollout after secret rotation",
        WAIT,
        move |d: Option<&Deployment>| d.is_some_and(|d| version(d) != old_version),
    )
    .await
    .unwrap();

    // Removing the memory skill stops the server but keeps its data.
    h.apply_instance("edit", base(json!([{"type": "slack", "configRef": {"secret": "slack-b"}}]), json!([])))
        .await;
    h.gone::<Deployment>("edit-memory", "memory server removed").await;
    h.gone::<Service>("edit-memory", "memory Service removed").await;
    assert!(h.api::<PersistentVolumeClaim>().get_opt("edit-memory-db").await.unwrap().is_some(), "data kept");

    // Adding and removing the web-endpoint skill creates and deletes the serving run.
    h.apply_instance(
        "edit",
        base(
            json!([{"type": "slack", "configRef": {"secret": "slack-b"}}]),
            json!([{"skillPackRef": "web-endpoint", "params": {"hostname": "a.example.com"}}]),
        ),
    )
    .await;
    let run: AgentRun = h.exists("edit-web-endpoint", "serving AgentRun").await;
    assert_eq!(run.spec.model.provider, "anthropic", "provider resolved from the secret name");
    assert_eq!(run.spec.model.auth_secret_ref, "team-anthropic-key");
    h.apply_instance("edit", base(json!([{"type": "slack", "configRef": {"secret": "slack-b"}}]), json!([])))
        .await;
    h.gone::<AgentRun>("edit-web-endpoint", "serving AgentRun removed").await;

    // Removing the channel removes its webhook Service with its Deployment.
    h.apply_instance("edit", base(json!([]), json!([]))).await;
    h.gone::<Deployment>("edit-channel-slack", "slack channel removed").await;
    h.gone::<Service>("edit-channel-slack", "slack webhook Service removed").await;
}

#[tokio::test]
async fn deleting_the_instance_removes_every_child() {
    let h = harness("inst-delete").await;
    h.secret("tg", "a").await;
    h.apply_instance(
        "doomed",
        json!({
        "agents": {"default": {"model": "m"}},
        "channels": [{"type": "telegram", "configRef": {"secret": "tg"}}, {"type": "whatsapp"}],
        "skills": [{"skillPackRef": "memory"}, {"skillPackRef": "web-endpoint"}],
        "memory": {"enabled": true}}),
    )
    .await;
    let _: AgentRun = h.exists("doomed-web-endpoint", "serving run").await;
    let _: Deployment = h.exists("doomed-channel-whatsapp", "whatsapp channel").await;
    let _: PersistentVolumeClaim = h.exists("doomed-channel-whatsapp-data", "whatsapp PVC").await;
    let _: Service = h.exists("doomed-memory", "memory Service").await;

    h.api::<SympoziumInstance>().delete("doomed", &DeleteParams::default()).await.unwrap();
    h.gone::<SympoziumInstance>("doomed", "the instance (finalizer released)").await;
    for d in ["doomed-channel-telegram", "doomed-channel-whatsapp", "doomed-memory"] {
        h.gone::<Deployment>(d, "Deployment").await;
    }
    h.gone::<Service>("doomed-memory", "memory Service").await;
    h.gone::<ConfigMap>("doomed-memory", "memory ConfigMap").await;
    h.gone::<AgentRun>("doomed-web-endpoint", "serving AgentRun").await;
    // PVCs go by garbage collection (the PVC-protection finalizer lets unused claims go).
    h.gone::<PersistentVolumeClaim>("doomed-memory-db", "memory PVC").await;
    h.gone::<PersistentVolumeClaim>("doomed-channel-whatsapp-data", "whatsapp PVC").await;
}

#[tokio::test]
async fn a_missing_channel_secret_is_reported_not_retried_hot() {
    let h = harness("inst-secret").await;
    h.secret("tg", "a").await;
    h.apply_instance(
        "lonely",
        json!({
        "agents": {"default": {"model": "m"}},
        "channels": [{"type": "discord", "configRef": {"secret": "discord-creds"}},
                     {"type": "telegram", "configRef": {"secret": "tg"}}]}),
    )
    .await;
    let inst = h
        .instance_where("lonely", "discord channel in Error", |i| {
            i.status
                .as_ref()
                .is_some_and(|s| s.channels.iter().any(|c| c.type_ == "discord" && c.status == "Error"))
        })
        .await;
    let status = inst.status.unwrap();
    let discord = status.channels.iter().find(|c| c.type_ == "discord").unwrap();
    assert_eq!(discord.message.as_deref(), Some("secret \"discord-creds\" not found"));
    let ready = &status.conditions[0];
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "ChannelNotReady"));
    assert!(ready.message.contains("discord-creds"));
    // The other channel still reconciles.
    let _: Deployment = h.exists("lonely-channel-telegram", "telegram channel despite discord's error").await;
    assert!(h.api::<Deployment>().get_opt("lonely-channel-discord").await.unwrap().is_none());

    let events: Api<Event> = h.api();
    let warned = || async {
        events.list(&ListParams::default()).await.unwrap().items.into_iter().any(|e| {
            e.reason.as_deref() == Some("ChannelSecretMissing")
                && e.type_.as_deref() == Some("Warning")
                && e.message.as_deref().is_some_and(|m| m.contains("discord-creds"))
        })
    };
    let mut found = false;
    for _ in 0..50 {
        if warned().await {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(found, "a Warning event names the missing secret");

    // Not an error loop: once the healthy channel has settled, the instance is left alone
    // until something it depends on changes.
    h.instance_where("lonely", "telegram connected", |i| {
        i.status
            .as_ref()
            .is_some_and(|s| s.channels.iter().any(|c| c.type_ == "telegram" && c.status == "Connected"))
    })
    .await;
    let reconciles = || {
        let text = h.metrics.render();
        text.lines()
            .find(|l| l.starts_with("sympozium_reconciles_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = reconciles();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let quiet = reconciles() - before;
    assert!(quiet <= 3, "{quiet} reconciles in 3 s while nothing changed");
    assert!(
        !h.metrics.render().contains("sympozium_reconcile_failures_total{"),
        "a missing secret is not a failure"
    );

    // Creating the Secret is noticed through the Secret watch.
    h.secret("discord-creds", "token").await;
    let _: Deployment = h.exists("lonely-channel-discord", "discord channel once its secret exists").await;
}

#[tokio::test]
async fn status_counts_active_runs_and_reports_serving() {
    let h = harness("inst-status").await;
    h.apply_instance("counted", json!({"agents": {"default": {"model": "m"}}})).await;
    h.instance_where("counted", "Running", |i| {
        i.status.as_ref().is_some_and(|s| s.phase.as_deref() == Some("Running"))
    })
    .await;
    let runs = h.api::<AgentRun>();
    for (name, phase) in [("r1", "Running"), ("r2", "Succeeded"), ("r3", "Serving")] {
        let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
            "metadata": {"name": name, "labels": {"sympozium.ai/instance": "counted"}},
            "spec": {"instanceRef": "counted", "agentId": "primary", "sessionKey": "", "task": "t",
                     "model": {"provider": "openai", "model": "m", "authSecretRef": ""}}});
        runs.patch(name, &PatchParams::apply("test"), &Patch::Apply(&body)).await.unwrap();
        let status =
            json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "status": {"phase": phase}});
        runs.patch_status(name, &PatchParams::apply("test"), &Patch::Apply(&status)).await.unwrap();
    }
    let inst = h
        .instance_where("counted", "Serving with 2 active runs of 3", |i| {
            i.status.as_ref().is_some_and(|s| {
                s.phase.as_deref() == Some("Serving") && s.active_agent_pods == 2 && s.total_agent_runs == 3
            })
        })
        .await;
    assert_eq!(inst.status.unwrap().conditions[0].reason, "Serving");

    // Finished runs leave the active count; the total does not shrink when runs are pruned.
    runs.delete("r3", &DeleteParams::default()).await.unwrap();
    let status =
        json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "status": {"phase": "Succeeded"}});
    runs.patch_status("r1", &PatchParams::apply("test"), &Patch::Apply(&status)).await.unwrap();
    h.instance_where("counted", "back to Running with no active runs", |i| {
        i.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Running") && s.active_agent_pods == 0 && s.total_agent_runs == 3
        })
    })
    .await;

    // History pruning deletes every old run; new runs still add to the total (it counts
    // runs ever made, not runs that exist).
    for name in ["r1", "r2"] {
        runs.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for name in ["r4", "r5"] {
        let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
            "metadata": {"name": name, "labels": {"sympozium.ai/instance": "counted"}},
            "spec": {"instanceRef": "counted", "agentId": "primary", "sessionKey": "", "task": "t",
                     "model": {"provider": "openai", "model": "m", "authSecretRef": ""}}});
        runs.patch(name, &PatchParams::apply("test"), &Patch::Apply(&body)).await.unwrap();
    }
    h.instance_where("counted", "5 runs ever, 2 of them existing", |i| {
        i.status.as_ref().is_some_and(|s| s.total_agent_runs == 5)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let inst = h.api::<SympoziumInstance>().get("counted").await.unwrap();
    assert_eq!(inst.status.unwrap().total_agent_runs, 5, "each run counted once");
    let r4 = runs.get("r4").await.unwrap();
    assert_eq!(r4.annotations().get("sympozium.ai/counted").map(String::as_str), Some("true"));
}
