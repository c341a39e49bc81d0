//! What a wizard step is, how an answer is checked, and the interaction state of a wizard
//! in progress. Input-agnostic: the TUI maps keys onto [`Wizard`], `sympozium onboard`
//! without a terminal reads lines and calls [`Step::accept`].

use std::collections::{BTreeMap, BTreeSet};

/// One option of a pick step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// What is stored in the answers.
    pub value: String,
    /// What the user sees.
    pub label: String,
}

impl Choice {
    /// An option whose label says more than its value.
    pub fn new(value: &str, label: &str) -> Self {
        Self { value: value.into(), label: label.into() }
    }
}

/// How an answer is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Anything, also empty.
    Any,
    /// Anything but empty.
    Required,
    /// A Kubernetes object name (DNS-1123 label).
    Name,
    /// An `http(s)://` URL.
    Url,
    /// An `http(s)://` URL or nothing.
    OptionalUrl,
    /// `owner/repo` or nothing.
    OptionalRepo,
    /// A 5-field cron expression.
    Cron,
}

/// Why an answer was refused, shown as `<field>: <problem>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Refusal {
    /// The name the user knows the answer by ([`Step::field`]).
    pub field: String,
    /// What is wrong with the answer.
    pub problem: Problem,
}

/// What is wrong with an answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A pick answered with neither a valid number nor a name.
    #[error("choose 1-{count} or one of the names")]
    NotAChoice {
        /// How many options there are.
        count: usize,
    },
    /// One item of a many-pick answer is not an option.
    #[error("\"{item}\" is not an option")]
    NotAnOption {
        /// The item as typed.
        item: String,
    },
    /// A confirm step answered with something other than yes or no.
    #[error("answer y or n")]
    NotYesOrNo,
    /// A required answer was empty.
    #[error("this cannot be empty")]
    Empty,
    /// Not a Kubernetes object name.
    #[error("use lower-case letters, digits and '-' (at most 63)")]
    InvalidName,
    /// Not an `http(s)://` URL.
    #[error("give an http:// or https:// URL")]
    InvalidUrl,
    /// Neither an `http(s)://` URL nor empty.
    #[error("give an http:// or https:// URL, or leave it empty")]
    InvalidOptionalUrl,
    /// Neither `owner/repo` nor empty.
    #[error("use owner/repo, or leave it empty")]
    InvalidRepo,
    /// Not a valid 5-field cron expression.
    #[error("{reason}")]
    InvalidCron {
        /// Which field is wrong and why.
        reason: String,
    },
}

/// What a step asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Exactly one of the options.
    Pick(Vec<Choice>),
    /// Any number of the options; the answer is their values joined by commas.
    PickMany(Vec<Choice>),
    /// Free text; an empty answer takes `default`.
    Text {
        /// Taken when the answer is empty.
        default: String,
        /// Shown as dots, never echoed.
        secret: bool,
        /// How the answer is checked.
        check: Check,
    },
    /// Yes or no; the answer is `yes` or `no`.
    Confirm {
        /// Taken when the answer is empty.
        default: bool,
    },
}

/// One question of a wizard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Where the answer is stored.
    pub key: String,
    /// The question.
    pub title: String,
    /// Lines shown under the question (hints, or the summary before confirming).
    pub help: Vec<String>,
    /// What kind of answer.
    pub input: Input,
}

impl Step {
    /// A pick step.
    pub fn pick(key: &str, title: &str, choices: Vec<Choice>) -> Self {
        Self { key: key.into(), title: title.into(), help: Vec::new(), input: Input::Pick(choices) }
    }

    /// A text step.
    pub fn text(key: &str, title: &str, default: &str, check: Check) -> Self {
        Self {
            key: key.into(),
            title: title.into(),
            help: Vec::new(),
            input: Input::Text { default: default.into(), secret: false, check },
        }
    }

    /// A text step whose answer is never shown.
    pub fn secret(key: &str, title: &str, default: &str, check: Check) -> Self {
        Self {
            key: key.into(),
            title: title.into(),
            help: Vec::new(),
            input: Input::Text { default: default.into(), secret: true, check },
        }
    }

    /// A yes/no step.
    pub fn confirm(key: &str, title: &str, default: bool) -> Self {
        Self { key: key.into(), title: title.into(), help: Vec::new(), input: Input::Confirm { default } }
    }

    /// The same step with hint lines.
    pub fn with_help(mut self, help: Vec<String>) -> Self {
        self.help = help;
        self
    }

    /// The name the user knows the answer by, for error messages: the last part of the key
    /// (`token:telegram:TELEGRAM_BOT_TOKEN` → `TELEGRAM_BOT_TOKEN`).
    pub fn field(&self) -> &str {
        self.key.rsplit(':').next().unwrap_or(&self.key)
    }

    /// Checks a raw answer and returns what is stored. Picks accept a value, a label or a
    /// 1-based number; many-picks a comma-separated list of those (empty = none). A refusal
    /// names the field and says why.
    pub fn accept(&self, raw: &str) -> Result<String, Refusal> {
        self.accept_value(raw).map_err(|problem| Refusal { field: self.field().to_string(), problem })
    }

    fn accept_value(&self, raw: &str) -> Result<String, Problem> {
        let raw = raw.trim();
        match &self.input {
            Input::Pick(choices) => {
                pick_one(choices, raw).ok_or(Problem::NotAChoice { count: choices.len() })
            }
            Input::PickMany(choices) => {
                let mut out = Vec::new();
                for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let v = pick_one(choices, part)
                        .ok_or_else(|| Problem::NotAnOption { item: part.to_string() })?;
                    if !out.contains(&v) {
                        out.push(v);
                    }
                }
                Ok(out.join(","))
            }
            Input::Text { default, check, .. } => {
                let value = if raw.is_empty() { default.trim() } else { raw };
                check_text(*check, value).map(|()| value.to_string())
            }
            Input::Confirm { default } => match raw.to_ascii_lowercase().as_str() {
                "" => Ok(yes_no(*default)),
                "y" | "yes" => Ok(yes_no(true)),
                "n" | "no" => Ok(yes_no(false)),
                _ => Err(Problem::NotYesOrNo),
            },
        }
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn pick_one(choices: &[Choice], raw: &str) -> Option<String> {
    if let Ok(n) = raw.parse::<usize>() {
        return choices.get(n.checked_sub(1)?).map(|c| c.value.clone());
    }
    choices
        .iter()
        .find(|c| c.value.eq_ignore_ascii_case(raw) || c.label.eq_ignore_ascii_case(raw))
        .map(|c| c.value.clone())
}

fn check_text(check: Check, value: &str) -> Result<(), Problem> {
    let url = |v: &str| v.starts_with("http://") || v.starts_with("https://");
    match check {
        Check::Any => Ok(()),
        Check::Required if value.is_empty() => Err(Problem::Empty),
        Check::Required => Ok(()),
        Check::Name => {
            let ok = !value.is_empty()
                && value.len() <= 63
                && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !value.starts_with('-')
                && !value.ends_with('-');
            if ok { Ok(()) } else { Err(Problem::InvalidName) }
        }
        Check::Url if url(value) => Ok(()),
        Check::Url => Err(Problem::InvalidUrl),
        Check::OptionalUrl if value.is_empty() || url(value) => Ok(()),
        Check::OptionalUrl => Err(Problem::InvalidOptionalUrl),
        Check::OptionalRepo => {
            let parts: Vec<_> = value.split('/').collect();
            if value.is_empty() || (parts.len() == 2 && parts.iter().all(|p| !p.is_empty())) {
                Ok(())
            } else {
                Err(Problem::InvalidRepo)
            }
        }
        Check::Cron => match sympozium_api::schedule::cron_problem(value) {
            None => Ok(()),
            Some(reason) => Err(Problem::InvalidCron { reason }),
        },
    }
}

/// The answers given so far, by step key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answers(BTreeMap<String, String>);

impl Answers {
    /// The answer to `key`, `""` when none.
    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map(String::as_str).unwrap_or("")
    }
    /// Whether `key` was answered.
    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
    /// Whether `key` was answered `yes`.
    pub fn yes(&self, key: &str) -> bool {
        self.get(key) == "yes"
    }
    /// Stores an answer.
    pub fn set(&mut self, key: &str, value: &str) {
        self.0.insert(key.into(), value.into());
    }
    /// Forgets an answer.
    pub fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }
    /// The many-pick answer `key` as a list.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.get(key).split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
    }
}

/// A wizard's questions: which steps apply depends on the answers so far (no base URL for
/// OpenAI, one token per chosen channel, …).
pub trait Flow: Send {
    /// The wizard's title.
    fn title(&self) -> &str;
    /// Every step that applies given `answers`, in order; answered ones included.
    fn steps(&self, answers: &Answers) -> Vec<Step>;
}

/// A wizard in progress: the flow, the answers, and the cursor/text of the current step.
pub struct Wizard {
    flow: Box<dyn Flow>,
    answers: Answers,
    /// Keys in the order they were answered (Esc walks back along it).
    order: Vec<String>,
    /// Highlighted option of a pick step.
    pub cursor: usize,
    /// Marked options of a many-pick step.
    pub marked: BTreeSet<usize>,
    /// Text typed into a text step.
    pub text: String,
    /// Why the last answer was refused.
    pub error: Option<String>,
}

/// What a key press did to a wizard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still asking.
    Asking,
    /// Every step answered and confirmed.
    Done,
    /// The user backed out of the first step, or declined the confirmation.
    Cancelled,
}

impl Wizard {
    /// A wizard over `flow` with some answers already given.
    pub fn new(flow: Box<dyn Flow>, preset: Answers) -> Self {
        // Preset answers are not in `order`, so Esc never walks back to them.
        let mut w = Self {
            flow,
            answers: preset,
            order: Vec::new(),
            cursor: 0,
            marked: BTreeSet::new(),
            text: String::new(),
            error: None,
        };
        w.reset_input();
        w
    }

    /// The wizard's title.
    pub fn title(&self) -> &str {
        self.flow.title()
    }

    /// The answers so far.
    pub fn answers(&self) -> &Answers {
        &self.answers
    }

    /// The step being asked, `None` when every step is answered.
    pub fn current(&self) -> Option<Step> {
        self.flow.steps(&self.answers).into_iter().find(|s| !self.answers.has(&s.key))
    }

    /// 1-based position of the current step (steps answered before the wizard opened, such
    /// as a pack picked from its row, are not counted). How many steps remain depends on the
    /// answers still to come, so no total is promised.
    pub fn progress(&self) -> usize {
        self.order.len() + 1
    }

    fn reset_input(&mut self) {
        self.cursor = 0;
        self.marked.clear();
        self.text.clear();
        self.error = None;
        if let Some(step) = self.current()
            && let Input::Confirm { default: false } = step.input
        {
            self.cursor = 1;
        }
    }

    /// Moves the highlight of a pick step.
    pub fn move_cursor(&mut self, down: bool) {
        let n = match self.current().map(|s| s.input) {
            Some(Input::Pick(c) | Input::PickMany(c)) => c.len(),
            Some(Input::Confirm { .. }) => 2,
            _ => return,
        };
        if n == 0 {
            return;
        }
        self.cursor = if down { (self.cursor + 1) % n } else { (self.cursor + n - 1) % n };
    }

    /// Marks or unmarks the highlighted option of a many-pick step.
    pub fn toggle(&mut self) {
        if let Some(Input::PickMany(_)) = self.current().map(|s| s.input)
            && !self.marked.remove(&self.cursor)
        {
            self.marked.insert(self.cursor);
        }
    }

    /// Types a character into a text step.
    pub fn type_char(&mut self, c: char) {
        if let Some(Input::Text { .. }) = self.current().map(|s| s.input) {
            self.text.push(c);
            self.error = None;
        }
    }

    /// Deletes the last typed character.
    pub fn backspace(&mut self) {
        self.text.pop();
    }

    /// Answers the current step with what is highlighted or typed.
    pub fn submit(&mut self) -> Outcome {
        let Some(step) = self.current() else { return Outcome::Done };
        let raw = match &step.input {
            Input::Pick(choices) => choices.get(self.cursor).map(|c| c.value.clone()).unwrap_or_default(),
            Input::PickMany(choices) => self
                .marked
                .iter()
                .filter_map(|i| choices.get(*i).map(|c| c.value.clone()))
                .collect::<Vec<_>>()
                .join(","),
            Input::Text { .. } => self.text.clone(),
            Input::Confirm { .. } => if self.cursor == 0 { "yes" } else { "no" }.into(),
        };
        self.answer(&step, &raw)
    }

    /// Answers the current step with `raw` (as typed on a plain prompt).
    pub fn answer(&mut self, step: &Step, raw: &str) -> Outcome {
        match step.accept(raw) {
            Err(e) => {
                self.error = Some(e.to_string());
                Outcome::Asking
            }
            Ok(value) => {
                if step.key == "confirm" && value == "no" {
                    return Outcome::Cancelled;
                }
                self.answers.set(&step.key, &value);
                self.order.push(step.key.clone());
                self.reset_input();
                if self.current().is_none() { Outcome::Done } else { Outcome::Asking }
            }
        }
    }

    /// Goes back one step; cancels at the first.
    pub fn back(&mut self) -> Outcome {
        match self.order.pop() {
            Some(key) => {
                self.answers.remove(&key);
                // Answers of steps that no longer apply go too, so they are asked afresh.
                let keep: BTreeSet<String> =
                    self.flow.steps(&self.answers).into_iter().map(|s| s.key).collect();
                let order = std::mem::take(&mut self.order);
                for k in order {
                    if keep.contains(&k) {
                        self.order.push(k);
                    } else {
                        self.answers.remove(&k);
                    }
                }
                self.reset_input();
                Outcome::Asking
            }
            None => Outcome::Cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn picks_take_numbers_values_and_labels() {
        let s = Step::pick("p", "P", vec![Choice::new("openai", "OpenAI"), Choice::new("ollama", "Ollama")]);
        assert_eq!(s.accept("2").unwrap(), "ollama");
        assert_eq!(s.accept("OpenAI").unwrap(), "openai");
        assert!(s.accept("3").is_err() && s.accept("0").is_err());
    }

    #[test]
    fn text_checks_and_defaults() {
        let s = Step::text("n", "N", "my-agent", Check::Name);
        assert_eq!(s.accept("").unwrap(), "my-agent");
        assert!(s.accept("My Agent").is_err());
        let r = Step::text("r", "R", "", Check::OptionalRepo);
        assert!(r.accept("").is_ok() && r.accept("a/b").is_ok() && r.accept("ab").is_err());
        let c = Step::confirm("c", "C", true);
        assert_eq!(c.accept("").unwrap(), "yes");
        assert_eq!(c.accept("N").unwrap(), "no");
    }

    #[test]
    fn refusals_name_the_field() {
        let n = Step::text("name", "Agent (instance) name", "", Check::Name);
        assert!(n.accept("My Agent").unwrap_err().to_string().starts_with("name: use lower-case"));
        let t = Step::secret("token:slack:SLACK_BOT_TOKEN", "Slack bot token", "", Check::Required);
        assert_eq!(t.accept("").unwrap_err().to_string(), "SLACK_BOT_TOKEN: this cannot be empty");
        let c = Step::text("heartbeat_cron", "Cron", "", Check::Cron);
        assert_eq!(c.accept(" */5 * * * * ").unwrap(), "*/5 * * * *");
        let e = c.accept("0 24 * * *").unwrap_err().to_string();
        assert!(e.starts_with("heartbeat_cron: ") && e.contains("hour field"), "{e}");
        let m = Step {
            key: "skills".into(),
            title: "Skills".into(),
            help: Vec::new(),
            input: Input::PickMany(vec![Choice::new("k8s-ops", "k8s-ops")]),
        };
        assert_eq!(m.accept("1, k8s-ops").unwrap(), "k8s-ops");
        assert_eq!(m.accept("nope").unwrap_err().to_string(), "skills: \"nope\" is not an option");
    }
}
