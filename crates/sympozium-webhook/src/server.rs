//! The HTTPS server: `POST /validate-agent-pods` takes an AdmissionReview v1 for an
//! AgentRun and answers with the decision; `GET /healthz` for probes. Stateless, so every
//! replica serves (no leader election).

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::{Api, Client};
use rustls::ServerConfig;
use sympozium_api::{AgentRun, MCPServer, PersonaPack, SkillPack, SympoziumInstance, SympoziumPolicy};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::access::Access;
use crate::{decide, escalation, secret_reads};

/// Path of the AgentRun validation endpoint.
pub const VALIDATE_PATH: &str = "/validate-agent-pods";
/// Path of the SympoziumInstance review endpoint (admits, with warnings).
pub const VALIDATE_INSTANCES_PATH: &str = "/validate-instances";
/// Path of the PersonaPack review endpoint (admits, with warnings).
pub const VALIDATE_PERSONA_PACKS_PATH: &str = "/validate-personapacks";
/// Path of the SkillPack review endpoint (RBAC the author does not hold is refused).
pub const VALIDATE_SKILL_PACKS_PATH: &str = "/validate-skillpacks";

/// Path of the MCPServer review endpoint (a Secret its author may not read is refused).
pub const VALIDATE_MCP_SERVERS_PATH: &str = "/validate-mcpservers";

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Client used to read instances and policies.
    pub client: Client,
    /// Namespace of the built-in SkillPacks.
    pub system_namespace: String,
}

/// The webhook's routes.
pub fn router(client: Client, system_namespace: String) -> Router {
    Router::new()
        .route(VALIDATE_PATH, post(validate_agent_run))
        .route(VALIDATE_INSTANCES_PATH, post(validate_instance))
        .route(VALIDATE_PERSONA_PACKS_PATH, post(validate_pack))
        .route(VALIDATE_SKILL_PACKS_PATH, post(validate_skill_pack))
        .route(VALIDATE_MCP_SERVERS_PATH, post(validate_mcp_server))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(AppState { client, system_namespace }))
}

/// Why a request body is not an AdmissionReview with a request.
#[derive(Debug, thiserror::Error)]
enum DecodeError {
    #[error("decoding the AdmissionReview: {0}")]
    Json(#[from] serde_json::Error),
    #[error("AdmissionReview without a request: {0}")]
    NoRequest(#[from] kube::core::admission::ConvertAdmissionReviewError),
}

fn decode<K>(body: &[u8]) -> Result<AdmissionRequest<K>, DecodeError>
where
    K: kube::Resource + serde::de::DeserializeOwned,
{
    let review: AdmissionReview<K> = serde_json::from_slice(body)?;
    Ok(review.try_into()?)
}

async fn validate_agent_run(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: AdmissionRequest<AgentRun> = match decode(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let response = review_run(&state.client, &state.system_namespace, &request).await;
    axum::Json(response.into_review()).into_response()
}

async fn validate_instance(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: AdmissionRequest<SympoziumInstance> = match decode(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let response = crate::instance::review_instance(&state.client, &state.system_namespace, &request).await;
    axum::Json(response.into_review()).into_response()
}

async fn validate_pack(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: AdmissionRequest<PersonaPack> = match decode(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let response = crate::instance::review_pack(&state.client, &state.system_namespace, &request).await;
    axum::Json(response.into_review()).into_response()
}

async fn validate_skill_pack(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: AdmissionRequest<SkillPack> = match decode(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let response = review_skill_pack(&state.client, &state.system_namespace, &request).await;
    axum::Json(response.into_review()).into_response()
}

async fn validate_mcp_server(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: AdmissionRequest<MCPServer> = match decode(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let response = review_mcp_server(&state.client, &request).await;
    axum::Json(response.into_review()).into_response()
}

/// Reviews one MCPServer request: every Secret it names (its bearer token, its pods'
/// `secretRefs`) must be one the author may read ([`secret_reads::mcp_server_secrets`]).
pub async fn review_mcp_server(client: &Client, request: &AdmissionRequest<MCPServer>) -> AdmissionResponse {
    let allow = AdmissionResponse::from(request);
    let Some(server) = crate::instance::reviewed(request, |a, b| a.spec == b.spec) else { return allow };
    let ns = request.namespace.clone().unwrap_or_default();
    let access = Access::new(client.clone(), request.user_info.clone());
    match secret_reads::check(&access, &ns, &secret_reads::mcp_server_secrets(server)).await {
        Ok(()) => allow,
        Err(message) => {
            tracing::info!(server = ?server.metadata.name, namespace = %ns, %message, "denied");
            allow.deny(message)
        }
    }
}

/// Reviews one SkillPack request: the RBAC it defines must be the author's own
/// ([`escalation::review_skill_pack`]).
pub async fn review_skill_pack(
    client: &Client,
    system_namespace: &str,
    request: &AdmissionRequest<SkillPack>,
) -> AdmissionResponse {
    let allow = AdmissionResponse::from(request);
    let Some(pack) = crate::instance::reviewed(request, |a, b| a.spec == b.spec) else { return allow };
    let ns = request.namespace.clone().unwrap_or_default();
    let access = Access::new(client.clone(), request.user_info.clone());
    match escalation::review_skill_pack(&access, system_namespace, &ns, pack).await {
        Ok(()) => allow,
        Err(message) => {
            tracing::info!(pack = ?pack.metadata.name, namespace = %ns, %message, "denied");
            allow.deny(message)
        }
    }
}

/// Reviews one AgentRun request: the RBAC its skills and hooks ask for must be the
/// user's own ([`escalation::review_run`]); then reads the run's instance (a Secret the run
/// names that its instance does not vouch for needs the user's right to read it:
/// [`crate::secret_reads::run_secrets`]) and policy (in the run's namespace) and applies
/// [`decide`].
pub async fn review_run(
    client: &Client,
    system_namespace: &str,
    request: &AdmissionRequest<AgentRun>,
) -> AdmissionResponse {
    let allow = AdmissionResponse::from(request);
    let Some(run) = request.object.as_ref() else { return allow };
    if !decide::needs_review(&request.operation, run, request.old_object.as_ref()) {
        return allow;
    }
    if let Err(message) = decide::validate_shape(run) {
        return allow.deny(message);
    }
    let ns = request.namespace.clone().unwrap_or_default();
    let access = Access::new(client.clone(), request.user_info.clone());
    if let Err(message) = escalation::review_run(client, &access, system_namespace, &ns, run).await {
        tracing::info!(run = ?run.metadata.name, namespace = %ns, %message, "denied");
        return allow.deny(message);
    }
    let instance_name = &run.spec.instance_ref;
    let instance = match Api::<SympoziumInstance>::namespaced(client.clone(), &ns)
        .get_opt(instance_name)
        .await
    {
        Ok(Some(i)) => i,
        Ok(None) if matches!(request.operation, Operation::Create) => {
            return allow.deny(format!(
                "SympoziumInstance \"{instance_name}\" not found in namespace \"{ns}\": spec.instanceRef must name an existing instance"
            ));
        }
        // An update of a run whose instance is gone: nothing to check it against.
        Ok(None) => return allow,
        Err(e) => return allow.deny(format!("could not read SympoziumInstance \"{instance_name}\": {e}")),
    };
    if let Err(message) =
        crate::secret_reads::check(&access, &ns, &crate::secret_reads::run_secrets(run, &instance)).await
    {
        tracing::info!(run = ?run.metadata.name, namespace = %ns, %message, "denied");
        return allow.deny(message);
    }
    let Some(policy_name) = instance.spec.policy_ref.as_deref().filter(|p| !p.is_empty()) else {
        return allow;
    };
    let policy = match Api::<SympoziumPolicy>::namespaced(client.clone(), &ns).get_opt(policy_name).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return allow.deny(format!(
                "SympoziumPolicy \"{policy_name}\" (policyRef of SympoziumInstance \"{instance_name}\") not found in namespace \"{ns}\""
            ));
        }
        Err(e) => return allow.deny(format!("could not read SympoziumPolicy \"{policy_name}\": {e}")),
    };
    match decide::validate(&decide::with_instance_sandbox(run, &instance), &policy) {
        Ok(()) => allow,
        Err(message) => {
            tracing::info!(run = ?run.metadata.name, namespace = %ns, %message, "denied");
            allow.deny(message)
        }
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` completes.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let tls_stream = match acceptor.accept(stream).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            if let Err(e) =
                Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(tls_stream), service).await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
