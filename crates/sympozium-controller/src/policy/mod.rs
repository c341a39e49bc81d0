//! The SympoziumPolicy controller: reports how many instances reference each policy
//! (`status.boundInstances`) and keeps that count right as instances come, go or switch
//! policies — every instance change re-counts the policies of its namespace.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use sympozium_api::{SympoziumInstance, SympoziumPolicy, SympoziumPolicyStatus};
use sympozium_kube::FIELD_MANAGER;

use crate::context::{Context, backoff_key};

/// Name used in metrics and logs.
pub const CONTROLLER: &str = "sympoziumpolicy";

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// Runs the controller until the process is asked to stop.
pub async fn run(ctx: Arc<Context>) {
    let controller =
        Controller::new(ctx.scoped::<SympoziumPolicy>(), watcher::Config::default().any_semantic())
            .with_config(ctx.controller_config());
    let policies = controller.store();
    // Run starts read their instance's policy from it.
    let _ = ctx.watched.policies.set(policies.clone());
    // An instance that switched policies must decrement the old one too, which its new
    // state no longer names: re-count every policy in the instance's namespace.
    let mapper = move |instance: SympoziumInstance| {
        let ns = instance.namespace();
        policies
            .state()
            .into_iter()
            .filter(|p| p.namespace() == ns)
            .map(|p| ObjectRef::from_obj(p.as_ref()))
            .collect::<Vec<_>>()
    };
    controller
        .watches(ctx.scoped::<SympoziumInstance>(), watcher::Config::default(), mapper)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

/// How many of `instances` reference `policy` by name.
pub fn bound_instances(policy: &str, instances: &[SympoziumInstance]) -> i32 {
    let n = instances
        .iter()
        .filter(|i| i.metadata.deletion_timestamp.is_none())
        .filter(|i| i.spec.policy_ref.as_deref() == Some(policy))
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The policy's status for `bound` instances, keeping the condition's transition time
/// while the condition holds.
pub fn status(policy: &SympoziumPolicy, bound: i32) -> SympoziumPolicyStatus {
    let (state, reason) = if bound > 0 { ("True", "Bound") } else { ("False", "Unbound") };
    let previous = policy.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Bound"));
    let last_transition_time = previous
        .filter(|c| c.status == state)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    SympoziumPolicyStatus {
        bound_instances: bound,
        conditions: vec![Condition {
            type_: "Bound".into(),
            status: state.into(),
            reason: reason.into(),
            message: format!("{bound} instance(s) reference this policy"),
            last_transition_time,
            observed_generation: policy.metadata.generation,
        }],
    }
}

#[tracing::instrument(skip_all, fields(policy = %policy.name_any(), namespace = policy.namespace().unwrap_or_default()))]
async fn reconcile(policy: Arc<SympoziumPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = policy.namespace().unwrap_or_default();
    let name = policy.name_any();
    let instances: Api<SympoziumInstance> = Api::namespaced(ctx.client.clone(), &ns);
    let all = instances.list(&ListParams::default()).await?.items;
    let new_status = status(&policy, bound_instances(&name, &all));
    if policy.status.as_ref() != Some(&new_status) {
        let patch = serde_json::json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumPolicy",
                                       "status": new_status});
        let api: Api<SympoziumPolicy> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    }
    ctx.backoff.succeeded(&backoff_key(CONTROLLER, &*policy));
    Ok(Action::requeue(Duration::from_secs(600)))
}

fn error_policy(policy: Arc<SympoziumPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retry(CONTROLLER, "kube", &*policy, error)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn instance(name: &str, policy: Option<&str>) -> SympoziumInstance {
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
            "metadata": {"name": name}, "spec": {"agents": {"default": {"model": "m"}}, "policyRef": policy}}))
        .unwrap()
    }

    #[test]
    fn counts_only_instances_naming_the_policy() {
        let all = [instance("a", Some("strict")), instance("b", Some("other")), instance("c", None)];
        assert_eq!(bound_instances("strict", &all), 1);
        let p: SympoziumPolicy = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
            "kind": "SympoziumPolicy", "metadata": {"name": "strict"}, "spec": {}}))
        .unwrap();
        let s = status(&p, 1);
        assert_eq!((s.bound_instances, s.conditions[0].status.as_str()), (1, "True"));
        assert_eq!(status(&p, 0).conditions[0].reason, "Unbound");
    }
}
