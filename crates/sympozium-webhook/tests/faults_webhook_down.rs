//! The admission webhook down: the real `sympozium-webhook` binary, registered with the
//! rules and failure policies of the shipped manifest (deploy/webhook/webhook.yaml), is
//! killed. AgentRun creation then fails closed with an error naming the webhook; every other
//! reviewed kind behaves as its hook's `failurePolicy` says (kinds without a hook are untouched); the
//! controller can still record run outcomes (status is not reviewed). Once the webhook is
//! back, creation works again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{ValidatingWebhook, ValidatingWebhookConfiguration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::api::{DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sympozium_testkit::TestPlane;
use sympozium_webhook::tls;

struct Webhook(Child);

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_webhook(plane: &TestPlane, dir: &std::path::Path, port: u16, system: &str) -> Webhook {
    let child = Command::new(env!("CARGO_BIN_EXE_sympozium-webhook"))
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .args(["--cert-file", dir.join("tls.crt").to_str().unwrap()])
        .args(["--key-file", dir.join("tls.key").to_str().unwrap()])
        .args(["--system-namespace", system])
        .args(["--kubeconfig", plane.kubeconfig().to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Webhook(child)
}

/// The shipped configuration's hooks, pointed at `port` and narrowed to `ns`: names, rules,
/// failure policies and timeouts stay as shipped.
fn shipped_hooks(port: u16, ca: &str, ns: &str) -> Vec<ValidatingWebhook> {
    let docs = support::yaml_documents(&support::repo().join("deploy/webhook/webhook.yaml"));
    let config = docs.into_iter().find(|d| d["kind"] == "ValidatingWebhookConfiguration").unwrap();
    let config: ValidatingWebhookConfiguration = serde_json::from_value(config).unwrap();
    let mut hooks = config.webhooks.unwrap();
    for hook in &mut hooks {
        let path = hook.client_config.service.take().unwrap().path.unwrap();
        hook.client_config.url = Some(format!("https://127.0.0.1:{port}{path}"));
        hook.client_config.ca_bundle = Some(ByteString(ca.as_bytes().to_vec()));
        hook.namespace_selector = Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "kubernetes.io/metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![ns.into()]),
            }]),
            ..Default::default()
        });
    }
    hooks
}

fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": kind,
        "metadata": {"name": name}, "spec": spec}))
    .unwrap()
}

async fn create(client: &Client, ns: &str, kind: &str, name: &str, spec: Value) -> Result<(), String> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &support::resource(kind));
    api.create(&PostParams::default(), &object(kind, name, spec)).await.map(|_| ()).map_err(|e| e.to_string())
}

fn run_spec(sandboxed: bool) -> Value {
    json!({"instanceRef": "agent", "agentId": "primary", "sessionKey": "", "task": "t",
           "model": {"provider": "openai", "model": "m", "authSecretRef": "key"},
           "sandbox": {"enabled": sandboxed}})
}

/// A valid object of each kind the shipped hooks review, and of kinds they do not.
fn valid(kind: &str) -> Value {
    match kind {
        "AgentRun" => run_spec(true),
        "SympoziumInstance" => json!({"agents": {"default": {"model": "m"}}}),
        "PersonaPack" => json!({"enabled": false, "personas": [{"name": "p", "systemPrompt": "You help."}]}),
        "SkillPack" => json!({"skills": [{"name": "s", "content": "# S"}]}),
        "MCPServer" => {
            json!({"transportType": "http", "url": "https://mcp.example.com/mcp", "toolsPrefix": "ex"})
        }
        "SympoziumSchedule" => json!({"instanceRef": "agent", "schedule": "0 8 * * 1", "task": "t"}),
        other => panic!("no valid {other}"),
    }
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "agentruns" => "AgentRun",
        "sympoziuminstances" => "SympoziumInstance",
        "personapacks" => "PersonaPack",
        "skillpacks" => "SkillPack",
        "mcpservers" => "MCPServer",
        other => panic!("the shipped webhook reviews {other}, which this test does not know"),
    }
}

/// Waits until the webhook reviews runs again (the policy's refusal comes back).
async fn until_reviewing(client: &Client, ns: &str) {
    let runs: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &support::resource("AgentRun"));
    let dry = PostParams { dry_run: true, ..Default::default() };
    for _ in 0..120 {
        if let Err(e) = runs.create(&dry, &object("AgentRun", "probe", run_spec(false))).await
            && e.to_string().contains("sandbox is required by policy")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the webhook never reviewed a run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_webhook_down_runs_fail_closed_and_other_kinds_follow_their_policy() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "faults-webhook").await.unwrap().name().to_string();
    let policy = object("SympoziumPolicy", "strict", json!({"sandboxPolicy": {"required": true}}));
    let policy_resource = kube::api::ApiResource {
        plural: "sympoziumpolicies".into(),
        kind: "SympoziumPolicy".into(),
        ..support::resource("AgentRun")
    };
    let policies: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &policy_resource);
    policies.create(&PostParams::default(), &policy).await.unwrap();
    create(
        &client,
        &ns,
        "SympoziumInstance",
        "agent",
        json!({"agents": {"default": {"model": "m"}}, "policyRef": "strict"}),
    )
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let generated = tls::generate(&["127.0.0.1".into()]).unwrap();
    std::fs::write(dir.path().join("tls.crt"), &generated.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &generated.key_pem).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut webhook = start_webhook(&plane, dir.path(), port, &ns);

    let hooks = shipped_hooks(port, &generated.ca_pem, &ns);
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let config_name = format!("sympozium-faults-{ns}");
    let config = ValidatingWebhookConfiguration {
        metadata: ObjectMeta { name: Some(config_name.clone()), ..Default::default() },
        webhooks: Some(hooks.clone()),
    };
    configs.create(&PostParams::default(), &config).await.unwrap();
    until_reviewing(&client, &ns).await;
    create(&client, &ns, "AgentRun", "before", run_spec(true))
        .await
        .expect("admitted while the webhook is up");

    // Down: kill -9, as a crash or an evicted pod would leave it.
    webhook.0.kill().unwrap();
    webhook.0.wait().unwrap();

    let refused = create(&client, &ns, "AgentRun", "during", run_spec(true)).await.unwrap_err();
    assert!(refused.contains("failed calling webhook \"vagentpod.sympozium.ai\""), "{refused}");
    assert!(refused.contains("connection refused"), "the error says why: {refused}");
    let runs: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &support::resource("AgentRun"));
    assert!(runs.get_opt("during").await.unwrap().is_none(), "nothing was created");
    // An edit of a run is reviewed too, and refused alike.
    let edit = runs
        .patch("before", &PatchParams::default(), &Patch::Merge(json!({"spec": {"task": "changed"}})))
        .await
        .unwrap_err()
        .to_string();
    assert!(edit.contains("vagentpod.sympozium.ai"), "{edit}");
    // The controller still records outcomes: the status subresource is not reviewed.
    runs.patch_status(
        "before",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
    )
    .await
    .expect("status writes go through while the webhook is down");

    for hook in &hooks {
        let resources = hook.rules.as_ref().unwrap()[0].resources.clone().unwrap();
        let kind = kind_of(&resources[0]);
        if kind == "AgentRun" {
            continue;
        }
        let result =
            create(&client, &ns, kind, &format!("{}-during", kind.to_lowercase()), valid(kind)).await;
        match hook.failure_policy.as_deref() {
            Some("Ignore") => assert!(result.is_ok(), "{kind}: failurePolicy Ignore admits: {result:?}"),
            _ => {
                let Err(e) = result else {
                    panic!("{kind}: failurePolicy Fail, yet admitted while the webhook is down");
                };
                assert!(e.contains(&format!("failed calling webhook \"{}\"", hook.name)), "{kind}: {e}");
            }
        }
    }
    // Kinds no hook reviews are untouched by the outage.
    create(&client, &ns, "SympoziumSchedule", "weekly", valid("SympoziumSchedule")).await.unwrap();

    // Back: same port and certificate; creation works again (and is reviewed again).
    let _webhook = start_webhook(&plane, dir.path(), port, &ns);
    until_reviewing(&client, &ns).await;
    create(&client, &ns, "AgentRun", "after", run_spec(true))
        .await
        .expect("admitted once the webhook is back");
    for hook in &hooks {
        let kind = kind_of(&hook.rules.as_ref().unwrap()[0].resources.clone().unwrap()[0]);
        if kind != "AgentRun" {
            create(&client, &ns, kind, &format!("{}-after", kind.to_lowercase()), valid(kind)).await.unwrap();
        }
    }
    configs.delete(&config_name, &DeleteParams::default()).await.unwrap();
}
