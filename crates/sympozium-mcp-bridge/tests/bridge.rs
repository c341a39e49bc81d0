//! The real `sympozium-mcp-bridge` binary against real MCP servers written with rmcp (from
//! the test kit): a knowledge base over Streamable HTTP that demands a bearer token, a notes
//! server over the older HTTP+SSE transport, and a server that is not there. Discovery
//! writes the manifest the runner loads; request files get result files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sympozium_testkit::mcp::{KnowledgeBase, McpHttpServer, McpSseServer, Notes};

const BIN: &str = env!("CARGO_BIN_EXE_sympozium-mcp-bridge");

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Pod {
    _dir: tempfile::TempDir,
    config: PathBuf,
    tools: PathBuf,
}

impl Pod {
    fn new(servers: Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config/mcp-servers.yaml");
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(&config, serde_yaml::to_string(&json!({"servers": servers})).unwrap()).unwrap();
        let tools = dir.path().join("ipc/tools");
        std::fs::create_dir_all(&tools).unwrap();
        std::fs::create_dir_all(dir.path().join("ipc/output")).unwrap();
        Self { _dir: dir, config, tools }
    }

    fn bridge(&self, discover_only: bool) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("MCP_CONFIG_PATH", &self.config)
            .env("MCP_IPC_PATH", &self.tools)
            .env("MCP_MANIFEST_PATH", self.tools.join("mcp-tools.json"))
            .env("MCP_DISCOVERY_ATTEMPTS", "2")
            .env("MCP_DISCOVERY_INTERVAL_MS", "100")
            .env("MCP_MAX_RESULT_CHARS", "1000")
            .env("MCP_AUTH_KB", "kb-secret")
            .env("MCP_DISCOVER_ONLY", discover_only.to_string())
            .stdin(Stdio::null());
        c
    }

    fn manifest(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.tools.join("mcp-tools.json")).unwrap()).unwrap()
    }

    fn request(&self, id: &str, tool: &str, arguments: Value) {
        let body = json!({"id": id, "tool": tool, "arguments": arguments});
        let tmp = self.tools.join(format!("mcp-request-{id}.json.tmp"));
        std::fs::write(&tmp, body.to_string()).unwrap();
        std::fs::rename(tmp, self.tools.join(format!("mcp-request-{id}.json"))).unwrap();
    }

    async fn result(&self, id: &str) -> Value {
        let path = self.tools.join(format!("mcp-result-{id}.json"));
        for _ in 0..600 {
            if let Ok(bytes) = std::fs::read(&path)
                && let Ok(v) = serde_json::from_slice(&bytes)
            {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no result {id} within 30 s");
    }
}

fn servers(kb: &McpHttpServer, notes: &McpSseServer, offline: u16) -> Value {
    json!([
        {"name": "kb", "url": kb.url(), "toolsPrefix": "kb", "toolsDeny": ["purge"],
         "auth": {"type": "bearer", "tokenEnv": "MCP_AUTH_KB"}, "headers": {"X-Team": "sre"}},
        {"name": "notes", "url": notes.url(), "transport": "sse", "toolsPrefix": "notes", "timeout": 1},
        {"name": "offline", "url": format!("http://127.0.0.1:{offline}/mcp"), "toolsPrefix": "offline"},
    ])
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the bridge did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_publishes_prefixed_filtered_tools_with_schemas_and_names_the_unreachable_server() {
    let kb =
        McpHttpServer::start(loopback(), KnowledgeBase::default(), Some("kb-secret".into())).await.unwrap();
    let notes = McpSseServer::start(loopback(), Notes::new("sre")).await.unwrap();
    let pod = Pod::new(servers(&kb, &notes, closed_port()));
    let status = pod.bridge(true).status().unwrap();
    assert!(status.success());
    let manifest = pod.manifest();
    let names: Vec<&str> =
        manifest["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["kb_lookup", "notes_delete_note", "notes_long_report", "notes_read_note", "notes_slow"]
    );
    let lookup = &manifest["tools"][0];
    assert_eq!(lookup["server"], "kb");
    assert_eq!(lookup["timeout"], 30);
    assert_eq!(lookup["inputSchema"]["properties"]["term"]["type"], "string", "{lookup}");
    assert_eq!(lookup["description"], "Look a term up in the knowledge base");
    let unavailable = &manifest["unavailable"];
    assert_eq!(unavailable[0]["server"], "offline");
    assert_eq!(unavailable[0]["toolsPrefix"], "offline");
    assert!(unavailable[0]["error"].as_str().unwrap().contains("cannot connect"), "{unavailable}");
    // The token from the pod's environment went with every request.
    let auth = kb.authorizations();
    assert!(!auth.is_empty() && auth.iter().all(|a| a == "Bearer kb-secret"), "{auth:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_return_text_and_structured_results_cut_large_ones_time_out_and_survive_a_server_going_down() {
    let kb =
        McpHttpServer::start(loopback(), KnowledgeBase::default(), Some("kb-secret".into())).await.unwrap();
    let notes = McpSseServer::start(loopback(), Notes::new("sre")).await.unwrap();
    let pod = Pod::new(servers(&kb, &notes, closed_port()));
    let mut bridge = pod.bridge(false).stderr(Stdio::inherit()).spawn().unwrap();

    pod.request("1", "kb_lookup", json!({"term": "sympozium"}));
    let r = pod.result("1").await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["structuredContent"]["documents"], 42);
    assert!(r["content"][0]["text"].as_str().unwrap().contains("Kubernetes-native control plane"), "{r}");
    assert!(!pod.tools.join("mcp-request-1.json").exists(), "handled requests are removed");

    pod.request("2", "notes_read_note", json!({"name": "oncall"}));
    let r = pod.result("2").await;
    assert_eq!(r["content"][0]["text"], "note oncall (kept by sre): rotate the on-call pager on Mondays");

    pod.request("3", "notes_long_report", json!({"chars": 5000}));
    let text = pod.result("3").await["content"][0]["text"].as_str().unwrap().to_string();
    assert!(text.ends_with("[result truncated by the MCP bridge: 1000 of 5000 characters shown]"), "{text}");

    // The server's timeout is 1 s: the call is cancelled, the run gets an error it can read.
    pod.request("4", "notes_slow", json!({"ms": 10000}));
    let r = pod.result("4").await;
    assert_eq!(r["success"], false);
    assert!(r["error"].as_str().unwrap().contains("did not answer slow within 1s"), "{r}");

    pod.request("5", "kb_purge", json!({}));
    let r = pod.result("5").await;
    assert!(r["error"].as_str().unwrap().contains("not available (filtered"), "{r}");

    pod.request("6", "offline_status", json!({}));
    let r = pod.result("6").await;
    assert!(r["error"].as_str().unwrap().starts_with("MCP server \"offline\" is unreachable"), "{r}");

    // The knowledge base goes down mid-run: a clear error, and the bridge keeps serving.
    kb.stop();
    drop(kb);
    tokio::time::sleep(Duration::from_millis(200)).await;
    pod.request("7", "kb_lookup", json!({"term": "again"}));
    let r = pod.result("7").await;
    assert_eq!(r["success"], false);
    let e = r["error"].as_str().unwrap();
    assert!(e.starts_with("MCP server \"kb\""), "{e}");
    pod.request("8", "notes_read_note", json!({"name": "still-here"}));
    assert_eq!(pod.result("8").await["success"], true);

    // The runner's result ends the bridge.
    std::fs::write(pod.tools.join("../output/result.json"), "{}").unwrap();
    assert!(wait_exit(&mut bridge, Duration::from_secs(10)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_fails_with_the_field_and_no_configuration_is_not_an_error() {
    let pod = Pod::new(json!([{"name": "a", "url": "not a url", "toolsPrefix": "a"}]));
    let out = pod.bridge(true).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("servers[0].url"), "{err}");
    let empty = Pod::new(json!([]));
    assert!(empty.bridge(true).status().unwrap().success());
}

/// Copies itself for the stdio adapter's init container.
#[test]
fn install_to_copies_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(BIN).args(["--install-to", dir.path().to_str().unwrap()]).status().unwrap();
    assert!(status.success());
    let copied = dir.path().join("mcp-bridge");
    assert_eq!(std::fs::metadata(&copied).unwrap().len(), std::fs::metadata(Path::new(BIN)).unwrap().len());
}

/// The testkit's stdio notes server, built if needed.
fn notes_binary() -> PathBuf {
    let path = Path::new(BIN).parent().unwrap().join("sympozium-testkit-mcp");
    if !path.is_file() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "sympozium-testkit", "--bin", "sympozium-testkit-mcp"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stdio_adapter_serves_a_stdio_server_over_streamable_http() {
    let port = closed_port();
    let mut adapter = Command::new(BIN)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("MCP_STDIO_ADAPTER", "true")
        .env("STDIO_CMD", notes_binary())
        .env("STDIO_ARGS", "[]")
        .env("STDIO_SERVER_NAME", "notes")
        .env("STDIO_PORT", port.to_string())
        .env("STDIO_ENV_NOTES_OWNER", "ops")
        .env("NOTES_OWNER", "must-not-leak")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let ready = format!("http://127.0.0.1:{port}/readyz");
    let mut up = false;
    for _ in 0..200 {
        if client.get(&ready).send().await.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the adapter never became ready");
    let config: sympozium_mcp_bridge::ServerConfig = serde_json::from_value(json!({
        "name": "notes", "url": format!("http://127.0.0.1:{port}/mcp"), "toolsPrefix": "notes"}))
    .unwrap();
    let env: sympozium_mcp_bridge::client::EnvLookup = std::sync::Arc::new(|_: &str| None);
    let session =
        sympozium_mcp_bridge::client::connect(&config, &env, Duration::from_secs(10)).await.unwrap();
    let tools = session.tools(Duration::from_secs(10)).await.unwrap();
    assert!(tools.iter().any(|t| t.name == "read_note"));
    let r = session
        .call(
            "read_note",
            json!({"name": "pager"}).as_object().unwrap().clone(),
            None,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let text = sympozium_mcp_bridge::content::texts(&r).join("");
    // Only STDIO_ENV_ variables reach the server, renamed.
    assert_eq!(text, "note pager (kept by ops): rotate the on-call pager on Mondays");
    let _ = adapter.kill();
    let _ = adapter.wait();
}

/// A server still starting when the run's pod starts (its Deployment scheduled with the run)
/// is retried, not dropped: it answers on the third attempt and its tools are published.
/// Without the retries the first attempt would name it unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_retries_a_server_that_comes_up_late() {
    let port = closed_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let pod = Pod::new(json!([{"name": "late", "url": format!("http://{addr}/mcp"), "toolsPrefix": "late"}]));
    let mut discover = pod.bridge(true);
    discover.env("MCP_DISCOVERY_ATTEMPTS", "20").env("MCP_DISCOVERY_INTERVAL_MS", "150");
    let mut child = discover.spawn().unwrap();
    // Two attempts fail first (the bridge's log says "retrying"), then the server starts.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(child.try_wait().unwrap().is_none(), "the bridge gave up on a server that is not up yet");
    let _kb = McpHttpServer::start(addr, KnowledgeBase::default(), None).await.unwrap();
    let status =
        tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(30))).await.unwrap();
    assert!(status.success());
    let manifest = pod.manifest();
    let names: Vec<&str> =
        manifest["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["late_lookup", "late_purge"], "{manifest}");
    assert!(manifest["unavailable"].as_array().is_none_or(|u| u.is_empty()), "{manifest}");
}

/// With one attempt a server that is down is reported at once (how tests and impatient
/// deployments shorten discovery; the defaults are 6 attempts 10 s apart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attempts_are_configurable() {
    let pod = Pod::new(json!([{"name": "off", "url": format!("http://127.0.0.1:{}/mcp", closed_port()),
        "toolsPrefix": "off"}]));
    let mut discover = pod.bridge(true);
    discover.env("MCP_DISCOVERY_ATTEMPTS", "1").env("MCP_DISCOVERY_INTERVAL_MS", "60000");
    let status = discover.status().unwrap();
    assert!(status.success());
    assert_eq!(pod.manifest()["unavailable"][0]["server"], "off");
    let help = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("MCP_DISCOVERY_ATTEMPTS") && help.contains("[default: 6]"), "{help}");
    assert!(help.contains("MCP_DISCOVERY_INTERVAL_MS") && help.contains("[default: 10000]"), "{help}");
}

/// The processes whose parent is `pid` (from `/proc/<pid>/stat`: field 4 is the parent).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // The command name (field 2) is in parentheses and may hold spaces.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
        if after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            out.push(child);
        }
    }
    out
}

async fn ready(client: &reqwest::Client, port: u16) -> bool {
    client.get(format!("http://127.0.0.1:{port}/readyz")).send().await.is_ok_and(|r| r.status().is_success())
}

/// A managed stdio server whose process dies (killed, crashed, OOM) is started again by the
/// adapter: the pod goes unready meanwhile, a call in between is a clear tool error, and then
/// the same client session and a fresh discovery (the bridge of the next run) work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_stdio_server_is_restarted_and_calls_and_discovery_work_again() {
    let port = closed_port();
    let mut adapter = Command::new(BIN)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("MCP_STDIO_ADAPTER", "true")
        .env("STDIO_CMD", notes_binary())
        .env("STDIO_ARGS", "[]")
        .env("STDIO_SERVER_NAME", "notes")
        .env("STDIO_PORT", port.to_string())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if ready(&http, port).await {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the adapter never became ready");
    let config: sympozium_mcp_bridge::ServerConfig = serde_json::from_value(json!({
        "name": "notes", "url": format!("http://127.0.0.1:{port}/mcp"), "toolsPrefix": "notes"}))
    .unwrap();
    let env: sympozium_mcp_bridge::client::EnvLookup = std::sync::Arc::new(|_: &str| None);
    let session =
        sympozium_mcp_bridge::client::connect(&config, &env, Duration::from_secs(10)).await.unwrap();
    let args = json!({"name": "pager"}).as_object().unwrap().clone();
    let read = |r: &rmcp::model::CallToolResult| sympozium_mcp_bridge::content::texts(r).join("");
    let before = session.call("read_note", args.clone(), None, Duration::from_secs(10)).await.unwrap();
    assert!(read(&before).contains("rotate the on-call pager"), "{before:?}");

    let old = children(adapter.id());
    assert_eq!(old.len(), 1, "one stdio server process: {old:?}");
    let status = Command::new("kill").args(["-9", &old[0].to_string()]).status().unwrap();
    assert!(status.success());
    // Down: unready, and a call says the server is not running (no hang).
    let mut saw_down = false;
    for _ in 0..40 {
        if !ready(&http, port).await {
            saw_down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(saw_down, "the pod stayed ready with its server dead");
    let during = session.call("read_note", args.clone(), None, Duration::from_secs(10)).await;
    if let Err(e) = &during {
        assert!(e.to_string().contains("not running"), "{e}");
    }
    // Back (the adapter waits 1 s before starting it again): a new process, ready again.
    let mut back = false;
    for _ in 0..200 {
        if ready(&http, port).await {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the stdio server was not started again");
    let new = children(adapter.id());
    assert!(new.len() == 1 && new != old, "a new server process: {old:?} → {new:?}");
    // The session the bridge already had works again …
    let after = session.call("read_note", args.clone(), None, Duration::from_secs(10)).await.unwrap();
    assert_eq!(read(&after), read(&before));
    // … and discovery from scratch lists the tools again.
    let pod = Pod::new(
        json!([{"name": "notes", "url": format!("http://127.0.0.1:{port}/mcp"), "toolsPrefix": "notes"}]),
    );
    assert!(pod.bridge(true).status().unwrap().success());
    let manifest = pod.manifest();
    assert!(
        manifest["tools"].as_array().unwrap().iter().any(|t| t["name"] == "notes_read_note"),
        "{manifest}"
    );
    let _ = adapter.kill();
    let _ = adapter.wait();
}
