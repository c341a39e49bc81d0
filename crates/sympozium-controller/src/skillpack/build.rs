//! Pure builders of a SkillPack's ConfigMap and status. No client here.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sympozium_api::labels::{self, COMPONENT};
use sympozium_api::skillpack::Skill;
use sympozium_api::{SkillPack, SkillPackStatus};

/// Label naming the SkillPack a ConfigMap holds.
pub const SKILL_PACK_LABEL: &str = "sympozium.ai/skillpack";
/// `sympozium.ai/component` of a SkillPack's own ConfigMap.
pub const COMPONENT_SKILL_PACK: &str = "skillpack";
/// `sympozium.ai/component` of a built-in skill ConfigMap mirrored into a run namespace.
pub const COMPONENT_MIRROR: &str = "skillpack-mirror";
/// Phase of a pack whose ConfigMap exists.
pub const PHASE_READY: &str = "Ready";

/// The Markdown file of one skill: the content alone, or a title and the description
/// quoted above it.
pub fn skill_markdown(skill: &Skill) -> String {
    match skill.description.as_deref().filter(|d| !d.is_empty()) {
        None => skill.content.clone(),
        Some(description) => format!("# {}\n\n> {description}\n\n{}", skill.name, skill.content),
    }
}

/// `<skill>.md` → Markdown, one entry per skill.
pub fn data(pack: &SkillPack) -> BTreeMap<String, String> {
    pack.spec.skills.iter().map(|s| (format!("{}.md", s.name), skill_markdown(s))).collect()
}

/// Labels of a pack's ConfigMap.
pub fn config_map_labels(pack: &SkillPack) -> BTreeMap<String, String> {
    BTreeMap::from([
        (COMPONENT.to_string(), COMPONENT_SKILL_PACK.to_string()),
        (SKILL_PACK_LABEL.to_string(), pack.name_any()),
        (labels::PART_OF.to_string(), "sympozium".to_string()),
    ])
}

/// The ConfigMap named exactly like the pack, owned by it.
pub fn config_map(pack: &SkillPack) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(pack.name_any()),
            namespace: pack.namespace(),
            labels: Some(config_map_labels(pack)),
            owner_references: Some(pack.controller_owner_ref(&()).into_iter().collect()),
            ..Default::default()
        },
        data: Some(data(pack)),
        ..Default::default()
    }
}

/// `existing` rewritten to hold the pack: its data replaced, the pack's labels set (other
/// labels kept) and the pack as its only controller (a mirror's run ownership is dropped).
/// `None` when nothing would change.
pub fn take_over(pack: &SkillPack, existing: &ConfigMap) -> Option<ConfigMap> {
    let desired = config_map(pack);
    let mut cm = existing.clone();
    let mut labels = cm.metadata.labels.clone().unwrap_or_default();
    labels.extend(config_map_labels(pack));
    let mut owners: Vec<_> = cm
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|o| o.controller != Some(true))
        .collect();
    owners.extend(desired.metadata.owner_references.clone().unwrap_or_default());
    let unchanged = cm.data == desired.data
        && cm.binary_data.as_ref().is_none_or(BTreeMap::is_empty)
        && cm.metadata.labels.as_ref() == Some(&labels)
        && cm.metadata.owner_references.as_ref() == Some(&owners);
    if unchanged {
        return None;
    }
    cm.data = desired.data;
    cm.binary_data = None;
    cm.metadata.labels = Some(labels);
    cm.metadata.owner_references = Some(owners);
    cm.metadata.managed_fields = None;
    Some(cm)
}

/// The status of a pack whose ConfigMap is in place, keeping the condition's transition
/// time while it holds.
pub fn ready_status(pack: &SkillPack) -> SkillPackStatus {
    let count = i32::try_from(pack.spec.skills.len()).unwrap_or(i32::MAX);
    let previous = pack.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    let last_transition_time = previous
        .filter(|c| c.status == "True")
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    SkillPackStatus {
        phase: Some(PHASE_READY.into()),
        config_map_name: Some(pack.name_any()),
        skill_count: count,
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "ConfigMapReady".into(),
            message: format!("{count} skill(s) in ConfigMap {}", pack.name_any()),
            last_transition_time,
            observed_generation: pack.metadata.generation,
        }],
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn pack() -> SkillPack {
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SkillPack",
            "metadata": {"name": "k8s-ops", "namespace": "team", "uid": "p1", "generation": 2},
            "spec": {"skills": [
                {"name": "triage", "content": "Look at events first."},
                {"name": "logs", "description": "Read pod logs", "content": "Use kubectl logs."}]}}))
        .unwrap()
    }

    #[test]
    fn one_markdown_file_per_skill_with_the_description_quoted() {
        let cm = config_map(&pack());
        let data = cm.data.unwrap();
        assert_eq!(data["triage.md"], "Look at events first.");
        assert_eq!(data["logs.md"], "# logs\n\n> Read pod logs\n\nUse kubectl logs.");
        assert_eq!(cm.metadata.name.as_deref(), Some("k8s-ops"));
        let labels = cm.metadata.labels.unwrap();
        assert_eq!(labels["sympozium.ai/component"], "skillpack");
        assert_eq!(labels["sympozium.ai/skillpack"], "k8s-ops");
        let owner = &cm.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("SkillPack", "p1", Some(true))
        );
    }

    #[test]
    fn taking_over_a_mirror_replaces_data_labels_and_controller() {
        let p = pack();
        let mirror: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "k8s-ops",
            "labels": {"sympozium.ai/component": "skillpack-mirror", "keep": "me"},
            "ownerReferences": [{"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "name": "r",
                                 "uid": "r1", "controller": true}]},
            "data": {"old.md": "stale"}}))
        .unwrap();
        let cm = take_over(&p, &mirror).unwrap();
        assert_eq!(cm.data, Some(data(&p)));
        let labels = cm.metadata.labels.clone().unwrap();
        assert_eq!((labels["sympozium.ai/component"].as_str(), labels["keep"].as_str()), ("skillpack", "me"));
        let owners = cm.metadata.owner_references.clone().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].uid, "p1");
        assert!(take_over(&p, &cm).is_none(), "a converged ConfigMap is left alone");
    }

    #[test]
    fn ready_status_counts_skills() {
        let s = ready_status(&pack());
        assert_eq!(
            (s.phase.as_deref(), s.config_map_name.as_deref(), s.skill_count),
            (Some("Ready"), Some("k8s-ops"), 2)
        );
        assert_eq!(s.conditions[0].observed_generation, Some(2));
    }
}
