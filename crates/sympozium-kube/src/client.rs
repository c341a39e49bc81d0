//! A Kubernetes client that talks HTTP/2 to the API server when the server offers it.
//!
//! kube's own client only advertises HTTP/1.1, so every request in flight needs its own
//! TCP+TLS connection: a controller running many reconciles at once opens (and keeps
//! pooled) one connection per concurrent request, each with its TLS buffers. The API
//! server speaks HTTP/2, where one connection carries every request and watch as separate
//! streams. This client offers `h2` and `http/1.1` by ALPN (HTTP/1.1 still works against
//! servers or proxies without HTTP/2) and otherwise keeps kube's stack: base URI,
//! authentication (tokens, client certificates, exec plugins, refresh), extra headers and
//! retries of 429/503/504.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::ConfigExt;
use kube::{Client, Config};
use tower::ServiceBuilder;

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration's TLS or authentication settings are unusable.
    #[error("kubernetes client: {0}")]
    Kube(#[from] kube::Error),
}

/// How often an idle HTTP/2 connection is pinged, so a dead peer (a restarted API server
/// behind a load balancer, a dropped NAT entry) is noticed and replaced instead of
/// silently stalling every watch multiplexed on it.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for `config` that multiplexes its requests over one HTTP/2 connection.
///
/// Configurations this stack does not cover (an HTTP proxy, a TLS server name override)
/// get kube's default HTTP/1.1 client instead.
pub fn multiplexed(config: Config) -> Result<Client, Error> {
    if config.proxy_url.is_some() || config.tls_server_name.is_some() {
        return Ok(Client::try_from(config)?);
    }
    let tls = config.rustls_client_config()?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .http2_keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .build(https);
    let retry = config
        .default_retry
        .then(|| tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry()));
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(Client::new(service, config.default_namespace))
}
