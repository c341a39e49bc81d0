//! Progress for commands that wait (install, dev up): on a terminal a spinner per step that
//! turns into a tick with the step's duration; elsewhere (CI logs, pipes) one plain line per
//! step, so logs stay readable and free of control characters.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Steps of one command, shown on stderr.
#[derive(Debug)]
pub struct Progress {
    current: Option<(ProgressBar, String, Instant)>,
    terminal: bool,
    quiet: bool,
}

impl Progress {
    /// Progress on stderr: spinners on a terminal, plain lines otherwise.
    pub fn stderr() -> Self {
        Self { current: None, terminal: std::io::stderr().is_terminal(), quiet: false }
    }

    /// Progress that only animates on a terminal and prints nothing otherwise (for commands
    /// whose plain output must stay just the result).
    pub fn terminal_only() -> Self {
        let terminal = std::io::stderr().is_terminal();
        Self { current: None, terminal, quiet: !terminal }
    }

    /// Finishes the running step and starts `text`.
    pub fn step(&mut self, text: &str) {
        self.done();
        if self.quiet {
            return;
        }
        if !self.terminal {
            eprintln!("• {text}");
            return;
        }
        let bar = ProgressBar::new_spinner();
        let style = ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_message(text.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        self.current = Some((bar, text.to_string(), Instant::now()));
    }

    /// Finishes the running step (a tick and its duration on a terminal).
    pub fn done(&mut self) {
        if let Some((bar, text, started)) = self.current.take() {
            bar.set_style(
                ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.finish_with_message(format!("✓ {text} ({:.1}s)", started.elapsed().as_secs_f64()));
        }
    }

    /// Stops the running step without a tick (the command failed there).
    pub fn abandon(&mut self) {
        if let Some((bar, text, _)) = self.current.take() {
            bar.set_style(
                ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.abandon_with_message(format!("✗ {text}"));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // Leaving a step unfinished means the command gave up during it.
        self.abandon();
    }
}
