//! Unit tests of the store: group commit outcomes, limits and ids, on real SQLite files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

#[test]
fn tags_are_normalized() {
    let tags = normalize_tags(vec![" a ".into(), "".into(), "b".into(), "a".into()]).unwrap();
    assert_eq!(tags, vec!["a", "b"]);
    assert!(normalize_tags(vec!["x,y".into()]).is_err());
}

#[test]
fn a_group_commits_the_stores_that_fit_and_fails_the_rest_alone() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { max_entries: 2, ..Limits::default() };
    let store = Store::open(&dir.path().join("m.db"), limits, true, 0).unwrap();
    let jobs: Vec<WriteJob> = ["one", "two", "three"]
        .iter()
        .map(|c| WriteJob { content: (*c).to_string(), tags: vec![], reply: oneshot::channel().0 })
        .collect();
    let outcomes = store.inner.insert_group(&jobs).unwrap();
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 2);
    assert!(matches!(outcomes[2], Err(MemoryError::LimitExceeded(_))));
    let conn = store.inner.writer().unwrap();
    assert_eq!(stats(&conn).unwrap().entries, 2);
    let rows: i64 = conn.query_row("SELECT count(*) FROM memories", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 2);
}

fn job(content: &str, tags: &[&str]) -> WriteJob {
    WriteJob {
        content: content.to_string(),
        tags: tags.iter().map(|t| (*t).to_string()).collect(),
        reply: oneshot::channel().0,
    }
}

/// Each outcome as the caller sees it: the stored memory (content, tags) or the error text.
fn seen(store: &Store, outcomes: &[Result<Stored>]) -> Vec<Result<(String, Vec<String>), String>> {
    let conn = store.inner.writer().unwrap();
    outcomes
        .iter()
        .map(|o| match o {
            Ok(stored) => {
                let entry = get_entry(&conn, stored.id).unwrap();
                assert_eq!(entry.created_at, stored.stored_at);
                Ok((entry.content, entry.tags))
            }
            Err(e) => Err(e.to_string()),
        })
        .collect()
}

/// The counts kept by the triggers, and the counts of the table itself.
fn counted_and_real(store: &Store) -> (Stats, Stats) {
    let conn = store.inner.writer().unwrap();
    let (entries, bytes): (i64, i64) = conn
        .query_row(
            "SELECT count(*), COALESCE(sum(length(CAST(content AS BLOB)) + length(CAST(tags AS BLOB))), 0) FROM memories",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let real = Stats { entries: u64::try_from(entries).unwrap(), bytes: u64::try_from(bytes).unwrap() };
    (stats(&conn).unwrap(), real)
}

#[test]
fn a_group_has_the_outcomes_of_storing_one_by_one() {
    // Limits, and which of the 7 stores below fit them (after a first memory of 4 bytes).
    let cases = [
        // Store #3 would pass the total; the smaller stores after it still fit, #7 does not.
        (Limits { max_entries: 0, max_entry_bytes: 0, max_total_bytes: 100 }, [1, 1, 0, 1, 1, 1, 0]),
        // The store that reaches the count succeeds, every later one fails.
        (Limits { max_entries: 4, max_entry_bytes: 0, max_total_bytes: 0 }, [1, 1, 1, 0, 0, 0, 0]),
        // Both: #3 over the total, #6 and #7 over the count.
        (Limits { max_entries: 5, max_entry_bytes: 0, max_total_bytes: 110 }, [1, 1, 0, 1, 1, 0, 0]),
    ];
    for (limits, fit) in cases {
        let contents: [(String, &[&str]); 7] = [
            ("a".repeat(20), &["x"]),
            ("b".repeat(30), &[]),
            ("c".repeat(60), &["big", "y"]),
            ("d".repeat(10), &["x", "z"]),
            ("e".repeat(25), &[]),
            ("f".repeat(5), &["x"]),
            ("g".repeat(50), &[]),
        ];
        let jobs: Vec<WriteJob> = contents.iter().map(|(c, t)| job(c, t)).collect();
        let dir = tempfile::tempdir().unwrap();
        // Both databases start with a memory in them, so the running totals start above zero.
        let together = Store::open(&dir.path().join("together.db"), limits, true, 0).unwrap();
        let alone = Store::open(&dir.path().join("alone.db"), limits, true, 0).unwrap();
        for store in [&together, &alone] {
            store.inner.insert_one_by_one(&[job("seed", &[])]).unwrap().remove(0).unwrap();
        }
        let fast = together.inner.insert_together(&jobs).unwrap();
        let slow = alone.inner.insert_one_by_one(&jobs).unwrap();
        let (fast, slow) = (seen(&together, &fast), seen(&alone, &slow));
        assert_eq!(fast, slow, "{limits:?}");
        let stored: Vec<u8> = fast.iter().map(|o| u8::from(o.is_ok())).collect();
        assert_eq!(stored, fit, "{limits:?}");
        let (counted, real) = counted_and_real(&together);
        assert_eq!(counted, real, "{limits:?}");
        assert_eq!(counted, counted_and_real(&alone).0, "{limits:?}");
    }
}

#[test]
fn each_store_of_a_large_group_gets_its_own_id() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { max_total_bytes: 10_000, ..Limits::default() };
    let store = Store::open(&dir.path().join("m.db"), limits, true, 0).unwrap();
    // More than one multi-row INSERT, with a store over the total in the first.
    const TOO_BIG: usize = 40;
    let content = |i: usize| if i == TOO_BIG { "x".repeat(9_900) } else { format!("memory number {i}") };
    let jobs: Vec<WriteJob> =
        (0..MAX_INSERT_ROWS * 2 + 7).map(|i| job(&content(i), &[&format!("t{i}"), "all"])).collect();
    let outcomes = store.inner.insert_group(&jobs).unwrap();
    let seen = seen(&store, &outcomes);
    let conn = store.inner.writer().unwrap();
    for (i, outcome) in seen.iter().enumerate() {
        let tag = format!("t{i}");
        let tagged: Option<i64> = conn
            .query_row("SELECT memory_id FROM memory_tags WHERE tag = ?1", [&tag], |r| r.get(0))
            .optional()
            .unwrap();
        assert_eq!(tagged, outcomes[i].as_ref().ok().map(|s| s.id), "{i}");
        if i == TOO_BIG {
            assert!(matches!(outcome, Err(e) if e.contains("MEMORY_MAX_TOTAL_BYTES")), "{outcome:?}");
        } else {
            assert_eq!(outcome, &Ok((content(i), vec![tag, "all".to_string()])), "{i}");
        }
    }
    drop(conn);
    let (counted, real) = counted_and_real(&store);
    assert_eq!(counted, real);
    assert_eq!(real.entries, u64::try_from(jobs.len() - 1).unwrap());
}

#[test]
fn a_store_that_fails_the_group_transaction_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("m.db"), Limits::default(), true, 0).unwrap();
    // Stands for any store SQLite refuses: the group's INSERT fails as a whole.
    store
        .inner
        .writer()
        .unwrap()
        .execute_batch(
            "CREATE TEMP TRIGGER poison BEFORE INSERT ON main.memories WHEN new.content = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned store'); END;",
        )
        .unwrap();
    let jobs = [job("first", &["a"]), job("poison", &[]), job("last", &["b"])];
    let outcomes = store.inner.insert_group(&jobs).unwrap();
    let seen = seen(&store, &outcomes);
    assert_eq!(seen[0], Ok(("first".to_string(), vec!["a".to_string()])));
    assert!(matches!(&seen[1], Err(e) if e.contains("poisoned store")), "{:?}", seen[1]);
    assert_eq!(seen[2], Ok(("last".to_string(), vec!["b".to_string()])));
    let (counted, real) = counted_and_real(&store);
    assert_eq!(counted, real);
    assert_eq!(real.entries, 2);
}

#[test]
fn entry_bytes_count_content_and_joined_tags() {
    assert_eq!(entry_bytes("abc", &["x".into(), "yz".into()]), 3 + 4);
    assert_eq!(entry_bytes("é", &[]), 2);
}
