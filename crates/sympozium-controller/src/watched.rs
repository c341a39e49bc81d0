//! Stores that one controller's watch fills and other controllers' reconciles read.
//!
//! Every kind a run's start needs (its instance, the instance's policy, skill packs, the
//! price table, the memory server's Deployment) is already watched by the controller that
//! owns it. Sharing those stores means a run reconcile asks the API server only for what no
//! watch tells the process. A store that is not set (a router or controller run alone, as
//! tests and tools do) or that does not hold the object yet (created a moment ago) falls back
//! to a read, so nothing is decided on a store that has not caught up.

use std::sync::{Arc, OnceLock};

use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use sympozium_api::{SkillPack, SympoziumConfig, SympoziumInstance, SympoziumPolicy};

/// The shared stores, each set once by the controller that watches its kind.
#[derive(Default)]
pub struct Watched {
    /// Instances (the instance controller).
    pub instances: OnceLock<Store<SympoziumInstance>>,
    /// Policies (the policy controller).
    pub policies: OnceLock<Store<SympoziumPolicy>>,
    /// Skill packs (the skill pack controller).
    pub skill_packs: OnceLock<Store<SkillPack>>,
    /// Configs, the price table among them (the gateway controller).
    pub configs: OnceLock<Store<SympoziumConfig>>,
    /// The instances' Deployments, specs stripped (the instance controller).
    pub deployments: OnceLock<Store<Deployment>>,
}

/// The stored `namespace/name`, when `slot`'s store is set and holds it.
pub fn stored<K>(slot: &OnceLock<Store<K>>, namespace: &str, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    slot.get()?.get(&ObjectRef::new(name).within(namespace))
}

/// `namespace/name` from `slot`'s store when it holds it, else from the API server.
pub async fn get<K>(
    slot: &OnceLock<Store<K>>,
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + 'static,
{
    if let Some(found) = stored(slot, namespace, name) {
        return Ok(Some((*found).clone()));
    }
    Api::namespaced(client.clone(), namespace).get_opt(name).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    fn policy(ns: &str, name: &str) -> SympoziumPolicy {
        let mut p = SympoziumPolicy::new(name, Default::default());
        p.metadata.namespace = Some(ns.into());
        p
    }

    #[test]
    fn a_set_store_answers_by_namespace_and_name() {
        let slot = OnceLock::new();
        assert!(stored::<SympoziumPolicy>(&slot, "team-a", "strict").is_none(), "unset store holds nothing");
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Apply(policy("team-a", "strict")));
        let _ = slot.set(reader);
        assert!(stored(&slot, "team-a", "strict").is_some());
        assert!(stored(&slot, "team-b", "strict").is_none(), "another tenant's policy of the same name");
        assert!(stored(&slot, "team-a", "other").is_none());
    }
}
