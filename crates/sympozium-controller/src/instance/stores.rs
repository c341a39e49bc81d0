//! What the instance controller watches, as reflector stores its reconciles read: the
//! instance's Deployments, Services, ConfigMaps, NetworkPolicies and ServiceAccounts, the namespace's Secrets
//! (metadata only: the controller never caches secret values) and the instance's AgentRuns.
//!
//! A store can trail the API server by one watch event. Where that matters it is covered:
//! an object a store does not hold yet is looked up once before it is reported as created
//! ([`Stores::existed`]), and runs whose "counted" marks were just written are remembered
//! until the store shows the marks ([`Stores::marked`]), so a run is never added to the
//! instance's totals twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use sympozium_api::AgentRun;

use crate::cache;

/// The instance controller's stores.
#[derive(Clone)]
pub struct Stores {
    /// Deployments labelled with an instance (specs dropped; status kept for readiness).
    pub deployments: Store<Deployment>,
    /// Services labelled with an instance (metadata).
    pub services: Store<PartialObjectMeta<Service>>,
    /// ConfigMaps labelled with an instance (metadata).
    pub configmaps: Store<PartialObjectMeta<ConfigMap>>,
    /// NetworkPolicies labelled with an instance (metadata).
    pub policies: Store<PartialObjectMeta<NetworkPolicy>>,
    /// Every Secret of the watched namespaces (metadata).
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// AgentRuns labelled with an instance.
    pub runs: Store<AgentRun>,
    /// ServiceAccounts labelled with an instance (metadata): a warm pool's account tells
    /// that the instance has a warm pool to remove.
    pub accounts: Store<PartialObjectMeta<ServiceAccount>>,
    /// Count marks written but perhaps not yet seen by the run store.
    pub marked: Arc<Marked>,
    /// What this process last applied per instance.
    pub stamps: crate::stamps::Stamps,
    /// Instance versions this process's own writes replaced (stale copies to skip).
    pub superseded: Arc<crate::superseded::Superseded>,
    /// Whether every store above has had its first list.
    pub readiness: cache::Readiness,
}

/// Annotations written on runs (`(run uid, annotation)`), kept until the store shows them
/// or for [`MARKS_KEPT`].
#[derive(Default)]
pub struct Marked(Mutex<HashMap<(String, String), Instant>>);

/// Long enough for any watch to deliver the mark; a run deleted meanwhile needs none.
const MARKS_KEPT: Duration = Duration::from_secs(600);

impl Marked {
    /// Remembers that `annotation` was written on the run with `uid`.
    pub fn insert(&self, uid: &str, annotation: &str) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, at| at.elapsed() < MARKS_KEPT);
        map.insert((uid.to_string(), annotation.to_string()), Instant::now());
    }

    /// `run` as it is after the marks written on it: the store's copy, or a copy with the
    /// annotations it is known to carry already.
    pub fn apply(&self, run: Arc<AgentRun>, annotations: &[&str]) -> Arc<AgentRun> {
        let Some(uid) = run.uid() else { return run };
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let missing: Vec<&str> = annotations
            .iter()
            .copied()
            .filter(|a| {
                let key = (uid.clone(), (*a).to_string());
                if run.annotations().contains_key(*a) {
                    // The store caught up: the entry is no longer needed.
                    map.remove(&key);
                    false
                } else {
                    map.contains_key(&key)
                }
            })
            .collect();
        if missing.is_empty() {
            return run;
        }
        let mut copy = (*run).clone();
        for a in missing {
            copy.annotations_mut().insert(a.to_string(), "true".into());
        }
        Arc::new(copy)
    }
}

impl Stores {
    /// Waits until every store has finished its first list; `false` when one never will
    /// (the controller is stopping).
    pub async fn ready(&self) -> bool {
        self.readiness.clone().await
    }

    /// Whether `name` existed before an apply, as the store says. A child the store does not
    /// hold yet is one this reconcile creates; asking the API server instead put a read before
    /// every child of every new instance. A store trailing the API server at most reports an
    /// update as a creation (one extra `Created` Event).
    pub fn existed<S>(store: &Store<S>, ns: &str, name: &str) -> bool
    where
        S: Resource<DynamicType = ()> + Clone,
    {
        cache::contains(store, ns, name)
    }

    /// Whether the stored `name` is owned by `owner_uid` (and so may be deleted).
    pub fn owned_by<S>(store: &Store<S>, ns: &str, name: &str, owner_uid: &str) -> bool
    where
        S: Resource<DynamicType = ()> + Clone,
    {
        cache::get(store, ns, name)
            .is_some_and(|o| o.meta().owner_references.iter().flatten().any(|r| r.uid == owner_uid))
    }
}
