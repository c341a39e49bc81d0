//! `/api/v1/instances`: SympoziumInstances.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde::{Deserialize, Serialize};
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::common::{AgentSandboxInstanceSpec, LifecycleHooks, SecretRef, SkillRef};
use sympozium_api::instance::{
    AgentConfig, AgentsSpec, ChannelSpec, ChannelType, MemorySpec, ObservabilitySpec,
};
use sympozium_api::labels;
use sympozium_api::schedule::{ConcurrencyPolicy, ScheduleType, cron_problem};
use sympozium_api::{
    SkillPack, SympoziumInstance, SympoziumInstanceSpec, SympoziumSchedule, SympoziumScheduleSpec,
};
use utoipa::ToSchema;

use super::{not_found, object_json, write_error};
use crate::AppState;
use crate::cache;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::openapi::KubeObject;
use crate::params::{Body, ListQuery, NamespaceQuery, check_name};
use crate::secrets;

/// The instance routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/instances", get(list).post(create))
        .route("/api/v1/instances/{name}", get(get_one).patch(patch).delete(delete))
        .route("/api/v1/instances/{name}/web-endpoint", get(web_endpoint))
}

/// `POST /api/v1/instances`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateInstanceRequest {
    /// Instance name (required).
    pub name: Option<String>,
    /// Model provider, e.g. `openai`, `anthropic`, `ollama` (required).
    pub provider: Option<String>,
    /// Model name (required).
    pub model: Option<String>,
    /// OpenAI-compatible base URL.
    #[serde(rename = "baseURL")]
    pub base_url: Option<String>,
    /// Existing Secret with the provider key.
    pub secret_name: Option<String>,
    /// A key to store in a new Secret `<name>-<provider>-key`.
    pub api_key: Option<String>,
    /// SympoziumPolicy to apply.
    pub policy_ref: Option<String>,
    /// Skills.
    #[schema(value_type = Option<Vec<Object>>)]
    pub skills: Option<Vec<SkillRef>>,
    /// Chat channels.
    #[schema(value_type = Option<Vec<Object>>)]
    pub channels: Option<Vec<ChannelSpec>>,
    /// Node selector for agent pods.
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Kubernetes agent-sandbox settings.
    #[schema(value_type = Option<Object>)]
    pub agent_sandbox: Option<AgentSandboxInstanceSpec>,
    /// Whole-run timeout, e.g. `30m`.
    pub run_timeout: Option<String>,
    /// A heartbeat: the SympoziumSchedule `<name>-heartbeat` (type `heartbeat`), made with
    /// the instance and owned by it.
    pub heartbeat: Option<HeartbeatRequest>,
}

/// The heartbeat of [`CreateInstanceRequest`].
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatRequest {
    /// 5-field cron expression, e.g. `0 * * * *` (required).
    pub schedule: Option<String>,
    /// What each heartbeat run does (required).
    pub task: Option<String>,
}

/// `PATCH /api/v1/instances/{name}`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchInstanceRequest {
    /// Turns the web endpoint skill on or off.
    pub web_endpoint: Option<WebEndpointPatch>,
    /// Replaces the agent's lifecycle hooks.
    #[schema(value_type = Option<Object>)]
    pub lifecycle: Option<LifecycleHooks>,
}

/// The web endpoint part of [`PatchInstanceRequest`].
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebEndpointPatch {
    /// `false` removes the skill; anything else adds it.
    pub enabled: Option<bool>,
    /// Hostname of the endpoint.
    pub hostname: Option<String>,
    /// Rate limit.
    pub rate_limit: Option<RateLimitPatch>,
}

/// Rate limit of [`WebEndpointPatch`].
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitPatch {
    /// Requests per minute.
    pub requests_per_minute: Option<i64>,
}

/// `GET /api/v1/instances/{name}/web-endpoint`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebEndpointStatusResponse {
    /// The instance has the web-endpoint skill.
    pub enabled: bool,
    /// Deployment of the serving run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_name: Option<String>,
    /// Service of the serving run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// The cluster's gateway is ready.
    pub gateway_ready: bool,
    /// The public URL, when the instance has a route.
    #[serde(rename = "routeURL", skip_serializing_if = "Option::is_none")]
    pub route_url: Option<String>,
    /// Secret holding the endpoint's API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_secret_name: Option<String>,
}

/// Lists instances in `?namespace`.
#[utoipa::path(get, path = "/api/v1/instances", tag = "instances", params(ListQuery),
    responses((status = 200, body = [KubeObject]), (status = 400, body = ErrorBody)))]
pub async fn list(State(s): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let ns = q.ns()?;
    q.page_of(cache::list(&s.caches.instances, Some(&ns)), |o| object_json(&o))
}

/// One instance.
#[utoipa::path(get, path = "/api/v1/instances/{name}", tag = "instances", params(("name" = String, Path), NamespaceQuery),
    responses((status = 200, body = KubeObject), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let ns = q.ns()?;
    cache::get(&s.caches.instances, &ns, &name)
        .map(|o| Json(object_json(&o)))
        .ok_or_else(|| not_found("instance", &ns, &name))
}

/// Creates an instance (and its key Secret when `apiKey` is given, and its heartbeat
/// schedule when `heartbeat` is). Skills must name existing SkillPacks and channels
/// existing Secrets; nothing is written when any of it is wrong.
#[utoipa::path(post, path = "/api/v1/instances", tag = "instances", params(NamespaceQuery), request_body = CreateInstanceRequest,
    responses((status = 201, body = KubeObject), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    Query(q): Query<NamespaceQuery>,
    Body(req): Body<CreateInstanceRequest>,
) -> ApiResult<Response> {
    let ns = q.ns()?;
    let name = req.name.clone().unwrap_or_default();
    check_name("name", &name)?;
    let provider = req.provider.clone().unwrap_or_default().trim().to_lowercase();
    if provider.is_empty() {
        return Err(ApiError::invalid("provider", "is required"));
    }
    let model = req.model.clone().unwrap_or_default().trim().to_string();
    if model.is_empty() {
        return Err(ApiError::invalid("model", "is required"));
    }
    if let Some(url) = req.base_url.as_deref().filter(|u| !u.is_empty())
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(ApiError::invalid("baseURL", format!("\"{url}\" is not an http(s) URL")));
    }
    check_skills(&s, &ns, req.skills.as_deref().unwrap_or_default()).await?;
    check_channels(&s, &ns, req.channels.as_deref().unwrap_or_default()).await?;
    let heartbeat = match &req.heartbeat {
        None => None,
        Some(h) => {
            let cron = crate::params::required("heartbeat.schedule", &h.schedule)?;
            if let Some(why) = cron_problem(&cron) {
                return Err(ApiError::invalid("heartbeat.schedule", why));
            }
            Some((cron, crate::params::required("heartbeat.task", &h.task)?))
        }
    };
    let mut secret = req.secret_name.clone().filter(|s| !s.is_empty());
    if let Some(sn) = &secret {
        check_name("secretName", sn)?;
        secrets::must_exist(&s.client, &ns, sn, "secretName").await?;
    } else if let Some(key) = req.api_key.as_deref().filter(|k| !k.is_empty()) {
        let sn = secrets::secret_name(&name, &provider);
        let labels = BTreeMap::from([
            (labels::MANAGED_BY.to_string(), "sympozium".to_string()),
            (labels::INSTANCE.to_string(), name.clone()),
        ]);
        let data = BTreeMap::from([(secrets::key_name(&provider).to_string(), key.to_string())]);
        secrets::upsert(&s.client, &ns, &sn, labels, data).await?;
        secret = Some(sn);
    }
    let base_url = req
        .base_url
        .clone()
        .filter(|u| !u.is_empty())
        .or_else(|| sympozium_api::provider::local_base_url(&provider).map(str::to_string));
    let instance = SympoziumInstance {
        metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(ns.clone()), ..Default::default() },
        spec: SympoziumInstanceSpec {
            agents: AgentsSpec {
                default: AgentConfig {
                    model,
                    base_url,
                    node_selector: req.node_selector.clone().filter(|m| !m.is_empty()),
                    agent_sandbox: req.agent_sandbox.clone(),
                    run_timeout: req.run_timeout.clone().filter(|t| !t.is_empty()),
                    ..Default::default()
                },
            },
            auth_refs: secret
                .map(|secret| vec![SecretRef { provider: Some(provider.clone()), secret }])
                .unwrap_or_default(),
            policy_ref: req.policy_ref.clone().filter(|p| !p.is_empty()),
            skills: req.skills.clone().unwrap_or_default(),
            channels: req.channels.clone().unwrap_or_default(),
            memory: Some(MemorySpec { enabled: true, max_size_kb: 256, ..Default::default() }),
            observability: Some(ObservabilitySpec {
                enabled: true,
                service_name: Some("sympozium".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        status: None,
    };
    let created = Api::<SympoziumInstance>::namespaced(s.client.clone(), &ns)
        .create(&PostParams::default(), &instance)
        .await
        .map_err(|e| write_error("instance", &ns, &name, e))?;
    if let Some((cron, task)) = heartbeat
        && let Err(e) = create_heartbeat(&s, &created, cron, task).await
    {
        // All or nothing: an instance without the heartbeat asked for would look created.
        let _ = Api::<SympoziumInstance>::namespaced(s.client.clone(), &ns)
            .delete(&name, &Default::default())
            .await;
        return Err(e);
    }
    Ok((StatusCode::CREATED, Json(object_json(&std::sync::Arc::new(created)))).into_response())
}

/// Every `skillPackRef` names a SkillPack in the namespace or the system namespace (where
/// the controller looks for it).
async fn check_skills(s: &AppState, ns: &str, skills: &[SkillRef]) -> ApiResult<()> {
    for (i, r) in skills.iter().enumerate() {
        let Some(pack) = r.skill_pack_ref.as_deref() else {
            if r.config_map_ref.is_none() {
                return Err(ApiError::invalid(
                    format!("skills[{i}].skillPackRef"),
                    "is required (or configMapRef)",
                ));
            }
            continue;
        };
        let field = format!("skills[{i}].skillPackRef");
        check_name(&field, pack)?;
        let mut found = false;
        for n in [ns, s.system_namespace.as_str()] {
            if Api::<SkillPack>::namespaced(s.client.clone(), n).get_metadata_opt(pack).await?.is_some() {
                found = true;
                break;
            }
        }
        if !found {
            return Err(ApiError::invalid(
                field,
                format!("SkillPack \"{pack}\" not found in namespace \"{ns}\" or \"{}\"", s.system_namespace),
            ));
        }
    }
    Ok(())
}

/// One channel per type, each naming an existing Secret with its token (WhatsApp pairs by
/// QR code and may name none). Tokens never travel in the request.
async fn check_channels(s: &AppState, ns: &str, channels: &[ChannelSpec]) -> ApiResult<()> {
    for (i, c) in channels.iter().enumerate() {
        if channels[..i].iter().any(|o| o.type_ == c.type_) {
            return Err(ApiError::invalid(
                format!("channels[{i}].type"),
                format!("{} is given twice; an instance has one channel per type", c.type_.as_str()),
            ));
        }
        let field = format!("channels[{i}].configRef.secret");
        let secret = c.config_ref.secret.trim();
        if secret.is_empty() {
            if c.type_ == ChannelType::Whatsapp {
                continue;
            }
            return Err(ApiError::invalid(
                field,
                format!("is required: the Secret with the {} token", c.type_.as_str()),
            ));
        }
        check_name(&field, secret)?;
        secrets::must_exist(&s.client, ns, secret, &field).await?;
    }
    Ok(())
}

/// The heartbeat schedule of a new instance, owned by it (deleting the instance deletes it).
async fn create_heartbeat(
    s: &AppState,
    inst: &SympoziumInstance,
    cron: String,
    task: String,
) -> ApiResult<()> {
    let name = inst.name_any();
    let ns = inst.namespace().unwrap_or_default();
    let schedule_name = format!("{name}-heartbeat");
    let schedule = SympoziumSchedule {
        metadata: ObjectMeta {
            name: Some(schedule_name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(BTreeMap::from([
                (labels::MANAGED_BY.to_string(), "sympozium".to_string()),
                (labels::INSTANCE.to_string(), name.clone()),
            ])),
            owner_references: inst.controller_owner_ref(&()).map(|mut o| {
                o.controller = Some(false);
                vec![o]
            }),
            ..Default::default()
        },
        spec: SympoziumScheduleSpec {
            instance_ref: name,
            schedule: cron,
            task,
            type_: ScheduleType::Heartbeat,
            concurrency_policy: ConcurrencyPolicy::Forbid,
            include_memory: Some(true),
            ..Default::default()
        },
        status: None,
    };
    Api::<SympoziumSchedule>::namespaced(s.client.clone(), &ns)
        .create(&PostParams::default(), &schedule)
        .await
        .map_err(|e| write_error("schedule", &ns, &schedule_name, e))?;
    Ok(())
}

/// Turns the web endpoint on/off, replaces lifecycle hooks.
#[utoipa::path(patch, path = "/api/v1/instances/{name}", tag = "instances", params(("name" = String, Path), NamespaceQuery),
    request_body = PatchInstanceRequest,
    responses((status = 200, body = KubeObject), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn patch(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
    Body(req): Body<PatchInstanceRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let ns = q.ns()?;
    let api = Api::<SympoziumInstance>::namespaced(s.client.clone(), &ns);
    let mut inst = api.get_opt(&name).await?.ok_or_else(|| not_found("instance", &ns, &name))?;
    if let Some(we) = &req.web_endpoint {
        inst.spec.skills.retain(|r| !r.is_web_endpoint());
        if we.enabled != Some(false) {
            let mut params = BTreeMap::new();
            if let Some(h) = we.hostname.as_deref().filter(|h| !h.is_empty()) {
                params.insert("hostname".to_string(), h.to_string());
            }
            if let Some(rpm) = we.rate_limit.as_ref().and_then(|r| r.requests_per_minute) {
                if rpm < 0 {
                    return Err(ApiError::invalid(
                        "webEndpoint.rateLimit.requestsPerMinute",
                        "must not be negative",
                    ));
                }
                params.insert("rate_limit_rpm".to_string(), rpm.to_string());
            }
            inst.spec.skills.push(SkillRef {
                skill_pack_ref: Some(labels::skills::WEB_ENDPOINT.into()),
                params: (!params.is_empty()).then_some(params),
                ..Default::default()
            });
        }
    }
    if let Some(l) = &req.lifecycle {
        let empty = l.pre_run.is_empty() && l.post_run.is_empty() && l.rbac.is_empty();
        inst.spec.agents.default.lifecycle = (!empty).then(|| l.clone());
    }
    super::replace_object(&s.client, "instance", &ns, &name, &inst).await
}

/// Deletes an instance.
#[utoipa::path(delete, path = "/api/v1/instances/{name}", tag = "instances", params(("name" = String, Path), NamespaceQuery),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
) -> ApiResult<StatusCode> {
    let ns = q.ns()?;
    super::delete_object::<SympoziumInstance>(&s.client, "instance", &ns, &name).await
}

/// Whether the instance serves a web endpoint, and where.
#[utoipa::path(get, path = "/api/v1/instances/{name}/web-endpoint", tag = "instances", params(("name" = String, Path), NamespaceQuery),
    responses((status = 200, body = WebEndpointStatusResponse), (status = 404, body = ErrorBody)))]
pub async fn web_endpoint(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
) -> ApiResult<Json<WebEndpointStatusResponse>> {
    let ns = q.ns()?;
    let inst =
        cache::get(&s.caches.instances, &ns, &name).ok_or_else(|| not_found("instance", &ns, &name))?;
    let enabled = inst.spec.skills.iter().any(|r| r.is_web_endpoint());
    let serving = cache::list(&s.caches.runs, Some(&ns)).into_iter().find(|r| {
        r.spec.instance_ref == name
            && r.status.as_ref().and_then(|st| st.phase) == Some(AgentRunPhase::Serving)
    });
    let gateway_ready = cache::get(&s.caches.configs, &s.system_namespace, "default")
        .and_then(|c| c.status.clone())
        .and_then(|st| st.gateway)
        .is_some_and(|g| g.ready);
    let web_status = inst.status.as_ref().and_then(|st| st.web_endpoint.clone());
    Ok(Json(WebEndpointStatusResponse {
        enabled,
        deployment_name: serving.as_ref().and_then(|r| r.status.as_ref()?.deployment_name.clone()),
        service_name: serving.as_ref().and_then(|r| r.status.as_ref()?.service_name.clone()),
        gateway_ready,
        route_url: web_status.as_ref().and_then(|w| w.url.clone()),
        auth_secret_name: web_status
            .as_ref()
            .and_then(|w| w.auth_secret_name.clone())
            .or_else(|| enabled.then(|| format!("{}-web-proxy-key", inst.name_any()))),
    }))
}
