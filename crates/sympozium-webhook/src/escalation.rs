//! No escalation through runs: whatever a user writes that makes the controller grant RBAC
//! to a run's ServiceAccount is checked against that user's own rights, the way Kubernetes
//! checks a Role or RoleBinding (a user may grant only what they hold, unless they have
//! `escalate` on the thing that defines rules or `bind` on the thing they refer to).
//!
//! | written | rules | the user needs |
//! |---|---|---|
//! | SkillPack in a tenant namespace | `sidecar.rbac` | each rule in that namespace, or `escalate` on the pack |
//! | SkillPack in a tenant namespace | `sidecar.clusterRBAC` | refused: cluster rights only come from the system namespace |
//! | SkillPack in the system namespace | `rbac`, `clusterRBAC` | each rule cluster-wide, or `escalate` on the pack |
//! | a skill reference (instance, run, PersonaPack persona) to a pack in the same namespace | `rbac` | each rule in the namespace (`clusterRBAC` refused) |
//! | a skill reference to a system-namespace pack | `rbac`, `clusterRBAC` | `bind` on `skillpacks/<name>` in the namespace, or each rule (namespaced rules there, cluster rules cluster-wide) |
//! | `lifecycle.rbac` (run, instance agent, persona) | rules | each rule in the namespace |
//! | a pack's `sidecar.secretRef` (written in, or referred to from, a tenant namespace) | — | `get` on that Secret in the namespace (or `bind` on a system pack) |
//!
//! The controller creates runs, instances and sub-agents under its own identity, so the
//! checks sit on what a user writes; the controller additionally refuses cluster grants from
//! packs outside the system namespace when a run starts.

use futures::{StreamExt, TryStreamExt};

use kube::{Api, Client};
use sympozium_api::common::{RbacRule, SkillRef};
use sympozium_api::{AgentRun, PersonaPack, SkillPack, SympoziumInstance};

use crate::access::{Access, AccessDenied, Ask};
use crate::secret_reads::SecretUse;

/// API group of the Sympozium kinds.
const GROUP: &str = "sympozium.ai";
/// SubjectAccessReviews in flight at once for one review.
const PARALLEL: usize = 8;
/// The memory skill every persona's instance gets.
const MEMORY_SKILL: &str = "memory";
/// The skill a serving persona's instance gets.
const WEB_ENDPOINT_SKILL: &str = "web-endpoint";

/// Where a set of rules would take effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// In one namespace (a Role).
    Namespace(&'a str),
    /// In every namespace and for cluster-scoped kinds (a ClusterRole).
    Cluster,
}

impl Scope<'_> {
    fn namespace(&self) -> Option<&str> {
        match self {
            Scope::Namespace(ns) => Some(ns),
            Scope::Cluster => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Scope::Namespace(ns) => format!("in namespace \"{ns}\""),
            Scope::Cluster => "cluster-wide".to_string(),
        }
    }
}

/// One right a rule grants: `(rule index, verb, group, resource)`.
pub type Right = (usize, String, String, String);

/// Every (verb, group, resource) a list of rules grants, rule by rule, in order. A rule
/// with an empty list grants nothing (RBAC matches nothing against an empty list).
pub fn rights(rules: &[RbacRule]) -> Vec<Right> {
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        for group in &rule.api_groups {
            for resource in &rule.resources {
                for verb in &rule.verbs {
                    out.push((i, verb.clone(), group.clone(), resource.clone()));
                }
            }
        }
    }
    out
}

/// What a user reads when a right is refused.
pub fn denial(what: &str, user: &str, right: &Right, scope: Scope<'_>) -> String {
    let (rule, verb, group, resource) = right;
    let group = if group.is_empty() { String::new() } else { format!(" (API group \"{group}\")") };
    format!(
        "{what} rule {rule}: user \"{user}\" cannot \"{verb}\" \"{resource}\"{group} {}",
        scope.describe()
    )
}

fn api_error(what: &str) -> impl FnOnce(kube::Error) -> AccessDenied {
    let what = what.to_string();
    move |source| AccessDenied::Review { what, source }
}

async fn ask(access: &Access, question: Ask) -> Result<bool, kube::Error> {
    access.allowed(&question).await
}

/// Checks that the user holds every right `rules` grant in `scope`; the error names the
/// first rule (in order) they lack.
pub async fn check_rules(
    access: &Access,
    scope: Scope<'_>,
    rules: &[RbacRule],
    what: &str,
) -> Result<(), AccessDenied> {
    let wanted = rights(rules);
    // The questions are built before the stream so its futures own what they ask (a stream
    // of closures over borrowed rules is not `Send` for every lifetime axum needs).
    let questions: Vec<_> = wanted
        .iter()
        .map(|(_, verb, group, resource)| ask(access, Ask::new(scope.namespace(), verb, group, resource)))
        .collect();
    let mut answers = futures::stream::iter(questions).buffered(PARALLEL);
    let mut index = 0;
    while let Some(ok) = answers.try_next().await.map_err(api_error(what))? {
        if !ok {
            return Err(AccessDenied::MissingRight(denial(what, access.username(), &wanted[index], scope)));
        }
        index += 1;
    }
    Ok(())
}

/// Where a SkillPack a run refers to comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The run's own namespace (written by a tenant).
    Local,
    /// The system namespace (admin-managed).
    System,
}

/// The SkillPack `name` resolves to for a run in `ns`, as the controller resolves it: the
/// namespace's own pack first, then the system namespace's.
pub async fn resolve(
    client: &Client,
    system_namespace: &str,
    ns: &str,
    name: &str,
) -> Result<Option<(SkillPack, Origin)>, kube::Error> {
    let name = name.strip_prefix("skillpack-").unwrap_or(name);
    if name.is_empty() {
        return Ok(None);
    }
    let origin = if ns == system_namespace { Origin::System } else { Origin::Local };
    if let Some(pack) = Api::<SkillPack>::namespaced(client.clone(), ns).get_opt(name).await? {
        return Ok(Some((pack, origin)));
    }
    if ns == system_namespace {
        return Ok(None);
    }
    Ok(Api::<SkillPack>::namespaced(client.clone(), system_namespace)
        .get_opt(name)
        .await?
        .map(|p| (p, Origin::System)))
}

/// Checks a reference to SkillPack `name` from an object in `ns`; `what` names the field
/// (e.g. `spec.skills[1] "k8s-ops"`). Packs that do not exist (yet) grant nothing.
pub async fn check_skill(
    client: &Client,
    access: &Access,
    system_namespace: &str,
    ns: &str,
    name: &str,
    what: &str,
) -> Result<(), AccessDenied> {
    let resolved = resolve(client, system_namespace, ns, name).await.map_err(|source| {
        AccessDenied::ReadSkillPack { what: what.to_string(), name: name.to_string(), source }
    })?;
    let Some((pack, origin)) = resolved else { return Ok(()) };
    let Some(sidecar) = pack.spec.sidecar else { return Ok(()) };
    let pack_name = pack.metadata.name.as_deref().unwrap_or(name);
    let secret = sidecar.secret_ref.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if sidecar.rbac.is_empty() && sidecar.cluster_rbac.is_empty() && secret.is_none() {
        return Ok(());
    }
    let bound = origin == Origin::System && {
        let bind = Ask::new(Some(ns), "bind", GROUP, "skillpacks").named(pack_name);
        access.allowed(&bind).await.map_err(api_error(what))?
    };
    if bound {
        return Ok(());
    }
    // The sidecar mounts the Secret of the run's namespace (pods mount no other).
    if let Some(secret) = secret {
        let used = SecretUse { field: format!("{what} sidecar.secretRef"), secret: secret.to_string() };
        crate::secret_reads::check(access, ns, std::slice::from_ref(&used)).await?;
    }
    match origin {
        Origin::Local => {
            if !sidecar.cluster_rbac.is_empty() {
                return Err(AccessDenied::ClusterRights(format!(
                    "{what} clusterRBAC: SkillPack \"{pack_name}\" in namespace \"{ns}\" asks for cluster-wide rights, which are only granted from SkillPacks in the system namespace \"{system_namespace}\""
                )));
            }
            check_rules(access, Scope::Namespace(ns), &sidecar.rbac, &format!("{what} rbac")).await
        }
        Origin::System => {
            let hint = format!(
                " (to use this admin-managed skill without holding its rules, ask for \"bind\" on skillpacks \"{pack_name}\" in namespace \"{ns}\")"
            );
            check_rules(access, Scope::Namespace(ns), &sidecar.rbac, &format!("{what} rbac"))
                .await
                .map_err(|e| e.with_hint(&hint))?;
            check_rules(access, Scope::Cluster, &sidecar.cluster_rbac, &format!("{what} clusterRBAC"))
                .await
                .map_err(|e| e.with_hint(&hint))
        }
    }
}

/// Checks a list of skill references at `field` (e.g. `spec.skills`).
async fn check_skill_refs(
    client: &Client,
    access: &Access,
    system_namespace: &str,
    ns: &str,
    field: &str,
    skills: &[SkillRef],
) -> Result<(), AccessDenied> {
    for (i, skill) in skills.iter().enumerate() {
        let Some(name) = skill.skill_pack_ref.as_deref() else { continue };
        let what = format!("{field}[{i}] \"{name}\"");
        check_skill(client, access, system_namespace, ns, name, &what).await?;
    }
    Ok(())
}

/// Checks `lifecycle.rbac` at `field`.
async fn check_lifecycle(
    access: &Access,
    ns: &str,
    field: &str,
    rules: Option<&[RbacRule]>,
) -> Result<(), AccessDenied> {
    match rules {
        Some(rules) if !rules.is_empty() => check_rules(access, Scope::Namespace(ns), rules, field).await,
        _ => Ok(()),
    }
}

/// A SkillPack being written to `ns`: a tenant namespace may not ask for cluster rights, and
/// its author must hold the rules it defines (or have `escalate` on skillpacks).
pub async fn review_skill_pack(
    access: &Access,
    system_namespace: &str,
    ns: &str,
    pack: &SkillPack,
) -> Result<(), AccessDenied> {
    let Some(sidecar) = &pack.spec.sidecar else { return Ok(()) };
    let name = pack.metadata.name.as_deref().unwrap_or_default();
    let secret = sidecar.secret_ref.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if let Some(secret) = secret.filter(|_| ns != system_namespace) {
        let used = SecretUse {
            field: format!("SkillPack \"{name}\" sidecar.secretRef"),
            secret: secret.to_string(),
        };
        crate::secret_reads::check(access, ns, std::slice::from_ref(&used)).await?;
    }
    if ns != system_namespace && !sidecar.cluster_rbac.is_empty() {
        return Err(AccessDenied::ClusterRights(format!(
            "SkillPack \"{name}\" sidecar.clusterRBAC: cluster-wide rights are only granted from SkillPacks in the system namespace \"{system_namespace}\" (admin-managed), not from namespace \"{ns}\"; remove sidecar.clusterRBAC or ask an admin to install the pack there"
        )));
    }
    if sidecar.rbac.is_empty() && sidecar.cluster_rbac.is_empty() {
        return Ok(());
    }
    let escalate = Ask::new(Some(ns), "escalate", GROUP, "skillpacks").named(name);
    if access.allowed(&escalate).await.map_err(api_error(&format!("SkillPack \"{name}\"")))? {
        return Ok(());
    }
    // A system pack's namespaced rules apply in every namespace that uses it.
    let scope = if ns == system_namespace { Scope::Cluster } else { Scope::Namespace(ns) };
    let hint = " (defining rules you do not hold needs \"escalate\" on skillpacks)";
    check_rules(access, scope, &sidecar.rbac, &format!("SkillPack \"{name}\" sidecar.rbac"))
        .await
        .map_err(|e| e.with_hint(hint))?;
    check_rules(
        access,
        Scope::Cluster,
        &sidecar.cluster_rbac,
        &format!("SkillPack \"{name}\" sidecar.clusterRBAC"),
    )
    .await
    .map_err(|e| e.with_hint(hint))
}

/// An instance being written to `ns`: its skills and its agent's `lifecycle.rbac` (which
/// runs from schedules and chat messages copy).
pub async fn review_instance(
    client: &Client,
    access: &Access,
    system_namespace: &str,
    ns: &str,
    instance: &SympoziumInstance,
) -> Result<(), AccessDenied> {
    check_skill_refs(client, access, system_namespace, ns, "spec.skills", &instance.spec.skills).await?;
    let hooks = instance.spec.agents.default.lifecycle.as_ref().map(|l| l.rbac.as_slice());
    check_lifecycle(access, ns, "spec.agents.default.lifecycle.rbac", hooks).await
}

/// An AgentRun being written to `ns`: its own skills and `lifecycle.rbac`.
pub async fn review_run(
    client: &Client,
    access: &Access,
    system_namespace: &str,
    ns: &str,
    run: &AgentRun,
) -> Result<(), AccessDenied> {
    check_skill_refs(client, access, system_namespace, ns, "spec.skills", &run.spec.skills).await?;
    let hooks = run.spec.lifecycle.as_ref().map(|l| l.rbac.as_slice());
    check_lifecycle(access, ns, "spec.lifecycle.rbac", hooks).await
}

/// The SkillPacks a persona's instance gets: its own, `memory`, and `web-endpoint` when it
/// serves (as the PersonaPack controller stamps them), without duplicates.
pub fn persona_skills(persona: &sympozium_api::personapack::PersonaSpec) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let serving = persona.web_endpoint.as_ref().is_some_and(|w| w.enabled);
    let extra = [Some(MEMORY_SKILL), serving.then_some(WEB_ENDPOINT_SKILL)];
    for name in persona.skills.iter().map(|s| s.trim()).chain(extra.into_iter().flatten()) {
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    out
}

/// An enabled PersonaPack being written to `ns`: every persona's skills and
/// `lifecycle.rbac` (the instances it stamps out are created by the controller, so this is
/// where the user is checked).
pub async fn review_pack(
    client: &Client,
    access: &Access,
    system_namespace: &str,
    ns: &str,
    pack: &PersonaPack,
) -> Result<(), AccessDenied> {
    for (i, persona) in pack.spec.personas.iter().enumerate() {
        for name in persona_skills(persona) {
            let what = format!("spec.personas[{i}] \"{}\" skill \"{name}\"", persona.name);
            check_skill(client, access, system_namespace, ns, &name, &what).await?;
        }
        let hooks = persona.lifecycle.as_ref().map(|l| l.rbac.as_slice());
        check_lifecycle(access, ns, &format!("spec.personas[{i}].lifecycle.rbac"), hooks).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn rules_expand_rule_by_rule_and_empty_lists_grant_nothing() {
        let rules: Vec<RbacRule> = serde_json::from_value(json!([
            {"apiGroups": ["", "apps"], "resources": ["pods"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": [], "verbs": ["*"]},
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]))
        .unwrap();
        let r = rights(&rules);
        assert_eq!(r.len(), 5);
        assert_eq!(r[0], (0, "get".into(), String::new(), "pods".into()));
        assert_eq!(r[3], (0, "list".into(), "apps".into(), "pods".into()));
        assert_eq!(r[4], (2, "*".into(), "*".into(), "*".into()));
    }

    #[test]
    fn denials_name_the_rule_the_user_the_verb_and_where() {
        let core = (1, "list".to_string(), String::new(), "secrets".to_string());
        assert_eq!(
            denial("spec.skills[1] \"k8s-ops\" rbac", "alice", &core, Scope::Namespace("team-a")),
            "spec.skills[1] \"k8s-ops\" rbac rule 1: user \"alice\" cannot \"list\" \"secrets\" in namespace \"team-a\""
        );
        let apps = (0, "get".to_string(), "apps".to_string(), "deployments".to_string());
        assert_eq!(
            denial("x", "bob", &apps, Scope::Cluster),
            "x rule 0: user \"bob\" cannot \"get\" \"deployments\" (API group \"apps\") cluster-wide"
        );
    }

    #[test]
    fn a_persona_gets_memory_and_web_endpoint_when_serving() {
        let persona: sympozium_api::personapack::PersonaSpec = serde_json::from_value(json!({
            "name": "sre", "systemPrompt": "x", "skills": ["k8s-ops", " ", "k8s-ops", "memory"],
            "webEndpoint": {"enabled": true}}))
        .unwrap();
        assert_eq!(persona_skills(&persona), ["k8s-ops", "memory", "web-endpoint"]);
    }
}
