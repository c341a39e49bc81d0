//! Dereference: fetch what an instance refers to and what it already owns. Secrets are
//! read as metadata only — the controller never holds credential values.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use sympozium_api::instance::ChannelType;
use sympozium_api::labels::{self, component};
use sympozium_api::{AgentRun, SympoziumInstance};

use super::stores::Stores;
use crate::cache;

/// What the cluster holds for one instance.
#[derive(Debug, Default)]
pub struct Observed {
    /// resourceVersion of each channel's credentials Secret, by Secret name; `None` when
    /// the Secret does not exist.
    pub secret_versions: BTreeMap<String, Option<String>>,
    /// Existing channel Deployments of the instance, by channel type label.
    pub channel_deployments: BTreeMap<String, Arc<Deployment>>,
    /// AgentRuns of the instance.
    pub runs: Vec<Arc<AgentRun>>,
}

/// Reads the instance's channel Secrets (metadata), channel Deployments and AgentRuns from
/// the controller's watch caches.
pub fn observe(inst: &SympoziumInstance, stores: &Stores) -> Observed {
    let ns = inst.namespace().unwrap_or_default();
    let name = inst.name_any();
    let mut observed = Observed::default();

    for channel in &inst.spec.channels {
        let secret = channel.config_ref.secret.trim();
        if secret.is_empty() || observed.secret_versions.contains_key(secret) {
            continue;
        }
        let version = cache::get(&stores.secrets, &ns, secret).and_then(|m| m.resource_version());
        observed.secret_versions.insert(secret.to_string(), version);
    }

    let selector = [(labels::INSTANCE, name.as_str()), (labels::COMPONENT, component::CHANNEL)];
    for d in cache::labelled(&stores.deployments, &ns, &selector) {
        if let Some(kind) = d.labels().get(labels::CHANNEL).cloned() {
            observed.channel_deployments.insert(kind, d);
        }
    }

    let marks = [labels::COUNTED, labels::COST_COUNTED];
    observed.runs = cache::labelled(&stores.runs, &ns, &[(labels::INSTANCE, name.as_str())])
        .into_iter()
        .map(|r| stores.marked.apply(r, &marks))
        .collect();
    observed
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
