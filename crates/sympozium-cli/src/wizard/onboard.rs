//! The onboarding wizard: namespace, instance name, provider, base URL, key, model,
//! GitHub repository, instructions, skills (the SkillPacks on the cluster), channel and
//! the Secret of its token (an existing one, or one made from a token typed here), default
//! policy, agent sandbox, heartbeat (a preset or any cron, and its task), confirm. Shared by
//! `sympozium onboard` and the TUI's `O` / `/onboard`.

use std::collections::BTreeMap;

use sympozium_api::SkillPack;

use super::providers::{self, channel_token_steps, masked};
use super::step::{Answers, Check, Choice, Flow, Input, Step};

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
    /// SkillPacks picked; `None` when none were offered (the default set is used).
    pub skills: Option<Vec<String>>,
    /// Channel and the token Secret data to write (`<name>-<type>-secret`); empty data
    /// when the tokens are in [`Onboarding::channel_secret`] or the channel needs none.
    pub channel: Option<(String, BTreeMap<String, String>)>,
    /// An existing Secret holding the channel's tokens (nothing is written then).
    pub channel_secret: Option<String>,
    /// Create and use `default-policy`.
    pub policy: bool,
    /// Run in an agent sandbox.
    pub sandbox: bool,
    /// Heartbeat cron; `None` = no heartbeat.
    pub heartbeat: Option<String>,
    /// The heartbeat's task; `None` = review memory, with the instructions as objective.
    pub heartbeat_task: Option<String>,
}

impl Onboarding {
    /// The Secret the channel's `configRef` names, `None` without a channel or tokens.
    pub fn channel_secret_name(&self) -> Option<String> {
        let (ty, tokens) = self.channel.as_ref()?;
        match &self.channel_secret {
            Some(existing) => Some(existing.clone()),
            None => (!tokens.is_empty()).then(|| format!("{}-{ty}-secret", self.name)),
        }
    }
}

/// Heartbeat presets: cron, label.
const HEARTBEATS: &[(&str, &str)] = &[
    ("0 * * * *", "Hourly"),
    ("*/30 * * * *", "Every 30 minutes"),
    ("0 */6 * * *", "Every 6 hours"),
    ("0 9 * * *", "Daily at 09:00"),
    ("off", "No heartbeat"),
    ("custom", "Another schedule (a cron expression)"),
];

/// The onboarding wizard.
pub struct OnboardFlow {
    namespace: String,
    key_default: String,
    skills: Vec<Choice>,
}

impl OnboardFlow {
    /// A wizard proposing `namespace`; `key_default` pre-fills the provider key.
    pub fn new(namespace: &str, key_default: &str) -> Self {
        Self { namespace: namespace.into(), key_default: key_default.into(), skills: Vec::new() }
    }

    /// The same wizard offering these SkillPacks (name, one line about it); with none the
    /// skills step is not asked and the default skills are used.
    pub fn with_skills(mut self, skills: Vec<(String, String)>) -> Self {
        self.skills = skills
            .into_iter()
            .map(|(name, about)| {
                let label = if about.is_empty() { name.clone() } else { format!("{name}: {about}") };
                Choice::new(&name, &label)
            })
            .collect();
        self
    }
}

/// The skills step's options from the SkillPacks visible: one per name (a pack in the
/// instance's namespace and one in the system namespace are the same choice), sorted,
/// each with its category, or else its skills' names. The memory skill is always added,
/// so it is not offered.
pub fn skill_choices<'a>(packs: impl IntoIterator<Item = &'a SkillPack>) -> Vec<(String, String)> {
    let mut out = BTreeMap::new();
    for p in packs {
        let Some(name) = p.metadata.name.clone() else { continue };
        if name == "memory" {
            continue;
        }
        let about =
            p.spec.category.clone().unwrap_or_else(|| {
                p.spec.skills.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            });
        out.entry(name).or_insert(about);
    }
    out.into_iter().collect()
}

/// Skills an onboarded agent gets when the wizard offered none to pick.
pub const DEFAULT_SKILLS: &[&str] = &["k8s-ops", "llmfit"];

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
        if !self.skills.is_empty() {
            out.push(
                Step {
                    key: "skills".into(),
                    title: "Skills (space marks, Enter accepts; none is fine)".into(),
                    help: Vec::new(),
                    input: Input::PickMany(self.skills.clone()),
                }
                .with_help(vec![
                    "SkillPacks on the cluster. The memory skill is always added.".into(),
                    "Plain prompt: comma-separated numbers or names, empty for none.".into(),
                ]),
            );
        }
        let mut channels = vec![Choice::new("none", "No channel")];
        channels.extend(providers::channel_choices());
        out.push(Step::pick("channel", "Chat channel", channels));
        if !a.has("channel") {
            return out;
        }
        let channel = a.get("channel").to_string();
        if channel != "none" && !providers::channel_token_keys(&channel).is_empty() {
            let secret = format!("{}-{channel}-secret", a.get("name"));
            out.push(Step::pick(
                "channel_secret_source",
                "Where is the channel's token?",
                vec![
                    Choice::new("new", &format!("I'll type it now (stored in Secret {secret})")),
                    Choice::new("existing", "In an existing Secret"),
                ],
            ));
            if !a.has("channel_secret_source") {
                return out;
            }
            if a.get("channel_secret_source") == "existing" {
                let keys: Vec<_> = providers::channel_token_keys(&channel).iter().map(|(k, _)| *k).collect();
                out.push(
                    Step::text("channel_secret", "Secret with the channel's token", "", Check::Name)
                        .with_help(vec![format!(
                            "A Secret in namespace {} with the key(s) {}.",
                            a.get("namespace"),
                            keys.join(", ")
                        )]),
                );
            } else {
                out.extend(channel_token_steps(&[channel]));
            }
        }
        out.push(Step::confirm("policy", "Create and apply the default policy (default-policy)?", true));
        out.push(Step::confirm("sandbox", "Run the agent in an agent sandbox (gVisor/Kata)?", false));
        out.push(Step::pick(
            "heartbeat",
            "Heartbeat",
            HEARTBEATS.iter().map(|(v, l)| Choice::new(v, l)).collect(),
        ));
        if !a.has("heartbeat") {
            return out;
        }
        if a.get("heartbeat") == "custom" {
            out.push(Step::text("heartbeat_cron", "Heartbeat schedule (cron)", "", Check::Cron).with_help(
                vec!["5 fields: minute hour day-of-month month day-of-week, e.g. \"*/15 * * * *\".".into()],
            ));
        }
        if a.get("heartbeat") != "off" {
            out.push(Step::text("heartbeat_task", "Heartbeat task (optional)", "", Check::Any).with_help(
                vec![
                    "Empty: review memory and report what changed, with the instructions as the objective."
                        .into(),
                ],
            ));
        }
        out.push(Step::confirm("confirm", "Create it?", true).with_help(summary(&onboarding(a))));
        out
    }
}

/// The onboarding the answers describe.
pub fn onboarding(a: &Answers) -> Onboarding {
    let some = |k: &str| Some(a.get(k).trim().to_string()).filter(|v| !v.is_empty());
    let channel = a.get("channel");
    let heartbeat = match a.get("heartbeat") {
        "custom" => some("heartbeat_cron"),
        "off" | "" => None,
        preset => Some(preset.to_string()),
    };
    let existing = a.get("channel_secret_source") == "existing";
    Onboarding {
        namespace: a.get("namespace").into(),
        name: a.get("name").into(),
        provider: a.get("provider").into(),
        credentials: providers::credentials(a),
        base_url: some("base_url"),
        model: a.get("model").into(),
        repo: some("repo"),
        instructions: some("instructions"),
        skills: a.has("skills").then(|| a.list("skills")),
        channel: (!channel.is_empty() && channel != "none").then(|| {
            let tokens = if existing { BTreeMap::new() } else { providers::channel_tokens(a, channel) };
            (channel.to_string(), tokens)
        }),
        channel_secret: if existing { some("channel_secret") } else { None },
        policy: a.yes("policy"),
        sandbox: a.yes("sandbox"),
        heartbeat_task: heartbeat.as_ref().and_then(|_| some("heartbeat_task")),
        heartbeat,
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
        "Skills:       {}",
        match &o.skills {
            None => format!("{} (default)", DEFAULT_SKILLS.join(", ")),
            Some(s) if s.is_empty() => "(none besides memory)".into(),
            Some(s) => s.join(", "),
        }
    ));
    lines.push(format!(
        "Channel:      {}",
        match (&o.channel, o.channel_secret_name()) {
            (None, _) => "(none)".into(),
            (Some((t, _)), Some(secret)) => format!("{t}, token in Secret {secret}"),
            (Some((t, _)), None) => t.clone(),
        }
    ));
    lines.push(format!("Policy:       {}", if o.policy { "default-policy" } else { "(none)" }));
    lines.push(format!("Sandbox:      {}", if o.sandbox { "yes" } else { "no" }));
    lines.push(format!("Heartbeat:    {}", or(&o.heartbeat, "(none)")));
    if o.heartbeat.is_some() {
        lines.push(format!("Task:         {}", or(&o.heartbeat_task, "(review memory)")));
    }
    lines
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::apply::instance_manifest;
    use super::super::step::{Outcome, Wizard};
    use super::*;

    /// Answers the current step with each of `answers` in turn; returns the refusals.
    fn answer(w: &mut Wizard, answers: &[&str]) -> Vec<String> {
        let mut refused = Vec::new();
        for raw in answers {
            let step = w.current().expect("a step to answer");
            if w.answer(&step, raw) == Outcome::Asking
                && let Some(e) = w.error.take()
            {
                refused.push(e);
            }
        }
        refused
    }

    fn flow() -> OnboardFlow {
        OnboardFlow::new("team", "").with_skills(vec![
            ("k8s-ops".into(), "kubernetes".into()),
            ("github-gitops".into(), "".into()),
            ("sre-toolkit".into(), "sre".into()),
        ])
    }

    const START: &[&str] = &["", "agent-a", "openai", "sk-1", "", "acme/infra", "Keep prod green"];

    #[test]
    fn picked_skills_an_existing_channel_secret_and_a_custom_heartbeat() {
        let mut w = Wizard::new(Box::new(flow()), Answers::default());
        assert!(answer(&mut w, START).is_empty());
        assert_eq!(w.current().unwrap().key, "skills");
        let refused =
            answer(&mut w, &["9", "sre-toolkit, 2", "telegram", "existing", "Not A Secret", "tg-creds"]);
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert_eq!(refused[0], "skills: \"9\" is not an option");
        assert!(refused[1].starts_with("channel_secret: use lower-case"), "{refused:?}");
        // No token is asked: the existing Secret holds it.
        assert_eq!(w.current().unwrap().key, "policy");
        let refused =
            answer(&mut w, &["y", "n", "custom", "0 24 * * *", "15 8 * * 1-5", "Check the backlog"]);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].starts_with("heartbeat_cron: ") && refused[0].contains("hour field"),
            "{refused:?}"
        );
        let confirm = w.current().unwrap();
        assert_eq!(confirm.key, "confirm");
        assert!(
            confirm.help.iter().any(|l| l.contains("telegram, token in Secret tg-creds")),
            "{:?}",
            confirm.help
        );
        assert!(confirm.help.iter().any(|l| l.contains("sre-toolkit, github-gitops")), "{:?}", confirm.help);

        let o = onboarding(w.answers());
        assert_eq!(o.skills.as_deref(), Some(&["sre-toolkit".to_string(), "github-gitops".to_string()][..]));
        assert_eq!(o.channel, Some(("telegram".into(), BTreeMap::new())));
        assert_eq!(o.channel_secret.as_deref(), Some("tg-creds"));
        assert_eq!(o.heartbeat.as_deref(), Some("15 8 * * 1-5"));
        assert_eq!(o.heartbeat_task.as_deref(), Some("Check the backlog"));
        let m = instance_manifest(&o);
        let skills: Vec<_> =
            m["spec"]["skills"].as_array().unwrap().iter().map(|s| s["skillPackRef"].clone()).collect();
        assert_eq!(skills, ["sre-toolkit", "github-gitops", "memory"]);
        assert_eq!(m["spec"]["skills"][1]["params"]["repo"], "acme/infra");
        assert_eq!(m["spec"]["channels"][0]["configRef"]["secret"], "tg-creds");
        assert!(!m.to_string().contains("sk-1"), "no key in the instance");
    }

    #[test]
    fn a_typed_token_goes_to_the_instances_own_secret_and_presets_keep_working() {
        let mut w = Wizard::new(Box::new(flow()), Answers::default());
        assert!(answer(&mut w, START).is_empty());
        let refused = answer(&mut w, &["", "discord", "new", "", "dc-token", "y", "n", "1", ""]);
        assert_eq!(refused, ["DISCORD_BOT_TOKEN: this cannot be empty"]);
        let o = onboarding(w.answers());
        assert_eq!(o.skills, Some(Vec::new()), "none picked");
        assert_eq!(o.channel_secret_name().as_deref(), Some("agent-a-discord-secret"));
        assert_eq!(o.channel.as_ref().unwrap().1["DISCORD_BOT_TOKEN"], "dc-token");
        assert_eq!((o.heartbeat.as_deref(), o.heartbeat_task.as_deref()), (Some("0 * * * *"), None));
        let m = instance_manifest(&o);
        assert!(!m.to_string().contains("dc-token"), "the token is never in the instance");
        let skills: Vec<_> =
            m["spec"]["skills"].as_array().unwrap().iter().map(|s| s["skillPackRef"].clone()).collect();
        assert_eq!(skills, ["github-gitops", "memory"]);
    }

    #[test]
    fn without_skill_packs_the_step_is_skipped_and_whatsapp_needs_no_secret() {
        let mut w = Wizard::new(Box::new(OnboardFlow::new("team", "")), Answers::default());
        assert!(answer(&mut w, START).is_empty());
        assert_eq!(w.current().unwrap().key, "channel");
        assert!(answer(&mut w, &["whatsapp", "y", "n", "off"]).is_empty());
        assert_eq!(w.current().unwrap().key, "confirm", "no secret, no heartbeat task");
        let o = onboarding(w.answers());
        assert_eq!((o.skills.clone(), o.channel_secret_name(), o.heartbeat.clone()), (None, None, None));
        let m = instance_manifest(&o);
        let skills: Vec<_> =
            m["spec"]["skills"].as_array().unwrap().iter().map(|s| s["skillPackRef"].clone()).collect();
        assert_eq!(skills, ["k8s-ops", "llmfit", "github-gitops", "memory"]);
        assert_eq!(m["spec"]["channels"], serde_json::json!([{"type": "whatsapp"}]));
    }
}
