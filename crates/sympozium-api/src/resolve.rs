//! Which provider and which credential Secret an instance's runs use. One implementation
//! for every caller (instance controller, schedules, channel router, API server, CLI), so a
//! run is configured the same way whichever path created it.

use crate::SympoziumInstanceSpec;
use crate::common::SecretRef;

/// Provider names recognised inside Secret names, checked in this order
/// (`azure-openai` before `openai`, which it contains).
const PROVIDERS_BY_SECRET_NAME: [&str; 6] =
    ["anthropic", "azure-openai", "bedrock", "lm-studio", "ollama", "openai"];

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
    for known in PROVIDERS_BY_SECRET_NAME {
        if auth_refs.iter().any(|r| r.secret.contains(known)) {
            return known.to_string();
        }
    }
    match base_url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(url) if url.contains("ollama") || url.contains(":11434") => "ollama".into(),
        Some(url) if url.contains("lm-studio") || url.contains(":1234") => "lm-studio".into(),
        Some(_) => "custom".into(),
        None => "openai".into(),
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

    #[test]
    fn auth_secret_is_the_first_non_blank() {
        assert_eq!(auth_secret_from(&[r(None, " "), r(None, "key-2")]), "key-2");
        assert_eq!(auth_secret_from(&[]), "");
    }
}
