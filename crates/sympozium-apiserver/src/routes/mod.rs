//! The `/api/v1` routes, one group per file.

pub mod bedrock;
pub mod cluster;
pub mod gateway;
pub mod github;
pub mod instances;
pub mod mcpservers;
pub mod memory;
pub mod observability;
pub mod personapacks;
pub mod pods;
pub mod policies;
pub mod providers;
pub mod runs;
pub mod schedules;
pub mod ui;

use std::sync::Arc;

use axum::Router;
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;

/// Every `/api/v1` route.
pub fn api() -> Router<AppState> {
    Router::new()
        .merge(instances::routes())
        .merge(runs::routes())
        .merge(policies::routes())
        .merge(schedules::routes())
        .merge(personapacks::routes())
        .merge(mcpservers::routes())
        .merge(gateway::routes())
        .merge(observability::routes())
        .merge(cluster::routes())
        .merge(pods::routes())
        .merge(providers::routes())
        .merge(bedrock::routes())
        .merge(github::routes())
        .merge(memory::routes())
}

/// A cached object as JSON with its `apiVersion` and `kind` (reflector stores keep what the
/// watch decoded, which for typed objects drops neither, but be explicit for clients).
pub fn object_json<K>(obj: &Arc<K>) -> serde_json::Value
where
    K: kube::Resource<DynamicType = ()> + Serialize,
{
    let mut v = serde_json::to_value(obj.as_ref()).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), K::api_version(&()).into());
        m.insert("kind".into(), K::kind(&()).into());
    }
    v
}

/// `404 <kind> not found` for `ns/name`.
pub fn not_found(kind: &str, ns: &str, name: &str) -> ApiError {
    ApiError::NotFound(format!("{kind} \"{name}\" not found in namespace \"{ns}\""))
}

/// Maps a Kubernetes 404/409 on a write to the API's own messages.
pub fn write_error(kind: &str, ns: &str, name: &str, e: kube::Error) -> ApiError {
    match &e {
        kube::Error::Api(s) if s.code == 404 => not_found(kind, ns, name),
        kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists" => {
            ApiError::Conflict(format!("{kind} \"{name}\" already exists in namespace \"{ns}\""))
        }
        _ => ApiError::Kube(e),
    }
}

/// Deletes `ns/name` of kind `K` (`204`), with [`write_error`]'s messages; every route
/// group's DELETE handler is this call.
pub async fn delete_object<K>(
    client: &kube::Client,
    kind: &str,
    ns: &str,
    name: &str,
) -> Result<axum::http::StatusCode, ApiError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    kube::Api::<K>::namespaced(client.clone(), ns)
        .delete(name, &kube::api::DeleteParams::default())
        .await
        .map_err(|e| write_error(kind, ns, name, e))?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Creates `obj` in `ns` (`201` with the created object), with [`write_error`]'s messages
/// naming it `kind` `name`; every route group's POST handler ends with this call.
pub async fn create_object<K>(
    client: &kube::Client,
    kind: &str,
    ns: &str,
    name: &str,
    obj: &K,
) -> Result<axum::response::Response, ApiError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    use axum::response::IntoResponse;
    let created = kube::Api::<K>::namespaced(client.clone(), ns)
        .create(&kube::api::PostParams::default(), obj)
        .await
        .map_err(|e| write_error(kind, ns, name, e))?;
    Ok((axum::http::StatusCode::CREATED, axum::Json(object_json(&Arc::new(created)))).into_response())
}

/// Replaces `ns/name` with `obj` (the changed object as JSON), with [`write_error`]'s
/// messages; the PATCH handlers that read, change and write back end with this call.
pub async fn replace_object<K>(
    client: &kube::Client,
    kind: &str,
    ns: &str,
    name: &str,
    obj: &K,
) -> Result<axum::Json<serde_json::Value>, ApiError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let updated = kube::Api::<K>::namespaced(client.clone(), ns)
        .replace(name, &kube::api::PostParams::default(), obj)
        .await
        .map_err(|e| write_error(kind, ns, name, e))?;
    Ok(axum::Json(object_json(&Arc::new(updated))))
}

/// A run phase as its JSON name (`Running`), or `""`.
pub fn phase_name(phase: Option<sympozium_api::agentrun::AgentRunPhase>) -> String {
    phase
        .and_then(|p| serde_json::to_value(p).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
