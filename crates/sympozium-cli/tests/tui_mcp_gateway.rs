//! The real `sympozium` TUI in a pseudo-terminal (tmux) against the test control plane: the
//! MCP Servers view lists servers of every namespace with a NAMESPACE column and shows the
//! tools the MCPServer controller (running here) discovered from a real MCP server (the test
//! kit's rmcp knowledge base over Streamable HTTP); the Gateway view shows the gateway status
//! and a row for an instance's web endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod tui_support;

use std::sync::Arc;
use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use sympozium_api::{MCPServer, SympoziumInstance};
use sympozium_controller::context::Context;
use sympozium_controller::mcpserver;
use sympozium_controller::settings::Settings;
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::TestPlane;
use sympozium_testkit::mcp::{KnowledgeBase, McpHttpServer};
use tui_support::Pty;

struct Abort(tokio::task::JoinHandle<()>);
impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Moves the selection (from the top) until the detail pane shows `ns/name`; other tests'
/// objects may be listed too.
fn select(pty: &Pty, ns: &str, name: &str) -> String {
    let title = format!(" {ns}/{name} ");
    pty.keys(&["g"]);
    for _ in 0..80 {
        let s = pty.screen();
        if s.contains(&title) {
            return s;
        }
        pty.keys(&["j"]);
        std::thread::sleep(Duration::from_millis(80));
    }
    panic!("could not select {ns}/{name}; screen:\n{}", pty.screen());
}

fn mcp_server(body: serde_json::Value) -> MCPServer {
    serde_json::from_value(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_servers_and_gateway_routes_in_the_tui() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns_a = plane.namespace(&client, "tui-mcp").await.unwrap().name().to_string();
    let ns_b = plane.namespace(&client, "tui-mcp-other").await.unwrap().name().to_string();

    // A real MCP server the controller discovers, and one in another namespace nothing runs.
    let kb =
        McpHttpServer::start("127.0.0.1:0".parse().unwrap(), KnowledgeBase::default(), None).await.unwrap();
    Api::<MCPServer>::namespaced(client.clone(), &ns_a)
        .create(&PostParams::default(), &mcp_server(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "MCPServer",
            "metadata": {"name": "kb"}, "spec": {"transportType": "http", "toolsPrefix": "kb", "url": kb.url()}})))
        .await
        .unwrap();
    Api::<MCPServer>::namespaced(client.clone(), &ns_b)
        .create(
            &PostParams::default(),
            &mcp_server(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "MCPServer",
            "metadata": {"name": "kb"}, "spec": {"transportType": "stdio", "toolsPrefix": "notes",
            "deployment": {"image": "notes:1", "cmd": "notes"}}})),
        )
        .await
        .unwrap();
    let ctx = Arc::new(Context::new(
        client.clone(),
        Settings { image_tag: "test".into(), ..Default::default() },
        Metrics::default(),
        Some(ns_a.clone()),
        "tui-mcp",
    ));
    let _controller = Abort(tokio::spawn(mcpserver::run(ctx)));

    // An instance whose web endpoint serves through the gateway (the status the instance
    // controller writes once its serving run has a route).
    let sample = sympozium_testkit::repo_root().join("deploy/samples/sympoziuminstance-my-agent.yaml");
    plane.kubectl(&["apply", "-n", &ns_a, "-f", sample.to_str().unwrap()]).unwrap();
    Api::<SympoziumInstance>::namespaced(client.clone(), &ns_a)
        .patch_status(
            "my-agent",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Serving", "webEndpoint": {"status": "Serving",
                "url": "http://my-agent.agents.example.test", "authSecretName": "my-agent-web-proxy-key"}}})),
        )
        .await
        .unwrap();

    let kubeconfig = plane.kubeconfig().to_str().unwrap().to_string();
    let pty = Pty::start("mcpgw", &[env!("CARGO_BIN_EXE_sympozium"), "--kubeconfig", &kubeconfig], &[]);
    pty.wait_for("● connected", 30);

    // 0: every namespace's servers, the discovered one ready with its two tools.
    pty.keys(&["0"]);
    let row = |s: &str, ns: &str| s.lines().find(|l| l.starts_with(&format!("│{ns} "))).map(str::to_string);
    let s = pty.wait("kb ready with 2 tools, and the other namespace's kb", 60, |s| {
        row(s, &ns_a).is_some_and(|l| l.contains(" kb ") && l.contains(" yes ") && l.contains(" 2 "))
            && row(s, &ns_b).is_some_and(|l| l.contains(" kb ") && l.contains(" no "))
    });
    let header = s.lines().find(|l| l.contains("TRANSPORT")).unwrap();
    assert!(header.contains("NAMESPACE") && header.contains("URL") && header.contains("TOOLS"), "{s}");
    let other = row(&s, &ns_b).unwrap();
    assert!(other.contains("stdio (managed)") && other.contains(" - "), "not discovered: {other}");
    // The detail: the tools as agents call them.
    select(&pty, &ns_a, "kb");
    pty.keys(&["F"]);
    let s = pty.wait_for("• kb_purge", 20);
    assert!(s.contains("• kb_lookup") && s.contains("Tools (2)"), "{s}");
    assert!(s.contains(&kb.url()), "{s}");
    pty.keys(&["F"]);
    select(&pty, &ns_b, "kb");
    pty.wait_for("Tools: not discovered yet", 20);

    // 8: the gateway status and the instance's route.
    // Other tests' instances share the plane, so this namespace's row is waited for by name.
    pty.keys(&["8"]);
    let s = pty.wait("this namespace's route, Serving", 30, |s| {
        s.lines()
            .any(|l| l.starts_with(&format!("│{ns_a}")) && l.contains("my-agent") && l.contains("Serving"))
    });
    assert!(
        s.contains("no SympoziumConfig") || s.contains("gateway disabled") || s.contains("· class "),
        "the gateway status is shown: {s}"
    );
    let route = s
        .lines()
        .find(|l| l.starts_with(&format!("│{ns_a}")) && l.contains("my-agent"))
        .unwrap_or_else(|| panic!("{s}"));
    // (Columns are cut to fit the pane; the detail has the whole URL.)
    assert!(route.contains("my-agent.agents.") && route.contains("Serving"), "{route}");
    select(&pty, &ns_a, "my-agent");
    let s = pty.wait_for(&format!("HTTPRoute: {ns_a}/my-agent-web-endpoint-web"), 20);
    assert!(s.contains("http://my-agent.agents.example.test"), "the detail has the whole URL: {s}");

    // The help names the new views' keys.
    pty.keys(&["?"]);
    pty.wait_for("0 MCP Servers", 10);
    pty.keys(&["Escape", "q"]);
    pty.wait_for("[exited 0]", 20);
}
