//! Cluster-wide grants only from admin-managed packs: a SkillPack in a tenant namespace can
//! carry `clusterRBAC` (written before the admission webhook was installed, or with the
//! webhook bypassed), but the controller — which could grant it — never does. The run
//! starts without those rules and says so: a Warning Event and the `ClusterRBACDenied`
//! condition name the packs. This is the second line behind the webhook's review of what
//! users write (`sympozium-webhook`'s `escalation` module), and it also covers runs the
//! controller creates itself (schedules, chat messages, sub-agents).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::skillpack::SkillSidecar;

use super::{Error, publish, terminal};
use crate::context::Context;

/// Condition type set on a run whose packs' cluster rules were withheld.
pub const CONDITION: &str = "ClusterRBACDenied";
/// Event reason and condition reason.
pub const REASON: &str = "ClusterRBACDenied";

/// Clears `sidecar.clusterRBAC` unless the pack is admin-managed (from the system
/// namespace); true when there was something to withhold.
pub fn withhold_cluster_rbac(sidecar: &mut SkillSidecar, admin_managed: bool) -> bool {
    if admin_managed || sidecar.cluster_rbac.is_empty() {
        return false;
    }
    sidecar.cluster_rbac.clear();
    true
}

/// What the run's condition and Event say about `packs`.
pub fn message(packs: &[String], run_namespace: &str, system_namespace: &str) -> String {
    let names = packs.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
    format!(
        "clusterRBAC of SkillPack {names} in namespace \"{run_namespace}\" was not granted: cluster-wide rights only come from SkillPacks in the system namespace \"{system_namespace}\""
    )
}

/// Records on the run (condition, once; Warning Event when first set) that cluster rules
/// of `packs` were withheld. Nothing when `packs` is empty.
pub async fn report_withheld(
    run: &AgentRun,
    api: &Api<AgentRun>,
    ctx: &Context,
    packs: &[String],
    phase: AgentRunPhase,
) -> Result<(), Error> {
    if packs.is_empty() {
        return Ok(());
    }
    let text = message(packs, &run.namespace().unwrap_or_default(), &ctx.settings.system_namespace);
    let already = run
        .status
        .as_ref()
        .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == CONDITION && c.message == text));
    if already {
        return Ok(());
    }
    let at = Time(ctx.clock.now());
    let generation = run.metadata.generation;
    let set = terminal::transition(api, ctx, run, &[phase], |s| {
        s.conditions.retain(|c| c.type_ != CONDITION);
        s.conditions.push(Condition {
            type_: CONDITION.into(),
            status: "True".into(),
            reason: REASON.into(),
            message: text.clone(),
            last_transition_time: at.clone(),
            observed_generation: generation,
        });
    })
    .await?;
    if set {
        tracing::warn!(run = %run.name_any(), %text, "cluster RBAC withheld");
        publish(ctx, run, EventType::Warning, REASON, &text).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn sidecar() -> SkillSidecar {
        serde_json::from_value(json!({"image": "i",
            "rbac": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
            "clusterRBAC": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]}))
        .unwrap()
    }

    #[test]
    fn only_admin_managed_packs_keep_cluster_rules() {
        let mut tenant = sidecar();
        assert!(withhold_cluster_rbac(&mut tenant, false));
        assert!(tenant.cluster_rbac.is_empty());
        assert_eq!(tenant.rbac.len(), 1, "namespaced rules are the webhook's to judge");
        let mut admin = sidecar();
        assert!(!withhold_cluster_rbac(&mut admin, true));
        assert_eq!(admin.cluster_rbac.len(), 1);
        let mut nothing = SkillSidecar { cluster_rbac: Vec::new(), ..sidecar() };
        assert!(!withhold_cluster_rbac(&mut nothing, false), "nothing withheld, nothing reported");
    }

    #[test]
    fn the_message_names_the_packs_and_the_system_namespace() {
        assert_eq!(
            message(&["evil".into(), "x".into()], "team-a", "sympozium-system"),
            "clusterRBAC of SkillPack \"evil\", \"x\" in namespace \"team-a\" was not granted: cluster-wide rights only come from SkillPacks in the system namespace \"sympozium-system\""
        );
    }
}
