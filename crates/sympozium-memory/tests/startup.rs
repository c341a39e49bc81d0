#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Start-up: refusing foreign, corrupt and newer database files without touching them; adopting
//! the original server's database; seeds imported exactly once.

mod common;

use common::{ServerProcess, start_expecting_failure};
use rusqlite::Connection;
use sympozium_memory::ListQuery;

fn seeds_query() -> ListQuery {
    ListQuery { tags: vec!["seed".into()], limit: Some(100), ..ListQuery::default() }
}

fn assert_refused(db: &std::path::Path, expected: &str) {
    let before = std::fs::read(db).unwrap();
    let (status, stderr) = start_expecting_failure(db, &[]);
    assert!(!status.success());
    assert!(stderr.contains(expected), "stderr should mention {expected:?}:\n{stderr}");
    assert!(stderr.contains("refusing to use"), "{stderr}");
    assert_eq!(std::fs::read(db).unwrap(), before, "the file was modified");
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    std::fs::write(&db, "# my notes\nthese are precious and not a database\n".repeat(200)).unwrap();
    assert_refused(&db, "not a SQLite database");
}

#[test]
fn another_applications_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users(name) VALUES ('ada');",
        )
        .unwrap();
    }
    assert_refused(&db, "without a `memories` table (tables: users)");

    let other = dir.path().join("other.db");
    {
        let conn = Connection::open(&other).unwrap();
        conn.execute_batch("PRAGMA application_id = 1234; CREATE TABLE memories(x);").unwrap();
    }
    assert_refused(&other, "another application (application_id 0x4d2)");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    ServerProcess::start(&db, &[]).terminate();
    Connection::open(&db).unwrap().execute_batch("PRAGMA user_version = 99;").unwrap();
    assert_refused(&db, "schema version 99 is newer");
}

#[tokio::test]
async fn a_corrupt_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    let server = ServerProcess::start(&db, &[]);
    let client = server.client();
    for i in 0..300 {
        client.store(&format!("note {i} {}", "lorem ipsum dolor ".repeat(30)), &[]).await.unwrap();
    }
    assert!(server.terminate().success());
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 20 * 4096);
    for b in &mut bytes[4096 * 3..4096 * 12] {
        *b = 0xA5;
    }
    std::fs::write(&db, &bytes).unwrap();
    assert_refused(&db, "corrupt");
}

#[tokio::test]
async fn the_original_servers_database_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    {
        // The original Go server's schema, with trigger names of its own.
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE memories (id INTEGER PRIMARY KEY AUTOINCREMENT, content TEXT NOT NULL,
                 tags TEXT DEFAULT '', created_at TEXT, updated_at TEXT);
             CREATE VIRTUAL TABLE memories_fts USING fts5(content, content='memories', content_rowid='id', tokenize='porter unicode61');
             CREATE TRIGGER go_ai AFTER INSERT ON memories BEGIN
                 INSERT INTO memories_fts(rowid, content) VALUES (new.id, new.content); END;
             CREATE TRIGGER go_ad AFTER DELETE ON memories BEGIN
                 INSERT INTO memories_fts(memories_fts, rowid, content) VALUES ('delete', old.id, old.content); END;
             CREATE TRIGGER go_au AFTER UPDATE ON memories BEGIN
                 INSERT INTO memories_fts(memories_fts, rowid, content) VALUES ('delete', old.id, old.content);
                 INSERT INTO memories_fts(rowid, content) VALUES (new.id, new.content); END;
             INSERT INTO memories(content, tags, created_at, updated_at) VALUES
                 ('Grafana dashboards live in the observability repo', 'ops,grafana', '2025-01-01T10:00:00Z', '2025-01-01T10:00:00Z'),
                 ('The VPN certificate expires every 90 days', 'security', '2025-01-02T10:00:00Z', '2025-01-02T10:00:00Z');",
        )
        .unwrap();
    }
    let server = ServerProcess::start(&db, &[]);
    let client = server.client();
    let found = client.search("when does the vpn certificate expire", 3).await.unwrap();
    assert_eq!(found[0].content, "The VPN certificate expires every 90 days");
    let grafana =
        client.list(&ListQuery { tags: vec!["grafana".into()], ..ListQuery::default() }).await.unwrap();
    assert_eq!(grafana.len(), 1, "exact tags backfilled from the legacy column");
    let new = client.store("Grafana alerts page the on-call", &["grafana".into()]).await.unwrap();
    assert!(new.id > 2);
    client.delete(1).await.unwrap();
    assert!(server.terminate().success());

    let conn = Connection::open(&db).unwrap();
    let triggers: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name='memories' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!triggers.iter().any(|t| t.starts_with("go_")), "{triggers:?}");
    conn.execute("INSERT INTO memories_fts(memories_fts, rank) VALUES ('integrity-check', 1)", []).unwrap();
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, sympozium_memory::schema::SCHEMA_VERSION);
}

#[tokio::test]
async fn seeds_are_imported_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    let seeds = dir.path().join("MEMORY.md");
    std::fs::write(
        &seeds,
        "# Memory\n\n- Production runs in eu-west-1\n- Deploys freeze on Fridays\n- Page the DBA for schema changes\n",
    )
    .unwrap();
    let env = [("MEMORY_SEEDS_PATH", seeds.to_str().unwrap())];

    let server = ServerProcess::start(&db, &env);
    let first = server.client().list(&seeds_query()).await.unwrap();
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|e| e.tags == vec!["seed"]));
    server.kill9();

    let server = ServerProcess::start(&db, &env);
    assert_eq!(server.client().list(&seeds_query()).await.unwrap(), first, "no duplicates");
    // A deleted seed stays deleted.
    let deploys = first.iter().find(|e| e.content.contains("Fridays")).unwrap();
    server.client().delete(deploys.id).await.unwrap();
    assert!(server.terminate().success());

    std::fs::write(
        &seeds,
        "# Memory\n\n- Production runs in eu-west-1\n- Deploys freeze on Fridays\n- Page the DBA for schema changes\n- Staging resets nightly\n",
    )
    .unwrap();
    let server = ServerProcess::start(&db, &env);
    let now = server.client().list(&seeds_query()).await.unwrap();
    let contents: Vec<&str> = now.iter().map(|e| e.content.as_str()).collect();
    assert_eq!(
        contents,
        vec!["Staging resets nightly", "Page the DBA for schema changes", "Production runs in eu-west-1"]
    );
}

/// A seeds path that cannot be read (missing, a directory, not UTF-8) is reported by name and
/// skipped: the server starts and serves; the seeds arrive on a later start once the file is good.
#[tokio::test]
async fn an_unusable_seeds_file_is_logged_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let a_directory = dir.path().join("seeds-dir");
    std::fs::create_dir(&a_directory).unwrap();
    let not_utf8 = dir.path().join("binary.md");
    std::fs::write(&not_utf8, [0xff, 0xfe, 0x00, 0x80, 0x2d, 0x20, 0xc3]).unwrap();
    let missing = dir.path().join("missing").join("MEMORY.md");

    for (i, path) in [&missing, &a_directory, &not_utf8].into_iter().enumerate() {
        let db = dir.path().join(format!("memory-{i}.db"));
        let env = [("MEMORY_SEEDS_PATH", path.to_str().unwrap())];
        let server = ServerProcess::start(&db, &env);
        let client = server.client();
        assert!(client.list(&seeds_query()).await.unwrap().is_empty());
        let stored = client.store("The server works without its seeds", &[]).await.unwrap();
        assert_eq!(client.get(stored.id).await.unwrap().content, "The server works without its seeds");
        let stderr_path = server.stderr_path.clone();
        assert!(server.terminate().success());
        let stderr = std::fs::read_to_string(&stderr_path).unwrap();
        assert!(stderr.contains("seeds file skipped"), "{stderr}");
        assert!(stderr.contains(path.to_str().unwrap()), "the log names the file:\n{stderr}");
    }

    // Once the file exists, the next start imports it.
    std::fs::create_dir_all(missing.parent().unwrap()).unwrap();
    std::fs::write(&missing, "- Backups run at 02:00 UTC\n").unwrap();
    let server = ServerProcess::start(
        &dir.path().join("memory-0.db"),
        &[("MEMORY_SEEDS_PATH", missing.to_str().unwrap())],
    );
    let seeds = server.client().list(&seeds_query()).await.unwrap();
    assert_eq!(
        seeds.iter().map(|e| e.content.as_str()).collect::<Vec<_>>(),
        vec!["Backups run at 02:00 UTC"]
    );
}
