//! An MCP server over Streamable HTTP on a TCP port (rmcp's `StreamableHttpService` in axum),
//! optionally requiring `Authorization: Bearer <token>`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::IntoResponse;
use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

/// A running server; stops when dropped or on [`McpHttpServer::stop`].
pub struct McpHttpServer {
    addr: SocketAddr,
    cancel: CancellationToken,
    seen_auth: Arc<Mutex<Vec<String>>>,
}

impl McpHttpServer {
    /// Serves `handler` (cloned per session) at `/mcp` on `bind` (port 0: any). With `token`,
    /// requests without that bearer token get 401.
    pub async fn start<H>(bind: SocketAddr, handler: H, token: Option<String>) -> std::io::Result<Self>
    where
        H: ServerHandler + Clone + Send + Sync + 'static,
    {
        let cancel = CancellationToken::new();
        let config = StreamableHttpServerConfig::default()
            .disable_allowed_hosts()
            .with_cancellation_token(cancel.child_token());
        let service: StreamableHttpService<H, LocalSessionManager> =
            StreamableHttpService::new(move || Ok(handler.clone()), Arc::default(), config);
        let seen_auth: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = seen_auth.clone();
        let guard = move |req: Request, next: Next| {
            let seen = seen.clone();
            let token = token.clone();
            async move {
                let auth =
                    req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
                seen.lock().unwrap_or_else(PoisonError::into_inner).push(auth.to_string());
                if let Some(token) = token
                    && auth != format!("Bearer {token}")
                {
                    return (StatusCode::UNAUTHORIZED, "a valid bearer token is required").into_response();
                }
                next.run(req).await
            }
        };
        let app: Router = Router::new().nest_service("/mcp", service).layer(axum::middleware::from_fn(guard));
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let stop = cancel.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
        });
        Ok(Self { addr, cancel, seen_auth })
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// The `Authorization` header of every request so far (empty when absent).
    pub fn authorizations(&self) -> Vec<String> {
        self.seen_auth.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Stops serving: the port closes and sessions end.
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl Drop for McpHttpServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
