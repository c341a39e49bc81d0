//! Channel health reported by the channel pods: each `channel.health.update`
//! (`{channel, connected, message?}`, metadata `instanceName`, `namespace`) sets the
//! instance's `status.channels[type]` to `Connected`/`Disconnected` with the pod's message
//! and `lastHealthCheck` = when the pod reported. [`super::status::compute`] keeps a fresh
//! report over what the Deployment's readiness alone would say.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ListParams, Patch, PatchParams};
use std::sync::Arc;

use kube::{Api, ResourceExt};
use serde_json::json;
use sympozium_api::SympoziumInstance;
use sympozium_api::instance::ChannelStatus;
use sympozium_bus::{Bus, Delivery, topics};
use sympozium_kube::FIELD_MANAGER;

use crate::context::Context;

/// Durable consumer of health updates (`channel.health.update.>`), shared by controller
/// replicas.
pub const CONSUMER: &str = "instance-channel-health-scoped";

/// A report older than this no longer overrides the Deployment's readiness (channel pods
/// report every 30 s by default; a pod that stopped reporting is not trusted forever).
pub const STALE_AFTER: SignedDuration = SignedDuration::from_secs(120);

/// Whether `channel` carries a pod's health report younger than [`STALE_AFTER`].
pub fn fresh(channel: &ChannelStatus, now: Timestamp) -> bool {
    channel.last_health_check.as_ref().is_some_and(|t| now.duration_since(t.0) < STALE_AFTER)
}

/// Health updates, as [`Bus::serve`] hands them out.
struct Updates(Arc<Context>);

impl sympozium_bus::Handler for Updates {
    async fn handle(&mut self, d: &mut sympozium_bus::Delivery) -> sympozium_bus::Outcome {
        match apply(&self.0, d).await {
            Ok(()) => sympozium_bus::Outcome::Ack,
            Err(e) => {
                tracing::warn!(error = %e, "recording channel health failed; will retry");
                sympozium_bus::Outcome::retry()
            }
        }
    }
}

/// Consumes health updates until the process stops.
pub async fn run(ctx: Arc<Context>, bus: Bus) {
    let handler = crate::routers::observed(&ctx, "channel-health", Updates(ctx.clone()));
    bus.serve(CONSUMER, &topics::every(topics::CHANNEL_HEALTH_UPDATE), handler).await;
}

/// Why a health update could not be recorded (transient: it is redelivered).
#[derive(Debug, thiserror::Error)]
enum HealthError {
    #[error("looking up instance {name}: {source}")]
    Lookup {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("recording channel health of instance {name}: {source}")]
    Write {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("instance {0} kept changing while recording channel health")]
    Conflicts(String),
}

/// The instances API of `name`'s namespace within the controller's scope; `None` when the
/// instance is outside it or cannot be told apart.
async fn find(
    ctx: &Context,
    name: &str,
    namespace: &str,
) -> Result<Option<Api<SympoziumInstance>>, HealthError> {
    if !namespace.is_empty() {
        return Ok(ctx.in_scope(namespace).then(|| Api::namespaced(ctx.client.clone(), namespace)));
    }
    let all: Api<SympoziumInstance> = ctx.scoped();
    let found = all
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await
        .map_err(|source| HealthError::Lookup { name: name.to_string(), source })?
        .items;
    // Without a namespace, only an unambiguous name can be attributed.
    Ok(match found.as_slice() {
        [one] => one.namespace().map(|ns| Api::namespaced(ctx.client.clone(), &ns)),
        _ => None,
    })
}

/// Records one health update; `Err` = transient, redeliver.
async fn apply(ctx: &Context, d: &Delivery) -> Result<(), HealthError> {
    let env = &d.envelope;
    let name = env.meta("instanceName");
    let channel = env.data["channel"].as_str().filter(|c| !c.is_empty()).unwrap_or(env.meta("channel"));
    if name.is_empty() || channel.is_empty() {
        return Ok(());
    }
    let mut namespace = env.meta("namespace");
    // The subject names the instance whose pod published it (NATS allows no other): an
    // update about another instance is dropped.
    if let Some((subject_ns, subject_name)) = topics::scope_of(topics::CHANNEL_HEALTH_UPDATE, d.topic()) {
        if subject_name != name || (!namespace.is_empty() && namespace != subject_ns) {
            tracing::warn!(subject = %d.topic(), instance = %name, "health update about another instance; dropped");
            return Ok(());
        }
        namespace = subject_ns;
    }
    let Some(api) = find(ctx, name, namespace).await? else { return Ok(()) };
    let reported = env.timestamp.parse::<Timestamp>().unwrap_or_else(|_| Timestamp::now());
    let connected = env.data["connected"].as_bool().unwrap_or(false);
    let message = env.data["message"].as_str().filter(|m| !m.is_empty()).map(str::to_string);
    for _ in 0..5 {
        let Some(inst) = api
            .get_opt(name)
            .await
            .map_err(|source| HealthError::Lookup { name: name.to_string(), source })?
        else {
            return Ok(());
        };
        if !inst.spec.channels.iter().any(|c| c.type_.as_str() == channel) {
            return Ok(());
        }
        let mut channels = inst.status.as_ref().map(|s| s.channels.clone()).unwrap_or_default();
        let entry = match channels.iter().position(|c| c.type_ == channel) {
            Some(i) => &mut channels[i],
            None => {
                channels.push(ChannelStatus { type_: channel.to_string(), ..Default::default() });
                let last = channels.len() - 1;
                &mut channels[last]
            }
        };
        // A delayed (redelivered) report must not overwrite a newer one.
        if entry.last_health_check.as_ref().is_some_and(|t| t.0 > reported) {
            return Ok(());
        }
        entry.status = if connected { "Connected" } else { "Disconnected" }.into();
        entry.message = message.clone();
        entry.last_health_check = Some(Time(reported));
        let patch = json!({"metadata": {"resourceVersion": inst.resource_version()},
            "status": {"channels": channels}});
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        match api.patch_status(name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(source) => return Err(HealthError::Write { name: name.to_string(), source }),
        }
    }
    Err(HealthError::Conflicts(name.to_string()))
}
