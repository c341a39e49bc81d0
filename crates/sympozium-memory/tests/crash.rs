#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Durability: concurrent storers, `kill -9` of the server mid-stream, restart on the same file:
//! every acknowledged memory is there with its content, and the FTS index agrees with the table.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ServerProcess;
use rusqlite::Connection;

#[tokio::test]
async fn acknowledged_stores_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    let mut total_acked = 0;
    // Two rounds: the second kill lands on a database that already went through crash recovery.
    for round in 0..2 {
        let server = ServerProcess::start(&db, &[]);
        let acked: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
        let mut writers = Vec::new();
        for w in 0..6 {
            let client = server.client();
            let acked = Arc::clone(&acked);
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let content = format!("crash round {round} writer {w} item {i} token r{round}w{w}i{i}");
                    match client.store(&content, &["crash".into()]).await {
                        Ok(stored) => acked.lock().unwrap().push((stored.id, content)),
                        Err(_) => break, // the server is gone
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
        server.kill9();
        for w in writers {
            tokio::time::timeout(Duration::from_secs(10), w).await.unwrap().unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        assert!(acked.len() > 20, "round {round}: only {} stores acknowledged", acked.len());
        total_acked += acked.len();

        let server = ServerProcess::start(&db, &[]);
        let client = server.client();
        for (id, content) in &acked {
            let entry = client.get(*id).await.unwrap_or_else(|e| panic!("acknowledged id {id} lost: {e}"));
            assert_eq!(&entry.content, content);
        }
        // A few acknowledged memories are findable through the index by their unique token.
        for (id, content) in acked.iter().step_by(acked.len() / 5 + 1) {
            let token = content.rsplit(' ').next().unwrap();
            let found = client.search(token, 3).await.unwrap();
            assert_eq!(found.first().map(|e| e.id), Some(*id), "{token}");
        }
        server.kill9();
    }

    // Open the file directly (recovering the WAL) and check index and table agree.
    let conn = Connection::open(&db).unwrap();
    conn.execute("INSERT INTO memories_fts(memories_fts, rank) VALUES ('integrity-check', 1)", [])
        .expect("FTS index consistent with the table");
    let rows: i64 = conn.query_row("SELECT count(*) FROM memories", [], |r| r.get(0)).unwrap();
    let indexed: i64 = conn
        .query_row("SELECT count(*) FROM memories_fts WHERE memories_fts MATCH 'crash'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(indexed, rows);
    assert!(rows >= i64::try_from(total_acked).unwrap());
    let (entries, bytes): (i64, i64) = conn
        .query_row("SELECT entries, bytes FROM memory_stats", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    let real_bytes: i64 = conn
        .query_row(
            "SELECT sum(length(CAST(content AS BLOB)) + length(CAST(tags AS BLOB))) FROM memories",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!((entries, bytes), (rows, real_bytes), "size accounting matches the table");
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
}
