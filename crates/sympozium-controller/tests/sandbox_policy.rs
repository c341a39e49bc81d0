//! The sandbox a policy requires, and the timeout sandboxed runs keep, on the real test
//! control plane (no admission webhook: the controller enforces the policy itself).
//!
//! The built-in `restrictive` policy, as shipped, requires the sandbox container: a run of
//! an instance without one fails at once, naming the fields to set; a PersonaPack with
//! `spec.sandbox.enabled` stamps out instances whose runs get the container and start. A
//! sandboxed run that outlives its instance's `runTimeout` fails with the limit in seconds,
//! in agent-sandbox mode (a `Sandbox`) and with the sandbox container (a Job) alike.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde::Deserialize;
use serde_json::{Value, json};
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_controller::agentrun::sandbox::sandbox_resource;
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::{agentrun, instance, personapack};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::{TestPlane, wait_for};

const WAIT: Duration = Duration::from_secs(60);

fn sympozium(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "sympozium.ai".into(),
        version: "v1alpha1".into(),
        api_version: "sympozium.ai/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

async fn apply(client: &Client, ns: &str, kind: &str, plural: &str, name: &str, spec: Value) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &sympozium(kind, plural));
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec});
    api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&body)).await.unwrap();
}

async fn run(client: &Client, ns: &str, name: &str, instance: &str) {
    run_with(client, ns, name, instance, json!({})).await;
}

async fn run_with(client: &Client, ns: &str, name: &str, instance: &str, extra: Value) {
    let mut spec = json!({"instanceRef": instance, "agentId": "primary", "sessionKey": "", "task": "audit the cluster",
        "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "team-key"}});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    apply(client, ns, "AgentRun", "agentruns", name, spec).await;
}

/// The built-in policies, applied as shipped.
async fn builtin_policies(client: &Client, ns: &str) {
    let path = sympozium_testkit::repo_root().join("deploy/builtin/sympoziumpolicies.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v = Value::deserialize(doc).unwrap();
        let name = v["metadata"]["name"].as_str().unwrap().to_string();
        apply(client, ns, "SympoziumPolicy", "sympoziumpolicies", &name, v["spec"].clone()).await;
    }
}

async fn finished(runs: &Api<AgentRun>, name: &str, timeout: Duration) -> AgentRun {
    let done = wait_for(runs, name, "the run Failed", timeout, |r: Option<&AgentRun>| {
        r.and_then(|r| r.status.as_ref()?.phase) == Some(AgentRunPhase::Failed)
    })
    .await;
    match done {
        Ok(run) => run,
        Err(e) => panic!("{e}; the run now: {:?}", runs.get(name).await.map(|r| r.status)),
    }
}

fn error_of(run: &AgentRun) -> String {
    run.status.as_ref().and_then(|s| s.error.clone()).unwrap_or_default()
}

#[tokio::test]
async fn restrictive_requires_a_sandbox_that_persona_packs_can_turn_on() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "sandbox-policy").await.unwrap().name().to_string();
    let settings = Settings { image_tag: "test".into(), ..Default::default() };
    let ctx = Arc::new(Context::new(client.clone(), settings, Metrics::default(), Some(ns.clone()), "test"));
    let tasks = [
        tokio::spawn(agentrun::run(ctx.clone())),
        tokio::spawn(instance::run(ctx.clone())),
        tokio::spawn(personapack::run(ctx.clone())),
    ];
    builtin_policies(&client, &ns).await;
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);

    // An instance under `restrictive` without the sandbox container: its run is refused
    // before anything starts, and the message says which field turns the sandbox on.
    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "sympoziuminstances",
        "bare",
        json!({"agents": {"default": {"model": "gpt-4o"}}, "policyRef": "restrictive",
               "authRefs": [{"provider": "openai", "secret": "team-key"}]}),
    )
    .await;
    run(&client, &ns, "bare-run", "bare").await;
    let refused = finished(&runs, "bare-run", WAIT).await;
    let error = error_of(&refused);
    assert!(
        error.contains("sandbox is required by policy \"restrictive\" (sandboxPolicy.required)"),
        "{error}"
    );
    assert!(error.contains("spec.agents.default.sandbox.enabled"), "{error}");
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    assert!(jobs.get_opt("bare-run").await.unwrap().is_none(), "nothing ran");

    // A team under the same policy that turns the sandbox on: every stamped-out instance
    // carries it, and a run of one gets the `sandbox` container and starts.
    apply(
        &client,
        &ns,
        "PersonaPack",
        "personapacks",
        "ops-team",
        json!({"enabled": true, "policyRef": "restrictive", "authRefs": [{"provider": "openai", "secret": "team-key"}],
               "sandbox": {"enabled": true, "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}}},
               "personas": [{"name": "auditor", "systemPrompt": "You audit clusters."},
                            {"name": "fixer", "systemPrompt": "You fix clusters."}]}),
    )
    .await;
    let instances: Api<SympoziumInstance> = Api::namespaced(client.clone(), &ns);
    for persona in ["auditor", "fixer"] {
        let name = format!("ops-team-{persona}");
        let stamped =
            wait_for(&instances, &name, "the stamped instance", WAIT, |i: Option<&SympoziumInstance>| {
                i.is_some()
            })
            .await
            .unwrap();
        let sandbox = stamped.spec.agents.default.sandbox.clone().expect("the pack's sandbox");
        assert!(sandbox.enabled, "{name}");
        assert_eq!(stamped.spec.policy_ref.as_deref(), Some("restrictive"));
    }
    // Its own skills, so it does not wait for the persona's memory server (which needs a
    // volume this plane cannot provision).
    run_with(&client, &ns, "team-run", "ops-team-auditor", json!({"skills": [{"skillPackRef": "k8s-ops"}]}))
        .await;
    let job = wait_for(&jobs, "team-run", "the run's Job", WAIT, |j: Option<&Job>| j.is_some()).await;
    let job = match job {
        Ok(j) => j,
        Err(e) => panic!("{e}; run status: {:?}", runs.get("team-run").await.unwrap().status),
    };
    let pod = job.spec.unwrap().template.spec.unwrap();
    let sandbox = pod.containers.iter().find(|c| c.name == "sandbox").expect("the sandbox container");
    let limits = sandbox.resources.clone().unwrap().limits.unwrap();
    assert_eq!((limits["cpu"].0.as_str(), limits["memory"].0.as_str()), ("500m", "256Mi"));
    let started = runs.get("team-run").await.unwrap();
    assert!(
        !error_of(&started).contains("sandbox is required"),
        "the pack's run is admitted: {:?}",
        started.status
    );
    for t in tasks {
        t.abort();
    }
}

#[tokio::test]
async fn sandboxed_runs_fail_at_their_instances_run_timeout() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let crds = sympozium_testkit::repo_root()
        .join("crates/sympozium-controller/tests/fixtures/agent-sandbox-crds.yaml");
    plane.kubectl(&["apply", "--server-side", "-f", crds.to_str().unwrap()]).unwrap();
    plane
        .kubectl(&["wait", "--for=condition=Established", "--timeout=60s", "-f", crds.to_str().unwrap()])
        .unwrap();
    let ns = plane.namespace(&client, "sandbox-timeout").await.unwrap().name().to_string();
    let ctx = Arc::new(
        Context::new(client.clone(), Settings::default(), Metrics::default(), Some(ns.clone()), "test")
            .with_agent_sandbox(true),
    );
    let tasks = [tokio::spawn(agentrun::run(ctx.clone()))];
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);

    // Agent-sandbox mode: the run's Sandbox is created, its pod never finishes (no
    // sandbox controller here), and the instance's 4 s runTimeout ends it.
    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "sympoziuminstances",
        "isolated",
        json!({"agents": {"default": {"model": "gpt-4o", "runTimeout": "4s",
               "agentSandbox": {"enabled": true, "runtimeClass": "gvisor"}}}}),
    )
    .await;
    run(&client, &ns, "slow-isolated", "isolated").await;
    let sandboxes: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &sandbox_resource());
    wait_for(&sandboxes, "sb-slow-isolated", "the run's Sandbox", WAIT, |s: Option<&DynamicObject>| {
        s.is_some()
    })
    .await
    .unwrap();
    let done = finished(&runs, "slow-isolated", WAIT).await;
    assert_eq!(done.spec.timeout.as_deref(), Some("4s"), "the instance's runTimeout is the run's");
    assert_eq!(error_of(&done), "agent sandbox timed out after 4s (spec.timeout)");

    // The sandbox container: the run's Job pod cannot be placed (its node selector matches
    // no node), so the run outlives its instance's 3 s runTimeout.
    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "sympoziuminstances",
        "boxed",
        json!({"agents": {"default": {"model": "gpt-4o", "runTimeout": "3s", "sandbox": {"enabled": true}}}}),
    )
    .await;
    let nowhere = json!({"model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "team-key",
        "nodeSelector": {"sympozium.ai/test-no-such-node": "true"}}});
    run_with(&client, &ns, "slow-boxed", "boxed", nowhere).await;
    let done = finished(&runs, "slow-boxed", WAIT).await;
    assert_eq!(done.spec.timeout.as_deref(), Some("3s"));
    assert_eq!(error_of(&done), "timed out after 3s (spec.timeout)");
    for t in tasks {
        t.abort();
    }
}
