#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What an operator reads in the memory server's log (`kubectl logs <instance>-memory`) at the
//! default level: one line per store, search and list, with the memory's id or the number of
//! hits and how long it took.

mod common;

use common::ServerProcess;
use sympozium_memory::ListQuery;

/// The log without terminal colour codes.
fn plain(log: &str) -> String {
    let mut out = String::new();
    let mut chars = log.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn line_with<'a>(log: &'a str, words: &[&str]) -> &'a str {
    log.lines()
        .find(|l| words.iter().all(|w| l.contains(w)))
        .unwrap_or_else(|| panic!("no log line with {words:?} in:\n{log}"))
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

    let log = plain(&server.stderr());
    for id in [first.id, second.id] {
        let line = line_with(&log, &[" INFO ", "store", &format!("id={id}")]);
        assert!(line.contains(" ms="), "{line}");
    }
    let line = line_with(&log, &[" INFO ", "search", "hits=1"]);
    assert!(line.contains(&format!("ids=[{}]", first.id)) && line.contains(" ms="), "{line}");
    let line = line_with(&log, &[" INFO ", "list", "returned=2"]);
    assert!(line.contains(" ms="), "{line}");
}
