//! The generated artefacts that are committed — `docs/openapi.json` and the dashboard's
//! `web/src/api/types.gen.ts` — match the Rust types they come from (`make openapi` /
//! `make web-types` regenerate both).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use serde_json::Value;

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let path = sympozium_testkit::repo_root().join("docs/openapi.json");
    let generated = sympozium_apiserver::openapi::document();
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date: regenerate it with `make openapi` (UPDATE_OPENAPI=1 cargo test -p sympozium-apiserver --test generated the_committed_openapi)"
    );
    let doc: Value = serde_json::from_str(&generated).unwrap();
    for path in [
        "/api/v1/instances/{name}",
        "/api/v1/runs",
        "/api/v1/personapacks/install-defaults",
        "/api/v1/mcpservers/{name}",
        "/api/v1/gateway",
        "/ws/stream",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the document");
    }
}

#[test]
fn the_committed_typescript_types_match_the_rust_types() {
    let path = sympozium_testkit::repo_root().join("web/src/api/types.gen.ts");
    let generated = sympozium_apiserver::tsgen::typescript();
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "web/src/api/types.gen.ts is out of date: regenerate it with `make web-types`"
    );
    for t in [
        "export interface SympoziumInstance",
        "export interface AgentRun",
        "export type CreateRunRequest",
        "export type ObservabilityMetrics",
    ] {
        assert!(generated.contains(t), "{t} missing");
    }
}
