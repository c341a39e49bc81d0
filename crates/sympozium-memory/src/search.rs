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
//!    matches. Skipped when some part matches nothing. In a long text (a natural-language
//!    task, see [`crate::query::LONG_TEXT_TERMS`]) only every phrase and the
//!    [`LEAD_PARTS`] rarest terms are required; its other terms that are not very common still
//!    raise the BM25 score of the memories that contain them. FTS5 intersects required parts
//!    by walking their posting lists from one end until they agree, so thirty common words
//!    that seldom meet walk most of the index (tens of milliseconds at a million memories)
//!    to find, almost always, nothing.
//! 2. **OR stage**, when the AND stage found fewer than `top_k`: phrases stay required; of the
//!    terms, only the rarest ones that are not very common (at most [`MAX_OR_TERMS`], within
//!    [`OR_DF_BUDGET`]) are used, ranked by BM25 and appended without duplicates. When every
//!    term is very common, the newest matches of the rarest one.
//!
//! "Rarest" among very common parts (whose counts all stop at the cap) goes by how far into
//! the table their first [`DF_CAP`] matches reach: the further, the sparser.
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
pub const DF_CAP: i64 = 200;
/// After the rarest term, more terms join the OR stage only while their summed document
/// frequencies stay under this, so the stage never ranks a large part of the table.
pub const OR_DF_BUDGET: i64 = 400;
/// How many terms of a long text the AND stage requires (its rarest ones).
pub const LEAD_PARTS: usize = 2;

/// Parts of a text (FTS5 expressions) with how common each is.
type Parts<'a> = Vec<(&'a String, Freq)>;

/// How common one part is: its matches counted up to [`DF_CAP`], and the largest rowid among
/// them (how far into the table the first `DF_CAP` reach: further means sparser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Freq {
    count: i64,
    reach: i64,
}

impl Freq {
    fn common(self) -> bool {
        self.count >= DF_CAP
    }

    /// Sorts rarer parts first; the reach only tells very common parts apart (a stable sort
    /// keeps other ties in the text's order).
    fn rarity_key(self) -> (i64, std::cmp::Reverse<i64>) {
        (self.count, std::cmp::Reverse(if self.common() { self.reach } else { 0 }))
    }
}

pub(crate) fn search(conn: &Connection, request: &SearchRequest) -> Result<Vec<Entry>> {
    let top_k = if request.top_k <= 0 { DEFAULT_TOP_K } else { request.top_k.min(MAX_TOP_K) };
    let Some(fts) = query::build(&request.query) else {
        return Ok(Vec::new());
    };
    let phrase_freqs = doc_freqs(conn, &fts.phrases)?;
    if phrase_freqs.iter().any(|f| f.count == 0) {
        // Phrases are required in both stages.
        return Ok(Vec::new());
    }
    let term_freqs = doc_freqs(conn, &fts.terms)?;
    let all = fts.all();
    // A long text's AND stage requires only some of its terms, chosen among those that match.
    let and_possible = if fts.long_text {
        term_freqs.iter().any(|f| f.count > 0)
    } else {
        term_freqs.iter().all(|f| f.count > 0)
    };
    let mut found =
        if and_possible { and_stage(conn, &fts, &phrase_freqs, &term_freqs, top_k)? } else { Vec::new() };
    if len_i64(&found) >= top_k {
        return Ok(found);
    }
    let wanted = top_k + len_i64(&found);
    let counts: Vec<i64> = term_freqs.iter().map(|f| f.count).collect();
    let chosen = rarest_terms(&fts.terms, &counts);
    let more = if fts.phrases.is_empty() && chosen.is_empty() {
        // Every term is very common (BM25 cannot tell memories apart then): the newest
        // matches of the rarest term that matches at all.
        match term_freqs.iter().enumerate().filter(|(_, f)| f.count > 0).min_by_key(|(_, f)| f.rarity_key()) {
            Some((i, _)) if fts.terms[i] != all => newest(conn, &fts.terms[i], wanted)?,
            _ => Vec::new(),
        }
    } else if phrase_freqs.iter().any(|f| f.common()) {
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

/// Every part required (in a long text: every phrase and the [`LEAD_PARTS`] rarest terms);
/// BM25 over the parts that are not very common, the others filter.
fn and_stage(
    conn: &Connection,
    fts: &FtsQuery,
    phrase_freqs: &[Freq],
    term_freqs: &[Freq],
    top_k: i64,
) -> Result<Vec<Entry>> {
    let (required, optional) = required_parts(fts, phrase_freqs, term_freqs);
    let filter = required.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>().join(" AND ");
    let ranked: Vec<&str> = required.iter().filter(|(_, f)| !f.common()).map(|(p, _)| p.as_str()).collect();
    let Some(first) = ranked.first() else {
        return newest(conn, &filter, top_k);
    };
    let extra: Vec<&str> = optional.iter().filter(|(_, f)| !f.common()).map(|(p, _)| p.as_str()).collect();
    // The optional parts sit inside an OR with a required one, so they change the score and
    // never the set of matches.
    let rank = if extra.is_empty() {
        ranked.join(" AND ")
    } else {
        format!("{} AND ({first} OR {})", ranked.join(" AND "), extra.join(" OR "))
    };
    if ranked.len() == required.len() {
        return best(conn, &rank, None, top_k);
    }
    // The matches are a subset of the rarest part's (fewer than DF_CAP): list them unranked,
    // then rank by the parts that can tell memories apart.
    let mut stmt =
        conn.prepare_cached("SELECT rowid FROM memories_fts WHERE memories_fts MATCH ?1 LIMIT ?2")?;
    let allowed = stmt
        .query_map(params![filter, DF_CAP], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<HashSet<i64>>>()?;
    if allowed.is_empty() {
        return Ok(Vec::new());
    }
    best(conn, &rank, Some(&allowed), top_k)
}

/// The parts the AND stage requires and the ones that only rank: every part is required,
/// except in a long text, where only the phrases and the [`LEAD_PARTS`] rarest terms that
/// match something are.
fn required_parts<'a>(
    fts: &'a FtsQuery,
    phrase_freqs: &[Freq],
    term_freqs: &[Freq],
) -> (Parts<'a>, Parts<'a>) {
    let phrases = fts.phrases.iter().zip(phrase_freqs.iter().copied());
    let mut terms: Parts<'a> = fts.terms.iter().zip(term_freqs.iter().copied()).collect();
    if !fts.long_text {
        return (phrases.chain(terms).collect(), Vec::new());
    }
    terms.retain(|(_, f)| f.count > 0);
    if terms.len() <= LEAD_PARTS {
        return (phrases.chain(terms).collect(), Vec::new());
    }
    terms.sort_by_key(|(_, f)| f.rarity_key());
    let optional = terms.split_off(LEAD_PARTS);
    (phrases.chain(terms).collect(), optional)
}

/// How common each part is (see [`Freq`]), counted up to [`DF_CAP`] matches.
fn doc_freqs(conn: &Connection, parts: &[String]) -> Result<Vec<Freq>> {
    let mut stmt = conn.prepare_cached(
        "SELECT count(*), coalesce(max(rowid), 0) \
         FROM (SELECT rowid FROM memories_fts WHERE memories_fts MATCH ?1 LIMIT ?2)",
    )?;
    parts
        .iter()
        .map(|part| {
            Ok(stmt.query_row(params![part, DF_CAP], |r| Ok(Freq { count: r.get(0)?, reach: r.get(1)? }))?)
        })
        .collect()
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
    fn a_long_text_requires_its_rarest_terms_and_ranks_by_the_others() {
        let (_dir, conn) = database(&[
            "okapi walrus zebra giraffe",
            "okapi walrus",
            "walrus zebra giraffe penguin llama",
            "zebra giraffe penguin llama",
            "penguin llama zebra",
        ]);
        // Ten terms, so a long text; "yak" matches nothing and "common filler note" are very
        // common. Every term required would find nothing; the two rarest (okapi, walrus) find
        // both memories with them, the one with more of the other words first.
        let task = "okapi walrus zebra giraffe penguin llama yak common filler note";
        assert!(crate::query::build(task).unwrap().long_text);
        let found = contents(&conn, task, 2);
        assert_eq!(found, vec!["okapi walrus zebra giraffe", "okapi walrus"]);
        // Then the OR stage adds the memories with only some of the rare words.
        let found = contents(&conn, task, 4);
        assert_eq!(found.len(), 4);
        assert!(found[2..].contains(&"walrus zebra giraffe penguin llama".to_string()), "{found:?}");
        // A short text with a term that matches nothing has no AND stage: only the OR of its
        // matching terms answers.
        assert!(
            contents(&conn, "okapi walrus yak", 2)
                .iter()
                .all(|c| c.contains("okapi") || c.contains("walrus"))
        );
        // A short text still requires every term: the one memory with both comes first.
        assert_eq!(contents(&conn, "okapi zebra", 1), vec!["okapi walrus zebra giraffe"]);
    }

    #[test]
    fn among_very_common_parts_the_sparser_one_counts_as_rarer() {
        let dense = Freq { count: DF_CAP, reach: DF_CAP + 10 };
        let sparse = Freq { count: DF_CAP, reach: 50 * DF_CAP };
        let rare = Freq { count: 3, reach: 7 };
        let mut freqs = [dense, sparse, rare];
        freqs.sort_by_key(|f| f.rarity_key());
        assert_eq!(freqs, [rare, sparse, dense]);
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
