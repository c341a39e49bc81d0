//! The webhook behind the real kube-apiserver: the test control plane calls it over TLS
//! (a ValidatingWebhookConfiguration with our CA pointing at the webhook on loopback), so
//! `kubectl apply` of a run the policy forbids is refused with our message, a compliant
//! run is admitted, and a run whose instance is gone can still be deleted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use support::hook;
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_testkit::{TestPlane, wait_until_gone};
use sympozium_webhook::{server, tls};

async fn apply(client: &Client, ns: &str, kind: &str, plural: &str, name: &str, spec: Value) {
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

fn run(name: &str, instance: &str, extra: Value) -> AgentRun {
    let mut spec = json!({"instanceRef": instance, "agentId": "primary", "sessionKey": "", "task": "summarise the incident",
        "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "openai-key"}});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": name}, "spec": spec}))
    .unwrap()
}

async fn create(api: &Api<AgentRun>, r: &AgentRun) -> Result<AgentRun, String> {
    api.create(&PostParams::default(), r).await.map_err(|e| e.to_string())
}

fn configuration(name: &str, ns: &str, port: u16, ca_pem: &str) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        webhooks: Some(vec![
            hook("vagentpod.sympozium.ai", server::VALIDATE_PATH, "agentruns", &[ns], port, ca_pem),
            hook(
                "vinstance.sympozium.ai",
                server::VALIDATE_INSTANCES_PATH,
                "sympoziuminstances",
                &[ns],
                port,
                ca_pem,
            ),
            hook(
                "vpersonapack.sympozium.ai",
                server::VALIDATE_PERSONA_PACKS_PATH,
                "personapacks",
                &[ns],
                port,
                ca_pem,
            ),
        ]),
    }
}

/// Creates an instance through the raw API and returns the HTTP status and the warnings
/// the apiserver relayed from the webhook.
async fn create_instance(client: &Client, ns: &str, name: &str, spec: Value) -> (u16, Vec<String>) {
    create_raw(client, ns, "SympoziumInstance", "sympoziuminstances", name, spec).await
}

async fn create_raw(
    client: &Client,
    ns: &str,
    kind: &str,
    plural: &str,
    name: &str,
    spec: Value,
) -> (u16, Vec<String>) {
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": kind,
        "metadata": {"name": name}, "spec": spec});
    let request = http::Request::post(format!("/apis/sympozium.ai/v1alpha1/namespaces/{ns}/{plural}"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap().into())
        .unwrap();
    let response = client.send(request).await.unwrap();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| {
            // `299 - "<text with \" escaped>"`
            let raw = v.to_str().unwrap_or_default();
            raw.trim_start_matches("299 - ").trim_matches('"').replace("\\\"", "\"")
        })
        .collect();
    (response.status().as_u16(), warnings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apiserver_enforces_policies_through_the_webhook() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "webhook").await.unwrap().name().to_string();

    let generated = tls::generate(&["127.0.0.1".into()]).unwrap();
    let tls_config = tls::server_config(generated.cert_pem.as_bytes(), generated.key_pem.as_bytes()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve_tls(
        listener,
        tls_config,
        server::router(client.clone(), "sympozium-system".into()),
        async {
            let _ = stopped.await;
        },
    ));

    apply(
        &client,
        &ns,
        "SympoziumPolicy",
        "sympoziumpolicies",
        "strict",
        json!({
        "sandboxPolicy": {"required": true},
        "subagentPolicy": {"maxDepth": 2, "maxConcurrent": 5},
        "toolGating": {"defaultAction": "allow", "rules": [{"tool": "write_file", "action": "deny"}]},
        "featureGates": {"sub-agents": true, "code-execution": true}}),
    )
    .await;
    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "sympoziuminstances",
        "agent",
        json!({
        "agents": {"default": {"model": "gpt-4o"}}, "policyRef": "strict"}),
    )
    .await;

    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let config_name = format!("sympozium-test-{ns}");
    configs
        .create(&PostParams::default(), &configuration(&config_name, &ns, port, &generated.ca_pem))
        .await
        .unwrap();

    // The apiserver picks the configuration up asynchronously: probe with dry-run creates.
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let dry = PostParams { dry_run: true, ..Default::default() };
    let probe = run("probe", "agent", json!({}));
    let mut active = false;
    for _ in 0..60 {
        if let Err(e) = runs.create(&dry, &probe).await
            && e.to_string().contains("denied the request")
        {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(active, "the apiserver never called the webhook");

    // kubectl apply of a run without the sandbox the policy requires is refused.
    let manifest = std::env::temp_dir().join(format!("{ns}-violating-run.json"));
    std::fs::write(&manifest, serde_json::to_vec(&run("no-sandbox", "agent", json!({}))).unwrap()).unwrap();
    let refused =
        plane.kubectl(&["apply", "-n", &ns, "-f", manifest.to_str().unwrap()]).unwrap_err().to_string();
    let _ = std::fs::remove_file(&manifest);
    assert!(
        refused.contains("admission webhook \"vagentpod.sympozium.ai\" denied the request: sandbox is required by policy \"strict\" (sandboxPolicy.required): set spec.sandbox.enabled to true on the run, or spec.agents.default.sandbox.enabled on its SympoziumInstance"),
        "{refused}"
    );
    assert!(runs.get_opt("no-sandbox").await.unwrap().is_none());

    // An instance that turns the sandbox container on for its runs satisfies the policy for
    // runs that do not ask for it themselves (the controller gives them the container); a
    // run that picks agent-sandbox mode instead does not get it, and is refused.
    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "sympoziuminstances",
        "boxed",
        json!({"agents": {"default": {"model": "gpt-4o", "sandbox": {"enabled": true}}}, "policyRef": "strict"}),
    )
    .await;
    create(&runs, &run("inherits", "boxed", json!({}))).await.expect("the instance's sandbox counts");
    let e = create(&runs, &run("isolated", "boxed", json!({"agentSandbox": {"enabled": true}})))
        .await
        .unwrap_err();
    assert!(e.contains("sandbox is required by policy \"strict\""), "{e}");

    let sandboxed = json!({"sandbox": {"enabled": true}});
    let mut tools = sandboxed.clone();
    tools["toolPolicy"] = json!({"allow": ["read_file", "write_file"]});
    let e = create(&runs, &run("writer", "agent", tools)).await.unwrap_err();
    assert!(
        e.contains("tool \"write_file\" is denied by policy \"strict\" but listed in spec.toolPolicy.allow"),
        "{e}"
    );
    let mut deep = sandboxed.clone();
    deep["parent"] = json!({"runName": "x", "sessionKey": "s", "spawnDepth": 3});
    let e = create(&runs, &run("deep", "agent", deep.clone())).await.unwrap_err();
    assert!(e.contains("spawn depth 3 exceeds maxDepth 2"), "{e}");
    deep["parent"]["spawnDepth"] = json!(2);
    create(&runs, &run("deep-ok", "agent", deep)).await.expect("depth == maxDepth is admitted");
    let e = create(&runs, &run("orphan", "ghost", sandboxed.clone())).await.unwrap_err();
    assert!(e.contains("SympoziumInstance \"ghost\" not found"), "{e}");

    // Instances are admitted, with warnings for what they name but does not exist.
    let (status, warnings) = create_instance(
        &client,
        &ns,
        "typo",
        json!({
        "agents": {"default": {"model": "gpt-4o"}}, "policyRef": "strcit",
        "authRefs": [{"provider": "openai", "secret": "missing-key"}], "skills": [{"skillPackRef": "nope"}]}),
    )
    .await;
    assert_eq!(status, 201);
    let all = warnings.join("\n");
    assert!(all.contains("SympoziumPolicy \"strcit\" not found"), "{all}");
    assert!(all.contains("SkillPack \"nope\" not found"), "{all}");
    assert!(all.contains("Secret \"missing-key\" not found"), "{all}");
    let (status, warnings) = create_instance(&client, &ns, "writer", json!({
        "agents": {"default": {"model": "gpt-4o", "toolPolicy": {"allow": ["write_file"]}}}, "policyRef": "strict"}))
    .await;
    assert_eq!(status, 201);
    assert!(
        warnings.join("\n").contains("lists \"write_file\", which policy \"strict\" denies"),
        "{warnings:?}"
    );
    // Its runs would all be refused for want of a sandbox: admitted (manifests written for
    // the original must apply), with a warning naming the field to set.
    assert!(
        warnings.join("\n").contains("spec.agents.default.sandbox.enabled is not true, but policy \"strict\" requires a sandbox (sandboxPolicy.required)"),
        "{warnings:?}"
    );
    let (status, warnings) = create_instance(
        &client,
        &ns,
        "boxed-too",
        json!({
        "agents": {"default": {"model": "gpt-4o", "sandbox": {"enabled": true}}}, "policyRef": "strict"}),
    )
    .await;
    assert_eq!((status, warnings.len()), (201, 0), "{warnings:?}");

    // So are enabled PersonaPacks; a disabled one is a catalog entry and gets none.
    let pack = |enabled: bool| {
        json!({"enabled": enabled, "policyRef": "strict", "authRefs": [{"secret": "team-key"}],
        "personas": [{"name": "sre", "systemPrompt": "x", "skills": ["k8s-ops"], "toolPolicy": {"allow": ["write_file"]}}]})
    };
    let (status, warnings) =
        create_raw(&client, &ns, "PersonaPack", "personapacks", "team", pack(true)).await;
    assert_eq!(status, 201);
    let all = warnings.join("\n");
    assert!(
        all.contains("SkillPack \"k8s-ops\" not found") && all.contains("Secret \"team-key\" not found"),
        "{all}"
    );
    assert!(all.contains("spec.personas[0].toolPolicy.allow lists \"write_file\""), "{all}");
    assert!(
        all.contains("spec.sandbox.enabled is not true, but policy \"strict\" requires a sandbox"),
        "{all}"
    );
    let (status, warnings) =
        create_raw(&client, &ns, "PersonaPack", "personapacks", "catalog", pack(false)).await;
    assert_eq!((status, warnings.len()), (201, 0));

    // A compliant run is admitted; a spec change that breaks the policy is refused.
    let mut held = run("compliant", "agent", sandboxed.clone());
    held.metadata.finalizers = Some(vec!["sympozium.ai/test-hold".into()]);
    create(&runs, &held).await.expect("a compliant run is admitted");
    let e = runs
        .patch(
            "compliant",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"sandbox": {"enabled": false}}})),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("sandbox is required"), "{e}");

    // Its instance disappears: metadata updates and deletion still go through.
    Api::<SympoziumInstance>::namespaced(client.clone(), &ns)
        .delete("agent", &DeleteParams::default())
        .await
        .unwrap();
    runs.patch(
        "compliant",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"seen": "yes"}}})),
    )
    .await
    .expect("a metadata update of an orphaned run is not blocked");
    runs.delete("compliant", &DeleteParams::default()).await.unwrap();
    runs.patch(
        "compliant",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("finalizer removal of an orphaned run is not blocked");
    wait_until_gone(&runs, "compliant", "the orphaned run", Duration::from_secs(20)).await.unwrap();

    configs.delete(&config_name, &DeleteParams::default()).await.unwrap();
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
}
