//! Dereference: what the cluster already holds for a pack — its stamped-out instances,
//! schedules and seeded memory ConfigMaps, found by the `sympozium.ai/persona-pack` label.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use sympozium_api::labels;
use sympozium_api::{PersonaPack, SympoziumInstance, SympoziumSchedule};

use crate::context::Context;

/// The pack's objects in its namespace.
#[derive(Debug, Default)]
pub struct Observed {
    /// SympoziumInstances labelled with the pack.
    pub instances: Vec<SympoziumInstance>,
    /// SympoziumSchedules labelled with the pack.
    pub schedules: Vec<SympoziumSchedule>,
    /// ConfigMaps labelled with the pack (seeded memory).
    pub configmaps: Vec<ConfigMap>,
}

/// Label selector of everything stamped out for `pack`.
pub fn selector(pack: &str) -> String {
    format!("{}={pack}", labels::PERSONA_PACK)
}

/// Lists the pack's instances, schedules and memory ConfigMaps.
pub async fn observe(pack: &PersonaPack, ctx: &Context) -> Result<Observed, kube::Error> {
    let ns = pack.namespace().unwrap_or_default();
    let lp = ListParams::default().labels(&selector(&pack.name_any()));
    let instances: Api<SympoziumInstance> = Api::namespaced(ctx.client.clone(), &ns);
    let schedules: Api<SympoziumSchedule> = Api::namespaced(ctx.client.clone(), &ns);
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let (instances, schedules, configmaps) =
        futures::try_join!(instances.list(&lp), schedules.list(&lp), configmaps.list(&lp))?;
    Ok(Observed { instances: instances.items, schedules: schedules.items, configmaps: configmaps.items })
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
