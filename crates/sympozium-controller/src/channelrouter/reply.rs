//! Answers: a finished channel run sends exactly one reply to the chat it came from —
//! from its `agent.run.completed` event, or from its status when it ends without one
//! (crash, timeout, policy refusal). The reply is published under the message id
//! `reply/<ns>/<run>` (JetStream stores one copy), then the `reply-state` annotation is
//! switched from `pending` to `sent` under the run's resourceVersion, so both paths and
//! several controller replicas racing still make one reply, and a crash between the two
//! steps repeats the publish instead of losing the reply.

use futures::StreamExt;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sympozium_api::{AgentRun, labels};
use sympozium_bus::{Bus, Delivery};
use sympozium_kube::FIELD_MANAGER;

use super::build::{self, REPLY_STATE, SOURCE_VALUE};
use super::error::RouterError;

fn selector() -> String {
    format!("{}={SOURCE_VALUE}", labels::SOURCE)
}

/// Switches the annotation `key` from `pending` to `sent` under the run's resourceVersion,
/// starting from `known` (the copy a watch or list just returned) and reading the run only
/// after a conflict; `Ok(Some(run))` = this caller won and owns the follow-up (several
/// paths and replicas may race for it).
pub async fn claim(
    api: &Api<AgentRun>,
    name: &str,
    key: &str,
    known: Option<AgentRun>,
) -> Result<Option<AgentRun>, kube::Error> {
    let mut known = known;
    for _ in 0..5 {
        let run = match known.take() {
            Some(run) => run,
            None => match api.get_opt(name).await? {
                Some(run) => run,
                None => return Ok(None),
            },
        };
        if run.annotations().get(key).map(String::as_str) != Some("pending") {
            return Ok(None);
        }
        let patch = json!({"metadata": {"resourceVersion": run.resource_version(),
            "annotations": {key: "sent"}}});
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        match api.patch(name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(Some(run)),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Sends the reply of `run` (as a watch or list just returned it) with `text`, then claims
/// it. Publishing first means a crash in between repeats the publish rather than losing the
/// reply, and the message id `reply/<ns>/<run>` makes JetStream store any repeat — from
/// another path, replica or a restart within its 2-minute duplicate window — only once. A
/// copy older than a claim already made is caught by the claim's resourceVersion.
async fn answer(
    client: &Client,
    bus: &Bus,
    run: AgentRun,
    text: impl FnOnce(&AgentRun) -> Option<String>,
) -> Result<bool, RouterError> {
    let (ns, name) = (run.namespace().unwrap_or_default(), run.name_any());
    let api: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    if run.annotations().get(REPLY_STATE).map(String::as_str) != Some("pending") {
        return Ok(false);
    }
    let reply = text(&run).and_then(|t| build::reply(&run, t));
    let Some((message, meta)) = reply else {
        tracing::warn!(run = %name, "channel run without a reply channel; nothing sent");
        claim(&api, &name, REPLY_STATE, Some(run)).await?;
        return Ok(false);
    };
    let once = format!("reply/{ns}/{name}");
    bus.publish_once(&super::send_topic(&meta), meta, &message, &once)
        .await
        .map_err(|source| RouterError::PublishReply { run: name.clone(), source })?;
    if claim(&api, &name, REPLY_STATE, Some(run)).await?.is_none() {
        // Another path or replica got there first; JetStream kept one copy.
        return Ok(false);
    }
    tracing::info!(run = %name, channel = %message.channel, "reply sent");
    Ok(true)
}

/// Finds the channel run an `agent.run.completed` event is about (within `scope` when set:
/// a run of another namespace is not this router's to answer).
async fn find(
    client: &Client,
    delivery: &Delivery,
    scope: Option<&str>,
) -> Result<Option<AgentRun>, RouterError> {
    let run = delivery.envelope.meta("agentRunID");
    if run.is_empty() {
        return Ok(None);
    }
    let ns = Some(delivery.envelope.meta("namespace")).filter(|n| !n.is_empty());
    let api: Api<AgentRun> = match (ns, scope) {
        (Some(ns), Some(scope)) if ns != scope => return Ok(None),
        (Some(ns), _) => Api::namespaced(client.clone(), ns),
        (None, scope) => super::runs_api(client, scope),
    };
    let params = ListParams::default().labels(&selector()).fields(&format!("metadata.name={run}"));
    let found = api.list(&params).await?;
    let instance = delivery.envelope.meta("instanceName");
    let mut matching =
        found.items.into_iter().filter(|r| instance.is_empty() || r.spec.instance_ref == instance);
    let first = matching.next();
    if matching.next().is_some() {
        tracing::warn!(%run, "completion matches channel runs in several namespaces; ignored");
        return Ok(None);
    }
    Ok(first)
}

/// Handles one `agent.run.completed`; `Err` = transient, redeliver.
pub async fn on_completed(
    client: &Client,
    bus: &Bus,
    delivery: &Delivery,
    scope: Option<&str>,
) -> Result<(), RouterError> {
    let Some(run) = find(client, delivery, scope).await? else { return Ok(()) };
    let text = build::text_from_result(&delivery.envelope.data);
    answer(client, bus, run, |_| Some(text)).await.map(|_| ())
}

/// Watches channel runs (of `namespace`, or of all) and answers those that finished
/// without a completion event.
pub async fn watch_finished(client: Client, bus: Bus, namespace: Option<String>) {
    let api: Api<AgentRun> = super::runs_api(&client, namespace.as_deref());
    let config = watcher::Config::default().labels(&selector());
    let mut runs = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
    while let Some(next) = runs.next().await {
        let run = match next {
            Ok(run) => run,
            Err(e) => {
                tracing::debug!(error = %e, "channel run watch interrupted");
                continue;
            }
        };
        if !build::reply_pending(&run) || build::text_from_status(&run).is_none() {
            continue;
        }
        let name = run.name_any();
        if let Err(e) = answer(&client, &bus, run, build::text_from_status).await {
            tracing::warn!(run = %name, error = %e, "answering a finished run failed; retried on its next change");
        }
    }
}
