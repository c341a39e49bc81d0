//! Provider key Secrets the create and activate routes make from a key typed into the UI.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};

use crate::error::{ApiError, ApiResult};

/// The environment variable a provider's key goes into.
pub fn key_name(provider: &str) -> &'static str {
    sympozium_api::provider::api_key_env(provider)
}

/// The Secret name for `owner`'s key of `provider` (`<owner>-<provider>-key`).
pub fn secret_name(owner: &str, provider: &str) -> String {
    let provider = provider.to_lowercase();
    if provider.is_empty() { format!("{owner}-credentials") } else { format!("{owner}-{provider}-key") }
}

/// Creates or merges `data` into Secret `ns/name` with `labels` (server-side apply of only
/// these keys, so other keys of an existing Secret stay).
pub async fn upsert(
    client: &Client,
    ns: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    data: BTreeMap<String, String>,
) -> ApiResult<()> {
    let secret = Secret {
        metadata: ObjectMeta { name: Some(name.into()), labels: Some(labels), ..Default::default() },
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v.into_bytes()))).collect()),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&secret).map_err(|e| ApiError::Internal(e.to_string()))?;
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply("sympozium-apiserver").force(), &Patch::Apply(value))
        .await?;
    Ok(())
}

/// Whether Secret `ns/name` exists (400 naming `field` otherwise).
pub async fn must_exist(client: &Client, ns: &str, name: &str, field: &str) -> ApiResult<()> {
    match Api::<Secret>::namespaced(client.clone(), ns).get_metadata_opt(name).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid(field, format!("secret \"{name}\" not found in namespace \"{ns}\""))),
    }
}
