//! The API server's router over the real test plane (and, where a test needs it, a real
//! nats-server), driven in-process with `tower::ServiceExt::oneshot`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use kube::Client;
use serde_json::Value;
use sympozium_apiserver::{AppState, Caches, router};
use sympozium_testkit::{TestNamespace, TestPlane};
use tower::ServiceExt;

/// The token every harness uses.
pub const TOKEN: &str = "ui-token-0123456789abcdef";

/// A router plus the namespace its test owns.
pub struct Harness {
    pub app: Router,
    pub client: Client,
    pub ns: String,
    pub system_ns: String,
    _ns: TestNamespace,
    _system: TestNamespace,
}

/// A reply: status, headers and body (JSON when it parses).
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Harness {
    pub async fn new(prefix: &str, bus: Option<sympozium_bus::Bus>) -> Self {
        Self::with_bedrock(prefix, bus, None).await
    }

    /// [`Harness::new`] whose Bedrock calls go to `bedrock_endpoint` (a fake).
    pub async fn with_bedrock(
        prefix: &str,
        bus: Option<sympozium_bus::Bus>,
        bedrock_endpoint: Option<String>,
    ) -> Self {
        let plane = TestPlane::get().expect("test plane");
        let client = plane.client().await.expect("client");
        let ns = plane.namespace(&client, prefix).await.expect("namespace");
        // A system namespace per test, so gateway and default-pack tests do not meet.
        let system = plane.namespace(&client, &format!("{prefix}-sys")).await.expect("namespace");
        let caches = Caches::start(&client);
        assert!(caches.wait_ready(Duration::from_secs(60)).await, "watch caches did not sync");
        let state = AppState {
            client: client.clone(),
            caches,
            token: Some(Arc::from(TOKEN)),
            bus,
            system_namespace: system.name().to_string(),
            bedrock_endpoint,
        };
        Self {
            app: router(state),
            client,
            ns: ns.name().to_string(),
            system_ns: system.name().to_string(),
            _ns: ns,
            _system: system,
        }
    }

    /// `method path` with the token and an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.raw(method, path, body.map(|b| b.to_string()), Some(TOKEN)).await
    }

    /// Like [`Harness::call`] with the body as text and any token (or none).
    pub async fn raw(&self, method: Method, path: &str, body: Option<String>, token: Option<&str>) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(body.map(Body::from).unwrap_or_else(Body::empty)).unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Reply { status, headers, json: serde_json::from_str(&text).unwrap_or(Value::Null), text }
    }

    /// `path?namespace=<ns>` (appending to an existing query).
    pub fn ns_path(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}namespace={}", self.ns)
    }

    /// GETs `path` until `check` holds of the reply (the watch caches lag writes a little).
    pub async fn eventually(&self, path: &str, check: impl Fn(&Reply) -> bool) -> Reply {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.call(Method::GET, path, None).await;
            if check(&r) {
                return r;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("GET {path}: condition never held; last reply {} {}", r.status, r.text);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The names of the objects in a list reply.
pub fn names(r: &Reply) -> Vec<String> {
    r.json
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["metadata"]["name"].as_str().map(String::from))
        .collect()
}
