//! Stdio adapter (inside MCPServer pods of `transportType: stdio`): runs the server's
//! command as a child speaking MCP over stdin/stdout and serves it over Streamable HTTP on
//! `/mcp` (and `/`), with `/healthz` and `/readyz`. The child is restarted when it exits
//! (back-off 1 s doubling to 30 s).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorData, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{Peer, RequestContext, RoleClient, RoleServer, ServiceError};
use rmcp::transport::TokioChildProcess;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, ServiceExt};
use tokio::sync::RwLock;

/// Environment variables a stdio server inherits from the adapter; everything else it gets
/// only through `STDIO_ENV_<NAME>` (so the adapter's own settings and Secrets do not leak).
const INHERITED: &[&str] = &["PATH", "HOME", "USER", "LANG", "HOSTNAME", "TERM"];
const INHERITED_PREFIXES: &[&str] = &["LC_", "NODE_", "NPM_", "SSL_CERT", "CA_CERT", "CURL_CA"];

/// What the adapter runs.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// Server name (for logs and the server identity).
    pub name: String,
    /// The stdio server's program.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment of the child.
    pub env: Vec<(String, String)>,
    /// The environment the adapter itself runs with (filtered for the child).
    pub inherited_env: Vec<(String, String)>,
    /// Listen address.
    pub listen: SocketAddr,
}

/// `STDIO_ARGS` starts like a JSON array but is not one of strings.
#[derive(Debug, thiserror::Error)]
#[error("STDIO_ARGS: not a JSON array of strings: {0}")]
pub struct ArgsError(#[from] serde_json::Error);

/// Splits `STDIO_ARGS`: a JSON array keeps arguments that contain commas; anything else is
/// the original comma-separated form.
pub fn parse_args(raw: &str) -> Result<Vec<String>, ArgsError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    if raw.starts_with('[') {
        return Ok(serde_json::from_str(raw)?);
    }
    Ok(raw.split(',').map(str::to_string).collect())
}

type Child = Arc<RwLock<Option<Peer<RoleClient>>>>;

#[derive(Clone)]
struct Proxy {
    name: String,
    child: Child,
}

fn forward(e: ServiceError) -> ErrorData {
    match e {
        ServiceError::McpError(e) => e,
        other => ErrorData::internal_error(format!("stdio server: {other}"), None),
    }
}

impl Proxy {
    async fn peer(&self) -> Result<Peer<RoleClient>, ErrorData> {
        self.child.read().await.clone().ok_or_else(|| {
            ErrorData::internal_error(format!("stdio server {} is not running", self.name), None)
        })
    }
}

impl ServerHandler for Proxy {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(self.name.clone(), env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.peer().await?.list_tools(request).await.map_err(forward)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let peer = self.peer().await?;
        let tool = request.name.to_string();
        let started = Instant::now();
        let result = tokio::select! {
            r = peer.call_tool_once(request) => r.map_err(forward),
            () = context.ct.cancelled() => Err(ErrorData::internal_error("cancelled by the client", None)),
        };
        tracing::info!(server = %self.name, tool = %tool, duration_ms = started.elapsed().as_millis(),
            ok = result.is_ok(), "mcp.server.call");
        result
    }
}

fn child_command(config: &AdapterConfig) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&config.command);
    cmd.args(&config.args).env_clear();
    for (k, v) in &config.inherited_env {
        if INHERITED.contains(&k.as_str()) || INHERITED_PREFIXES.iter().any(|p| k.starts_with(p)) {
            cmd.env(k, v);
        }
    }
    for (k, v) in &config.env {
        cmd.env(k, v);
    }
    cmd
}

/// Keeps the child running: start, wait for it to end, back off, start again.
async fn supervise(config: AdapterConfig, child: Child) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let running = match TokioChildProcess::new(child_command(&config)) {
            Ok(transport) => crate::client::client_config().serve(transport).await.map_err(|e| e.to_string()),
            Err(e) => Err(format!("starting {}: {e}", config.command)),
        };
        match running {
            Ok(service) => {
                tracing::info!(server = %config.name, "stdio server started");
                *child.write().await = Some(service.peer().clone());
                let reason = service.waiting().await;
                *child.write().await = None;
                tracing::warn!(server = %config.name, reason = ?reason, "stdio server stopped");
            }
            Err(e) => tracing::error!(server = %config.name, error = %e, "stdio server failed to start"),
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Serves the adapter until `stop` resolves.
pub async fn run(
    config: AdapterConfig,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let child: Child = Arc::default();
    let supervisor = tokio::spawn(supervise(config.clone(), child.clone()));
    let proxy = Proxy { name: config.name.clone(), child: child.clone() };
    let cancel = tokio_util::sync::CancellationToken::new();
    // Pods are reached by Service names, not loopback, so the DNS-rebinding host check
    // (meant for servers on a desktop) would refuse every legitimate caller.
    let http = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_cancellation_token(cancel.child_token());
    let service: StreamableHttpService<Proxy, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(proxy.clone()), Arc::default(), http);
    let ready = child.clone();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.read().await.is_some() {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "the stdio server is not running")
                    }
                }
            }),
        )
        .nest_service("/mcp", service.clone())
        .fallback_service(service);
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(addr = %config.listen, server = %config.name, command = %config.command, "stdio adapter listening");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop.await;
            cancel.cancel();
        })
        .await;
    supervisor.abort();
    served
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn args_keep_commas_in_json_form() {
        assert_eq!(parse_args(r#"["--tables","a,b"]"#).unwrap(), ["--tables", "a,b"]);
        assert_eq!(parse_args("-y,@mcp/server").unwrap(), ["-y", "@mcp/server"]);
        assert!(parse_args("").unwrap().is_empty());
        assert!(parse_args("[1]").unwrap_err().to_string().starts_with("STDIO_ARGS"));
    }
}
