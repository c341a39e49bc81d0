//! Mirroring built-in skills: a run outside the system namespace that names a built-in
//! SkillPack gets a copy of its ConfigMap in the run's namespace, so the projected `/skills`
//! volume resolves. Only mirrors (`sympozium.ai/component=skillpack-mirror`) are ever
//! overwritten: a local SkillPack's ConfigMap, or any other ConfigMap of that name, wins.
//! Only skill ConfigMaps are mirrored (labelled `sympozium.ai/component=skillpack` in the
//! system namespace), so a run cannot copy other system configuration into its namespace.
//!
//! Secrets a skill sidecar mounts (`secretRef`) are looked up in the run's namespace; a
//! platform team can offer one from the system namespace by labelling it
//! `sympozium.ai/skill-secret=true` (e.g. the GitOps skill's token). Such a Secret is copied
//! into the run's namespace when absent there, owned by the run; a Secret the user keeps in
//! the run's namespace always wins, and unlabelled system Secrets never leave.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use sympozium_api::AgentRun;
use sympozium_api::common::SkillRef;
use sympozium_api::labels::{self, COMPONENT};
use sympozium_kube::FIELD_MANAGER;
use sympozium_kube::apply::create_if_absent;

use super::build::{COMPONENT_MIRROR, COMPONENT_SKILL_PACK};

/// The ConfigMap names a run's skills refer to (`skillPackRef`, else `configMapRef`),
/// without duplicates, in order.
pub fn referenced_names(skills: &[SkillRef]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in skills {
        let Some(name) = s.skill_pack_ref.clone().or_else(|| s.config_map_ref.clone()) else { continue };
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Whether `cm` is a mirror this module may overwrite.
pub fn is_mirror(cm: &ConfigMap) -> bool {
    cm.labels().get(COMPONENT).map(String::as_str) == Some(COMPONENT_MIRROR)
}

/// Whether `cm` in the system namespace is a skill ConfigMap that may be mirrored.
pub fn is_mirrorable(cm: &ConfigMap) -> bool {
    cm.labels().get(COMPONENT).map(String::as_str) == Some(COMPONENT_SKILL_PACK)
}

/// The copy of `source` in the run's namespace, owned by the run that first mirrored it.
pub fn mirror_of(source: &ConfigMap, run: &AgentRun) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: source.metadata.name.clone(),
            namespace: run.namespace(),
            labels: Some(BTreeMap::from([
                (COMPONENT.to_string(), COMPONENT_MIRROR.to_string()),
                (labels::AGENT_RUN.to_string(), run.name_any()),
                ("sympozium.ai/managed-by".to_string(), "sympozium".to_string()),
            ])),
            owner_references: Some(run.controller_owner_ref(&()).into_iter().collect()),
            ..Default::default()
        },
        data: source.data.clone(),
        binary_data: source.binary_data.clone(),
        ..Default::default()
    }
}

/// Mirrors the built-in skill ConfigMaps `skills` name from `system_namespace` into the
/// run's namespace: creates missing copies and refreshes stale mirrors. Returns the names
/// it created or refreshed.
pub async fn mirror_skills(
    client: &Client,
    system_namespace: &str,
    run: &AgentRun,
    skills: &[SkillRef],
) -> Result<Vec<String>, kube::Error> {
    let ns = run.namespace().unwrap_or_default();
    if ns == system_namespace {
        return Ok(Vec::new());
    }
    let system: Api<ConfigMap> = Api::namespaced(client.clone(), system_namespace);
    let local: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let mut mirrored = Vec::new();
    for name in referenced_names(skills) {
        let Some(source) = system.get_opt(&name).await? else { continue };
        if !is_mirrorable(&source) {
            continue;
        }
        match local.get_opt(&name).await? {
            None => {
                if create_if_absent(&local, &mirror_of(&source, run)).await? {
                    mirrored.push(name);
                }
            }
            Some(mut existing) if is_mirror(&existing) => {
                if existing.data == source.data && existing.binary_data == source.binary_data {
                    continue;
                }
                existing.data = source.data.clone();
                existing.binary_data = source.binary_data.clone();
                existing.metadata.managed_fields = None;
                let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
                match local.replace(&name, &pp, &existing).await {
                    Ok(_) => mirrored.push(name),
                    // Another run refreshed it at the same time; its copy is as fresh.
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
            // A local SkillPack's ConfigMap or the user's own: never overwritten.
            Some(_) => {}
        }
    }
    Ok(mirrored)
}

/// Label that offers a system-namespace Secret to skill sidecars in run namespaces.
pub const SKILL_SECRET_LABEL: &str = "sympozium.ai/skill-secret";
/// `sympozium.ai/component` of a mirrored skill Secret.
pub const COMPONENT_SECRET_MIRROR: &str = "skill-secret-mirror";

/// Whether `secret` in the system namespace is offered to skill sidecars.
pub fn is_offered(secret: &Secret) -> bool {
    secret.labels().get(SKILL_SECRET_LABEL).map(String::as_str) == Some("true")
}

/// The copy of an offered `source` Secret in the run's namespace, owned by the run.
pub fn secret_mirror_of(source: &Secret, run: &AgentRun) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: source.metadata.name.clone(),
            namespace: run.namespace(),
            labels: Some(BTreeMap::from([
                (COMPONENT.to_string(), COMPONENT_SECRET_MIRROR.to_string()),
                (labels::AGENT_RUN.to_string(), run.name_any()),
                ("sympozium.ai/managed-by".to_string(), "sympozium".to_string()),
            ])),
            owner_references: Some(run.controller_owner_ref(&()).into_iter().collect()),
            ..Default::default()
        },
        data: source.data.clone(),
        type_: source.type_.clone(),
        ..Default::default()
    }
}

/// Copies the offered system Secrets named in `names` into the run's namespace where
/// absent, and refreshes earlier copies. Returns the names it created or refreshed.
pub async fn mirror_secrets(
    client: &Client,
    system_namespace: &str,
    run: &AgentRun,
    names: &[String],
) -> Result<Vec<String>, kube::Error> {
    let ns = run.namespace().unwrap_or_default();
    if ns == system_namespace {
        return Ok(Vec::new());
    }
    let system: Api<Secret> = Api::namespaced(client.clone(), system_namespace);
    let local: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let mut mirrored = Vec::new();
    for name in names {
        let Some(source) = system.get_opt(name).await?.filter(is_offered) else { continue };
        match local.get_opt(name).await? {
            None => {
                if create_if_absent(&local, &secret_mirror_of(&source, run)).await? {
                    mirrored.push(name.clone());
                }
            }
            Some(mut existing)
                if existing.labels().get(COMPONENT).map(String::as_str) == Some(COMPONENT_SECRET_MIRROR)
                    && existing.data != source.data =>
            {
                existing.data = source.data.clone();
                existing.metadata.managed_fields = None;
                let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
                match local.replace(name, &pp, &existing).await {
                    Ok(_) => mirrored.push(name.clone()),
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
            // The user's own Secret, or an up-to-date copy.
            Some(_) => {}
        }
    }
    Ok(mirrored)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn run() -> AgentRun {
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
            "metadata": {"name": "r1", "namespace": "team", "uid": "u1"},
            "spec": {"instanceRef": "i", "agentId": "a", "sessionKey": "", "task": "t",
                     "model": {"provider": "openai", "model": "m", "authSecretRef": ""}}}))
        .unwrap()
    }

    #[test]
    fn names_come_from_skill_pack_refs_else_config_map_refs_once() {
        let skills: Vec<SkillRef> = serde_json::from_value(json!([
            {"skillPackRef": "k8s-ops", "configMapRef": "ignored"}, {"configMapRef": "extra"},
            {"skillPackRef": "k8s-ops"}, {}]))
        .unwrap();
        assert_eq!(referenced_names(&skills), ["k8s-ops", "extra"]);
    }

    #[test]
    fn a_mirror_is_labelled_and_owned_by_the_run() {
        let source: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "k8s-ops",
            "namespace": "sympozium-system", "labels": {"sympozium.ai/component": "skillpack"}},
            "data": {"triage.md": "x"}}))
        .unwrap();
        assert!(is_mirrorable(&source) && !is_mirror(&source));
        let m = mirror_of(&source, &run());
        assert_eq!(m.metadata.namespace.as_deref(), Some("team"));
        assert!(is_mirror(&m));
        assert_eq!(m.labels()["sympozium.ai/agent-run"], "r1");
        assert_eq!(m.owner_references()[0].uid, "u1");
        assert_eq!(m.data, source.data);
        let other: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "settings"}})).unwrap();
        assert!(!is_mirrorable(&other), "only skill ConfigMaps leave the system namespace");
    }
}
