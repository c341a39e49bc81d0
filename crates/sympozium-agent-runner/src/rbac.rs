//! A readable summary of the Kubernetes permissions a run's skills grant, for the
//! "Tool Usage" prompt section, so the model knows what it may do instead of being told it is
//! cluster-admin. The controller passes the rules it bound (`SKILL_RBAC`):
//!
//! ```json
//! {"k8s-ops": {"namespace": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
//!              "cluster": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]}}
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

/// One RBAC rule (the fields of a Kubernetes `PolicyRule` that matter here).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// API groups (`""` = core).
    #[serde(default)]
    pub api_groups: Vec<String>,
    /// Resources.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Verbs.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// Specific object names, if restricted.
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// Rules of one skill.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct SkillRbac {
    /// Namespaced rules (Role in the run's namespace).
    #[serde(default)]
    pub namespace: Vec<Rule>,
    /// Cluster rules (ClusterRole).
    #[serde(default)]
    pub cluster: Vec<Rule>,
}

/// Parses `SKILL_RBAC`; empty input = unknown (`None`).
pub fn parse(raw: &str) -> Result<Option<BTreeMap<String, SkillRbac>>, serde_json::Error> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(raw).map(Some)
}

fn describe(rule: &Rule) -> String {
    let resources: Vec<String> = rule
        .resources
        .iter()
        .flat_map(|r| {
            let groups: Vec<&str> = if rule.api_groups.is_empty() {
                vec![""]
            } else {
                rule.api_groups.iter().map(String::as_str).collect()
            };
            groups.into_iter().map(move |g| if g.is_empty() { r.clone() } else { format!("{r}.{g}") })
        })
        .collect();
    let mut text = format!("{} {}", rule.verbs.join(", "), resources.join(", "));
    if !rule.resource_names.is_empty() {
        text.push_str(&format!(" (only {})", rule.resource_names.join(", ")));
    }
    text
}

/// Renders the summary lines; `namespace` names the run's namespace.
pub fn summary(skills: &BTreeMap<String, SkillRbac>, namespace: &str) -> String {
    let ns = if namespace.is_empty() {
        "this run's namespace".to_string()
    } else {
        format!("namespace {namespace}")
    };
    let mut lines = Vec::new();
    for (skill, rbac) in skills {
        for rule in &rbac.namespace {
            lines.push(format!("- {skill}, in {ns}: {}", describe(rule)));
        }
        for rule in &rbac.cluster {
            lines.push(format!("- {skill}, cluster-wide: {}", describe(rule)));
        }
    }
    if lines.is_empty() {
        return "The loaded skills grant no Kubernetes permissions: expect kubectl to be forbidden."
            .to_string();
    }
    format!(
        "Kubernetes permissions of this run (granted by the loaded skills, nothing more):\n{}\n\
         Anything else is forbidden; do not retry forbidden calls.",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_rules() {
        let skills = parse(
            r#"{"k8s-ops": {"namespace": [{"apiGroups": ["", "apps"], "resources": ["deployments"], "verbs": ["get", "list"]}],
                "cluster": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"], "resourceNames": ["n1"]}]}}"#,
        )
        .unwrap()
        .unwrap();
        let text = summary(&skills, "team-a");
        assert!(
            text.contains("- k8s-ops, in namespace team-a: get, list deployments, deployments.apps"),
            "{text}"
        );
        assert!(text.contains("- k8s-ops, cluster-wide: get nodes (only n1)"), "{text}");
        assert!(parse("").unwrap().is_none());
        assert!(summary(&BTreeMap::new(), "x").contains("no Kubernetes permissions"));
    }
}
