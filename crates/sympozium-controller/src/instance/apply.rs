//! Apply: converge the cluster to the built objects — create or update what should exist
//! and delete what no longer should. Data volumes (memory database, WhatsApp session) are
//! never deleted by a spec edit; garbage collection removes them with the instance.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use sympozium_api::instance::{ChannelStatus, ChannelType};
use sympozium_api::labels::{self, component};
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_kube::apply::{Applied, apply, create_if_absent, delete_if_owned};

use super::dereference::Observed;
use super::{build, bus_access, memory_access};
use crate::context::Context;

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
pub async fn converge(inst: &SympoziumInstance, observed: &Observed, ctx: &Context) -> Converged {
    let mut out = Converged::default();
    channels(inst, observed, ctx, &mut out).await;
    memory(inst, ctx, &mut out).await;
    web_endpoint(inst, ctx, &mut out).await;
    if ctx.agent_sandbox {
        super::warmpool::converge(inst, ctx, &mut out).await;
    }
    out
}

async fn channels(inst: &SympoziumInstance, observed: &Observed, ctx: &Context, out: &mut Converged) {
    let uid = inst.uid().unwrap_or_default();
    let ns = inst.namespace().unwrap_or_default();
    if let Some(auth) = &ctx.settings.bus_auth
        && !inst.spec.channels.is_empty()
    {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let secret = bus_access::secret(inst, auth);
        let what = format!("Secret/{}", secret.name_any());
        if out.record(what.clone(), apply(&secrets, &secret).await) == Some(Applied::Created) {
            out.created.push(what);
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
            if out.record(what.clone(), apply(&services, &svc).await) == Some(Applied::Created) {
                out.created.push(what);
            }
        }
        let version = observed.secret_versions.get(secret).cloned().flatten();
        let deploy = build::channel_deployment(inst, channel, version.as_deref(), &ctx.settings);
        let what = format!("Deployment/{}", deploy.name_any());
        match out.record(what.clone(), apply(&deployments, &deploy).await) {
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
        if out.record(format!("Deployment/{name}"), delete_if_owned(&deployments, &name, &uid).await)
            == Some(true)
        {
            out.deleted.push(format!("Deployment/{name}"));
        }
        // Its webhook Service (same name), if the platform had one.
        if out.record(format!("Service/{name}"), delete_if_owned(&services, &name, &uid).await) == Some(true)
        {
            out.deleted.push(format!("Service/{name}"));
        }
    }
}

async fn memory(inst: &SympoziumInstance, ctx: &Context, out: &mut Converged) {
    let uid = inst.uid().unwrap_or_default();
    let ns = inst.namespace().unwrap_or_default();
    let name = inst.name_any();
    if build::wants_memory_configmap(inst) {
        let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
        let cm = build::memory_configmap(inst);
        // Create-only: a PersonaPack may have seeded it, and agents write to it.
        if out.record(format!("ConfigMap/{}", cm.name_any()), create_if_absent(&configmaps, &cm).await)
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
        memory_access(inst, ctx, out).await;
        let deploy = build::memory_deployment(inst, &ctx.settings);
        if out.record(format!("Deployment/{server}"), apply(&deployments, &deploy).await)
            == Some(Applied::Created)
        {
            out.created.push(format!("Deployment/{server}"));
        }
        let svc = build::memory_service(inst);
        if out.record(format!("Service/{server}"), apply(&services, &svc).await) == Some(Applied::Created) {
            out.created.push(format!("Service/{server}"));
        }
    } else {
        // The memory skill was removed: stop the server, keep its database volume.
        if out.record(format!("Deployment/{server}"), delete_if_owned(&deployments, &server, &uid).await)
            == Some(true)
        {
            out.deleted.push(format!("Deployment/{server}"));
        }
        if out.record(format!("Service/{server}"), delete_if_owned(&services, &server, &uid).await)
            == Some(true)
        {
            out.deleted.push(format!("Service/{server}"));
        }
        let policies: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &ns);
        let policy = memory_access::network_policy_name(&name);
        if out.record(format!("NetworkPolicy/{policy}"), delete_if_owned(&policies, &policy, &uid).await)
            == Some(true)
        {
            out.deleted.push(format!("NetworkPolicy/{policy}"));
        }
    }
}

/// The memory server's token Secret (created once) and its ingress NetworkPolicy.
async fn memory_access(inst: &SympoziumInstance, ctx: &Context, out: &mut Converged) {
    let ns = inst.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret_name = memory_access::token_secret_name(&inst.name_any());
    let what = format!("Secret/{secret_name}");
    // Read first: a new token is drawn only for an instance that has none, and a failure to
    // draw one is reported instead of starting a server without a token.
    match secrets.get_metadata_opt(&secret_name).await {
        Ok(Some(_)) => {}
        Ok(None) => match memory_access::new_token() {
            Ok(token) => {
                let secret = memory_access::token_secret(inst, &token);
                if out.record(what.clone(), create_if_absent(&secrets, &secret).await) == Some(true) {
                    out.created.push(what);
                }
            }
            Err(e) => out.errors.push(format!("{what}: no randomness for a token: {e}")),
        },
        Err(e) => out.errors.push(format!("{what}: {e}")),
    }
    let policies: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    let policy = memory_access::network_policy(inst, &ctx.settings.system_namespace);
    let what = format!("NetworkPolicy/{}", policy.name_any());
    if out.record(what.clone(), apply(&policies, &policy).await) == Some(Applied::Created) {
        out.created.push(what);
    }
}

async fn web_endpoint(inst: &SympoziumInstance, ctx: &Context, out: &mut Converged) {
    let uid = inst.uid().unwrap_or_default();
    let ns = inst.namespace().unwrap_or_default();
    let runs: Api<AgentRun> = Api::namespaced(ctx.client.clone(), &ns);
    match build::web_endpoint_run(inst) {
        Some(run) => {
            let what = format!("AgentRun/{}", run.name_any());
            if out.record(what.clone(), apply(&runs, &run).await) == Some(Applied::Created) {
                out.created.push(what);
            }
        }
        None => {
            let selector = format!(
                "{}={},{}={}",
                labels::INSTANCE,
                inst.name_any(),
                labels::COMPONENT,
                component::WEB_ENDPOINT
            );
            let Some(list) =
                out.record("AgentRun list".into(), runs.list(&ListParams::default().labels(&selector)).await)
            else {
                return;
            };
            for run in list {
                let name = run.name_any();
                if out.record(format!("AgentRun/{name}"), delete_if_owned(&runs, &name, &uid).await)
                    == Some(true)
                {
                    out.deleted.push(format!("AgentRun/{name}"));
                }
            }
        }
    }
}
