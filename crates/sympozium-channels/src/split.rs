//! Splitting a long answer into messages a platform accepts (Telegram 4096, Discord 2000
//! characters, …), preferring paragraph, line and word boundaries so parts read naturally.

/// Splits `text` into parts of at most `limit` characters (Unicode scalar values, which is
/// how the platforms count). Never returns an empty list for non-empty text; an empty text
/// gives no parts.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if rest.chars().count() <= limit {
            parts.push(rest.to_string());
            break;
        }
        // Byte offset just after `limit` characters.
        let hard = rest.char_indices().nth(limit).map(|(i, _)| i).unwrap_or(rest.len());
        let window = &rest[..hard];
        // Break after the last paragraph, line or word boundary in the second half of the
        // window; cut hard when there is none (one giant word).
        let min = window.len() / 2;
        let cut = ["\n\n", "\n", " "]
            .iter()
            .find_map(|sep| window.rfind(sep).filter(|&i| i >= min).map(|i| i + sep.len()))
            .unwrap_or(hard);
        let (head, tail) = rest.split_at(cut);
        let head = head.trim_end();
        if !head.is_empty() {
            parts.push(head.to_string());
        }
        rest = tail.trim_start_matches(['\n', ' ']);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split("hello", 10), vec!["hello"]);
        assert!(split("", 10).is_empty());
    }

    #[test]
    fn long_text_splits_at_word_boundaries_within_the_limit() {
        let text = "alpha beta gamma delta epsilon zeta eta theta";
        let parts = split(text, 12);
        assert!(parts.iter().all(|p| p.chars().count() <= 12), "{parts:?}");
        assert_eq!(parts.join(" "), text);
    }

    #[test]
    fn counts_characters_not_bytes() {
        let text = "é".repeat(5000);
        let parts = split(&text, 4096);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].chars().count(), 4096);
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn prefers_paragraphs() {
        let text = format!("{}\n\n{}", "a".repeat(1500), "b".repeat(1000));
        assert_eq!(split(&text, 2000), vec!["a".repeat(1500), "b".repeat(1000)]);
    }
}
