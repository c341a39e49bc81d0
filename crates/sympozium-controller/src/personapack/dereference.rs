//! Dereference: what the cluster already holds for a pack — its stamped-out instances,
//! schedules and seeded memory ConfigMaps, found by the `sympozium.ai/persona-pack` label —
//! read from the controller's reflector stores, which the watches that trigger its
//! reconciles fill: a reconcile asks the API server nothing it is already told.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;
use sympozium_api::labels;
use sympozium_api::{PersonaPack, SympoziumInstance, SympoziumSchedule};

use crate::cache::{self, Readiness};

/// The pack's objects in its namespace.
#[derive(Debug, Default)]
pub struct Observed {
    /// SympoziumInstances labelled with the pack (metadata).
    pub instances: Vec<Arc<PartialObjectMeta<SympoziumInstance>>>,
    /// SympoziumSchedules labelled with the pack (metadata).
    pub schedules: Vec<Arc<PartialObjectMeta<SympoziumSchedule>>>,
    /// ConfigMaps labelled with the pack (seeded memory).
    pub configmaps: Vec<Arc<ConfigMap>>,
}

/// What the PersonaPack controller watches, as it was last told.
#[derive(Clone)]
pub struct Stores {
    /// Every instance in the watched namespaces (metadata): a persona's instance name
    /// taken by someone else's instance must be seen, labelled or not.
    pub instances: Store<PartialObjectMeta<SympoziumInstance>>,
    /// Every schedule in the watched namespaces (metadata), for the same reason.
    pub schedules: Store<PartialObjectMeta<SympoziumSchedule>>,
    /// ConfigMaps labelled with a pack (seeded memory, with its data).
    pub configmaps: Store<ConfigMap>,
    /// Resolves once every store has had its first list.
    pub readiness: Readiness,
    /// What this process last applied per pack.
    pub stamps: crate::stamps::Stamps,
    /// Pack versions this process's own writes replaced (stale copies to skip).
    pub superseded: std::sync::Arc<crate::superseded::Superseded>,
}

impl Stores {
    /// Waits for every store's first list; `false` when one never comes.
    pub async fn ready(&self) -> bool {
        self.readiness.clone().await
    }
}

/// Label selector of everything stamped out for `pack`.
pub fn selector(pack: &str) -> String {
    format!("{}={pack}", labels::PERSONA_PACK)
}

/// The pack's instances, schedules and memory ConfigMaps.
pub fn observe(pack: &PersonaPack, stores: &Stores) -> Observed {
    let ns = pack.namespace().unwrap_or_default();
    let name = pack.name_any();
    let selector = [(labels::PERSONA_PACK, name.as_str())];
    Observed {
        instances: cache::labelled(&stores.instances, &ns, &selector),
        schedules: cache::labelled(&stores.schedules, &ns, &selector),
        configmaps: cache::labelled(&stores.configmaps, &ns, &selector),
    }
}

impl Observed {
    /// Whether nothing stamped out by the pack is left (ConfigMaps aside).
    pub fn team_gone(&self) -> bool {
        self.instances.is_empty() && self.schedules.is_empty()
    }
}

/// The persona an object was stamped out for.
pub fn persona_of<K: ResourceExt>(obj: &K) -> Option<String> {
    obj.labels().get(labels::PERSONA).cloned()
}

/// Whether `obj` is owned by the object with `uid`.
pub fn owned_by<K: ResourceExt>(obj: &K, uid: &str) -> bool {
    obj.owner_references().iter().any(|o| o.uid == uid)
}
