//! Watch caches: one reflector per kind, cluster-wide, started once. Every read route
//! answers from these stores, so a page of the dashboard refreshing every few seconds costs
//! the Kubernetes API nothing; writes go to the API and show up here through the watch.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use sympozium_api::{
    AgentRun, MCPServer, PersonaPack, SkillPack, SympoziumConfig, SympoziumInstance, SympoziumPolicy,
    SympoziumSchedule,
};

/// The stores of every kind the API serves.
#[derive(Clone)]
pub struct Caches {
    /// SympoziumInstances.
    pub instances: Store<SympoziumInstance>,
    /// AgentRuns.
    pub runs: Store<AgentRun>,
    /// SympoziumPolicies.
    pub policies: Store<SympoziumPolicy>,
    /// SkillPacks.
    pub skills: Store<SkillPack>,
    /// SympoziumSchedules.
    pub schedules: Store<SympoziumSchedule>,
    /// PersonaPacks.
    pub packs: Store<PersonaPack>,
    /// MCPServers.
    pub mcpservers: Store<MCPServer>,
    /// SympoziumConfigs (the gateway singleton).
    pub configs: Store<SympoziumConfig>,
    /// Namespaces.
    pub namespaces: Store<Namespace>,
}

fn start<K>(client: &Client) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let api: Api<K> = Api::all(client.clone());
    let kind = K::kind(&()).into_owned();
    tokio::spawn(async move {
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff()
            .applied_objects();
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                tracing::warn!(%kind, error = %e, "watch interrupted; retrying");
            }
        }
    });
    store
}

impl Caches {
    /// Starts a reflector per kind (they run until the process ends).
    pub fn start(client: &Client) -> Self {
        Self {
            instances: start(client),
            runs: start(client),
            policies: start(client),
            skills: start(client),
            schedules: start(client),
            packs: start(client),
            mcpservers: start(client),
            configs: start(client),
            namespaces: start(client),
        }
    }

    /// Waits until every store has its first full list (or `timeout` passes); returns
    /// whether they all did.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let all = async {
            let _ = self.instances.wait_until_ready().await;
            let _ = self.runs.wait_until_ready().await;
            let _ = self.policies.wait_until_ready().await;
            let _ = self.skills.wait_until_ready().await;
            let _ = self.schedules.wait_until_ready().await;
            let _ = self.packs.wait_until_ready().await;
            let _ = self.mcpservers.wait_until_ready().await;
            let _ = self.configs.wait_until_ready().await;
            let _ = self.namespaces.wait_until_ready().await;
        };
        tokio::time::timeout(timeout, all).await.is_ok()
    }
}

/// The objects of `store` in `ns` (every namespace when `None`), sorted by namespace and name.
pub fn list<K>(store: &Store<K>, ns: Option<&str>) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let mut items: Vec<Arc<K>> = store
        .state()
        .into_iter()
        .filter(|o| ns.is_none_or(|ns| o.namespace().as_deref() == Some(ns)))
        .collect();
    items.sort_by_key(|o| (o.namespace(), o.name_any()));
    items
}

/// One object of `store` by namespace and name.
pub fn get<K>(store: &Store<K>, ns: &str, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&reflector::ObjectRef::new(name).within(ns))
}
