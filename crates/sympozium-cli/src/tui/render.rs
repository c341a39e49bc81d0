//! Drawing a frame from the state. Reads only [`App`]; never waits on anything.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row as TableRow, Table, Wrap};

use super::app::{App, Detail, Mode};
use super::data::Connection;
use super::views::{Tone, View};

fn tone_style(t: Tone) -> Style {
    match t {
        Tone::Normal => Style::default(),
        Tone::Good => Style::default().fg(Color::Green),
        Tone::Warn => Style::default().fg(Color::Yellow),
        Tone::Bad => Style::default().fg(Color::Red),
        Tone::Dim => Style::default().fg(Color::DarkGray),
    }
}

/// A rectangle of `pw`% × `ph`% centred in `r`.
pub fn centered(r: Rect, pw: u16, ph: u16) -> Rect {
    let w = r.width * pw / 100;
    let h = r.height * ph / 100;
    Rect { x: r.x + (r.width - w) / 2, y: r.y + (r.height - h) / 2, width: w, height: h }
}

/// Draws the whole UI.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let area = frame.area();
    let [header, tabs, body, footer] = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(area);
    draw_header(frame, header, app);
    draw_tabs(frame, tabs, app);
    match &app.mode {
        Mode::Pager { title, body: text, scroll } => {
            let block = Block::default().borders(Borders::ALL).title(format!(" {title} (Esc closes) "));
            frame.render_widget(
                Paragraph::new(text.as_str()).block(block).scroll((*scroll, 0)).wrap(Wrap { trim: false }),
                body,
            );
        }
        _ => draw_body(frame, body, app),
    }
    draw_footer(frame, footer, app);
    match &app.mode {
        Mode::Wizard(w, _) => super::wizard_view::draw(frame, centered(body, 80, 90), w),
        Mode::Approve(a) => {
            let r = centered(body, 70, 40);
            frame.render_widget(Clear, r);
            let block = Block::default()
                .borders(Borders::ALL)
                .title(" tool approval ")
                .border_style(Style::default().fg(Color::Yellow));
            let text = vec![
                Line::from(format!("{} ({}/{}) wants to use the tool", a.run, a.ns, a.instance)),
                Line::from(Span::styled(a.tool.clone(), Style::default().add_modifier(Modifier::BOLD))),
                Line::from(format!("with {}", a.arguments)),
                Line::from(""),
                Line::from("y allow · n refuse · Esc later"),
            ];
            frame.render_widget(Paragraph::new(text).block(block).wrap(Wrap { trim: true }), r);
        }
        Mode::Confirm { question, .. } => {
            let r = centered(body, 60, 30);
            frame.render_widget(Clear, r);
            let block = Block::default()
                .borders(Borders::ALL)
                .title(" confirm ")
                .border_style(Style::default().fg(Color::Red));
            frame.render_widget(Paragraph::new(question.as_str()).block(block).wrap(Wrap { trim: true }), r);
        }
        Mode::Edit(form) => {
            let r = centered(body, 80, 80);
            frame.render_widget(Clear, r);
            let mut lines: Vec<Line<'_>> = form
                .fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let style = if i == form.focus {
                        Style::default().fg(Color::Black).bg(Color::Cyan)
                    } else {
                        Style::default()
                    };
                    let value = if f.switch {
                        format!("[{}]", if f.value == "yes" { "x" } else { " " })
                    } else {
                        f.value.clone()
                    };
                    Line::from(vec![
                        Span::styled(format!("{:<22}", f.label), style),
                        Span::raw(" "),
                        Span::raw(value),
                    ])
                })
                .collect();
            if let Some(e) = &form.error {
                lines.push(Line::from(Span::styled(format!("✗ {e}"), Style::default().fg(Color::Red))));
            }
            lines.push(Line::from(""));
            lines.push(Line::from(Span::styled(
                "↑/↓ field · type to edit · Space switches · Enter saves · Esc cancels",
                Style::default().fg(Color::DarkGray),
            )));
            let block = Block::default().borders(Borders::ALL).title(format!(" edit {} ", form.name));
            frame.render_widget(Paragraph::new(lines).block(block), r);
        }
        _ => {}
    }
}

fn draw_header(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let ns = if app.all_namespaces { "all namespaces".to_string() } else { app.ns.clone() };
    let mut spans = vec![
        Span::styled(
            " Sympozium ",
            Style::default().fg(Color::Black).bg(Color::Cyan).add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!(" ns: {ns} │ ")),
    ];
    let bus = match &app.data.bus {
        None => None,
        Some(Connection::Connected) => Some(Span::styled(" │ bus ●", Style::default().fg(Color::Green))),
        Some(Connection::Connecting) => Some(Span::styled(" │ bus …", Style::default().fg(Color::Yellow))),
        Some(Connection::Disconnected(why)) => {
            Some(Span::styled(format!(" │ bus ⚠ {why}"), Style::default().fg(Color::Red)))
        }
    };
    spans.push(match &app.data.connection {
        Connection::Connected => Span::styled("● connected", Style::default().fg(Color::Green)),
        Connection::Connecting => Span::styled("○ connecting…", Style::default().fg(Color::Yellow)),
        Connection::Disconnected(why) => Span::styled(
            format!("⚠ DISCONNECTED — reconnecting ({why})"),
            Style::default().fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD),
        ),
    });
    spans.extend(bus);
    if !app.data.approvals.is_empty() {
        spans.push(Span::styled(
            format!(" │ ⚠ {} approval(s) waiting: A", app.data.approvals.len()),
            Style::default().fg(Color::Black).bg(Color::Yellow),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_tabs(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let mut spans = Vec::new();
    for v in View::ALL {
        let label = format!(" {} {} ", v.key(), v.title());
        let style = if v == app.view {
            Style::default().fg(Color::Black).bg(Color::Yellow).add_modifier(Modifier::BOLD)
        } else {
            Style::default().fg(Color::Gray)
        };
        spans.push(Span::styled(label, style));
    }
    if let Some(f) = &app.instance_filter {
        spans.push(Span::styled(format!("  (instance {f})"), Style::default().fg(Color::Yellow)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_body(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let (table_area, detail_area) = match app.detail {
        Detail::Hidden => (Some(area), None),
        Detail::Full => (None, Some(area)),
        Detail::Side => {
            let [l, r] = Layout::default()
                .direction(Direction::Horizontal)
                .constraints([Constraint::Percentage(60), Constraint::Percentage(40)])
                .areas(area);
            (Some(l), Some(r))
        }
    };
    if let Some(a) = table_area {
        draw_table(frame, a, app);
    }
    if let Some(a) = detail_area {
        let (title, lines) = super::detail::lines(app);
        let block = Block::default().borders(Borders::ALL).title(format!(" {title} "));
        frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), a);
    }
}

fn draw_table(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let table = app.table();
    let area = if table.banner.is_empty() {
        area
    } else {
        let height = u16::try_from(table.banner.len()).unwrap_or(u16::MAX).saturating_add(2);
        let [top, rest] = Layout::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Length(height), Constraint::Min(3)])
            .areas(area);
        let lines: Vec<Line<'_>> = table.banner.iter().map(|l| Line::from(l.as_str())).collect();
        let block = Block::default().borders(Borders::ALL).title(format!(" {} ", app.view.title()));
        frame.render_widget(
            Paragraph::new(lines).style(tone_style(table.banner_tone)).block(block).wrap(Wrap { trim: true }),
            top,
        );
        rest
    };
    let total = table.rows.len();
    let visible = area.height.saturating_sub(3) as usize;
    let selected = app.selected.min(total.saturating_sub(1));
    // Only the rows on screen are laid out: the list may hold thousands of runs.
    let first = selected.saturating_sub(visible.saturating_sub(1));
    let window = &table.rows[first.min(total)..(first + visible).min(total)];
    let mut widths: Vec<usize> = table.headers.iter().map(|h| h.chars().count()).collect();
    for r in window {
        for (i, c) in r.cells.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count()).min(48);
            }
        }
    }
    // Fit the columns into the pane: the widest columns give way first, the name last.
    let avail = area.width.saturating_sub(2) as usize;
    let spacing = 2 * widths.len().saturating_sub(1);
    while widths.iter().sum::<usize>() + spacing > avail {
        let widest = (1..widths.len()).max_by_key(|i| widths[*i]).filter(|i| widths[*i] > 6).unwrap_or(0);
        if widths[widest] <= 4 {
            break;
        }
        widths[widest] -= 1;
    }
    let header = TableRow::new(table.headers.iter().map(|h| Cell::from(*h)))
        .style(Style::default().fg(Color::Cyan).add_modifier(Modifier::BOLD));
    let rows = window.iter().enumerate().map(|(i, r)| {
        let style = if first + i == selected {
            Style::default().fg(Color::Black).bg(Color::Cyan)
        } else {
            tone_style(r.tone)
        };
        TableRow::new(r.cells.iter().map(|c| Cell::from(c.as_str()))).style(style)
    });
    let title = if app.view == View::Gateway {
        format!(" Routes [{total}] ")
    } else {
        format!(" {} [{}] ", app.view.title(), total)
    };
    let widget = Table::new(rows, widths.iter().map(|w| Constraint::Length(*w as u16)))
        .header(header)
        .column_spacing(2)
        .block(Block::default().borders(Borders::ALL).title(title));
    frame.render_widget(widget, area);
    if total == 0 {
        let hint = match app.view {
            View::Personas if app.all_namespaces => "no PersonaPacks in any namespace",
            View::Personas => "no PersonaPacks in this namespace",
            View::Gateway => "no web endpoints: add the web-endpoint skill to an instance",
            View::McpServers => "no MCPServers: `sympozium mcp-servers create` adds one",
            _ => "nothing here yet",
        };
        let r = Rect { x: area.x + 2, y: area.y + 2, width: area.width.saturating_sub(4), height: 1 };
        frame.render_widget(Paragraph::new(Span::styled(hint, Style::default().fg(Color::DarkGray))), r);
    }
}

fn draw_footer(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let line = match &app.mode {
        Mode::Command(text) => Line::from(vec![
            Span::styled("/", Style::default().fg(Color::Yellow)),
            Span::raw(text.clone()),
            Span::raw("█"),
        ]),
        Mode::Chat { instance, text, .. } => Line::from(vec![
            Span::styled(format!("message for {instance} › "), Style::default().fg(Color::Yellow)),
            Span::raw(text.clone()),
            Span::raw("█"),
        ]),
        _ => match &app.status {
            Some((text, true)) => {
                Line::from(Span::styled(format!("✗ {text}"), Style::default().fg(Color::Red)))
            }
            Some((text, false)) => Line::from(Span::styled(text.clone(), Style::default().fg(Color::Green))),
            None => Line::from(Span::styled(
                "Enter open · R chat · x delete · e edit · d describe · l logs · / command · ? help · q quit",
                Style::default().fg(Color::DarkGray),
            )),
        },
    };
    frame.render_widget(Paragraph::new(line), area);
}
