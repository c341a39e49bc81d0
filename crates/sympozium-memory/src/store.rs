//! The memory store: one writer connection behind a mutex (so writers are serialized and never
//! see "database is locked"), a small pool of read-only connections, and every call run on
//! tokio's blocking pool.
//!
//! Single stores go through a dedicated writer thread that commits whatever stores are queued
//! together in one transaction (group commit). Limits are checked per store against running
//! totals, so a store over a limit fails alone and its neighbours are stored; should the group's
//! transaction fail all the same, it is retried store by store, one savepoint each, so every
//! caller still gets exactly its own outcome. Each caller is answered only after the commit that
//! holds its memory, so acknowledged stores are durable and many concurrent writers share an fsync.
//! A third thread checkpoints the WAL every [`CHECKPOINT_EVERY`] on its own connection
//! (`PASSIVE`: it never blocks the writer), so no commit waits for a checkpoint.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use crate::config::Limits;
use crate::error::{MemoryError, Result};
use crate::schema;
use crate::search;
use crate::types::{Deleted, Entry, ListQuery, SearchRequest, StoreRequest, Stored, UpdateRequest};

/// `top_k` used when a search asks for ≤ 0 results.
pub const DEFAULT_TOP_K: i64 = 5;
/// The most results one search returns.
pub const MAX_TOP_K: i64 = 100;
/// Page size of `/list` when none (or ≤ 0, or garbage) is given.
pub const DEFAULT_LIST_LIMIT: i64 = 20;
/// The largest page `/list` returns.
pub const MAX_LIST_LIMIT: i64 = 1000;
/// The tag seed memories carry.
pub const SEED_TAG: &str = "seed";

pub(crate) const COLUMNS: &str = "m.id, m.content, m.tags, m.created_at, m.updated_at";
const NOW: &str = "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// Counts kept for the size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Number of memories.
    pub entries: u64,
    /// Bytes of content plus tags of all memories.
    pub bytes: u64,
}

/// Handle on an open memory database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    writes: mpsc::UnboundedSender<WriteJob>,
}

/// The most stores committed in one group.
const MAX_GROUP: usize = 256;
/// The most rows of one multi-row INSERT. Groups up to this size take one statement; larger
/// ones (only with more than this many concurrent clients) take a few.
const MAX_INSERT_ROWS: usize = 64;
/// Prepared statements the writer connection keeps: one INSERT per group size up to
/// [`MAX_INSERT_ROWS`] (each well under 100 KiB) and the writer's other statements.
const WRITER_STATEMENT_CACHE: usize = MAX_INSERT_ROWS + 32;
/// How often the WAL is checkpointed into the database file.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// One queued store and where to send its outcome.
struct WriteJob {
    content: String,
    tags: Vec<String>,
    reply: oneshot::Sender<Result<Stored>>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    max_readers: usize,
    limits: Limits,
}

impl Store {
    /// Opens (or creates) the database at `path`; blocking. See [`schema::open_writer`] for the
    /// checks done before anything is written.
    pub fn open(path: &Path, limits: Limits, startup_check: bool, readers: usize) -> Result<Self> {
        let writer = schema::open_writer(path, startup_check)?;
        // The writer caches one multi-row INSERT per chunk size (see [`insert_rows`]) besides its
        // other statements; rusqlite's default of 16 would evict them between groups.
        writer.set_prepared_statement_cache_capacity(WRITER_STATEMENT_CACHE);
        let inner = Arc::new(Inner {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            max_readers: readers,
            limits,
        });
        let (writes, queue) = mpsc::unbounded_channel();
        let for_thread = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("memory-writer".into())
            .spawn(move || write_loop(&for_thread, queue))
            .map_err(|e| MemoryError::Task(format!("cannot start the writer thread: {e}")))?;
        let checkpointer = schema::open_checkpointer(path)?;
        let alive = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("memory-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpointer, &alive))
            .map_err(|e| MemoryError::Task(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self { inner, writes })
    }

    /// The limits this store enforces.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    async fn blocking<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Inner) -> Result<R> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(|e| MemoryError::Task(e.to_string()))?
    }

    /// Stores one memory; returns once it is committed (and fsynced).
    pub async fn store(&self, request: StoreRequest) -> Result<Stored> {
        let (content, tags) = self.inner.prepare_new(request)?;
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(WriteJob { content, tags, reply })
            .map_err(|_| MemoryError::Task("the writer thread has stopped".into()))?;
        answer.await.map_err(|_| MemoryError::Task("the writer thread stopped before committing".into()))?
    }

    /// Stores many memories in one transaction (all or none).
    pub async fn store_batch(&self, requests: Vec<StoreRequest>) -> Result<Vec<Stored>> {
        self.blocking(move |inner| inner.insert_many(requests)).await
    }

    /// One memory by id.
    pub async fn get(&self, id: i64) -> Result<Entry> {
        self.blocking(move |inner| inner.read(|c| get_entry(c, id))).await
    }

    /// Replaces the content and/or tags of a memory and returns it.
    pub async fn update(&self, id: i64, request: UpdateRequest) -> Result<Entry> {
        self.blocking(move |inner| inner.update(id, request)).await
    }

    /// Deletes a memory.
    pub async fn delete(&self, id: i64) -> Result<Deleted> {
        self.blocking(move |inner| inner.delete(id)).await
    }

    /// A page of memories, newest first, filtered by tags.
    pub async fn list(&self, list: ListQuery) -> Result<Vec<Entry>> {
        self.blocking(move |inner| inner.read(|c| list_entries(c, &list))).await
    }

    /// Full-text search, best match first (see [`crate::query`]).
    pub async fn search(&self, request: SearchRequest) -> Result<Vec<Entry>> {
        self.blocking(move |inner| inner.read(|c| search::search(c, &request))).await
    }

    /// Current counts.
    pub async fn stats(&self) -> Result<Stats> {
        self.blocking(|inner| inner.read(stats)).await
    }

    /// Imports seed memories (tagged `seed`) that were never imported before, in one transaction;
    /// returns how many were new. A seed is remembered as imported even if it is later deleted.
    pub async fn import_seeds(&self, seeds: Vec<String>) -> Result<usize> {
        self.blocking(move |inner| inner.import_seeds(seeds)).await
    }

    /// Checkpoints the WAL into the main file and truncates it (used on graceful shutdown).
    pub async fn checkpoint(&self) -> Result<()> {
        self.blocking(|inner| {
            let conn = inner.writer()?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }
}

impl Inner {
    fn writer(&self) -> Result<MutexGuard<'_, Connection>> {
        self.writer.lock().map_err(|_| MemoryError::Task("writer connection lock poisoned".into()))
    }

    fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        if self.max_readers == 0 {
            let conn = self.writer()?;
            return f(&conn);
        }
        let pooled =
            self.readers.lock().map_err(|_| MemoryError::Task("reader pool lock poisoned".into()))?.pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => schema::open_reader(&self.path)?,
        };
        let result = f(&conn);
        if let Ok(mut idle) = self.readers.lock()
            && idle.len() < self.max_readers
        {
            idle.push(conn);
        }
        result
    }

    fn insert_many(&self, requests: Vec<StoreRequest>) -> Result<Vec<Stored>> {
        let prepared = requests.into_iter().map(|r| self.prepare_new(r)).collect::<Result<Vec<_>>>()?;
        let rows: Vec<(&str, &[String])> = prepared.iter().map(|(c, t)| (c.as_str(), t.as_slice())).collect();
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // All or none: the first store over a limit fails the batch (the transaction is
        // rolled back when `tx` is dropped).
        let stored = insert_rows(&tx, self.limits, &rows)?.into_iter().collect::<Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(stored)
    }

    /// Commits queued stores in one transaction; each gets its own outcome (a store over a
    /// limit fails alone). Should the transaction itself fail, the group is rolled back and
    /// retried store by store ([`Inner::insert_one_by_one`]), so a store that makes SQLite fail
    /// cannot fail the others.
    fn insert_group(&self, jobs: &[WriteJob]) -> Result<Vec<Result<Stored>>> {
        match self.insert_together(jobs) {
            Ok(outcomes) => Ok(outcomes),
            Err(error) => {
                tracing::warn!(%error, stores = jobs.len(), "group commit failed; retrying its stores one by one");
                self.insert_one_by_one(jobs)
            }
        }
    }

    /// The fast path of [`Inner::insert_group`]: no savepoints, one multi-row INSERT per chunk.
    fn insert_together(&self, jobs: &[WriteJob]) -> Result<Vec<Result<Stored>>> {
        let rows: Vec<(&str, &[String])> =
            jobs.iter().map(|j| (j.content.as_str(), j.tags.as_slice())).collect();
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let outcomes = insert_rows(&tx, self.limits, &rows)?;
        tx.commit()?;
        Ok(outcomes)
    }

    /// The slow path of [`Inner::insert_group`]: one savepoint per store, so a store whose
    /// insert fails is rolled back alone and the others are committed.
    fn insert_one_by_one(&self, jobs: &[WriteJob]) -> Result<Vec<Result<Stored>>> {
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            tx.prepare_cached("SAVEPOINT store")?.execute([])?;
            match self.insert_row(&tx, &job.content, &job.tags) {
                Ok(stored) => {
                    tx.prepare_cached("RELEASE store")?.execute([])?;
                    outcomes.push(Ok(stored));
                }
                // This store is rolled back; the others go on.
                Err(e) => {
                    tx.prepare_cached("ROLLBACK TO store")?.execute([])?;
                    tx.prepare_cached("RELEASE store")?.execute([])?;
                    outcomes.push(Err(e));
                }
            }
        }
        tx.commit()?;
        Ok(outcomes)
    }

    fn prepare_new(&self, request: StoreRequest) -> Result<(String, Vec<String>)> {
        if request.content.trim().is_empty() {
            return Err(MemoryError::Invalid("'content' is required".into()));
        }
        let tags = normalize_tags(request.tags)?;
        self.check_entry_size(&request.content, &tags)?;
        Ok((request.content, tags))
    }

    fn check_entry_size(&self, content: &str, tags: &[String]) -> Result<u64> {
        let bytes = entry_bytes(content, tags);
        let max = self.limits.max_entry_bytes;
        if max > 0 && bytes > max {
            return Err(MemoryError::LimitExceeded(format!(
                "memory is {bytes} bytes (content plus tags); the limit is {max} bytes per memory (MEMORY_MAX_ENTRY_BYTES)"
            )));
        }
        Ok(bytes)
    }

    fn check_capacity(&self, conn: &Connection, new_entries: u64, new_bytes: i64) -> Result<()> {
        check_capacity(self.limits, stats(conn)?, new_entries, new_bytes)
    }

    fn insert_row(&self, conn: &Connection, content: &str, tags: &[String]) -> Result<Stored> {
        let bytes = entry_bytes(content, tags);
        self.check_capacity(conn, 1, i64::try_from(bytes).unwrap_or(i64::MAX))?;
        let now: String = conn.prepare_cached(NOW)?.query_row([], |r| r.get(0))?;
        let id: i64 = conn
            .prepare_cached(
                "INSERT INTO memories(content, tags, created_at, updated_at) VALUES (?1, ?2, ?3, ?3) RETURNING id",
            )?
            .query_row(params![content, tags.join(","), now], |r| r.get(0))?;
        write_tags(conn, id, tags)?;
        Ok(Stored { id, stored_at: now })
    }

    fn update(&self, id: i64, request: UpdateRequest) -> Result<Entry> {
        if request.content.is_none() && request.tags.is_none() {
            return Err(MemoryError::Invalid("nothing to update: give 'content' and/or 'tags'".into()));
        }
        if let Some(content) = &request.content
            && content.trim().is_empty()
        {
            return Err(MemoryError::Invalid("'content' must not be empty".into()));
        }
        let new_tags = request.tags.map(normalize_tags).transpose()?;
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old = get_entry(&tx, id)?;
        let content = request.content.unwrap_or_else(|| old.content.clone());
        let tags = new_tags.unwrap_or_else(|| old.tags.clone());
        let new_bytes = self.check_entry_size(&content, &tags)?;
        let old_bytes = entry_bytes(&old.content, &old.tags);
        let delta =
            i64::try_from(new_bytes).unwrap_or(i64::MAX) - i64::try_from(old_bytes).unwrap_or(i64::MAX);
        self.check_capacity(&tx, 0, delta)?;
        let now: String = tx.prepare_cached(NOW)?.query_row([], |r| r.get(0))?;
        tx.prepare_cached("UPDATE memories SET content = ?1, tags = ?2, updated_at = ?3 WHERE id = ?4")?
            .execute(params![content, tags.join(","), now, id])?;
        tx.prepare_cached("DELETE FROM memory_tags WHERE memory_id = ?1")?.execute([id])?;
        write_tags(&tx, id, &tags)?;
        let entry = get_entry(&tx, id)?;
        tx.commit()?;
        Ok(entry)
    }

    fn delete(&self, id: i64) -> Result<Deleted> {
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let removed = tx.prepare_cached("DELETE FROM memories WHERE id = ?1")?.execute([id])?;
        if removed == 0 {
            return Err(MemoryError::NotFound(id));
        }
        tx.prepare_cached("DELETE FROM memory_tags WHERE memory_id = ?1")?.execute([id])?;
        tx.commit()?;
        Ok(Deleted { id, deleted: true })
    }

    fn import_seeds(&self, seeds: Vec<String>) -> Result<usize> {
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut imported = 0;
        for seed in seeds {
            let seen: Option<i64> = tx
                .query_row("SELECT 1 FROM seeds_imported WHERE content = ?1", [&seed], |r| r.get(0))
                .optional()?;
            if seen.is_some() {
                continue;
            }
            let tags = vec![SEED_TAG.to_string()];
            let stored =
                match self.check_entry_size(&seed, &tags).and_then(|_| self.insert_row(&tx, &seed, &tags)) {
                    Ok(stored) => stored,
                    Err(MemoryError::LimitExceeded(reason)) => {
                        tracing::warn!(%reason, "seed not imported; it will be retried on the next start");
                        continue;
                    }
                    Err(e) => return Err(e),
                };
            tx.execute(
                "INSERT INTO seeds_imported(content, memory_id, imported_at) VALUES (?1, ?2, ?3)",
                params![seed, stored.id, stored.stored_at],
            )?;
            imported += 1;
        }
        tx.commit()?;
        Ok(imported)
    }
}

/// The writer thread: takes every queued store (up to [`MAX_GROUP`]), commits them together,
/// then answers each caller. Ends when the last [`Store`] handle is dropped.
fn write_loop(inner: &Inner, mut queue: mpsc::UnboundedReceiver<WriteJob>) {
    while let Some(first) = queue.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        match inner.insert_group(&jobs) {
            Ok(outcomes) => {
                tracing::trace!(stores = jobs.len(), "group committed");
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, stores = jobs.len(), "group commit failed");
                let message = e.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(MemoryError::Task(format!("commit failed: {message}"))));
                }
            }
        }
    }
}

/// Checkpoints the WAL every [`CHECKPOINT_EVERY`] until the store is gone. `PASSIVE` copies
/// what no reader still needs and never waits for the writer or readers.
fn checkpoint_loop(conn: &Connection, alive: &Weak<Inner>) {
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        if alive.strong_count() == 0 {
            return;
        }
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "background checkpoint failed; retried");
        }
    }
}

/// Whether `new_entries` more memories of `new_bytes` more bytes fit beside `now`
/// (the counts before them).
fn check_capacity(limits: Limits, now: Stats, new_entries: u64, new_bytes: i64) -> Result<()> {
    let max_entries = limits.max_entries;
    if max_entries > 0 && now.entries + new_entries > max_entries {
        return Err(MemoryError::LimitExceeded(format!(
            "the memory store is full: {} of {max_entries} memories (MEMORY_MAX_ENTRIES); delete some first",
            now.entries
        )));
    }
    let max_bytes = limits.max_total_bytes;
    let after = now.bytes.saturating_add_signed(new_bytes);
    if max_bytes > 0 && new_bytes > 0 && after > max_bytes {
        return Err(MemoryError::LimitExceeded(format!(
            "the memory store would hold {after} bytes, over its limit of {max_bytes} bytes (MEMORY_MAX_TOTAL_BYTES); {} bytes are in use",
            now.bytes
        )));
    }
    Ok(())
}

/// Inserts `rows` (content, normalized tags) in the open transaction `conn`, all with the same
/// timestamp, and returns each row's outcome in order: a row that would exceed
/// `MEMORY_MAX_ENTRIES` or `MEMORY_MAX_TOTAL_BYTES` fails alone, exactly as if the rows were
/// stored one after another (the counts are read once and carried along), and is not inserted.
/// An `Err` means the transaction failed and must be rolled back.
///
/// The rows go in one multi-row INSERT (of up to [`MAX_INSERT_ROWS`]) rather than one INSERT
/// each: every INSERT into `memories` after the first in a transaction makes FTS5 flush its
/// pending index entries to a new segment (its savepoint callback, run for the statement journal
/// such an INSERT opens because its triggers write), and writing, then merging, a segment per
/// memory was most of the writer's time. This way a group's entries are flushed once, at commit.
fn insert_rows(conn: &Connection, limits: Limits, rows: &[(&str, &[String])]) -> Result<Vec<Result<Stored>>> {
    let now: String = conn.prepare_cached(NOW)?.query_row([], |r| r.get(0))?;
    let mut totals = stats(conn)?;
    let mut outcomes: Vec<Result<Stored>> = Vec::with_capacity(rows.len());
    let mut accepted = Vec::with_capacity(rows.len());
    for (i, (content, tags)) in rows.iter().enumerate() {
        let bytes = entry_bytes(content, tags);
        match check_capacity(limits, totals, 1, i64::try_from(bytes).unwrap_or(i64::MAX)) {
            Ok(()) => {
                // What the `memory_stats` triggers will add for this row.
                totals.entries += 1;
                totals.bytes = totals.bytes.saturating_add(bytes);
                accepted.push(i);
                // Replaced by the id once inserted.
                outcomes.push(Ok(Stored { id: 0, stored_at: String::new() }));
            }
            Err(e) => outcomes.push(Err(e)),
        }
    }
    let mut rest = accepted.as_slice();
    while !rest.is_empty() {
        let n = rest.len().min(MAX_INSERT_ROWS);
        let (chunk, after) = rest.split_at(n);
        rest = after;
        let sql = insert_sql(n).ok_or_else(|| MemoryError::Task(format!("no INSERT of {n} memories")))?;
        let mut stmt = conn.prepare_cached(sql)?;
        stmt.raw_bind_parameter(1, &now)?;
        for (k, &i) in chunk.iter().enumerate() {
            let (content, tags) = rows[i];
            stmt.raw_bind_parameter(2 * k + 2, content)?;
            stmt.raw_bind_parameter(2 * k + 3, tags.join(","))?;
        }
        let mut ids = Vec::with_capacity(n);
        let mut returned = stmt.raw_query();
        while let Some(row) = returned.next()? {
            ids.push(row.get::<_, i64>(0)?);
        }
        // RETURNING gives no order, but the rows are inserted in VALUES order and AUTOINCREMENT
        // only ever hands out larger ids, so the k-th smallest id is the k-th row's.
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != n {
            return Err(MemoryError::Task(format!("an INSERT of {n} memories returned {} ids", ids.len())));
        }
        for (&i, id) in chunk.iter().zip(ids) {
            write_tags(conn, id, rows[i].1)?;
            outcomes[i] = Ok(Stored { id, stored_at: now.clone() });
        }
    }
    Ok(outcomes)
}

/// `INSERT` of `rows` memories (1 to [`MAX_INSERT_ROWS`]): `?1` is the timestamp, then content
/// and comma-joined tags of each. Built once per size, since the statement cache is looked up
/// by text on every chunk.
fn insert_sql(rows: usize) -> Option<&'static str> {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        (1..=MAX_INSERT_ROWS)
            .map(|rows| {
                let values: Vec<String> =
                    (0..rows).map(|k| format!("(?{}, ?{}, ?1, ?1)", 2 * k + 2, 2 * k + 3)).collect();
                format!(
                    "INSERT INTO memories(content, tags, created_at, updated_at) VALUES {} RETURNING id",
                    values.join(", ")
                )
            })
            .collect()
    });
    all.get(rows.checked_sub(1)?).map(String::as_str)
}

fn entry_bytes(content: &str, tags: &[String]) -> u64 {
    let tag_bytes = tags.iter().map(String::len).sum::<usize>() + tags.len().saturating_sub(1);
    u64::try_from(content.len() + tag_bytes).unwrap_or(u64::MAX)
}

/// Trims tags, drops blanks and duplicates, and rejects commas (tags are stored comma-joined).
fn normalize_tags(tags: Vec<String>) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag.trim();
        if tag.contains(',') {
            return Err(MemoryError::Invalid(format!(
                "tag {tag:?} contains a comma; tags may not contain commas"
            )));
        }
        if !tag.is_empty() && !out.iter().any(|t| t == tag) {
            out.push(tag.to_string());
        }
    }
    Ok(out)
}

fn write_tags(conn: &Connection, id: i64, tags: &[String]) -> Result<()> {
    let mut stmt =
        conn.prepare_cached("INSERT OR IGNORE INTO memory_tags(tag, memory_id) VALUES (?1, ?2)")?;
    for tag in tags {
        stmt.execute(params![tag, id])?;
    }
    Ok(())
}

pub(crate) fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<Entry> {
    let tags: Option<String> = row.get(2)?;
    Ok(Entry {
        id: row.get(0)?,
        content: row.get(1)?,
        tags: tags
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        created_at: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
        updated_at: row.get::<_, Option<String>>(4)?.unwrap_or_default(),
    })
}

fn get_entry(conn: &Connection, id: i64) -> Result<Entry> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM memories m WHERE m.id = ?1"))?
        .query_row([id], entry_from_row)
        .optional()?
        .ok_or(MemoryError::NotFound(id))
}

fn stats(conn: &Connection) -> Result<Stats> {
    let (entries, bytes): (i64, i64) = conn
        .prepare_cached("SELECT entries, bytes FROM memory_stats WHERE singleton = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(Stats { entries: u64::try_from(entries).unwrap_or(0), bytes: u64::try_from(bytes).unwrap_or(0) })
}

fn list_entries(conn: &Connection, list: &ListQuery) -> Result<Vec<Entry>> {
    let limit = match list.limit {
        Some(n) if n > 0 => n.min(MAX_LIST_LIMIT),
        _ => DEFAULT_LIST_LIMIT,
    };
    let offset = list.offset.unwrap_or(0).max(0);
    let mut sql = format!("SELECT {COLUMNS} FROM memories m WHERE 1 = 1");
    let mut args: Vec<String> = Vec::new();
    if let Some(substr) = list.tags_substring.as_deref().filter(|s| !s.is_empty()) {
        sql.push_str(" AND m.tags LIKE ? ESCAPE '\\'");
        let escaped = substr.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        args.push(format!("%{escaped}%"));
    }
    for tag in list.tags.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        sql.push_str(" AND m.id IN (SELECT memory_id FROM memory_tags WHERE tag = ?)");
        args.push(tag.to_string());
    }
    sql.push_str(&format!(" ORDER BY m.updated_at DESC, m.id DESC LIMIT {limit} OFFSET {offset}"));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), entry_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
