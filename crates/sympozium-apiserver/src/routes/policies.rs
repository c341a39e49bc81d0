//! `/api/v1/policies` and `/api/v1/skills`: read-only views of SympoziumPolicies and
//! SkillPacks (lists span every namespace, as in the original).

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};

use super::{not_found, object_json};
use crate::AppState;
use crate::cache;
use crate::error::{ApiResult, ErrorBody};
use crate::openapi::KubeObject;
use crate::params::{ListQuery, NamespaceQuery};

/// The policy and skill routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/policies", get(list_policies))
        .route("/api/v1/policies/{name}", get(get_policy))
        .route("/api/v1/skills", get(list_skills))
        .route("/api/v1/skills/{name}", get(get_skill))
}

/// Every policy in every namespace.
#[utoipa::path(get, path = "/api/v1/policies", tag = "policies", params(ListQuery),
    responses((status = 200, body = [KubeObject]), (status = 400, body = ErrorBody)))]
pub async fn list_policies(State(s): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    q.page_of(cache::list(&s.caches.policies, None), |o| object_json(&o))
}

/// One policy in `?namespace`.
#[utoipa::path(get, path = "/api/v1/policies/{name}", tag = "policies", params(("name" = String, Path), NamespaceQuery),
    responses((status = 200, body = KubeObject), (status = 404, body = ErrorBody)))]
pub async fn get_policy(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let ns = q.ns()?;
    cache::get(&s.caches.policies, &ns, &name)
        .map(|o| Json(object_json(&o)))
        .ok_or_else(|| not_found("policy", &ns, &name))
}

/// Every SkillPack in every namespace.
#[utoipa::path(get, path = "/api/v1/skills", tag = "skills", params(ListQuery),
    responses((status = 200, body = [KubeObject]), (status = 400, body = ErrorBody)))]
pub async fn list_skills(State(s): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    q.page_of(cache::list(&s.caches.skills, None), |o| object_json(&o))
}

/// One SkillPack in `?namespace`.
#[utoipa::path(get, path = "/api/v1/skills/{name}", tag = "skills", params(("name" = String, Path), NamespaceQuery),
    responses((status = 200, body = KubeObject), (status = 404, body = ErrorBody)))]
pub async fn get_skill(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let ns = q.ns()?;
    cache::get(&s.caches.skills, &ns, &name)
        .map(|o| Json(object_json(&o)))
        .ok_or_else(|| not_found("skillpack", &ns, &name))
}
