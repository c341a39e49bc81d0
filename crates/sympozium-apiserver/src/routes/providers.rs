//! `/api/v1/providers/…`: where models can be found — inference servers the node probe
//! found on the cluster's nodes, and the live model list of a provider URL the user typed.
//!
//! The model list fetches a URL a dashboard user chose, from inside the cluster: it refuses
//! link-local addresses (cloud metadata services live there), pins the connection to the
//! address it checked (no second DNS answer), follows no redirects and caps the answer.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};

/// Node annotation prefix of the node probe (`sympozium.ai/inference-<provider>` = port).
const ANNOTATION_PREFIX: &str = "sympozium.ai/inference-";
const HEALTHY: &str = "sympozium.ai/inference-healthy";
const LAST_PROBE: &str = "sympozium.ai/inference-last-probe";
const PROXY_PORT: &str = "sympozium.ai/inference-proxy-port";
const MODELS_PREFIX: &str = "sympozium.ai/inference-models-";
/// Largest model-list answer read (a provider's list is a few kilobytes).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// The provider routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/providers/nodes", get(nodes)).route("/api/v1/providers/models", get(models))
}

/// One inference server found on a node.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeProvider {
    /// Provider name (`ollama`, `vllm`, …).
    pub name: String,
    /// Port it listens on (on the node).
    pub port: i32,
    /// Port of the node probe's reverse proxy, when it runs one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_port: Option<i32>,
    /// Models it serves.
    pub models: Vec<String>,
    /// When the probe last saw it (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_probe: Option<String>,
}

/// A node with healthy inference servers.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderNode {
    /// Node name.
    pub node_name: String,
    /// Its InternalIP.
    #[serde(rename = "nodeIP")]
    pub node_ip: String,
    /// Inference servers on it.
    pub providers: Vec<NodeProvider>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// `?provider=` of `/providers/nodes`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NodesQuery {
    /// Only nodes serving this provider.
    pub provider: Option<String>,
}

/// Nodes whose probe found healthy inference servers.
#[utoipa::path(get, path = "/api/v1/providers/nodes", tag = "providers", params(NodesQuery),
    responses((status = 200, body = [ProviderNode])))]
pub async fn nodes(
    State(s): State<AppState>,
    Query(q): Query<NodesQuery>,
) -> ApiResult<Json<Vec<ProviderNode>>> {
    let nodes = Api::<Node>::all(s.client.clone()).list(&ListParams::default()).await?;
    let want = q.provider.as_deref().filter(|p| !p.is_empty());
    Ok(Json(nodes.items.iter().filter_map(|n| provider_node(n, want)).collect()))
}

fn provider_node(node: &Node, want: Option<&str>) -> Option<ProviderNode> {
    let ann = node.annotations();
    if ann.get(HEALTHY).map(String::as_str) != Some("true") {
        return None;
    }
    let proxy_port = ann.get(PROXY_PORT).and_then(|p| p.parse().ok());
    let last_probe = ann.get(LAST_PROBE).cloned();
    let providers: Vec<NodeProvider> = ann
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix(ANNOTATION_PREFIX)?;
            if k.starts_with(MODELS_PREFIX) || [HEALTHY, LAST_PROBE, PROXY_PORT].contains(&k.as_str()) {
                return None;
            }
            let port = v.parse().ok()?;
            let models = ann
                .get(&format!("{MODELS_PREFIX}{name}"))
                .map(|m| m.split(',').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect())
                .unwrap_or_default();
            Some(NodeProvider {
                name: name.to_string(),
                port,
                proxy_port,
                models,
                last_probe: last_probe.clone(),
            })
        })
        .filter(|p| want.is_none_or(|w| p.name == w))
        .collect();
    if providers.is_empty() {
        return None;
    }
    let node_ip = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
        .map(|a| a.address.clone())
        .unwrap_or_default();
    Some(ProviderNode { node_name: node.name_any(), node_ip, providers, labels: node.labels().clone() })
}

/// `?baseURL=&provider=` of `/providers/models`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelsQuery {
    /// The provider's base URL (`http://host:11434`, `https://api.openai.com/v1`).
    #[serde(rename = "baseURL")]
    #[param(rename = "baseURL")]
    pub base_url: Option<String>,
    /// Provider name; `ollama` selects Ollama's own tag list.
    pub provider: Option<String>,
}

/// A live model list.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct ModelsResponse {
    /// Model ids, sorted.
    pub models: Vec<String>,
    /// Always `live`.
    pub source: String,
}

/// The models a provider serves, asked live (key in header `X-Provider-Api-Key`).
#[utoipa::path(get, path = "/api/v1/providers/models", tag = "providers", params(ModelsQuery),
    responses((status = 200, body = ModelsResponse), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn models(headers: HeaderMap, Query(q): Query<ModelsQuery>) -> ApiResult<Json<ModelsResponse>> {
    let base = crate::params::required("baseURL", &q.base_url)?;
    let url = url::Url::parse(&base)
        .map_err(|e| ApiError::invalid("baseURL", format!("\"{base}\" is not a URL: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ApiError::invalid(
            "baseURL",
            format!("scheme \"{}\" is not http or https", url.scheme()),
        ));
    }
    let host = url.host_str().filter(|h| !h.is_empty()).map(str::to_string);
    let Some(host) = host else {
        return Err(ApiError::invalid("baseURL", format!("\"{base}\" has no host")));
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = resolve_allowed(&host, port).await?;
    let ollama = q.provider.as_deref() == Some("ollama") || url.port() == Some(11434);
    let trimmed = base.trim_end_matches('/');
    let target = if ollama {
        format!("{}/api/tags", trimmed.strip_suffix("/v1").unwrap_or(trimmed))
    } else if trimmed.ends_with("/v1") {
        format!("{trimmed}/models")
    } else {
        format!("{trimmed}/v1/models")
    };
    // Pinned to the checked address: a second lookup could answer a forbidden one.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&host, addr)
        .build()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut req = http.get(&target);
    if let Some(key) =
        headers.get("x-provider-api-key").and_then(|v| v.to_str().ok()).filter(|k| !k.is_empty())
    {
        req = req.bearer_auth(key);
    }
    let res = req.send().await.map_err(|e| ApiError::BadGateway(format!("asking {target}: {e}")))?;
    let status = res.status();
    if !status.is_success() {
        return Err(ApiError::BadGateway(format!("{target} answered {status}")));
    }
    let body = read_capped(res).await?;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadGateway(format!("{target} did not answer JSON: {e}")))?;
    let mut models: Vec<String> = if ollama {
        v["models"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["name"].as_str())
            .map(strip_latest)
            .collect()
    } else {
        v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str())
            .map(String::from)
            .collect()
    };
    models.sort();
    models.dedup();
    Ok(Json(ModelsResponse { models, source: "live".into() }))
}

fn strip_latest(name: &str) -> String {
    name.strip_suffix(":latest").unwrap_or(name).to_string()
}

async fn read_capped(mut res: reqwest::Response) -> ApiResult<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| ApiError::BadGateway(e.to_string()))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ApiError::BadGateway(format!(
                "the model list is larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Resolves `host` and refuses it when any address is link-local (`403`).
async fn resolve_allowed(host: &str, port: u16) -> ApiResult<SocketAddr> {
    let host_only = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match host_only.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host_only, port))
            .await
            .map_err(|e| ApiError::BadGateway(format!("cannot resolve \"{host}\": {e}")))?
            .collect(),
    };
    if let Some(bad) = addrs.iter().find(|a| forbidden(a.ip())) {
        return Err(ApiError::Forbidden(format!(
            "baseURL: \"{host}\" resolves to the link-local address {}, which is not allowed",
            bad.ip()
        )));
    }
    addrs.into_iter().next().ok_or_else(|| ApiError::BadGateway(format!("\"{host}\" has no address")))
}

/// Link-local (IPv4 169.254/16, IPv6 fe80::/10, and IPv4 in IPv6 forms of them).
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.is_link_local();
            }
            (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn link_local_addresses_are_forbidden() {
        for bad in ["169.254.169.254", "169.254.0.1", "fe80::1", "::ffff:169.254.169.254"] {
            assert!(forbidden(bad.parse().unwrap()), "{bad} allowed");
        }
        for ok in ["10.0.0.1", "127.0.0.1", "192.168.1.2", "::1", "2001:db8::1"] {
            assert!(!forbidden(ok.parse().unwrap()), "{ok} refused");
        }
    }

    #[test]
    fn nodes_list_only_healthy_probed_providers() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}, "annotations": {
                "sympozium.ai/inference-healthy": "true",
                "sympozium.ai/inference-ollama": "11434",
                "sympozium.ai/inference-models-ollama": "llama3, qwen2",
                "sympozium.ai/inference-proxy-port": "9473",
                "sympozium.ai/inference-last-probe": "2026-01-01T00:00:00Z"}},
            "status": {"addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}]}
        }))
        .unwrap();
        let p = provider_node(&node, None).unwrap();
        assert_eq!(p.node_ip, "10.0.0.5");
        assert_eq!(p.providers.len(), 1);
        assert_eq!(p.providers[0].name, "ollama");
        assert_eq!(p.providers[0].port, 11434);
        assert_eq!(p.providers[0].proxy_port, Some(9473));
        assert_eq!(p.providers[0].models, ["llama3", "qwen2"]);
        assert!(provider_node(&node, Some("vllm")).is_none());
    }
}
