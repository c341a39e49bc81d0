//! Building FTS5 `MATCH` expressions from free text.
//!
//! The text is split the way the `unicode61` tokenizer splits documents (on every character
//! that is not a letter or digit), so no user input can produce FTS5 syntax: every term is
//! emitted as a quoted string. The `porter` tokenizer stems query terms and documents alike, so
//! `"restarting"` finds "restarted" and "restarts". In short texts (at most
//! [`LONG_TEXT_TERMS`] terms, i.e. keyword searches) terms of three or more characters also
//! become prefix queries (`"deploy"*` finds "deployment"). Long texts (natural-language tasks)
//! use exact stemmed terms: prefix queries over many common words would merge huge posting
//! lists, and stemming already covers inflections. Common English stop words are dropped
//! unless nothing else is left. Text in double quotes becomes a phrase query.
//!
//! Two expressions are built: [`FtsQuery::all`] requires every term (tried first), and
//! [`FtsQuery::any`] requires any of them (used when the first finds fewer than `top_k`).
//! Quoted phrases are required in both; with phrases, the terms only raise the ranking in the
//! second expression.

/// The most terms one query uses; the rest of a very long text is ignored.
pub const MAX_TERMS: usize = 32;

/// Texts with more terms than this are "long" (see the module docs).
pub const LONG_TEXT_TERMS: usize = 8;

/// Terms shorter than this are matched exactly, not as prefixes (`"a"*` would match half the index).
const MIN_PREFIX_CHARS: usize = 3;

const STOP_WORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been", "before",
    "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "how", "i", "if",
    "in", "into", "is", "it", "its", "just", "me", "my", "no", "not", "of", "on", "or", "our", "out",
    "please", "should", "so", "some", "than", "that", "the", "their", "them", "then", "there", "these",
    "they", "this", "to", "up", "us", "was", "we", "were", "what", "when", "where", "which", "while", "who",
    "why", "will", "with", "would", "you", "your",
];

/// The parts of one search text, rendered as FTS5 expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtsQuery {
    /// Phrase queries (`"a b"`), all required.
    pub phrases: Vec<String>,
    /// Term queries (`"deploy"*`, `"db"`), in the order they appeared.
    pub terms: Vec<String>,
    /// More than [`LONG_TEXT_TERMS`] terms: exact terms, and the search narrows the OR stage
    /// to the rarest terms.
    pub long_text: bool,
}

impl FtsQuery {
    /// Every phrase and every term must match.
    pub fn all(&self) -> String {
        self.phrases.iter().chain(self.terms.iter()).cloned().collect::<Vec<_>>().join(" AND ")
    }

    /// Every phrase must match and terms are optional (but count for ranking); without phrases,
    /// at least one term must match. `None` when it would match the same as [`Self::all`].
    pub fn any(&self) -> Option<String> {
        let any = self.any_of(&self.terms)?;
        (any != self.all()).then_some(any)
    }

    /// Like [`Self::any`] but with only the given terms (e.g. the rarest ones of a long text);
    /// `None` when neither phrases nor terms are left.
    pub fn any_of(&self, terms: &[String]) -> Option<String> {
        match (self.phrases.first(), terms.len()) {
            (None, 0) => None,
            (None, 1) => Some(terms.join("")),
            (None, _) => Some(terms.join(" OR ")),
            (Some(_), 0) => Some(self.phrases.join(" AND ")),
            // The first phrase inside the OR keeps the match set equal to "all phrases" while
            // bm25 still rewards every term a memory contains.
            (Some(first), _) => {
                Some(format!("{} AND ({first} OR {})", self.phrases.join(" AND "), terms.join(" OR ")))
            }
        }
    }
}

/// Builds the expressions, or `None` when the text has no searchable word.
pub fn build(text: &str) -> Option<FtsQuery> {
    let (phrases, words) = split_phrases(text);
    let phrases: Vec<String> = phrases
        .iter()
        .map(|p| tokens(p))
        .filter(|t| !t.is_empty())
        .map(|t| format!("\"{}\"", t.join(" ")))
        .collect();
    let mut all_terms: Vec<String> = Vec::new();
    for token in tokens(&words) {
        if !all_terms.contains(&token) {
            all_terms.push(token);
        }
    }
    let content_terms: Vec<String> =
        all_terms.iter().filter(|t| !STOP_WORDS.contains(&t.as_str())).cloned().collect();
    let chosen = if content_terms.is_empty() && phrases.is_empty() { all_terms } else { content_terms };
    let long_text = chosen.len() > LONG_TEXT_TERMS;
    let terms: Vec<String> = chosen.iter().take(MAX_TERMS).map(|t| term(t, !long_text)).collect();
    if terms.is_empty() && phrases.is_empty() {
        return None;
    }
    Some(FtsQuery { phrases, terms, long_text })
}

/// The original Go server's expression: every whitespace-separated word with `" * + - ( ) : ^`
/// removed, as a prefix term, all joined with `AND`. Kept to compare against in tests and
/// benchmarks; the server never uses it.
pub fn legacy_and_query(text: &str) -> String {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| !matches!(c, '"' | '*' | '+' | '-' | '(' | ')' | ':' | '^'))
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .map(|w| format!("{w}*"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn term(token: &str, prefix: bool) -> String {
    if prefix && token.chars().count() >= MIN_PREFIX_CHARS {
        format!("\"{token}\"*")
    } else {
        format!("\"{token}\"")
    }
}

/// Lower-cased runs of letters and digits.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_lowercase).collect()
}

/// Separates `"quoted phrases"` from the remaining text; an unclosed quote is ordinary text.
fn split_phrases(text: &str) -> (Vec<String>, String) {
    let mut phrases = Vec::new();
    let mut rest = String::new();
    let mut remaining = text;
    while let Some(open) = remaining.find('"') {
        let after = &remaining[open + 1..];
        match after.find('"') {
            Some(close) => {
                rest.push_str(&remaining[..open]);
                rest.push(' ');
                phrases.push(after[..close].to_string());
                remaining = &after[close + 1..];
            }
            None => break,
        }
    }
    rest.push_str(remaining);
    (phrases, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_quoted_prefixes_and_stop_words_dropped() {
        let q = build("Why is the ingress-nginx pod crash looping?").unwrap();
        assert_eq!(q.all(), "\"ingress\"* AND \"nginx\"* AND \"pod\"* AND \"crash\"* AND \"looping\"*");
        assert_eq!(
            q.any().as_deref(),
            Some("\"ingress\"* OR \"nginx\"* OR \"pod\"* OR \"crash\"* OR \"looping\"*")
        );
    }

    #[test]
    fn fts_syntax_in_input_is_neutralised() {
        let q = build("NOT AND OR NEAR(x) col:val ^start \"unclosed *").unwrap();
        for part in q.all().split(" AND ") {
            assert!(part.starts_with('"'), "{part}");
        }
        assert!(q.all().contains("\"col\"*"));
        assert!(q.all().contains("\"near\"*"));
    }

    #[test]
    fn phrases_are_required() {
        let q = build("\"connection refused\" postgres replica").unwrap();
        assert_eq!(q.all(), "\"connection refused\" AND \"postgres\"* AND \"replica\"*");
        assert_eq!(
            q.any().as_deref(),
            Some("\"connection refused\" AND (\"connection refused\" OR \"postgres\"* OR \"replica\"*)")
        );
        let two = build("\"disk full\" \"node pool\"").unwrap();
        assert_eq!(two.all(), "\"disk full\" AND \"node pool\"");
        assert_eq!(two.any(), None);
        let only = build("\"disk full\"").unwrap();
        assert_eq!(only.all(), "\"disk full\"");
        assert_eq!(only.any(), None);
    }

    #[test]
    fn only_stop_words_still_search() {
        let q = build("the and").unwrap();
        assert_eq!(q.all(), "\"the\"* AND \"and\"*");
    }

    #[test]
    fn nothing_searchable_gives_none() {
        assert_eq!(build("  *** ()-:^ "), None);
        assert_eq!(build(""), None);
        assert_eq!(build("\"\""), None);
    }

    #[test]
    fn short_terms_are_exact_and_terms_deduplicated() {
        let q = build("db DB io deploy deploy").unwrap();
        assert_eq!(q.all(), "\"db\" AND \"io\" AND \"deploy\"*");
    }

    #[test]
    fn terms_are_capped() {
        let text: String = (0..100).map(|i| format!("word{i} ")).collect();
        let q = build(&text).unwrap();
        assert_eq!(q.all().split(" AND ").count(), MAX_TERMS);
    }

    #[test]
    fn long_texts_use_exact_terms() {
        let q = build("one two three four five six seven eight nine").unwrap();
        assert!(q.long_text);
        assert!(q.all().starts_with("\"one\" AND \"two\" AND \"three\""), "{}", q.all());
        let q = build("one two three four five six seven eight").unwrap();
        assert!(!q.long_text);
        assert!(q.all().starts_with("\"one\"* AND"));
    }

    #[test]
    fn legacy_query_matches_original() {
        assert_eq!(legacy_and_query("fix the (db) \"now\""), "fix* AND the* AND db* AND now*");
    }
}
