//! No Secret through a reference: whatever a user writes that makes a run's pod read a
//! Secret (an API key handed to the model, channel credentials, OTLP headers, an MCP token,
//! a skill sidecar's mount) needs the right to read that Secret themselves. Kubernetes
//! checks no such thing for a Secret named in a pod spec, but here the reference is worse
//! than a mount: a tenant who may create runs but not read Secrets could point a run's
//! `model.baseURL` at a host they own and name any Secret of the namespace as its key.
//!
//! | written | Secrets checked (`get secrets/<name>` in the namespace) |
//! |---|---|
//! | SympoziumInstance | `authRefs[].secret`, `channels[].configRef.secret`, `agents.default.modelFallbacks[].authSecretRef`, `observability.headersSecretRef`, `mcpServers[].authSecret`, `webEndpoint.authSecretRef` |
//! | PersonaPack (enabled) | `authRefs[].secret`, `channelConfigs` values |
//! | AgentRun | `model.authSecretRef`, unless it is the key its instance gives its runs *and* it goes to the same provider and base URL (the instance's author was checked) |
//! | SkillPack | `sidecar.secretRef` (tenant namespaces; a reference to a pack checks it in the referring namespace) |
//! | MCPServer | `authSecret` (sent as a bearer token to the server's URL, which its author chose), `deployment.secretRefs[].name` (every key becomes an env var of the server's pods) |

use futures::{StreamExt, TryStreamExt};
use sympozium_api::{AgentRun, MCPServer, PersonaPack, SympoziumInstance, resolve};

use crate::access::{Access, AccessDenied, Ask};

/// Reviews in flight at once.
const PARALLEL: usize = 8;

/// A field that names a Secret a run will read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretUse {
    /// Where, e.g. `spec.authRefs[0].secret`.
    pub field: String,
    /// The Secret's name.
    pub secret: String,
}

fn push(out: &mut Vec<SecretUse>, field: String, secret: Option<&str>) {
    if let Some(secret) = secret.map(str::trim).filter(|s| !s.is_empty()) {
        out.push(SecretUse { field, secret: secret.to_string() });
    }
}

/// The Secrets an instance makes its runs and channel pods read.
pub fn instance_secrets(instance: &SympoziumInstance) -> Vec<SecretUse> {
    let spec = &instance.spec;
    let mut out = Vec::new();
    for (i, r) in spec.auth_refs.iter().enumerate() {
        push(&mut out, format!("spec.authRefs[{i}].secret"), Some(&r.secret));
    }
    for (i, c) in spec.channels.iter().enumerate() {
        push(&mut out, format!("spec.channels[{i}].configRef.secret"), Some(&c.config_ref.secret));
    }
    for (i, f) in spec.agents.default.model_fallbacks.iter().enumerate() {
        push(
            &mut out,
            format!("spec.agents.default.modelFallbacks[{i}].authSecretRef"),
            f.auth_secret_ref.as_deref(),
        );
    }
    if let Some(o) = &spec.observability {
        push(&mut out, "spec.observability.headersSecretRef".into(), o.headers_secret_ref.as_deref());
    }
    for (i, m) in spec.mcp_servers.iter().enumerate() {
        push(&mut out, format!("spec.mcpServers[{i}].authSecret"), m.auth_secret.as_deref());
    }
    if let Some(w) = &spec.web_endpoint {
        push(&mut out, "spec.webEndpoint.authSecretRef".into(), w.auth_secret_ref.as_deref());
    }
    out
}

/// The Secrets an enabled PersonaPack hands to every instance it stamps out.
pub fn pack_secrets(pack: &PersonaPack) -> Vec<SecretUse> {
    let mut out = Vec::new();
    for (i, r) in pack.spec.auth_refs.iter().enumerate() {
        push(&mut out, format!("spec.authRefs[{i}].secret"), Some(&r.secret));
    }
    for (channel, secret) in pack.spec.channel_configs.iter().flatten() {
        push(&mut out, format!("spec.channelConfigs.{channel}"), Some(secret));
    }
    out
}

/// The Secrets an MCPServer makes the controller, runs and its own pods read.
pub fn mcp_server_secrets(server: &MCPServer) -> Vec<SecretUse> {
    let mut out = Vec::new();
    push(&mut out, "spec.authSecret".into(), server.spec.auth_secret.as_deref());
    for (i, r) in server.spec.deployment.iter().flat_map(|d| d.secret_refs.iter()).enumerate() {
        push(&mut out, format!("spec.deployment.secretRefs[{i}].name"), Some(&r.name));
    }
    out
}

fn blank_to_none(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// The Secrets a run reads that its instance does not vouch for: `model.authSecretRef`,
/// unless it is exactly the key the instance gives its runs, sent to the instance's
/// provider and base URL (so it cannot be redirected to a host the run's author chose).
pub fn run_secrets(run: &AgentRun, instance: &SympoziumInstance) -> Vec<SecretUse> {
    let model = &run.spec.model;
    let secret = model.auth_secret_ref.trim();
    if secret.is_empty() {
        return Vec::new();
    }
    let vouched = secret == resolve::auth_secret(&instance.spec)
        && model.provider.trim() == resolve::provider(&instance.spec)
        && blank_to_none(model.base_url.as_deref())
            == blank_to_none(instance.spec.agents.default.base_url.as_deref());
    if vouched {
        return Vec::new();
    }
    vec![SecretUse { field: "spec.model.authSecretRef".into(), secret: secret.to_string() }]
}

/// What a user reads when a Secret reference is refused.
pub fn denial(user: &str, ns: &str, used: &SecretUse) -> String {
    format!(
        "{} \"{}\": user \"{user}\" cannot \"get\" secret \"{}\" in namespace \"{ns}\"; a run would read this Secret, so naming it needs the right to read it",
        used.field, used.secret, used.secret
    )
}

/// Checks that the user may read every Secret in `uses` (in `ns`); the error names the
/// first field (in order) whose Secret they may not read.
pub async fn check(access: &Access, ns: &str, uses: &[SecretUse]) -> Result<(), AccessDenied> {
    let questions: Vec<_> = uses
        .iter()
        .map(|u| {
            let ask = Ask::new(Some(ns), "get", "", "secrets").named(&u.secret);
            async move { access.allowed(&ask).await }
        })
        .collect();
    let mut answers = futures::stream::iter(questions).buffered(PARALLEL);
    let mut index = 0;
    while let Some(ok) = answers.try_next().await.map_err(|source| AccessDenied::Review {
        what: uses.get(index).map_or("secret reference", |u| u.field.as_str()).to_string(),
        source,
    })? {
        if !ok {
            return Err(AccessDenied::SecretRead(denial(access.username(), ns, &uses[index])));
        }
        index += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn instance(spec: serde_json::Value) -> SympoziumInstance {
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
            "metadata": {"name": "agent"}, "spec": spec}))
        .unwrap()
    }

    fn run(model: serde_json::Value) -> AgentRun {
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
            "metadata": {"name": "r"},
            "spec": {"instanceRef": "agent", "agentId": "primary", "sessionKey": "", "task": "t", "model": model}}))
        .unwrap()
    }

    #[test]
    fn every_secret_an_instance_hands_out_is_listed_with_its_field() {
        let i = instance(json!({
            "agents": {"default": {"model": "m", "modelFallbacks": [
                {"provider": "anthropic", "model": "c", "authSecretRef": "fallback-key"},
                {"provider": "ollama", "model": "l"}]}},
            "authRefs": [{"provider": "openai", "secret": "openai-key"}, {"secret": " "}],
            "channels": [{"type": "telegram", "configRef": {"secret": "tg"}}],
            "observability": {"enabled": true, "headersSecretRef": "otlp-headers"},
            "mcpServers": [{"name": "gh", "url": "http://gh", "toolsPrefix": "gh", "authSecret": "gh-token"}],
            "webEndpoint": {"enabled": true, "authSecretRef": "web-key"}}));
        let got: Vec<_> = instance_secrets(&i).into_iter().map(|u| (u.field, u.secret)).collect();
        let want = [
            ("spec.authRefs[0].secret", "openai-key"),
            ("spec.channels[0].configRef.secret", "tg"),
            ("spec.agents.default.modelFallbacks[0].authSecretRef", "fallback-key"),
            ("spec.observability.headersSecretRef", "otlp-headers"),
            ("spec.mcpServers[0].authSecret", "gh-token"),
            ("spec.webEndpoint.authSecretRef", "web-key"),
        ];
        assert_eq!(got, want.map(|(f, s)| (f.to_string(), s.to_string())));
    }

    #[test]
    fn a_run_may_use_its_instance_key_only_toward_the_instance_endpoint() {
        let i = instance(json!({"agents": {"default": {"model": "m", "baseURL": "https://llm.internal/v1"}},
            "authRefs": [{"provider": "openai", "secret": "openai-key"}]}));
        let same = run(json!({"provider": "openai", "model": "other-model",
            "baseURL": "https://llm.internal/v1", "authSecretRef": "openai-key"}));
        assert!(run_secrets(&same, &i).is_empty(), "the instance's own key, same endpoint");
        let redirected = run(json!({"provider": "openai", "model": "m",
            "baseURL": "https://attacker.example/v1", "authSecretRef": "openai-key"}));
        assert_eq!(run_secrets(&redirected, &i)[0].field, "spec.model.authSecretRef");
        let other_provider = run(json!({"provider": "custom", "model": "m",
            "baseURL": "https://llm.internal/v1", "authSecretRef": "openai-key"}));
        assert_eq!(run_secrets(&other_provider, &i).len(), 1);
        let other_secret = run(json!({"provider": "openai", "model": "m",
            "baseURL": "https://llm.internal/v1", "authSecretRef": "prod-db"}));
        assert_eq!(run_secrets(&other_secret, &i)[0].secret, "prod-db");
        let keyless = run(json!({"provider": "ollama", "model": "m", "authSecretRef": ""}));
        assert!(run_secrets(&keyless, &i).is_empty());
    }

    #[test]
    fn pack_secrets_cover_auth_refs_and_channel_configs() {
        let p: PersonaPack = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
            "kind": "PersonaPack", "metadata": {"name": "team"},
            "spec": {"enabled": true, "authRefs": [{"secret": "key"}], "channelConfigs": {"slack": "slack-creds"},
                     "personas": [{"name": "a", "systemPrompt": "x"}]}}))
        .unwrap();
        let got: Vec<_> = pack_secrets(&p).into_iter().map(|u| u.field).collect();
        assert_eq!(got, ["spec.authRefs[0].secret", "spec.channelConfigs.slack"]);
    }

    #[test]
    fn mcp_server_secrets_cover_the_token_and_the_deployment_env() {
        let m: MCPServer = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
            "kind": "MCPServer", "metadata": {"name": "gh"},
            "spec": {"transportType": "http", "toolsPrefix": "gh", "authSecret": "gh-token",
                     "deployment": {"image": "ghcr.io/example/mcp:1",
                                    "secretRefs": [{"name": "gh-app"}, {"name": " "}, {"name": "db"}]}}}))
        .unwrap();
        let got: Vec<_> = mcp_server_secrets(&m).into_iter().map(|u| (u.field, u.secret)).collect();
        let want = [
            ("spec.authSecret", "gh-token"),
            ("spec.deployment.secretRefs[0].name", "gh-app"),
            ("spec.deployment.secretRefs[2].name", "db"),
        ];
        assert_eq!(got, want.map(|(f, s)| (f.to_string(), s.to_string())));
    }

    #[test]
    fn the_denial_names_field_secret_user_and_namespace() {
        let u = SecretUse { field: "spec.authRefs[0].secret".into(), secret: "prod-db".into() };
        assert_eq!(
            denial("alice", "team-a", &u),
            "spec.authRefs[0].secret \"prod-db\": user \"alice\" cannot \"get\" secret \"prod-db\" in namespace \"team-a\"; a run would read this Secret, so naming it needs the right to read it"
        );
    }
}
