//! A wizard step on screen and the keys that answer it. Used by the TUI's wizards and by
//! `sympozium onboard` on a terminal.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::wizard::{Input, Outcome, Wizard};

/// Answers keys: arrows move, Space marks, typing fills text, Enter accepts, Esc goes back.
pub fn on_key(wizard: &mut Wizard, key: KeyEvent) -> Outcome {
    let text_step = matches!(wizard.current().map(|s| s.input), Some(Input::Text { .. }));
    match key.code {
        KeyCode::Esc => wizard.back(),
        KeyCode::Enter => wizard.submit(),
        KeyCode::Up => {
            wizard.move_cursor(false);
            Outcome::Asking
        }
        KeyCode::Down | KeyCode::Tab => {
            wizard.move_cursor(true);
            Outcome::Asking
        }
        KeyCode::Backspace => {
            wizard.backspace();
            Outcome::Asking
        }
        KeyCode::Char(c) if text_step => {
            wizard.type_char(c);
            Outcome::Asking
        }
        KeyCode::Char(' ') => {
            wizard.toggle();
            Outcome::Asking
        }
        KeyCode::Char('j') => {
            wizard.move_cursor(true);
            Outcome::Asking
        }
        KeyCode::Char('k') => {
            wizard.move_cursor(false);
            Outcome::Asking
        }
        KeyCode::Char('y') if matches!(wizard.current().map(|s| s.input), Some(Input::Confirm { .. })) => {
            wizard.cursor = 0;
            wizard.submit()
        }
        KeyCode::Char('n') if matches!(wizard.current().map(|s| s.input), Some(Input::Confirm { .. })) => {
            wizard.cursor = 1;
            wizard.submit()
        }
        _ => Outcome::Asking,
    }
}

/// The lines of the current step.
pub fn lines(wizard: &Wizard) -> Vec<Line<'static>> {
    let Some(step) = wizard.current() else { return vec![Line::from("done")] };
    let mut out = vec![
        Line::from(Span::styled(format!("Step {}", wizard.progress()), Style::default().fg(Color::DarkGray))),
        Line::from(Span::styled(step.title.clone(), Style::default().add_modifier(Modifier::BOLD))),
        Line::from(""),
    ];
    let highlight = Style::default().fg(Color::Black).bg(Color::Cyan);
    match &step.input {
        Input::Pick(choices) => {
            for (i, c) in choices.iter().enumerate() {
                let marker = if i == wizard.cursor { "▶ " } else { "  " };
                let style = if i == wizard.cursor { highlight } else { Style::default() };
                out.push(Line::from(Span::styled(format!("{marker}{}", c.label), style)));
            }
        }
        Input::PickMany(choices) => {
            for (i, c) in choices.iter().enumerate() {
                let mark = if wizard.marked.contains(&i) { "[x]" } else { "[ ]" };
                let style = if i == wizard.cursor { highlight } else { Style::default() };
                out.push(Line::from(Span::styled(format!("{mark} {}", c.label), style)));
            }
        }
        Input::Text { default, secret, .. } => {
            let shown = if *secret { "•".repeat(wizard.text.chars().count()) } else { wizard.text.clone() };
            out.push(Line::from(vec![
                Span::raw("> "),
                Span::raw(shown),
                Span::styled("█", Style::default().fg(Color::Cyan)),
            ]));
            if !default.is_empty() {
                let d = if *secret {
                    "(Enter keeps the given key)".to_string()
                } else {
                    format!("(Enter for {default})")
                };
                out.push(Line::from(Span::styled(d, Style::default().fg(Color::DarkGray))));
            }
        }
        Input::Confirm { .. } => {
            for (i, label) in ["Yes", "No"].iter().enumerate() {
                let marker = if i == wizard.cursor { "▶ " } else { "  " };
                let style = if i == wizard.cursor { highlight } else { Style::default() };
                out.push(Line::from(Span::styled(format!("{marker}{label}"), style)));
            }
        }
    }
    if !step.help.is_empty() {
        out.push(Line::from(""));
        for h in &step.help {
            out.push(Line::from(Span::styled(h.clone(), Style::default().fg(Color::Gray))));
        }
    }
    if let Some(e) = &wizard.error {
        out.push(Line::from(""));
        out.push(Line::from(Span::styled(format!("✗ {e}"), Style::default().fg(Color::Red))));
    }
    out.push(Line::from(""));
    let keys = match step.input {
        Input::PickMany(_) => "↑/↓ move · Space mark · Enter accept · Esc back",
        Input::Text { .. } => "type · Enter accept · Esc back",
        _ => "↑/↓ move · Enter accept · Esc back",
    };
    out.push(Line::from(Span::styled(keys, Style::default().fg(Color::DarkGray))));
    out
}

/// Draws the wizard in `area` (a modal over whatever is behind).
pub fn draw(frame: &mut Frame<'_>, area: Rect, wizard: &Wizard) {
    frame.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {} ", wizard.title()))
        .border_style(Style::default().fg(Color::Cyan));
    frame.render_widget(Paragraph::new(lines(wizard)).block(block).wrap(Wrap { trim: false }), area);
}
