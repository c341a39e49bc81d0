//! The terminal UI (`sympozium` with no command, or `sympozium tui`): a k9s-style console
//! over watched lists. The UI loop only draws and handles keys; a worker task owns every
//! Kubernetes call ([`worker`]) and talks to it through messages ([`data::Update`],
//! [`actions::Action`]).

pub mod actions;
pub mod app;
pub mod bus;
pub mod chat;
pub mod data;
pub mod detail;
pub mod edit;
pub mod render;
pub mod slash;
pub mod views;
pub mod wizard_view;
pub mod worker;

use std::path::PathBuf;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyEvent, KeyEventKind};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use self::actions::Action;
use self::app::App;
use self::data::{Connection, Update};
use crate::cli::Cli;

/// Finds a client (retrying every 5 s while there is none) and runs the worker on it.
async fn connect_and_work(
    kubeconfig: Option<PathBuf>,
    tx: UnboundedSender<Update>,
    actions: UnboundedReceiver<Action>,
) {
    loop {
        // Building a client does not contact the cluster; the watches find out whether it answers.
        match crate::client_for(kubeconfig.as_deref()).await.map_err(|e| format!("{e:#}")) {
            Ok((c, _)) => return worker::run(c, tx, actions).await,
            Err(e) => {
                if tx.send(Update::Connection(Connection::Disconnected(e))).is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// Key presses from the terminal, read on a thread of their own (reading blocks); `None`
/// when the terminal was resized (a redraw is due).
fn keys() -> UnboundedReceiver<Option<KeyEvent>> {
    let (tx, rx) = unbounded_channel();
    std::thread::spawn(move || {
        while let Ok(ev) = event::read() {
            let sent = match ev {
                Event::Key(k) if k.kind != KeyEventKind::Release => tx.send(Some(k)),
                Event::Resize(..) => tx.send(None),
                _ => Ok(()),
            };
            if sent.is_err() {
                return;
            }
        }
    });
    rx
}

/// Runs the TUI until the user quits.
pub async fn run(cli: &Cli) -> anyhow::Result<i32> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "the TUI needs a terminal (stdin and stdout); for scripts use the sub-commands, see `sympozium --help`"
        );
    }
    let mut terminal =
        ratatui::try_init().map_err(|e| anyhow::anyhow!("cannot open the terminal UI: {e}"))?;
    let (tx, mut updates) = unbounded_channel();
    let (actions_tx, actions_rx) = unbounded_channel();
    let (answers_tx, answers_rx) = unbounded_channel();
    let bus_task = cli
        .nats_url
        .clone()
        .filter(|u| !u.is_empty())
        .map(|url| tokio::spawn(bus::run(url, cli.nats_creds.clone(), tx.clone(), answers_rx)));
    let worker = tokio::spawn(connect_and_work(cli.kubeconfig.clone(), tx, actions_rx));
    // Like the original: every namespace unless -n narrows it; wizards create objects in
    // the kubeconfig context's namespace.
    let mut app = match &cli.namespace {
        Some(ns) => App::new(ns, jiff::Timestamp::now()),
        None => App::cluster_wide(&cli.effective_namespace(), jiff::Timestamp::now()),
    };
    let mut keys = keys();
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    let result = loop {
        if let Err(e) = terminal.draw(|f| render::draw(f, &app)) {
            break Err(e.into());
        }
        tokio::select! {
            Some(key) = keys.recv() => {
                if let Some(key) = key {
                    app.on_key(key);
                }
            }
            Some(update) = updates.recv() => {
                app.update(update);
                // Take everything already queued before drawing again.
                while let Ok(more) = updates.try_recv() {
                    app.update(more);
                }
            }
            _ = clock.tick() => app.now = jiff::Timestamp::now(),
        }
        for action in app.outbox.drain(..) {
            match action {
                Action::Approve { approval, approved } if bus_task.is_some() => {
                    let _ = answers_tx.send(bus::Answer { approval, approved });
                }
                other => {
                    let _ = actions_tx.send(other);
                }
            }
        }
        if app.quit {
            break Ok(0);
        }
    };
    ratatui::restore();
    worker.abort();
    if let Some(b) = bus_task {
        b.abort();
    }
    result
}
