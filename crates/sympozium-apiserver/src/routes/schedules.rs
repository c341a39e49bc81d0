//! `/api/v1/schedules`: SympoziumSchedules.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use kube::api::ObjectMeta;
use serde::{Deserialize, Serialize};
use sympozium_api::schedule::{ConcurrencyPolicy, ScheduleType};
use sympozium_api::{SympoziumSchedule, SympoziumScheduleSpec};
use utoipa::ToSchema;

use super::{not_found, object_json};
use crate::AppState;
use crate::cache;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::openapi::KubeObject;
use crate::params::{Body, ListQuery, NamespaceQuery, check_name};

/// The schedule routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/schedules", get(list).post(create))
        .route("/api/v1/schedules/{name}", get(get_one).delete(delete))
}

/// `POST /api/v1/schedules`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateScheduleRequest {
    /// Name (default generated `<instanceRef>-schedule-…`).
    pub name: Option<String>,
    /// Instance (required).
    pub instance_ref: Option<String>,
    /// Cron expression, e.g. `*/30 * * * *` (required).
    pub schedule: Option<String>,
    /// Task (required).
    pub task: Option<String>,
    /// `heartbeat`, `scheduled` or `sweep`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Paused.
    pub suspend: Option<bool>,
    /// `Forbid`, `Allow` or `Replace`.
    pub concurrency_policy: Option<String>,
}

fn enum_field<T: serde::de::DeserializeOwned>(field: &str, value: &Option<String>) -> ApiResult<Option<T>> {
    match value.as_deref().filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => serde_json::from_value(serde_json::Value::String(v.into()))
            .map(Some)
            .map_err(|_| ApiError::invalid(field, format!("\"{v}\" is not one of the allowed values"))),
    }
}

/// Schedules in `?namespace`.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules", params(ListQuery),
    responses((status = 200, body = [KubeObject]), (status = 400, body = ErrorBody)))]
pub async fn list(State(s): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let ns = q.ns()?;
    q.page_of(cache::list(&s.caches.schedules, Some(&ns)), |o| object_json(&o))
}

/// One schedule.
#[utoipa::path(get, path = "/api/v1/schedules/{name}", tag = "schedules", params(("name" = String, Path), NamespaceQuery),
    responses((status = 200, body = KubeObject), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let ns = q.ns()?;
    cache::get(&s.caches.schedules, &ns, &name)
        .map(|o| Json(object_json(&o)))
        .ok_or_else(|| not_found("schedule", &ns, &name))
}

/// Creates a schedule (the CRD's CEL rules check the cron expression).
#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules", params(NamespaceQuery), request_body = CreateScheduleRequest,
    responses((status = 201, body = KubeObject), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    Query(q): Query<NamespaceQuery>,
    Body(req): Body<CreateScheduleRequest>,
) -> ApiResult<Response> {
    let ns = q.ns()?;
    let instance = req.instance_ref.clone().unwrap_or_default();
    check_name("instanceRef", &instance)?;
    let schedule = crate::params::required("schedule", &req.schedule)?;
    let task = crate::params::required("task", &req.task)?;
    let name = req.name.clone().filter(|n| !n.is_empty());
    if let Some(n) = &name {
        check_name("name", n)?;
    }
    let type_: Option<ScheduleType> = enum_field("type", &req.type_)?;
    let concurrency: Option<ConcurrencyPolicy> = enum_field("concurrencyPolicy", &req.concurrency_policy)?;
    let object = SympoziumSchedule {
        metadata: ObjectMeta {
            generate_name: name.is_none().then(|| format!("{instance}-schedule-")),
            name: name.clone(),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        spec: SympoziumScheduleSpec {
            instance_ref: instance.clone(),
            schedule,
            task,
            type_: type_.unwrap_or_default(),
            suspend: req.suspend,
            concurrency_policy: concurrency.unwrap_or_default(),
            ..Default::default()
        },
        status: None,
    };
    let label = name.unwrap_or_else(|| instance.clone());
    super::create_object::<SympoziumSchedule>(&s.client, "schedule", &ns, &label, &object).await
}

/// Deletes a schedule.
#[utoipa::path(delete, path = "/api/v1/schedules/{name}", tag = "schedules", params(("name" = String, Path), NamespaceQuery),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
) -> ApiResult<StatusCode> {
    let ns = q.ns()?;
    super::delete_object::<SympoziumSchedule>(&s.client, "schedule", &ns, &name).await
}
