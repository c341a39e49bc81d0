//! `fetch_url`: HTTP GET with an SSRF guard. Every hop (the first request and each redirect)
//! resolves the host itself, refuses non-public addresses unless the policy's egress list
//! allows them, and then connects to exactly the addresses it checked, so DNS cannot answer
//! differently between check and connect.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::html::html_to_text;
use super::ssrf::check_ip;
use super::{Tool, ToolOutput, required};
use crate::llm::ToolSpec;
use crate::policy::ToolPolicy;

const USER_AGENT: &str = "Sympozium/1.0 (agent-runner)";
const MAX_REDIRECTS: usize = 5;
const MAX_BODY: usize = 2 * 1024 * 1024;
const DEFAULT_CHARS: u64 = 50_000;
const MAX_CHARS: u64 = 100_000;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a URL's host may not be fetched.
#[derive(Debug, thiserror::Error)]
enum ResolveError {
    #[error("{0} has no host")]
    NoHost(url::Url),
    #[error("cannot resolve {host}: {source}")]
    Lookup {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot resolve {0}")]
    NoAddress(String),
    #[error(
        "refusing to fetch {url}: {host} resolves to {source}; only public addresses \
         (or those allowed by the policy's egress rules) may be fetched"
    )]
    NotPublic {
        url: url::Url,
        host: String,
        #[source]
        source: super::ssrf::SsrfError,
    },
}

/// The tool.
pub struct FetchUrl {
    /// Policy (egress exceptions).
    pub policy: ToolPolicy,
}

impl FetchUrl {
    async fn resolve(&self, url: &url::Url) -> Result<Vec<SocketAddr>, ResolveError> {
        let host = url.host_str().ok_or_else(|| ResolveError::NoHost(url.clone()))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|source| ResolveError::Lookup { host: bare.to_string(), source })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(ResolveError::NoAddress(bare.to_string()));
        }
        for addr in &addrs {
            if let Err(e) = check_ip(addr.ip())
                && !self.policy.egress_allows(bare, addr.ip(), port)
            {
                return Err(ResolveError::NotPublic { url: url.clone(), host: bare.to_string(), source: e });
            }
        }
        Ok(addrs)
    }

    async fn run(&self, args: Value) -> ToolOutput {
        let raw = match required(&args, "url") {
            Ok(u) => u.to_string(),
            Err(e) => return e,
        };
        let max_chars =
            args.get("maxChars").and_then(Value::as_u64).unwrap_or(DEFAULT_CHARS).clamp(1, MAX_CHARS);
        let mut url = match url::Url::parse(&raw) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            Ok(u) => {
                return ToolOutput::err(format!("unsupported scheme {:?}: only http and https", u.scheme()));
            }
            Err(e) => return ToolOutput::err(format!("invalid URL {raw:?}: {e}")),
        };
        let extra: Vec<(String, String)> = args
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| h.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        let mut hops = 0;
        let response = loop {
            let addrs = match self.resolve(&url).await {
                Ok(a) => a,
                Err(e) => return ToolOutput::err(e.to_string()),
            };
            let host =
                url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
            let client = match reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(TIMEOUT)
                .user_agent(USER_AGENT)
                .resolve_to_addrs(&host, &addrs)
                .build()
            {
                Ok(c) => c,
                Err(e) => return ToolOutput::err(format!("HTTP client: {e}")),
            };
            let mut request = client.get(url.clone());
            for (k, v) in &extra {
                request = request.header(k.as_str(), v.as_str());
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => return ToolOutput::err(format!("fetching {url}: {e}")),
            };
            if !response.status().is_redirection() {
                break response;
            }
            let Some(location) =
                response.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok())
            else {
                break response;
            };
            hops += 1;
            if hops > MAX_REDIRECTS {
                return ToolOutput::err(format!("too many redirects (more than {MAX_REDIRECTS})"));
            }
            url = match url.join(location) {
                Ok(next) if matches!(next.scheme(), "http" | "https") => next,
                _ => return ToolOutput::err(format!("invalid redirect target {location:?}")),
            };
        };
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    let room = MAX_BODY - body.len();
                    body.extend_from_slice(&bytes[..bytes.len().min(room)]);
                    if body.len() >= MAX_BODY {
                        break;
                    }
                }
                Err(e) => return ToolOutput::err(format!("reading {url}: {e}")),
            }
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        if status.as_u16() >= 400 {
            let head: String = text.chars().take(2000).collect();
            return ToolOutput::err(format!(
                "HTTP {} {}\n{head}",
                status.as_u16(),
                status.canonical_reason().unwrap_or_default()
            ));
        }
        let is_html = content_type.contains("html")
            || (!content_type.starts_with("text/") && text.trim_start().starts_with('<'));
        let text = if is_html { html_to_text(&text) } else { text };
        let total = text.chars().count() as u64;
        if total > max_chars {
            let cut: String = text.chars().take(max_chars as usize).collect();
            return ToolOutput::Ok(format!(
                "{cut}\n\n[content truncated: showing {max_chars} of {total} characters]"
            ));
        }
        ToolOutput::Ok(text)
    }
}

impl Tool for FetchUrl {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "fetch_url".into(),
            description: "Fetch a public http(s) URL with GET and return its text (HTML is converted \
                          to text). Internal and private addresses are refused."
                .into(),
            parameters: json!({"type": "object", "properties": {
                "url": {"type": "string", "description": "http or https URL"},
                "maxChars": {"type": "integer", "description": "Default 50000, max 100000"},
                "headers": {"type": "object", "description": "Extra request headers",
                            "additionalProperties": {"type": "string"}}},
                "required": ["url"]}),
        }
    }

    fn call(&self, args: Value) -> BoxFuture<'_, ToolOutput> {
        Box::pin(self.run(args))
    }
}
