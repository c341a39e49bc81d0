//! The OpenAPI document, generated from the route annotations and request/response types.
//! `docs/openapi.json` is a committed copy; a test fails when it drifts from this.

use std::borrow::Cow;

use axum::Json;
use utoipa::openapi::schema::{ObjectBuilder, Schema};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Tag};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::routes;

/// A Kubernetes object as stored (apiVersion, kind, metadata, spec, status).
pub struct KubeObject;

impl PartialSchema for KubeObject {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some(
                "A Kubernetes object of the sympozium.ai/v1alpha1 API as stored: apiVersion, kind, metadata, spec, status (see deploy/crds)",
            ))
            .into()
    }
}

impl ToSchema for KubeObject {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("KubeObject")
    }
}

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components
            .add_security_scheme("query", SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("token"))));
        api.tags = Some(
            [
                "instances",
                "runs",
                "policies",
                "skills",
                "schedules",
                "personapacks",
                "mcpservers",
                "gateway",
                "observability",
                "cluster",
                "providers",
                "stream",
            ]
            .into_iter()
            .map(Tag::new)
            .collect(),
        );
    }
}

/// The API's description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Sympozium API", description = "REST and WebSocket API of the Sympozium API server. Every /api/ and /ws/ path needs the UI token (Authorization: Bearer, or ?token=)."),
    security(("bearer" = []), ("query" = [])),
    modifiers(&Security),
    paths(
        routes::instances::list, routes::instances::get_one, routes::instances::create,
        routes::instances::patch, routes::instances::delete, routes::instances::web_endpoint,
        routes::runs::list, routes::runs::get_one, routes::runs::create, routes::runs::delete, routes::runs::telemetry,
        routes::policies::list_policies, routes::policies::get_policy,
        routes::policies::list_skills, routes::policies::get_skill,
        routes::schedules::list, routes::schedules::get_one, routes::schedules::create, routes::schedules::delete,
        routes::personapacks::list, routes::personapacks::get_one, routes::personapacks::delete,
        routes::personapacks::install_defaults, routes::personapacks::patch,
        routes::mcpservers::list, routes::mcpservers::get_one, routes::mcpservers::create,
        routes::mcpservers::patch, routes::mcpservers::delete,
        routes::gateway::get_gateway, routes::gateway::create, routes::gateway::patch, routes::gateway::delete,
        routes::observability::metrics, routes::observability::timeseries,
        routes::gateway::metrics,
        routes::cluster::namespaces, routes::cluster::cluster, routes::cluster::capabilities,
        routes::pods::list, routes::pods::logs,
        routes::providers::nodes, routes::providers::models, routes::bedrock::models,
        routes::github::set_token, routes::github::status,
        routes::memory::memory,
        crate::ws::stream,
    ),
    components(schemas(KubeObject, crate::error::ErrorBody))
)]
pub struct ApiDoc;

/// The document as pretty JSON (what `docs/openapi.json` holds).
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.to_pretty_json().unwrap_or_default()
}

/// `GET /openapi.json`.
pub async fn serve() -> Json<serde_json::Value> {
    Json(serde_json::from_str(&document()).unwrap_or_default())
}
