//! Rendering listings as a table (the default), JSON or YAML.

use std::fmt::Write as _;
use std::io::Write as _;

/// Writes to stdout; a closed pipe (`sympozium … | head`) ends output quietly instead of
/// crashing.
pub fn write_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    if out.write_all(text.as_bytes()).and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

/// `print!` that tolerates a closed pipe.
macro_rules! emit {
    ($($arg:tt)*) => { $crate::output::write_stdout(&format!($($arg)*)) };
}
/// `println!` that tolerates a closed pipe.
macro_rules! emitln {
    ($($arg:tt)*) => { $crate::output::write_stdout(&format!("{}\n", format!($($arg)*))) };
}
pub(crate) use {emit, emitln};

use clap::ValueEnum;
use serde::Serialize;

/// Output formats of listings and `get`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Renders rows under `headers` as aligned columns.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths.get(i).copied().unwrap_or(0);
            let _ = write!(text, "{cell:<pad$}   ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// Renders `value` as JSON or YAML.
pub fn document(value: &impl Serialize, format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Yaml => serde_yaml::to_string(value)?,
        Format::Json | Format::Table => format!("{}\n", serde_json::to_string_pretty(value)?),
    })
}

/// A Kubernetes-style age: `45s`, `12m`, `3h`, `5d`.
pub fn age(created: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    let Some(t) = created else { return "<unknown>".into() };
    let secs = jiff::Timestamp::now().duration_since(t.0).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let t = table(
            &["NAME", "PHASE"],
            &[vec!["a-long-name".into(), "Running".into()], vec!["b".into(), "".into()]],
        );
        assert_eq!(t, "NAME          PHASE\na-long-name   Running\nb\n");
    }
}
