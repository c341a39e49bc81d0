#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Router tests in-process with `tower::ServiceExt::oneshot` (a real SQLite file, no socket).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sympozium_memory::{Limits, Store, http::router};
use tower::ServiceExt;

async fn send(app: &axum::Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn app(limits: Limits) -> (tempfile::TempDir, axum::Router) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("m.db"), limits, true, 2).unwrap();
    (dir, router(store))
}

#[tokio::test]
async fn store_search_update_delete_in_process() {
    let (_dir, app) = app(Limits::default());
    let (status, body) = send(
        &app,
        "POST",
        "/store",
        Some(json!({"content": "Rotate the Vault unseal keys yearly", "tags": ["vault"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let id = body["content"]["id"].as_i64().unwrap();
    let (_, body) = send(
        &app,
        "POST",
        "/search",
        Some(json!({"query": "when should vault keys be rotated", "top_k": 3})),
    )
    .await;
    assert_eq!(body["content"][0]["id"], json!(id));
    let (status, body) =
        send(&app, "PUT", &format!("/memories/{id}"), Some(json!({"tags": ["vault", "security"]}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["content"]["tags"], json!(["vault", "security"]));
    let (_, body) = send(&app, "GET", "/list?tag=security", None).await;
    assert_eq!(body["content"].as_array().unwrap().len(), 1);
    let (status, _) = send(&app, "DELETE", &format!("/memories/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(&app, "GET", &format!("/memories/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"success": false, "error": format!("memory {id} not found")}));
}

#[tokio::test]
async fn limits_map_to_413_and_validation_to_400() {
    let (_dir, app) = app(Limits { max_entries: 1, max_entry_bytes: 10, max_total_bytes: 0 });
    let (status, body) = send(&app, "POST", "/store", Some(json!({"content": "01234567890"}))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["error"].as_str().unwrap().contains("MEMORY_MAX_ENTRY_BYTES"));
    assert_eq!(send(&app, "POST", "/store", Some(json!({"content": "ok"}))).await.0, StatusCode::OK);
    let (status, body) = send(&app, "POST", "/store", Some(json!({"content": "two"}))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["error"].as_str().unwrap().contains("MEMORY_MAX_ENTRIES"));
    let (status, body) = send(&app, "POST", "/search", Some(json!({"top_k": 1}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], json!("'query' is required"));
    let (status, _) = send(&app, "DELETE", "/health", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}
