//! A wizard as plain line prompts (stdin not a terminal): each step printed with its
//! options, one line read per answer. Secrets are read like any line; nothing echoes them.

use std::io::{BufRead, Write};

use super::step::{Input, Outcome, Wizard};

/// Why a plain wizard stopped without finishing.
#[derive(Debug, thiserror::Error)]
pub enum PlainError {
    /// Input ended before the last step.
    #[error("input ended before the wizard was finished (at \"{0}\")")]
    Eof(String),
    /// The user declined at the confirmation.
    #[error("cancelled")]
    Cancelled,
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs `wizard` to the end, reading answers from `input` and prompting on `out`.
pub fn run(wizard: &mut Wizard, input: &mut impl BufRead, out: &mut impl Write) -> Result<(), PlainError> {
    writeln!(out, "{}", wizard.title())?;
    while let Some(step) = wizard.current() {
        writeln!(out)?;
        for line in &step.help {
            writeln!(out, "  {line}")?;
        }
        match &step.input {
            Input::Pick(choices) | Input::PickMany(choices) => {
                for (i, c) in choices.iter().enumerate() {
                    writeln!(out, "  {}) {}", i + 1, c.label)?;
                }
                let hint = if matches!(step.input, Input::PickMany(_)) {
                    " (e.g. 1,3; empty for none)"
                } else {
                    " [1]"
                };
                write!(out, "{}{hint}: ", step.title)?;
            }
            Input::Text { default, secret, .. } => {
                let shown = if default.is_empty() {
                    String::new()
                } else if *secret {
                    " [keep]".to_string()
                } else {
                    format!(" [{default}]")
                };
                write!(out, "{}{shown}: ", step.title)?;
            }
            Input::Confirm { default } => {
                write!(out, "{} [{}]: ", step.title, if *default { "Y/n" } else { "y/N" })?;
            }
        }
        out.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            return Err(PlainError::Eof(step.title.clone()));
        }
        let mut raw = line.trim_end_matches(['\n', '\r']).to_string();
        if raw.trim().is_empty()
            && let Input::Pick(choices) = &step.input
        {
            raw = choices.first().map(|c| c.value.clone()).unwrap_or_default();
        }
        match wizard.answer(&step, &raw) {
            Outcome::Cancelled => return Err(PlainError::Cancelled),
            Outcome::Done => break,
            Outcome::Asking => {
                if let Some(e) = wizard.error.take() {
                    writeln!(out, "  ✗ {e}")?;
                }
            }
        }
    }
    Ok(())
}
