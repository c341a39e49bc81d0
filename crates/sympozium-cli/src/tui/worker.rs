//! The TUI's worker: one reflector per kind (cluster-wide watches, reconnecting with backoff
//! by themselves) sending whole lists to the UI at most every 150 ms, and the actions the
//! UI queues, in order. Nothing here runs on the render path.

use std::fmt::Debug;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Event as KubeEvent, Pod, Secret};
use kube::api::{DeleteParams, ListParams, LogParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sympozium_api::{
    AgentRun, MCPServer, PersonaPack, SkillPack, SympoziumConfig, SympoziumInstance, SympoziumPolicy,
    SympoziumSchedule, labels,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::actions::{Action, ObjKind};
use super::chat;
use super::data::{Connection, Update};
use crate::wizard::apply::{self, MANAGER};

/// Starts the watches and serves actions until the UI hangs up.
pub async fn run(client: Client, tx: UnboundedSender<Update>, mut actions: UnboundedReceiver<Action>) {
    let watches = [
        tokio::spawn(watch::<PersonaPack>(Api::all(client.clone()), None, tx.clone(), Update::Packs)),
        tokio::spawn(watch::<SympoziumInstance>(
            Api::all(client.clone()),
            None,
            tx.clone(),
            Update::Instances,
        )),
        tokio::spawn(watch::<AgentRun>(Api::all(client.clone()), None, tx.clone(), Update::Runs)),
        tokio::spawn(watch::<SympoziumPolicy>(Api::all(client.clone()), None, tx.clone(), Update::Policies)),
        tokio::spawn(watch::<SkillPack>(Api::all(client.clone()), None, tx.clone(), Update::Skills)),
        tokio::spawn(watch::<SympoziumSchedule>(
            Api::all(client.clone()),
            None,
            tx.clone(),
            Update::Schedules,
        )),
        tokio::spawn(watch::<SympoziumConfig>(Api::all(client.clone()), None, tx.clone(), Update::Configs)),
        tokio::spawn(watch::<MCPServer>(Api::all(client.clone()), None, tx.clone(), Update::McpServers)),
        // Every pod of an instance: channel and memory pods and the agent pods (which the
        // original's managed-by selector missed).
        tokio::spawn(watch::<Pod>(
            Api::all(client.clone()),
            Some(labels::INSTANCE),
            tx.clone(),
            Update::Pods,
        )),
    ];
    // One at a time, in the order queued: a channel's Secret is written before the channel
    // that names it, and the last message on the status line is the last thing done.
    while let Some(action) = actions.recv().await {
        let update = match perform(&client, action).await {
            Ok(update) => update,
            Err(e) => Update::Error(format!("{e:#}")),
        };
        if tx.send(update).is_err() {
            break;
        }
    }
    for w in watches {
        w.abort();
    }
}

/// Keeps one kind's list current in the UI. Errors (cluster unreachable, watch expired)
/// are reported as a disconnection; the backoff retries, and the first event after that
/// reports the connection back.
async fn watch<K>(
    api: Api<K>,
    label: Option<&str>,
    tx: UnboundedSender<Update>,
    wrap: fn(Vec<Arc<K>>) -> Update,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let config = match label {
        Some(l) => watcher::Config::default().labels(l),
        None => watcher::Config::default(),
    };
    let mut stream = pin!(reflector(writer, watcher(api, config).default_backoff()));
    let mut tick = tokio::time::interval(Duration::from_millis(150));
    let (mut dirty, mut connected) = (false, false);
    loop {
        tokio::select! {
            event = stream.next() => match event {
                Some(Ok(event)) => {
                    if !connected {
                        connected = true;
                        let _ = tx.send(Update::Connection(Connection::Connected));
                    }
                    // A relist is sent once it is complete, not object by object.
                    dirty |= !matches!(event, watcher::Event::Init | watcher::Event::InitApply(_));
                }
                Some(Err(e)) => {
                    connected = false;
                    let _ = tx.send(Update::Connection(Connection::Disconnected(e.to_string())));
                }
                None => return,
            },
            _ = tick.tick() => {
                if dirty {
                    dirty = false;
                    if tx.send(wrap(reader.state())).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn ns_api<K>(client: &Client, ns: &str) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    Api::namespaced(client.clone(), ns)
}

async fn delete<K>(client: &Client, ns: &str, name: &str) -> kube::Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    ns_api::<K>(client, ns).delete(name, &DeleteParams::default()).await.map(|_| ())
}

async fn merge<K>(client: &Client, ns: &str, name: &str, patch: &serde_json::Value) -> kube::Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    ns_api::<K>(client, ns).patch(name, &PatchParams::default(), &Patch::Merge(patch)).await.map(|_| ())
}

async fn yaml_of<K>(client: &Client, ns: &str, name: &str) -> anyhow::Result<String>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
{
    let mut obj = ns_api::<K>(client, ns).get(name).await?;
    obj.meta_mut().managed_fields = None;
    Ok(serde_yaml::to_string(&obj)?)
}

async fn events(client: &Client, kind: ObjKind, ns: &str, name: &str) -> anyhow::Result<String> {
    let selector = format!("involvedObject.name={name},involvedObject.kind={}", kind.kind());
    let mut list =
        ns_api::<KubeEvent>(client, ns).list(&ListParams::default().fields(&selector)).await?.items;
    list.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
    if list.is_empty() {
        return Ok("no events".into());
    }
    Ok(list
        .iter()
        .map(|e| {
            format!(
                "{:<8} {:<20} {}",
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Does one action; the update says how it went.
async fn perform(client: &Client, action: Action) -> anyhow::Result<Update> {
    Ok(match action {
        Action::Delete { kind, ns, name } => {
            match kind {
                ObjKind::Pack => delete::<PersonaPack>(client, &ns, &name).await?,
                ObjKind::Instance => delete::<SympoziumInstance>(client, &ns, &name).await?,
                ObjKind::Run => delete::<AgentRun>(client, &ns, &name).await?,
                ObjKind::Policy => delete::<SympoziumPolicy>(client, &ns, &name).await?,
                ObjKind::Skill => delete::<SkillPack>(client, &ns, &name).await?,
                ObjKind::Schedule => delete::<SympoziumSchedule>(client, &ns, &name).await?,
                ObjKind::Pod => delete::<Pod>(client, &ns, &name).await?,
                ObjKind::Config => delete::<SympoziumConfig>(client, &ns, &name).await?,
                ObjKind::McpServer => delete::<MCPServer>(client, &ns, &name).await?,
            }
            Update::Notice(format!("{}/{name} deleted", kind.resource()))
        }
        Action::Patch { kind, ns, name, patch, what } => {
            match kind {
                ObjKind::Pack => merge::<PersonaPack>(client, &ns, &name, &patch).await?,
                ObjKind::Instance => merge::<SympoziumInstance>(client, &ns, &name, &patch).await?,
                ObjKind::Policy => merge::<SympoziumPolicy>(client, &ns, &name, &patch).await?,
                ObjKind::Schedule => merge::<SympoziumSchedule>(client, &ns, &name, &patch).await?,
                ObjKind::Config => merge::<SympoziumConfig>(client, &ns, &name, &patch).await?,
                ObjKind::Run | ObjKind::Skill | ObjKind::Pod | ObjKind::McpServer => {
                    anyhow::bail!("{} cannot be edited here", kind.resource())
                }
            }
            Update::Notice(what)
        }
        Action::ActivatePack { ns, activation } => {
            let n = apply::activate_pack(client, &ns, &activation).await?;
            Update::Notice(format!(
                "personapack/{} activated ({n} personas, provider {})",
                activation.pack, activation.provider
            ))
        }
        Action::Onboard(o) => {
            let written = apply::onboard(client, &o).await?;
            Update::Notice(format!("onboarded: {}", written.join(", ")))
        }
        Action::Chat { ns, instance, message, task } => {
            let name = instance.name_any();
            let mut run = crate::commands::run::new_run(&name, &instance, &task);
            chat::mark(&mut run, &message);
            let created = ns_api::<AgentRun>(client, &ns).create(&PostParams::default(), &run).await?;
            Update::Notice(format!("agentrun/{} created; the answer appears in the chat", created.name_any()))
        }
        Action::Schedule { ns, instance, cron, task } => {
            let name = format!("{instance}-schedule");
            let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumSchedule",
                "metadata": {"name": name, "labels": {labels::INSTANCE: instance}},
                "spec": {"instanceRef": instance, "schedule": cron, "task": task}});
            ns_api::<SympoziumSchedule>(client, &ns)
                .patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body))
                .await?;
            Update::Notice(format!("sympoziumschedule/{name} set to \"{cron}\""))
        }
        Action::ChannelSecret { ns, name, data } => {
            let secret = Secret {
                metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() },
                string_data: Some(data),
                ..Default::default()
            };
            ns_api::<Secret>(client, &ns)
                .patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&secret))
                .await?;
            Update::Notice(format!("secret/{name} written"))
        }
        Action::Describe { kind, ns, name } => {
            let yaml = match kind {
                ObjKind::Pack => yaml_of::<PersonaPack>(client, &ns, &name).await?,
                ObjKind::Instance => yaml_of::<SympoziumInstance>(client, &ns, &name).await?,
                ObjKind::Run => yaml_of::<AgentRun>(client, &ns, &name).await?,
                ObjKind::Policy => yaml_of::<SympoziumPolicy>(client, &ns, &name).await?,
                ObjKind::Skill => yaml_of::<SkillPack>(client, &ns, &name).await?,
                ObjKind::Schedule => yaml_of::<SympoziumSchedule>(client, &ns, &name).await?,
                ObjKind::Pod => yaml_of::<Pod>(client, &ns, &name).await?,
                ObjKind::Config => yaml_of::<SympoziumConfig>(client, &ns, &name).await?,
                ObjKind::McpServer => yaml_of::<MCPServer>(client, &ns, &name).await?,
            };
            let events = events(client, kind, &ns, &name).await?;
            Update::Text {
                title: format!("describe {}/{name}", kind.resource()),
                body: format!("{yaml}\nEvents:\n{events}"),
            }
        }
        Action::Events { kind, ns, name } => Update::Text {
            title: format!("events of {}/{name}", kind.resource()),
            body: events(client, kind, &ns, &name).await?,
        },
        Action::Logs { ns, pod } => {
            let api = ns_api::<Pod>(client, &ns);
            let p = api.get(&pod).await?;
            let containers: Vec<String> =
                p.spec.iter().flat_map(|s| s.containers.iter().map(|c| c.name.clone())).collect();
            let mut body = String::new();
            for c in &containers {
                let lp =
                    LogParams { container: Some(c.clone()), tail_lines: Some(200), ..Default::default() };
                let text = api.logs(&pod, &lp).await.unwrap_or_else(|e| format!("(no logs: {e})"));
                body.push_str(&format!("── {c} ──\n{text}\n"));
            }
            Update::Text { title: format!("logs of pod/{pod}"), body }
        }
        Action::Approve { .. } => anyhow::bail!("tool approvals need the event bus: start with --nats-url"),
        Action::Memory { ns, instance } => {
            let name = format!("{instance}-memory");
            let cm = ns_api::<ConfigMap>(client, &ns).get_opt(&name).await?;
            let body = cm
                .and_then(|c| c.data?.get("MEMORY.md").cloned())
                .unwrap_or_else(|| format!("no legacy memory (ConfigMap {name} not found)"));
            Update::Text { title: format!("memory of {instance}"), body }
        }
    })
}
