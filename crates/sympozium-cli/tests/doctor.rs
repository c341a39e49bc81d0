//! `sympozium doctor` on the real test control plane: it finds a controller that is not
//! running and a pack whose provider Secret is missing, says how to fix each, and is
//! satisfied once they are fixed; an unreachable cluster is a finding too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use sympozium_testkit::{TestPlane, wait_until_gone};

async fn doctor(plane: &TestPlane, ns: &str, system_ns: &str) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium"))
        .args([
            "--kubeconfig",
            plane.kubeconfig().to_str().unwrap(),
            "-n",
            ns,
            "doctor",
            "--system-namespace",
            system_ns,
        ])
        .output()
        .await
        .unwrap();
    (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn doctor_finds_what_is_missing_and_how_to_fix_it() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "doctor").await.unwrap().name().to_string();
    let system = plane.namespace(&client, "doctor-system").await.unwrap().name().to_string();
    let pack = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "PersonaPack", "metadata": {"name": "team"},
        "spec": {"enabled": true, "authRefs": [{"provider": "openai", "secret": "team-openai-key"}],
                 "personas": [{"name": "a", "systemPrompt": "x"}]}});
    let packs: Api<sympozium_api::PersonaPack> = Api::namespaced(client.clone(), &ns);
    packs.patch("team", &PatchParams::apply("test"), &Patch::Apply(&pack)).await.unwrap();

    let (code, out) = doctor(&plane, &ns, &system).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("✓ cluster: reachable") && out.contains("✓ CRDs: all 8 installed"), "{out}");
    assert!(out.contains(&format!("✗ controller: not running in {system}")), "{out}");
    assert!(out.contains("✗ pack team: its provider Secret \"team-openai-key\" is missing"), "{out}");
    assert!(out.contains("→ sympozium packs activate team"), "{out}");
    assert!(out.contains(&format!("! NATS: no nats Deployment in {system}")), "{out}");
    assert!(out.contains("! webhook: not registered"), "{out}");

    // The controller holds its lease and the Secret exists: all good.
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "sympozium-controller-leader"},
        "spec": {"holderIdentity": "test", "leaseDurationSeconds": 15, "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now())}});
    Api::<Lease>::namespaced(client.clone(), &system)
        .patch("sympozium-controller-leader", &PatchParams::apply("test"), &Patch::Apply(&lease))
        .await
        .unwrap();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "team-openai-key"}, "stringData": {"OPENAI_API_KEY": "k"}});
    Api::<Secret>::namespaced(client.clone(), &ns)
        .patch("team-openai-key", &PatchParams::apply("test"), &Patch::Apply(&secret))
        .await
        .unwrap();
    // A NATS Deployment with no ready pod is a failure, not a warning.
    let nats = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nats"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "nats"}},
                 "template": {"metadata": {"labels": {"app": "nats"}},
                              "spec": {"containers": [{"name": "nats", "image": "nats:2-alpine"}]}}}});
    Api::<Deployment>::namespaced(client.clone(), &system)
        .patch("nats", &PatchParams::apply("test"), &Patch::Apply(&nats))
        .await
        .unwrap();
    let (code, out) = doctor(&plane, &ns, &system).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("✗ NATS: the nats Deployment in {system} has no ready pod")), "{out}");
    Api::<Deployment>::namespaced(client.clone(), &system).delete("nats", &Default::default()).await.unwrap();
    wait_until_gone(
        &Api::<Deployment>::namespaced(client.clone(), &system),
        "nats",
        "nats deleted",
        std::time::Duration::from_secs(30),
    )
    .await
    .unwrap();
    let (code, out) = doctor(&plane, &ns, &system).await;
    assert_eq!(code, 0, "warnings do not fail: {out}");
    assert!(!out.contains('✗'), "{out}");
}

#[tokio::test]
async fn doctor_reports_an_unreachable_cluster() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("sympozium-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n\
         contexts: [{{name: c, context: {{cluster: c, user: u}}}}]\ncurrent-context: c\nusers: [{{name: u, user: {{}}}}]\n")).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium"))
        .args(["--kubeconfig", kubeconfig.to_str().unwrap(), "doctor"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("✗ cluster: cannot reach the cluster"));
    let _ = std::fs::remove_dir_all(&dir);
}
