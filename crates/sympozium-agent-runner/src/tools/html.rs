//! HTML to plain text for `fetch_url`: drops script/style/head/noscript/svg, puts newlines
//! around block elements and tabs between table cells, decodes common entities and collapses
//! whitespace. Good enough for a model to read a page; not a browser.

const SKIP: &[&str] = &["script", "style", "head", "noscript", "svg"];
const BLOCK: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "pre",
    "blockquote",
    "hr",
    "main",
    "aside",
    "form",
    "dd",
    "dt",
];

/// Converts HTML to text.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..start]));
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            rest = "";
            break;
        };
        let tag = &after[..end];
        rest = &after[end + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if !closing && SKIP.contains(&name.as_str()) && !tag.ends_with('/') {
            let close = format!("</{name}");
            match rest.to_ascii_lowercase().find(&close) {
                Some(pos) => {
                    let tail = &rest[pos..];
                    rest = tail.find('>').map_or("", |gt| &tail[gt + 1..]);
                }
                None => rest = "",
            }
            continue;
        }
        if BLOCK.contains(&name.as_str()) {
            out.push('\n');
        } else if (name == "td" || name == "th") && !closing {
            out.push('\t');
        }
    }
    out.push_str(&decode_entities(rest));
    collapse(&out)
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let Some(semi) = after.find(';').filter(|&i| i <= 10) else {
            out.push('&');
            rest = &after[1..];
            continue;
        };
        let entity = &after[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some(' '),
            e if e.starts_with("#x") || e.starts_with("#X") => {
                u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32)
            }
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn collapse(s: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in s.lines() {
        let cells: Vec<String> =
            line.split('\t').map(|c| c.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
        let joined = cells.join("\t");
        let trimmed = joined.trim_matches(|c| c == ' ' || c == '\t');
        if trimmed.is_empty() {
            if lines.last().is_some_and(|l| !l.is_empty()) {
                lines.push(String::new());
            }
        } else {
            lines.push(trimmed.to_string());
        }
    }
    lines.join("\n").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_pages() {
        let html = "<html><head><title>x</title><style>p{}</style></head><body><h1>Title</h1>\
                    <p>Hello &amp; <b>welcome</b></p><script>alert(1)</script>\
                    <table><tr><td>a</td><td>b</td></tr></table></body></html>";
        let text = html_to_text(html);
        assert_eq!(text, "Title\n\nHello & welcome\n\na\tb");
    }
}
