//! The PersonaPack activation wizard: pick a pack, provider, base URL, key, model, GitHub
//! repository, team task, agent sandbox, channels with tokens, heartbeat override, confirm.
//! Its answers become an [`Activation`], which `apply::activate_pack` writes (the same
//! function `sympozium packs activate` uses).

use std::collections::BTreeMap;

use super::providers::{self, channel_choices, channel_token_steps, masked};
use super::step::{Answers, Check, Choice, Flow, Step};

/// A pack as the wizard offers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackChoice {
    /// Pack name.
    pub name: String,
    /// One line about it.
    pub description: String,
    /// Number of personas.
    pub personas: usize,
}

/// What activating a pack writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Activation {
    /// Pack name.
    pub pack: String,
    /// Provider (`authRefs[].provider`).
    pub provider: String,
    /// Credential Secret data (`<pack>-<provider>-key`); empty for keyless providers.
    pub credentials: BTreeMap<String, String>,
    /// `spec.baseURL`; `None` leaves it as it is.
    pub base_url: Option<String>,
    /// Model for every persona that names none.
    pub model: Option<String>,
    /// `skillParams["github-gitops"].repo`.
    pub repo: Option<String>,
    /// `spec.taskOverride`.
    pub task: Option<String>,
    /// `spec.agentSandbox.enabled`.
    pub sandbox: bool,
    /// `spec.sandbox.enabled`: the sandbox container for every persona's runs.
    pub sandbox_container: bool,
    /// Channels for every persona, with the token Secret data of each.
    pub channels: Vec<(String, BTreeMap<String, String>)>,
    /// Interval (`30m`, `1h`, …) every persona's schedule gets; `None` keeps the pack's.
    pub heartbeat: Option<String>,
}

/// Heartbeat overrides offered (`keep` = the pack's own schedules).
const HEARTBEATS: &[(&str, &str)] = &[
    ("keep", "Keep each persona's schedule"),
    ("15m", "Every 15 minutes"),
    ("30m", "Every 30 minutes"),
    ("1h", "Hourly"),
    ("6h", "Every 6 hours"),
    ("24h", "Daily"),
];

/// The activation wizard over the packs of a namespace.
pub struct PackFlow {
    packs: Vec<PackChoice>,
    key_default: String,
}

impl PackFlow {
    /// A wizard offering `packs`; `key_default` pre-fills the provider key.
    pub fn new(packs: Vec<PackChoice>, key_default: &str) -> Self {
        Self { packs, key_default: key_default.into() }
    }
}

impl Flow for PackFlow {
    fn title(&self) -> &str {
        "Activate a PersonaPack"
    }

    fn steps(&self, a: &Answers) -> Vec<Step> {
        let mut out = vec![Step::pick(
            "pack",
            "Which team?",
            self.packs
                .iter()
                .map(|p| {
                    Choice::new(&p.name, &format!("{} ({} personas) {}", p.name, p.personas, p.description))
                })
                .collect(),
        )];
        if !a.has("pack") {
            return out;
        }
        out.extend(providers::steps(a, &self.key_default));
        if !a.has("model") {
            return out;
        }
        out.push(providers::repo_step());
        out.push(
            Step::text("task", "Team task (optional)", "", Check::Any).with_help(vec![
                "Put in front of every persona's scheduled task as the TEAM OBJECTIVE.".into(),
            ]),
        );
        out.push(Step::confirm("sandbox", "Run the agents in an agent sandbox (gVisor/Kata)?", false));
        out.push(
            Step {
                key: "channels".into(),
                title: "Chat channels for the team (space marks, Enter accepts; none is fine)".into(),
                help: Vec::new(),
                input: super::step::Input::PickMany(channel_choices()),
            }
            .with_help(vec!["Plain prompt: comma-separated numbers or names, empty for none.".into()]),
        );
        if !a.has("channels") {
            return out;
        }
        out.extend(channel_token_steps(&a.list("channels")));
        out.push(Step::pick(
            "heartbeat",
            "Heartbeat",
            HEARTBEATS.iter().map(|(v, l)| Choice::new(v, l)).collect(),
        ));
        out.push(Step::confirm("confirm", "Activate?", true).with_help(summary(&activation(a))));
        out
    }
}

/// The activation the answers describe.
pub fn activation(a: &Answers) -> Activation {
    let some = |k: &str| Some(a.get(k).trim().to_string()).filter(|v| !v.is_empty());
    Activation {
        pack: a.get("pack").into(),
        provider: a.get("provider").into(),
        credentials: providers::credentials(a),
        base_url: providers::provider(a.get("provider"))
            .base_url
            .map(|_| a.get("base_url").trim().to_string()),
        model: some("model"),
        repo: some("repo"),
        task: some("task"),
        sandbox: a.yes("sandbox"),
        // The wizard asks about agent-sandbox mode only (as the original's did).
        sandbox_container: false,
        channels: a
            .list("channels")
            .into_iter()
            .map(|t| (t.clone(), providers::channel_tokens(a, &t)))
            .collect(),
        heartbeat: some("heartbeat").filter(|h| h != "keep"),
    }
}

/// The lines shown before confirming; secrets masked.
pub fn summary(act: &Activation) -> Vec<String> {
    let or = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_string());
    let mut lines = vec![
        format!("Pack:       {}", act.pack),
        format!("Provider:   {}", act.provider),
        format!(
            "Base URL:   {}",
            act.base_url.clone().filter(|u| !u.is_empty()).unwrap_or_else(|| "(default)".into())
        ),
        format!("Model:      {}", or(&act.model, "(each persona's own)")),
    ];
    for (k, v) in &act.credentials {
        let shown = if k.contains("REGION") { v.clone() } else { masked(v) };
        lines.push(format!("{k}: {shown} → Secret {}-{}-key", act.pack, act.provider));
    }
    lines.push(format!("Repository: {}", or(&act.repo, "(none)")));
    lines.push(format!("Team task:  {}", or(&act.task, "(none)")));
    lines.push(format!("Sandbox:    {}", if act.sandbox { "yes" } else { "no" }));
    let channels: Vec<_> = act.channels.iter().map(|(t, _)| t.as_str()).collect();
    lines.push(format!(
        "Channels:   {}",
        if channels.is_empty() { "(none)".into() } else { channels.join(", ") }
    ));
    lines.push(format!("Heartbeat:  {}", or(&act.heartbeat, "(each persona's own)")));
    lines
}
