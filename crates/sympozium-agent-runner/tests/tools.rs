#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The built-in tools against real files, real HTTP servers and a real shell.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use common::Pod;
use serde_json::{Value, json};
use sympozium_agent_runner::policy::ToolPolicy;
use sympozium_agent_runner::tools::{
    EditFile, ExecuteCommand, FetchUrl, ListDirectory, ReadFile, ScheduleTask, SendChannelMessage,
    SpawnSubagent, Tool, ToolOutput, WriteFile, load_mcp_tools,
};

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn err_text(out: &ToolOutput) -> String {
    match out {
        ToolOutput::Err(_) => out.text(),
        ToolOutput::Ok(t) => panic!("expected an error, got Ok({t})"),
    }
}

fn ok_text(out: ToolOutput) -> String {
    match out {
        ToolOutput::Ok(t) => t,
        ToolOutput::Err(e) => panic!("expected success, got Err({e})"),
    }
}

#[tokio::test]
async fn path_escapes_are_refused_by_component() {
    let pod = Pod::new();
    let read = ReadFile { roots: pod.roots() };
    let write = WriteFile { roots: pod.roots() };
    std::fs::write(pod.tmp.join("ok.txt"), "fine").unwrap();
    assert_eq!(ok_text(read.call(json!({"path": "/tmp/ok.txt"})).await), "fine");
    for bad in ["/tmpX/secret", "/workspace/../etc/passwd", "/etc/passwd", "/workspacefoo/a", "/"] {
        let text = err_text(&read.call(json!({"path": bad})).await);
        assert!(text.starts_with("Error: access denied"), "{bad}: {text}");
    }
    // /skills and /ipc are readable but not writable.
    let text = err_text(&write.call(json!({"path": "/skills/x.md", "content": "x"})).await);
    assert!(text.contains("access denied"));
    // A symlink inside the workspace that points outside it is refused.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "s3cr3t").unwrap();
    std::os::unix::fs::symlink(outside.path(), pod.workspace.join("link")).unwrap();
    let text = err_text(&read.call(json!({"path": "/workspace/link/secret"})).await);
    assert!(text.contains("access denied"), "{text}");
    let text = err_text(&write.call(json!({"path": "/workspace/link/new", "content": "x"})).await);
    assert!(text.contains("access denied"), "{text}");
    assert!(!outside.path().join("new").exists());
}

#[tokio::test]
async fn write_edit_read_and_list() {
    let pod = Pod::new();
    let roots = pod.roots();
    let out = WriteFile { roots: roots.clone() }
        .call(json!({"path": "/workspace/src/main.rs", "content": "fn main() { a(); a(); }"}))
        .await;
    assert_eq!(ok_text(out), "Successfully wrote 23 bytes to /workspace/src/main.rs");
    let edit = EditFile { roots: roots.clone() };
    let ambiguous = err_text(
        &edit.call(json!({"path": "/workspace/src/main.rs", "old_text": "a()", "new_text": "b()"})).await,
    );
    assert!(ambiguous.contains("occurs 2 times"), "{ambiguous}");
    let missing = err_text(
        &edit.call(json!({"path": "/workspace/src/main.rs", "old_text": "zzz", "new_text": "y"})).await,
    );
    assert!(missing.contains("not found"));
    ok_text(
        edit.call(json!({"path": "/workspace/src/main.rs", "old_text": "{ a();", "new_text": "{ b();"}))
            .await,
    );
    assert_eq!(
        std::fs::read_to_string(pod.workspace.join("src/main.rs")).unwrap(),
        "fn main() { b(); a(); }"
    );
    let listing = ok_text(ListDirectory { roots: roots.clone() }.call(json!({"path": "/workspace"})).await);
    assert_eq!(
        listing,
        format!("{:<6} {:>8}  src", "dir", std::fs::metadata(pod.workspace.join("src")).unwrap().len())
    );
    let big = "x".repeat(9000);
    std::fs::write(pod.workspace.join("big.txt"), &big).unwrap();
    let read = ok_text(ReadFile { roots }.call(json!({"path": "/workspace/big.txt"})).await);
    assert!(read.ends_with("... (truncated, file is 9000 bytes)"));
}

#[tokio::test]
async fn fetch_url_refuses_internal_addresses_and_redirects_into_them() {
    let secret = serve(Router::new().route("/", get(|| async { "internal secret" }))).await;
    let target = format!("http://{secret}/");
    let redirector = serve(Router::new().route(
        "/go",
        get(move || {
            let t = target.clone();
            async move { Redirect::temporary(&t) }
        }),
    ))
    .await;
    let open = FetchUrl { policy: ToolPolicy::default() };
    for url in [
        "http://127.0.0.1/".to_string(),
        "http://10.0.0.1/".to_string(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[::1]/".to_string(),
        "http://localhost/".to_string(),
        format!("http://{secret}/"),
    ] {
        let text = err_text(&open.call(json!({"url": url})).await);
        assert!(text.contains("refusing to fetch"), "{url}: {text}");
    }
    let text = err_text(&open.call(json!({"url": "file:///etc/passwd"})).await);
    assert!(text.contains("only http and https"));
    // The policy allows the redirector only: the redirect into the other port is refused.
    let policy = ToolPolicy::from_json(
        &json!({"allowedEgress": [{"host": "127.0.0.1", "port": redirector.port()}]}).to_string(),
    )
    .unwrap();
    let guarded = FetchUrl { policy };
    let text = err_text(&guarded.call(json!({"url": format!("http://{redirector}/go")})).await);
    assert!(text.contains("refusing to fetch") && text.contains(&secret.port().to_string()), "{text}");
}

#[tokio::test]
async fn fetch_url_converts_html_and_reports_http_errors() {
    let app = Router::new()
        .route(
            "/page",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    "<html><head><title>t</title></head><body><h1>Status</h1><p>All systems go &amp; green</p>\
                     <script>var x = 1;</script></body></html>",
                )
            }),
        )
        .route("/missing", get(|| async { (StatusCode::NOT_FOUND, "no such page").into_response() }))
        .route("/hop", get(|| async { Redirect::temporary("/page") }))
        .route("/ua", get(|req: axum::http::Request<axum::body::Body>| async move {
            req.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
        }));
    let addr = serve(app).await;
    let policy = ToolPolicy::from_json(r#"{"allowedEgress":[{"host":"127.0.0.1"}]}"#).unwrap();
    let fetch = FetchUrl { policy };
    let page = ok_text(fetch.call(json!({"url": format!("http://{addr}/hop")})).await);
    assert_eq!(page, "Status\n\nAll systems go & green");
    let missing = err_text(&fetch.call(json!({"url": format!("http://{addr}/missing")})).await);
    assert_eq!(missing, "Error: HTTP 404 Not Found\nno such page");
    let ua = ok_text(fetch.call(json!({"url": format!("http://{addr}/ua")})).await);
    assert_eq!(ua, "Sympozium/1.0 (agent-runner)");
    let cut = ok_text(fetch.call(json!({"url": format!("http://{addr}/page"), "maxChars": 6})).await);
    assert!(cut.starts_with("Status\n\n[content truncated: showing 6 of"), "{cut}");
}

/// A sidecar doing what `tool-executor` does: claim requests, run them with bash, write results.
fn spawn_sidecar(dir: std::path::PathBuf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for _ in 0..400 {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries.filter_map(Result::ok) {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let Some(id) = name.strip_prefix("exec-request-").and_then(|n| n.strip_suffix(".json"))
                    else {
                        continue;
                    };
                    let Ok(bytes) = std::fs::read(entry.path()) else { continue };
                    let req: Value = serde_json::from_slice(&bytes).unwrap();
                    if std::fs::create_dir(dir.join(format!(".claim-{id}"))).is_err() {
                        continue;
                    }
                    // `__print_meta__` lets a test see the request's trace context.
                    let command = req["command"].as_str().unwrap();
                    let command = if command == "__print_meta__" {
                        format!("echo -n '{}'", req["_meta"])
                    } else {
                        command.to_string()
                    };
                    let out =
                        tokio::process::Command::new("bash").arg("-c").arg(command).output().await.unwrap();
                    let result = json!({"id": id, "exitCode": out.status.code().unwrap_or(-1),
                        "stdout": String::from_utf8_lossy(&out.stdout), "stderr": String::from_utf8_lossy(&out.stderr),
                        "timedOut": false});
                    let tmp = dir.join(format!("exec-result-{id}.json.tmp"));
                    std::fs::write(&tmp, result.to_string()).unwrap();
                    std::fs::rename(tmp, dir.join(format!("exec-result-{id}.json"))).unwrap();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

#[tokio::test]
async fn execute_command_round_trips_through_the_sidecar_protocol() {
    let pod = Pod::new();
    let sidecar = spawn_sidecar(pod.ipc.join("tools"));
    let meta = json!({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"});
    let exec = ExecuteCommand {
        tools_dir: pod.ipc.join("tools"),
        sidecars: vec!["k8s-ops".into()],
        sandbox: false,
        meta: Some(meta.clone()),
        pickup_timeout: Duration::from_secs(10),
    };
    // The sidecar receives the trace context with the request.
    let seen_meta = ok_text(exec.call(json!({"command": "__print_meta__"})).await);
    assert_eq!(serde_json::from_str::<Value>(&seen_meta).unwrap(), meta);
    assert!(exec.spec().parameters["properties"].get("skill").is_none());
    let out = ok_text(exec.call(json!({"command": "echo hello; echo oops >&2; exit 3"})).await);
    assert_eq!(out, "hello\n\nSTDERR: oops\n\n(exit code: 3)");
    assert_eq!(ok_text(exec.call(json!({"command": "true"})).await), "(no output)");
    // Request and result files are cleaned up.
    let left: Vec<_> = std::fs::read_dir(pod.ipc.join("tools"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("exec-"))
        .collect();
    assert!(left.is_empty());
    sidecar.abort();
}

#[tokio::test]
async fn execute_command_routes_to_the_named_sidecar() {
    let pod = Pod::new();
    let tools = pod.ipc.join("tools");
    std::fs::create_dir_all(tools.join("github-gitops")).unwrap();
    let gitops = spawn_sidecar(tools.join("github-gitops"));
    let exec = ExecuteCommand {
        tools_dir: tools.clone(),
        sidecars: vec!["k8s-ops".into(), "github-gitops".into()],
        sandbox: false,
        meta: None,
        pickup_timeout: Duration::from_secs(10),
    };
    assert_eq!(exec.spec().parameters["properties"]["skill"]["enum"], json!(["k8s-ops", "github-gitops"]));
    let out = ok_text(exec.call(json!({"command": "echo routed", "skill": "github-gitops"})).await);
    assert_eq!(out, "routed\n");
    let unknown = err_text(&exec.call(json!({"command": "x", "skill": "nope"})).await);
    assert!(unknown.contains("no sidecar for skill \"nope\""));
    gitops.abort();
}

#[tokio::test]
async fn with_a_sandbox_commands_go_to_it_unless_a_skill_sidecar_is_named() {
    let pod = Pod::new();
    let tools = pod.ipc.join("tools");
    std::fs::create_dir_all(tools.join("sandbox")).unwrap();
    // Only the sandbox container serves commands here.
    let sandbox = spawn_sidecar(tools.join("sandbox"));
    let exec = ExecuteCommand {
        tools_dir: tools.clone(),
        sidecars: vec!["k8s-ops".into()],
        sandbox: true,
        meta: None,
        pickup_timeout: Duration::from_millis(600),
    };
    assert_eq!(exec.spec().parameters["properties"]["skill"]["enum"], json!(["sandbox", "k8s-ops"]));
    assert!(exec.spec().description.contains("sandbox container"));
    assert_eq!(ok_text(exec.call(json!({"command": "echo in the sandbox"})).await), "in the sandbox\n");
    assert_eq!(ok_text(exec.call(json!({"command": "echo named", "skill": "sandbox"})).await), "named\n");
    // A command for the skill goes to the skill's own directory, never to the sandbox.
    let skill = err_text(&exec.call(json!({"command": "echo wrong place", "skill": "k8s-ops"})).await);
    assert!(skill.contains("no skill sidecar picked up the command"), "{skill}");
    // Nothing is ever left where every executor would look.
    let shared: Vec<_> = std::fs::read_dir(&tools)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().unwrap().is_file())
        .collect();
    assert!(shared.is_empty(), "{shared:?}");
    sandbox.abort();

    // A sandbox alone: the tool is offered without a `skill` choice.
    let alone = ExecuteCommand {
        tools_dir: tools,
        sidecars: vec![],
        sandbox: true,
        meta: None,
        pickup_timeout: Duration::from_millis(600),
    };
    assert!(alone.spec().parameters["properties"].get("skill").is_none());
}

#[tokio::test]
async fn ipc_request_tools_write_what_the_bridge_expects() {
    let pod = Pod::new();
    let send = SendChannelMessage { dir: pod.ipc.join("messages") };
    ok_text(send.call(json!({"channel": "telegram", "text": "deploy done", "chatId": "12345"})).await);
    assert!(err_text(&send.call(json!({"channel": "fax", "text": "x"})).await).contains("unknown channel"));
    assert_eq!(
        pod.ipc_files("messages"),
        vec![json!({"channel": "telegram", "chatId": "12345", "text": "deploy done"})]
    );

    let mut schedule = ScheduleTask::new(pod.ipc.clone());
    schedule.answer_timeout = Duration::from_secs(1);
    assert!(
        err_text(&schedule.call(json!({"name": "n", "action": "create", "task": "t"})).await)
            .contains("needs both")
    );
    assert!(
        err_text(
            &schedule
                .call(json!({"name": "n", "action": "create", "schedule": "every day", "task": "t"}))
                .await
        )
        .contains("5-field cron")
    );
    assert!(pod.ipc_files("schedules").is_empty(), "refused locally, nothing sent");
    // Nobody answers: the agent is told the outcome is unknown, not that it worked.
    let unanswered = err_text(
        &schedule
            .call(json!({"name": "nightly", "action": "create", "schedule": "0 2 * * *", "task": "report"}))
            .await,
    );
    assert!(unanswered.contains("no answer came within 1s"), "{unanswered}");
    let sent = pod.ipc_files("schedules");
    assert_eq!(sent.len(), 1);
    let id = sent[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        sent[0],
        json!({"id": id, "name": "nightly", "action": "create", "schedule": "0 2 * * *", "task": "report"})
    );
    // The platform's refusal becomes the tool's error, with the reason.
    let ipc = pod.ipc.clone();
    let refuse = tokio::spawn(async move {
        for _ in 0..100 {
            for req in std::fs::read_dir(ipc.join("schedules")).unwrap().filter_map(Result::ok) {
                let req: Value = serde_json::from_slice(&std::fs::read(req.path()).unwrap()).unwrap();
                let rid = req["id"].as_str().unwrap();
                let answer = ipc.join(format!("input/schedule-result-{rid}.json"));
                if !answer.exists() {
                    let result = json!({"id": rid, "name": "weekly", "action": "delete",
                        "schedule": "inst-weekly", "accepted": false, "error": "schedule \"inst-weekly\" does not exist"});
                    std::fs::write(answer, result.to_string()).unwrap();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    schedule.answer_timeout = Duration::from_secs(10);
    let refused = err_text(&schedule.call(json!({"name": "weekly", "action": "delete"})).await);
    assert!(refused.contains("refused: schedule \"inst-weekly\" does not exist"), "{refused}");
    refuse.abort();

    let spawn = SpawnSubagent {
        ipc: pod.ipc.clone(),
        parent_run_id: "run-1".into(),
        instance_name: "inst".into(),
        namespace: "ns".into(),
    };
    // The platform answers the spawn request with the child's result.
    let ipc = pod.ipc.clone();
    let answer = tokio::spawn(async move {
        for _ in 0..100 {
            if let Some(req) = std::fs::read_dir(ipc.join("spawn")).unwrap().filter_map(Result::ok).next() {
                let req: Value = serde_json::from_slice(&std::fs::read(req.path()).unwrap()).unwrap();
                let id = req["id"].as_str().unwrap();
                let result = json!({"id": id, "status": "success", "response": "child says hi"});
                std::fs::write(ipc.join(format!("input/spawn-result-{id}.json")), result.to_string())
                    .unwrap();
                return req;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no spawn request");
    });
    let out = ok_text(spawn.call(json!({"task": "summarise logs", "wait": true, "timeout": 10})).await);
    assert_eq!(out, "child says hi");
    let req = answer.await.unwrap();
    assert_eq!(req["task"], "summarise logs");
    assert_eq!(req["parentRunId"], "run-1");
}

#[tokio::test]
async fn mcp_tools_load_from_the_manifest_and_call_through_files() {
    let pod = Pod::new();
    let tools_dir = pod.ipc.join("tools");
    let manifest = json!({"tools": [
        {"name": "grafana_query", "description": "Query Grafana", "server": "grafana", "timeout": 5,
         "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}}},
        {"name": "grafana_fail", "description": "Always fails", "server": "grafana", "timeout": 5}
    ]});
    std::fs::write(tools_dir.join("mcp-tools.json"), manifest.to_string()).unwrap();
    let meta = json!({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"});
    let tools = load_mcp_tools(&tools_dir, Duration::ZERO, Some(meta.clone())).await;
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0].spec().description, "Query Grafana [MCP: grafana]");
    assert_eq!(tools[1].spec().parameters, json!({"type": "object"}));
    // The bridge: answer each request file.
    let dir = tools_dir.clone();
    let bridge = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..200 {
            for n in 1..=2 {
                let req = dir.join(format!("mcp-request-{n}.json"));
                if let Ok(bytes) = std::fs::read(&req) {
                    let v: Value = serde_json::from_slice(&bytes).unwrap();
                    std::fs::remove_file(&req).unwrap();
                    let result = if v["tool"] == "grafana_query" {
                        json!({"id": v["id"], "success": true, "content": [{"type": "text", "text": "cpu=42%"}, {"type": "text", "text": "mem=1G"}]})
                    } else {
                        json!({"id": v["id"], "success": false, "error": "datasource unavailable"})
                    };
                    std::fs::write(dir.join(format!("mcp-result-{n}.json")), result.to_string()).unwrap();
                    seen.push(v);
                }
            }
            if seen.len() == 2 {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seen
    });
    assert_eq!(ok_text(tools[0].call(json!({"q": "cpu"})).await), "cpu=42%\nmem=1G");
    assert_eq!(err_text(&tools[1].call(json!({})).await), "Error: MCP Error: datasource unavailable");
    let seen = bridge.await.unwrap();
    assert_eq!(seen[0]["server"], "grafana");
    assert_eq!(seen[0]["arguments"], json!({"q": "cpu"}));
    assert_eq!(seen[0]["_meta"], meta);
}

#[tokio::test]
async fn an_unreachable_mcp_server_is_not_offered_but_its_calls_reach_the_bridge_for_a_clear_error() {
    let pod = Pod::new();
    let tools_dir = pod.ipc.join("tools");
    let manifest = json!({"tools": [{"name": "wiki_page", "description": "A page", "server": "wiki-2", "timeout": 5}],
        "unavailable": [{"server": "wiki", "toolsPrefix": "wiki", "error": "connection refused"}]});
    std::fs::write(tools_dir.join("mcp-tools.json"), manifest.to_string()).unwrap();
    let tools = load_mcp_tools(&tools_dir, Duration::ZERO, None).await;
    assert_eq!(tools.len(), 2);
    let standin = &tools[1];
    assert!(!standin.offered() && tools[0].offered());
    assert!(standin.handles("wiki_search") && !standin.handles("wiki_") && !standin.handles("wikisearch"));
    let dir = tools_dir.clone();
    let bridge = tokio::spawn(async move {
        for _ in 0..200 {
            if let Ok(bytes) = std::fs::read(dir.join("mcp-request-1.json")) {
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                let result = json!({"id": "1", "success": false,
                    "error": format!("MCP server {} is unreachable at http://wiki/mcp: connection refused", v["server"])});
                std::fs::write(dir.join("mcp-result-1.json"), result.to_string()).unwrap();
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Value::Null
    });
    let out = standin.call_as("wiki_search", json!({"q": "runbook"})).await;
    assert_eq!(
        err_text(&out),
        "Error: MCP Error: MCP server \"wiki\" is unreachable at http://wiki/mcp: connection refused"
    );
    let seen = bridge.await.unwrap();
    assert_eq!((seen["tool"].as_str(), seen["server"].as_str()), (Some("wiki_search"), Some("wiki")));
}

#[tokio::test]
async fn execute_command_fails_fast_when_no_sidecar_claims_it() {
    let pod = Pod::new();
    let exec = ExecuteCommand {
        tools_dir: pod.ipc.join("tools"),
        sidecars: vec!["k8s-ops".into()],
        sandbox: false,
        meta: None,
        pickup_timeout: Duration::from_millis(400),
    };
    let started = std::time::Instant::now();
    let text = err_text(&exec.call(json!({"command": "kubectl get pods", "timeout": 60})).await);
    assert!(text.starts_with("Error: no skill sidecar picked up the command within 0.4s"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(60), "must not wait for the command timeout");
    // The unclaimed request is withdrawn so a late sidecar does not run it.
    assert!(std::fs::read_dir(pod.ipc.join("tools")).unwrap().next().is_none());
}

#[tokio::test]
async fn the_runner_runs_commands_through_a_sidecar_end_to_end() {
    use sympozium_testkit::fake_llm::{FakeLlm, Turn};
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    let sidecar = spawn_sidecar(pod.ipc.join("tools"));
    fake.script([
        Turn::tool_call("execute_command", json!({"command": "echo pods: 3 running"})),
        Turn::text("3 pods are running."),
    ]);
    let base = fake.openai_base_url();
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let env = [
        ("TASK", "How many pods run?"),
        ("MODEL_BASE_URL", base.as_str()),
        ("TOOLS_ENABLED", "true"),
        ("SKILL_SIDECARS", "k8s-ops"),
        ("TRACEPARENT", tp),
        ("AGENT_NAMESPACE", "team-a"),
        (
            "SKILL_RBAC",
            r#"{"k8s-ops": {"namespace": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}}"#,
        ),
    ];
    let out = common::run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result()["response"], "3 pods are running.");
    let requests = fake.requests();
    assert!(requests[0].tool_names().contains(&"execute_command".to_string()));
    assert!(requests[0].system_prompt().contains("skill sidecar (k8s-ops)"));
    // The prompt states the run's real permissions.
    assert!(requests[0].system_prompt().contains("- k8s-ops, in namespace team-a: get, list pods"));
    assert!(!requests[0].system_prompt().contains("cluster-admin"));
    let tool = requests[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap()
        .clone();
    assert_eq!(tool["content"], "pods: 3 running\n");
    sidecar.abort();
}
