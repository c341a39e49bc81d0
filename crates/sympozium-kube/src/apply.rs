//! Server-side apply and deletion helpers.

use std::fmt::Debug;

use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::FIELD_MANAGER;

/// What an apply did, so callers can report creations without spamming events on no-ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The object did not exist before.
    Created,
    /// The object existed and now matches the desired state.
    Updated,
}

/// Server-side applies `obj` as `sympozium-controller`, taking ownership of conflicting
/// fields: the controller is the source of truth for the fields it sets.
pub async fn apply<K>(api: &Api<K>, obj: &K) -> Result<Applied, kube::Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let existed = api.get_metadata_opt(&name).await?.is_some();
    apply_known(api, obj, existed).await
}

/// Like [`apply`], for a caller that already knows whether the object exists (from a watch
/// cache), which saves the lookup.
pub async fn apply_known<K>(api: &Api<K>, obj: &K, existed: bool) -> Result<Applied, kube::Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj)).await?;
    Ok(if existed { Applied::Updated } else { Applied::Created })
}

/// Creates `obj` unless an object of that name exists; never touches an existing one.
/// Returns whether it created the object.
pub async fn create_if_absent<K>(api: &Api<K>, obj: &K) -> Result<bool, kube::Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    match api
        .create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, obj)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes `name` in the background; returns whether something was deleted.
pub async fn delete_if_exists<K>(api: &Api<K>, name: &str) -> Result<bool, kube::Error>
where
    K: Resource + Clone + Debug + DeserializeOwned,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether an error is the API server's 404.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

/// Deletes `name` only when it is owned by the object with `owner_uid`, so a user's own
/// object that happens to carry the same name is never touched.
pub async fn delete_if_owned<K>(api: &Api<K>, name: &str, owner_uid: &str) -> Result<bool, kube::Error>
where
    K: Resource + Clone + Debug + DeserializeOwned,
{
    let Some(meta) = api.get_metadata_opt(name).await? else {
        return Ok(false);
    };
    if !meta.metadata.owner_references.iter().flatten().any(|o| o.uid == owner_uid) {
        return Ok(false);
    }
    delete_if_exists(api, name).await
}
