//! YAML that YAML 1.1 and YAML 1.2 readers read the same way.
//!
//! kubectl, Helm and most Go tools read YAML 1.1, where a plain `off`, `on`, `yes`, `no`,
//! `y` or `n` is a boolean and `1.0`, `0x1F` or `1_000` a number; serde_yaml writes YAML 1.2
//! and leaves those plain. A CRD enum value `off` written plain arrives at the API server as
//! `false`, and the enum then refuses `"off"`. This writer quotes every string a YAML 1.1 or
//! 1.2 resolver could read as anything but a string, and keeps everything else plain (block
//! style, like serde_yaml's output) so the files stay readable and diffable.

use serde_json::{Map, Value};

/// Renders `value` as a block-style YAML document (no leading `---`).
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => seq(&mut out, a, 0),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

/// Writes the entries of a non-empty map, each line indented by `indent`.
fn map(out: &mut String, m: &Map<String, Value>, indent: usize) {
    for (k, v) in m {
        push_indent(out, indent);
        out.push_str(&string(k));
        out.push(':');
        match v {
            Value::Object(child) if !child.is_empty() => {
                out.push('\n');
                map(out, child, indent + 2);
            }
            // Sequences under a key are not indented further (kubectl's and serde_yaml's style).
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                seq(out, items, indent);
            }
            Value::String(s) if literal_ok(s) => literal(out, s, indent + 2),
            scalar => {
                out.push(' ');
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

/// Writes the items of a non-empty sequence as `- ` lines indented by `indent`.
fn seq(out: &mut String, items: &[Value], indent: usize) {
    for v in items {
        match v {
            Value::Object(_) | Value::Array(_) if !is_empty_container(v) => {
                // The item's block one level in, its first line's indentation replaced by "- ".
                let mut nested = String::new();
                match v {
                    Value::Object(m) => map(&mut nested, m, indent + 2),
                    Value::Array(a) => seq(&mut nested, a, indent + 2),
                    _ => {}
                }
                push_indent(out, indent);
                out.push_str("- ");
                out.push_str(&nested[indent + 2..]);
            }
            Value::String(s) if literal_ok(s) => {
                push_indent(out, indent);
                out.push('-');
                literal(out, s, indent + 2);
            }
            scalar => {
                push_indent(out, indent);
                out.push_str("- ");
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn push_indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// A scalar (or empty container) on one line.
fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// Integers as they are; floats always with a `.` and a signed exponent, which YAML 1.1's
/// float pattern requires (`1e9` is a string to it, `1.0e+9` a float).
fn number(n: &serde_json::Number) -> String {
    let text = n.to_string();
    if !n.is_f64() {
        return text;
    }
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m.to_string(), Some(e.to_string())),
        None => (text.clone(), None),
    };
    let mantissa = if mantissa.contains('.') { mantissa } else { format!("{mantissa}.0") };
    match exponent {
        Some(e) if e.starts_with(['+', '-']) => format!("{mantissa}e{e}"),
        Some(e) => format!("{mantissa}e+{e}"),
        None => mantissa,
    }
}

/// A string on one line: plain when no reader could take it for anything else, otherwise
/// single-quoted, or double-quoted when it holds characters only escapes can carry.
fn string(s: &str) -> String {
    if plain_ok(s) {
        return s.to_string();
    }
    if s.chars().all(|c| !c.is_control() && c != '\u{feff}') {
        return format!("'{}'", s.replace('\'', "''"));
    }
    // JSON's escapes (\" \\ \n \t \uXXXX …) are all valid in YAML double-quoted scalars.
    serde_json::to_string(s).unwrap_or_else(|_| format!("'{}'", s.replace('\'', "''")))
}

/// Words YAML 1.1 resolves to booleans or null (YAML 1.2 knows only some of them).
const RESERVED: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false", "False",
    "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~", "=", "<<",
];

/// Whether `s` may be written plain: a YAML 1.1 and a 1.2 reader both read it back as this
/// string. Conservative: anything that looks like a number, boolean, null, or starts with
/// an indicator is quoted.
pub fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else { return false };
    if RESERVED.contains(&s) {
        return false;
    }
    if s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return false;
    }
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) || first == '+' || first.is_ascii_digit() {
        return false;
    }
    // `.5`, `.inf`, `.NaN`: floats to both readers.
    if first == '.' {
        let rest = &s[1..];
        if rest.starts_with(|c: char| c.is_ascii_digit())
            || ["inf", "nan"].contains(&rest.to_ascii_lowercase().as_str())
        {
            return false;
        }
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    s.chars().all(|c| !c.is_control() && c != '\u{feff}')
}

/// Whether a multi-line string can be a `|` / `|-` literal block and read back unchanged.
fn literal_ok(s: &str) -> bool {
    if !s.contains('\n') || s.ends_with("\n\n") || s.starts_with([' ', '\n']) {
        return false;
    }
    let body = s.strip_suffix('\n').unwrap_or(s);
    body.split('\n').all(|line| {
        // A line of spaces only would be read as an empty line; tabs and control characters
        // need escapes.
        (line.is_empty() || !line.trim().is_empty())
            && line.chars().all(|c| !c.is_control() && c != '\u{feff}')
    })
}

/// Writes ` |` or ` |-` and the lines of `s` indented by `indent`.
fn literal(out: &mut String, s: &str, indent: usize) {
    let (body, header) = match s.strip_suffix('\n') {
        Some(body) => (body, " |\n"),
        None => (s, " |-\n"),
    };
    out.push_str(header);
    for line in body.split('\n') {
        if !line.is_empty() {
            push_indent(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn strings_yaml_1_1_reads_as_booleans_numbers_or_null_are_quoted() {
        for s in [
            "off",
            "On",
            "YES",
            "no",
            "y",
            "N",
            "true",
            "null",
            "~",
            "1.0",
            "42",
            "0x1F",
            "1_000",
            "0o17",
            ".5",
            ".inf",
            "-.Inf",
            "+1",
            "-1",
            "1e3",
            "2026-01-01",
            "12:30",
            "=",
            "<<",
            "",
        ] {
            assert!(!plain_ok(s), "{s:?} must be quoted");
            let yaml = to_string(&json!({"k": s}));
            let back: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
            assert_eq!(back["k"], s, "{yaml}");
        }
        for s in ["high", "offline", "yes-man", "Forbid", ".spec.enabled", "a: b", "x #y", "-x", "ú…"] {
            let yaml = to_string(&json!({"k": s}));
            let back: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
            assert_eq!(back["k"], s, "{yaml}");
        }
        assert_eq!(to_string(&json!({"enum": ["off", "low", "high"]})), "enum:\n- 'off'\n- low\n- high\n");
        assert_eq!(to_string(&json!({"on": 1})), "'on': 1\n", "keys too");
    }

    #[test]
    fn structure_and_multi_line_strings_survive_a_round_trip() {
        let value = json!({
            "a": {"b": [1, 2.5, 1e21, true, null, {}, [], {"c": "d", "e": [["x", "y"], {"f": "g"}]}]},
            "text": "first line\n\nthird: line\n",
            "stripped": "one\ntwo",
            "tabbed": "a\tb\nc",
            "quote": "it's \"here\"",
            "empty": {},
        });
        let yaml = to_string(&value);
        let back: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(back["a"]["b"][2].as_f64(), Some(1e21), "{yaml}");
        let mut expected = value.clone();
        expected["a"]["b"][2] = back["a"]["b"][2].clone();
        assert_eq!(back, expected, "{yaml}");
        assert!(yaml.contains("text: |\n  first line\n\n  third: line\n"), "{yaml}");
        assert!(yaml.contains("stripped: |-\n  one\n  two\n"), "{yaml}");
    }
}
