#![cfg(feature = "server")]
//! Fuzz target for the memory server's HTTP API: requests (method, path and query, JSON
//! body) against the real router over a real SQLite file. Whatever the body, the answer is
//! a clear 4xx with the JSON error envelope, never a 500 or a panic, and the server keeps
//! answering afterwards.
//!
//! Under `cargo test` the target runs for about a second on random input plus its committed
//! corpus (`tests/__fuzz__/<test name>/corpus`: requests as `{"method","path","body"}`);
//! `make fuzz` runs it under libFuzzer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sympozium_memory::{Limits, Store, http::router};
use sympozium_testkit::fuzz;
use tower::ServiceExt;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/__fuzz__").join(target).join("corpus")
}

async fn send(app: &axum::Router, method: &str, uri: &str, body: Vec<u8>) -> Option<(StatusCode, Vec<u8>)> {
    // Requests the HTTP layer itself would refuse (bad method token, bad URI) never reach
    // the router.
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .ok()?;
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    Some((status, bytes.to_vec()))
}

fn assert_answer(what: &str, status: StatusCode, body: &[u8]) {
    assert!(!status.is_server_error(), "{what}: {status} {}", String::from_utf8_lossy(body));
    if !status.is_success() && status != StatusCode::METHOD_NOT_ALLOWED {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        assert_eq!(
            v["success"],
            json!(false),
            "{what}: error envelope, got {}",
            String::from_utf8_lossy(body)
        );
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: the error says why");
    }
}

#[test]
fn memory_requests() {
    let seeds = fuzz::seeds(&corpus("memory_requests"));
    assert!(seeds.len() >= 5, "the committed seed requests are there");
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { max_entries: 500, max_entry_bytes: 16 * 1024, max_total_bytes: 1024 * 1024 };
    let store = Store::open(&dir.path().join("m.db"), limits, true, 2).unwrap();
    let app = router(store);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // A panic fails the target; nothing is observed of the router after one.
    let shared = std::panic::AssertUnwindSafe((app, rt));
    let run = |bytes: &[u8]| {
        let (app, rt) = &*shared;
        rt.block_on(async {
            let doc = fuzz::document(&seeds, bytes);
            let method = doc["method"].as_str().unwrap_or("POST");
            let path = doc["path"].as_str().unwrap_or("/store");
            let body = match &doc["body"] {
                Value::Null => Vec::new(),
                Value::String(raw) => raw.as_bytes().to_vec(),
                v => serde_json::to_vec(v).unwrap(),
            };
            let what = format!("{method} {path} {}", String::from_utf8_lossy(&body));
            if let Some((status, answer)) = send(app, method, path, body).await {
                assert_answer(&what, status, &answer);
            }
            // The raw input as a body to each route.
            for (m, p) in [("POST", "/store"), ("POST", "/search"), ("PUT", "/memories/1")] {
                if let Some((status, answer)) = send(app, m, p, bytes.to_vec()).await {
                    assert_answer(&format!("{m} {p} <raw>"), status, &answer);
                }
            }
        });
    };
    bolero::check!().for_each(|bytes: &[u8]| run(bytes));
    // Still serving after all that.
    let (app, rt) = &*shared;
    let health = rt.block_on(send(app, "GET", "/health", Vec::new())).unwrap();
    assert_eq!(health.0, StatusCode::OK);
}
