//! `sympozium install` / `uninstall` on the real test control plane: everything lands in the
//! chosen namespace with the chosen registry and tag, the install waits until the controller
//! and NATS are available, a second install changes nothing, and uninstall keeps the agents.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Output;

#[path = "tui_support/mod.rs"]
mod tui_support;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::ListParams;
use sympozium_api::{PersonaPack, SkillPack, SympoziumPolicy};
use sympozium_testkit::TestPlane;

async fn sympozium(plane: &TestPlane, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium"))
        .args(["--kubeconfig", plane.kubeconfig().to_str().unwrap()])
        .args(args)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn install_upgrade_and_uninstall() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "install").await.unwrap().name().to_string();
    // The direct install (this file's subject), even where helm is on PATH.
    let args = [
        "install",
        "--no-helm",
        "--system-namespace",
        &ns,
        "--image-registry",
        "registry.local/sym",
        "--image-tag",
        "t1",
        "--wait",
        "90s",
    ];
    let out = sympozium(&plane, &args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("sympozium installed in namespace {ns} (8 CRDs")), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains('\u{1b}') && !stdout.contains('\u{1b}'),
        "no terminal codes when piped: {stderr}"
    );

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let manager = deployments.get("sympozium-controller-manager").await.unwrap();
    let pod = manager.spec.unwrap().template.spec.unwrap();
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("registry.local/sym/controller:t1"));
    let args = c.args.clone().unwrap();
    assert!(args.windows(2).any(|w| w == ["--system-namespace", ns.as_str()]), "{args:?}");
    assert!(args.contains(&format!("nats://nats.{ns}.svc:4222")), "{args:?}");
    assert_eq!(c.security_context.as_ref().unwrap().read_only_root_filesystem, Some(true));
    assert!(deployments.get("nats").await.unwrap().status.unwrap().available_replicas.unwrap_or(0) > 0);
    // The REST API and dashboard that `sympozium serve` forwards to, with its token.
    let api = deployments.get("sympozium-apiserver").await.unwrap();
    assert!(api.status.unwrap().available_replicas.unwrap_or(0) > 0);
    let c = &api.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("registry.local/sym/apiserver:t1"));
    assert!(c.args.clone().unwrap().contains(&"--token-from-secret".to_string()));
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    let token = secrets.get("sympozium-ui-token").await.unwrap().data.unwrap()["token"].0.clone();
    assert!(token.len() >= 32);

    let policies =
        Api::<SympoziumPolicy>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.unwrap();
    assert_eq!(policies.items.len(), 3);
    let skills =
        Api::<SkillPack>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.unwrap();
    assert_eq!(skills.items.len(), 9);
    let packs =
        Api::<PersonaPack>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.unwrap();
    assert_eq!(packs.items.len(), 4);
    assert!(packs.items.iter().all(|p| p.spec.enabled != Some(true)), "packs install as a catalog");

    // Idempotent: a second install succeeds and leaves one of each.
    let again = sympozium(&plane, &args_vec(&ns)).await;
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(
        Api::<PersonaPack>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        4
    );

    let out = sympozium(&plane, &["uninstall", "--system-namespace", &ns]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(deployments.get_opt("sympozium-controller-manager").await.unwrap().is_none());
    assert!(deployments.get_opt("nats").await.unwrap().is_none());
    assert!(deployments.get_opt("sympozium-apiserver").await.unwrap().is_none());
    assert_eq!(
        secrets.get("sympozium-ui-token").await.unwrap().data.unwrap()["token"].0,
        token,
        "the token stays, so a reinstall keeps users logged in"
    );
    let kept =
        Api::<PersonaPack>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.unwrap();
    assert_eq!(kept.items.len(), 4, "agents and teams are kept without --crds");
}

fn args_vec(ns: &str) -> Vec<&str> {
    vec![
        "install",
        "--no-helm",
        "--system-namespace",
        ns,
        "--image-registry",
        "registry.local/sym",
        "--image-tag",
        "t1",
        "--wait",
        "90s",
    ]
}

#[tokio::test]
async fn on_a_terminal_each_step_spins_then_shows_its_time() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "install-tty").await.unwrap().name().to_string();
    let kubeconfig = plane.kubeconfig().to_str().unwrap().to_string();
    let mut argv = vec![env!("CARGO_BIN_EXE_sympozium"), "--kubeconfig", &kubeconfig];
    argv.extend(args_vec(&ns));
    let pty = tui_support::Pty::start("install", &argv, &[]);
    let screen = pty.wait_for("[exited 0]", 120);
    for step in [
        "✓ CustomResourceDefinitions (",
        "✓ waiting for the controller, NATS and the API server to be available (",
    ] {
        assert!(screen.contains(step), "{screen}");
    }
    assert!(screen.contains(&format!("sympozium installed in namespace {ns}")), "{screen}");
    let out = sympozium(&plane, &["uninstall", "--system-namespace", &ns]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
