//! Every REST route against the real test plane: status codes, shapes, the token, bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use axum::http::{Method, StatusCode};
use common::{Harness, TOKEN, names};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sympozium_api::{AgentRun, PersonaPack, SkillPack, SympoziumConfig, SympoziumInstance, SympoziumPolicy};

fn field(r: &common::Reply) -> &str {
    r.json["field"].as_str().unwrap_or_default()
}

async fn instance(h: &Harness, name: &str, extra: Value) -> common::Reply {
    let mut body = json!({"name": name, "provider": "openai", "model": "gpt-4o", "apiKey": "sk-test"});
    body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    h.call(Method::POST, &h.ns_path("/api/v1/instances"), Some(body)).await
}

#[tokio::test]
async fn the_token_guards_the_api_and_nothing_else() {
    let h = Harness::new("api-auth", None).await;
    let path = h.ns_path("/api/v1/instances");
    for (token, what) in [
        (None, "no token"),
        (Some("wrong"), "a wrong token"),
        (Some(&TOKEN[..TOKEN.len() - 1]), "a prefix of the token"),
        (Some(&format!("{TOKEN}x")[..]), "the token plus a character"),
    ] {
        let r = h.raw(Method::GET, &path, None, token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what} let the request through");
        assert_eq!(r.json["error"], "Unauthorized", "{what}: {}", r.text);
    }
    // Writes are refused too, and nothing is created.
    let r = h
        .raw(
            Method::POST,
            &path,
            Some(json!({"name": "x", "provider": "openai", "model": "m"}).to_string()),
            Some("wrong"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        Api::<SympoziumInstance>::namespaced(h.client.clone(), &h.ns).get_opt("x").await.unwrap().is_none()
    );
    // The WebSocket path is guarded as well (before any upgrade).
    assert_eq!(h.raw(Method::GET, "/ws/stream", None, None).await.status, StatusCode::UNAUTHORIZED);
    // ?token= works like the header (the browser's WebSocket cannot send headers).
    let r = h.raw(Method::GET, &format!("{path}&token={TOKEN}"), None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        h.raw(Method::GET, &format!("{path}&token=nope"), None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Health checks and the API description are public.
    assert_eq!(h.raw(Method::GET, "/healthz", None, None).await.text, "ok");
    assert_eq!(h.raw(Method::GET, "/readyz", None, None).await.status, StatusCode::OK);
    // Prometheus reads the server's process metrics without a token.
    let m = h.raw(Method::GET, "/metrics", None, None).await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text);
    assert!(m.headers["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    for name in ["process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"] {
        assert!(m.text.lines().any(|l| l.starts_with(&format!("{name} "))), "{name} in {}", m.text);
    }
    let doc = h.raw(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.json["paths"]["/api/v1/instances"].is_object());
}

#[tokio::test]
async fn instances_are_created_listed_patched_and_deleted() {
    let h = Harness::new("api-inst", None).await;
    let r = instance(&h, "alpha", json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.json["kind"], "SympoziumInstance");
    assert_eq!(r.json["spec"]["agents"]["default"]["model"], "gpt-4o");
    assert_eq!(r.json["spec"]["authRefs"], json!([{"provider": "openai", "secret": "alpha-openai-key"}]));
    assert_eq!(r.json["spec"]["memory"]["maxSizeKB"], 256);
    // The key went into a Secret under the provider's variable, labelled, with no owner.
    let secret = Api::<Secret>::namespaced(h.client.clone(), &h.ns).get("alpha-openai-key").await.unwrap();
    assert_eq!(secret.data.unwrap()["OPENAI_API_KEY"].0, b"sk-test");
    let labels = secret.metadata.labels.unwrap();
    assert_eq!(labels["sympozium.ai/instance"], "alpha");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "sympozium");
    assert!(secret.metadata.owner_references.is_none());

    // Ollama gets its in-cluster default URL and needs no key.
    let r = h
        .call(
            Method::POST,
            &h.ns_path("/api/v1/instances"),
            Some(json!({"name": "local", "provider": "ollama", "model": "llama3"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["spec"]["agents"]["default"]["baseURL"], "http://ollama.default.svc:11434/v1");

    // Listed (from the watch cache), sorted, only in its namespace, paged.
    let list = h.eventually(&h.ns_path("/api/v1/instances"), |r| names(r).len() == 2).await;
    assert_eq!(names(&list), ["alpha", "local"]);
    assert_eq!(list.headers["x-total-count"], "2");
    let page = h.call(Method::GET, &h.ns_path("/api/v1/instances?limit=1&offset=1"), None).await;
    assert_eq!(names(&page), ["local"]);
    assert_eq!(page.headers["x-total-count"], "2");
    let other = h.call(Method::GET, &format!("/api/v1/instances?namespace={}", h.system_ns), None).await;
    assert_eq!(names(&other), Vec::<String>::new());
    let one = h.call(Method::GET, &h.ns_path("/api/v1/instances/alpha"), None).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json["metadata"]["namespace"], h.ns.as_str());

    // Web endpoint on, with parameters; the status route sees it.
    let r = h.call(Method::PATCH, &h.ns_path("/api/v1/instances/alpha"),
        Some(json!({"webEndpoint": {"enabled": true, "hostname": "alpha.example.com", "rateLimit": {"requestsPerMinute": 30}}}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let skills = r.json["spec"]["skills"].as_array().unwrap();
    let we = skills.iter().find(|s| s["skillPackRef"] == "web-endpoint").expect("web-endpoint skill");
    assert_eq!(we["params"], json!({"hostname": "alpha.example.com", "rate_limit_rpm": "30"}));
    let st =
        h.eventually(&h.ns_path("/api/v1/instances/alpha/web-endpoint"), |r| r.json["enabled"] == true).await;
    assert_eq!(st.json["gatewayReady"], false);
    assert_eq!(st.json["authSecretName"], "alpha-web-proxy-key");
    let r = h
        .call(
            Method::PATCH,
            &h.ns_path("/api/v1/instances/alpha"),
            Some(json!({"webEndpoint": {"enabled": false}})),
        )
        .await;
    assert!(
        r.json["spec"]["skills"]
            .as_array()
            .is_none_or(|s| s.iter().all(|s| s["skillPackRef"] != "web-endpoint")),
        "{}",
        r.text
    );
    // Lifecycle hooks replace the agent's.
    let hooks = json!({"preRun": [{"name": "prep", "image": "busybox", "command": ["true"]}]});
    let r =
        h.call(Method::PATCH, &h.ns_path("/api/v1/instances/alpha"), Some(json!({"lifecycle": hooks}))).await;
    assert_eq!(r.json["spec"]["agents"]["default"]["lifecycle"]["preRun"][0]["name"], "prep", "{}", r.text);

    // Deleted: 204, then 404 (JSON, naming the object).
    let r = h.call(Method::DELETE, &h.ns_path("/api/v1/instances/local"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let gone =
        h.eventually(&h.ns_path("/api/v1/instances/local"), |r| r.status == StatusCode::NOT_FOUND).await;
    assert!(gone.json["error"].as_str().unwrap().contains("\"local\""), "{}", gone.text);
    assert_eq!(
        h.call(Method::DELETE, &h.ns_path("/api/v1/instances/local"), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.call(Method::PATCH, &h.ns_path("/api/v1/instances/nope"), Some(json!({}))).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn bad_instance_input_is_refused_with_the_field_and_reason() {
    let h = Harness::new("api-bad", None).await;
    let post = |body: Value| {
        let h = &h;
        async move { h.call(Method::POST, &h.ns_path("/api/v1/instances"), Some(body)).await }
    };
    let cases = [
        (json!({"provider": "openai", "model": "m"}), "name"),
        (json!({"name": "Bad_Name", "provider": "openai", "model": "m"}), "name"),
        (json!({"name": "a", "model": "m"}), "provider"),
        (json!({"name": "a", "provider": "openai"}), "model"),
        (
            json!({"name": "a", "provider": "openai", "model": "m", "baseURL": "file:///etc/passwd"}),
            "baseURL",
        ),
        (json!({"name": "a", "provider": "openai", "model": "m", "secretName": "missing"}), "secretName"),
    ];
    for (body, want) in cases {
        let r = post(body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(field(&r), want, "{body}: {}", r.text);
        assert!(!r.json["reason"].as_str().unwrap_or_default().is_empty(), "{}", r.text);
    }
    // Not JSON, or the wrong JSON types: 400 (not axum's 415/422 text), saying so.
    let r = h.raw(Method::POST, &h.ns_path("/api/v1/instances"), Some("{nope".into()), Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json["error"].as_str().unwrap().starts_with("invalid JSON"), "{}", r.text);
    let r = post(json!({"name": 7, "provider": "openai", "model": "m"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // A bad namespace or page size names the parameter.
    let r = h.call(Method::GET, "/api/v1/instances?namespace=../kube-system", None).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "namespace"), "{}", r.text);
    let r = h.call(Method::GET, &h.ns_path("/api/v1/instances?limit=0"), None).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "limit"), "{}", r.text);
    // Nothing was created by any of it; a duplicate is a 409.
    assert!(
        Api::<SympoziumInstance>::namespaced(h.client.clone(), &h.ns)
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(instance(&h, "dup", json!({})).await.status, StatusCode::CREATED);
    let r = instance(&h, "dup", json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    // An unknown API path is a JSON 404, not the dashboard.
    let r = h.call(Method::GET, "/api/v1/nothing-here", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// What the create wizards send besides the model: SkillPacks, a channel naming the Secret
/// of its token, and a heartbeat schedule made with the instance.
#[tokio::test]
async fn instances_get_skills_a_channel_secret_and_a_heartbeat() {
    let h = Harness::new("api-wiz", None).await;
    let pack = |name: &str| -> SkillPack {
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SkillPack",
            "metadata": {"name": name}, "spec": {"skills": [{"name": "s", "content": "Do s."}]}}))
        .unwrap()
    };
    Api::<SkillPack>::namespaced(h.client.clone(), &h.ns)
        .create(&PostParams::default(), &pack("own"))
        .await
        .unwrap();
    Api::<SkillPack>::namespaced(h.client.clone(), &h.system_ns)
        .create(&PostParams::default(), &pack("shared"))
        .await
        .unwrap();
    let tg: Secret = serde_json::from_value(
        json!({"metadata": {"name": "tg-creds"}, "stringData": {"TELEGRAM_BOT_TOKEN": "1:x"}}),
    )
    .unwrap();
    Api::<Secret>::namespaced(h.client.clone(), &h.ns).create(&PostParams::default(), &tg).await.unwrap();

    // Bad input names the field; nothing is written (not even the key Secret).
    let cases = [
        (json!({"skills": [{"skillPackRef": "absent"}]}), "skills[0].skillPackRef", "not found"),
        (
            json!({"skills": [{"skillPackRef": "own"}, {"skillPackRef": "Bad_Name"}]}),
            "skills[1].skillPackRef",
            "not a valid name",
        ),
        (json!({"skills": [{"params": {"a": "b"}}]}), "skills[0].skillPackRef", "is required"),
        (json!({"channels": [{"type": "telegram"}]}), "channels[0].configRef.secret", "telegram token"),
        (
            json!({"channels": [{"type": "slack", "configRef": {"secret": "nope"}}]}),
            "channels[0].configRef.secret",
            "not found",
        ),
        (
            json!({"channels": [{"type": "telegram", "configRef": {"secret": "tg-creds"}}, {"type": "telegram", "configRef": {"secret": "tg-creds"}}]}),
            "channels[1].type",
            "twice",
        ),
        (json!({"heartbeat": {"schedule": "0 24 * * *", "task": "t"}}), "heartbeat.schedule", "hour field"),
        (json!({"heartbeat": {"schedule": "@hourly", "task": "t"}}), "heartbeat.schedule", "5 fields"),
        (json!({"heartbeat": {"schedule": "0 * * * *"}}), "heartbeat.task", "is required"),
    ];
    for (extra, want, reason) in cases {
        let r = instance(&h, "wiz", extra.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{extra}: {}", r.text);
        assert_eq!(field(&r), want, "{extra}: {}", r.text);
        assert!(r.json["reason"].as_str().unwrap_or_default().contains(reason), "{extra}: {}", r.text);
    }
    // A channel type that does not exist is refused while reading the body, naming the path.
    let r = instance(&h, "wiz", json!({"channels": [{"type": "irc", "configRef": {"secret": "tg-creds"}}]}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("channels[0].type"), "{}", r.text);
    assert!(
        Api::<SympoziumInstance>::namespaced(h.client.clone(), &h.ns).get_opt("wiz").await.unwrap().is_none()
    );
    assert!(
        Api::<Secret>::namespaced(h.client.clone(), &h.ns).get_opt("wiz-openai-key").await.unwrap().is_none()
    );

    let r = instance(
        &h,
        "wiz",
        json!({
            "skills": [{"skillPackRef": "own"}, {"skillPackRef": "shared"}],
            "channels": [{"type": "telegram", "configRef": {"secret": "tg-creds"}}, {"type": "whatsapp"}],
            "heartbeat": {"schedule": " */15 * * * * ", "task": "Check the queue"}
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["spec"]["skills"], json!([{"skillPackRef": "own"}, {"skillPackRef": "shared"}]));
    assert_eq!(r.json["spec"]["channels"][0]["configRef"]["secret"], "tg-creds", "{}", r.text);
    assert_eq!(r.json["spec"]["channels"][1]["type"], "whatsapp", "{}", r.text);
    let uid = r.json["metadata"]["uid"].as_str().unwrap().to_string();
    let hb =
        h.eventually(&h.ns_path("/api/v1/schedules/wiz-heartbeat"), |r| r.status == StatusCode::OK).await;
    let spec = &hb.json["spec"];
    assert_eq!(
        (&spec["instanceRef"], &spec["schedule"], &spec["task"], &spec["type"], &spec["concurrencyPolicy"]),
        (
            &json!("wiz"),
            &json!("*/15 * * * *"),
            &json!("Check the queue"),
            &json!("heartbeat"),
            &json!("Forbid")
        ),
        "{}",
        hb.text
    );
    assert_eq!(hb.json["metadata"]["ownerReferences"][0]["uid"], uid.as_str(), "{}", hb.text);
    assert_eq!(hb.json["metadata"]["labels"]["sympozium.ai/instance"], "wiz", "{}", hb.text);
    // The heartbeat belongs to the instance: deleting one deletes the other.
    assert_eq!(
        h.call(Method::DELETE, &h.ns_path("/api/v1/instances/wiz"), None).await.status,
        StatusCode::NO_CONTENT
    );
    h.eventually(&h.ns_path("/api/v1/schedules/wiz-heartbeat"), |r| r.status == StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn runs_start_on_an_instance_and_are_listed_newest_first() {
    let h = Harness::new("api-runs", None).await;
    assert_eq!(instance(&h, "worker", json!({"runTimeout": "20m"})).await.status, StatusCode::CREATED);
    let post = |body: Value| {
        let h = &h;
        async move { h.call(Method::POST, &h.ns_path("/api/v1/runs"), Some(body)).await }
    };
    let r = post(json!({"instanceRef": "ghost", "task": "x"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = post(json!({"instanceRef": "worker"})).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "task"));
    let r = post(json!({"instanceRef": "worker", "task": "x", "timeout": "soon"})).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "timeout"), "{}", r.text);
    // An instance without a key or base URL cannot run anything.
    let bare = SympoziumInstance::new(
        "bare",
        serde_json::from_value(json!({"agents": {"default": {"model": "m"}}})).unwrap(),
    );
    Api::<SympoziumInstance>::namespaced(h.client.clone(), &h.ns)
        .create(&PostParams::default(), &bare)
        .await
        .unwrap();
    let r = post(json!({"instanceRef": "bare", "task": "x"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json["reason"].as_str().unwrap().contains("no API key configured"), "{}", r.text);

    let first = post(json!({"instanceRef": "worker", "task": "first"})).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let spec = &first.json["spec"];
    assert_eq!(spec["model"]["provider"], "openai");
    assert_eq!(spec["model"]["model"], "gpt-4o");
    assert_eq!(spec["model"]["authSecretRef"], "worker-openai-key");
    assert_eq!(spec["timeout"], "20m", "the instance's run timeout applies");
    assert_eq!(spec["agentId"], "primary");
    assert!(spec["sessionKey"].as_str().unwrap().starts_with("session-"));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second =
        post(json!({"instanceRef": "worker", "task": "second", "timeout": "90s", "model": "gpt-4o-mini"}))
            .await;
    assert_eq!(second.json["spec"]["timeout"], "90s", "the request's timeout is honoured");
    assert_eq!(second.json["spec"]["model"]["model"], "gpt-4o-mini");
    let (a, b) = (
        first.json["metadata"]["name"].as_str().unwrap().to_string(),
        second.json["metadata"]["name"].as_str().unwrap().to_string(),
    );
    let list = h.eventually(&h.ns_path("/api/v1/runs"), |r| names(r).len() == 2).await;
    assert_eq!(names(&list), [b.clone(), a.clone()], "newest first");
    let tel = h
        .eventually(&h.ns_path(&format!("/api/v1/runs/{a}/telemetry")), |r| r.status == StatusCode::OK)
        .await;
    assert_eq!(tel.json["runName"], a.as_str());
    assert_eq!(tel.json["traceIds"], json!([]));
    assert_eq!(
        h.call(Method::DELETE, &h.ns_path(&format!("/api/v1/runs/{a}")), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.call(Method::GET, &h.ns_path("/api/v1/runs/nope"), None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn observability_sums_the_namespaces_runs() {
    let h = Harness::new("api-obs", None).await;
    let runs = Api::<AgentRun>::namespaced(h.client.clone(), &h.ns);
    for (name, phase, input, output, tools) in
        [("r1", "Succeeded", 100, 20, 3), ("r2", "Failed", 50, 5, 1), ("r3", "Running", 0, 0, 0)]
    {
        let run: AgentRun = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
            "metadata": {"name": name}, "spec": {"instanceRef": "i", "agentId": "primary", "sessionKey": "s", "task": "t",
            "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "k"}}})).unwrap();
        runs.create(&PostParams::default(), &run).await.unwrap();
        let status = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "status": {"phase": phase,
            "tokenUsage": {"inputTokens": input, "outputTokens": output, "totalTokens": input + output, "toolCalls": tools, "durationMs": 1000}}});
        runs.patch_status(name, &PatchParams::apply("test").force(), &Patch::Apply(&status)).await.unwrap();
    }
    let m = h
        .eventually(&h.ns_path("/api/v1/observability/metrics"), |r| {
            // Every status update is in the cache (the last one adds no tokens).
            r.json["inputTokensTotal"] == 150 && r.json["runStatus"]["running"] == 1
        })
        .await;
    assert_eq!(m.json["agentRunsTotal"], 3);
    assert_eq!(m.json["outputTokensTotal"], 25);
    assert_eq!(m.json["toolInvocations"], 4);
    assert_eq!(m.json["runStatus"], json!({"succeeded": 1, "failed": 1, "running": 1}));
    assert_eq!(m.json["inputByModel"], json!([{"label": "gpt-4o", "value": 150.0}]));
    let ts = h.call(Method::GET, &h.ns_path("/api/v1/observability/timeseries?range=1h"), None).await;
    assert_eq!(ts.json["bucketSeconds"], 300);
    let buckets = ts.json["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 12);
    let sum = |k: &str| buckets.iter().map(|b| b[k].as_i64().unwrap()).sum::<i64>();
    assert_eq!((sum("runs"), sum("failed"), sum("inputTokens")), (3, 1, 150));
    let r = h.call(Method::GET, &h.ns_path("/api/v1/observability/timeseries?range=forever"), None).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "range"));
}

#[tokio::test]
async fn schedules_policies_skills_and_namespaces() {
    let h = Harness::new("api-sched", None).await;
    let post = |body: Value| {
        let h = &h;
        async move { h.call(Method::POST, &h.ns_path("/api/v1/schedules"), Some(body)).await }
    };
    let r = post(json!({"instanceRef": "a", "task": "t"})).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "schedule"));
    let r = post(json!({"instanceRef": "a", "schedule": "0 * * * *", "task": "t", "type": "weekly"})).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "type"), "{}", r.text);
    let r = post(
        json!({"instanceRef": "a", "schedule": "0 * * * *", "task": "t", "concurrencyPolicy": "Sometimes"}),
    )
    .await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "concurrencyPolicy"), "{}", r.text);
    let r =
        post(json!({"instanceRef": "a", "schedule": "0 * * * *", "task": "check", "type": "sweep"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let name = r.json["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("a-schedule-"), "{name}");
    assert_eq!(r.json["spec"]["type"], "sweep");
    let r = post(json!({"name": "nightly", "instanceRef": "a", "schedule": "0 3 * * *", "task": "t"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    h.eventually(&h.ns_path("/api/v1/schedules"), |r| names(r).len() == 2).await;
    assert_eq!(
        h.call(Method::DELETE, &h.ns_path("/api/v1/schedules/nightly"), None).await.status,
        StatusCode::NO_CONTENT
    );
    h.eventually(&h.ns_path("/api/v1/schedules"), |r| names(r) == [name.clone()]).await;

    // Policies and skills: lists span namespaces; get is per namespace.
    let policy: SympoziumPolicy =
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumPolicy",
        "metadata": {"name": "strict"}, "spec": {"featureGates": {"code-execution": false}}}))
        .unwrap();
    Api::<SympoziumPolicy>::namespaced(h.client.clone(), &h.ns)
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    h.eventually("/api/v1/policies", |r| {
        r.json
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["metadata"]["name"] == "strict" && p["metadata"]["namespace"] == h.ns.as_str())
    })
    .await;
    let p = h.call(Method::GET, &h.ns_path("/api/v1/policies/strict"), None).await;
    assert_eq!(p.json["spec"]["featureGates"]["code-execution"], false);
    assert_eq!(
        h.call(Method::GET, &format!("/api/v1/policies/strict?namespace={}", h.system_ns), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(h.call(Method::GET, "/api/v1/skills", None).await.status, StatusCode::OK);
    assert_eq!(
        h.call(Method::GET, &h.ns_path("/api/v1/skills/none"), None).await.status,
        StatusCode::NOT_FOUND
    );
    let ns = h
        .eventually("/api/v1/namespaces", |r| r.json.as_array().unwrap().iter().any(|n| n == h.ns.as_str()))
        .await;
    assert!(ns.json.as_array().unwrap().iter().any(|n| n == "default"));
}

#[tokio::test]
async fn persona_packs_install_and_activate() {
    let h = Harness::new("api-packs", None).await;
    let pack: PersonaPack = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "PersonaPack",
        "metadata": {"name": "devops", "labels": {"tier": "core"}}, "spec": {"description": "ops team", "personas": [
            {"name": "sre", "systemPrompt": "keep it up", "schedule": {"type": "heartbeat", "interval": "30m", "task": "check"}},
            {"name": "writer", "systemPrompt": "write"}]}})).unwrap();
    Api::<PersonaPack>::namespaced(h.client.clone(), &h.system_ns)
        .create(&PostParams::default(), &pack)
        .await
        .unwrap();
    h.eventually(&format!("/api/v1/personapacks?namespace={}", h.system_ns), |r| names(r) == ["devops"])
        .await;
    let r = h.call(Method::POST, &h.ns_path("/api/v1/personapacks/install-defaults"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json,
        json!({"sourceNamespace": h.system_ns, "targetNamespace": h.ns, "copied": ["devops"], "alreadyPresent": []})
    );
    let r = h.call(Method::POST, &h.ns_path("/api/v1/personapacks/install-defaults"), None).await;
    assert_eq!(r.json["alreadyPresent"], json!(["devops"]));
    let copy = h.eventually(&h.ns_path("/api/v1/personapacks/devops"), |r| r.status == StatusCode::OK).await;
    assert_eq!(copy.json["spec"]["enabled"], false);
    assert_eq!(copy.json["metadata"]["labels"]["tier"], "core");

    // Activation with a typed key: Secret, authRefs, model on every persona, heartbeat.
    let r = h
        .call(
            Method::PATCH,
            &h.ns_path("/api/v1/personapacks/devops"),
            Some(json!({
        "enabled": true, "provider": "anthropic", "apiKey": "sk-ant", "model": "claude-sonnet-4-20250514",
        "heartbeatInterval": "2h", "personas": [{"name": "writer", "systemPrompt": "write well"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let spec = &r.json["spec"];
    assert_eq!(spec["enabled"], true);
    assert_eq!(spec["authRefs"], json!([{"provider": "anthropic", "secret": "devops-anthropic-key"}]));
    assert!(spec["personas"].as_array().unwrap().iter().all(|p| p["model"] == "claude-sonnet-4-20250514"));
    assert_eq!(spec["personas"][0]["schedule"]["interval"], "2h");
    assert_eq!(spec["personas"][1]["systemPrompt"], "write well");
    let secret =
        Api::<Secret>::namespaced(h.client.clone(), &h.ns).get("devops-anthropic-key").await.unwrap();
    assert_eq!(secret.data.unwrap()["ANTHROPIC_API_KEY"].0, b"sk-ant");
    assert_eq!(secret.metadata.labels.unwrap()["sympozium.ai/persona-pack"], "devops");

    let r = h
        .call(
            Method::PATCH,
            &h.ns_path("/api/v1/personapacks/devops"),
            Some(json!({"personas": [{"name": "ghost"}]})),
        )
        .await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "personas[0].name"), "{}", r.text);
    let r =
        h.call(Method::PATCH, &h.ns_path("/api/v1/personapacks/devops"), Some(json!({"apiKey": "k"}))).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "provider"), "{}", r.text);
    assert_eq!(
        h.call(Method::PATCH, &h.ns_path("/api/v1/personapacks/none"), Some(json!({"enabled": true})))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = h
        .call(Method::PATCH, &h.ns_path("/api/v1/personapacks/devops"), Some(json!({"enabled": false})))
        .await;
    assert_eq!(r.json["spec"]["enabled"], false);
    assert_eq!(
        h.call(Method::DELETE, &h.ns_path("/api/v1/personapacks/devops"), None).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn mcp_servers_and_the_gateway() {
    let h = Harness::new("api-mcp", None).await;
    let post = |body: Value| {
        let h = &h;
        async move { h.call(Method::POST, &h.ns_path("/api/v1/mcpservers"), Some(body)).await }
    };
    let r = post(json!({"name": "gh", "transportType": "http"})).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "toolsPrefix"));
    let r = post(
        json!({"name": "gh", "transportType": "carrier-pigeon", "toolsPrefix": "gh", "url": "http://x"}),
    )
    .await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "transportType"), "{}", r.text);
    let r = post(json!({"name": "gh", "transportType": "http", "toolsPrefix": "gh", "url": "ftp://x"})).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "url"));
    let r = post(json!({"name": "gh", "transportType": "http", "toolsPrefix": "gh", "url": "http://mcp.example:8080/mcp", "timeout": 0})).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "timeout"));
    let r = post(json!({"name": "gh", "transportType": "http", "toolsPrefix": "gh", "url": "http://mcp.example:8080/mcp", "toolsDeny": ["delete_repo"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["spec"]["toolsDeny"], json!(["delete_repo"]));
    let r = post(json!({"name": "gh", "transportType": "http", "toolsPrefix": "gh", "url": "http://mcp.example:8080/mcp"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    // What only the CRD's schema refuses comes back as a 400 with the API server's reason.
    let r = post(json!({"name": "odd", "transportType": "http", "toolsPrefix": "9-bad", "url": "http://x"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.json["error"].as_str().unwrap().contains("toolsPrefix"), "{}", r.text);
    let r = post(
        json!({"name": "fs", "transportType": "stdio", "toolsPrefix": "fs", "image": "ghcr.io/example/fs:1"}),
    )
    .await;
    assert_eq!(r.json["spec"]["deployment"]["image"], "ghcr.io/example/fs:1", "{}", r.text);
    h.eventually("/api/v1/mcpservers", |r| {
        r.json.as_array().unwrap().iter().filter(|m| m["metadata"]["namespace"] == h.ns.as_str()).count() == 2
    })
    .await;
    let r = h.call(Method::PATCH, &h.ns_path("/api/v1/mcpservers/gh"), Some(json!({"timeout": 60}))).await;
    assert_eq!(r.json["spec"]["timeout"], 60, "{}", r.text);
    assert_eq!(
        h.call(Method::DELETE, &h.ns_path("/api/v1/mcpservers/gh"), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.call(Method::DELETE, &h.ns_path("/api/v1/mcpservers/gh"), None).await.status,
        StatusCode::NOT_FOUND
    );

    // The gateway: zero value, 404 patch, create, 409, patch, delete — always the system namespace's.
    let g = h.call(Method::GET, &h.ns_path("/api/v1/gateway"), None).await;
    assert_eq!(g.json, json!({"enabled": false, "tlsEnabled": false, "ready": false}));
    assert_eq!(
        h.call(Method::PATCH, "/api/v1/gateway", Some(json!({"enabled": true}))).await.status,
        StatusCode::NOT_FOUND
    );
    let r = h
        .call(
            Method::POST,
            &h.ns_path("/api/v1/gateway"),
            Some(json!({"enabled": true, "baseDomain": "https://bad/"})),
        )
        .await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "baseDomain"));
    let r = h
        .call(
            Method::POST,
            &h.ns_path("/api/v1/gateway"),
            Some(json!({"enabled": true, "baseDomain": "agents.example.com"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(
        Api::<SympoziumConfig>::namespaced(h.client.clone(), &h.system_ns)
            .get_opt("default")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        Api::<SympoziumConfig>::namespaced(h.client.clone(), &h.ns)
            .get_opt("default")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        h.call(Method::POST, "/api/v1/gateway", Some(json!({"enabled": true}))).await.status,
        StatusCode::CONFLICT
    );
    let r = h
        .call(
            Method::PATCH,
            "/api/v1/gateway",
            Some(json!({"tlsEnabled": true, "certManagerClusterIssuer": "letsencrypt"})),
        )
        .await;
    assert_eq!(r.json["tlsEnabled"], true, "{}", r.text);
    let g = h.eventually("/api/v1/gateway", |r| r.json["tlsEnabled"] == true).await;
    assert_eq!(g.json["baseDomain"], "agents.example.com");
    assert_eq!(g.json["certManagerClusterIssuer"], "letsencrypt");
    assert_eq!(h.call(Method::DELETE, "/api/v1/gateway", None).await.status, StatusCode::NO_CONTENT);
}
