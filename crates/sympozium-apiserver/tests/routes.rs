//! The cluster, pod, provider, GitHub-token, memory and gateway-metrics routes against the
//! real test plane: status codes, shapes, the token, bad input naming the field. Provider
//! model lists come from a local HTTP server speaking Ollama's and OpenAI's wire formats;
//! the memory route reaches a real memory server (SQLite) through kube-apiserver's service
//! proxy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, Method, StatusCode};
use common::{Harness, TOKEN};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Secret, Service};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sympozium_api::{AgentRun, SympoziumConfig};

fn field(r: &common::Reply) -> &str {
    r.json["field"].as_str().unwrap_or_default()
}

async fn instance(h: &Harness, name: &str, extra: Value) -> common::Reply {
    let mut body = json!({"name": name, "provider": "openai", "model": "gpt-4o", "apiKey": "sk-test"});
    body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    h.call(Method::POST, &h.ns_path("/api/v1/instances"), Some(body)).await
}

#[tokio::test]
async fn every_new_route_wants_the_token() {
    let h = Harness::new("routes-auth", None).await;
    for path in [
        "/api/v1/cluster",
        "/api/v1/capabilities",
        "/api/v1/pods",
        "/api/v1/pods/x/logs",
        "/api/v1/providers/nodes",
        "/api/v1/providers/models?baseURL=http://127.0.0.1:1",
        "/api/v1/skills/github-gitops/auth/status",
        "/api/v1/instances/x/memory",
        "/api/v1/gateway/metrics",
    ] {
        let r = h.raw(Method::GET, path, None, Some("wrong")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path} answered without the token");
    }
    let r = h
        .raw(
            Method::POST,
            "/api/v1/skills/github-gitops/auth/token",
            Some(json!({"token": "ghp_x"}).to_string()),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        Api::<Secret>::namespaced(h.client.clone(), &h.system_ns)
            .get_opt("github-gitops-token")
            .await
            .unwrap()
            .is_none(),
        "an unauthenticated request stored a token"
    );
    // Every new path is in the OpenAPI document.
    let doc = h.raw(Method::GET, "/openapi.json", None, None).await.json;
    for p in [
        "/api/v1/cluster",
        "/api/v1/capabilities",
        "/api/v1/pods",
        "/api/v1/pods/{name}/logs",
        "/api/v1/providers/nodes",
        "/api/v1/providers/models",
        "/api/v1/skills/github-gitops/auth/token",
        "/api/v1/skills/github-gitops/auth/status",
        "/api/v1/instances/{name}/memory",
        "/api/v1/gateway/metrics",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing from /openapi.json");
    }
}

#[tokio::test]
async fn cluster_capabilities_and_pods() {
    let h = Harness::new("routes-cluster", None).await;
    let r = h.call(Method::GET, "/api/v1/cluster", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.json["namespaces"].as_u64().unwrap() >= 2, "{}", r.text);
    assert!(r.json["nodes"].is_u64() && r.json["pods"].is_u64(), "{}", r.text);
    assert!(r.json["version"].as_str().unwrap().starts_with('v'), "{}", r.text);

    // The plane has no agent-sandbox CRDs: the wizard must hear why.
    let r = h.call(Method::GET, "/api/v1/capabilities", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["agentSandbox"]["available"], false, "{}", r.text);
    assert!(r.json["agentSandbox"]["reason"].as_str().unwrap().contains("agents.x-k8s.io"), "{}", r.text);

    // A pod of an instance, with two containers and a default one.
    let pods = Api::<Pod>::namespaced(h.client.clone(), &h.ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "helper-agent", "labels": {"sympozium.ai/instance": "helper", "app": "x"},
            "annotations": {"kubectl.kubernetes.io/default-container": "agent"}},
        "spec": {"containers": [{"name": "sidecar", "image": "busybox"}, {"name": "agent", "image": "busybox"}],
            "nodeSelector": {"no-such-node": "true"}}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let r = h.call(Method::GET, &h.ns_path("/api/v1/pods"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let p = r.json.as_array().unwrap().iter().find(|p| p["name"] == "helper-agent").expect("pod listed");
    assert_eq!(p["namespace"], h.ns.as_str());
    assert_eq!(p["instanceRef"], "helper");
    assert_eq!(p["phase"], "Pending");
    assert_eq!(p["restartCount"], 0);
    assert_eq!(p["labels"]["app"], "x");
    assert!(p.get("nodeName").is_none(), "an unscheduled pod has no node: {p}");
    assert_eq!(r.headers["x-total-count"], "1");
    // Paging and bad paging.
    assert_eq!(
        h.call(Method::GET, &h.ns_path("/api/v1/pods?limit=0"), None).await.status,
        StatusCode::BAD_REQUEST
    );
    let r = h.call(Method::GET, "/api/v1/pods?namespace=Not_A_Namespace", None).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "namespace"), "{}", r.text);

    // Logs: a wrong container is named with the ones there are; a missing pod is a 404;
    // a container that never started has no log yet (and says so).
    let r = h.call(Method::GET, &h.ns_path("/api/v1/pods/helper-agent/logs?container=nope"), None).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "container"), "{}", r.text);
    assert!(r.json["error"].as_str().unwrap().contains("sidecar, agent"), "{}", r.text);
    let r = h.call(Method::GET, &h.ns_path("/api/v1/pods/missing/logs"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // Two containers and no `?container=`: the default one is asked for (Kubernetes itself
    // would refuse to pick); a pod not started yet has an empty log.
    let r = h.call(Method::GET, &h.ns_path("/api/v1/pods/helper-agent/logs"), None).await;
    assert_eq!((r.status, &r.json), (StatusCode::OK, &json!({"logs": ""})), "{}", r.text);
    let r = h.call(Method::GET, &h.ns_path("/api/v1/pods/helper-agent/logs?container=sidecar"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = h.call(Method::GET, &h.ns_path("/api/v1/pods/Bad_Name/logs"), None).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "name"), "{}", r.text);
}

#[tokio::test]
async fn provider_nodes_come_from_the_node_probe_annotations() {
    let h = Harness::new("routes-nodes", None).await;
    let nodes = Api::<Node>::all(h.client.clone());
    let healthy = format!("{}-gpu", h.ns);
    let idle = format!("{}-idle", h.ns);
    for (name, annotations) in [
        (
            &healthy,
            json!({"sympozium.ai/inference-healthy": "true", "sympozium.ai/inference-ollama": "11434",
                "sympozium.ai/inference-models-ollama": "llama3,qwen2.5", "sympozium.ai/inference-vllm": "8000",
                "sympozium.ai/inference-models-vllm": "mistral", "sympozium.ai/inference-proxy-port": "9473",
                "sympozium.ai/inference-last-probe": "2026-12-03T09:00:00Z"}),
        ),
        (&idle, json!({"sympozium.ai/inference-ollama": "11434"})),
    ] {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}, "annotations": annotations},
            "spec": {"taints": [{"key": "test", "value": "only", "effect": "NoSchedule"}]}
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
    }
    let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.9.8.7"}]}});
    nodes.patch_status(&healthy, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();

    let r = h.call(Method::GET, "/api/v1/providers/nodes", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let listed: Vec<&Value> =
        r.json.as_array().unwrap().iter().filter(|n| n["nodeName"] == healthy.as_str()).collect();
    assert_eq!(listed.len(), 1, "{}", r.text);
    let n = listed[0];
    assert_eq!(n["nodeIP"], "10.9.8.7");
    assert_eq!(n["labels"]["kubernetes.io/hostname"], healthy.as_str());
    let ollama = n["providers"].as_array().unwrap().iter().find(|p| p["name"] == "ollama").unwrap();
    assert_eq!(ollama["port"], 11434);
    assert_eq!(ollama["proxyPort"], 9473);
    assert_eq!(ollama["models"], json!(["llama3", "qwen2.5"]));
    assert_eq!(ollama["lastProbe"], "2026-12-03T09:00:00Z");
    assert!(
        !r.json.as_array().unwrap().iter().any(|n| n["nodeName"] == idle.as_str()),
        "a node without a healthy probe is listed"
    );
    let r = h.call(Method::GET, "/api/v1/providers/nodes?provider=vllm", None).await;
    let n = r.json.as_array().unwrap().iter().find(|n| n["nodeName"] == healthy.as_str()).unwrap().clone();
    assert_eq!(n["providers"].as_array().unwrap().len(), 1);
    assert_eq!(n["providers"][0]["name"], "vllm");
    let r = h.call(Method::GET, "/api/v1/providers/nodes?provider=llama-cpp", None).await;
    assert!(!r.json.as_array().unwrap().iter().any(|n| n["nodeName"] == healthy.as_str()));

    for name in [&healthy, &idle] {
        nodes.delete(name, &DeleteParams::default()).await.unwrap();
    }
}

/// A provider on loopback: Ollama's `/api/tags`, OpenAI's `/v1/models` (which wants
/// `Authorization: Bearer sk-live`), and a `/broken/v1/models` that fails.
async fn fake_provider() -> SocketAddr {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/api/tags",
            get(|| async {
                axum::Json(json!({"models": [{"name": "qwen2:latest"}, {"name": "llama3:8b"}, {"name": "llama3:latest"}]}))
            }),
        )
        .route(
            "/v1/models",
            get(|headers: HeaderMap| async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer sk-live") {
                    return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "bad key"})));
                }
                (StatusCode::OK, axum::Json(json!({"object": "list", "data": [{"id": "gpt-4o"}, {"id": "gpt-4.1-mini"}]})))
            }),
        )
        .route("/broken/v1/models", get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }))
        .route(
            "/redirect/v1/models",
            get(|| async { axum::response::Redirect::temporary("http://169.254.169.254/latest/meta-data") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn models(h: &Harness, query: &str, key: Option<&str>) -> common::Reply {
    let mut req = axum::http::Request::builder()
        .method(Method::GET)
        .uri(format!("/api/v1/providers/models?{query}"))
        .header("authorization", format!("Bearer {TOKEN}"));
    if let Some(k) = key {
        req = req.header("x-provider-api-key", k);
    }
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let res = h.app.clone().oneshot(req.body(axum::body::Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let text = String::from_utf8_lossy(&res.into_body().collect().await.unwrap().to_bytes()).into_owned();
    common::Reply { status, headers, json: serde_json::from_str(&text).unwrap_or(Value::Null), text }
}

#[tokio::test]
async fn provider_models_are_listed_live_and_unsafe_urls_are_refused() {
    let h = Harness::new("routes-models", None).await;
    let addr = fake_provider().await;
    // Ollama: its tag list, `:latest` dropped, sorted, duplicates merged.
    let r = models(&h, &format!("baseURL=http://{addr}/v1&provider=ollama"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json, json!({"models": ["llama3", "llama3:8b", "qwen2"], "source": "live"}));
    // OpenAI-compatible: the key travels as a bearer token.
    let r = models(&h, &format!("baseURL=http://{addr}&provider=openai"), Some("sk-live")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["models"], json!(["gpt-4.1-mini", "gpt-4o"]));
    let r = models(&h, &format!("baseURL=http://{addr}/v1/"), Some("sk-live")).await;
    assert_eq!(r.json["models"], json!(["gpt-4.1-mini", "gpt-4o"]), "{}", r.text);
    // A refused key, a failing provider, a dead port: 502 with the reason.
    let r = models(&h, &format!("baseURL=http://{addr}"), Some("sk-wrong")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert!(r.json["error"].as_str().unwrap().contains("401"), "{}", r.text);
    let r = models(&h, &format!("baseURL=http://{addr}/broken"), None).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    // A redirect is not followed (it could lead anywhere, the metadata service included).
    let r = models(&h, &format!("baseURL=http://{addr}/redirect"), None).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    // Bad input names the field.
    for q in [
        "",
        "baseURL=",
        "baseURL=not%20a%20url",
        "baseURL=ftp://example.com/v1",
        "baseURL=file:///etc/passwd",
    ] {
        let r = models(&h, q, None).await;
        assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "baseURL"), "{q}: {}", r.text);
    }
    // Link-local addresses (cloud metadata) are refused before any connection.
    for q in [
        "baseURL=http://169.254.169.254/latest",
        "baseURL=http://[fe80::1]:8080/v1",
        "baseURL=http://[::ffff:169.254.169.254]/v1",
    ] {
        let r = models(&h, q, None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{q}: {}", r.text);
        assert!(r.json["error"].as_str().unwrap().contains("link-local"), "{}", r.text);
    }
}

#[tokio::test]
async fn the_github_token_is_stored_in_the_system_namespace_and_never_read_back() {
    let h = Harness::new("routes-github", None).await;
    let status = "/api/v1/skills/github-gitops/auth/status";
    assert_eq!(h.call(Method::GET, status, None).await.json, json!({"status": "idle"}));
    let path = "/api/v1/skills/github-gitops/auth/token";
    for body in [json!({}), json!({"token": "  "}), json!({"token": "ghp a b"})] {
        let r = h.call(Method::POST, path, Some(body.clone())).await;
        assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "token"), "{body}: {}", r.text);
    }
    let r = h.raw(Method::POST, path, Some("{not json".into()), Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json["error"].as_str().unwrap().starts_with("invalid JSON"), "{}", r.text);
    let r = h.call(Method::POST, path, Some(json!({"token": "ghp_first"}))).await;
    assert_eq!((r.status, &r.json), (StatusCode::OK, &json!({"status": "complete"})), "{}", r.text);
    let r = h.call(Method::POST, path, Some(json!({"token": "ghp_second"}))).await;
    assert_eq!(r.status, StatusCode::OK);
    let secret =
        Api::<Secret>::namespaced(h.client.clone(), &h.system_ns).get("github-gitops-token").await.unwrap();
    assert_eq!(secret.data.unwrap()["GH_TOKEN"].0, b"ghp_second");
    let labels = secret.metadata.labels.unwrap();
    assert_eq!(labels["sympozium.ai/skill"], "github-gitops");
    assert_eq!(labels["app.kubernetes.io/component"], "skill-secret");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "sympozium");
    let r = h.call(Method::GET, status, None).await;
    assert_eq!(r.json, json!({"status": "complete"}));
    assert!(!r.text.contains("ghp_"), "the status leaked the token");
}

#[tokio::test]
async fn gateway_patch_keeps_what_it_does_not_touch() {
    let h = Harness::new("routes-gwpatch", None).await;
    let configs = Api::<SympoziumConfig>::namespaced(h.client.clone(), &h.system_ns);
    let config: SympoziumConfig = serde_json::from_value(json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumConfig",
        "metadata": {"name": "default", "labels": {"team": "platform"}},
        "spec": {
            "gateway": {"enabled": true, "gatewayClassName": "istio", "name": "sympozium-gw",
                "baseDomain": "agents.example.com",
                "tls": {"enabled": true, "certManagerClusterIssuer": "letsencrypt", "secretName": "gw-tls"}},
            "pricing": {"currency": "EUR", "models": {"gpt-4o": {"inputPerMillion": "2.50", "outputPerMillion": "10.00"}}}
        }
    }))
    .unwrap();
    configs.create(&PostParams::default(), &config).await.unwrap();
    let before = serde_json::to_value(configs.get("default").await.unwrap()).unwrap();

    let r = h.call(Method::PATCH, "/api/v1/gateway", Some(json!({"baseDomain": "ai.example.org"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["baseDomain"], "ai.example.org");
    assert_eq!(r.json["gatewayClassName"], "istio");
    assert_eq!(r.json["tlsEnabled"], true);
    let after = serde_json::to_value(configs.get("default").await.unwrap()).unwrap();
    assert_eq!(after["spec"]["pricing"], before["spec"]["pricing"], "PATCH /gateway changed pricing");
    assert_eq!(after["metadata"]["labels"], before["metadata"]["labels"]);
    let mut want = before["spec"]["gateway"].clone();
    want["baseDomain"] = "ai.example.org".into();
    assert_eq!(after["spec"]["gateway"], want, "PATCH /gateway changed fields it was not given");

    // Turning TLS off keeps the issuer and secret for when it is turned on again.
    let r = h.call(Method::PATCH, "/api/v1/gateway", Some(json!({"tlsEnabled": false}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let after = serde_json::to_value(configs.get("default").await.unwrap()).unwrap();
    assert_eq!(after["spec"]["gateway"]["tls"]["enabled"], false);
    assert_eq!(after["spec"]["gateway"]["tls"]["secretName"], "gw-tls");
    assert_eq!(after["spec"]["pricing"], before["spec"]["pricing"]);
    // Bad input names the field and changes nothing.
    let r = h.call(Method::PATCH, "/api/v1/gateway", Some(json!({"baseDomain": "http://x/y"}))).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "baseDomain"), "{}", r.text);
    let r = h.call(Method::PATCH, "/api/v1/gateway", Some(json!({"enabled": "yes"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(
        serde_json::to_value(configs.get("default").await.unwrap()).unwrap()["spec"]["gateway"]["baseDomain"],
        "ai.example.org"
    );
}

#[tokio::test]
async fn gateway_metrics_count_web_proxy_requests_and_serving_endpoints() {
    let h = Harness::new("routes-gwmetrics", None).await;
    assert_eq!(instance(&h, "web", json!({})).await.status, StatusCode::CREATED);
    let runs = Api::<AgentRun>::namespaced(h.client.clone(), &h.ns);
    let now = chrono::Utc::now();
    let started = (now - chrono::Duration::seconds(120)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Three web requests (one failed), one ordinary run, one serving endpoint.
    for (label, status) in [
        (
            Some("web-proxy"),
            json!({"phase": "Succeeded", "tokenUsage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2, "toolCalls": 0, "durationMs": 2000}}),
        ),
        (
            Some("web-proxy"),
            json!({"phase": "Succeeded", "tokenUsage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2, "toolCalls": 0, "durationMs": 4000}}),
        ),
        (Some("web-proxy"), json!({"phase": "Failed", "error": "model down"})),
        (None, json!({"phase": "Succeeded"})),
        (None, json!({"phase": "Serving", "startedAt": started, "completedAt": null})),
    ] {
        let r = h
            .call(Method::POST, &h.ns_path("/api/v1/runs"), Some(json!({"instanceRef": "web", "task": "t"})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let name = r.json["metadata"]["name"].as_str().unwrap().to_string();
        if let Some(l) = label {
            let patch = json!({"metadata": {"labels": {"sympozium.ai/source": l}}});
            runs.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        }
        let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "status": status});
        runs.patch_status(&name, &PatchParams::apply("test").force(), &Patch::Apply(&body)).await.unwrap();
    }
    let r = h
        .eventually(&h.ns_path("/api/v1/gateway/metrics?range=1h"), |r| {
            r.json["totalRequests"] == 3 && r.json["servingInstances"] == 1
        })
        .await;
    assert_eq!(r.json["successCount"], 2, "{}", r.text);
    assert_eq!(r.json["errorCount"], 1);
    assert_eq!(r.json["avgDurationSec"], 3.0);
    assert!(r.json["uptimeSec"].as_i64().unwrap() >= 120, "{}", r.text);
    let buckets = r.json["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 12, "1h is twelve 5-minute buckets");
    assert_eq!(buckets.iter().map(|b| b["requests"].as_u64().unwrap()).sum::<u64>(), 3);
    assert_eq!(buckets.iter().map(|b| b["errors"].as_u64().unwrap()).sum::<u64>(), 1);
    let r = h.call(Method::GET, &h.ns_path("/api/v1/gateway/metrics"), None).await;
    assert_eq!(r.json["buckets"].as_array().unwrap().len(), 24, "the default range is 24 hourly buckets");
    let r = h.call(Method::GET, &h.ns_path("/api/v1/gateway/metrics?range=7d"), None).await;
    assert_eq!(r.json["buckets"].as_array().unwrap().len(), 7);
    let r = h.call(Method::GET, &h.ns_path("/api/v1/gateway/metrics?range=2w"), None).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "range"), "{}", r.text);
}

/// This machine's first non-loopback address: kube-apiserver refuses to proxy to loopback.
fn host_ip() -> IpAddr {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    sock.connect("192.0.2.254:9").unwrap();
    sock.local_addr().unwrap().ip()
}

#[tokio::test]
async fn an_instances_memory_is_read_from_its_memory_server_through_the_service_proxy() {
    let h = Harness::new("routes-memory", None).await;
    assert_eq!(instance(&h, "keeper", json!({})).await.status, StatusCode::CREATED);

    // Bad input first.
    let r = h.call(Method::GET, &h.ns_path("/api/v1/instances/keeper/memory?limit=0"), None).await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "limit"), "{}", r.text);
    let r = h
        .call(
            Method::GET,
            &h.ns_path(&format!("/api/v1/instances/keeper/memory?q={}", "a".repeat(600))),
            None,
        )
        .await;
    assert_eq!((r.status, field(&r)), (StatusCode::BAD_REQUEST, "q"), "{}", r.text);
    let r = h.call(Method::GET, &h.ns_path("/api/v1/instances/nobody/memory"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // No token Secret yet: the memory server is not set up.
    let r = h
        .eventually(&h.ns_path("/api/v1/instances/keeper/memory"), |r| r.status != StatusCode::NOT_FOUND)
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);

    // A real memory server (SQLite) with a token, behind a Service named as the
    // controller names it, whose endpoint is this process.
    let dir = std::env::temp_dir().join(format!("apiserver-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store =
        sympozium_memory::Store::open(&dir.join("memory.db"), sympozium_memory::Limits::default(), true, 2)
            .unwrap();
    for (text, tag) in [("The deploy window is Tuesday", "ops"), ("Alice owns the billing service", "people")]
    {
        store
            .store(sympozium_memory::StoreRequest { content: text.into(), tags: vec![tag.into()] })
            .await
            .unwrap();
    }
    let token = "mem-token-abc123";
    let app = sympozium_memory::http::router_with_token(store, Some(token.into()));
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "keeper-memory"},
        "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": port}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(h.client.clone(), &h.ns).create(&PostParams::default(), &svc).await.unwrap();
    // kube-apiserver proxies only to an endpoint that is a pod with that IP: a pod (never
    // scheduled) given this host's address stands in for the memory server's pod.
    let ip = host_ip().to_string();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "keeper-memory-0"},
        "spec": {"containers": [{"name": "memory", "image": "memory"}], "nodeSelector": {"no-such-node": "true"}}
    }))
    .unwrap();
    let pods = Api::<Pod>::namespaced(h.client.clone(), &h.ns);
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = json!({"status": {"podIP": ip, "podIPs": [{"ip": ip}]}});
    pods.patch_status("keeper-memory-0", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    let ep: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "keeper-memory"},
        "subsets": [{"addresses": [{"ip": ip, "targetRef": {"kind": "Pod", "name": "keeper-memory-0", "namespace": h.ns}}],
            "ports": [{"name": "http", "port": port}]}]
    }))
    .unwrap();
    Api::<Endpoints>::namespaced(h.client.clone(), &h.ns).create(&PostParams::default(), &ep).await.unwrap();

    // A wrong token: the memory server refuses, and the API says so rather than "no memories".
    let secrets = Api::<Secret>::namespaced(h.client.clone(), &h.ns);
    let secret = |t: &str| {
        serde_json::from_value::<Secret>(
            json!({"metadata": {"name": "keeper-memory-token"}, "stringData": {"token": t}}),
        )
        .unwrap()
    };
    secrets.create(&PostParams::default(), &secret("wrong-token")).await.unwrap();
    let r = h
        .eventually(&h.ns_path("/api/v1/instances/keeper/memory"), |r| {
            r.status != StatusCode::SERVICE_UNAVAILABLE
        })
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    secrets.replace("keeper-memory-token", &PostParams::default(), &secret(token)).await.unwrap();

    let r = h.call(Method::GET, &h.ns_path("/api/v1/instances/keeper/memory"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["instance"], "keeper");
    assert_eq!(r.json["enabled"], true);
    assert_eq!(r.json["maxSizeKB"], 256);
    let contents: Vec<&str> =
        r.json["entries"].as_array().unwrap().iter().map(|e| e["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["Alice owns the billing service", "The deploy window is Tuesday"], "newest first");
    let r = h.call(Method::GET, &h.ns_path("/api/v1/instances/keeper/memory?q=deploy+window"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["entries"].as_array().unwrap().len(), 1, "{}", r.text);
    assert_eq!(r.json["entries"][0]["tags"], json!(["ops"]));
    let r = h.call(Method::GET, &h.ns_path("/api/v1/instances/keeper/memory?tag=people&limit=5"), None).await;
    assert_eq!(r.json["entries"].as_array().unwrap().len(), 1, "{}", r.text);
    assert_eq!(r.json["entries"][0]["content"], "Alice owns the billing service");

    // Memory switched off: nothing is asked.
    let insts = Api::<sympozium_api::SympoziumInstance>::namespaced(h.client.clone(), &h.ns);
    insts
        .patch(
            "keeper",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"memory": {"enabled": false}}})),
        )
        .await
        .unwrap();
    let r = h.eventually(&h.ns_path("/api/v1/instances/keeper/memory"), |r| r.json["enabled"] == false).await;
    assert_eq!(r.json["entries"], json!([]));
    let _ = std::fs::remove_dir_all(&dir);
}
