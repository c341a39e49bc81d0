//! The onboarding wizard: namespace, instance name, provider, base URL, key, model,
//! GitHub repository, instructions, channel and token, default policy, agent sandbox,
//! heartbeat, confirm. Shared by `sympozium onboard` and the TUI's `O` / `/onboard`.

use std::collections::BTreeMap;

use super::providers::{self, channel_token_steps, masked};
use super::step::{Answers, Check, Choice, Flow, Step};

/// What onboarding writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Onboarding {
    /// Namespace everything goes into.
    pub namespace: String,
    /// Instance name.
    pub name: String,
    /// Provider (`authRefs[].provider`).
    pub provider: String,
    /// Credential Secret data (`<name>-<provider>-key`).
    pub credentials: BTreeMap<String, String>,
    /// `agents.default.baseURL`.
    pub base_url: Option<String>,
    /// `agents.default.model`.
    pub model: String,
    /// Repository of the `github-gitops` skill.
    pub repo: Option<String>,
    /// Instructions: the memory system prompt, and the heartbeat's objective.
    pub instructions: Option<String>,
    /// Channel and its token Secret data (`<name>-<type>-secret`).
    pub channel: Option<(String, BTreeMap<String, String>)>,
    /// Create and use `default-policy`.
    pub policy: bool,
    /// Run in an agent sandbox.
    pub sandbox: bool,
    /// Heartbeat cron; `None` = no heartbeat.
    pub heartbeat: Option<String>,
}

/// Heartbeat presets: cron, label.
const HEARTBEATS: &[(&str, &str)] = &[
    ("0 * * * *", "Hourly"),
    ("*/30 * * * *", "Every 30 minutes"),
    ("0 */6 * * *", "Every 6 hours"),
    ("0 9 * * *", "Daily at 09:00"),
    ("off", "No heartbeat"),
];

/// The onboarding wizard.
pub struct OnboardFlow {
    namespace: String,
    key_default: String,
}

impl OnboardFlow {
    /// A wizard proposing `namespace`; `key_default` pre-fills the provider key.
    pub fn new(namespace: &str, key_default: &str) -> Self {
        Self { namespace: namespace.into(), key_default: key_default.into() }
    }
}

impl Flow for OnboardFlow {
    fn title(&self) -> &str {
        "Onboard an agent"
    }

    fn steps(&self, a: &Answers) -> Vec<Step> {
        let mut out = vec![
            Step::text("namespace", "Namespace", &self.namespace, Check::Name),
            Step::text("name", "Agent (instance) name", "my-agent", Check::Name),
        ];
        if !a.has("name") {
            return out;
        }
        out.extend(providers::steps(a, &self.key_default));
        if !a.has("model") {
            return out;
        }
        out.push(providers::repo_step());
        out.push(Step::text("instructions", "Instructions for the agent (optional)", "", Check::Any));
        let mut channels = vec![Choice::new("none", "No channel")];
        channels.extend(providers::channel_choices());
        out.push(Step::pick("channel", "Chat channel", channels));
        if !a.has("channel") {
            return out;
        }
        if a.get("channel") != "none" {
            out.extend(channel_token_steps(&[a.get("channel").to_string()]));
        }
        out.push(Step::confirm("policy", "Create and apply the default policy (default-policy)?", true));
        out.push(Step::confirm("sandbox", "Run the agent in an agent sandbox (gVisor/Kata)?", false));
        out.push(Step::pick(
            "heartbeat",
            "Heartbeat",
            HEARTBEATS.iter().map(|(v, l)| Choice::new(v, l)).collect(),
        ));
        out.push(Step::confirm("confirm", "Create it?", true).with_help(summary(&onboarding(a))));
        out
    }
}

/// The onboarding the answers describe.
pub fn onboarding(a: &Answers) -> Onboarding {
    let some = |k: &str| Some(a.get(k).trim().to_string()).filter(|v| !v.is_empty());
    let channel = a.get("channel");
    Onboarding {
        namespace: a.get("namespace").into(),
        name: a.get("name").into(),
        provider: a.get("provider").into(),
        credentials: providers::credentials(a),
        base_url: some("base_url"),
        model: a.get("model").into(),
        repo: some("repo"),
        instructions: some("instructions"),
        channel: (!channel.is_empty() && channel != "none")
            .then(|| (channel.to_string(), providers::channel_tokens(a, channel))),
        policy: a.yes("policy"),
        sandbox: a.yes("sandbox"),
        heartbeat: some("heartbeat").filter(|h| h != "off"),
    }
}

/// The lines shown before confirming; secrets masked.
pub fn summary(o: &Onboarding) -> Vec<String> {
    let or = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_string());
    let mut lines = vec![
        format!("Instance:     {}/{}", o.namespace, o.name),
        format!("Provider:     {} ({})", o.provider, o.model),
        format!("Base URL:     {}", or(&o.base_url, "(default)")),
    ];
    for (k, v) in &o.credentials {
        let shown = if k.contains("REGION") { v.clone() } else { masked(v) };
        lines.push(format!("{k}: {shown} → Secret {}-{}-key", o.name, o.provider));
    }
    lines.push(format!("Repository:   {}", or(&o.repo, "(none)")));
    lines.push(format!("Instructions: {}", or(&o.instructions, "(none)")));
    lines.push(format!(
        "Channel:      {}",
        o.channel.as_ref().map(|(t, _)| t.clone()).unwrap_or_else(|| "(none)".into())
    ));
    lines.push(format!("Policy:       {}", if o.policy { "default-policy" } else { "(none)" }));
    lines.push(format!("Sandbox:      {}", if o.sandbox { "yes" } else { "no" }));
    lines.push(format!("Heartbeat:    {}", or(&o.heartbeat, "(none)")));
    lines
}
