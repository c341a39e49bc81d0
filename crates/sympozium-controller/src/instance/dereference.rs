//! Dereference: fetch what an instance refers to and what it already owns. Secrets are
//! read as metadata only — the controller never holds credential values.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::{Api, ResourceExt};
use sympozium_api::instance::ChannelType;
use sympozium_api::labels::{self, component};
use sympozium_api::{AgentRun, SympoziumInstance};

use super::Error;
use crate::context::Context;

/// What the cluster holds for one instance.
#[derive(Debug, Default)]
pub struct Observed {
    /// resourceVersion of each channel's credentials Secret, by Secret name; `None` when
    /// the Secret does not exist.
    pub secret_versions: BTreeMap<String, Option<String>>,
    /// Existing channel Deployments of the instance, by channel type label.
    pub channel_deployments: BTreeMap<String, Deployment>,
    /// AgentRuns of the instance.
    pub runs: Vec<AgentRun>,
}

/// Reads the instance's channel Secrets (metadata), channel Deployments and AgentRuns.
pub async fn observe(inst: &SympoziumInstance, ctx: &Context) -> Result<Observed, Error> {
    let ns = inst.namespace().unwrap_or_default();
    let name = inst.name_any();
    let mut observed = Observed::default();

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    for channel in &inst.spec.channels {
        let secret = channel.config_ref.secret.trim();
        if secret.is_empty() || observed.secret_versions.contains_key(secret) {
            continue;
        }
        let meta: Option<PartialObjectMeta<Secret>> = secrets.get_metadata_opt(secret).await?;
        observed.secret_versions.insert(secret.to_string(), meta.and_then(|m| m.resource_version()));
    }

    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = format!("{}={},{}={}", labels::INSTANCE, name, labels::COMPONENT, component::CHANNEL);
    for d in deployments.list(&ListParams::default().labels(&selector)).await? {
        if let Some(kind) = d.labels().get(labels::CHANNEL).cloned() {
            observed.channel_deployments.insert(kind, d);
        }
    }

    let runs: Api<AgentRun> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = format!("{}={}", labels::INSTANCE, name);
    observed.runs = runs.list(&ListParams::default().labels(&selector)).await?.items;
    Ok(observed)
}

impl Observed {
    /// Whether the channel's Secret is named but missing.
    pub fn secret_missing(&self, secret: &str) -> bool {
        let secret = secret.trim();
        !secret.is_empty() && matches!(self.secret_versions.get(secret), Some(None))
    }

    /// Ready replicas of the existing Deployment of `channel`, if it exists.
    pub fn channel_ready(&self, channel: ChannelType) -> Option<i32> {
        self.channel_deployments
            .get(channel.as_str())
            .map(|d| d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0))
    }
}
