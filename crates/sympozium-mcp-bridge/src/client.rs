//! One MCP client session (rmcp) to one server, over Streamable HTTP or the older HTTP+SSE
//! transport, with the server's auth and custom headers on every request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation, Tool,
};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::Value;

use crate::config::{ServerConfig, Transport};

/// Name the bridge introduces itself with.
pub const CLIENT_NAME: &str = "sympozium-mcp-bridge";

/// Why a server could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// Headers could not be built (a missing token, an invalid header).
    #[error("{0}")]
    Headers(String),
    /// Connecting or the MCP handshake failed.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The server URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The server did not answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The request failed (transport closed, protocol error …).
    #[error("{0}")]
    Request(String),
}

/// A live session.
pub struct Session {
    service: RunningService<RoleClient, ClientConfig>,
}

/// The client's own identity and capabilities.
pub(crate) fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new(CLIENT_NAME, env!("CARGO_PKG_VERSION")),
    )
}

/// The environment a token is read from (real process env in the binary, a map in tests).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Connects to `server` and completes the MCP handshake within `timeout`.
pub async fn connect(
    server: &ServerConfig,
    env: &EnvLookup,
    timeout: Duration,
) -> Result<Session, ClientError> {
    // reqwest (inside rmcp) is built without a bundled crypto provider; ring is the one the
    // workspace uses. Installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let headers = server.request_headers(env.as_ref()).map_err(|e| ClientError::Headers(e.to_string()))?;
    let connect_err = |reason: String| ClientError::Connect { url: server.url.clone(), reason };
    let handshake = async {
        match server.transport {
            Transport::StreamableHttp => {
                let mut custom = HashMap::new();
                let mut auth = None;
                for (k, v) in &headers {
                    if k.eq_ignore_ascii_case("authorization")
                        && let Some(token) = v.strip_prefix("Bearer ")
                    {
                        auth = Some(token.to_string());
                        continue;
                    }
                    let name = http::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| ClientError::Headers(format!("header name {k:?} is not valid")))?;
                    let value = http::HeaderValue::from_str(v)
                        .map_err(|_| ClientError::Headers(format!("the value of header {k} is not valid")))?;
                    custom.insert(name, value);
                }
                let mut config =
                    StreamableHttpClientTransportConfig::with_uri(server.url.as_str()).custom_headers(custom);
                if let Some(token) = auth {
                    config = config.auth_header(token);
                }
                let transport = StreamableHttpClientTransport::from_config(config);
                client_config().serve(transport).await.map_err(|e| connect_err(e.to_string()))
            }
            Transport::Sse => {
                let transport = crate::legacy_sse::connect(&server.url, &headers)
                    .await
                    .map_err(|e| connect_err(e.to_string()))?;
                client_config().serve(transport).await.map_err(|e| connect_err(e.to_string()))
            }
        }
    };
    let service =
        tokio::time::timeout(timeout, handshake).await.map_err(|_| ClientError::Timeout(timeout))??;
    Ok(Session { service })
}

impl Session {
    /// Every tool the server lists (all pages).
    pub async fn tools(&self, timeout: Duration) -> Result<Vec<Tool>, ClientError> {
        tokio::time::timeout(timeout, self.service.peer().list_all_tools())
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map_err(|e| ClientError::Request(e.to_string()))
    }

    /// Calls `tool` with `arguments` and request metadata `meta` (trace context). Dropping
    /// the future (the timeout, a shutdown) cancels the request on the server.
    pub async fn call(
        &self,
        tool: &str,
        arguments: serde_json::Map<String, Value>,
        meta: Option<Value>,
        timeout: Duration,
    ) -> Result<CallToolResult, ClientError> {
        let mut params = serde_json::json!({"name": tool, "arguments": arguments});
        if let Some(meta) = meta.filter(Value::is_object) {
            params["_meta"] = meta;
        }
        let params: CallToolRequestParams = serde_json::from_value(params)
            .map_err(|e| ClientError::Request(format!("building the call: {e}")))?;
        tokio::time::timeout(timeout, self.service.peer().call_tool(params))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map_err(|e| ClientError::Request(e.to_string()))
    }

    /// Whether the session is gone (the transport closed).
    pub fn is_closed(&self) -> bool {
        self.service.is_closed()
    }

    /// The server's name and version, as it introduced itself.
    pub fn server_name(&self) -> Option<String> {
        self.service.peer().peer_info().and_then(|i| i.server_info.as_ref().map(|s| s.name.clone()))
    }
}
