//! Cleanup under the finalizer: stop the instance's workloads before it goes; ownerReference
//! garbage collection removes the rest (PVCs included) once the finalizer is released.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};
use sympozium_api::labels::{self, component};
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_kube::apply::delete_if_exists;

use super::{Error, build};
use crate::context::Context;

/// Deletes channel Deployments, the memory ConfigMap, Deployment and Service, and the
/// serving AgentRun of `inst`.
pub async fn cleanup(inst: &SympoziumInstance, ctx: &Context) -> Result<(), Error> {
    let ns = inst.namespace().unwrap_or_default();
    let name = inst.name_any();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let channel_selector =
        format!("{}={},{}={}", labels::INSTANCE, name, labels::COMPONENT, component::CHANNEL);
    deployments
        .delete_collection(&DeleteParams::background(), &ListParams::default().labels(&channel_selector))
        .await?;

    let memory = build::memory_name(&name);
    delete_if_exists(&Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns), &memory).await?;
    delete_if_exists(&deployments, &memory).await?;
    delete_if_exists(&Api::<Service>::namespaced(ctx.client.clone(), &ns), &memory).await?;

    let runs: Api<AgentRun> = Api::namespaced(ctx.client.clone(), &ns);
    let web_selector =
        format!("{}={},{}={}", labels::INSTANCE, name, labels::COMPONENT, component::WEB_ENDPOINT);
    runs.delete_collection(&DeleteParams::background(), &ListParams::default().labels(&web_selector)).await?;
    Ok(())
}
