//! What Sympozium knows about LLM providers, in one place: their names, the base URLs used
//! when none is configured, and the variable a provider's API key travels in. The
//! controller, API server, web UI's Secrets and the agent runner all read it from here, so
//! a Secret written for a provider is the one the runner looks in.

use crate::env;

/// OpenAI.
pub const OPENAI: &str = "openai";
/// Anthropic.
pub const ANTHROPIC: &str = "anthropic";
/// Azure OpenAI (needs a base URL: the resource's endpoint).
pub const AZURE_OPENAI: &str = "azure-openai";
/// AWS Bedrock (signed with AWS credentials, no API key).
pub const BEDROCK: &str = "bedrock";
/// Ollama (local, OpenAI-compatible).
pub const OLLAMA: &str = "ollama";
/// LM Studio (local, OpenAI-compatible).
pub const LM_STUDIO: &str = "lm-studio";
/// Any other OpenAI-compatible server given by its base URL.
pub const CUSTOM: &str = "custom";

/// Providers recognised inside Secret names, checked in this order (`azure-openai` before
/// `openai`, which it contains).
pub const NAMED_IN_SECRETS: [&str; 6] = [ANTHROPIC, AZURE_OPENAI, BEDROCK, LM_STUDIO, OLLAMA, OPENAI];

/// OpenAI's API when no base URL is configured.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Anthropic's API when no base URL is configured.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

/// Default port of an Ollama server.
pub const OLLAMA_PORT: u16 = 11434;
/// Default port of an LM Studio server.
pub const LM_STUDIO_PORT: u16 = 1234;

/// The base URL a local provider is reached at when none is configured (Ollama's in-cluster
/// Service, LM Studio on the node); `None` for hosted providers, whose clients know theirs.
pub fn local_base_url(provider: &str) -> Option<&'static str> {
    match provider {
        OLLAMA => Some("http://ollama.default.svc:11434/v1"),
        LM_STUDIO => Some("http://localhost:1234/v1"),
        _ => None,
    }
}

/// The local provider a base URL points at, by name or default port.
pub fn local_from_base_url(url: &str) -> Option<&'static str> {
    if url.contains(OLLAMA) || url.contains(&format!(":{OLLAMA_PORT}")) {
        Some(OLLAMA)
    } else if url.contains(LM_STUDIO) || url.contains(&format!(":{LM_STUDIO_PORT}")) {
        Some(LM_STUDIO)
    } else {
        None
    }
}

/// Providers that run in or next to the cluster (longer timeouts, fewer retries).
pub fn is_local(provider: &str) -> bool {
    matches!(provider, OLLAMA | LM_STUDIO | "vllm" | "llamacpp" | "local")
}

/// The environment variable (and key of the run's key Secret) the provider's API key is
/// read from: its own for OpenAI, Anthropic and Azure OpenAI, `PROVIDER_API_KEY` otherwise.
pub fn api_key_env(provider: &str) -> &'static str {
    match provider {
        OPENAI => env::OPENAI_API_KEY,
        ANTHROPIC => env::ANTHROPIC_API_KEY,
        AZURE_OPENAI => env::AZURE_OPENAI_API_KEY,
        _ => env::PROVIDER_API_KEY,
    }
}

/// The Secret key a fallback model's API key is read from unless it names one:
/// `<PROVIDER>_API_KEY` (`ANTHROPIC_API_KEY`, `AZURE_OPENAI_API_KEY`, `MISTRAL_API_KEY`).
pub fn fallback_secret_key(provider: &str) -> String {
    format!("{}_API_KEY", provider.trim().to_ascii_uppercase().replace(['-', '.'], "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_variables_match_what_the_runner_reads() {
        assert_eq!(api_key_env(OPENAI), env::OPENAI_API_KEY);
        assert_eq!(api_key_env(ANTHROPIC), env::ANTHROPIC_API_KEY);
        assert_eq!(api_key_env(AZURE_OPENAI), env::AZURE_OPENAI_API_KEY);
        assert_eq!(api_key_env(OLLAMA), env::PROVIDER_API_KEY);
        // A fallback's default key is the provider's own name, for the known ones too.
        assert_eq!(fallback_secret_key(AZURE_OPENAI), api_key_env(AZURE_OPENAI));
        assert_eq!(fallback_secret_key(" mistral.ai "), "MISTRAL_AI_API_KEY");
    }

    #[test]
    fn local_providers_by_name_or_port() {
        assert_eq!(local_from_base_url("http://ollama.local/v1"), Some(OLLAMA));
        assert_eq!(local_from_base_url("http://10.0.0.5:11434"), Some(OLLAMA));
        assert_eq!(local_from_base_url("http://host:1234/v1"), Some(LM_STUDIO));
        assert_eq!(local_from_base_url("https://vllm.internal/v1"), None);
        assert_eq!(local_base_url(OLLAMA), Some("http://ollama.default.svc:11434/v1"));
        assert_eq!(local_base_url(OPENAI), None);
        assert!(is_local(LM_STUDIO) && !is_local(ANTHROPIC));
    }
}
