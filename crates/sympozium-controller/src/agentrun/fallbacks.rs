//! Model failover from the instance: `spec.agents.default.modelFallbacks` becomes the
//! runner's `MODEL_FALLBACKS` (`[{"provider","model","baseURL","apiKeyEnv"}]`), with each
//! fallback's API key taken from its own Secret into `SYMPOZIUM_FALLBACK_<n>_API_KEY`.
//!
//! The keys are separate variables (not `envFrom` of each Secret) so that two providers whose
//! Secrets both carry e.g. `OPENAI_API_KEY` never overwrite the primary model's key.

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
use serde_json::json;
use sympozium_api::SympoziumInstance;
use sympozium_protocol::env as vars;

/// The variable holding the API key of the `n`-th fallback (0-based).
pub fn key_var(n: usize) -> String {
    format!("SYMPOZIUM_FALLBACK_{n}_API_KEY")
}

/// The agent container's failover variables; empty when the instance names no fallbacks.
pub fn env_vars(instance: Option<&SympoziumInstance>) -> Vec<EnvVar> {
    let Some(instance) = instance else {
        return Vec::new();
    };
    let usable = sympozium_api::resolve::fallbacks(&instance.spec);
    let mut chain = Vec::new();
    let mut vars = Vec::new();
    for (n, fallback) in usable.enumerate() {
        let mut entry = json!({"provider": fallback.provider.trim(), "model": fallback.model.trim()});
        if let Some(url) = fallback.base_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            entry["baseURL"] = json!(url);
        }
        if let Some(secret) = fallback.auth_secret_ref.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            entry["apiKeyEnv"] = json!(key_var(n));
            vars.push(EnvVar {
                name: key_var(n),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret.to_string(),
                        key: fallback.secret_key(),
                        // A missing fallback key must not keep the primary model from running;
                        // the runner then calls that fallback without a key and moves on.
                        optional: Some(true),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        chain.push(entry);
    }
    if chain.is_empty() {
        return Vec::new();
    }
    let mut all = vec![EnvVar {
        name: vars::MODEL_FALLBACKS.into(),
        value: Some(serde_json::Value::Array(chain).to_string()),
        ..Default::default()
    }];
    all.extend(vars);
    all
}
