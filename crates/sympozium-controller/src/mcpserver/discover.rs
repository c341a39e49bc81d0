//! Asks a server for its tools, as an MCP client (the bridge's rmcp client): through a ready
//! endpoint of a managed server's Service (a pod address: reachable wherever the
//! controller runs, also outside the cluster network's DNS), or the external URL.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use sympozium_api::MCPServer;
use sympozium_mcp_bridge::client::{EnvLookup, connect};
use sympozium_mcp_bridge::config::{Auth, AuthKind, ServerConfig};

/// Budget for connecting and listing.
const TIMEOUT: Duration = Duration::from_secs(10);
const TOKEN_VAR: &str = "TOKEN";

/// MCP URLs of the ready endpoints of a managed server's Service.
pub async fn endpoint_urls(client: &Client, server: &MCPServer) -> Result<Vec<String>, kube::Error> {
    let ns = server.namespace().unwrap_or_default();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={}", server.name_any()));
    let port = super::build::port(server);
    let path = super::build::path(server);
    let mut urls = Vec::new();
    for slice in slices.list(&lp).await?.items {
        for e in slice.endpoints.into_iter().flatten() {
            if e.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            for addr in e.addresses {
                let host = if addr.contains(':') { format!("[{addr}]") } else { addr };
                urls.push(format!("http://{host}:{port}{path}"));
            }
        }
    }
    urls.push(super::build::service_url(server));
    Ok(urls)
}

/// The token of `spec.authSecret` (key `spec.authKey`, default `token`), if set.
pub async fn token(client: &Client, server: &MCPServer) -> Result<Option<String>, kube::Error> {
    let Some(name) = server.spec.auth_secret.as_deref().filter(|s| !s.is_empty()) else { return Ok(None) };
    let key = server.spec.auth_key.clone().unwrap_or_else(|| "token".into());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &server.namespace().unwrap_or_default());
    let Some(secret) = secrets.get_opt(name).await? else { return Ok(None) };
    let from_data = secret.data.and_then(|d| d.get(&key).map(|v| String::from_utf8_lossy(&v.0).to_string()));
    Ok(from_data.or_else(|| secret.string_data.and_then(|d| d.get(&key).cloned())))
}

/// What the bridge would be configured with for `url`.
pub fn client_config(server: &MCPServer, url: &str, with_token: bool) -> ServerConfig {
    ServerConfig {
        name: server.name_any(),
        url: url.to_string(),
        transport: Default::default(),
        tools_prefix: server.spec.tools_prefix.clone(),
        timeout: i64::from(server.spec.timeout),
        auth: with_token.then(|| Auth {
            kind: AuthKind::Bearer,
            token_env: TOKEN_VAR.into(),
            header_name: None,
        }),
        headers: server.spec.headers.clone().unwrap_or_default(),
        tools_allow: server.spec.tools_allow.clone(),
        tools_deny: server.spec.tools_deny.clone(),
    }
}

/// Why a server's tools could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// The server needs a token and its Secret has none.
    #[error("the auth Secret {secret} has no key {key}")]
    MissingToken {
        /// The Secret's name.
        secret: String,
        /// The key looked for.
        key: String,
    },
    /// There was no endpoint to ask.
    #[error("no endpoint to ask")]
    NoEndpoint,
    /// The last endpoint tried failed.
    #[error(transparent)]
    Client(#[from] sympozium_mcp_bridge::client::ClientError),
}

/// The published tool names (sorted), trying `urls` in order; the error names the last failure.
pub async fn tools(
    server: &MCPServer,
    urls: &[String],
    token: Option<String>,
) -> Result<Vec<String>, DiscoverError> {
    if server.spec.auth_secret.as_deref().is_some_and(|s| !s.is_empty()) && token.is_none() {
        return Err(DiscoverError::MissingToken {
            secret: server.spec.auth_secret.clone().unwrap_or_default(),
            key: server.spec.auth_key.clone().unwrap_or_else(|| "token".into()),
        });
    }
    let with_token = token.is_some();
    let env: EnvLookup = Arc::new(move |k: &str| if k == TOKEN_VAR { token.clone() } else { None });
    let mut last = DiscoverError::NoEndpoint;
    for url in urls {
        let config = client_config(server, url, with_token);
        let listed = match connect(&config, &env, TIMEOUT).await {
            Ok(session) => session.tools(TIMEOUT).await,
            Err(e) => Err(e),
        };
        match listed {
            Ok(tools) => {
                let mut names: Vec<String> =
                    tools.iter().map(|t| t.name.to_string()).filter(|n| config.publishes(n)).collect();
                names.sort();
                return Ok(names);
            }
            Err(e) => last = e.into(),
        }
    }
    Err(last)
}
