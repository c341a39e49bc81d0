//! The kubelet endpoint the API server calls for `kubectl logs`: HTTPS with a
//! self-signed certificate (the API server does not verify kubelets unless started with
//! `--kubelet-certificate-authority`), serving `/containerLogs/<ns>/<pod>/<container>`
//! with `follow`, `tailLines`, `timestamps`, `previous`, `sinceSeconds` and `limitBytes`,
//! `/healthz`, and the streaming endpoints of [`crate::streaming`].

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::logs::{self, LogQuery};

/// Pod directories by namespace and name (kept by the pod manager).
pub type PodDirs = Arc<RwLock<HashMap<(String, String), PathBuf>>>;

/// TLS set-up errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating the certificate failed.
    #[error("generating the kubelet certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused it.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// PEM handling failed.
    #[error("PEM: {0}")]
    Pem(String),
}

/// A rustls configuration with a fresh self-signed certificate for `ip`.
pub fn tls_config(ip: IpAddr, node_name: &str) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let key = rcgen::KeyPair::generate()?;
    let params =
        rcgen::CertificateParams::new(vec![ip.to_string(), node_name.to_string(), "localhost".to_string()])?;
    let cert = params.self_signed(&key)?;
    let certs = vec![
        CertificateDer::from_pem_slice(cert.pem().as_bytes()).map_err(|e| TlsError::Pem(e.to_string()))?,
    ];
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The routes: logs here, exec/attach/port-forward in [`crate::streaming::routes`].
pub fn router(pods: PodDirs, running: crate::streaming::Registry) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/containerLogs/{namespace}/{pod}/{container}", get(container_logs))
        .with_state(pods)
        .merge(crate::streaming::routes::router(running))
}

async fn container_logs(
    State(pods): State<PodDirs>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let dir = pods.read().ok().and_then(|p| p.get(&(namespace.clone(), pod.clone())).cloned());
    let Some(dir) = dir else {
        return (StatusCode::NOT_FOUND, format!("pod {namespace}/{pod} is not on this node\n"))
            .into_response();
    };
    let flag = |k: &str| params.get(k).is_some_and(|v| v == "true" || v == "1");
    let number = |k: &str| params.get(k).and_then(|v| v.parse::<i64>().ok());
    let cdir = logs::container_dir(&dir, &container);
    let attempts = logs::attempts(&cdir);
    // While a container waits to restart its latest attempt is the previous one too.
    let latest_done = attempts.last().is_some_and(|a| cdir.join(format!("{a}.done")).exists());
    let wanted = match (flag("previous"), latest_done) {
        (true, false) => attempts.len().checked_sub(2),
        _ => attempts.len().checked_sub(1),
    };
    let Some(attempt) = wanted.and_then(|i| attempts.get(i)) else {
        let what = if flag("previous") { "a previous terminated" } else { "a started" };
        return (
            StatusCode::BAD_REQUEST,
            format!("container {container:?} in pod {pod:?} has no {what} container\n"),
        )
            .into_response();
    };
    let query = LogQuery {
        follow: flag("follow"),
        tail_lines: number("tailLines").and_then(|n| usize::try_from(n).ok()),
        timestamps: flag("timestamps"),
        since_seconds: number("sinceSeconds"),
        limit_bytes: number("limitBytes").and_then(|n| usize::try_from(n).ok()),
    };
    let file = logs::container_dir(&dir, &container).join(format!("{attempt}.log"));
    let body = Body::from_stream(logs::read(file, query));
    ([("content-type", "text/plain")], body).into_response()
}

/// Serves `app` over TLS on `listener` forever. With `only_from`, connections from any
/// other address are dropped: the API server dials from the node's own address, and pods
/// on the bridge (whose gateway this address is) must not reach exec or logs.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    only_from: Option<IpAddr>,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        if only_from.is_some_and(|ip| ip != peer.ip()) {
            tracing::warn!(%peer, "kubelet endpoint: connection refused (not from the node's address)");
            continue;
        }
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                tracing::debug!(%peer, "kubelet endpoint: TLS handshake failed");
                return;
            };
            if let Err(e) = Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "kubelet endpoint connection");
            }
        });
    }
}
