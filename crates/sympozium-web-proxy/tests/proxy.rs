//! The proxy in this process against the test plane and a real nats-server. A stand-in for
//! the agent pod answers the runs the proxy creates (publishing on the bus as the IPC bridge
//! does, or failing the run's status as the controller does), so every HTTP outcome a caller
//! can see is exercised: answers, failures, timeouts, bad keys, floods and oversized bodies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_bus::{Bus, topics};
use sympozium_testkit::nats::NatsServer;
use sympozium_testkit::{TestPlane, wait_until_gone};
use sympozium_web_proxy::auth::Gate;
use sympozium_web_proxy::runs::{Hub, Runs};

const KEY: &str = "sk-test-0123456789";

struct Proxy {
    url: String,
    client: Client,
    ns: String,
    _nats: NatsServer,
    _ns: sympozium_testkit::TestNamespace,
}

/// How the stand-in agent answers each run, by the run's task.
async fn agent(client: Client, ns: String, nats_url: String) {
    let bus = Bus::connect(&nats_url).await.unwrap();
    let api: Api<AgentRun> = Api::namespaced(client, &ns);
    let mut events = std::pin::pin!(watcher::watcher(api.clone(), watcher::Config::default()));
    let mut done = std::collections::HashSet::new();
    while let Some(Ok(ev)) = events.next().await {
        let watcher::Event::Apply(run) = ev else { continue };
        let name = run.name_any();
        if !done.insert(name.clone()) {
            continue;
        }
        let meta = BTreeMap::from([
            ("agentRunID".to_string(), name.clone()),
            ("instanceName".to_string(), "helper".to_string()),
        ]);
        let task = run.spec.task.clone();
        let (bus, api) = (bus.clone(), api.clone());
        tokio::spawn(async move {
            if task.contains("crash") {
                // The pod died without a result: only the run's status says so.
                let status = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
                    "status": {"phase": "Failed", "error": "container agent: OOMKilled"}});
                api.patch_status(&name, &PatchParams::apply("test").force(), &Patch::Apply(&status))
                    .await
                    .unwrap();
            } else if task.contains("provider down") {
                bus.publish(
                    topics::AGENT_RUN_COMPLETED,
                    meta,
                    &json!({"status": "error", "error": "LLM returned 503"}),
                )
                .await
                .unwrap();
            } else if task.contains("slow") {
                // Never answers.
            } else {
                for (i, piece) in ["Hello", " from", " the agent."].iter().enumerate() {
                    bus.publish(
                        topics::AGENT_STREAM_CHUNK,
                        meta.clone(),
                        &json!({"type": "text", "content": piece, "index": i}),
                    )
                    .await
                    .unwrap();
                }
                bus.publish(
                    topics::AGENT_RUN_COMPLETED,
                    meta,
                    &json!({"status": "success",
                    "response": "Hello from the agent.", "metrics": {"inputTokens": 11, "outputTokens": 4}}),
                )
                .await
                .unwrap();
            }
        });
    }
}

async fn start(rpm: u32, burst: u32, timeout: Duration) -> Proxy {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let namespace = plane.namespace(&client, "web-proxy").await.unwrap();
    let ns = namespace.name().to_string();
    let nats = NatsServer::start().await.unwrap();
    let inst: SympoziumInstance = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
        "kind": "SympoziumInstance", "metadata": {"name": "helper"},
        "spec": {"agents": {"default": {"model": "gpt-4o"}}, "authRefs": [{"provider": "openai", "secret": "k"}]}}))
    .unwrap();
    Api::<SympoziumInstance>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &inst)
        .await
        .unwrap();
    let hub = Hub::default();
    let runs = Runs::new(client.clone(), ns.clone(), "helper".into(), hub.clone(), timeout);
    tokio::spawn(hub.run(nats.url(), runs.api(), "helper".into()));
    tokio::spawn(agent(client.clone(), ns.clone(), nats.url()));
    let router = sympozium_web_proxy::router(runs, Gate::new(&[KEY.into()], rpm, burst), 64 * 1024);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    // Let the bus consumer start before the first run can publish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Proxy { url, client, ns, _nats: nats, _ns: namespace }
}

fn chat(task: &str, stream: bool) -> Value {
    json!({"model": "gpt-4o", "stream": stream, "stream_options": {"include_usage": true},
           "messages": [{"role": "user", "content": task}]})
}

async fn post(p: &Proxy, key: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = reqwest::Client::new().post(format!("{}/v1/chat/completions", p.url)).json(&body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_failures_and_timeouts_are_real_http_outcomes() {
    let p = start(6000, 100, Duration::from_secs(3)).await;

    let ok = post(&p, Some(KEY), chat("say hello", false)).await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from the agent.");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"], json!({"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}));

    let streamed = post(&p, Some(KEY), chat("say hello", true)).await;
    assert_eq!(streamed.status(), 200);
    assert!(streamed.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = streamed.text().await.unwrap();
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(*events.last().unwrap(), "[DONE]", "{text}");
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "Hello from the agent.");
    assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 15);

    // The provider failed: 502 with the reason, and no retry invited (a retry is a new run).
    let failed = post(&p, Some(KEY), chat("provider down", false)).await;
    assert_eq!(failed.status(), 502);
    assert_eq!(failed.headers()["x-should-retry"], "false");
    let body: Value = failed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "agent_run_failed");
    assert!(body["error"]["message"].as_str().unwrap().contains("LLM returned 503"), "{body}");

    // The pod died without a result: the run's status ends the request, no hang.
    let crashed = post(&p, Some(KEY), chat("crash please", false)).await;
    assert_eq!(crashed.status(), 502);
    let body: Value = crashed.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("OOMKilled"), "{body}");

    // A failure during a stream is an error event, and no [DONE].
    let text = post(&p, Some(KEY), chat("provider down", true)).await.text().await.unwrap();
    assert!(
        text.contains("\"error\"") && text.contains("LLM returned 503") && !text.contains("[DONE]"),
        "{text}"
    );

    // No answer in time: 504, and the abandoned run is deleted.
    let slow = post(&p, Some(KEY), chat("slow task", false)).await;
    assert_eq!(slow.status(), 504);
    let body: Value = slow.json().await.unwrap();
    assert_eq!(body["error"]["message"], "agent run timed out");
    let runs: Api<AgentRun> = Api::namespaced(p.client.clone(), &p.ns);
    let slow_run =
        runs.list(&Default::default()).await.unwrap().items.into_iter().find(|r| r.spec.task == "slow task");
    if let Some(r) = slow_run {
        wait_until_gone(&runs, &r.name_any(), "the timed-out run", Duration::from_secs(20)).await.unwrap();
    }

    // Every run carries the instance and the web-proxy source.
    let all = runs.list(&Default::default()).await.unwrap().items;
    assert!(
        all.iter()
            .all(|r| r.labels()["sympozium.ai/source"] == "web-proxy" && r.spec.instance_ref == "helper")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_and_bad_bodies_are_refused_before_any_run() {
    let p = start(6000, 100, Duration::from_secs(30)).await;
    let runs: Api<AgentRun> = Api::namespaced(p.client.clone(), &p.ns);
    let http = reqwest::Client::new();

    // Health needs no key; nothing else answers without one.
    assert_eq!(http.get(format!("{}/healthz", p.url)).send().await.unwrap().text().await.unwrap(), "ok");
    for (key, why) in [
        (None, "missing API key"),
        (Some("sk-test-012345678"), "incorrect API key"),
        (Some(""), "missing API key"),
    ] {
        let r = post(&p, key, chat("say hello", false)).await;
        assert_eq!(r.status(), 401, "{key:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["type"], "authentication_error");
        assert!(body["error"]["message"].as_str().unwrap().contains(why), "{body}");
    }
    for path in ["/v1/models", "/mcp", "/anything"] {
        let r = http.get(format!("{}{path}", p.url)).bearer_auth("sk-wrong").send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    let r = http
        .post(format!("{}/mcp", p.url))
        .header("authorization", format!("Basic {KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "only bearer tokens");

    // Bad bodies: named fields, no run.
    let bad = [
        (json!({"model": "x", "messages": []}), 400, "messages must not be empty"),
        (json!({"model": "x", "messages": [{"role": "system", "content": "x"}]}), 400, "user message"),
        (json!({"model": "x", "messages": [{"content": "x"}]}), 400, "messages[0]: missing field `role`"),
    ];
    for (body, status, why) in bad {
        let r = post(&p, Some(KEY), body.clone()).await;
        assert_eq!(r.status().as_u16(), status, "{body}");
        let e: Value = r.json().await.unwrap();
        assert!(e["error"]["message"].as_str().unwrap().contains(why), "{e}");
    }
    let r = http
        .post(format!("{}/v1/chat/completions", p.url))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "invalid_request_error");
    let huge = "x".repeat(100 * 1024);
    let r = post(&p, Some(KEY), chat(&huge, false)).await;
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["message"], "request body too large");
    assert!(runs.list(&Default::default()).await.unwrap().items.is_empty(), "no run for refused requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_key_is_limited_and_wrong_keys_do_not_drain_it() {
    let p = start(60, 3, Duration::from_secs(30)).await;
    let http = reqwest::Client::new();
    // Wrong keys are refused before the bucket: they cannot use up the real key's requests.
    for _ in 0..10 {
        assert_eq!(
            http.get(format!("{}/v1/models", p.url)).bearer_auth("sk-wrong").send().await.unwrap().status(),
            401
        );
    }
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(http.get(format!("{}/v1/models", p.url)).bearer_auth(KEY).send().await.unwrap());
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(&codes[..3], &[200, 200, 200], "the burst passes: {codes:?}");
    assert!(codes[3..].iter().filter(|c| **c == 429).count() >= 2, "then the key is limited: {codes:?}");
    let r = statuses.into_iter().find(|r| r.status() == 429).unwrap();
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "rate_limit_error");
    // The bucket refills at the per-minute rate (1/s here).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(http.get(format!("{}/v1/models", p.url)).bearer_auth(KEY).send().await.unwrap().status(), 200);
}
