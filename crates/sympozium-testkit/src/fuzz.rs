//! Structure-aware input for the fuzz targets (`tests/fuzz.rs` of the parsing crates).
//!
//! Random bytes almost never form the JSON documents the parsers take, so a fuzz target
//! starts from a real example (a seed) and lets the fuzzer's bytes drive edits of its
//! tree: replace a value with an edge case (huge and negative numbers, empty and
//! multi-byte strings, wrong types), delete or add keys, grow arrays. The same bytes always
//! give the same document, so a crash found by libFuzzer or bolero's random engine replays
//! from its saved input.

use serde_json::{Map, Number, Value};

/// Numbers that break arithmetic: extremes, signs, zero, fractions.
const NUMBERS: &[i64] =
    &[0, 1, -1, 2, 59, 60, 63, 64, 255, 256, 65_535, 1 << 31, -(1 << 31), i64::MAX, i64::MIN];

/// Strings that break text handling: empty, blank, numeric-looking, extreme numbers as
/// text, control characters, multi-byte UTF-8, separators, traversal.
const STRINGS: &[&str] = &[
    "",
    " ",
    "\n\n",
    "0",
    "-1",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1e309",
    "NaN",
    "\u{0}",
    "é",
    "💥",
    "\u{202e}",
    "a-b",
    "*/0",
    "@hourly",
    "60 24 32 13 8",
    "../../etc/passwd",
    "sha256=",
    "v0=",
    "00-00000000000000000000000000000000-0000000000000000-00",
    "true",
    "{}",
    "[]",
];

/// Reads the fuzzer's bytes as a stream of small choices.
pub struct Choices<'a> {
    bytes: &'a [u8],
}

impl<'a> Choices<'a> {
    /// Choices drawn from `bytes` (all zero once they run out).
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Whether every byte has been used.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// One byte.
    pub fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((b, rest)) => {
                self.bytes = rest;
                *b
            }
            None => 0,
        }
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let v = usize::from(self.byte()) << 8 | usize::from(self.byte());
        v % n
    }

    /// Up to `max` raw bytes as text (lossy), for free-form strings.
    pub fn text(&mut self, max: usize) -> String {
        let len = self.below(max + 1).min(self.bytes.len());
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        String::from_utf8_lossy(head).into_owned()
    }

    /// An edge-case or free-form string.
    pub fn string(&mut self) -> String {
        match self.byte() % 3 {
            0 => self.text(64),
            1 => STRINGS[self.below(STRINGS.len())].to_string(),
            _ => STRINGS[self.below(STRINGS.len())].repeat(1 + self.below(300)),
        }
    }

    /// A value of any JSON type, edge cases preferred.
    pub fn value(&mut self) -> Value {
        match self.byte() % 9 {
            0 => Value::Null,
            1 => Value::Bool(self.byte() & 1 == 1),
            2 => Value::from(NUMBERS[self.below(NUMBERS.len())]),
            3 => Value::from(u64::MAX - u64::from(self.byte())),
            4 => [1e308, -1e308, 0.5, -0.0, 1e-300, 3.75]
                .get(self.below(6))
                .and_then(|f| Number::from_f64(*f))
                .map_or(Value::Null, Value::Number),
            5 | 6 => Value::String(self.string()),
            7 => Value::Array((0..self.below(4)).map(|_| Value::String(self.string())).collect()),
            _ => Value::Object(Map::new()),
        }
    }
}

/// Every node of `v` as a JSON pointer, the root (`""`) first.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let key = k.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{key}"), out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// `seed` edited as `bytes` direct (see the module docs). Bounded: at most 16 edits, and
/// arrays grow by at most 64 copies per edit.
pub fn mutate(seed: &Value, bytes: &[u8]) -> Value {
    let mut doc = seed.clone();
    let mut c = Choices::new(bytes);
    for _ in 0..16 {
        if c.is_empty() {
            break;
        }
        let mut all = Vec::new();
        pointers(&doc, String::new(), &mut all);
        let at = all[c.below(all.len())].clone();
        let op = c.byte() % 6;
        let Some(node) = doc.pointer_mut(&at) else { continue };
        match op {
            // Replace the node.
            0 | 1 => *node = c.value(),
            // Add (or overwrite) a key with a free-form or known name.
            2 => {
                if let Value::Object(m) = node {
                    let key = match m.keys().nth(c.below(m.len().max(1))) {
                        Some(k) if c.byte() & 1 == 0 => format!("{k}{}", c.text(4)),
                        _ => c.string(),
                    };
                    m.insert(key, c.value());
                } else {
                    *node = c.value();
                }
            }
            // Delete a key or an element.
            3 => match node {
                Value::Object(m) => {
                    if let Some(k) = m.keys().nth(c.below(m.len())).cloned() {
                        m.remove(&k);
                    }
                }
                Value::Array(a) if !a.is_empty() => {
                    a.remove(c.below(a.len()));
                }
                _ => *node = Value::Null,
            },
            // Grow an array with copies of one of its elements, or wrap the node in one.
            4 => match node {
                Value::Array(a) if !a.is_empty() => {
                    let copy = a[c.below(a.len())].clone();
                    let n = c.below(64);
                    a.extend(std::iter::repeat_n(copy, n));
                }
                other => *other = Value::Array(vec![other.take()]),
            },
            // The same value with its type changed (number <-> string).
            _ => {
                *node = match node.take() {
                    Value::Number(n) => Value::String(n.to_string()),
                    Value::String(s) => s.trim().parse::<i64>().map(Value::from).unwrap_or(Value::String(s)),
                    other => Value::String(other.to_string()),
                }
            }
        }
    }
    doc
}

/// The document a target feeds its parser: one of `seeds` (chosen by the first byte)
/// edited by the rest of `bytes`.
pub fn document(seeds: &[Value], bytes: &[u8]) -> Value {
    match bytes.split_first() {
        Some((pick, rest)) if !seeds.is_empty() => mutate(&seeds[usize::from(*pick) % seeds.len()], rest),
        _ => Value::Null,
    }
}

/// The seed documents of a fuzz target: every `.json` file of its committed corpus
/// directory (`dir`, e.g. `tests/__fuzz__/admission_review/corpus`), parsed. The
/// same files are the corpus libFuzzer starts from, so a seed is both mutated byte-wise
/// by the fuzzer and tree-wise by [`mutate`]. Unreadable or non-JSON files are skipped.
pub fn seeds(dir: &std::path::Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_same_bytes_give_the_same_document() {
        let seed = serde_json::json!({"a": [1, 2], "b": {"c": "x"}});
        let bytes: Vec<u8> = (0..200u8).map(|i| i.wrapping_mul(37)).collect();
        assert_eq!(mutate(&seed, &bytes), mutate(&seed, &bytes));
        assert_ne!(mutate(&seed, &bytes), seed, "the edits change the document");
        assert_eq!(mutate(&seed, &[]), seed);
    }
}
