//! `/api/v1/skills/github-gitops/auth/…`: the GitHub token of the github-gitops skill, kept
//! in the Secret `github-gitops-token` (key `GH_TOKEN`) of the system namespace. The token is
//! written, never read back: the status route only says whether one is set.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::params::Body;

/// Name of the Secret holding the token.
pub const SECRET: &str = "github-gitops-token";
/// Its key.
pub const KEY: &str = "GH_TOKEN";
/// Longest token accepted (GitHub's are well under 256 characters).
const MAX_TOKEN: usize = 1024;

/// The GitHub token routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/skills/github-gitops/auth/token", post(set_token))
        .route("/api/v1/skills/github-gitops/auth/status", get(status))
}

/// `POST …/auth/token`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
pub struct GithubTokenRequest {
    /// A GitHub personal access token.
    pub token: Option<String>,
}

/// Whether a token is set: `complete` or `idle`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct GithubAuthStatus {
    /// `complete` when a token is stored, else `idle`.
    pub status: String,
}

/// Stores the token (replacing any earlier one).
#[utoipa::path(post, path = "/api/v1/skills/github-gitops/auth/token", tag = "skills", request_body = GithubTokenRequest,
    responses((status = 200, body = GithubAuthStatus), (status = 400, body = ErrorBody)))]
pub async fn set_token(
    State(s): State<AppState>,
    Body(req): Body<GithubTokenRequest>,
) -> ApiResult<Json<GithubAuthStatus>> {
    let token = crate::params::required("token", &req.token)?;
    if token.len() > MAX_TOKEN || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::invalid(
            "token",
            format!("is not a GitHub token (no spaces, at most {MAX_TOKEN} characters)"),
        ));
    }
    store(&s, &token).await?;
    Ok(Json(GithubAuthStatus { status: "complete".into() }))
}

/// Writes `token` into the Secret (also used by the persona-pack activation).
pub async fn store(s: &AppState, token: &str) -> ApiResult<()> {
    let labels = BTreeMap::from([
        ("app.kubernetes.io/managed-by".to_string(), "sympozium".to_string()),
        ("app.kubernetes.io/component".to_string(), "skill-secret".to_string()),
        ("sympozium.ai/skill".to_string(), "github-gitops".to_string()),
    ]);
    crate::secrets::upsert(
        &s.client,
        &s.system_namespace,
        SECRET,
        labels,
        BTreeMap::from([(KEY.to_string(), token.to_string())]),
    )
    .await
}

/// Whether a token is stored.
#[utoipa::path(get, path = "/api/v1/skills/github-gitops/auth/status", tag = "skills",
    responses((status = 200, body = GithubAuthStatus)))]
pub async fn status(State(s): State<AppState>) -> ApiResult<Json<GithubAuthStatus>> {
    let secret = Api::<Secret>::namespaced(s.client.clone(), &s.system_namespace).get_opt(SECRET).await?;
    let set = secret.and_then(|s| s.data).and_then(|d| d.get(KEY).cloned()).is_some_and(|v| !v.0.is_empty());
    Ok(Json(GithubAuthStatus { status: if set { "complete" } else { "idle" }.into() }))
}
