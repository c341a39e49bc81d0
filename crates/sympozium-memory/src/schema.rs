//! Opening the database file safely, connection settings, and versioned schema migrations.
//!
//! Durability: the database runs in WAL mode with `synchronous=FULL`, so every commit fsyncs the
//! WAL before `/store` is acknowledged. `NORMAL` would survive `kill -9` of the server but may lose
//! the last commits on power loss, which an acknowledged memory must survive. Checkpoints run on
//! their own connection and thread ([`open_checkpointer`]), not inside the writer's commits
//! (SQLite's `wal_autocheckpoint` would make the stores of that commit wait for it), and on
//! graceful shutdown.
//!
//! Schema versions live in `PRAGMA user_version`; the file is marked as ours with
//! `PRAGMA application_id`. A database written by the original Go server (user_version 0, a
//! `memories` table with the same columns) is adopted and migrated in place.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{MemoryError, Result};

/// `PRAGMA application_id` of Sympozium memory databases ("SYMM").
pub const APPLICATION_ID: i32 = 0x5359_4d4d;
/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = 2;
/// How long a connection waits on a lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// Version 1: the original server's schema (table, FTS5 external-content table, triggers, indexes).
const V1: &str = "
CREATE TABLE IF NOT EXISTS memories (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    content TEXT NOT NULL,
    tags TEXT DEFAULT '',
    created_at TEXT,
    updated_at TEXT
);
CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5(
    content,
    content='memories',
    content_rowid='id',
    tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER IF NOT EXISTS memories_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER IF NOT EXISTS memories_au AFTER UPDATE ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO memories_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE INDEX IF NOT EXISTS idx_memories_updated_at ON memories(updated_at DESC);
CREATE INDEX IF NOT EXISTS idx_memories_tags ON memories(tags);
";

/// Version 2: exact tags, O(1) size accounting for limits, and the seed import ledger.
const V2: &str = "
CREATE TABLE memory_tags (
    tag TEXT NOT NULL,
    memory_id INTEGER NOT NULL,
    PRIMARY KEY (tag, memory_id)
) WITHOUT ROWID;
CREATE INDEX idx_memory_tags_memory ON memory_tags(memory_id);
INSERT OR IGNORE INTO memory_tags(tag, memory_id)
    WITH RECURSIVE split(id, tag, rest) AS (
        SELECT id, '', COALESCE(tags, '') || ',' FROM memories
        UNION ALL
        SELECT id, trim(substr(rest, 1, instr(rest, ',') - 1)), substr(rest, instr(rest, ',') + 1)
        FROM split WHERE rest <> ''
    )
    SELECT tag, id FROM split WHERE tag <> '';

CREATE TABLE memory_stats (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    entries INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT INTO memory_stats(singleton, entries, bytes)
    SELECT 1, COUNT(*),
           COALESCE(SUM(length(CAST(content AS BLOB)) + length(CAST(COALESCE(tags, '') AS BLOB))), 0)
    FROM memories;
CREATE TRIGGER memories_stats_ai AFTER INSERT ON memories BEGIN
    UPDATE memory_stats SET entries = entries + 1,
        bytes = bytes + length(CAST(new.content AS BLOB)) + length(CAST(COALESCE(new.tags, '') AS BLOB));
END;
CREATE TRIGGER memories_stats_ad AFTER DELETE ON memories BEGIN
    UPDATE memory_stats SET entries = entries - 1,
        bytes = bytes - length(CAST(old.content AS BLOB)) - length(CAST(COALESCE(old.tags, '') AS BLOB));
END;
CREATE TRIGGER memories_stats_au AFTER UPDATE ON memories BEGIN
    UPDATE memory_stats SET
        bytes = bytes - length(CAST(old.content AS BLOB)) - length(CAST(COALESCE(old.tags, '') AS BLOB))
                      + length(CAST(new.content AS BLOB)) + length(CAST(COALESCE(new.tags, '') AS BLOB));
END;

CREATE TABLE seeds_imported (
    content TEXT PRIMARY KEY,
    memory_id INTEGER,
    imported_at TEXT NOT NULL
);
";

/// Columns a `memories` table must have to be adopted.
const MEMORY_COLUMNS: [&str; 5] = ["id", "content", "tags", "created_at", "updated_at"];

/// Opens (creating if absent) the database at `path` as the single writer connection, after
/// checking that the file is ours (or empty, or the original server's), not corrupt, and not
/// from a newer version; then applies pending migrations. Nothing is written to a file that
/// fails these checks.
pub fn open_writer(path: &Path, startup_check: bool) -> Result<Connection> {
    let unusable = |reason: String| MemoryError::UnusableDatabase { path: path.to_path_buf(), reason };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|source| MemoryError::Io { path: parent.to_path_buf(), source })?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| unusable(e.to_string()))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let state = inspect(&conn).map_err(|e| unusable(e.to_string()))?;
    if startup_check && state != FileState::Empty {
        let verdict: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| {
                unusable(format!(
                    "the database is corrupt or unreadable (quick_check failed: {e}); restore it from a backup or move it away"
                ))
            })?;
        if verdict != "ok" {
            return Err(unusable(format!(
                "the database is corrupt (quick_check: {verdict}); restore it from a backup or move it away"
            )));
        }
    }
    configure(&conn, true)?;
    migrate(&conn, state)?;
    Ok(conn)
}

/// Opens an extra read-only connection to an already initialised database.
pub fn open_reader(path: &Path) -> Result<Connection> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    configure(&conn, false)?;
    Ok(conn)
}

/// Opens the connection that checkpoints the WAL in the background (read-write, nothing else).
pub fn open_checkpointer(path: &Path) -> Result<Connection> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

fn configure(conn: &Connection, writer: bool) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // 8 MiB page cache per connection (SQLite's default is 2 MiB): FTS queries on large
    // databases touch many index pages.
    conn.pragma_update(None, "cache_size", -8192)?;
    if writer {
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(MemoryError::Invalid(format!(
                "could not switch the database to WAL mode (journal_mode is {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    } else {
        conn.pragma_update(None, "query_only", "ON")?;
    }
    Ok(())
}

/// What the file at the database path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileState {
    /// No schema at all: a new or zero-length file.
    Empty,
    /// A database of the original server (user_version 0, a compatible `memories` table).
    Legacy,
    /// One of ours at this schema version.
    Ours(i32),
}

/// Why the file at the database path cannot be used.
#[derive(Debug, thiserror::Error)]
enum Unusable {
    #[error("the file is not a SQLite database ({0}); move it away or point MEMORY_DB_PATH elsewhere")]
    NotADatabase(#[source] rusqlite::Error),
    #[error("cannot read the database: {0}")]
    Read(#[source] rusqlite::Error),
    #[error(
        "it is a SQLite database of another application (application_id {0:#x}), not a Sympozium memory database"
    )]
    Foreign(i32),
    #[error(
        "its schema version {0} is newer than this server supports ({SCHEMA_VERSION}); upgrade the server"
    )]
    TooNew(i32),
    #[error(
        "it is a SQLite database without a `memories` table (tables: {0}), not a Sympozium memory database"
    )]
    NoMemories(String),
    #[error(
        "its `memories` table does not match the Sympozium schema (missing columns: [{missing}], user_version {version})"
    )]
    Mismatch { missing: String, version: i32 },
}

fn inspect(conn: &Connection) -> Result<FileState, Unusable> {
    let describe = |e: rusqlite::Error| {
        if matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::NotADatabase)) {
            Unusable::NotADatabase(e)
        } else {
            Unusable::Read(e)
        }
    };
    let app_id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(describe)?;
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(describe)?;
    let tables: Vec<String> = (|| {
        let mut stmt = conn.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?;
        let names = stmt.query_map([], |r| r.get(0))?;
        names.collect::<rusqlite::Result<Vec<String>>>()
    })()
    .map_err(describe)?;

    if app_id != 0 && app_id != APPLICATION_ID {
        return Err(Unusable::Foreign(app_id));
    }
    if app_id == APPLICATION_ID {
        if version > SCHEMA_VERSION {
            return Err(Unusable::TooNew(version));
        }
        return Ok(FileState::Ours(version));
    }
    if tables.is_empty() && version == 0 {
        return Ok(FileState::Empty);
    }
    if !tables.iter().any(|t| t == "memories") {
        return Err(Unusable::NoMemories(tables.join(", ")));
    }
    let columns: Vec<String> = (|| {
        let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('memories')")?;
        let names = stmt.query_map([], |r| r.get(0))?;
        names.collect::<rusqlite::Result<Vec<String>>>()
    })()
    .map_err(describe)?;
    let missing: Vec<&str> =
        MEMORY_COLUMNS.iter().copied().filter(|c| !columns.iter().any(|have| have == c)).collect();
    if !missing.is_empty() || version != 0 {
        return Err(Unusable::Mismatch { missing: missing.join(", "), version });
    }
    Ok(FileState::Legacy)
}

fn migrate(conn: &Connection, state: FileState) -> Result<()> {
    let mut version = match state {
        FileState::Empty => 0,
        FileState::Legacy => {
            adopt_legacy(conn)?;
            1
        }
        FileState::Ours(v) => v,
    };
    while version < SCHEMA_VERSION {
        let next = version + 1;
        let sql = match next {
            1 => V1,
            _ => V2,
        };
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", next)?;
        tx.commit()?;
        tracing::info!(from = version, to = next, "migrated memory database schema");
        version = next;
    }
    Ok(())
}

/// Brings a database written by the original server to schema version 1: replaces whatever
/// triggers it had on `memories` with ours and rebuilds the FTS index from the table, so the
/// index and the table agree whatever the old triggers did.
fn adopt_legacy(conn: &Connection) -> Result<()> {
    let tx = conn.unchecked_transaction()?;
    let triggers: Vec<String> = {
        let mut stmt =
            tx.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'memories'")?;
        let names = stmt.query_map([], |r| r.get(0))?;
        names.collect::<rusqlite::Result<Vec<String>>>()?
    };
    for name in triggers {
        tx.execute_batch(&format!("DROP TRIGGER \"{}\";", name.replace('"', "\"\"")))?;
    }
    let has_fts: Option<String> = tx
        .query_row("SELECT name FROM sqlite_master WHERE name = 'memories_fts'", [], |r| r.get(0))
        .optional()?;
    if has_fts.is_some() {
        tx.execute_batch("DROP TABLE memories_fts;")?;
    }
    tx.execute_batch(V1)?;
    tx.execute_batch("INSERT INTO memories_fts(memories_fts) VALUES ('rebuild');")?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.pragma_update(None, "user_version", 1)?;
    tx.commit()?;
    tracing::info!("adopted a database of the original memory server");
    Ok(())
}
