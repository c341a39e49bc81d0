//! Every webhook replica serves (there is no leader): two replicas with one certificate,
//! the apiserver sent to one and then — after it stops — to the other, gets the same
//! decision from each.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use sympozium_api::AgentRun;
use sympozium_testkit::TestPlane;
use sympozium_webhook::{server, tls};

fn configuration(name: &str, ns: &str, port: u16, ca_pem: &str) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        webhooks: Some(vec![ValidatingWebhook {
            name: "vagentpod.sympozium.ai".into(),
            client_config: WebhookClientConfig {
                url: Some(format!("https://127.0.0.1:{port}{}", server::VALIDATE_PATH)),
                ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
                service: None,
            },
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec!["sympozium.ai".into()]),
                api_versions: Some(vec!["v1alpha1".into()]),
                operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
                resources: Some(vec!["agentruns".into()]),
                scope: Some("Namespaced".into()),
            }]),
            failure_policy: Some("Fail".into()),
            side_effects: "None".into(),
            admission_review_versions: vec!["v1".into()],
            timeout_seconds: Some(5),
            namespace_selector: Some(LabelSelector {
                match_labels: Some([("kubernetes.io/metadata.name".to_string(), ns.to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        }]),
    }
}

/// A dry-run create of a run the policy forbids; returns the apiserver's error text.
async fn refusal(runs: &Api<AgentRun>) -> String {
    let run: AgentRun =
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "unsandboxed"},
        "spec": {"instanceRef": "agent", "agentId": "primary", "sessionKey": "", "task": "t",
                 "model": {"provider": "openai", "model": "m", "authSecretRef": ""}}}))
        .unwrap();
    let dry = PostParams { dry_run: true, ..Default::default() };
    runs.create(&dry, &run).await.err().map(|e| e.to_string()).unwrap_or_default()
}

async fn replica(
    client: &Client,
    tls: std::sync::Arc<rustls::ServerConfig>,
) -> (u16, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve_tls(
        listener,
        tls,
        server::router(client.clone(), "sympozium-system".into()),
        async {
            let _ = stopped.await;
        },
    ));
    (port, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_replica_decides_on_its_own() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "webhook-replicas").await.unwrap().name().to_string();
    let generated = tls::generate(&["127.0.0.1".into()]).unwrap();
    let tls_config = tls::server_config(generated.cert_pem.as_bytes(), generated.key_pem.as_bytes()).unwrap();
    let (port_a, stop_a) = replica(&client, tls_config.clone()).await;
    let (port_b, _stop_b) = replica(&client, tls_config).await;

    for (kind, plural, name, spec) in [
        ("SympoziumPolicy", "sympoziumpolicies", "strict", json!({"sandboxPolicy": {"required": true}})),
        (
            "SympoziumInstance",
            "sympoziuminstances",
            "agent",
            json!({"agents": {"default": {"model": "m"}}, "policyRef": "strict"}),
        ),
    ] {
        let ar = kube::api::ApiResource {
            group: "sympozium.ai".into(),
            version: "v1alpha1".into(),
            api_version: "sympozium.ai/v1alpha1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
        let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec});
        api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&body)).await.unwrap();
    }

    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let name = format!("sympozium-replicas-{ns}");
    configs
        .create(&PostParams::default(), &configuration(&name, &ns, port_a, &generated.ca_pem))
        .await
        .unwrap();
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let until_refused = async |what: &str| {
        for _ in 0..60 {
            let e = refusal(&runs).await;
            if e.contains("sandbox is required by policy") {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("{what} never refused the run");
    };
    let from_a = until_refused("replica A").await;

    // Replica A goes away; the apiserver is pointed at replica B, which decides alike.
    stop_a.send(()).unwrap();
    configs
        .replace(&name, &PostParams::default(), &{
            let mut c = configuration(&name, &ns, port_b, &generated.ca_pem);
            c.metadata.resource_version = configs.get(&name).await.unwrap().metadata.resource_version;
            c
        })
        .await
        .unwrap();
    let from_b = until_refused("replica B").await;
    let reason = |e: &str| e.split("denied the request:").nth(1).map(str::trim).map(String::from);
    assert_eq!(reason(&from_a), reason(&from_b), "both replicas give the same decision");
    configs.delete(&name, &DeleteParams::default()).await.unwrap();
}
