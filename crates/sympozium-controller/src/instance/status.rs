//! Status: what the instance reports, computed from what was observed and converged, and
//! written through the status subresource only when it changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::instance::WebEndpointStatus;
use sympozium_api::labels::{self, component};
use sympozium_api::{SympoziumInstance, SympoziumInstanceStatus};
use sympozium_kube::FIELD_MANAGER;

use super::apply::Converged;
use super::dereference::Observed;

/// Computes the instance's status. `previous` keeps condition transition times and
/// channel health timestamps stable.
pub fn compute(
    inst: &SympoziumInstance,
    observed: &Observed,
    converged: &Converged,
) -> SympoziumInstanceStatus {
    let previous = inst.status.clone().unwrap_or_default();
    let phase_of = |r: &sympozium_api::AgentRun| r.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
    let live = observed.runs.iter().filter(|r| r.metadata.deletion_timestamp.is_none());
    let active = live
        .clone()
        .filter(|r| matches!(phase_of(r), AgentRunPhase::Running | AgentRunPhase::Serving))
        .count();
    let serving = live.clone().any(|r| phase_of(r) == AgentRunPhase::Serving);

    let mut channels = converged.channels.clone();
    let now = Timestamp::now();
    for ch in &mut channels {
        let reported = previous.channels.iter().find(|p| p.type_ == ch.type_);
        ch.last_health_check = reported.and_then(|p| p.last_health_check.clone());
        // A running channel's own fresh report (it knows its platform connection) wins
        // over what the Deployment's readiness alone says.
        if let Some(r) = reported.filter(|r| super::health::fresh(r, now))
            && matches!(ch.status.as_str(), "Connected" | "Disconnected")
        {
            ch.status = r.status.clone();
            ch.message = r.message.clone();
        }
    }

    let broken: Vec<_> = channels.iter().filter(|c| c.status == "Error").collect();
    let (phase, ready) = if !converged.errors.is_empty() {
        ("Error", condition(false, "ApplyFailed", converged.errors.join("; ")))
    } else if !broken.is_empty() {
        let detail: Vec<_> = broken
            .iter()
            .map(|c| format!("{}: {}", c.type_, c.message.clone().unwrap_or_default()))
            .collect();
        let phase = if serving { "Serving" } else { "Running" };
        (phase, condition(false, "ChannelNotReady", detail.join("; ")))
    } else if serving {
        ("Serving", condition(true, "Serving", "all children converged; the web endpoint is serving".into()))
    } else {
        ("Running", condition(true, "Reconciled", "all children converged".into()))
    };

    let web_endpoint = live
        .clone()
        .find(|r| r.labels().get(labels::COMPONENT).map(String::as_str) == Some(component::WEB_ENDPOINT))
        .map(|r| {
            let status = r.status.clone().unwrap_or_default();
            // The serving run records its public URL (the gateway route, else its Service)
            // and its key Secret once it serves.
            let annotation = |k: &str| r.annotations().get(k).filter(|v| !v.is_empty()).cloned();
            WebEndpointStatus {
                status: format!("{:?}", status.phase.unwrap_or_default()),
                url: annotation(crate::gateway::build::WEB_URL_ANNOTATION).or_else(|| {
                    status
                        .service_name
                        .map(|svc| format!("http://{svc}.{}.svc:8080", r.namespace().unwrap_or_default()))
                }),
                auth_secret_name: annotation(crate::gateway::build::WEB_KEY_SECRET_ANNOTATION),
            }
        });

    SympoziumInstanceStatus {
        phase: Some(phase.into()),
        channels,
        active_agent_pods: i32::try_from(active).unwrap_or(i32::MAX),
        // Every run is added once, when first seen (then marked counted), so the total
        // keeps growing while history pruning deletes old runs.
        total_agent_runs: previous
            .total_agent_runs
            .saturating_add(i64::try_from(uncounted(observed).count()).unwrap_or(i64::MAX)),
        // Like the run count, each priced run's cost is added once and then marked, so the
        // total survives history pruning.
        cost: sympozium_api::pricing::add_to_total(
            previous.cost.as_ref(),
            &cost_uncounted(observed).filter_map(|r| r.status.as_ref()?.cost.as_ref()).collect::<Vec<_>>(),
        ),
        conditions: vec![keep_transition_time(ready, &previous.conditions, inst.metadata.generation)],
        web_endpoint,
    }
}

/// Priced runs of the instance whose cost is not yet in `status.cost`.
pub fn cost_uncounted(observed: &Observed) -> impl Iterator<Item = &sympozium_api::AgentRun> {
    observed.runs.iter().map(|r| &**r).filter(|r| {
        !r.annotations().contains_key(labels::COST_COUNTED)
            && r.status.as_ref().is_some_and(|s| s.cost.is_some())
    })
}

/// Runs of the instance not yet in `status.totalAgentRuns`.
pub fn uncounted(observed: &Observed) -> impl Iterator<Item = &sympozium_api::AgentRun> {
    observed.runs.iter().map(|r| &**r).filter(|r| !r.annotations().contains_key(labels::COUNTED))
}

fn condition(ok: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: "Ready".into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        last_transition_time: Time(Timestamp::now()),
        observed_generation: None,
    }
}

fn keep_transition_time(mut new: Condition, previous: &[Condition], generation: Option<i64>) -> Condition {
    new.observed_generation = generation;
    if let Some(old) = previous.iter().find(|c| c.type_ == new.type_)
        && old.status == new.status
    {
        new.last_transition_time = old.last_transition_time.clone();
    }
    new
}

/// Whether two statuses differ in anything but timestamps that `compute` preserves anyway.
pub fn changed(old: Option<&SympoziumInstanceStatus>, new: &SympoziumInstanceStatus) -> bool {
    old != Some(new)
}

/// Writes `status` through the status subresource (server-side apply). With
/// `resource_version`, only if the instance is still at that version (a 409 otherwise):
/// a run total computed from an older status must not overwrite a newer one. Returns the
/// instance's new resourceVersion.
pub async fn write(
    api: &Api<SympoziumInstance>,
    name: &str,
    status: &SympoziumInstanceStatus,
    resource_version: Option<&str>,
) -> Result<Option<String>, kube::Error> {
    let mut patch = serde_json::json!({
        "apiVersion": "sympozium.ai/v1alpha1",
        "kind": "SympoziumInstance",
        "status": status,
    });
    if let Some(rv) = resource_version {
        patch["metadata"] = serde_json::json!({ "resourceVersion": rv });
    }
    let written =
        api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(written.metadata.resource_version)
}
