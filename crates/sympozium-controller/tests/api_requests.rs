//! Reconciles read the controller's watch caches, not the API server. The controller runs as
//! its own process; the requests it sends are read from its `sympozium_api_requests_total`
//! counter (by verb and resource) on `/metrics`:
//!
//! - instances at steady state, each reconciled again (an annotation edit), send no `get`,
//!   no `list` and no re-apply of an unchanged child at all (the previous controller sent seven per reconcile: the status, two
//!   label lists, the runs, and a lookup for every child that should not exist);
//! - a burst of new instances adds each finalizer once and writes each status once: the
//!   reconcile that follows the controller's own writes, handed a cached copy those writes
//!   already replaced, waits for the watch instead of repeating them (half the statuses of a
//!   burst were written twice, the second time refused with a conflict);
//! - a burst of runs polled through their result grace period reads its Jobs and pods from
//!   the cache (the previous controller fetched the Job and listed the pods on every poll,
//!   several times per run), the runs read their instance from the instance controller's
//!   cache, and each finished run is cleaned up (grants revoked, Job stopped) once; a run's
//!   status is written from the cached copy (read again only after a conflict), and a new
//!   run's finalizer goes in the same patch as the spec it inherits; its policy and skill
//!   packs come from the policy and skill pack controllers' caches;
//! - a PersonaPack whose members change (their status, annotations) is reconciled again but
//!   does not re-apply the instances and schedules it already stamped out; a member whose
//!   spec someone else edited is put back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::{AgentRun, PersonaPack, SympoziumInstance};
use sympozium_testkit::TestPlane;

const WAIT: Duration = Duration::from_secs(180);

struct Controller {
    child: Child,
    metrics: String,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(plane: &TestPlane, ns: &str) -> Controller {
    let port = free_port();
    let bin = std::env::var("SYMPOZIUM_CONTROLLER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_sympozium-controller").to_string());
    let child = Command::new(bin)
        .args(["--kubeconfig", plane.kubeconfig().to_str().unwrap()])
        .args(["--watch-namespace", ns, "--system-namespace", ns])
        .args(["--metrics-bind-address", &format!("127.0.0.1:{port}")])
        .args(["--health-probe-bind-address", &format!("127.0.0.1:{}", free_port())])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Controller { child, metrics: format!("http://127.0.0.1:{port}/metrics") }
}

impl Controller {
    async fn scrape(&self) -> String {
        for _ in 0..400 {
            if let Ok(r) = reqwest::get(&self.metrics).await
                && let Ok(text) = r.text().await
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the controller's /metrics did not answer");
    }

    /// API requests sent so far, by `(verb, resource)`.
    async fn requests(&self) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for line in self.scrape().await.lines().filter(|l| l.starts_with("sympozium_api_requests_total{")) {
            let label = |name: &str| {
                let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                line[start..].split('"').next().unwrap().to_string()
            };
            let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            out.insert((label("verb"), label("resource")), n as u64);
        }
        out
    }

    async fn reconciles(&self, controller: &str) -> u64 {
        let prefix = format!("sympozium_reconciles_total{{controller=\"{controller}\"}}");
        self.scrape()
            .await
            .lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    }

    /// Waits (bounded) until no reconcile of `controller` has run for two samples in a row.
    async fn settle(&self, controller: &str) {
        let mut last = self.reconciles(controller).await;
        let mut quiet = 0;
        for _ in 0..120 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = self.reconciles(controller).await;
            quiet = if now == last { quiet + 1 } else { 0 };
            last = now;
            if quiet >= 3 {
                return;
            }
        }
        panic!("{controller} reconciles did not settle");
    }
}

/// Requests of `verb` (per resource) made between two snapshots.
fn delta(
    before: &BTreeMap<(String, String), u64>,
    after: &BTreeMap<(String, String), u64>,
    verb: &str,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|((v, _), _)| v == verb)
        .map(|((_, r), n)| (r.clone(), n - before.get(&(verb.to_string(), r.clone())).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn instance(name: &str, memory: bool) -> serde_json::Value {
    let skills = if memory { json!([{"skillPackRef": "memory"}]) } else { json!([]) };
    json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance", "metadata": {"name": name},
           "spec": {"agents": {"default": {"model": "gpt-4o"}}, "skills": skills}})
}

fn running(i: Option<&SympoziumInstance>) -> bool {
    i.and_then(|i| i.status.as_ref()?.phase.clone()).as_deref() == Some("Running")
}

#[tokio::test]
async fn reconciling_instances_at_steady_state_reads_only_caches() {
    const INSTANCES: usize = 6;
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "reqs-inst").await.unwrap();
    let ns = ns.name().to_string();
    let ctl = start(&plane, &ns);

    let instances: Api<SympoziumInstance> = Api::namespaced(client.clone(), &ns);
    for i in 0..INSTANCES {
        // Every other instance runs a memory server: more children to converge.
        let name = format!("agent-{i}");
        instances
            .patch(&name, &PatchParams::apply("test"), &Patch::Apply(instance(&name, i % 2 == 0)))
            .await
            .unwrap();
    }
    for i in 0..INSTANCES {
        sympozium_testkit::wait_for(&instances, &format!("agent-{i}"), "instance Running", WAIT, running)
            .await
            .unwrap();
    }
    ctl.settle("sympoziuminstance").await;

    let before = ctl.requests().await;
    let reconciled_before = ctl.reconciles("sympoziuminstance").await;
    for i in 0..INSTANCES {
        let touch = json!({"metadata": {"annotations": {"test.sympozium.ai/touched": "1"}}});
        instances.patch(&format!("agent-{i}"), &PatchParams::default(), &Patch::Merge(&touch)).await.unwrap();
    }
    let mut reconciled = 0;
    for _ in 0..600 {
        reconciled = ctl.reconciles("sympoziuminstance").await - reconciled_before;
        if reconciled >= INSTANCES as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(reconciled >= INSTANCES as u64, "every touched instance was reconciled ({reconciled})");
    ctl.settle("sympoziuminstance").await;
    let after = ctl.requests().await;

    let (gets, lists) = (delta(&before, &after, "get"), delta(&before, &after, "list"));
    eprintln!("{reconciled} reconciles: gets {gets:?}, lists {lists:?}");
    assert!(
        gets.is_empty() && lists.is_empty(),
        "{reconciled} steady-state reconciles of {INSTANCES} instances sent gets {gets:?} and lists {lists:?}"
    );
    // Nor do they re-send children that are as this controller last applied them.
    let patches = delta(&before, &after, "patch");
    for resource in ["deployments", "services", "networkpolicies", "secrets"] {
        let n = patches.get(resource).copied().unwrap_or(0);
        assert_eq!(n, 0, "{reconciled} steady-state reconciles re-applied {resource} {n} times: {patches:?}");
    }
    // The counter counts: the instances' watches and writes made since start-up are there.
    assert!(after.keys().any(|(v, r)| v == "watch" && r == "sympoziuminstances"), "{after:?}");
    assert!(after.keys().any(|(v, r)| v == "patch" && r == "sympoziuminstances/status"), "{after:?}");
}

#[tokio::test]
async fn a_burst_of_new_instances_writes_each_finalizer_and_status_once() {
    const INSTANCES: usize = 24;
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "reqs-burst").await.unwrap();
    let ns = ns.name().to_string();
    let ctl = start(&plane, &ns);
    ctl.scrape().await;
    let before = ctl.requests().await;

    let instances: Api<SympoziumInstance> = Api::namespaced(client.clone(), &ns);
    futures::future::join_all((0..INSTANCES).map(|i| {
        let instances = instances.clone();
        async move {
            let name = format!("agent-{i}");
            instances.patch(&name, &PatchParams::apply("test"), &Patch::Apply(instance(&name, false))).await
        }
    }))
    .await
    .into_iter()
    .for_each(|created| {
        created.unwrap();
    });
    for i in 0..INSTANCES {
        sympozium_testkit::wait_for(&instances, &format!("agent-{i}"), "instance Running", WAIT, running)
            .await
            .unwrap();
    }
    ctl.settle("sympoziuminstance").await;
    let after = ctl.requests().await;
    let patches = delta(&before, &after, "patch");
    eprintln!("{INSTANCES} new instances: patches {patches:?}");
    let finalizers = patches.get("sympoziuminstances").copied().unwrap_or(0) as usize;
    assert_eq!(
        finalizers, INSTANCES,
        "{INSTANCES} new instances were patched {finalizers} times: {patches:?}"
    );
    let statuses = patches.get("sympoziuminstances/status").copied().unwrap_or(0) as usize;
    assert_eq!(
        statuses, INSTANCES,
        "{INSTANCES} new instances' status was written {statuses} times: {patches:?}"
    );
    for i in 0..INSTANCES {
        let inst = instances.get(&format!("agent-{i}")).await.unwrap();
        assert_eq!(
            inst.finalizers()
                .iter()
                .filter(|f| f.as_str() == sympozium_api::labels::INSTANCE_FINALIZER)
                .count(),
            1,
            "{:?}",
            inst.finalizers()
        );
    }
}

#[tokio::test]
async fn polling_running_runs_reads_jobs_and_pods_from_the_cache() {
    const RUNS: usize = 12;
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "reqs-runs").await.unwrap();
    let ns = ns.name().to_string();
    let ctl = start(&plane, &ns);

    let instances: Api<SympoziumInstance> = Api::namespaced(client.clone(), &ns);
    // A policy and a skill (instructions only), so starting a run has both to look up.
    let apply = |kind: &str, plural: &str, body: serde_json::Value| {
        let (client, ns, kind, plural) = (client.clone(), ns.clone(), kind.to_string(), plural.to_string());
        async move {
            let resource = kube::discovery::ApiResource {
                group: "sympozium.ai".into(),
                version: "v1alpha1".into(),
                api_version: "sympozium.ai/v1alpha1".into(),
                plural,
                kind,
            };
            let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client, &ns, &resource);
            let name = body["metadata"]["name"].as_str().unwrap().to_string();
            api.patch(&name, &PatchParams::apply("test"), &Patch::Apply(body)).await.unwrap();
        }
    };
    apply(
        "SympoziumPolicy",
        "sympoziumpolicies",
        json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumPolicy",
        "metadata": {"name": "open"}, "spec": {}}),
    )
    .await;
    apply(
        "SkillPack",
        "skillpacks",
        json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SkillPack",
        "metadata": {"name": "notes"}, "spec": {"skills": [{"name": "notes", "content": "Keep notes."}]}}),
    )
    .await;
    let mut body = instance("agent", false);
    body["spec"]["policyRef"] = json!("open");
    body["spec"]["skills"] = json!([{"skillPackRef": "notes"}]);
    instances.patch("agent", &PatchParams::apply("test"), &Patch::Apply(body)).await.unwrap();
    sympozium_testkit::wait_for(&instances, "agent", "instance Running", WAIT, running).await.unwrap();
    let before = ctl.requests().await;

    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    // All at once, as a burst arrives: each run's reconciles then race the watch events of
    // their own writes.
    futures::future::join_all((0..RUNS).map(|n| {
        let runs = runs.clone();
        async move {
            let run: AgentRun = serde_json::from_value(json!({
                "apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "metadata": {"name": format!("run-{n}")},
                "spec": {"instanceRef": "agent", "agentId": "primary", "sessionKey": "",
                         "task": "t", "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "k"}}}))
            .unwrap();
            runs.create(&PostParams::default(), &run).await.unwrap();
        }
    }))
    .await;
    // The fake node completes each pod at once and serves no log, so every run is polled
    // through the 30 s result grace period before it settles from the exit code.
    for n in 0..RUNS {
        sympozium_testkit::wait_for(
            &runs,
            &format!("run-{n}"),
            "run settled",
            WAIT,
            |r: Option<&AgentRun>| {
                r.and_then(|r| r.status.as_ref()?.phase)
                    .is_some_and(|p| matches!(p, AgentRunPhase::Succeeded | AgentRunPhase::Failed))
            },
        )
        .await
        .unwrap();
    }
    // The reconciles a finished run still gets (its Job and pod going away) count too.
    ctl.settle("agentrun").await;
    let after = ctl.requests().await;
    let count = |verb: &str, resource: &str| {
        let key = (verb.to_string(), resource.to_string());
        after.get(&key).copied().unwrap_or(0) - before.get(&key).copied().unwrap_or(0)
    };
    let polls = ctl.reconciles("agentrun").await;
    // Creates are counted as sent: a reconcile acting on a copy of the run from before its
    // own Running write would send them again (and have them refused).
    assert_eq!(count("create", "jobs") as usize, RUNS, "one Job create per run: {after:?}");
    assert_eq!(count("create", "serviceaccounts") as usize, RUNS, "one ServiceAccount per run: {after:?}");
    // A Job the cache does not hold yet (just created) is fetched once; a pod the cache has
    // not seen after its Job finished is listed once. Fetching on every poll, as before,
    // is several per run.
    let (job_gets, pod_lists) = (count("get", "jobs"), count("list", "pods"));
    eprintln!("{RUNS} runs, {polls} agentrun reconciles: {job_gets} Job gets, {pod_lists} pod lists");
    assert!(
        ((job_gets + pod_lists) as usize) < RUNS,
        "{RUNS} runs ({polls} agentrun reconciles) fetched Jobs {job_gets} times and listed pods {pod_lists} times"
    );
    // Each run starts from its instance as the instance controller's cache holds it (the
    // previous controller fetched the instance for every run it started).
    let instance_gets = count("get", "sympoziuminstances");
    assert_eq!(instance_gets, 0, "{RUNS} runs fetched their instance {instance_gets} times");
    // Their policy and skill packs come from the policy and skill pack controllers' caches.
    for resource in ["sympoziumpolicies", "skillpacks"] {
        let gets = count("get", resource);
        assert_eq!(gets, 0, "{RUNS} runs fetched {resource} {gets} times");
    }
    // Status writes start from the run the controller's cache holds (or its last write
    // returned), reading the run only after a conflict; a new run gets its finalizer in the
    // same write as the spec it inherits. Before: 3.8 reads and 3 patches per run.
    let (run_gets, run_patches) = (count("get", "agentruns"), count("patch", "agentruns"));
    let per_run: Vec<String> = after
        .iter()
        .filter(|((_, r), _)| {
            r.starts_with("agentruns") || r == "jobs" || r == "serviceaccounts" || r == "events"
        })
        .map(|((v, r), n)| {
            format!(
                "{v} {r} {:.2}",
                (*n - before.get(&(v.clone(), r.clone())).copied().unwrap_or(0)) as f64 / RUNS as f64
            )
        })
        .collect();
    eprintln!("per run: {}", per_run.join(", "));
    assert!((run_gets as usize) < RUNS, "{RUNS} runs were read {run_gets} times");
    assert!((run_patches as usize) <= 2 * RUNS, "{RUNS} runs were patched {run_patches} times");
    // Running, its pod's name, the outcome: three writes, none of them repeated.
    let status_writes = count("update", "agentruns/status");
    assert!((status_writes as usize) <= 3 * RUNS, "{RUNS} runs' status was written {status_writes} times");
    // A finished run's grants are revoked and its Job stopped once, not again on every later
    // reconcile of the finished run (its Job's deletion, its pod's, its own status).
    for (verb, resource) in [
        ("list", "roles"),
        ("list", "rolebindings"),
        ("list", "clusterroles"),
        ("list", "clusterrolebindings"),
        ("delete", "jobs"),
    ] {
        let n = count(verb, resource) as usize;
        assert!(n <= RUNS, "{RUNS} finished runs sent {n} {verb} {resource}");
    }
}

#[tokio::test]
async fn member_changes_do_not_re_apply_a_packs_team() {
    const PERSONAS: usize = 3;
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "reqs-pack").await.unwrap();
    let ns = ns.name().to_string();
    let ctl = start(&plane, &ns);

    let personas: Vec<_> = (0..PERSONAS)
        .map(|i| {
            json!({"name": format!("p{i}"), "systemPrompt": format!("You are persona {i}."),
                   "schedule": {"type": "heartbeat", "interval": "1h", "task": "Check the cluster."}})
        })
        .collect();
    let pack = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "PersonaPack", "metadata": {"name": "team"},
                      "spec": {"enabled": true, "personas": personas}});
    let packs: Api<PersonaPack> = Api::namespaced(client.clone(), &ns);
    packs.patch("team", &PatchParams::apply("test"), &Patch::Apply(pack)).await.unwrap();
    sympozium_testkit::wait_for(&packs, "team", "pack Ready", WAIT, |p: Option<&PersonaPack>| {
        p.and_then(|p| p.status.as_ref())
            .is_some_and(|s| s.phase.as_deref() == Some("Ready") && s.installed_count as usize == PERSONAS)
    })
    .await
    .unwrap();
    let instances: Api<SympoziumInstance> = Api::namespaced(client.clone(), &ns);
    let names: Vec<String> = (0..PERSONAS).map(|i| format!("team-p{i}")).collect();
    for name in &names {
        sympozium_testkit::wait_for(&instances, name, "member Running", WAIT, running).await.unwrap();
    }
    ctl.settle("personapack").await;
    ctl.settle("sympoziuminstance").await;
    let (before, reconciles_before) = (ctl.requests().await, ctl.reconciles("personapack").await);

    // Every member changes (as their own status writes change them); the pack hears of each.
    for name in &names {
        let note = json!({"metadata": {"annotations": {"example.com/touched": "yes"}}});
        instances.patch(name, &PatchParams::default(), &Patch::Merge(&note)).await.unwrap();
    }
    ctl.settle("personapack").await;
    let after = ctl.requests().await;
    let reconciled = ctl.reconciles("personapack").await - reconciles_before;
    assert!(reconciled >= 1, "the pack was reconciled on its members' changes");
    let patches = delta(&before, &after, "patch");
    for resource in ["sympoziuminstances", "sympoziumschedules"] {
        let n = patches.get(resource).copied().unwrap_or(0);
        assert_eq!(n, 0, "{reconciled} pack reconciles re-applied {resource} {n} times: {patches:?}");
    }

    // Someone else's edit of a member's spec is put back.
    let edit = json!({"spec": {"agents": {"default": {"model": "edited-model"}}}});
    instances.patch(&names[0], &PatchParams::default(), &Patch::Merge(&edit)).await.unwrap();
    let want = instances.get(&names[1]).await.unwrap().spec.agents.default.model;
    assert_ne!(want, "edited-model");
    sympozium_testkit::wait_for(
        &instances,
        &names[0],
        "the pack's model restored",
        WAIT,
        |i: Option<&SympoziumInstance>| i.is_some_and(|i| i.spec.agents.default.model == want),
    )
    .await
    .unwrap();
}
