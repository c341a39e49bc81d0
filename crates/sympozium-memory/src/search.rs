//! Search: the AND stage, then the OR stage (see [`crate::query`] for how text becomes FTS5
//! expressions). Long texts first count how many memories each term matches (bounded) to skip
//! impossible AND stages and to keep the OR stage to the rarest terms.

use rusqlite::{Connection, params};

use crate::error::Result;
use crate::query;
use crate::store::{COLUMNS, DEFAULT_TOP_K, MAX_TOP_K, entry_from_row};
use crate::types::{Entry, SearchRequest};

pub(crate) fn search(conn: &Connection, request: &SearchRequest) -> Result<Vec<Entry>> {
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
    use super::*;

    #[test]
    fn rarest_terms_skip_unmatched_and_respect_the_budget() {
        let terms: Vec<String> = ["a", "b", "c", "d", "e"].iter().map(|s| s.to_string()).collect();
        assert_eq!(rarest_terms(&terms, &[5, 0, 3, 10_000, 9_000]), vec!["a", "c", "e"]);
        assert_eq!(rarest_terms(&terms, &[6_000, 0, 3, 5_000, 2_000]), vec!["c", "d", "e"]);
        assert!(rarest_terms(&terms, &[DF_CAP; 5]).is_empty(), "very common terms are left out");
        assert!(rarest_terms(&terms, &[0, 0, 0, 0, 0]).is_empty());
    }
}
