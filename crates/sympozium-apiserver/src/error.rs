//! Errors as the API answers them: a status code and a JSON body
//! `{"error": "<message>", "field"?: "<json path>", "reason"?: "<why>"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a human.
    pub error: String,
    /// The request field at fault (JSON path, e.g. `spec.task`), for bad input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why the field was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An error answered to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input in one field.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// The body is not the JSON the route expects.
    #[error("invalid JSON: {0}")]
    BadJson(String),
    /// No such object.
    #[error("{0}")]
    NotFound(String),
    /// The object exists already (or changed meanwhile).
    #[error("{0}")]
    Conflict(String),
    /// A missing or wrong token.
    #[error("Unauthorized")]
    Unauthorized,
    /// The request is understood but refused (e.g. a URL pointing at a forbidden address).
    #[error("{0}")]
    Forbidden(String),
    /// A server the request needed (a provider, a memory server) failed or answered badly.
    #[error("{0}")]
    BadGateway(String),
    /// Something the server needs is not there (e.g. the event bus).
    #[error("{0}")]
    Unavailable(String),
    /// The Kubernetes API refused or failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// Bad input in `field`, because `reason`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), reason: reason.into() }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } | Self::BadJson(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            // The CRD schema or an admission webhook refused the object: bad input.
            Self::Kube(kube::Error::Api(s)) if s.code == 422 => StatusCode::BAD_REQUEST,
            Self::Kube(kube::Error::Api(s)) => {
                StatusCode::from_u16(s.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Self::Kube(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Self::Invalid { field, reason } => ErrorBody {
                error: self.to_string(),
                field: Some(field.clone()),
                reason: Some(reason.clone()),
            },
            // The API server's own message says which field its schema or webhook refused.
            Self::Kube(kube::Error::Api(s)) => {
                ErrorBody { error: s.message.clone(), field: None, reason: Some(s.reason.clone()) }
            }
            _ => ErrorBody { error: self.to_string(), field: None, reason: None },
        };
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        (status, Json(body)).into_response()
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
