//! The memory store: one writer connection behind a mutex (so writers are serialized and never
//! see "database is locked"), a small pool of read-only connections, and every call run on
//! tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::config::Limits;
use crate::error::{MemoryError, Result};
use crate::query;
use crate::schema;
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

const COLUMNS: &str = "m.id, m.content, m.tags, m.created_at, m.updated_at";
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
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                max_readers: readers,
                limits,
            }),
        })
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
        self.blocking(move |inner| {
            let mut stored = inner.insert_many(vec![request])?;
            stored.pop().ok_or_else(|| MemoryError::Task("insert returned no row".into()))
        })
        .await
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
        self.blocking(move |inner| inner.read(|c| search(c, &request))).await
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
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut stored = Vec::with_capacity(prepared.len());
        for (content, tags) in prepared {
            stored.push(self.insert_row(&tx, &content, &tags)?);
        }
        tx.commit()?;
        Ok(stored)
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
        let now = stats(conn)?;
        let max_entries = self.limits.max_entries;
        if max_entries > 0 && now.entries + new_entries > max_entries {
            return Err(MemoryError::LimitExceeded(format!(
                "the memory store is full: {} of {max_entries} memories (MEMORY_MAX_ENTRIES); delete some first",
                now.entries
            )));
        }
        let max_bytes = self.limits.max_total_bytes;
        let after = now.bytes.saturating_add_signed(new_bytes);
        if max_bytes > 0 && new_bytes > 0 && after > max_bytes {
            return Err(MemoryError::LimitExceeded(format!(
                "the memory store would hold {after} bytes, over its limit of {max_bytes} bytes (MEMORY_MAX_TOTAL_BYTES); {} bytes are in use",
                now.bytes
            )));
        }
        Ok(())
    }

    fn insert_row(&self, conn: &Connection, content: &str, tags: &[String]) -> Result<Stored> {
        let bytes = entry_bytes(content, tags);
        self.check_capacity(conn, 1, i64::try_from(bytes).unwrap_or(i64::MAX))?;
        let now: String = conn.query_row(NOW, [], |r| r.get(0))?;
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
        let now: String = tx.query_row(NOW, [], |r| r.get(0))?;
        tx.execute(
            "UPDATE memories SET content = ?1, tags = ?2, updated_at = ?3 WHERE id = ?4",
            params![content, tags.join(","), now, id],
        )?;
        tx.execute("DELETE FROM memory_tags WHERE memory_id = ?1", [id])?;
        write_tags(&tx, id, &tags)?;
        let entry = get_entry(&tx, id)?;
        tx.commit()?;
        Ok(entry)
    }

    fn delete(&self, id: i64) -> Result<Deleted> {
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let removed = tx.execute("DELETE FROM memories WHERE id = ?1", [id])?;
        if removed == 0 {
            return Err(MemoryError::NotFound(id));
        }
        tx.execute("DELETE FROM memory_tags WHERE memory_id = ?1", [id])?;
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

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<Entry> {
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
    let (entries, bytes): (i64, i64) =
        conn.query_row("SELECT entries, bytes FROM memory_stats WHERE singleton = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
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

fn search(conn: &Connection, request: &SearchRequest) -> Result<Vec<Entry>> {
    let top_k = if request.top_k <= 0 { DEFAULT_TOP_K } else { request.top_k.min(MAX_TOP_K) };
    let Some(fts) = query::build(&request.query) else {
        return Ok(Vec::new());
    };
    let all = fts.all();
    let mut by_recency = false;
    let (mut found, terms) = if fts.long_text {
        // A long text: skip the AND stage when some term matches nothing (it cannot match), and
        // keep only the rarest terms for the OR stage.
        let freqs = doc_freqs(conn, &fts.terms)?;
        let found =
            if freqs.iter().all(|f| *f > 0) { run_match(conn, &all, top_k, false)? } else { Vec::new() };
        let mut terms = rarest_terms(&fts.terms, &freqs);
        if terms.is_empty()
            && let Some((i, _)) = freqs.iter().enumerate().filter(|(_, f)| **f > 0).min_by_key(|(_, f)| **f)
        {
            // Every term is very common: BM25 cannot tell memories apart and would score a large
            // part of the table, so take the most recent matches of the rarest term.
            terms.push(fts.terms[i].clone());
            by_recency = true;
        }
        (found, terms)
    } else {
        (run_match(conn, &all, top_k, false)?, fts.terms.clone())
    };
    if len_i64(&found) >= top_k {
        return Ok(found);
    }
    let Some(any) = fts.any_of(&terms).filter(|any| *any != all) else {
        return Ok(found);
    };
    let wanted = top_k + len_i64(&found);
    for entry in run_match(conn, &any, wanted, by_recency)? {
        if len_i64(&found) >= top_k {
            break;
        }
        if !found.iter().any(|f| f.id == entry.id) {
            found.push(entry);
        }
    }
    Ok(found)
}

/// The most terms the OR stage of a long text uses.
pub const MAX_OR_TERMS: usize = 8;
/// Document frequencies are counted up to this many matches; a term reaching it is "very
/// common" and left out of the OR stage (counting stops there, so the cost is bounded).
const DF_CAP: i64 = 10_000;
/// After the rarest term, more terms join the OR stage only while their summed document
/// frequencies stay under this, so the stage never scores a large part of the table.
const OR_DF_BUDGET: i64 = 10_000;

/// How many memories each term matches, counted up to [`DF_CAP`].
fn doc_freqs(conn: &Connection, terms: &[String]) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT count(*) FROM (SELECT 1 FROM memories_fts WHERE memories_fts MATCH ?1 LIMIT ?2)",
    )?;
    terms.iter().map(|term| Ok(stmt.query_row(params![term, DF_CAP], |r| r.get(0))?)).collect()
}

/// The rarest terms that match something but are not very common (at most [`MAX_OR_TERMS`],
/// within [`OR_DF_BUDGET`] after the first), in their original order. BM25 weighs rare terms
/// most anyway.
fn rarest_terms(terms: &[String], freqs: &[i64]) -> Vec<String> {
    let mut by_rarity: Vec<(i64, usize)> = freqs
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, f)| *f > 0 && *f < DF_CAP)
        .map(|(i, f)| (f, i))
        .collect();
    by_rarity.sort_unstable();
    let mut chosen = Vec::new();
    let mut budget = 0;
    for (freq, i) in by_rarity {
        if chosen.len() >= MAX_OR_TERMS || (!chosen.is_empty() && budget + freq > OR_DF_BUDGET) {
            break;
        }
        budget += freq;
        chosen.push(i);
    }
    chosen.sort_unstable();
    chosen.into_iter().map(|i| terms[i].clone()).collect()
}

fn len_i64<T>(v: &[T]) -> i64 {
    i64::try_from(v.len()).unwrap_or(i64::MAX)
}

/// Runs one MATCH expression: best BM25 first, recency breaking ties; or, with `by_recency`,
/// newest first (no scoring).
fn run_match(conn: &Connection, expression: &str, limit: i64, by_recency: bool) -> Result<Vec<Entry>> {
    let order = if by_recency {
        "memories_fts.rowid DESC"
    } else {
        "bm25(memories_fts), m.updated_at DESC, m.id DESC"
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM memories_fts JOIN memories m ON m.id = memories_fts.rowid \
         WHERE memories_fts MATCH ?1 ORDER BY {order} LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![expression, limit], entry_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tags_are_normalized() {
        let tags = normalize_tags(vec![" a ".into(), "".into(), "b".into(), "a".into()]).unwrap();
        assert_eq!(tags, vec!["a", "b"]);
        assert!(normalize_tags(vec!["x,y".into()]).is_err());
    }

    #[test]
    fn rarest_terms_skip_unmatched_and_respect_the_budget() {
        let terms: Vec<String> = ["a", "b", "c", "d", "e"].iter().map(|s| s.to_string()).collect();
        assert_eq!(rarest_terms(&terms, &[5, 0, 3, 10_000, 9_000]), vec!["a", "c", "e"]);
        assert_eq!(rarest_terms(&terms, &[6_000, 0, 3, 5_000, 2_000]), vec!["c", "d", "e"]);
        assert!(rarest_terms(&terms, &[DF_CAP; 5]).is_empty(), "very common terms are left out");
        assert!(rarest_terms(&terms, &[0, 0, 0, 0, 0]).is_empty());
    }

    #[test]
    fn entry_bytes_count_content_and_joined_tags() {
        assert_eq!(entry_bytes("abc", &["x".into(), "yz".into()]), 3 + 4);
        assert_eq!(entry_bytes("é", &[]), 2);
    }
}
