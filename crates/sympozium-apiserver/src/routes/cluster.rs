//! `/api/v1/namespaces`: what the dashboard's namespace selector offers.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use kube::ResourceExt;

use crate::AppState;
use crate::cache;

/// The cluster routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/namespaces", get(namespaces))
}

/// Every namespace name, sorted.
#[utoipa::path(get, path = "/api/v1/namespaces", tag = "cluster",
    responses((status = 200, body = [String])))]
pub async fn namespaces(State(s): State<AppState>) -> Json<Vec<String>> {
    Json(cache::list(&s.caches.namespaces, None).iter().map(|n| n.name_any()).collect())
}
