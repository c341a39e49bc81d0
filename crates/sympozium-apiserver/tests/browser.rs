//! The dashboard in Debian's `chromium`, driven by playwright-core (`web/e2e/run.mjs`): log
//! in, see the dashboard charts with data, activate a persona pack (the real persona-pack and
//! instance controllers run in-process) and see its instances, send a chat message from the
//! feed pane and see the answer stream in over the WebSocket from a real nats-server, open a
//! run and see its Markdown result, make an instance with the create wizard from an inference
//! server the node probe found (its models listed live from a provider on loopback), a
//! SkillPack, a channel's token Secret and a heartbeat schedule, edit an
//! instance's lifecycle hooks, and visit every other page. Screenshots go to
//! `target/screenshots/dashboard/`.
//!
//! Needs `node`, `web/node_modules` (`npm ci` in `web/`; `make test` does it) and
//! `/usr/bin/chromium` (scripts/prereqs.sh installs it); a missing one fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::PostParams;
use sympozium_api::{AgentRun, PersonaPack, SkillPack};
use sympozium_bus::{Bus, topics};
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::{instance, personapack};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::nats::NatsServer;

/// What the browser types into the feed.
const CHAT_TASK: &str = "How many nodes does the cluster have?";

#[tokio::test]
async fn the_dashboard_works_in_chromium() {
    let repo = sympozium_testkit::repo_root();
    let web = repo.join("web");
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "web/node_modules is missing: run `npm ci` in web/ (make test does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: install Debian's chromium (scripts/prereqs.sh does)"
    );

    // The committed build is what the server embeds: it must be the build of web/ as it is.
    let fresh = std::env::temp_dir().join(format!("sympozium-ui-{}", std::process::id()));
    let build = std::process::Command::new("npx")
        .args(["vite", "build", "--logLevel", "error", "--outDir"])
        .arg(&fresh)
        .current_dir(&web)
        .output()
        .expect("running npx (install Node.js 20 or newer)");
    assert!(build.status.success(), "vite build failed: {}", String::from_utf8_lossy(&build.stderr));
    let committed = repo.join("crates/sympozium-apiserver/ui-dist");
    let files = |root: &std::path::Path| -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.insert(
                        p.strip_prefix(root).unwrap().display().to_string(),
                        std::fs::read(&p).unwrap(),
                    );
                }
            }
        }
        out
    };
    let (want, have) = (files(&fresh), files(&committed));
    let _ = std::fs::remove_dir_all(&fresh);
    assert!(
        want == have,
        "crates/sympozium-apiserver/ui-dist is not the build of web/ (built {:?}, committed {:?}): run `make web`",
        want.keys().collect::<Vec<_>>(),
        have.keys().collect::<Vec<_>>()
    );

    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let h = common::Harness::new("api-browser", Some(bus.clone())).await;

    // A persona pack to activate from the browser, and the controllers that act on it.
    let pack: PersonaPack = serde_json::from_value(json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "PersonaPack",
        "metadata": {"name": "research-team"},
        "spec": {"enabled": false, "description": "Agents that read and summarise.",
            "personas": [{"name": "analyst", "displayName": "Analyst", "systemPrompt": "You analyse."}]}
    }))
    .unwrap();
    Api::<PersonaPack>::namespaced(h.client.clone(), &h.ns)
        .create(&PostParams::default(), &pack)
        .await
        .unwrap();
    let ctx = Arc::new(Context::new(
        h.client.clone(),
        Settings { image_tag: "test".into(), ..Default::default() },
        Metrics::default(),
        Some(h.ns.clone()),
        "test",
    ));
    let controllers = tokio::spawn(async move {
        futures::join!(instance::run(ctx.clone()), personapack::run(ctx));
    });

    // An instance made through the API, and two runs: one finished with a Markdown answer
    // (and HTML that must not reach the page), one still running.
    let r = h
        .call(
            Method::POST,
            &h.ns_path("/api/v1/instances"),
            Some(json!({"name": "helper", "provider": "openai", "model": "gpt-4o", "apiKey": "sk-test"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let runs = Api::<AgentRun>::namespaced(h.client.clone(), &h.ns);
    let mut names = Vec::new();
    for (task, status) in [
        (
            "summarise the cluster",
            json!({"phase": "Succeeded",
            "result": "## Cluster report\n\n**All nodes healthy**\n\n- 3 nodes\n- 0 failing pods\n\n<script>window.pwned=1</script><img src=x onerror=\"window.pwned=1\">",
            "tokenUsage": {"inputTokens": 1200, "outputTokens": 300, "totalTokens": 1500, "toolCalls": 4, "durationMs": 5200}}),
        ),
        ("write a poem", json!({"phase": "Running"})),
    ] {
        let r = h
            .call(
                Method::POST,
                &h.ns_path("/api/v1/runs"),
                Some(json!({"instanceRef": "helper", "task": task})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let name = r.json["metadata"]["name"].as_str().unwrap().to_string();
        let mut body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "status": status});
        body["status"]["podName"] = format!("{name}-pod").into();
        runs.patch_status(&name, &PatchParams::apply("test").force(), &Patch::Apply(&body)).await.unwrap();
        names.push(name);
        // Distinct creation seconds keep the list order stable.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    h.eventually(&h.ns_path("/api/v1/observability/metrics"), |r| r.json["inputTokensTotal"] == 1200).await;

    // The running run's answer, and the answer to the chat message the browser sends from
    // the feed (a run made by the page, found by its task), published over and over the way
    // the IPC bridge publishes chunks, so the page gets them whenever its WebSocket connects.
    let streaming = names[1].clone();
    let ns = h.ns.clone();
    let run_api = runs.clone();
    let publisher = tokio::spawn(async move {
        loop {
            let mut answers = vec![(streaming.clone(), ["Roses are red, ", "clusters are green."])];
            if let Ok(list) = run_api.list(&Default::default()).await {
                for r in list.items.iter().filter(|r| r.spec.task == CHAT_TASK) {
                    answers.push((r.name_any(), ["Hello! The cluster ", "has **3 nodes**."]));
                }
            }
            for (run, pieces) in answers {
                for (i, piece) in pieces.iter().enumerate() {
                    let meta = BTreeMap::from([
                        ("agentRunID".to_string(), run.clone()),
                        ("namespace".to_string(), ns.clone()),
                        ("instanceName".to_string(), "helper".to_string()),
                    ]);
                    let _ = bus
                        .publish(
                            topics::AGENT_STREAM_CHUNK,
                            meta,
                            &json!({"type": "text", "content": piece, "index": i}),
                        )
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });

    // An OpenAI-compatible provider on loopback that lists its models for the right key, and
    // a Node its node probe annotated with it (tainted: nothing is scheduled there).
    let provider = axum::Router::new().route(
        "/v1/models",
        axum::routing::get(|headers: axum::http::HeaderMap| async move {
            if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer sk-wizard") {
                return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "bad key"})));
            }
            (
                StatusCode::OK,
                axum::Json(
                    json!({"object": "list", "data": [{"id": "wizard-small"}, {"id": "wizard-large"}]}),
                ),
            )
        }),
    );
    let provider_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider_port = provider_listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(provider_listener, provider).await.unwrap() });
    let node_name = format!("probe-{}", h.ns);
    let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(h.client.clone());
    let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(json!({
        "metadata": {"name": node_name, "annotations": {
            "sympozium.ai/inference-healthy": "true",
            "sympozium.ai/inference-vllm": provider_port.to_string(),
            "sympozium.ai/inference-models-vllm": "wizard-small,wizard-large"}},
        "spec": {"taints": [{"key": "sympozium.ai/test-probe-node", "effect": "NoSchedule"}]}
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    nodes
        .patch_status(
            &node_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}})),
        )
        .await
        .unwrap();

    // For the wizard's skills and channel steps: a SkillPack in the system namespace (where
    // the shared ones live) and the Secret a Telegram channel reads its token from.
    let pack: SkillPack = serde_json::from_value(json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SkillPack",
        "metadata": {"name": "wizard-skill"},
        "spec": {"category": "testing", "skills": [{"name": "say-hello", "content": "Say hello."}]}
    }))
    .unwrap();
    Api::<SkillPack>::namespaced(h.client.clone(), &h.system_ns)
        .create(&PostParams::default(), &pack)
        .await
        .unwrap();
    let tg: Secret = serde_json::from_value(json!({
        "metadata": {"name": "wizard-telegram"}, "stringData": {"TELEGRAM_BOT_TOKEN": "123:wizard"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(h.client.clone(), &h.ns).create(&PostParams::default(), &tg).await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = h.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let shots = repo.join("target/screenshots/dashboard");
    let out = tokio::process::Command::new("node")
        .arg("e2e/run.mjs")
        .current_dir(&web)
        .env("DASHBOARD_URL", format!("http://{addr}/"))
        .env("DASHBOARD_TOKEN", common::TOKEN)
        .env("DASHBOARD_NAMESPACE", &h.ns)
        .env("EXPECT_INSTANCE", "helper")
        .env("EXPECT_RUN", &names[0])
        .env("EXPECT_RESULT_TEXT", "All nodes healthy")
        .env("EXPECT_STREAM_RUN", &names[1])
        .env("EXPECT_STREAM_TEXT", "Roses are red, clusters are green.")
        .env("EXPECT_PACK", "research-team")
        .env("EXPECT_PACK_INSTANCE", "research-team-analyst")
        .env("CHAT_INSTANCE", "helper")
        .env("CHAT_TASK", CHAT_TASK)
        .env("EXPECT_CHAT_TEXT", "Hello! The cluster has 3 nodes.")
        .env("WIZARD_INSTANCE", "wizard-agent")
        .env("WIZARD_NODE", &node_name)
        .env("WIZARD_PROVIDER", "vllm")
        .env("WIZARD_KEY", "sk-wizard")
        .env("WIZARD_MODEL", "wizard-small")
        .env("WIZARD_SKILL", "wizard-skill")
        .env("WIZARD_CHANNEL_SECRET", "wizard-telegram")
        .env("WIZARD_CRON", "*/30 * * * *")
        .env("WIZARD_TASK", "Check the nightly jobs")
        .env("HOOK_INSTANCE", "helper")
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .expect("running node (install Node.js 20 or newer)");
    publisher.abort();
    controllers.abort();
    let _ = nodes.delete(&node_name, &Default::default()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{stderr}\nscreenshots in {}",
        shots.display()
    );
    // What the wizard and the hooks editor did, as the API sees it.
    let made = h.call(Method::GET, &h.ns_path("/api/v1/instances/wizard-agent"), None).await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.text);
    let agent = &made.json["spec"]["agents"]["default"];
    assert_eq!(agent["model"], "wizard-small", "{}", made.text);
    assert_eq!(agent["baseURL"], format!("http://127.0.0.1:{provider_port}/v1"), "{}", made.text);
    assert_eq!(
        made.json["spec"]["agents"]["default"]["nodeSelector"]["kubernetes.io/hostname"],
        node_name.as_str(),
        "{}",
        made.text
    );
    assert_eq!(made.json["spec"]["skills"], json!([{"skillPackRef": "wizard-skill"}]), "{}", made.text);
    assert_eq!(
        made.json["spec"]["channels"],
        json!([{"type": "telegram", "configRef": {"secret": "wizard-telegram"}}]),
        "{}",
        made.text
    );
    let hb = h
        .eventually(&h.ns_path("/api/v1/schedules/wizard-agent-heartbeat"), |r| r.status == StatusCode::OK)
        .await;
    assert_eq!(
        (&hb.json["spec"]["schedule"], &hb.json["spec"]["task"], &hb.json["spec"]["type"]),
        (&json!("*/30 * * * *"), &json!("Check the nightly jobs"), &json!("heartbeat")),
        "{}",
        hb.text
    );
    let helper = h.call(Method::GET, &h.ns_path("/api/v1/instances/helper"), None).await;
    let lifecycle = &helper.json["spec"]["agents"]["default"]["lifecycle"];
    assert_eq!(
        lifecycle["preRun"],
        json!([{"name": "fetch-context", "image": "busybox", "command": ["sh", "-c", "true"], "timeout": "2m"}]),
        "{}",
        helper.text
    );
    assert_eq!(
        lifecycle["rbac"],
        json!([{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}]),
        "{}",
        helper.text
    );
    for shot in [
        "desktop-wizard-models.png",
        "desktop-wizard-confirm.png",
        "desktop-lifecycle.png",
        "desktop-dashboard.png",
        "desktop-personas.png",
        "desktop-feed.png",
        "desktop-run.png",
        "desktop-gateway.png",
        "phone-dashboard.png",
        "phone-feed.png",
        "phone-stream.png",
    ] {
        assert!(shots.join(shot).is_file(), "screenshot {shot} missing");
    }
    drop(nats);
}
