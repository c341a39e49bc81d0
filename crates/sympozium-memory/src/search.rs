//! Search with bounded work at any database size (see [`crate::query`] for how text becomes
//! FTS5 expressions).
//!
//! Every part of the text (phrase or term) first has its document frequency counted, up to
//! [`DF_CAP`] matches (counting stops there, so the cost is bounded). A part reaching the cap is
//! "very common". BM25 ranking costs time in proportion to how many memories the ranked
//! expression matches *and* to how many memories each of its parts matches (FTS5 reads a part's
//! whole posting list to weigh it), so very common parts are never ranked:
//!
//! 1. **AND stage**, every part required: ranked by BM25 over the parts that are not very
//!    common, the very common ones only filtering; when every part is very common, the newest
//!    matches. Skipped when some part matches nothing.
//! 2. **OR stage**, when the AND stage found fewer than `top_k`: phrases stay required; of the
//!    terms, only the rarest ones that are not very common (at most [`MAX_OR_TERMS`], within
//!    [`OR_DF_BUDGET`]) are used, ranked by BM25 and appended without duplicates. When every
//!    term is very common, the newest matches of the rarest one.
//!
//! So no search ranks more than about `DF_CAP + OR_DF_BUDGET` memories, whatever the size of
//! the table. Recency breaks ties between equal scores.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;
use crate::query::{self, FtsQuery};
use crate::store::{COLUMNS, DEFAULT_TOP_K, MAX_TOP_K, entry_from_row};
use crate::types::{Entry, SearchRequest};

/// The most terms the OR stage uses.
pub const MAX_OR_TERMS: usize = 8;
/// Document frequencies are counted up to this many matches; a part reaching it is "very
/// common" and never ranked.
pub const DF_CAP: i64 = 500;
/// After the rarest term, more terms join the OR stage only while their summed document
/// frequencies stay under this, so the stage never ranks a large part of the table.
pub const OR_DF_BUDGET: i64 = 1_000;

pub(crate) fn search(conn: &Connection, request: &SearchRequest) -> Result<Vec<Entry>> {
    let top_k = if request.top_k <= 0 { DEFAULT_TOP_K } else { request.top_k.min(MAX_TOP_K) };
    let Some(fts) = query::build(&request.query) else {
        return Ok(Vec::new());
    };
    let phrase_freqs = doc_freqs(conn, &fts.phrases)?;
    if phrase_freqs.contains(&0) {
        // Phrases are required in both stages.
        return Ok(Vec::new());
    }
    let term_freqs = doc_freqs(conn, &fts.terms)?;
    let all = fts.all();
    let mut found = if term_freqs.contains(&0) {
        Vec::new()
    } else {
        and_stage(conn, &fts, &phrase_freqs, &term_freqs, top_k)?
    };
    if len_i64(&found) >= top_k {
        return Ok(found);
    }
    let wanted = top_k + len_i64(&found);
    let chosen = rarest_terms(&fts.terms, &term_freqs);
    let more = if fts.phrases.is_empty() && chosen.is_empty() {
        // Every term is very common (BM25 cannot tell memories apart then): the newest
        // matches of the rarest term that matches at all.
        match term_freqs.iter().enumerate().filter(|(_, f)| **f > 0).min_by_key(|(_, f)| **f) {
            Some((i, _)) if fts.terms[i] != all => newest(conn, &fts.terms[i], wanted)?,
            _ => Vec::new(),
        }
    } else if phrase_freqs.iter().any(|f| *f >= DF_CAP) {
        // A very common phrase: rank nothing, take the newest memories with every phrase.
        let phrases = fts.phrases.join(" AND ");
        if phrases == all { Vec::new() } else { newest(conn, &phrases, wanted)? }
    } else {
        match fts.any_of(&chosen).filter(|any| *any != all) {
            Some(any) => best(conn, &any, None, wanted)?,
            None => Vec::new(),
        }
    };
    for entry in more {
        if len_i64(&found) >= top_k {
            break;
        }
        if !found.iter().any(|f| f.id == entry.id) {
            found.push(entry);
        }
    }
    Ok(found)
}

/// Every part required; BM25 over the parts that are not very common, the others filter.
fn and_stage(
    conn: &Connection,
    fts: &FtsQuery,
    phrase_freqs: &[i64],
    term_freqs: &[i64],
    top_k: i64,
) -> Result<Vec<Entry>> {
    let all = fts.all();
    let parts: Vec<(&String, i64)> = fts
        .phrases
        .iter()
        .zip(phrase_freqs.iter().copied())
        .chain(fts.terms.iter().zip(term_freqs.iter().copied()))
        .collect();
    let ranked: Vec<&str> = parts.iter().filter(|(_, f)| *f < DF_CAP).map(|(p, _)| p.as_str()).collect();
    if ranked.is_empty() {
        return newest(conn, &all, top_k);
    }
    if ranked.len() == parts.len() {
        return best(conn, &all, None, top_k);
    }
    // The AND matches are a subset of the rarest part's (fewer than DF_CAP): list them
    // unranked, then rank by the parts that can tell memories apart.
    let mut stmt =
        conn.prepare_cached("SELECT rowid FROM memories_fts WHERE memories_fts MATCH ?1 LIMIT ?2")?;
    let allowed = stmt
        .query_map(params![all, DF_CAP], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<HashSet<i64>>>()?;
    if allowed.is_empty() {
        return Ok(Vec::new());
    }
    best(conn, &ranked.join(" AND "), Some(&allowed), top_k)
}

/// How many memories each part matches, counted up to [`DF_CAP`].
fn doc_freqs(conn: &Connection, parts: &[String]) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT count(*) FROM (SELECT 1 FROM memories_fts WHERE memories_fts MATCH ?1 LIMIT ?2)",
    )?;
    parts.iter().map(|part| Ok(stmt.query_row(params![part, DF_CAP], |r| r.get(0))?)).collect()
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

/// The best `limit` matches of `expression` by BM25 (only those in `allowed`, when given);
/// equal scores go to the most recently updated. The callers make sure the expression
/// matches a bounded number of memories.
fn best(
    conn: &Connection,
    expression: &str,
    allowed: Option<&HashSet<i64>>,
    limit: i64,
) -> Result<Vec<Entry>> {
    let mut stmt = conn
        .prepare_cached("SELECT rowid, bm25(memories_fts) FROM memories_fts WHERE memories_fts MATCH ?1")?;
    let mut scored = stmt
        .query_map([expression], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?)))?
        .filter(|row| !matches!((row, allowed), (Ok((id, _)), Some(ok)) if !ok.contains(id)))
        .collect::<rusqlite::Result<Vec<(i64, f64)>>>()?;
    scored.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
    let limit = usize::try_from(limit).unwrap_or(0);
    // Keep every memory tied with the last one kept: the update time decides among them.
    let cut = match scored.get(limit.saturating_sub(1)) {
        Some(&(_, last)) if limit > 0 => scored.iter().take_while(|(_, s)| *s <= last).count(),
        _ => scored.len().min(limit),
    };
    let mut entries = scored[..cut]
        .iter()
        .map(|&(id, score)| Ok(entry(conn, id)?.map(|e| (score, e))))
        .filter_map(Result::transpose)
        .collect::<Result<Vec<(f64, Entry)>>>()?;
    entries.sort_by(|(sa, a), (sb, b)| {
        sa.total_cmp(sb).then_with(|| b.updated_at.cmp(&a.updated_at)).then(b.id.cmp(&a.id))
    });
    Ok(entries.into_iter().take(limit).map(|(_, e)| e).collect())
}

/// The newest `limit` matches of `expression`, unranked (FTS5 walks its index backwards and
/// stops after `limit`).
fn newest(conn: &Connection, expression: &str, limit: i64) -> Result<Vec<Entry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT rowid FROM memories_fts WHERE memories_fts MATCH ?1 ORDER BY rowid DESC LIMIT ?2",
    )?;
    let ids = stmt
        .query_map(params![expression, limit], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids.into_iter().map(|id| entry(conn, id)).collect::<Result<Vec<_>>>()?.into_iter().flatten().collect())
}

fn entry(conn: &Connection, id: i64) -> Result<Option<Entry>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM memories m WHERE m.id = ?1"))?
        .query_row([id], entry_from_row)
        .optional()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A database with `DF_CAP + 10` memories sharing the words "common filler", then `extra`.
    fn database(extra: &[&str]) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::schema::open_writer(&dir.path().join("m.db"), false).unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        let mut insert = tx
            .prepare("INSERT INTO memories(content, tags, created_at, updated_at) VALUES (?1, '', ?2, ?2)")
            .unwrap();
        for i in 0..DF_CAP + 10 {
            insert
                .execute(params![format!("common filler note {i}"), format!("2026-01-01T00:00:{i:06}Z")])
                .unwrap();
        }
        for (i, content) in extra.iter().enumerate() {
            insert.execute(params![content, format!("2026-02-01T00:00:{i:06}Z")]).unwrap();
        }
        drop(insert);
        tx.commit().unwrap();
        (dir, conn)
    }

    fn contents(conn: &Connection, query: &str, top_k: i64) -> Vec<String> {
        let request = SearchRequest { query: query.into(), top_k };
        search(conn, &request).unwrap().into_iter().map(|e| e.content).collect()
    }

    #[test]
    fn a_very_common_term_filters_the_and_stage_and_the_rare_terms_rank_it() {
        let (_dir, conn) =
            database(&["zebra alone, without the other word", "common zebra crossing zebra", "common zebra"]);
        let found = contents(&conn, "common zebra", 3);
        // Both memories with every term first, best BM25 (two zebras) first; then the OR stage,
        // which leaves out the very common term: the memory with only "zebra".
        assert_eq!(
            found,
            vec!["common zebra crossing zebra", "common zebra", "zebra alone, without the other word"]
        );
    }

    #[test]
    fn only_very_common_terms_give_the_newest_matches() {
        let (_dir, conn) = database(&[]);
        let found = contents(&conn, "filler", 2);
        let newest = DF_CAP + 9;
        assert_eq!(
            found,
            vec![format!("common filler note {newest}"), format!("common filler note {}", newest - 1)]
        );
        let found = contents(&conn, "common filler nothingmatchesthis", 2);
        assert_eq!(found.len(), 2, "the OR stage falls back to the newest matches of the rarest term");
    }

    #[test]
    fn rarest_terms_skip_unmatched_and_respect_the_budget() {
        let terms: Vec<String> = ["a", "b", "c", "d", "e"].iter().map(|s| s.to_string()).collect();
        assert_eq!(rarest_terms(&terms, &[5, 0, 3, DF_CAP, DF_CAP - 1]), vec!["a", "c", "e"]);
        // Frequencies relative to the cap, so the test follows the constants (the budget is
        // twice the cap): c + e + d fit the budget, adding a does not.
        let (a, d, e) = (DF_CAP * 19 / 20, DF_CAP * 3 / 4, DF_CAP / 2);
        assert_eq!(OR_DF_BUDGET, 2 * DF_CAP);
        assert_eq!(rarest_terms(&terms, &[a, 0, 3, d, e]), vec!["c", "d", "e"]);
        assert_eq!(
            rarest_terms(&terms, &[a, 0, 3, DF_CAP - 1, e]),
            vec!["a", "c", "e"],
            "d is over the budget"
        );
        assert!(rarest_terms(&terms, &[DF_CAP; 5]).is_empty(), "very common terms are left out");
        assert!(rarest_terms(&terms, &[0, 0, 0, 0, 0]).is_empty());
    }
}
