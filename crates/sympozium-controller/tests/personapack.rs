//! The PersonaPack controller against the real test control plane, with the instance
//! controller running beside it: the seed pack stamps out exactly its team, pack edits
//! converge and user edits of pack-owned fields are put back, disabling removes the team,
//! deleting leaves nothing behind, and every built-in pack installs and converges.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sympozium_api::{PersonaPack, SympoziumInstance, SympoziumSchedule};
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::{instance, personapack};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::{TestPlane, wait_for, wait_until_gone};

const WAIT: Duration = Duration::from_secs(45);
const PACK: &str = "platform-team";
const GUARDIAN: &str = "platform-team-security-guardian";
const WATCHDOG: &str = "platform-team-sre-watchdog";

struct Harness {
    plane: TestPlane,
    client: Client,
    ns: String,
    metrics: Metrics,
    controllers: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.controllers.abort();
    }
}

async fn harness(prefix: &str) -> Harness {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, prefix).await.unwrap().name().to_string();
    let settings = Settings { image_tag: "test".into(), ..Default::default() };
    let metrics = Metrics::default();
    let ctx = Arc::new(Context::new(client.clone(), settings, metrics.clone(), Some(ns.clone()), "test"));
    let controllers = tokio::spawn(async move {
        futures::join!(instance::run(ctx.clone()), personapack::run(ctx));
    });
    Harness { plane, client, ns, metrics, controllers }
}

/// Polls `check` until it returns `Some`, failing after [`WAIT`] with `what`.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {WAIT:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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

    async fn apply_pack(&self, doc: &Value) {
        let name = doc["metadata"]["name"].as_str().unwrap();
        self.api::<PersonaPack>()
            .patch(name, &PatchParams::apply("test").force(), &Patch::Apply(doc))
            .await
            .unwrap();
    }

    async fn merge_pack(&self, name: &str, patch: Value) {
        self.api::<PersonaPack>().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }

    async fn pack_where(
        &self,
        name: &str,
        what: &str,
        cond: impl Fn(&PersonaPack) -> bool + Send + 'static,
    ) -> PersonaPack {
        let api = self.api::<PersonaPack>();
        wait_for(&api, name, what, WAIT, move |p: Option<&PersonaPack>| p.is_some_and(&cond)).await.unwrap()
    }

    async fn ready(&self, name: &str, installed: i32) -> PersonaPack {
        self.pack_where(name, "pack Ready", move |p| {
            p.status
                .as_ref()
                .is_some_and(|s| s.phase.as_deref() == Some("Ready") && s.installed_count == installed)
        })
        .await
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

    async fn schedule_where(
        &self,
        name: &str,
        what: &str,
        cond: impl Fn(&SympoziumSchedule) -> bool + Send + 'static,
    ) -> SympoziumSchedule {
        let api = self.api::<SympoziumSchedule>();
        wait_for(&api, name, what, WAIT, move |o: Option<&SympoziumSchedule>| o.is_some_and(&cond))
            .await
            .unwrap()
    }

    async fn names<K>(&self, selector: &str) -> Vec<String>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let mut names: Vec<_> = self
            .api::<K>()
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap()
            .items
            .iter()
            .map(|o| o.name_any())
            .collect();
        names.sort();
        names
    }

    async fn secret(&self, name: &str) {
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {"API_KEY": "sk-test"}}))
                .unwrap();
        self.api::<Secret>()
            .patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&secret))
            .await
            .unwrap();
    }
}

/// The seed sample plus an SRE watchdog and an excluded cost analyzer: two personas to
/// stamp out, one to leave alone.
fn seed_team() -> Value {
    let text = std::fs::read_to_string(
        sympozium_testkit::repo_root().join("deploy/samples/personapack-platform-team.yaml"),
    )
    .unwrap();
    let mut doc: Value = serde_yaml::from_str(&text).unwrap();
    doc["spec"]["skillParams"]["k8s-ops"] = json!({"namespaces": "all"});
    let personas = doc["spec"]["personas"].as_array_mut().unwrap();
    personas.push(json!({
        "name": "sre-watchdog", "displayName": "SRE Watchdog",
        "systemPrompt": "You watch cluster health and raise problems early.",
        "skills": ["k8s-ops", "llmfit", "memory"],
        "toolPolicy": {"allow": ["read_file", "execute_command", "send_channel_message"]},
        "schedule": {"type": "heartbeat", "interval": "15m", "task": "Check for failing pods and node pressure."},
        "memory": {"enabled": true, "seeds": ["Note the utilisation baseline."]},
    }));
    personas.push(json!({
        "name": "cost-analyzer", "systemPrompt": "You analyse cost.",
        "schedule": {"type": "scheduled", "cron": "0 8 * * 1", "task": "Weekly cost review."},
    }));
    doc
}

fn memory_of(cm: &ConfigMap) -> String {
    cm.data.as_ref().and_then(|d| d.get("MEMORY.md")).cloned().unwrap_or_default()
}

#[tokio::test]
async fn enabling_the_seed_pack_stamps_out_exactly_its_team() {
    let h = harness("pack-seed").await;
    h.apply_pack(&seed_team()).await;
    let pack = h.ready(PACK, 2).await;
    let status = pack.status.clone().unwrap();
    assert_eq!(status.persona_count, 3);
    let installed: Vec<_> = status
        .installed_personas
        .iter()
        .map(|p| (p.name.as_str(), p.instance_name.as_str(), p.schedule_name.as_deref()))
        .collect();
    assert_eq!(
        installed,
        [
            ("security-guardian", GUARDIAN, Some("platform-team-security-guardian-schedule")),
            ("sre-watchdog", WATCHDOG, Some("platform-team-sre-watchdog-schedule")),
        ]
    );
    let ready = &status.conditions[0];
    assert_eq!(
        (ready.type_.as_str(), ready.status.as_str(), ready.reason.as_str()),
        ("Ready", "True", "Reconciled")
    );
    assert!(pack.finalizers().iter().any(|f| f == "sympozium.ai/personapack-finalizer"));

    let selector = format!("sympozium.ai/persona-pack={PACK}");
    assert_eq!(
        h.names::<SympoziumInstance>(&selector).await,
        [GUARDIAN, WATCHDOG],
        "cost-analyzer is excluded"
    );
    assert_eq!(
        h.names::<SympoziumSchedule>(&selector).await,
        ["platform-team-security-guardian-schedule", "platform-team-sre-watchdog-schedule"]
    );

    let uid = pack.uid().unwrap();
    let guardian = h.api::<SympoziumInstance>().get(GUARDIAN).await.unwrap();
    let owner = &guardian.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("PersonaPack", uid.as_str(), Some(true))
    );
    assert_eq!(guardian.labels()["sympozium.ai/persona"], "security-guardian");
    let agent = &guardian.spec.agents.default;
    assert_eq!(agent.model, "claude-sonnet-4-20250514");
    assert_eq!(agent.tool_policy.as_ref().unwrap().allow, ["execute_command", "read_file", "fetch_url"]);
    assert_eq!(agent.agent_sandbox.as_ref().unwrap().runtime_class.as_deref(), Some("gvisor"));
    assert!(
        guardian.spec.memory.as_ref().unwrap().system_prompt.as_deref().unwrap().contains("CIS benchmark")
    );
    assert_eq!(guardian.spec.policy_ref.as_deref(), Some("restrictive"));
    assert_eq!(guardian.spec.channels[0].config_ref.secret, "telegram-creds");
    assert_eq!(guardian.spec.channels[0].access_control.as_ref().unwrap().allowed_senders, ["123456"]);
    let skills: Vec<_> = guardian.spec.skills.iter().map(|s| s.skill_pack_ref.clone().unwrap()).collect();
    assert_eq!(skills, ["k8s-ops", "sre-observability", "memory"]);
    assert_eq!(guardian.spec.skills[0].params.as_ref().unwrap()["namespaces"], "all");
    let watchdog = h.api::<SympoziumInstance>().get(WATCHDOG).await.unwrap();
    assert!(watchdog.spec.channels.is_empty());
    assert_eq!(watchdog.spec.agents.default.model, "gpt-4o");

    let schedules = h.api::<SympoziumSchedule>();
    let s = schedules.get("platform-team-security-guardian-schedule").await.unwrap();
    assert_eq!(s.spec.schedule, "0/30 * * * *", "30m heartbeat at persona index 0");
    assert_eq!(s.spec.instance_ref, GUARDIAN);
    assert!(s.spec.task.starts_with("TEAM OBJECTIVE: Keep the production cluster secure"), "{}", s.spec.task);
    assert!(s.spec.task.contains("\n\nYOUR ROLE TASK: Scan every namespace"));
    assert_eq!(s.owner_references()[0].uid, uid);
    let s = schedules.get("platform-team-sre-watchdog-schedule").await.unwrap();
    assert_eq!(s.spec.schedule, "2/15 * * * *", "15m staggered two minutes for persona index 1");

    // The seeds win over the instance controller's placeholder, even once it has run.
    let configmaps = h.api::<ConfigMap>();
    h.instance_where(GUARDIAN, "instance reconciled", |i| {
        i.status.as_ref().is_some_and(|s| s.phase.is_some())
    })
    .await;
    let cm = configmaps.get("platform-team-security-guardian-memory").await.unwrap();
    assert!(cm.owner_references().is_empty(), "seeded memory has no owner");
    assert_eq!(cm.labels()["sympozium.ai/memory"], "true");
    assert_eq!(cm.labels()["sympozium.ai/persona-pack"], PACK);
    assert_eq!(
        memory_of(&cm),
        "# Memory\n\n- Follow CIS Kubernetes Benchmark v1.8 when judging findings.\n\
         - Escalate privileged or host-network pods immediately.\n\
         - Treat containers without resource limits as medium severity.\n"
    );
    let cm = configmaps.get("platform-team-sre-watchdog-memory").await.unwrap();
    assert_eq!(memory_of(&cm), "# Memory\n\n- Note the utilisation baseline.\n");
    assert!(configmaps.get_opt("platform-team-cost-analyzer-memory").await.unwrap().is_none());

    // The memory server imports the seeds into its database at start-up.
    let server: Deployment = wait_for(
        &h.api(),
        "platform-team-security-guardian-memory",
        "memory server",
        WAIT,
        |d: Option<&Deployment>| d.is_some(),
    )
    .await
    .unwrap();
    let pod = server.spec.unwrap().template.spec.unwrap();
    let env = pod.containers[0].env.clone().unwrap_or_default();
    assert!(
        env.iter().any(|e| e.name == "MEMORY_SEEDS_PATH" && e.value.as_deref() == Some("/seeds/MEMORY.md"))
    );
    let seeds = pod.volumes.unwrap().into_iter().find(|v| v.name == "memory-seeds").unwrap();
    assert_eq!(seeds.config_map.unwrap().name, "platform-team-security-guardian-memory");

    // Converged means quiet: no reconcile loop between the pack and what it stamps out.
    let reconciles = || {
        let text = h.metrics.render();
        text.lines()
            .find(|l| l.starts_with(r#"sympozium_reconciles_total{controller="personapack"}"#))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = reconciles();
    assert!(before > 0, "the pack controller counts its reconciles");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let quiet = reconciles() - before;
    eprintln!("pack reconciles: {before} to converge, {quiet} while quiet");
    assert!(quiet <= 3, "{quiet} pack reconciles in 3 s while nothing changed");
    assert!(!h.metrics.render().contains(r#"reconcile_failures_total{controller="personapack""#));
    assert!(h.api::<SympoziumInstance>().get_opt("platform-team-cost-analyzer").await.unwrap().is_none());
}

#[tokio::test]
async fn pack_edits_converge_and_user_edits_are_put_back() {
    let h = harness("pack-edit").await;
    h.apply_pack(&seed_team()).await;
    h.ready(PACK, 2).await;

    // Edit a prompt, a skill param, a channel secret, and exclude the watchdog.
    let mut edited = seed_team();
    edited["spec"]["personas"][0]["systemPrompt"] = json!("You are the new security guardian.");
    edited["spec"]["skillParams"]["k8s-ops"] = json!({"namespaces": "prod"});
    edited["spec"]["channelConfigs"]["telegram"] = json!("telegram-creds-v2");
    edited["spec"]["excludePersonas"] = json!(["cost-analyzer", "sre-watchdog"]);
    h.apply_pack(&edited).await;
    let inst = h
        .instance_where(GUARDIAN, "pack edits on the instance", |i| {
            i.spec.memory.as_ref().and_then(|m| m.system_prompt.as_deref())
                == Some("You are the new security guardian.")
                && i.spec.channels.first().is_some_and(|c| c.config_ref.secret == "telegram-creds-v2")
        })
        .await;
    assert_eq!(inst.spec.skills[0].params.as_ref().unwrap()["namespaces"], "prod");
    wait_until_gone(&h.api::<SympoziumInstance>(), WATCHDOG, "excluded instance", WAIT).await.unwrap();
    wait_until_gone(
        &h.api::<SympoziumSchedule>(),
        "platform-team-sre-watchdog-schedule",
        "excluded schedule",
        WAIT,
    )
    .await
    .unwrap();
    wait_until_gone(&h.api::<ConfigMap>(), "platform-team-sre-watchdog-memory", "excluded memory", WAIT)
        .await
        .unwrap();
    h.ready(PACK, 1).await;

    // A user edits pack-owned fields of the instance and the schedule: both are put back.
    let user = PatchParams::apply("kubectl-edit").force();
    let instance_edit = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
        "spec": {"agents": {"default": {"model": "gpt-3.5-turbo"}}, "policyRef": "permissive"}});
    h.api::<SympoziumInstance>().patch(GUARDIAN, &user, &Patch::Apply(&instance_edit)).await.unwrap();
    let schedule = "platform-team-security-guardian-schedule";
    h.api::<SympoziumSchedule>()
        .patch(
            schedule,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"schedule": "* * * * *", "task": "mine", "suspend": true}})),
        )
        .await
        .unwrap();
    h.instance_where(GUARDIAN, "user edits reverted", |i| {
        i.spec.agents.default.model == "claude-sonnet-4-20250514"
            && i.spec.policy_ref.as_deref() == Some("restrictive")
    })
    .await;
    h.schedule_where(schedule, "user schedule edit reverted", |s| {
        s.spec.schedule == "0/30 * * * *" && s.spec.task.starts_with("TEAM OBJECTIVE:")
    })
    .await;
    let s = h.api::<SympoziumSchedule>().get(schedule).await.unwrap();
    assert_eq!(
        s.spec.suspend,
        Some(true),
        "suspend is not set by the pack: pausing a persona is the user's call"
    );

    // Including the watchdog again brings it back with its seeds.
    h.apply_pack(&seed_team()).await;
    h.ready(PACK, 2).await;
    let cm = h.api::<ConfigMap>().get("platform-team-sre-watchdog-memory").await.unwrap();
    assert_eq!(memory_of(&cm), "# Memory\n\n- Note the utilisation baseline.\n");
}

#[tokio::test]
async fn disabling_removes_the_team_and_deleting_leaves_nothing() {
    let h = harness("pack-off").await;
    h.secret("platform-team-anthropic-key").await;
    h.secret("shared-openai").await;
    let mut doc = seed_team();
    doc["spec"]["authRefs"] = json!([
        {"provider": "anthropic", "secret": "platform-team-anthropic-key"},
        {"provider": "openai", "secret": "shared-openai"},
    ]);
    h.apply_pack(&doc).await;
    h.ready(PACK, 2).await;

    h.merge_pack(PACK, json!({"spec": {"enabled": false}})).await;
    let pack = h
        .pack_where(PACK, "pack Inactive", |p| {
            p.status.as_ref().is_some_and(|s| s.phase.as_deref() == Some("Inactive"))
        })
        .await;
    let status = pack.status.clone().unwrap();
    assert_eq!((status.persona_count, status.installed_count), (3, 0));
    assert!(status.installed_personas.is_empty());
    assert_eq!(status.conditions[0].reason, "Disabled");
    let selector = format!("sympozium.ai/persona-pack={PACK}");
    assert!(h.names::<SympoziumInstance>(&selector).await.is_empty(), "Inactive only once the team is gone");
    assert!(h.names::<SympoziumSchedule>(&selector).await.is_empty());
    assert!(h.names::<ConfigMap>(&selector).await.is_empty());
    let secrets = h.api::<Secret>();
    wait_until_gone(&secrets, "platform-team-anthropic-key", "managed credentials", WAIT).await.unwrap();
    assert!(secrets.get_opt("shared-openai").await.unwrap().is_some(), "user-managed Secret kept");
    let refs =
        h.pack_where(PACK, "managed auth ref dropped", |p| p.spec.auth_refs.len() == 1).await.spec.auth_refs;
    assert_eq!(refs[0].secret, "shared-openai");

    // Enabled again, then deleted: garbage collection and the finalizer leave nothing.
    h.merge_pack(PACK, json!({"spec": {"enabled": true}})).await;
    h.ready(PACK, 2).await;
    h.api::<PersonaPack>().delete(PACK, &DeleteParams::default()).await.unwrap();
    wait_until_gone(&h.api::<PersonaPack>(), PACK, "pack", WAIT).await.unwrap();
    wait_until_gone(&h.api::<SympoziumInstance>(), GUARDIAN, "instance (GC)", WAIT).await.unwrap();
    wait_until_gone(&h.api::<SympoziumInstance>(), WATCHDOG, "instance (GC)", WAIT).await.unwrap();
    wait_until_gone(
        &h.api::<SympoziumSchedule>(),
        "platform-team-security-guardian-schedule",
        "schedule (GC)",
        WAIT,
    )
    .await
    .unwrap();
    wait_until_gone(&h.api::<ConfigMap>(), "platform-team-security-guardian-memory", "seeded memory", WAIT)
        .await
        .unwrap();
    eventually("nothing of the pack left", || async {
        let left = h.names::<SympoziumInstance>(&selector).await.len()
            + h.names::<SympoziumSchedule>(&selector).await.len()
            + h.names::<ConfigMap>(&selector).await.len();
        (left == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn every_builtin_pack_applies_enables_and_converges() {
    let h = harness("pack-builtin").await;
    let dir = sympozium_testkit::repo_root().join("deploy/builtin");
    h.plane.kubectl(&["apply", "-n", &h.ns, "-f", dir.to_str().unwrap()]).unwrap();

    let packs = h.api::<PersonaPack>().list(&ListParams::default()).await.unwrap().items;
    let mut names: Vec<_> = packs.iter().map(|p| p.name_any()).collect();
    names.sort();
    assert_eq!(names, ["developer-team", "devops-essentials", "observability-mcp-team", "platform-team"]);
    for pack in &packs {
        // The schema default: stored as false, shown as `ENABLED false`.
        assert_eq!(pack.spec.enabled, Some(false), "{} ships as a catalog entry", pack.name_any());
        h.pack_where(&pack.name_any(), "catalog pack Inactive", |p| {
            p.status.as_ref().is_some_and(|s| s.phase.as_deref() == Some("Inactive"))
        })
        .await;
    }
    for pack in &packs {
        h.merge_pack(&pack.name_any(), json!({"spec": {"enabled": true}})).await;
    }
    let mut total = 0;
    for pack in &packs {
        let n = i32::try_from(pack.spec.personas.len()).unwrap();
        total += pack.spec.personas.len();
        let ready = h.ready(&pack.name_any(), n).await;
        assert_eq!(ready.status.unwrap().persona_count, n);
        for persona in &pack.spec.personas {
            let name = format!("{}-{}", pack.name_any(), persona.name);
            let inst = h.api::<SympoziumInstance>().get(&name).await.unwrap();
            assert!(inst.spec.agents.default.tool_policy.is_some(), "{name} carries its tool policy");
            assert!(!inst.spec.memory.unwrap().system_prompt.unwrap_or_default().trim().is_empty());
            assert!(
                h.api::<SympoziumSchedule>().get_opt(&format!("{name}-schedule")).await.unwrap().is_some()
            );
        }
    }
    assert_eq!(total, 14, "3 platform + 2 devops + 7 developer + 2 observability personas");
    assert_eq!(h.names::<SympoziumInstance>("sympozium.ai/persona-pack").await.len(), total);
}

#[tokio::test]
async fn failing_personas_are_reported_and_a_users_instance_is_never_taken_over() {
    let h = harness("pack-error").await;
    let mine = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
        "metadata": {"name": "team-a"}, "spec": {"agents": {"default": {"model": "my-model"}}}});
    h.api::<SympoziumInstance>()
        .patch("team-a", &PatchParams::apply("user").force(), &Patch::Apply(&mine))
        .await
        .unwrap();
    let persona = |name: &str, channels: Value| {
        json!({"name": name, "systemPrompt": "p", "channels": channels,
        "schedule": {"type": "sweep", "interval": "1h", "task": "t"}})
    };
    let pack = |b_channels: Value| {
        json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "PersonaPack",
        "metadata": {"name": "team"}, "spec": {"enabled": true, "personas": [
            persona("a", json!([])), persona("b", b_channels), persona("c", json!([]))]}})
    };
    h.apply_pack(&pack(json!(["irc"]))).await;

    let failed = h
        .pack_where("team", "pack Error", |p| {
            p.status.as_ref().is_some_and(|s| s.phase.as_deref() == Some("Error"))
        })
        .await;
    let status = failed.status.unwrap();
    assert_eq!((status.persona_count, status.installed_count), (3, 1), "c is installed regardless");
    assert_eq!(status.installed_personas[0].name, "c");
    let ready = &status.conditions[0];
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "PersonaFailed"));
    assert!(
        ready
            .message
            .contains("persona a: SympoziumInstance/team-a already exists and is not managed by this pack"),
        "{}",
        ready.message
    );
    assert!(ready.message.contains("persona b: channels: unknown channel type \"irc\""), "{}", ready.message);
    let untouched = h.api::<SympoziumInstance>().get("team-a").await.unwrap();
    assert!(untouched.owner_references().is_empty() && untouched.labels().is_empty());
    assert_eq!(untouched.spec.agents.default.model, "my-model");
    assert!(h.api::<SympoziumSchedule>().get_opt("team-a-schedule").await.unwrap().is_none());
    assert!(h.api::<SympoziumInstance>().get_opt("team-b").await.unwrap().is_none());

    // Fixing both problems converges (the retry backoff picks it up).
    h.api::<SympoziumInstance>().delete("team-a", &DeleteParams::default()).await.unwrap();
    h.apply_pack(&pack(json!(["slack"]))).await;
    h.ready("team", 3).await;
    let b = h.api::<SympoziumInstance>().get("team-b").await.unwrap();
    assert_eq!(b.spec.channels[0].type_.as_str(), "slack");
}
