//! `/api/v1/personapacks`: PersonaPacks, their activation, and copying the default packs
//! into a namespace.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};
use sympozium_api::common::{AgentSandboxInstanceSpec, ChannelAccessControl, SecretRef};
use sympozium_api::{PersonaPack, labels};
use utoipa::ToSchema;

use super::{not_found, object_json};
use crate::AppState;
use crate::cache;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::openapi::KubeObject;
use crate::params::{Body, ListQuery, NamespaceQuery, check_name};
use crate::secrets;

/// The persona pack routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/personapacks", get(list))
        .route("/api/v1/personapacks/install-defaults", post(install_defaults))
        .route("/api/v1/personapacks/{name}", get(get_one).patch(patch).delete(delete))
}

/// `PATCH /api/v1/personapacks/{name}`: activation and settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchPersonaPackRequest {
    /// Stamp the team out (true) or tear it down (false).
    pub enabled: Option<bool>,
    /// Model provider.
    pub provider: Option<String>,
    /// Existing Secret with the provider key.
    pub secret_name: Option<String>,
    /// A key to store in a new Secret `<pack>-<provider>-key`.
    pub api_key: Option<String>,
    /// Model for every persona.
    pub model: Option<String>,
    /// Base URL for every persona.
    #[serde(rename = "baseURL")]
    pub base_url: Option<String>,
    /// Channel types for every persona.
    pub channels: Option<Vec<String>>,
    /// Channel type → Secret.
    pub channel_configs: Option<BTreeMap<String, String>>,
    /// Policy for every generated instance.
    pub policy_ref: Option<String>,
    /// Heartbeat interval (e.g. `1h`) for every persona with a schedule.
    pub heartbeat_interval: Option<String>,
    /// SkillPack → parameters, merged.
    pub skill_params: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// Per-persona edits.
    pub personas: Option<Vec<PersonaPatch>>,
    /// Channel type → access control (replaced).
    #[schema(value_type = Option<Object>)]
    pub channel_access_control: Option<BTreeMap<String, ChannelAccessControl>>,
    /// Agent-sandbox settings.
    #[schema(value_type = Option<Object>)]
    pub agent_sandbox: Option<AgentSandboxInstanceSpec>,
}

/// One persona's edit.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonaPatch {
    /// The persona.
    pub name: String,
    /// New system prompt.
    pub system_prompt: Option<String>,
    /// New skills.
    pub skills: Option<Vec<String>>,
}

/// `POST /api/v1/personapacks/install-defaults`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallDefaultsResponse {
    /// Where the packs came from.
    pub source_namespace: String,
    /// Where they were copied to.
    pub target_namespace: String,
    /// Packs copied.
    pub copied: Vec<String>,
    /// Packs that were there already.
    pub already_present: Vec<String>,
}

/// Packs in `?namespace`.
#[utoipa::path(get, path = "/api/v1/personapacks", tag = "personapacks", params(ListQuery),
    responses((status = 200, body = [KubeObject]), (status = 400, body = ErrorBody)))]
pub async fn list(State(s): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let ns = q.ns()?;
    q.page_of(cache::list(&s.caches.packs, Some(&ns)), |o| object_json(&o))
}

/// One pack.
#[utoipa::path(get, path = "/api/v1/personapacks/{name}", tag = "personapacks", params(("name" = String, Path), NamespaceQuery),
    responses((status = 200, body = KubeObject), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let ns = q.ns()?;
    cache::get(&s.caches.packs, &ns, &name)
        .map(|o| Json(object_json(&o)))
        .ok_or_else(|| not_found("personapack", &ns, &name))
}

/// Deletes a pack (its instances go with it).
#[utoipa::path(delete, path = "/api/v1/personapacks/{name}", tag = "personapacks", params(("name" = String, Path), NamespaceQuery),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
) -> ApiResult<StatusCode> {
    let ns = q.ns()?;
    super::delete_object::<PersonaPack>(&s.client, "personapack", &ns, &name).await
}

/// Copies every pack of the system namespace into `?namespace` (disabled) unless present.
#[utoipa::path(post, path = "/api/v1/personapacks/install-defaults", tag = "personapacks", params(NamespaceQuery),
    responses((status = 200, body = InstallDefaultsResponse), (status = 400, body = ErrorBody)))]
pub async fn install_defaults(
    State(s): State<AppState>,
    Query(q): Query<NamespaceQuery>,
) -> ApiResult<Json<InstallDefaultsResponse>> {
    let ns = q.ns()?;
    let api = Api::<PersonaPack>::namespaced(s.client.clone(), &ns);
    let mut out = InstallDefaultsResponse {
        source_namespace: s.system_namespace.clone(),
        target_namespace: ns.clone(),
        ..Default::default()
    };
    for pack in cache::list(&s.caches.packs, Some(&s.system_namespace)) {
        let name = pack.name_any();
        if ns == s.system_namespace || api.get_metadata_opt(&name).await?.is_some() {
            out.already_present.push(name);
            continue;
        }
        let mut spec = pack.spec.clone();
        spec.enabled = Some(false);
        let copy = PersonaPack {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                labels: pack.metadata.labels.clone(),
                annotations: pack.metadata.annotations.clone(),
                ..Default::default()
            },
            spec,
            status: None,
        };
        match api.create(&PostParams::default(), &copy).await {
            Ok(_) => out.copied.push(name),
            Err(kube::Error::Api(e)) if e.code == 409 => out.already_present.push(name),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(out))
}

/// Activates, deactivates or reconfigures a pack.
#[utoipa::path(patch, path = "/api/v1/personapacks/{name}", tag = "personapacks", params(("name" = String, Path), NamespaceQuery),
    request_body = PatchPersonaPackRequest,
    responses((status = 200, body = KubeObject), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn patch(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
    Body(req): Body<PatchPersonaPackRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let ns = q.ns()?;
    let api = Api::<PersonaPack>::namespaced(s.client.clone(), &ns);
    let mut pack = api.get_opt(&name).await?.ok_or_else(|| not_found("personapack", &ns, &name))?;
    let spec = &mut pack.spec;
    if let Some(e) = req.enabled {
        spec.enabled = Some(e);
    }
    let provider = req.provider.as_deref().map(str::trim).unwrap_or_default().to_lowercase();
    let secret_name = req.secret_name.clone().filter(|s| !s.is_empty());
    if let Some(key) = req.api_key.as_deref().filter(|k| !k.is_empty()) {
        if provider.is_empty() {
            return Err(ApiError::invalid("provider", "is required with apiKey"));
        }
        if secret_name.is_none() {
            let sn = secrets::secret_name(&name, &provider);
            let labels = BTreeMap::from([
                (labels::MANAGED_BY.to_string(), "sympozium".to_string()),
                (labels::PERSONA_PACK.to_string(), name.clone()),
            ]);
            let data = BTreeMap::from([(secrets::key_name(&provider).to_string(), key.to_string())]);
            secrets::upsert(&s.client, &ns, &sn, labels, data).await?;
            spec.auth_refs = vec![SecretRef { provider: Some(provider.clone()), secret: sn }];
        }
    }
    if let Some(sn) = &secret_name {
        check_name("secretName", sn)?;
        if provider.is_empty() {
            return Err(ApiError::invalid("provider", "is required with secretName"));
        }
        secrets::must_exist(&s.client, &ns, sn, "secretName").await?;
        spec.auth_refs = vec![SecretRef { provider: Some(provider.clone()), secret: sn.clone() }];
    }
    if let Some(model) = req.model.as_deref().filter(|m| !m.is_empty()) {
        for p in &mut spec.personas {
            p.model = Some(model.to_string());
        }
    }
    match req.base_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ApiError::invalid("baseURL", format!("\"{url}\" is not an http(s) URL")));
            }
            spec.base_url = Some(url.to_string());
        }
        None if spec.base_url.as_deref().unwrap_or_default().is_empty() && !provider.is_empty() => {
            spec.base_url = sympozium_api::provider::local_base_url(&provider).map(str::to_string);
        }
        None => {}
    }
    if let Some(channels) = &req.channels {
        for p in &mut spec.personas {
            p.channels = channels.clone();
        }
    }
    if let Some(c) = &req.channel_configs {
        spec.channel_configs = Some(c.clone());
    }
    if let Some(c) = &req.channel_access_control {
        spec.channel_access_control = Some(c.clone());
    }
    if let Some(p) = &req.policy_ref {
        spec.policy_ref = Some(p.clone()).filter(|p| !p.is_empty());
    }
    if let Some(interval) = req.heartbeat_interval.as_deref().filter(|i| !i.is_empty()) {
        for p in &mut spec.personas {
            if let Some(schedule) = &mut p.schedule {
                schedule.interval = Some(interval.to_string());
                schedule.cron = Some(String::new());
            }
        }
    }
    if let Some(params) = &req.skill_params {
        let merged = spec.skill_params.get_or_insert_with(BTreeMap::new);
        for (skill, values) in params {
            merged.entry(skill.clone()).or_default().extend(values.clone());
        }
    }
    for (i, edit) in req.personas.iter().flatten().enumerate() {
        let Some(p) = spec.personas.iter_mut().find(|p| p.name == edit.name) else {
            return Err(ApiError::invalid(
                format!("personas[{i}].name"),
                format!("pack \"{name}\" has no persona \"{}\"", edit.name),
            ));
        };
        if let Some(prompt) = &edit.system_prompt {
            p.system_prompt = prompt.clone();
        }
        if let Some(skills) = &edit.skills {
            p.skills = skills.clone();
        }
    }
    if let Some(sb) = &req.agent_sandbox {
        spec.agent_sandbox = Some(sb.clone());
    }
    super::replace_object(&s.client, "personapack", &ns, &name, &pack).await
}
