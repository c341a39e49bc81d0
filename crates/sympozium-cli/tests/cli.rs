//! The `sympozium` binary against the real test control plane: listings in every format,
//! pack activation, `run` waiting for the answer, and one-line errors for user mistakes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sympozium_api::{AgentRun, PersonaPack};
use sympozium_testkit::{TestPlane, wait_for};

async fn sympozium(plane: &TestPlane, ns: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium"))
        .args(["--kubeconfig", plane.kubeconfig().to_str().unwrap(), "-n", ns])
        .args(args)
        .env_remove("SYMPOZIUM_API_KEY")
        .output()
        .await
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn setup(prefix: &str) -> (TestPlane, Client, String) {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, prefix).await.unwrap().name().to_string();
    let samples = sympozium_testkit::repo_root().join("deploy/samples");
    plane.kubectl(&["apply", "-n", &ns, "-f", samples.to_str().unwrap()]).unwrap();
    (plane, client, ns)
}

#[tokio::test]
async fn listings_in_table_json_and_yaml() {
    let (plane, _client, ns) = setup("cli-list").await;
    let out = sympozium(&plane, &ns, &["instances", "list"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let header: Vec<_> =
        text.lines().next().unwrap().split("  ").map(str::trim).filter(|s| !s.is_empty()).collect();
    assert_eq!(header, ["NAME", "PHASE", "CHANNELS", "AGENT PODS", "COST", "AGE"]);
    assert!(text.lines().any(|l| l.starts_with("my-agent") && l.contains("telegram")), "{text}");

    let out = sympozium(&plane, &ns, &["instances", "list", "-o", "json"]).await;
    let items: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(items[0]["spec"]["agents"]["default"]["model"], "gpt-4.1");
    let out = sympozium(&plane, &ns, &["instances", "get", "my-agent", "-o", "yaml"]).await;
    assert!(stdout(&out).contains("toolsPrefix: gh"), "{}", stdout(&out));

    for (args, expected) in [
        (vec!["schedules", "list"], "my-agent-nightly"),
        (vec!["policies", "list"], "restrictive"),
        (vec!["skills", "list"], "k8s-ops"),
        (vec!["runs", "list"], "my-agent-web-endpoint"),
        (vec!["packs", "list"], "platform-team"),
    ] {
        let out = sympozium(&plane, &ns, &args).await;
        assert!(
            out.status.success() && stdout(&out).contains(expected),
            "{args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
    let out = sympozium(&plane, &ns, &["packs", "show", "platform-team"]).await;
    assert!(
        stdout(&out).contains("security-guardian") && stdout(&out).contains("heartbeat 30m"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn packs_activate_with_a_key_secret_and_deactivate() {
    let (plane, client, ns) = setup("cli-packs").await;
    let pack_api: Api<PersonaPack> = Api::namespaced(client.clone(), &ns);
    pack_api
        .patch("platform-team", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"enabled": false}})))
        .await
        .unwrap();

    let out =
        sympozium(&plane, &ns, &["packs", "activate", "platform-team", "--provider", "anthropic"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("needs an API key"), "{}", stderr(&out));

    let out = sympozium(
        &plane,
        &ns,
        &[
            "packs",
            "activate",
            "platform-team",
            "--provider",
            "anthropic",
            "--api-key",
            "sk-ant-test",
            "--model",
            "claude-x",
            "--sandbox",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let pack = pack_api.get("platform-team").await.unwrap();
    assert_eq!(pack.spec.enabled, Some(true));
    assert!(pack.spec.sandbox.is_some_and(|s| s.enabled), "--sandbox turns the sandbox container on");
    assert_eq!(pack.spec.auth_refs[0].secret, "platform-team-anthropic-key");
    assert_eq!(
        pack.spec.personas[0].model.as_deref(),
        Some("claude-sonnet-4-20250514"),
        "a persona's own model stays"
    );
    let secret =
        Api::<Secret>::namespaced(client.clone(), &ns).get("platform-team-anthropic-key").await.unwrap();
    assert!(secret.data.unwrap().contains_key("ANTHROPIC_API_KEY"));
    assert!(
        !stdout(&out).contains("sk-ant-test") && !stderr(&out).contains("sk-ant-test"),
        "the key is never printed"
    );

    let out = sympozium(&plane, &ns, &["packs", "deactivate", "platform-team"]).await;
    assert!(out.status.success());
    assert_eq!(pack_api.get("platform-team").await.unwrap().spec.enabled, Some(false));
}

#[tokio::test]
async fn run_waits_for_the_answer_and_reports_failures() {
    let (plane, client, ns) = setup("cli-run").await;
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    // Stands in for the controller: finishes the first run it sees.
    let finisher = |verdict: Value| {
        let runs = runs.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                let list =
                    runs.list(&ListParams::default().labels("sympozium.ai/instance=my-agent")).await.unwrap();
                if let Some(r) = list
                    .items
                    .into_iter()
                    .find(|r| r.name_any() != "my-agent-web-endpoint" && r.status.is_none())
                {
                    let body =
                        json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "status": verdict});
                    runs.patch_status(
                        &r.name_any(),
                        &PatchParams::apply("fake-controller"),
                        &Patch::Apply(&body),
                    )
                    .await
                    .unwrap();
                    return r;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no run was created");
        })
    };
    let done = finisher(json!({"phase": "Succeeded", "result": "All pods healthy.",
        "tokenUsage": {"inputTokens": 900, "outputTokens": 40, "totalTokens": 940, "toolCalls": 2, "durationMs": 3100}}));
    let out = sympozium(&plane, &ns, &["run", "my-agent", "check the cluster", "--timeout", "60s"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "All pods healthy.");
    assert!(stderr(&out).contains("940 total") && stderr(&out).contains("2 tool calls"), "{}", stderr(&out));
    let created = done.await.unwrap();
    assert_eq!(created.spec.model.provider, "openai");
    assert_eq!(created.spec.model.auth_secret_ref, "openai-key");
    assert_eq!(created.spec.task, "check the cluster");

    let failing = finisher(json!({"phase": "Failed", "error": "model returned 401"}));
    let out = sympozium(&plane, &ns, &["run", "my-agent", "again"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("failed: model returned 401"), "{}", stderr(&out));
    failing.await.unwrap();

    let out = sympozium(&plane, &ns, &["run", "my-agent", "later", "--no-wait"]).await;
    assert!(out.status.success() && stdout(&out).starts_with("agentrun/my-agent-"), "{}", stdout(&out));
    let name = stdout(&out).trim().trim_start_matches("agentrun/").trim_end_matches(" created").to_string();
    wait_for(&runs, &name, "created run", Duration::from_secs(10), |r: Option<&AgentRun>| r.is_some())
        .await
        .unwrap();
}

#[tokio::test]
async fn user_mistakes_get_one_line_errors() {
    let (plane, _client, ns) = setup("cli-errors").await;
    // A run nobody executes (no controller here): it never gets a pod.
    let waiting = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "waiting-run"},
        "spec": {"instanceRef": "my-agent", "agentId": "primary", "sessionKey": "s", "task": "t",
                 "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "k"}}});
    let runs: Api<AgentRun> = Api::namespaced(plane.client().await.unwrap(), &ns);
    runs.create(&Default::default(), &serde_json::from_value(waiting).unwrap()).await.unwrap();
    for (args, expected) in [
        (vec!["instances", "get", "ghost"], "instance \"ghost\" not found in namespace"),
        (vec!["run", "ghost", "do it"], "instance \"ghost\" not found"),
        (vec!["run", "my-agent", "   "], "the task is empty"),
        (vec!["run", "my-agent", "t", "--timeout", "soon"], "--timeout \"soon\""),
        (vec!["packs", "activate", "no-such-pack", "--api-key", "k"], "pack \"no-such-pack\" not found"),
        (vec!["runs", "logs", "ghost"], "AgentRun \"ghost\" not found"),
        (vec!["runs", "logs", "waiting-run"], "run \"waiting-run\" is Pending and it has no pod yet"),
        (vec!["runs", "logs", "waiting-run", "-f", "--wait", "1s"], "pass --follow to wait"),
    ] {
        let out = sympozium(&plane, &ns, &args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(err.starts_with("error: ") && err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line: {err}");
    }
    // No cluster at all.
    let dir = std::env::temp_dir().join(format!("sympozium-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n\
         contexts: [{{name: c, context: {{cluster: c, user: u}}}}]\ncurrent-context: c\nusers: [{{name: u, user: {{}}}}]\n")).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium"))
        .args(["--kubeconfig", kubeconfig.to_str().unwrap(), "instances", "list"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot reach the cluster at http://127.0.0.1:"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn completions_and_the_dev_stack_without_a_stack() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sympozium")).args(args).output().unwrap()
    };
    let out = run(&["completions", "bash"]);
    assert!(out.status.success() && stdout(&out).contains("_sympozium()"), "{}", stderr(&out));
    assert!(stdout(&out).contains("onboard") || stdout(&out).contains("instances"));

    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let out = run(&["dev", "--state-dir", state_dir, "kubeconfig"]);
    assert_eq!(stdout(&out).trim(), format!("{state_dir}/kubeconfig"));
    let out = run(&["dev", "--state-dir", state_dir, "status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("not running (start it with `sympozium dev up`)"), "{}", stdout(&out));
    let out = run(&["dev", "--repo", "/", "--state-dir", state_dir, "up"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not a Sympozium checkout"), "{}", stderr(&out));
}

#[tokio::test]
async fn schedules_trigger_runs_the_task_now_through_the_controller() {
    use std::sync::Arc;
    use sympozium_api::SympoziumSchedule;
    use sympozium_controller::{context::Context, schedule, settings::Settings};
    let (plane, client, ns) = setup("cli-trigger").await;
    let ctx = Context::new(
        client.clone(),
        Settings::default(),
        sympozium_kube::metrics::Metrics::default(),
        Some(ns.clone()),
        "test",
    )
    .with_schedule_poll(Duration::from_millis(300));
    let controller = tokio::spawn(schedule::run(Arc::new(ctx)));
    let sched = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumSchedule", "metadata": {"name": "yearly"},
        "spec": {"instanceRef": "my-agent", "schedule": "0 9 1 1 *", "task": "annual review"}});
    let schedules: Api<SympoziumSchedule> = Api::namespaced(client.clone(), &ns);
    schedules.patch("yearly", &PatchParams::apply("test"), &Patch::Apply(&sched)).await.unwrap();

    let out = sympozium(&plane, &ns, &["schedules", "trigger", "yearly"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "agentrun/yearly-1 created from schedule yearly");
    let run = Api::<AgentRun>::namespaced(client.clone(), &ns).get("yearly-1").await.unwrap();
    assert_eq!(run.spec.task, "annual review");

    let out = sympozium(&plane, &ns, &["schedules", "trigger", "ghost"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("schedule \"ghost\" not found"), "{}", stderr(&out));

    // Nobody picks the request up: a clear error, and the request is withdrawn.
    controller.abort();
    let _ = controller.await;
    let out = sympozium(&plane, &ns, &["schedules", "trigger", "yearly", "--wait", "1s"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is the controller running?"), "{}", stderr(&out));
    let s = schedules.get("yearly").await.unwrap();
    assert!(!s.annotations().contains_key("sympozium.ai/run-now"), "the unanswered request is withdrawn");
}

#[tokio::test]
async fn mcp_servers_and_feature_gates() {
    let (plane, client, ns) = setup("cli-mcp").await;
    let out = sympozium(
        &plane,
        &ns,
        &["mcp-servers", "create", "search", "--prefix", "search", "--url", "http://mcp.example:8080/mcp"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "mcpserver/search created");
    let out = sympozium(&plane, &ns, &["mcp-servers", "list"]).await;
    let list = stdout(&out);
    assert!(
        list.starts_with("NAME") && list.contains("search") && list.contains("http://mcp.example:8080/mcp"),
        "{list}"
    );
    // Without a sub-command: the same list (the AGE column, last, may tick between the two).
    let rows = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.rsplit_once(char::is_whitespace).map_or(l, |(head, _)| head).trim_end().to_string())
            .collect()
    };
    assert_eq!(rows(&stdout(&sympozium(&plane, &ns, &["mcp-servers"]).await)), rows(&list));
    let described = stdout(&sympozium(&plane, &ns, &["mcp-servers", "describe", "search"]).await);
    assert!(
        described.contains("Prefix:     search_") && described.contains("Tools:      not discovered yet"),
        "{described}"
    );
    let got: Value =
        serde_json::from_str(&stdout(&sympozium(&plane, &ns, &["mcp", "get", "search"]).await)).unwrap();
    assert_eq!(got["spec"]["toolsPrefix"], "search");
    assert_eq!(got["spec"]["transportType"], "http");
    // Mistakes: one line, the field and the reason.
    for (args, expected) in [
        (vec!["mcp-servers", "create", "search", "--prefix", "s2", "--url", "http://x"], "already exists"),
        (vec!["mcp-servers", "create", "bad", "--prefix", "1gh", "--url", "http://x"], "toolsPrefix"),
        (vec!["mcp-servers", "create", "local", "--prefix", "fs", "--transport", "stdio"], "pass --image"),
        (vec!["mcp-servers", "delete", "ghost"], "MCP server \"ghost\" not found"),
        (vec!["features", "enable", "teleport", "--policy", "permissive"], "unknown feature \"teleport\""),
        (vec!["features", "list", "--policy", "ghost"], "policy \"ghost\" not found"),
    ] {
        let out = sympozium(&plane, &ns, &args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(expected) && err.trim_end().lines().count() == 1, "{args:?}: {err}");
    }
    let out = sympozium(&plane, &ns, &["mcp-servers", "delete", "search"]).await;
    assert_eq!(stdout(&out).trim(), "mcpserver/search deleted");

    // Feature gates of a sample policy.
    let policy = Api::<sympozium_api::SympoziumPolicy>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .next()
        .expect("the samples include policies")
        .name_any();
    let out = sympozium(&plane, &ns, &["features", "disable", "code-execution", "--policy", &policy]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sympozium(&plane, &ns, &["features", "enable", "sub-agents", "--policy", &policy]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let p =
        Api::<sympozium_api::SympoziumPolicy>::namespaced(client.clone(), &ns).get(&policy).await.unwrap();
    let gates = p.spec.feature_gates.unwrap();
    assert_eq!((gates.get("code-execution"), gates.get("sub-agents")), (Some(&false), Some(&true)));
    let listed = stdout(&sympozium(&plane, &ns, &["features", "list", "--policy", &policy]).await);
    assert!(
        listed.lines().any(|l| l.starts_with("code-execution") && l.trim_end().ends_with("disabled")),
        "{listed}"
    );
}

#[tokio::test]
async fn version_crds_and_deleting_instances_and_runs() {
    let (plane, client, ns) = setup("cli-delete").await;
    let out = sympozium(&plane, &ns, &["version"]).await;
    assert_eq!(stdout(&out).trim(), format!("sympozium {}", env!("CARGO_PKG_VERSION")));

    // `crds` prints exactly the committed, generated CRDs (what `kubectl apply` would get).
    let out = sympozium(&plane, &ns, &["crds"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let dir = sympozium_testkit::repo_root().join("deploy/crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 8);
    for f in &files {
        let committed = std::fs::read_to_string(f).unwrap();
        assert!(printed.contains(committed.trim()), "{} differs from `sympozium crds`", f.display());
    }

    // Deleting: gone from the cluster, and a second delete is a one-line not-found error.
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let run = runs.list(&Default::default()).await.unwrap().items[0].metadata.name.clone().unwrap();
    let out = sympozium(&plane, &ns, &["runs", "delete", &run]).await;
    assert_eq!(stdout(&out).trim(), format!("agentrun/{run} deleted"));
    sympozium_testkit::wait_until_gone(&runs, &run, "the deleted run", Duration::from_secs(20))
        .await
        .unwrap();
    let out = sympozium(&plane, &ns, &["runs", "delete", &run]).await;
    assert!(!out.status.success());
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains(&run) && stderr(&out).contains("not found"), "{}", stderr(&out));

    let out = sympozium(&plane, &ns, &["instances", "delete", "my-agent"]).await;
    assert_eq!(stdout(&out).trim(), "sympoziuminstance/my-agent deleted");
    let instances: Api<sympozium_api::SympoziumInstance> = Api::namespaced(client.clone(), &ns);
    sympozium_testkit::wait_until_gone(
        &instances,
        "my-agent",
        "the deleted instance",
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    let out = sympozium(&plane, &ns, &["instances", "delete", "my-agent"]).await;
    assert!(!out.status.success() && stderr(&out).contains("not found"), "{}", stderr(&out));
}

#[tokio::test]
async fn instances_endpoint_prints_the_url_and_the_key() {
    let (plane, client, ns) = setup("cli-endpoint").await;
    // Not serving yet: a one-line error saying so.
    let out = sympozium(&plane, &ns, &["instances", "endpoint", "my-agent"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("has no web endpoint"), "{}", stderr(&out));

    // What the instance controller reports once the endpoint serves through the gateway.
    let instances: Api<sympozium_api::SympoziumInstance> = Api::namespaced(client.clone(), &ns);
    let status = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance", "status": {
        "phase": "Serving", "activeAgentPods": 1, "totalAgentRuns": 1,
        "webEndpoint": {"status": "Serving", "url": "https://my-agent.agents.example.com",
                        "authSecretName": "my-agent-web-proxy-key"}}});
    instances
        .patch_status("my-agent", &PatchParams::apply("test").force(), &Patch::Apply(&status))
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client, &ns);
    let secret =
        json!({"metadata": {"name": "my-agent-web-proxy-key"}, "stringData": {"api-key": "sk-0123abcd"}});
    secrets.create(&Default::default(), &serde_json::from_value(secret).unwrap()).await.unwrap();

    let out = sympozium(&plane, &ns, &["instances", "endpoint", "my-agent"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l.starts_with("URL") && l.ends_with("https://my-agent.agents.example.com")),
        "{text}"
    );
    assert!(
        text.lines().any(
            |l| l.starts_with("OPENAI BASE URL") && l.ends_with("https://my-agent.agents.example.com/v1")
        ),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("API KEY") && l.ends_with("sk-0123abcd")), "{text}");
    let out = sympozium(&plane, &ns, &["instances", "endpoint", "my-agent", "-o", "json"]).await;
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["apiKey"], "sk-0123abcd");
    assert_eq!(doc["mcpURL"], "https://my-agent.agents.example.com/mcp");
}
