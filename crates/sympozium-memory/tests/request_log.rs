#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What an operator reads in the memory server's log (`kubectl logs <instance>-memory`) at the
//! default level: one line per store, search and list, with the memory's id or the number of
//! hits and how long it took.

mod common;

use common::ServerProcess;
use serde_json::Value;
use sympozium_memory::ListQuery;

/// The log's JSON lines (the shared log format: one object per line, fields at the top level).
fn lines(log: &str) -> Vec<Value> {
    log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn line_with<'a>(log: &'a [Value], message: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    log.iter()
        .find(|l| l["level"] == "INFO" && l["message"] == message && pred(l))
        .unwrap_or_else(|| panic!("no INFO line {message:?} with the expected fields in:\n{log:#?}"))
}

#[tokio::test]
async fn each_store_search_and_list_is_logged_at_info_with_ids_hits_and_duration() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("memory.db"), &[("RUST_LOG", "info")]);
    let client = server.client();
    let first = client.store("the payments namespace ran out of memory", &["incident".into()]).await.unwrap();
    let second = client.store("nodes were drained for the kernel upgrade", &[]).await.unwrap();
    let hits = client.search("payments memory", 5).await.unwrap();
    assert_eq!(hits.len(), 1);
    let listed = client.list(&ListQuery::default()).await.unwrap();
    assert_eq!(listed.len(), 2);

    let log = lines(&server.stderr());
    for id in [first.id, second.id] {
        let line = line_with(&log, "store", |l| l["id"] == id);
        assert!(line["ms"].is_number(), "{line}");
    }
    let line = line_with(&log, "search", |l| l["hits"] == 1);
    assert_eq!(line["ids"], format!("[{}]", first.id), "{line}");
    assert!(line["ms"].is_number(), "{line}");
    let line = line_with(&log, "list", |l| l["returned"] == 2);
    assert!(line["ms"].is_number(), "{line}");
}
