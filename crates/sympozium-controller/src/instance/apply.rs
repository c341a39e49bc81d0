//! Apply: converge the cluster to the built objects — create or update what should exist
//! and delete what no longer should. Data volumes (memory database, WhatsApp session) are
//! never deleted by a spec edit; garbage collection removes them with the instance.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};
use sympozium_api::instance::{ChannelStatus, ChannelType};
use sympozium_api::labels::{self, component};
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_kube::apply::{Applied, create_if_absent, delete_if_exists};

use super::dereference::Observed;
use super::stores::Stores;
use super::{build, bus_access, memory_access};
use crate::cache;
use crate::context::Context;
use crate::stamps::Outcome;

/// What converging an instance did and found.
#[derive(Debug, Default)]
pub struct Converged {
    /// Objects created, as `Kind/name`.
    pub created: Vec<String>,
    /// Objects deleted, as `Kind/name`.
    pub deleted: Vec<String>,
    /// Health of each channel in spec order.
    pub channels: Vec<ChannelStatus>,
    /// API failures, each naming the object.
    pub errors: Vec<String>,
}

impl Converged {
    pub(super) fn record<T>(&mut self, what: String, result: Result<T, kube::Error>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(format!("{what}: {e}"));
                None
            }
        }
    }
}

/// Converges every child of `inst`.
pub async fn converge(
    inst: &SympoziumInstance,
    observed: &Observed,
    ctx: &Context,
    stores: &Stores,
) -> Converged {
    let mut out = Converged::default();
    channels(inst, observed, ctx, stores, &mut out).await;
    memory(inst, ctx, stores, &mut out).await;
    web_endpoint(inst, ctx, stores, &mut out).await;
    if ctx.agent_sandbox {
        super::warmpool::converge(inst, ctx, stores, &mut out).await;
    }
    out
}

/// Server-side applies `obj` for `owner`, unless the watch cache `store` shows it unchanged
/// since this process last applied it (see [`crate::stamps`]); tells creation from update
/// by the same store.
async fn apply<K, S>(
    stores: &Stores,
    owner: &SympoziumInstance,
    api: &Api<K>,
    obj: &K,
    store: &Store<S>,
) -> Result<Applied, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
    S: Resource<DynamicType = ()> + Clone,
{
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    let name = obj.meta().name.clone().unwrap_or_default();
    let stored = cache::get(store, &ns, &name);
    let uid = owner.uid().unwrap_or_default();
    Ok(match stores.stamps.apply(&uid, api, obj, stored.as_deref()).await? {
        Outcome::Created => Applied::Created,
        Outcome::Applied | Outcome::Current => Applied::Updated,
    })
}

/// Deletes `name` when the watch cache `store` holds it owned by `owner_uid` (a user's own
/// object of the same name is never touched).
async fn delete_if_owned<K, S>(
    api: &Api<K>,
    store: &Store<S>,
    ns: &str,
    name: &str,
    owner_uid: &str,
) -> Result<bool, kube::Error>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    S: Resource<DynamicType = ()> + Clone,
{
    if !Stores::owned_by(store, ns, name, owner_uid) {
        return Ok(false);
    }
    delete_if_exists(api, name).await
}

async fn channels(
    inst: &SympoziumInstance,
    observed: &Observed,
    ctx: &Context,
    stores: &Stores,
    out: &mut Converged,
) {
    let uid = inst.uid().unwrap_or_default();
    let ns = inst.namespace().unwrap_or_default();
    if let Some(auth) = &ctx.settings.bus_auth
        && !inst.spec.channels.is_empty()
    {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let name = bus_access::secret_name(&inst.name_any());
        let what = format!("Secret/{name}");
        let identity = bus_access::identity(inst);
        // The watch cache (metadata only) tells whether the Secret already holds this
        // identity's user from this account: then nothing is read or written.
        let current = crate::cache::get(&stores.secrets, &ns, &name);
        if !current.is_some_and(|s| bus_access::minted_for(&s.metadata, &identity, auth)) {
            let existing = secrets.get_opt(&name).await;
            let creds = match &existing {
                Ok(found) => match bus_access::reusable(found.as_ref(), &identity, auth) {
                    Some(creds) => Ok(creds),
                    None => auth.issuer.mint(&identity, None).map_err(|e| e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            match creds {
                Ok(creds) => {
                    let secret = bus_access::secret(inst, auth, &creds);
                    if out.record(what.clone(), apply(stores, inst, &secrets, &secret, &stores.secrets).await)
                        == Some(Applied::Created)
                    {
                        out.created.push(what);
                    }
                }
                Err(reason) => out.errors.push(format!("{what}: {reason}")),
            }
        }
    }
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    for channel in &inst.spec.channels {
        let kind = channel.type_;
        let secret = channel.config_ref.secret.trim();
        let mut status = ChannelStatus { type_: kind.to_string(), ..Default::default() };
        if observed.secret_missing(secret) {
            status.status = "Error".into();
            status.message = Some(format!("secret \"{secret}\" not found"));
            out.channels.push(status);
            continue;
        }
        if kind == ChannelType::Whatsapp {
            let pvc = build::whatsapp_pvc(inst);
            let name = pvc.name_any();
            if out.record(format!("PersistentVolumeClaim/{name}"), create_if_absent(&pvcs, &pvc).await)
                == Some(true)
            {
                out.created.push(format!("PersistentVolumeClaim/{name}"));
            }
        }
        if let Some(svc) = build::channel_webhook_service(inst, kind) {
            let what = format!("Service/{}", svc.name_any());
            if out.record(what.clone(), apply(stores, inst, &services, &svc, &stores.services).await)
                == Some(Applied::Created)
            {
                out.created.push(what);
            }
        }
        let version = observed.secret_versions.get(secret).cloned().flatten();
        let deploy = build::channel_deployment(inst, channel, version.as_deref(), &ctx.settings);
        let what = format!("Deployment/{}", deploy.name_any());
        match out.record(what.clone(), apply(stores, inst, &deployments, &deploy, &stores.deployments).await)
        {
            Some(Applied::Created) => {
                out.created.push(what);
                status.status = "Pending".into();
            }
            Some(Applied::Updated) => {
                status.status =
                    if observed.channel_ready(kind).unwrap_or(0) > 0 { "Connected" } else { "Disconnected" }
                        .into();
            }
            None => {
                status.status = "Error".into();
                status.message = out.errors.last().cloned();
            }
        }
        out.channels.push(status);
    }
    // A channel removed from the spec stops running.
    for (kind, deploy) in &observed.channel_deployments {
        if inst.spec.channels.iter().any(|c| c.type_.as_str() == kind) {
            continue;
        }
        let name = deploy.name_any();
        if out.record(
            format!("Deployment/{name}"),
            delete_if_owned(&deployments, &stores.deployments, &ns, &name, &uid).await,
        ) == Some(true)
        {
            out.deleted.push(format!("Deployment/{name}"));
        }
        // Its webhook Service (same name), if the platform had one.
        if out.record(
            format!("Service/{name}"),
            delete_if_owned(&services, &stores.services, &ns, &name, &uid).await,
        ) == Some(true)
        {
            out.deleted.push(format!("Service/{name}"));
        }
    }
}

async fn memory(inst: &SympoziumInstance, ctx: &Context, stores: &Stores, out: &mut Converged) {
    let uid = inst.uid().unwrap_or_default();
    let ns = inst.namespace().unwrap_or_default();
    let name = inst.name_any();
    if build::wants_memory_configmap(inst) {
        let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
        let cm = build::memory_configmap(inst);
        // Create-only: a PersonaPack may have seeded it, and agents write to it.
        if !cache::contains(&stores.configmaps, &ns, &cm.name_any())
            && out.record(format!("ConfigMap/{}", cm.name_any()), create_if_absent(&configmaps, &cm).await)
                == Some(true)
        {
            out.created.push(format!("ConfigMap/{}", cm.name_any()));
        }
    }
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    let server = build::memory_name(&name);
    if build::wants_memory_server(inst) {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
        let pvc = build::memory_pvc(inst);
        if out
            .record(format!("PersistentVolumeClaim/{}", pvc.name_any()), create_if_absent(&pvcs, &pvc).await)
            == Some(true)
        {
            out.created.push(format!("PersistentVolumeClaim/{}", pvc.name_any()));
        }
        memory_access(inst, ctx, stores, out).await;
        let deploy = build::memory_deployment(inst, &ctx.settings);
        if out.record(
            format!("Deployment/{server}"),
            apply(stores, inst, &deployments, &deploy, &stores.deployments).await,
        ) == Some(Applied::Created)
        {
            out.created.push(format!("Deployment/{server}"));
        }
        let svc = build::memory_service(inst);
        if out
            .record(format!("Service/{server}"), apply(stores, inst, &services, &svc, &stores.services).await)
            == Some(Applied::Created)
        {
            out.created.push(format!("Service/{server}"));
        }
    } else {
        // The memory skill was removed: stop the server, keep its database volume.
        if out.record(
            format!("Deployment/{server}"),
            delete_if_owned(&deployments, &stores.deployments, &ns, &server, &uid).await,
        ) == Some(true)
        {
            out.deleted.push(format!("Deployment/{server}"));
        }
        if out.record(
            format!("Service/{server}"),
            delete_if_owned(&services, &stores.services, &ns, &server, &uid).await,
        ) == Some(true)
        {
            out.deleted.push(format!("Service/{server}"));
        }
        let policies: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &ns);
        let policy = memory_access::network_policy_name(&name);
        if out.record(
            format!("NetworkPolicy/{policy}"),
            delete_if_owned(&policies, &stores.policies, &ns, &policy, &uid).await,
        ) == Some(true)
        {
            out.deleted.push(format!("NetworkPolicy/{policy}"));
        }
    }
}

/// The memory server's token Secret (created once) and its ingress NetworkPolicy.
async fn memory_access(inst: &SympoziumInstance, ctx: &Context, stores: &Stores, out: &mut Converged) {
    let ns = inst.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret_name = memory_access::token_secret_name(&inst.name_any());
    let what = format!("Secret/{secret_name}");
    // A new token is drawn only for an instance that has none (a Secret the store has not
    // seen yet is kept: it is only ever created), and a failure to draw one is reported
    // instead of starting a server without a token.
    if !Stores::existed(&stores.secrets, &ns, &secret_name) {
        match memory_access::new_token() {
            Ok(token) => {
                let secret = memory_access::token_secret(inst, &token);
                if out.record(what.clone(), create_if_absent(&secrets, &secret).await) == Some(true) {
                    out.created.push(what);
                }
            }
            Err(e) => out.errors.push(format!("{what}: no randomness for a token: {e}")),
        }
    }
    let policies: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    let policy = memory_access::network_policy(inst, &ctx.settings.system_namespace);
    let what = format!("NetworkPolicy/{}", policy.name_any());
    if out.record(what.clone(), apply(stores, inst, &policies, &policy, &stores.policies).await)
        == Some(Applied::Created)
    {
        out.created.push(what);
    }
}

async fn web_endpoint(inst: &SympoziumInstance, ctx: &Context, stores: &Stores, out: &mut Converged) {
    let uid = inst.uid().unwrap_or_default();
    let ns = inst.namespace().unwrap_or_default();
    let runs: Api<AgentRun> = Api::namespaced(ctx.client.clone(), &ns);
    match build::web_endpoint_run(inst) {
        Some(run) => {
            let what = format!("AgentRun/{}", run.name_any());
            if out.record(what.clone(), apply(stores, inst, &runs, &run, &stores.runs).await)
                == Some(Applied::Created)
            {
                out.created.push(what);
            }
        }
        None => {
            let instance = inst.name_any();
            let selector =
                [(labels::INSTANCE, instance.as_str()), (labels::COMPONENT, component::WEB_ENDPOINT)];
            for run in cache::labelled(&stores.runs, &ns, &selector) {
                let name = run.name_any();
                if out.record(
                    format!("AgentRun/{name}"),
                    delete_if_owned(&runs, &stores.runs, &ns, &name, &uid).await,
                ) == Some(true)
                {
                    out.deleted.push(format!("AgentRun/{name}"));
                }
            }
        }
    }
}
