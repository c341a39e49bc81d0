//! Tearing a team down: when a pack is disabled (the whole team, then the credential
//! Secrets the pack manages) and when it is deleted (the seeded memory ConfigMaps, which
//! carry no ownerReference; garbage collection removes the instances and schedules).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use sympozium_api::{PersonaPack, SympoziumInstance, SympoziumSchedule};
use sympozium_kube::apply::delete_if_exists;

use super::build;
use super::dereference::{Observed, owned_by};
use crate::context::Context;

/// Deletes every instance and schedule the pack owns and its seeded memory. Returns what
/// it deleted, as `Kind/name`.
pub async fn remove_team(
    pack: &PersonaPack,
    observed: &Observed,
    ctx: &Context,
) -> Result<Vec<String>, kube::Error> {
    let ns = pack.namespace().unwrap_or_default();
    let uid = pack.uid().unwrap_or_default();
    let mut deleted = Vec::new();
    let instances: Api<SympoziumInstance> = Api::namespaced(ctx.client.clone(), &ns);
    for inst in
        observed.instances.iter().filter(|i| owned_by(&***i, &uid) && i.metadata.deletion_timestamp.is_none())
    {
        if delete_if_exists(&instances, &inst.name_any()).await? {
            deleted.push(format!("SympoziumInstance/{}", inst.name_any()));
        }
    }
    let schedules: Api<SympoziumSchedule> = Api::namespaced(ctx.client.clone(), &ns);
    for s in
        observed.schedules.iter().filter(|s| owned_by(&***s, &uid) && s.metadata.deletion_timestamp.is_none())
    {
        if delete_if_exists(&schedules, &s.name_any()).await? {
            deleted.push(format!("SympoziumSchedule/{}", s.name_any()));
        }
    }
    deleted.extend(remove_memory(pack, observed, ctx).await?);
    Ok(deleted)
}

/// Deletes the pack's seeded memory ConfigMaps (labelled with the pack), as the
/// controller's store holds them: a disabled pack is reconciled whenever anything of it
/// changes, and listing them from the API server each time delayed the reconcile that
/// enables it.
pub async fn remove_memory(
    pack: &PersonaPack,
    observed: &Observed,
    ctx: &Context,
) -> Result<Vec<String>, kube::Error> {
    let ns = pack.namespace().unwrap_or_default();
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let mut deleted = Vec::new();
    for cm in observed.configmaps.iter().filter(|c| c.metadata.deletion_timestamp.is_none()) {
        if delete_if_exists(&configmaps, &cm.name_any()).await? {
            deleted.push(format!("ConfigMap/{}", cm.name_any()));
        }
    }
    Ok(deleted)
}

/// After the team is gone: deletes the credential Secrets the pack manages (see
/// [`build::is_managed_secret`]) and drops their references from `spec.authRefs`;
/// references to Secrets the user manages are kept. Returns the deleted Secrets.
pub async fn remove_managed_secrets(pack: &PersonaPack, ctx: &Context) -> Result<Vec<String>, kube::Error> {
    if pack.spec.auth_refs.is_empty() {
        return Ok(Vec::new());
    }
    let ns = pack.namespace().unwrap_or_default();
    let name = pack.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut managed = BTreeSet::new();
    let mut deleted = Vec::new();
    let unique: BTreeSet<&str> =
        pack.spec.auth_refs.iter().map(|r| r.secret.trim()).filter(|s| !s.is_empty()).collect();
    for secret in unique {
        let meta = secrets.get_metadata_opt(secret).await?;
        let labels = meta.as_ref().map(|m| m.labels().clone()).unwrap_or_default();
        if !build::is_managed_secret(&name, secret, &labels) {
            continue;
        }
        managed.insert(secret.to_string());
        if meta.is_some() && delete_if_exists(&secrets, secret).await? {
            deleted.push(format!("Secret/{secret}"));
        }
    }
    let kept: Vec<_> =
        pack.spec.auth_refs.iter().filter(|r| !managed.contains(r.secret.trim())).cloned().collect();
    if kept.len() != pack.spec.auth_refs.len() {
        let packs: Api<PersonaPack> = Api::namespaced(ctx.client.clone(), &ns);
        let auth_refs = if kept.is_empty() { serde_json::Value::Null } else { json!(kept) };
        packs
            .patch(&name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"authRefs": auth_refs}})))
            .await?;
    }
    Ok(deleted)
}

/// Finalizer cleanup of a deleted pack: its seeded memory ConfigMaps have no owner, so
/// they are deleted here; garbage collection removes the instances and schedules.
pub async fn finalize(
    pack: &PersonaPack,
    observed: &Observed,
    ctx: &Context,
) -> Result<Vec<String>, kube::Error> {
    let ns = pack.namespace().unwrap_or_default();
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let mut deleted = remove_memory(pack, observed, ctx).await?;
    let labelled: BTreeSet<String> = observed.configmaps.iter().map(|c| c.name_any()).collect();
    // Also by name, for seeded ConfigMaps whose labels a user stripped.
    for persona in &pack.spec.personas {
        let cm = build::memory_name(&build::instance_name(&pack.name_any(), &persona.name));
        if labelled.contains(&cm) {
            continue;
        }
        let Some(existing) = configmaps.get_opt(&cm).await? else { continue };
        let seeded = existing.annotations().contains_key(build::SEED_HASH_ANNOTATION);
        if seeded && existing.owner_references().is_empty() {
            configmaps.delete(&cm, &DeleteParams::background()).await?;
            deleted.push(format!("ConfigMap/{cm}"));
        }
    }
    Ok(deleted)
}
