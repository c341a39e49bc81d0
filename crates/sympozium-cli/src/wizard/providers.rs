//! The LLM providers the wizards offer, and the steps every wizard asks about one: provider,
//! base URL, credentials, model. The Secret keys are the ones the agent runner reads.

use std::collections::BTreeMap;

use super::step::{Answers, Check, Choice, Step};

/// One provider the wizards offer.
#[derive(Clone, Copy, Debug)]
pub struct Provider {
    /// Stored in `authRefs[].provider` and in Secret names.
    pub name: &'static str,
    /// Shown to the user.
    pub label: &'static str,
    /// Model suggested when the user types none.
    pub model: &'static str,
    /// Base URL suggested; `None` when the provider has a fixed endpoint.
    pub base_url: Option<&'static str>,
    /// Secret keys asked for, with their question; empty for keyless local models.
    pub keys: &'static [(&'static str, &'static str)],
    /// Whether the keys may be left empty.
    pub keys_optional: bool,
}

/// Every provider, in the order offered.
pub const PROVIDERS: &[Provider] = &[
    Provider {
        name: "openai",
        label: "OpenAI",
        model: "gpt-4o",
        base_url: None,
        keys: &[("OPENAI_API_KEY", "OpenAI API key")],
        keys_optional: false,
    },
    Provider {
        name: "anthropic",
        label: "Anthropic",
        model: "claude-sonnet-4-20250514",
        base_url: None,
        keys: &[("ANTHROPIC_API_KEY", "Anthropic API key")],
        keys_optional: false,
    },
    Provider {
        name: "azure-openai",
        label: "Azure OpenAI",
        model: "gpt-4o",
        base_url: Some(""),
        keys: &[("AZURE_OPENAI_API_KEY", "Azure OpenAI API key")],
        keys_optional: false,
    },
    Provider {
        name: "ollama",
        label: "Ollama (local, no key)",
        model: "llama3",
        base_url: Some("http://ollama.default.svc:11434/v1"),
        keys: &[],
        keys_optional: true,
    },
    Provider {
        name: "lm-studio",
        label: "LM Studio (local)",
        model: "local-model",
        base_url: Some("http://localhost:1234/v1"),
        keys: &[("API_KEY", "LM Studio API key (empty if none)")],
        keys_optional: true,
    },
    Provider {
        name: "bedrock",
        label: "AWS Bedrock",
        model: "anthropic.claude-sonnet-4-20250514-v1:0",
        base_url: None,
        keys: &[
            ("AWS_REGION", "AWS region"),
            ("AWS_ACCESS_KEY_ID", "AWS access key id"),
            ("AWS_SECRET_ACCESS_KEY", "AWS secret access key"),
        ],
        keys_optional: false,
    },
    Provider {
        name: "custom",
        label: "Other OpenAI-compatible",
        model: "",
        base_url: Some(""),
        keys: &[("API_KEY", "API key (empty if none)")],
        keys_optional: true,
    },
];

/// The provider called `name` (OpenAI when unknown).
pub fn provider(name: &str) -> &'static Provider {
    PROVIDERS.iter().find(|p| p.name == name).unwrap_or(&PROVIDERS[0])
}

/// Answer key of credential `key`.
fn answer_key(key: &str) -> String {
    format!("key:{key}")
}

/// Provider, base URL, credentials and model, as far as they apply to the answers so far.
/// `key_default` pre-fills the first credential (e.g. from `SYMPOZIUM_API_KEY`).
pub fn steps(answers: &Answers, key_default: &str) -> Vec<Step> {
    let mut out = vec![Step::pick(
        "provider",
        "Which LLM provider?",
        PROVIDERS.iter().map(|p| Choice::new(p.name, p.label)).collect(),
    )];
    if !answers.has("provider") {
        return out;
    }
    let p = provider(answers.get("provider"));
    if let Some(url) = p.base_url {
        let check = if url.is_empty() { Check::Url } else { Check::OptionalUrl };
        out.push(Step::text("base_url", "Base URL of the model endpoint", url, check));
    }
    for (i, (key, question)) in p.keys.iter().enumerate() {
        let check = if p.keys_optional { Check::Any } else { Check::Required };
        let default = if i == 0 { key_default } else { "" };
        let step = if key.contains("REGION") {
            Step::text(&answer_key(key), question, "us-east-1", check)
        } else {
            Step::secret(&answer_key(key), question, default, check)
        };
        let hint = if i == 0 && !key_default.is_empty() {
            vec!["Enter keeps the key from SYMPOZIUM_API_KEY.".to_string()]
        } else {
            vec![format!("Stored in a Secret under {key}; never shown again.")]
        };
        out.push(step.with_help(hint));
    }
    let check = if p.model.is_empty() { Check::Required } else { Check::Any };
    out.push(Step::text("model", "Model", p.model, check));
    out
}

/// The chosen provider's credentials (empty values left out).
pub fn credentials(answers: &Answers) -> BTreeMap<String, String> {
    let p = provider(answers.get("provider"));
    p.keys
        .iter()
        .filter_map(|(key, _)| {
            let v = answers.get(&answer_key(key)).trim();
            (!v.is_empty()).then(|| (key.to_string(), v.to_string()))
        })
        .collect()
}

/// Secret keys of a channel's tokens, with their questions.
pub type TokenKeys = &'static [(&'static str, &'static str)];

/// Chat channels a wizard can wire in (type, label, token keys).
pub const CHANNELS: &[(&str, &str, TokenKeys)] = &[
    ("telegram", "Telegram", &[("TELEGRAM_BOT_TOKEN", "Telegram bot token")]),
    (
        "slack",
        "Slack",
        &[("SLACK_BOT_TOKEN", "Slack bot token (xoxb-…)"), ("SLACK_APP_TOKEN", "Slack app token (xapp-…)")],
    ),
    ("discord", "Discord", &[("DISCORD_BOT_TOKEN", "Discord bot token")]),
    ("whatsapp", "WhatsApp (pair with a QR code)", &[]),
];

/// The token Secret keys of channel `ty` (none for WhatsApp and unknown types).
pub fn channel_token_keys(ty: &str) -> TokenKeys {
    CHANNELS.iter().find(|(t, _, _)| *t == ty).map(|(_, _, keys)| *keys).unwrap_or(&[])
}

/// One token step per Secret key of each channel in `chosen`.
pub fn channel_token_steps(chosen: &[String]) -> Vec<Step> {
    let mut out = Vec::new();
    for (ty, _, keys) in CHANNELS.iter().filter(|(t, _, _)| chosen.iter().any(|c| c == t)) {
        for (key, question) in keys.iter() {
            out.push(
                Step::secret(&format!("token:{ty}:{key}"), question, "", Check::Required)
                    .with_help(vec![format!("Stored in the {ty} channel's Secret under {key}.")]),
            );
        }
    }
    out
}

/// The token Secret data of channel `ty`.
pub fn channel_tokens(answers: &Answers, ty: &str) -> BTreeMap<String, String> {
    CHANNELS
        .iter()
        .filter(|(t, _, _)| *t == ty)
        .flat_map(|(_, _, keys)| keys.iter())
        .filter_map(|(key, _)| {
            let v = answers.get(&format!("token:{ty}:{key}")).trim();
            (!v.is_empty()).then(|| (key.to_string(), v.to_string()))
        })
        .collect()
}

/// The channel options of a pick step.
pub fn channel_choices() -> Vec<Choice> {
    CHANNELS.iter().map(|(t, l, _)| Choice::new(t, l)).collect()
}

/// `•` per character of a secret, for summaries.
pub fn masked(secret: &str) -> String {
    if secret.is_empty() { "(none)".into() } else { "•".repeat(secret.chars().count().min(12)) }
}

/// The optional GitHub repository for the github-gitops skill (both wizards ask it).
pub fn repo_step() -> Step {
    Step::text("repo", "GitHub repository for the github-gitops skill (optional)", "", Check::OptionalRepo)
        .with_help(vec!["owner/repo; empty for none".into()])
}
