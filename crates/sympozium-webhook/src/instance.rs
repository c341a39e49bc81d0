//! Reviewing SympoziumInstances at `kubectl apply` time: references to a policy, skill
//! packs or Secrets that do not exist come back as warnings (the instance is admitted, so
//! a directory applied in any order still works; its runs fail clearly until the objects
//! exist), and so does a persona tool allow-list that the policy denies.

use std::collections::BTreeSet;

use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::{Api, Client};
use sympozium_api::policy::ToolAction;
use sympozium_api::{SkillPack, SympoziumInstance, SympoziumPolicy};

/// What an instance refers to by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    /// `spec.policyRef`.
    pub policy: Option<String>,
    /// SkillPacks of `spec.skills[].skillPackRef` (a legacy `skillpack-` prefix stripped).
    pub skill_packs: BTreeSet<String>,
    /// Secrets of `spec.authRefs` and channel `configRef`s.
    pub secrets: BTreeSet<String>,
}

/// The names `instance` refers to.
pub fn references(instance: &SympoziumInstance) -> References {
    let spec = &instance.spec;
    let skill_packs = spec
        .skills
        .iter()
        .filter_map(|s| s.skill_pack_ref.as_deref())
        .map(|n| n.strip_prefix("skillpack-").unwrap_or(n).to_string())
        .filter(|n| !n.is_empty())
        .collect();
    let secrets = spec
        .auth_refs
        .iter()
        .chain(spec.channels.iter().map(|c| &c.config_ref))
        .map(|r| r.secret.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    References { policy: spec.policy_ref.clone().filter(|p| !p.is_empty()), skill_packs, secrets }
}

/// Tools the instance's default tool policy allows that `policy` denies.
pub fn denied_allowed_tools(instance: &SympoziumInstance, policy: &SympoziumPolicy) -> Vec<String> {
    let Some(allow) = instance.spec.agents.default.tool_policy.as_ref().map(|t| &t.allow) else {
        return Vec::new();
    };
    policy
        .spec
        .tool_gating
        .iter()
        .flat_map(|g| g.rules.iter())
        .filter(|r| r.action == ToolAction::Deny && allow.contains(&r.tool))
        .map(|r| r.tool.clone())
        .collect()
}

/// Reviews an instance request: always admitted (unless undecodable), with warnings.
pub async fn review_instance(
    client: &Client,
    system_namespace: &str,
    request: &AdmissionRequest<SympoziumInstance>,
) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request);
    let Some(instance) = request.object.as_ref() else { return response };
    if !matches!(request.operation, Operation::Create | Operation::Update)
        || instance.metadata.deletion_timestamp.is_some()
        || request.old_object.as_ref().is_some_and(|o| o.spec == instance.spec)
    {
        return response;
    }
    let ns = request.namespace.clone().unwrap_or_default();
    let refs = references(instance);
    let mut warnings = Vec::new();
    if let Some(name) = &refs.policy {
        match Api::<SympoziumPolicy>::namespaced(client.clone(), &ns).get_opt(name).await {
            Ok(Some(policy)) => {
                for tool in denied_allowed_tools(instance, &policy) {
                    warnings.push(format!(
                        "spec.agents.default.toolPolicy.allow lists \"{tool}\", which policy \"{name}\" denies: runs that copy it are refused"
                    ));
                }
            }
            Ok(None) => warnings.push(format!(
                "spec.policyRef: SympoziumPolicy \"{name}\" not found in namespace \"{ns}\": runs fail until it exists"
            )),
            Err(e) => warnings.push(format!("spec.policyRef: could not check SympoziumPolicy \"{name}\": {e}")),
        }
    }
    let local: Api<SkillPack> = Api::namespaced(client.clone(), &ns);
    let system: Api<SkillPack> = Api::namespaced(client.clone(), system_namespace);
    for pack in &refs.skill_packs {
        let found = matches!(local.get_opt(pack).await, Ok(Some(_)))
            || matches!(system.get_opt(pack).await, Ok(Some(_)));
        if !found {
            warnings.push(format!(
                "spec.skills: SkillPack \"{pack}\" not found in namespace \"{ns}\" nor in \"{system_namespace}\""
            ));
        }
    }
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    for secret in &refs.secrets {
        if let Ok(None) = secrets.get_metadata_opt(secret).await {
            warnings.push(format!("Secret \"{secret}\" not found in namespace \"{ns}\""));
        }
    }
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    response
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
            "spec": {"agents": {"default": {"model": "m", "toolPolicy": {"allow": ["write_file", "read_file"]}}},
                     "policyRef": "strict", "authRefs": [{"provider": "openai", "secret": "openai-key"}, {"secret": ""}],
                     "skills": [{"skillPackRef": "skillpack-k8s-ops"}, {"configMapRef": "cm"}],
                     "channels": [{"type": "slack", "configRef": {"secret": "slack-token"}}]}}))
        .unwrap();
        let r = references(&i);
        assert_eq!(r.policy.as_deref(), Some("strict"));
        assert_eq!(r.skill_packs.into_iter().collect::<Vec<_>>(), ["k8s-ops"]);
        assert_eq!(r.secrets.into_iter().collect::<Vec<_>>(), ["openai-key", "slack-token"]);
        let p: SympoziumPolicy = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
            "kind": "SympoziumPolicy", "metadata": {"name": "strict"},
            "spec": {"toolGating": {"rules": [{"tool": "write_file", "action": "deny"}]}}}))
        .unwrap();
        assert_eq!(denied_allowed_tools(&i, &p), ["write_file"]);
    }
}
