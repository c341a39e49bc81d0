//! Reviewing SympoziumInstances at `kubectl apply` time: an instance that would give its
//! runs RBAC the user does not hold is refused ([`crate::escalation`]), and so is one naming
//! a Secret the user may not read ([`crate::secret_reads`]); references to a
//! policy, skill packs or Secrets that do not exist come back as warnings (the instance is admitted, so
//! a directory applied in any order still works; its runs fail clearly until the objects
//! exist), and so does a tool allow-list that the policy denies. Enabled PersonaPacks get
//! the same review.

use std::collections::BTreeSet;

use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::{Api, Client, Resource};
use sympozium_api::policy::ToolAction;
use sympozium_api::{PersonaPack, SkillPack, SympoziumInstance, SympoziumPolicy};

use crate::access::Access;
use crate::{escalation, secret_reads};

/// What an instance or a pack refers to by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    /// `spec.policyRef`.
    pub policy: Option<String>,
    /// SkillPacks the skills name (a legacy `skillpack-` prefix stripped).
    pub skill_packs: BTreeSet<String>,
    /// Secrets of `spec.authRefs`, channel `configRef`s and fallback models' `authSecretRef`s.
    pub secrets: BTreeSet<String>,
    /// Tool allow-lists, by field path.
    pub allowed_tools: Vec<(String, Vec<String>)>,
    /// The field that turns the sandbox container on for the runs, and whether it does.
    pub sandbox: (String, bool),
}

fn pack_name(n: &str) -> String {
    n.strip_prefix("skillpack-").unwrap_or(n).to_string()
}

/// The names `instance` refers to.
pub fn references(instance: &SympoziumInstance) -> References {
    let spec = &instance.spec;
    let skill_packs = spec
        .skills
        .iter()
        .filter_map(|s| s.skill_pack_ref.as_deref())
        .map(pack_name)
        .filter(|n| !n.is_empty())
        .collect();
    let secrets = spec
        .auth_refs
        .iter()
        .chain(spec.channels.iter().map(|c| &c.config_ref))
        .map(|r| r.secret.trim().to_string())
        .chain(
            spec.agents
                .default
                .model_fallbacks
                .iter()
                .filter_map(|f| f.auth_secret_ref.as_deref())
                .map(|s| s.trim().to_string()),
        )
        .filter(|s| !s.is_empty())
        .collect();
    let allowed_tools = spec
        .agents
        .default
        .tool_policy
        .iter()
        .map(|t| ("spec.agents.default.toolPolicy.allow".to_string(), t.allow.clone()))
        .collect();
    References {
        policy: spec.policy_ref.clone().filter(|p| !p.is_empty()),
        skill_packs,
        secrets,
        allowed_tools,
        sandbox: (
            "spec.agents.default.sandbox.enabled".into(),
            spec.agents.default.sandbox.as_ref().is_some_and(|s| s.enabled),
        ),
    }
}

/// The names an enabled `pack` refers to.
pub fn pack_references(pack: &PersonaPack) -> References {
    let spec = &pack.spec;
    References {
        policy: spec.policy_ref.clone().filter(|p| !p.is_empty()),
        skill_packs: spec.personas.iter().flat_map(|p| p.skills.iter()).map(|s| pack_name(s)).collect(),
        secrets: spec
            .auth_refs
            .iter()
            .map(|r| r.secret.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        allowed_tools: spec
            .personas
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.tool_policy
                    .as_ref()
                    .map(|t| (format!("spec.personas[{i}].toolPolicy.allow"), t.allow.clone()))
            })
            .collect(),
        sandbox: ("spec.sandbox.enabled".into(), spec.sandbox.as_ref().is_some_and(|s| s.enabled)),
    }
}

/// The warning for an instance or pack whose runs would lack the sandbox `policy` requires.
/// A warning, not a refusal: manifests written for the original (whose instances were
/// admitted either way) must still apply; each such run is refused when it is created.
pub fn missing_sandbox(refs: &References, policy: &SympoziumPolicy) -> Option<String> {
    let required = policy.spec.sandbox_policy.as_ref().is_some_and(|s| s.required);
    let (field, enabled) = &refs.sandbox;
    (required && !enabled).then(|| {
        format!(
            "{field} is not true, but policy \"{}\" requires a sandbox (sandboxPolicy.required): every run without one is refused; set {field}: true",
            policy.metadata.name.as_deref().unwrap_or_default()
        )
    })
}

/// `(field, tool)` for every allowed tool that `policy` denies.
pub fn denied_allowed_tools(refs: &References, policy: &SympoziumPolicy) -> Vec<(String, String)> {
    let denied: Vec<&str> = policy
        .spec
        .tool_gating
        .iter()
        .flat_map(|g| g.rules.iter())
        .filter(|r| r.action == ToolAction::Deny)
        .map(|r| r.tool.as_str())
        .collect();
    refs.allowed_tools
        .iter()
        .flat_map(|(field, allow)| {
            allow.iter().filter(|t| denied.contains(&t.as_str())).map(move |t| (field.clone(), t.clone()))
        })
        .collect()
}

/// Warnings for references that do not resolve in `ns` (skill packs also in the system
/// namespace).
pub async fn check(client: &Client, system_namespace: &str, ns: &str, refs: &References) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(name) = &refs.policy {
        match Api::<SympoziumPolicy>::namespaced(client.clone(), ns).get_opt(name).await {
            Ok(Some(policy)) => {
                warnings.extend(missing_sandbox(refs, &policy));
                for (field, tool) in denied_allowed_tools(refs, &policy) {
                    warnings.push(format!(
                        "{field} lists \"{tool}\", which policy \"{name}\" denies: runs that copy it are refused"
                    ));
                }
            }
            Ok(None) => warnings.push(format!(
                "spec.policyRef: SympoziumPolicy \"{name}\" not found in namespace \"{ns}\": runs fail until it exists"
            )),
            Err(e) => warnings.push(format!("spec.policyRef: could not check SympoziumPolicy \"{name}\": {e}")),
        }
    }
    let local: Api<SkillPack> = Api::namespaced(client.clone(), ns);
    let system: Api<SkillPack> = Api::namespaced(client.clone(), system_namespace);
    for pack in &refs.skill_packs {
        let found = matches!(local.get_opt(pack).await, Ok(Some(_)))
            || matches!(system.get_opt(pack).await, Ok(Some(_)));
        if !found {
            warnings.push(format!(
                "SkillPack \"{pack}\" not found in namespace \"{ns}\" nor in \"{system_namespace}\""
            ));
        }
    }
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    for secret in &refs.secrets {
        if let Ok(None) = secrets.get_metadata_opt(secret).await {
            warnings.push(format!("Secret \"{secret}\" not found in namespace \"{ns}\""));
        }
    }
    warnings
}

/// Whether a request is reviewed: CREATE, or an UPDATE that changes the spec of an object
/// not being deleted.
pub(crate) fn reviewed<K: Resource>(
    request: &AdmissionRequest<K>,
    same_spec: impl Fn(&K, &K) -> bool,
) -> Option<&K> {
    let object = request.object.as_ref()?;
    let changed = request.old_object.as_ref().is_none_or(|old| !same_spec(old, object));
    let live = object.meta().deletion_timestamp.is_none();
    (matches!(request.operation, Operation::Create | Operation::Update) && changed && live).then_some(object)
}

fn with_warnings(mut response: AdmissionResponse, warnings: Vec<String>) -> AdmissionResponse {
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    response
}

/// Reviews an instance request: refused when it would give runs RBAC its author does not
/// hold ([`escalation::review_instance`]); otherwise admitted, with warnings.
pub async fn review_instance(
    client: &Client,
    system_namespace: &str,
    request: &AdmissionRequest<SympoziumInstance>,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    let Some(instance) = reviewed(request, |a, b| a.spec == b.spec) else { return response };
    let ns = request.namespace.clone().unwrap_or_default();
    let access = Access::new(client.clone(), request.user_info.clone());
    let reviewed = match escalation::review_instance(client, &access, system_namespace, &ns, instance).await {
        Ok(()) => secret_reads::check(&access, &ns, &secret_reads::instance_secrets(instance)).await,
        Err(message) => Err(message),
    };
    if let Err(message) = reviewed {
        tracing::info!(instance = ?instance.metadata.name, namespace = %ns, %message, "denied");
        return response.deny(message);
    }
    with_warnings(response, check(client, system_namespace, &ns, &references(instance)).await)
}

/// Reviews a PersonaPack request: an enabled pack is refused when its personas would give
/// runs RBAC the user does not hold ([`escalation::review_pack`]), and otherwise admitted
/// with warnings; a disabled pack is a catalog entry (nothing is stamped out) and passes.
pub async fn review_pack(
    client: &Client,
    system_namespace: &str,
    request: &AdmissionRequest<PersonaPack>,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    let Some(pack) = reviewed(request, |a, b| a.spec == b.spec) else { return response };
    if pack.spec.enabled != Some(true) {
        return response;
    }
    let ns = request.namespace.clone().unwrap_or_default();
    let access = Access::new(client.clone(), request.user_info.clone());
    let reviewed = match escalation::review_pack(client, &access, system_namespace, &ns, pack).await {
        Ok(()) => secret_reads::check(&access, &ns, &secret_reads::pack_secrets(pack)).await,
        Err(message) => Err(message),
    };
    if let Err(message) = reviewed {
        tracing::info!(pack = ?pack.metadata.name, namespace = %ns, %message, "denied");
        return response.deny(message);
    }
    with_warnings(response, check(client, system_namespace, &ns, &pack_references(pack)).await)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn references_and_tool_conflicts() {
        let i: SympoziumInstance = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
            "kind": "SympoziumInstance", "metadata": {"name": "i"},
            "spec": {"agents": {"default": {"model": "m", "toolPolicy": {"allow": ["write_file", "read_file"]},
                         "modelFallbacks": [{"provider": "anthropic", "model": "c", "authSecretRef": "anthropic-key"}]}},
                     "policyRef": "strict", "authRefs": [{"provider": "openai", "secret": "openai-key"}, {"secret": ""}],
                     "skills": [{"skillPackRef": "skillpack-k8s-ops"}, {"configMapRef": "cm"}],
                     "channels": [{"type": "slack", "configRef": {"secret": "slack-token"}}]}}))
        .unwrap();
        let r = references(&i);
        assert_eq!(r.policy.as_deref(), Some("strict"));
        assert_eq!(r.skill_packs.into_iter().collect::<Vec<_>>(), ["k8s-ops"]);
        assert_eq!(r.secrets.into_iter().collect::<Vec<_>>(), ["anthropic-key", "openai-key", "slack-token"]);
        let p: SympoziumPolicy = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
            "kind": "SympoziumPolicy", "metadata": {"name": "strict"},
            "spec": {"toolGating": {"rules": [{"tool": "write_file", "action": "deny"}]}}}))
        .unwrap();
        let refs = references(&i);
        assert_eq!(
            denied_allowed_tools(&refs, &p),
            [("spec.agents.default.toolPolicy.allow".to_string(), "write_file".to_string())]
        );
        let pack: PersonaPack = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
            "kind": "PersonaPack", "metadata": {"name": "team"},
            "spec": {"enabled": true, "policyRef": "strict", "authRefs": [{"secret": "key"}],
                     "personas": [{"name": "a", "systemPrompt": "x", "skills": ["k8s-ops", "skillpack-memory"]},
                                  {"name": "b", "systemPrompt": "y", "toolPolicy": {"allow": ["write_file"]}}]}}))
        .unwrap();
        let refs = pack_references(&pack);
        assert_eq!(refs.skill_packs.iter().collect::<Vec<_>>(), ["k8s-ops", "memory"]);
        assert_eq!(denied_allowed_tools(&refs, &p)[0].0, "spec.personas[1].toolPolicy.allow");
    }
}
