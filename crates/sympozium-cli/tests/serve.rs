//! `sympozium serve` against the real test control plane. By default it forwards a local
//! port through the Kubernetes API to the API server `sympozium install` deployed — here
//! running for real as a pod on the local node (`sympozium-node`) — prints the URL and the
//! token, opens the browser with `--open`, and follows the replacement when the pod is
//! deleted. `--in-process` serves the API in the CLI itself: it keeps the token in Secret
//! `sympozium-ui-token` (made once, then reused) and serves the dashboard and the API behind it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};
use sympozium_testkit::TestPlane;
use tokio::io::{AsyncBufReadExt, BufReader};

#[path = "serve_node/mod.rs"]
mod serve_node;

struct Served {
    child: tokio::process::Child,
    url: String,
    token: String,
}

async fn serve(plane: &TestPlane, system_ns: &str) -> Served {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium"));
    cmd.args(["--kubeconfig", plane.kubeconfig().to_str().unwrap(), "serve", "--port", "0", "--in-process"])
        .args(["--service-namespace", system_ns])
        .stderr(Stdio::inherit());
    started(cmd).await
}

async fn started(mut cmd: tokio::process::Command) -> Served {
    let mut child = cmd.stdout(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut token) = (String::new(), String::new());
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(u) = line.strip_prefix("Sympozium dashboard: ") {
                url = u.trim().to_string();
            }
            if let Some(t) = line.strip_prefix("Token: ") {
                token = t.trim().to_string();
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.expect("serve printed no URL and token in 60s");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    Served { child, url, token }
}

#[tokio::test]
async fn serve_prints_the_url_and_token_and_serves_behind_it() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "cli-serve").await.unwrap();
    let system = plane.namespace(&client, "cli-serve-sys").await.unwrap();
    let mut first = serve(&plane, system.name()).await;
    assert!(first.token.len() >= 32, "a long random token: {}", first.token);
    let secret =
        Api::<Secret>::namespaced(client.clone(), system.name()).get("sympozium-ui-token").await.unwrap();
    assert_eq!(secret.data.unwrap()["token"].0, first.token.as_bytes());

    let http = reqwest::Client::new();
    let api = format!("{}api/v1/namespaces", first.url);
    assert_eq!(http.get(&api).send().await.unwrap().status(), 401);
    assert_eq!(http.get(&api).bearer_auth("guess").send().await.unwrap().status(), 401);
    let names: Vec<String> =
        http.get(&api).bearer_auth(&first.token).send().await.unwrap().json().await.unwrap();
    assert!(names.iter().any(|n| n == ns.name()), "{names:?}");
    let page = http.get(format!("{}instances", first.url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<div id=\"root\">"), "the dashboard's page: {page}");
    first.child.kill().await.unwrap();

    // A second serve uses the same token.
    let mut second = serve(&plane, system.name()).await;
    assert_eq!(second.token, first.token);
    second.child.kill().await.unwrap();

    // No such namespace: a one-line error saying what to do.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium"))
        .args(["--kubeconfig", plane.kubeconfig().to_str().unwrap(), "serve", "--port", "0"])
        .args(["--service-namespace", "no-such-ns-here"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not exist") && stderr.contains("sympozium install"), "{stderr}");

    // A namespace without a deployed API server: the default (forwarding) says what to do.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium"))
        .args(["--kubeconfig", plane.kubeconfig().to_str().unwrap(), "serve", "--port", "0"])
        .args(["--service-namespace", system.name()])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not deployed")
            && stderr.contains("sympozium install")
            && stderr.contains("--in-process"),
        "{stderr}"
    );
}

/// Names of the ready, not terminating pods of the API server in `ns`.
async fn ready_api_pods(pods: &Api<Pod>) -> Vec<String> {
    let list = pods.list(&ListParams::default().labels("app=sympozium-apiserver")).await.unwrap();
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .map(|p| p.name_any())
        .collect()
}

/// A request through `serve` with a fresh connection each time (a pooled connection would
/// still be the old pod's session).
async fn namespaces_through(url: &str, token: &str) -> Result<(u16, String), String> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let answer = http
        .get(format!("{url}api/v1/namespaces"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = answer.status().as_u16();
    Ok((status, answer.text().await.map_err(|e| e.to_string())?))
}

#[tokio::test]
async fn serve_forwards_to_the_deployed_api_server_and_follows_a_new_pod() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let system = serve_node::namespace(&client, &plane, "cli-serve-fwd").await;
    let ns = system.name().to_string();
    let kubeconfig = plane.kubeconfig().to_str().unwrap().to_string();

    // What a user does: install (which deploys the API server), then serve.
    let install = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium"))
        .args(["--kubeconfig", &kubeconfig, "install", "--no-helm", "--system-namespace", &ns])
        .args(["--image-registry", "registry.local/sym", "--image-tag", "dev", "--wait", "3m"])
        .output()
        .await
        .unwrap();
    assert!(
        install.status.success(),
        "{}{}",
        String::from_utf8_lossy(&install.stdout),
        String::from_utf8_lossy(&install.stderr)
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let first_pods = ready_api_pods(&pods).await;
    assert_eq!(first_pods.len(), 1, "install waited for the API server: {first_pods:?}");

    // `--open` runs xdg-open with the URL: a stand-in on PATH records it.
    let bin = tempfile::tempdir().unwrap();
    let opened = bin.path().join("opened");
    let fake = bin.path().join("xdg-open");
    std::fs::write(&fake, format!("#!/bin/sh\necho \"$1\" > '{}'\n", opened.display())).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium"));
    cmd.args(["--kubeconfig", &kubeconfig, "serve", "--port", "0", "--open", "--service-namespace", &ns])
        .env("PATH", path)
        .stderr(Stdio::piped());
    let mut cmd_child = started(cmd).await;
    let log = Arc::new(Mutex::new(String::new()));
    let mut err_lines = BufReader::new(cmd_child.child.stderr.take().unwrap()).lines();
    let sink = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = err_lines.next_line().await {
            eprintln!("serve: {line}");
            sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    let served = cmd_child;
    let token = Api::<Secret>::namespaced(client.clone(), &ns).get("sympozium-ui-token").await.unwrap();
    assert_eq!(
        token.data.unwrap()["token"].0,
        served.token.as_bytes(),
        "the deployed server's token is printed"
    );

    // The deployed server answers through the forward: 401 without the token, the
    // namespaces with it, the dashboard's page for a browser.
    let http = reqwest::Client::new();
    let api = format!("{}api/v1/namespaces", served.url);
    assert_eq!(http.get(&api).send().await.unwrap().status(), 401);
    let (status, body) = namespaces_through(&served.url, &served.token).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("\"{ns}\"")), "{body}");
    let page = http.get(format!("{}runs", served.url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<div id=\"root\">"), "the dashboard's page: {page}");
    assert!(
        log.lock().unwrap().contains(&format!("forwarding to pod {}", first_pods[0])),
        "{}",
        log.lock().unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !opened.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(std::fs::read_to_string(&opened).unwrap().trim(), served.url, "--open opened the URL");

    // The pod goes away: the Deployment makes another, and the same `serve` reaches it.
    pods.delete(&first_pods[0], &DeleteParams::default()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let replacement = loop {
        let now = ready_api_pods(&pods).await;
        if let Some(p) = now.into_iter().find(|p| *p != first_pods[0]) {
            break p;
        }
        assert!(Instant::now() < deadline, "no replacement API server pod within 180 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = Err(String::new());
    while Instant::now() < deadline {
        last = namespaces_through(&served.url, &served.token).await;
        if matches!(&last, Ok((200, _))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, body) = last.unwrap();
    assert_eq!(status, 200, "through the replacement pod: {body}");
    assert!(body.contains(&format!("\"{ns}\"")), "{body}");
    assert!(
        log.lock().unwrap().contains(&format!("forwarding to pod {replacement}")),
        "serve followed the new pod: {}",
        log.lock().unwrap()
    );
    drop(served);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium"))
        .args(["--kubeconfig", &kubeconfig, "uninstall", "--system-namespace", &ns])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
