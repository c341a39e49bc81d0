#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every route and error case of the HTTP API, against a real server process and SQLite file.

mod common;

use common::ServerProcess;
use serde_json::{Value, json};
use sympozium_memory::{ListQuery, UpdateRequest};

struct Reply {
    status: u16,
    content_type: String,
    body: Value,
    text: String,
}

async fn call(method: &str, url: &str, body: Option<&str>) -> Reply {
    let http = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type =
        resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, content_type, body, text }
}

fn assert_error(reply: &Reply, status: u16, error_prefix: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text);
    assert_eq!(reply.content_type, "application/json");
    assert_eq!(reply.body["success"], json!(false), "{}", reply.text);
    let error = reply.body["error"].as_str().unwrap();
    assert!(error.starts_with(error_prefix), "error {error:?} should start with {error_prefix:?}");
}

fn server(env: &[(&str, &str)]) -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("memory.db"), env);
    (dir, server)
}

async fn store(url: &str, content: &str, tags: &[&str]) -> i64 {
    let body = json!({"content": content, "tags": tags}).to_string();
    let reply = call("POST", &format!("{url}/store"), Some(&body)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["content"]["id"].as_i64().unwrap()
}

#[tokio::test]
async fn health_is_plain_ok_and_other_methods_are_405() {
    let (_dir, s) = server(&[]);
    let r = call("GET", &format!("{}/health", s.url), None).await;
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/plain"));
    assert_eq!(r.text, "ok");
    for (method, path) in [
        ("POST", "/health"),
        ("GET", "/search"),
        ("PUT", "/search"),
        ("GET", "/store"),
        ("DELETE", "/store"),
        ("POST", "/list"),
        ("POST", "/memories/1"),
        ("PATCH", "/memories/1"),
    ] {
        let r = call(method, &format!("{}{path}", s.url), Some("{}")).await;
        assert_error(&r, 405, "method ");
    }
    let resp = reqwest::Client::new().post(format!("{}/health", s.url)).send().await.unwrap();
    assert_eq!(resp.headers().get("allow").unwrap(), "GET,HEAD");
    let resp = reqwest::Client::new().head(format!("{}/health", s.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let r = call("GET", &format!("{}/nowhere", s.url), None).await;
    assert_error(&r, 404, "no route for GET /nowhere");
}

#[tokio::test]
async fn store_get_list_search_round_trip() {
    let (_dir, s) = server(&[]);
    let r = call(
        "POST",
        &format!("{}/store", s.url),
        Some(r#"{"content":"Postgres failover runbook: promote the replica with pg_ctl promote","tags":["runbook"," db ","runbook",""]}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.content_type, "application/json");
    assert_eq!(r.body["success"], json!(true));
    assert!(r.body.get("error").is_none());
    let id = r.body["content"]["id"].as_i64().unwrap();
    let stored_at = r.body["content"]["stored_at"].as_str().unwrap().to_string();
    assert!(stored_at.ends_with('Z') && stored_at.contains('T'), "{stored_at}");

    let untagged = store(&s.url, "a memory without tags", &[]).await;
    assert!(untagged > id);

    let r = call("GET", &format!("{}/memories/{id}", s.url), None).await;
    assert_eq!(r.status, 200);
    let entry = &r.body["content"];
    assert_eq!(entry["id"], json!(id));
    assert_eq!(entry["tags"], json!(["runbook", "db"]));
    assert_eq!(entry["created_at"], json!(stored_at));
    assert_eq!(entry["updated_at"], json!(stored_at));

    let r = call("GET", &format!("{}/memories/{untagged}", s.url), None).await;
    assert!(r.body["content"].get("tags").is_none(), "{}", r.text);

    let r = call("GET", &format!("{}/list", s.url), None).await;
    let ids: Vec<i64> =
        r.body["content"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![untagged, id], "newest first");

    let r = call(
        "POST",
        &format!("{}/search", s.url),
        Some(r#"{"query":"how do I promote a postgres replica?"}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["content"][0]["id"], json!(id));

    let r = call("POST", &format!("{}/search", s.url), Some(r#"{"query":"kafka"}"#)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["content"], json!([]), "empty is [] not null");
}

#[tokio::test]
async fn store_rejects_bad_input() {
    let (_dir, s) = server(&[]);
    let url = format!("{}/store", s.url);
    assert_error(&call("POST", &url, Some("{not json")).await, 400, "invalid JSON body: ");
    assert_error(&call("POST", &url, Some("")).await, 400, "invalid JSON body: ");
    assert_error(&call("POST", &url, Some("{}")).await, 400, "'content' is required");
    assert_error(&call("POST", &url, Some(r#"{"content":"   "}"#)).await, 400, "'content' is required");
    assert_error(
        &call("POST", &url, Some(r#"{"content":42}"#)).await,
        400,
        "invalid JSON body: invalid type",
    );
    assert_error(
        &call("POST", &url, Some(r#"{"content":"x","tags":"a,b"}"#)).await,
        400,
        "invalid JSON body: invalid type",
    );
    assert_error(
        &call("POST", &url, Some(r#"{"content":"x","tags":["a,b"]}"#)).await,
        400,
        "tag \"a,b\" contains a comma",
    );
    let r = call("GET", &format!("{}/list", s.url), None).await;
    assert_eq!(r.body["content"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn search_validates_and_bounds_results() {
    let (_dir, s) = server(&[]);
    let url = format!("{}/search", s.url);
    assert_error(&call("POST", &url, Some("[1,")).await, 400, "invalid JSON body: ");
    assert_error(&call("POST", &url, Some("{}")).await, 400, "'query' is required");
    assert_error(&call("POST", &url, Some(r#"{"query":""}"#)).await, 400, "'query' is required");
    assert_error(
        &call("POST", &url, Some(r#"{"query":"x","top_k":"many"}"#)).await,
        400,
        "invalid JSON body: invalid type",
    );
    for i in 0..8 {
        store(&s.url, &format!("certificate rotation note number {i}"), &[]).await;
    }
    for (top_k, expected) in [(0, 5), (-3, 5), (2, 2), (50, 8)] {
        let body = json!({"query": "certificate rotation", "top_k": top_k}).to_string();
        let r = call("POST", &url, Some(&body)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["content"].as_array().unwrap().len(), expected, "top_k {top_k}");
    }
    // Nothing searchable, or FTS5 syntax: an empty result, never an error or a table scan.
    for query in ["*** ( ) :", "NEAR(", "\"", "content:x OR", "AND"] {
        let body = json!({"query": query}).to_string();
        let r = call("POST", &url, Some(&body)).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        assert!(r.body["content"].is_array());
    }
}

#[tokio::test]
async fn list_filters_and_pages() {
    let (_dir, s) = server(&[]);
    let mut ids = Vec::new();
    for i in 0..25 {
        let tags: &[&str] = match i % 3 {
            0 => &["incident", "db"],
            1 => &["incident"],
            _ => &["runbook"],
        };
        ids.push(store(&s.url, &format!("note {i}"), tags).await);
    }
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();
    let list = |q: &str| {
        let url = format!("{}/list{q}", s.url);
        async move {
            let r = call("GET", &url, None).await;
            assert_eq!(r.status, 200, "{url}: {}", r.text);
            r.body["content"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap())
                .collect::<Vec<i64>>()
        }
    };
    assert_eq!(list("").await, newest_first[..20]);
    assert_eq!(list("?limit=abc").await.len(), 20);
    assert_eq!(list("?limit=0").await.len(), 20);
    assert_eq!(list("?limit=-4").await.len(), 20);
    assert_eq!(list("?limit=3").await, newest_first[..3]);
    // Pagination: pages are disjoint and cover everything in order.
    let mut paged = Vec::new();
    for offset in (0..30).step_by(10) {
        paged.extend(list(&format!("?limit=10&offset={offset}")).await);
    }
    assert_eq!(paged, newest_first);
    assert_error(&call("GET", &format!("{}/list?offset=-1", s.url), None).await, 400, "invalid 'offset'");
    // Legacy substring filter on the comma-joined tags.
    assert_eq!(list("?tags=incid&limit=100").await.len(), 17);
    assert_eq!(list("?tags=t%2Cdb&limit=100").await.len(), 9, "matches \"incident,db\"");
    // Exact tags: no substring matches, repeated tags must all be present.
    assert!(list("?tag=incid").await.is_empty());
    assert_eq!(list("?tag=incident&limit=100").await.len(), 17);
    assert_eq!(list("?tag=incident&tag=db&limit=100").await.len(), 9);
    assert_eq!(list("?tag=runbook&tag=db").await, Vec::<i64>::new());
    assert_eq!(list("?tag=runbook&limit=2&offset=1").await, vec![ids[20], ids[17]]);
}

#[tokio::test]
async fn memories_by_id_get_update_delete() {
    let (_dir, s) = server(&[]);
    let id = store(&s.url, "The staging cluster uses Calico for networking", &["infra"]).await;
    let m = |path: &str| format!("{}/memories/{path}", s.url);

    assert_error(&call("GET", &m("999"), None).await, 404, "memory 999 not found");
    assert_error(&call("GET", &m("abc"), None).await, 400, "invalid memory id \"abc\"");
    assert_error(&call("DELETE", &m("1.5"), None).await, 400, "invalid memory id");
    assert_error(&call("PUT", &m("x"), Some("{}")).await, 400, "invalid memory id");

    let before = call("GET", &m(&id.to_string()), None).await.body["content"].clone();
    assert_error(&call("PUT", &m(&id.to_string()), Some("{}")).await, 400, "nothing to update");
    assert_error(&call("PUT", &m(&id.to_string()), Some("{oops")).await, 400, "invalid JSON body: ");
    assert_error(
        &call("PUT", &m(&id.to_string()), Some(r#"{"content":""}"#)).await,
        400,
        "'content' must not be empty",
    );
    assert_error(&call("PUT", &m("999"), Some(r#"{"content":"x"}"#)).await, 404, "memory 999 not found");

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let r = call(
        "PUT",
        &m(&id.to_string()),
        Some(r#"{"content":"The staging cluster moved to Cilium networking"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let after = &r.body["content"];
    assert_eq!(after["tags"], json!(["infra"]), "tags kept when absent");
    assert_eq!(after["created_at"], before["created_at"]);
    assert!(after["updated_at"].as_str().unwrap() > before["updated_at"].as_str().unwrap());

    let search = |q: &str| {
        let url = format!("{}/search", s.url);
        let body = json!({"query": q}).to_string();
        async move { call("POST", &url, Some(&body)).await.body["content"].as_array().unwrap().len() }
    };
    assert_eq!(search("calico").await, 0, "old content left the index");
    assert_eq!(search("cilium").await, 1);

    let r = call("PUT", &m(&id.to_string()), Some(r#"{"tags":["net","infra"]}"#)).await;
    assert_eq!(r.body["content"]["tags"], json!(["net", "infra"]));
    let r = call("GET", &format!("{}/list?tag=net", s.url), None).await;
    assert_eq!(r.body["content"][0]["id"], json!(id));
    let r = call("PUT", &m(&id.to_string()), Some(r#"{"tags":[]}"#)).await;
    assert!(r.body["content"].get("tags").is_none());
    let r = call("GET", &format!("{}/list?tag=net", s.url), None).await;
    assert_eq!(r.body["content"], json!([]));

    let r = call("DELETE", &m(&id.to_string()), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["content"], json!({"id": id, "deleted": true}));
    let gone = format!("memory {id} not found");
    assert_error(&call("GET", &m(&id.to_string()), None).await, 404, &gone);
    assert_error(&call("DELETE", &m(&id.to_string()), None).await, 404, &gone);
    assert_eq!(search("cilium").await, 0);
}

#[tokio::test]
async fn size_limits_are_enforced_with_clear_errors() {
    let (_dir, s) = server(&[
        ("MEMORY_MAX_ENTRY_BYTES", "100"),
        ("MEMORY_MAX_ENTRIES", "3"),
        ("MEMORY_MAX_TOTAL_BYTES", "250"),
    ]);
    let url = format!("{}/store", s.url);
    let big = json!({"content": "x".repeat(101)}).to_string();
    assert_error(&call("POST", &url, Some(&big)).await, 413, "memory is 101 bytes");
    let r = call("POST", &url, Some(&big)).await;
    assert!(r.body["error"].as_str().unwrap().contains("MEMORY_MAX_ENTRY_BYTES"));
    // Tags count towards the entry size.
    let tagged = json!({"content": "x".repeat(95), "tags": ["abc", "def"]}).to_string();
    assert_error(&call("POST", &url, Some(&tagged)).await, 413, "memory is 102 bytes");

    let a = store(&s.url, &"a".repeat(100), &[]).await;
    store(&s.url, &"b".repeat(100), &[]).await;
    let third = json!({"content": "c".repeat(60)}).to_string();
    let r = call("POST", &url, Some(&third)).await;
    assert_error(&r, 413, "the memory store would hold 260 bytes");
    assert!(r.text.contains("MEMORY_MAX_TOTAL_BYTES"));
    store(&s.url, &"c".repeat(50), &[]).await;
    let r = call("POST", &url, Some(r#"{"content":"d"}"#)).await;
    assert_error(&r, 413, "the memory store is full: 3 of 3 memories");
    assert!(r.text.contains("MEMORY_MAX_ENTRIES"));

    // Growing a memory through PUT is limited too; shrinking is always allowed.
    let put = format!("{}/memories/{a}", s.url);
    let r = call("PUT", &put, Some(&json!({"content": "a".repeat(101)}).to_string())).await;
    assert_error(&r, 413, "memory is 101 bytes");
    let r = call("PUT", &put, Some(r#"{"content":"short"}"#)).await;
    assert_eq!(r.status, 200);

    // Deleting frees room.
    assert_eq!(call("DELETE", &put, None).await.status, 200);
    store(&s.url, "d", &[]).await;

    // A body over the request limit (6 × 100 + 64 KiB) is refused before parsing. (Kept small
    // enough to fit socket buffers, so the client has sent it all before the early answer.)
    let huge = json!({"content": "y".repeat(70_000)}).to_string();
    assert_error(&call("POST", &url, Some(&huge)).await, 413, "invalid request body");
}

#[tokio::test]
async fn client_library_covers_every_route() {
    let (_dir, s) = server(&[]);
    let client = s.client();
    client.health().await.unwrap();
    let stored = client
        .store("Redis eviction storm after maxmemory was lowered", &["incident".into(), "redis".into()])
        .await
        .unwrap();
    client.store("unrelated note", &[]).await.unwrap();
    let found = client.search("redis maxmemory", 3).await.unwrap();
    assert_eq!(found[0].id, stored.id);
    let listed =
        client.list(&ListQuery { tags: vec!["redis".into()], ..ListQuery::default() }).await.unwrap();
    assert_eq!(listed.len(), 1);
    let substr = client
        .list(&ListQuery {
            tags_substring: Some("inci".into()),
            limit: Some(1),
            offset: Some(0),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(substr[0].id, stored.id);
    let got = client.get(stored.id).await.unwrap();
    assert_eq!(got.created_at, stored.stored_at);
    let updated = client
        .update(
            stored.id,
            &UpdateRequest {
                content: Some("Redis eviction storm; fixed by raising maxmemory".into()),
                tags: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.tags, vec!["incident", "redis"]);
    let deleted = client.delete(stored.id).await.unwrap();
    assert!(deleted.deleted);
    let err = client.get(stored.id).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let err = client.store("", &[]).await.unwrap_err();
    assert_eq!(err.to_string(), "memory server returned 400: 'content' is required");
    let offline = sympozium_memory::MemoryClient::new("http://127.0.0.1:9").unwrap();
    assert!(matches!(offline.health().await.unwrap_err(), sympozium_memory::ClientError::Transport(_)));
}

#[tokio::test]
async fn concurrent_writers_never_see_lock_errors() {
    let (_dir, s) = server(&[]);
    let mut tasks = Vec::new();
    for w in 0..10 {
        let client = s.client();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..20 {
                let stored = client.store(&format!("writer {w} note {i}"), &[format!("w{w}")]).await.unwrap();
                ids.push(stored.id);
                // Interleave reads with the writes.
                client.search("writer note", 3).await.unwrap();
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 200);
    let listed = s.client().list(&ListQuery { limit: Some(1000), ..ListQuery::default() }).await.unwrap();
    assert_eq!(listed.len(), 200);
}

#[tokio::test]
async fn graceful_shutdown_checkpoints_and_data_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    let s = ServerProcess::start(&db, &[]);
    let stored = s.client().store("survives a restart", &[]).await.unwrap();
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
    let wal = dir.path().join("memory.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "WAL checkpointed and truncated on shutdown");
    let s = ServerProcess::start(&db, &[]);
    assert_eq!(s.client().get(stored.id).await.unwrap().content, "survives a restart");
}

#[tokio::test]
async fn concurrent_stores_over_a_limit_fail_alone() {
    // Stores committed together still get their own outcome: exactly the room left succeeds.
    let (_dir, s) = server(&[("MEMORY_MAX_ENTRIES", "5")]);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let url = s.url.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"content": format!("concurrent {i}")}).to_string();
            call("POST", &format!("{url}/store"), Some(&body)).await
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        let reply = t.await.unwrap();
        if reply.status == 413 {
            assert!(reply.text.contains("MEMORY_MAX_ENTRIES"), "{}", reply.text);
        }
        statuses.push(reply.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 413).count(), 15, "{statuses:?}");
    let listed = s.client().list(&ListQuery::default()).await.unwrap();
    assert_eq!(listed.len(), 5);
}
