//! Seed files: a Markdown list, one seed per item.
//!
//! Items start with `- ` or `* ` (after optional indentation); following lines indented by at
//! least two spaces continue the item. Everything else (headings, paragraphs such as the
//! "No memories recorded yet." placeholder, blank lines) is ignored. This is the format the
//! PersonaPack controller writes into the `MEMORY.md` ConfigMap key, so that file can be
//! mounted and used as `MEMORY_SEEDS_PATH` directly.

use std::path::Path;

use crate::error::{MemoryError, Result};

/// Reads and parses a seeds file.
pub fn read_seeds(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| MemoryError::Io { path: path.to_path_buf(), source })?;
    Ok(parse_seeds(&text))
}

/// The seeds of a Markdown list, trimmed, without empty or duplicate items.
pub fn parse_seeds(text: &str) -> Vec<String> {
    let mut seeds: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let item = trimmed.strip_prefix("- ").or_else(|| trimmed.strip_prefix("* "));
        if let Some(item) = item {
            flush(&mut seeds, current.take());
            current = Some(item.trim().to_string());
        } else if line.starts_with("  ") && !trimmed.is_empty() {
            if let Some(cur) = current.as_mut() {
                cur.push('\n');
                cur.push_str(trimmed.trim_end());
            }
        } else {
            flush(&mut seeds, current.take());
        }
    }
    flush(&mut seeds, current);
    seeds
}

fn flush(seeds: &mut Vec<String>, item: Option<String>) {
    if let Some(item) = item.map(|s| s.trim().to_string())
        && !item.is_empty()
        && !seeds.contains(&item)
    {
        seeds.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_list_items_are_seeds() {
        let text = "# Memory\n\n- The prod cluster is eu-west-1\n* Deploys freeze on Fridays\n  after 15:00 UTC\n\nNo memories recorded yet.\n- The prod cluster is eu-west-1\n-   \n";
        assert_eq!(
            parse_seeds(text),
            vec![
                "The prod cluster is eu-west-1".to_string(),
                "Deploys freeze on Fridays\nafter 15:00 UTC".to_string(),
            ]
        );
    }

    #[test]
    fn placeholder_has_no_seeds() {
        assert!(parse_seeds("# Agent Memory\n\nNo memories recorded yet.\n").is_empty());
    }
}
