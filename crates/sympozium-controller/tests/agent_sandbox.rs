//! Agent-sandbox mode on the real test control plane (with the agent-sandbox CRDs): an
//! instance's warm pool becomes a SandboxTemplate and SandboxWarmPool, its runs claim a warm
//! sandbox with their task injected, runs without a pool get a Sandbox under their
//! RuntimeClass, and both are released when the run finishes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_bus::{Bus, topics};
use sympozium_controller::agentrun::sandbox::{extension_resource, sandbox_resource};
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::{agentrun, instance};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::nats::NatsServer;
use sympozium_testkit::{TestPlane, wait_for, wait_until_gone};

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

fn run_spec(instance: &str) -> Value {
    json!({"instanceRef": instance, "agentId": "primary", "sessionKey": "", "task": "scan for root containers",
           "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": ""}})
}

#[tokio::test]
async fn warm_pools_claims_and_sandboxes() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let crds = sympozium_testkit::repo_root()
        .join("crates/sympozium-controller/tests/fixtures/agent-sandbox-crds.yaml");
    plane.kubectl(&["apply", "--server-side", "-f", crds.to_str().unwrap()]).unwrap();
    plane
        .kubectl(&["wait", "--for=condition=Established", "--timeout=60s", "-f", crds.to_str().unwrap()])
        .unwrap();
    let ns = plane.namespace(&client, "sandbox").await.unwrap().name().to_string();
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let ctx = Arc::new(
        Context::new(client.clone(), Settings::default(), Metrics::default(), Some(ns.clone()), "test")
            .with_agent_sandbox(true),
    );
    let tasks = [
        tokio::spawn(agentrun::run(ctx.clone())),
        tokio::spawn(instance::run(ctx.clone())),
        tokio::spawn(agentrun::completion::run(
            Arc::new(Context::with_defaults(client.clone(), None)),
            bus.clone(),
        )),
    ];

    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "sympoziuminstances",
        "pooled",
        json!({"agents": {"default": {"model": "gpt-4o",
        "agentSandbox": {"enabled": true, "runtimeClass": "gvisor", "warmPool": {"size": 2,
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}}}}}}),
    )
    .await;
    let template =
        exists(&client, &ns, &extension_resource("SandboxTemplate", "sandboxtemplates"), "wp-pooled").await;
    assert_eq!(template.data["spec"]["podTemplate"]["spec"]["runtimeClassName"], "gvisor");
    assert_eq!(template.data["spec"]["podTemplate"]["spec"]["containers"][0]["name"], "agent");
    assert_eq!(template.data["spec"]["envVarsInjectionPolicy"], "Overrides");
    let resources = &template.data["spec"]["podTemplate"]["spec"]["containers"][0]["resources"];
    assert_eq!(resources["requests"]["cpu"], "500m", "the pool's resources size the agent");
    assert_eq!(resources["limits"]["memory"], "2Gi");
    let pool =
        exists(&client, &ns, &extension_resource("SandboxWarmPool", "sandboxwarmpools"), "wp-pooled").await;
    assert_eq!(pool.data["spec"], json!({"replicas": 2, "sandboxTemplateRef": {"name": "wp-pooled"}}));
    // The account the pooled pods run as exists (else admission refuses every pooled pod),
    // without a token.
    let sa_name =
        template.data["spec"]["podTemplate"]["spec"]["serviceAccountName"].as_str().unwrap().to_string();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let sa =
        wait_for(&accounts, &sa_name, "the pool's ServiceAccount", WAIT, |a: Option<&ServiceAccount>| {
            a.is_some()
        })
        .await
        .unwrap();
    assert_eq!(sa.automount_service_account_token, Some(false));

    // A run of the pooled instance claims a warm sandbox and carries its task into it.
    apply(&client, &ns, "AgentRun", "agentruns", "r-pool", run_spec("pooled")).await;
    let claim =
        exists(&client, &ns, &extension_resource("SandboxClaim", "sandboxclaims"), "sbc-r-pool").await;
    assert_eq!(claim.data["spec"]["sandboxTemplateRef"]["name"], "wp-pooled");
    let env = claim.data["spec"]["env"].as_array().unwrap();
    assert!(env.iter().any(|e| e["name"] == "TASK" && e["value"] == "scan for root containers"), "{env:?}");
    assert!(env.iter().any(|e| e["name"] == "AGENT_RUN_ID" && e["value"] == "r-pool"));

    // Without a pool: a Sandbox of its own under the instance's RuntimeClass.
    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "sympoziuminstances",
        "plain",
        json!({"agents": {"default": {"model": "gpt-4o",
        "agentSandbox": {"enabled": true, "runtimeClass": "kata"}}}}),
    )
    .await;
    apply(&client, &ns, "AgentRun", "agentruns", "r-plain", run_spec("plain")).await;
    let sandbox = exists(&client, &ns, &sandbox_resource(), "sb-r-plain").await;
    assert_eq!(sandbox.data["spec"]["podTemplate"]["spec"]["runtimeClassName"], "kata");
    assert_eq!(sandbox.metadata.labels.unwrap()["sympozium.ai/agent-sandbox"], "true");
    // The full pod of the Job path: containers, hardening, volumes, the run's identity.
    let pod = &sandbox.data["spec"]["podTemplate"]["spec"];
    let names: Vec<_> = pod["containers"].as_array().unwrap().iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, [json!("agent"), json!("ipc-bridge")]);
    for c in pod["containers"].as_array().unwrap() {
        let sc = &c["securityContext"];
        assert_eq!(
            (&sc["readOnlyRootFilesystem"], &sc["allowPrivilegeEscalation"]),
            (&json!(true), &json!(false))
        );
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    }
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["serviceAccountName"], "sympozium-run-r-plain");
    let volumes: Vec<_> = pod["volumes"].as_array().unwrap().iter().map(|v| v["name"].clone()).collect();
    for v in ["workspace", "ipc", "tmp", "skills"] {
        assert!(volumes.contains(&json!(v)), "volume {v}: {volumes:?}");
    }
    let agent_env = pod["containers"][0]["env"].as_array().unwrap();
    assert!(agent_env.iter().any(|e| e["name"] == "TASK" && e["value"] == "scan for root containers"));
    assert_eq!(
        sandbox.data["spec"]["podTemplate"]["metadata"]["labels"]["sympozium.ai/agent-run"],
        "r-plain"
    );

    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    for (run, field) in [("r-pool", "sbc-r-pool"), ("r-plain", "sb-r-plain")] {
        let r = wait_for(&runs, run, "Running", WAIT, |r: Option<&AgentRun>| {
            r.and_then(|r| r.status.as_ref()?.phase) == Some(AgentRunPhase::Running)
        })
        .await
        .unwrap();
        let status = r.status.unwrap();
        assert_eq!(status.sandbox_claim_name.or(status.sandbox_name).as_deref(), Some(field));
        let meta = BTreeMap::from([
            ("agentRunID".to_string(), run.to_string()),
            ("namespace".to_string(), ns.clone()),
        ]);
        bus.publish(
            topics::AGENT_RUN_COMPLETED,
            meta,
            &json!({"status": "success", "response": "no root containers"}),
        )
        .await
        .unwrap();
        wait_for(&runs, run, "Succeeded", WAIT, |r: Option<&AgentRun>| {
            r.and_then(|r| r.status.as_ref()?.phase) == Some(AgentRunPhase::Succeeded)
        })
        .await
        .unwrap();
    }
    let claims: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &extension_resource("SandboxClaim", "sandboxclaims"));
    wait_until_gone(&claims, "sbc-r-pool", "released claim", WAIT).await.unwrap();
    let sandboxes: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &sandbox_resource());
    wait_until_gone(&sandboxes, "sb-r-plain", "released sandbox", WAIT).await.unwrap();

    // Dropping the warm pool from the instance removes it.
    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "sympoziuminstances",
        "pooled",
        json!({"agents": {"default": {"model": "gpt-4o",
        "agentSandbox": {"enabled": true, "runtimeClass": "gvisor"}}}}),
    )
    .await;
    let pools: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &extension_resource("SandboxWarmPool", "sandboxwarmpools"));
    wait_until_gone(&pools, "wp-pooled", "removed warm pool", WAIT).await.unwrap();
    wait_until_gone(&accounts, &sa_name, "the pool's ServiceAccount", WAIT).await.unwrap();
    for t in tasks {
        t.abort();
    }
}
