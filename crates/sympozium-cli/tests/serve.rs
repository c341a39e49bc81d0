//! `sympozium serve` against the real test control plane: it prints the URL and the token,
//! keeps the token in Secret `sympozium-ui-token` (made once, then reused), serves the
//! dashboard and the API behind that token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use sympozium_testkit::TestPlane;
use tokio::io::{AsyncBufReadExt, BufReader};

struct Served {
    child: tokio::process::Child,
    url: String,
    token: String,
}

async fn serve(plane: &TestPlane, system_ns: &str) -> Served {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium"))
        .args(["--kubeconfig", plane.kubeconfig().to_str().unwrap(), "serve", "--port", "0"])
        .args(["--service-namespace", system_ns])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
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
}
