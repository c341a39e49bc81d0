//! The TUI's state and what keys do to it. Pure: no I/O; actions for the cluster are
//! queued in [`App::outbox`] for the worker, so tests and the bench drive it directly.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use sympozium_api::SympoziumInstance;

use super::actions::{Action, ObjKind};
use super::chat;
use super::data::{Data, Update};
use super::edit::EditForm;
use super::views::{Ctx, Row, Table, View};
use crate::wizard::onboard::{OnboardFlow, onboarding, skill_choices};
use crate::wizard::pack::{PackChoice, PackFlow, activation};
use crate::wizard::{Answers, Outcome, Wizard};

/// Which wizard is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WizardKind {
    /// PersonaPack activation.
    Pack,
    /// Onboarding.
    Onboard,
}

/// What the keyboard is talking to.
pub enum Mode {
    /// The table.
    Normal,
    /// `/` command line.
    Command(String),
    /// A chat message for an instance.
    Chat {
        /// Namespace.
        ns: String,
        /// Instance.
        instance: String,
        /// Typed so far.
        text: String,
    },
    /// `y` to go ahead.
    Confirm {
        /// The question.
        question: String,
        /// What `y` does.
        action: Box<Action>,
    },
    /// A wizard.
    Wizard(Box<Wizard>, WizardKind),
    /// The instance edit modal.
    Edit(Box<EditForm>),
    /// A tool call waiting for approval: `y` allows, `n` refuses, Esc decides later.
    Approve(super::data::Approval),
    /// A scrollable text (describe, logs, events, help).
    Pager {
        /// Title.
        title: String,
        /// Text.
        body: String,
        /// First line shown.
        scroll: u16,
    },
}

/// Where the detail pane is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Hidden.
    Hidden,
    /// Right of the table.
    Side,
    /// Instead of the table.
    Full,
}

/// The whole UI state.
pub struct App {
    /// Watched lists.
    pub data: Data,
    /// Namespace shown when narrowed, and where new objects go (wizards) when no row says
    /// otherwise.
    pub ns: String,
    /// Show every namespace (the default unless `-n` or `/ns <namespace>` narrows it).
    pub all_namespaces: bool,
    /// Namespace the open pack wizard activates in (the selected pack's).
    wizard_ns: String,
    /// Current tab.
    pub view: View,
    /// Selected row.
    pub selected: usize,
    /// Channels/Pods drill-in filter.
    pub instance_filter: Option<String>,
    /// Detail pane.
    pub detail: Detail,
    /// Keyboard focus.
    pub mode: Mode,
    /// Status line: text and whether it is an error.
    pub status: Option<(String, bool)>,
    /// "Now" for ages.
    pub now: jiff::Timestamp,
    /// Set by `q`.
    pub quit: bool,
    /// Actions for the worker.
    pub outbox: Vec<Action>,
    /// Pre-fills the provider key in wizards.
    pub key_default: String,
    /// Bumped whenever a list changes (the table cache key).
    generation: u64,
    /// The current view's rows, kept until something they depend on changes: a key press
    /// must not rebuild thousands of rows several times over.
    cache: RefCell<Option<(TableKey, Rc<Table>)>>,
}

/// What a view's rows depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TableKey {
    generation: u64,
    view: View,
    ns: String,
    all_namespaces: bool,
    instance_filter: Option<String>,
    now: jiff::Timestamp,
}

impl App {
    /// A UI on namespace `ns`, showing Instances.
    pub fn new(ns: &str, now: jiff::Timestamp) -> Self {
        Self {
            data: Data::default(),
            ns: ns.into(),
            all_namespaces: false,
            wizard_ns: ns.into(),
            view: View::Instances,
            selected: 0,
            instance_filter: None,
            detail: Detail::Side,
            mode: Mode::Normal,
            status: None,
            now,
            quit: false,
            outbox: Vec::new(),
            key_default: String::new(),
            generation: 0,
            cache: RefCell::new(None),
        }
    }

    /// The current view's rows.
    pub fn table(&self) -> Rc<Table> {
        let key = TableKey {
            generation: self.generation,
            view: self.view,
            ns: self.ns.clone(),
            all_namespaces: self.all_namespaces,
            instance_filter: self.instance_filter.clone(),
            now: self.now,
        };
        if let Some((k, t)) = self.cache.borrow().as_ref()
            && *k == key
        {
            return t.clone();
        }
        let ctx = Ctx {
            data: &self.data,
            ns: (!self.all_namespaces).then_some(self.ns.as_str()),
            instance: self.instance_filter.as_deref(),
            now: self.now,
        };
        let table = Rc::new(self.view.table(&ctx));
        *self.cache.borrow_mut() = Some((key, table.clone()));
        table
    }

    /// The selected row.
    pub fn selection(&self) -> Option<Row> {
        let t = self.table();
        t.rows.get(self.selected.min(t.rows.len().saturating_sub(1))).cloned()
    }

    /// The instance object of a namespace/name.
    pub fn instance(&self, ns: &str, name: &str) -> Option<Arc<SympoziumInstance>> {
        self.data
            .instances
            .iter()
            .find(|i| i.metadata.name.as_deref() == Some(name) && i.metadata.namespace.as_deref() == Some(ns))
            .cloned()
    }

    /// Takes an update from the worker.
    pub fn update(&mut self, update: Update) {
        self.generation += 1;
        match self.data.apply(update) {
            Some(Update::Notice(n)) => self.status = Some((n, false)),
            Some(Update::Error(e)) => self.status = Some((e, true)),
            Some(Update::Text { title, body }) => self.mode = Mode::Pager { title, body, scroll: 0 },
            _ => {}
        }
        // An agent of this console's own chat waiting for a human comes first, unless the
        // user is in the middle of something else. Other runs' approvals (a chat app's, whose
        // users answer there) only show in the header; `A` opens them.
        if matches!(self.mode, Mode::Normal) {
            let own = self.data.approvals.iter().find(|a| {
                self.data.runs.iter().any(|r| {
                    r.metadata.name.as_deref() == Some(a.run.as_str())
                        && r.metadata.namespace.as_deref() == Some(a.ns.as_str())
                        && r.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get(chat::CONVERSATION))
                            .map(String::as_str)
                            == Some(chat::TUI_CONVERSATION)
                })
            });
            if let Some(a) = own {
                self.mode = Mode::Approve(a.clone());
            }
        }
    }

    fn answer(&mut self, approval: super::data::Approval, approved: bool) {
        self.data.approvals.retain(|a| a.request_id != approval.request_id);
        self.outbox.push(Action::Approve { approval, approved });
    }

    /// Switches to a tab.
    pub fn show(&mut self, view: View) {
        if view != self.view {
            self.selected = 0;
        }
        if !matches!(view, View::Channels | View::Pods | View::Runs) {
            self.instance_filter = None;
        }
        self.view = view;
    }

    fn kind(&self) -> Option<ObjKind> {
        Some(match self.view {
            View::Personas => ObjKind::Pack,
            View::Instances | View::Channels => ObjKind::Instance,
            View::Runs => ObjKind::Run,
            View::Policies => ObjKind::Policy,
            View::Skills => ObjKind::Skill,
            View::Schedules => ObjKind::Schedule,
            // Gateway rows are the instances serving a web endpoint.
            View::Gateway => ObjKind::Instance,
            View::Pods => ObjKind::Pod,
            View::McpServers => ObjKind::McpServer,
        })
    }

    /// A UI over every namespace; `home` is where wizards create objects when no selected
    /// row names a namespace.
    pub fn cluster_wide(home: &str, now: jiff::Timestamp) -> Self {
        Self { all_namespaces: true, ..Self::new(home, now) }
    }

    /// Opens the pack wizard over the packs of `ns` (the shown namespace when `None`), with
    /// `pack` already picked when given.
    pub fn open_pack_wizard(&mut self, ns: Option<&str>, pack: Option<&str>) {
        self.wizard_ns = ns.unwrap_or(&self.ns).to_string();
        let packs: Vec<PackChoice> = self
            .data
            .packs
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(self.wizard_ns.as_str()))
            .map(|p| PackChoice {
                name: p.metadata.name.clone().unwrap_or_default(),
                description: p.spec.description.clone().unwrap_or_default(),
                personas: p.spec.personas.len(),
            })
            .collect();
        let mut preset = Answers::default();
        if let Some(p) = pack {
            preset.set("pack", p);
        }
        let flow = PackFlow::new(packs, &self.key_default);
        self.mode = Mode::Wizard(Box::new(Wizard::new(Box::new(flow), preset)), WizardKind::Pack);
    }

    /// Opens the onboarding wizard.
    pub fn open_onboard_wizard(&mut self) {
        let flow = OnboardFlow::new(&self.ns, &self.key_default)
            .with_skills(skill_choices(self.data.skills.iter().map(|p| p.as_ref())));
        self.mode =
            Mode::Wizard(Box::new(Wizard::new(Box::new(flow), Answers::default())), WizardKind::Onboard);
    }

    /// Opens the chat line for an instance.
    pub fn open_chat(&mut self, ns: &str, instance: &str) {
        self.mode = Mode::Chat { ns: ns.into(), instance: instance.into(), text: String::new() };
    }

    /// Queues a chat message (the run's task carries the conversation so far).
    pub fn send_chat(&mut self, ns: &str, instance: &str, message: &str) {
        let Some(inst) = self.instance(ns, instance) else {
            self.status = Some((format!("instance \"{instance}\" not found in namespace \"{ns}\""), true));
            return;
        };
        if message.trim().is_empty() {
            self.status = Some(("the message is empty".into(), true));
            return;
        }
        let earlier = chat::runs_of(&self.data.runs, ns, instance);
        let task = chat::task(&earlier, message.trim());
        self.outbox.push(Action::Chat {
            ns: ns.into(),
            instance: inst,
            message: message.trim().into(),
            task,
        });
        self.status = Some((format!("sending to {instance}…"), false));
    }

    /// Handles one key.
    pub fn on_key(&mut self, key: KeyEvent) {
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.quit = true;
            return;
        }
        let mode = std::mem::replace(&mut self.mode, Mode::Normal);
        self.mode = match mode {
            Mode::Normal => {
                self.normal_key(key);
                return;
            }
            Mode::Command(text) => self.command_key(key, text),
            Mode::Chat { ns, instance, mut text } => match key.code {
                KeyCode::Esc => Mode::Normal,
                KeyCode::Enter => {
                    self.send_chat(&ns, &instance, &text);
                    Mode::Normal
                }
                KeyCode::Backspace => {
                    text.pop();
                    Mode::Chat { ns, instance, text }
                }
                KeyCode::Char(c) => {
                    text.push(c);
                    Mode::Chat { ns, instance, text }
                }
                _ => Mode::Chat { ns, instance, text },
            },
            Mode::Confirm { question, action } => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => {
                    self.outbox.push(*action);
                    Mode::Normal
                }
                KeyCode::Char('n') | KeyCode::Esc => Mode::Normal,
                _ => Mode::Confirm { question, action },
            },
            Mode::Approve(a) => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => {
                    self.answer(a, true);
                    Mode::Normal
                }
                KeyCode::Char('n') | KeyCode::Char('N') => {
                    self.answer(a, false);
                    Mode::Normal
                }
                KeyCode::Esc => {
                    self.status = Some(("approval postponed: A opens it again".into(), false));
                    Mode::Normal
                }
                _ => Mode::Approve(a),
            },
            Mode::Wizard(wizard, kind) => self.wizard_key(key, wizard, kind),
            Mode::Edit(form) => self.edit_key(key, form),
            Mode::Pager { title, body, scroll } => match key.code {
                KeyCode::Esc | KeyCode::Char('q') => Mode::Normal,
                KeyCode::Down | KeyCode::Char('j') => {
                    Mode::Pager { title, body, scroll: scroll.saturating_add(1) }
                }
                KeyCode::Up | KeyCode::Char('k') => {
                    Mode::Pager { title, body, scroll: scroll.saturating_sub(1) }
                }
                KeyCode::PageDown => Mode::Pager { title, body, scroll: scroll.saturating_add(20) },
                KeyCode::PageUp => Mode::Pager { title, body, scroll: scroll.saturating_sub(20) },
                _ => Mode::Pager { title, body, scroll },
            },
        };
    }

    fn normal_key(&mut self, key: KeyEvent) {
        let rows = self.table().rows.len();
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char(c @ '0'..='9') => {
                if let Some(v) = View::from_key(c) {
                    self.show(v);
                }
            }
            KeyCode::Tab | KeyCode::Right => self.cycle(1),
            KeyCode::BackTab | KeyCode::Left => self.cycle(View::ALL.len() - 1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(rows.saturating_sub(1))
            }
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Home | KeyCode::Char('g') => self.selected = 0,
            KeyCode::End | KeyCode::Char('G') => self.selected = rows.saturating_sub(1),
            KeyCode::Esc => self.show(View::Instances),
            KeyCode::Char('f') => {
                self.detail = if self.detail == Detail::Hidden { Detail::Side } else { Detail::Hidden }
            }
            KeyCode::Char('F') => {
                self.detail = if self.detail == Detail::Full { Detail::Side } else { Detail::Full }
            }
            KeyCode::Char('/') => self.mode = Mode::Command(String::new()),
            KeyCode::Char('?') => self.mode = super::slash::help(),
            KeyCode::Char('O') => self.open_onboard_wizard(),
            KeyCode::Char('A') => match self.data.approvals.first() {
                Some(a) => self.mode = Mode::Approve(a.clone()),
                None => self.status = Some(("no tool call waits for approval".into(), false)),
            },
            KeyCode::Char('r') => {
                self.status = Some(("lists are live (watched); nothing to refresh".into(), false))
            }
            KeyCode::Enter => self.enter(),
            KeyCode::Char('R') => match (self.view, self.selection()) {
                (View::Instances, Some(row)) => self.open_chat(&row.ns, &row.name),
                _ => self.status = Some(("select an instance (2) to run a task".into(), true)),
            },
            KeyCode::Char('x') => self.ask_delete(),
            KeyCode::Char('e') => match (self.view, self.selection()) {
                (View::Instances, Some(row)) => {
                    if let Some(inst) = self.instance(&row.ns, &row.name) {
                        let schedule = self
                            .data
                            .schedules
                            .iter()
                            .find(|s| {
                                s.metadata.namespace == inst.metadata.namespace
                                    && s.spec.instance_ref == row.name
                            })
                            .cloned();
                        self.mode = Mode::Edit(Box::new(EditForm::new(&inst, schedule.as_deref())));
                    }
                }
                // Whatever row is selected (a route or none), the gateway is one config.
                (View::Gateway, _) => match super::views::gateway_config(&self.data.configs) {
                    Some(c) => self.mode = Mode::Edit(Box::new(EditForm::gateway(c))),
                    None => {
                        self.status =
                            Some(("no SympoziumConfig to edit: `sympozium install` creates one".into(), true))
                    }
                },
                _ => self.status = Some(("e edits instances (2) and the gateway (8)".into(), true)),
            },
            KeyCode::Char('d') => {
                if let (Some(kind), Some(row)) = (self.kind(), self.selection()) {
                    self.outbox.push(Action::Describe { kind, ns: row.ns, name: row.name });
                }
            }
            KeyCode::Char('l') => match (self.kind(), self.selection()) {
                (Some(ObjKind::Pod), Some(row)) => {
                    self.outbox.push(Action::Logs { ns: row.ns, pod: row.name })
                }
                (Some(kind), Some(row)) => {
                    self.outbox.push(Action::Events { kind, ns: row.ns, name: row.name })
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn cycle(&mut self, by: usize) {
        let i = View::ALL.iter().position(|v| *v == self.view).unwrap_or(0);
        self.show(View::ALL[(i + by) % View::ALL.len()]);
    }

    fn enter(&mut self) {
        let Some(row) = self.selection() else {
            if self.view == View::Personas {
                self.open_pack_wizard(None, None);
            }
            return;
        };
        match self.view {
            View::Personas => self.open_pack_wizard(Some(&row.ns), Some(&row.name)),
            View::Instances => {
                self.instance_filter = Some(row.name.clone());
                self.view = View::Channels;
                self.selected = 0;
            }
            View::Runs => {
                let run = self.data.runs.iter().find(|r| {
                    r.metadata.name.as_deref() == Some(&row.name)
                        && r.metadata.namespace.as_deref() == Some(&row.ns)
                });
                if let Some(r) = run {
                    let status = r.status.clone().unwrap_or_default();
                    let body = match (status.result, status.error) {
                        (Some(res), _) => res,
                        (None, Some(err)) => format!("[error: {err}]"),
                        (None, None) => format!("no result yet (phase {})", super::views::runs_phase(r)),
                    };
                    self.mode = Mode::Pager { title: format!("result of {}", row.name), body, scroll: 0 };
                }
            }
            View::Policies => {
                let body = super::slash::features(self, &row.ns, &row.name);
                self.mode = Mode::Pager { title: format!("feature gates of {}", row.name), body, scroll: 0 };
            }
            _ => self.detail = Detail::Full,
        }
    }

    fn ask_delete(&mut self) {
        let (Some(kind), Some(row)) = (self.kind(), self.selection()) else { return };
        let (question, action) = match self.view {
            View::Personas => (
                format!("Disable team {} (removes its agents)? y/n", row.name),
                Action::Patch {
                    kind,
                    ns: row.ns,
                    name: row.name.clone(),
                    patch: serde_json::json!({"spec": {"enabled": false}}),
                    what: format!("personapack/{} disabled", row.name),
                },
            ),
            View::Channels => {
                self.status = Some(("remove a channel with /rmchannel <instance> <type>".into(), true));
                return;
            }
            View::Gateway => {
                self.status = Some((
                    "a route follows its instance's web-endpoint skill: remove the skill (e on Instances)"
                        .into(),
                    true,
                ));
                return;
            }
            _ => (
                format!("Delete {}/{}? y/n", kind.resource(), row.name),
                Action::Delete { kind, ns: row.ns, name: row.name },
            ),
        };
        self.mode = Mode::Confirm { question, action: Box::new(action) };
    }

    fn command_key(&mut self, key: KeyEvent, mut text: String) -> Mode {
        match key.code {
            KeyCode::Esc => Mode::Normal,
            KeyCode::Enter => {
                self.mode = Mode::Normal;
                super::slash::run(self, &text);
                std::mem::replace(&mut self.mode, Mode::Normal)
            }
            KeyCode::Tab => Mode::Command(super::slash::complete(&text)),
            KeyCode::Backspace => {
                text.pop();
                Mode::Command(text)
            }
            KeyCode::Char(c) => {
                text.push(c);
                Mode::Command(text)
            }
            _ => Mode::Command(text),
        }
    }

    fn wizard_key(&mut self, key: KeyEvent, mut wizard: Box<Wizard>, kind: WizardKind) -> Mode {
        match super::wizard_view::on_key(&mut wizard, key) {
            Outcome::Asking => Mode::Wizard(wizard, kind),
            Outcome::Cancelled => {
                self.status = Some(("wizard cancelled; nothing was written".into(), false));
                Mode::Normal
            }
            Outcome::Done => {
                match kind {
                    WizardKind::Pack => {
                        let act = activation(wizard.answers());
                        self.status = Some((format!("activating {}…", act.pack), false));
                        self.outbox
                            .push(Action::ActivatePack { ns: self.wizard_ns.clone(), activation: act });
                    }
                    WizardKind::Onboard => {
                        let o = onboarding(wizard.answers());
                        self.status = Some((format!("creating {}…", o.name), false));
                        self.outbox.push(Action::Onboard(o));
                    }
                }
                Mode::Normal
            }
        }
    }

    fn edit_key(&mut self, key: KeyEvent, mut form: Box<EditForm>) -> Mode {
        match form.on_key(key) {
            None => Mode::Edit(form),
            Some(None) => Mode::Normal,
            Some(Some(actions)) => {
                self.status = Some((format!("saving {}…", form.name), false));
                self.outbox.extend(actions);
                Mode::Normal
            }
        }
    }
}
