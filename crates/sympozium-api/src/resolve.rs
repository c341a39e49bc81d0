//! How an instance's runs reach their model: the provider, the credential Secret, and the
//! whole [`ModelSpec`] of a run. One implementation for every caller that creates runs
//! (instance controller, schedules, channel router, web proxy, API server, CLI), so a run
//! is configured the same way whichever path created it. What is known about providers
//! themselves lives in [`sympozium_protocol::provider`].

use sympozium_protocol::provider;

use crate::SympoziumInstanceSpec;
use crate::agentrun::ModelSpec;
use crate::common::{SecretRef, Thinking};
use crate::instance::ModelFallback;

/// What one run changes about its instance's model; the default changes nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelOverrides {
    /// Another model of the same provider (blank: the instance's).
    pub model: Option<String>,
    /// Reasoning effort: `Some(None)` turns the instance's off, `None` keeps it.
    pub thinking: Option<Option<Thinking>>,
}

/// The model spec of a run of the instance `spec`: its provider ([`provider`]), model,
/// base URL (blank is none), thinking, key Secret ([`auth_secret`]) and node selector
/// (empty is none), with `overrides` applied. Fallback models are not part of a run's spec:
/// the controller gives every run of the instance its [`fallbacks`].
pub fn model_spec(spec: &SympoziumInstanceSpec, overrides: &ModelOverrides) -> ModelSpec {
    let agent = &spec.agents.default;
    ModelSpec {
        provider: provider(spec),
        model: overrides
            .model
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map_or_else(|| agent.model.clone(), str::to_string),
        base_url: agent.base_url.clone().filter(|u| !u.is_empty()),
        thinking: overrides.thinking.unwrap_or(agent.thinking),
        auth_secret_ref: auth_secret(spec),
        node_selector: agent.node_selector.clone().filter(|n| !n.is_empty()),
    }
}

/// The skills a task run of the instance gets: all but the web-endpoint pack, which only
/// the serving run has.
pub fn run_skills(spec: &SympoziumInstanceSpec) -> Vec<crate::common::SkillRef> {
    spec.skills.iter().filter(|s| !s.is_web_endpoint()).cloned().collect()
}

/// The instance's fallback models that can be used: those naming a provider and a model.
pub fn fallbacks(spec: &SympoziumInstanceSpec) -> impl Iterator<Item = &ModelFallback> {
    spec.agents
        .default
        .model_fallbacks
        .iter()
        .filter(|f| !f.provider.trim().is_empty() && !f.model.trim().is_empty())
}

/// The LLM provider of an instance's runs.
///
/// The first `authRefs[].provider` that is set wins; otherwise a provider named inside a
/// Secret name (`team-anthropic-key` → `anthropic`); otherwise the base URL decides (Ollama
/// and LM Studio by name or default port, anything else is `custom`); otherwise `openai`.
pub fn provider(spec: &SympoziumInstanceSpec) -> String {
    provider_from(&spec.auth_refs, spec.agents.default.base_url.as_deref())
}

/// [`provider`] for callers that hold the parts rather than a whole instance spec.
pub fn provider_from(auth_refs: &[SecretRef], base_url: Option<&str>) -> String {
    if let Some(p) =
        auth_refs.iter().filter_map(|r| r.provider.as_deref()).map(str::trim).find(|p| !p.is_empty())
    {
        return p.to_string();
    }
    for known in provider::NAMED_IN_SECRETS {
        if auth_refs.iter().any(|r| r.secret.contains(known)) {
            return known.to_string();
        }
    }
    match base_url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(url) => provider::local_from_base_url(url).unwrap_or(provider::CUSTOM).into(),
        None => provider::OPENAI.into(),
    }
}

/// The Secret holding the provider credentials: the first non-blank `authRefs[].secret`,
/// or `""` (local models need none).
pub fn auth_secret(spec: &SympoziumInstanceSpec) -> String {
    auth_secret_from(&spec.auth_refs)
}

/// [`auth_secret`] for callers that hold only the auth refs.
pub fn auth_secret_from(auth_refs: &[SecretRef]) -> String {
    auth_refs.iter().map(|r| r.secret.trim()).find(|s| !s.is_empty()).unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn r(provider: Option<&str>, secret: &str) -> SecretRef {
        SecretRef { provider: provider.map(Into::into), secret: secret.into() }
    }

    #[test]
    fn explicit_provider_wins() {
        assert_eq!(provider_from(&[r(None, "x-anthropic"), r(Some("bedrock"), "aws")], None), "bedrock");
    }

    #[test]
    fn provider_from_secret_name_prefers_the_longer_azure_match() {
        assert_eq!(provider_from(&[r(None, "team-azure-openai-key")], None), "azure-openai");
        assert_eq!(provider_from(&[r(None, "team-openai-key")], None), "openai");
        assert_eq!(provider_from(&[r(None, "pack-anthropic-key")], None), "anthropic");
    }

    #[test]
    fn base_url_decides_for_local_models() {
        assert_eq!(provider_from(&[], Some("http://ollama.local:11434/v1")), "ollama");
        assert_eq!(provider_from(&[], Some("http://10.0.0.5:11434")), "ollama");
        assert_eq!(provider_from(&[], Some("http://host:1234/v1")), "lm-studio");
        assert_eq!(provider_from(&[], Some("https://vllm.internal/v1")), "custom");
        assert_eq!(provider_from(&[], Some("  ")), "openai");
        assert_eq!(provider_from(&[], None), "openai");
    }

    fn instance(spec: serde_json::Value) -> SympoziumInstanceSpec {
        serde_json::from_value(spec).unwrap()
    }

    #[test]
    fn a_runs_model_is_its_instances() {
        let spec = instance(serde_json::json!({
            "authRefs": [{"provider": "anthropic", "secret": "team-key"}],
            "agents": {"default": {"model": "claude", "baseURL": "", "thinking": "high",
                                   "nodeSelector": {}}}}));
        let m = model_spec(&spec, &ModelOverrides::default());
        assert_eq!(m.provider, "anthropic");
        assert_eq!(m.model, "claude");
        assert_eq!(m.auth_secret_ref, "team-key");
        assert_eq!(m.thinking, Some(Thinking::High));
        assert_eq!(m.base_url, None, "a blank base URL is none");
        assert_eq!(m.node_selector, None, "an empty node selector is none");
    }

    #[test]
    fn overrides_change_only_what_they_name() {
        let spec = instance(serde_json::json!({
            "agents": {"default": {"model": "llama3", "baseURL": "http://h:11434/v1", "thinking": "low",
                                   "nodeSelector": {"gpu": "yes"}}}}));
        let base = model_spec(&spec, &ModelOverrides::default());
        assert_eq!(base.provider, "ollama");
        assert_eq!(base.auth_secret_ref, "", "local models need no key");
        let other = model_spec(&spec, &ModelOverrides { model: Some("qwen".into()), ..Default::default() });
        assert_eq!(other, ModelSpec { model: "qwen".into(), ..base.clone() });
        let blank = model_spec(&spec, &ModelOverrides { model: Some(" ".into()), ..Default::default() });
        assert_eq!(blank, base, "a blank model keeps the instance's");
        let plain = model_spec(&spec, &ModelOverrides { thinking: Some(None), ..Default::default() });
        assert_eq!(plain, ModelSpec { thinking: None, ..base });
    }

    #[test]
    fn only_complete_fallbacks_are_used() {
        let spec = instance(serde_json::json!({"agents": {"default": {"model": "m", "modelFallbacks": [
            {"provider": "anthropic", "model": "c"}, {"provider": " ", "model": "x"},
            {"provider": "ollama", "model": ""}]}}}));
        let used: Vec<_> = fallbacks(&spec).map(|f| f.model.as_str()).collect();
        assert_eq!(used, ["c"]);
    }

    #[test]
    fn auth_secret_is_the_first_non_blank() {
        assert_eq!(auth_secret_from(&[r(None, " "), r(None, "key-2")]), "key-2");
        assert_eq!(auth_secret_from(&[]), "");
    }
}
