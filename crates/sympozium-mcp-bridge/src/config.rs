//! The bridge's server list (`mcp-servers.yaml`, written by the AgentRun controller into the
//! ConfigMap `<run>-mcp-servers`) and its validation.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Per-call timeout used when a server sets none (or a non-positive one).
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// Why a server list cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML of the expected shape.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The YAML error.
        source: serde_yaml::Error,
    },
    /// A field holds a value the bridge cannot use.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, e.g. `servers[1].url`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServersFile {
    /// The servers of the run.
    #[serde(default)]
    pub servers: Vec<ServerConfig>,
}

/// How the bridge talks to a server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// MCP Streamable HTTP (one endpoint, POST + optional SSE responses).
    #[default]
    StreamableHttp,
    /// The older HTTP+SSE transport (protocol 2024-11-05): `GET` an SSE stream whose
    /// `endpoint` event names the URL to `POST` messages to.
    Sse,
}

/// One MCP server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfig {
    /// Server name (unique in the file).
    #[serde(default)]
    pub name: String,
    /// Its MCP endpoint.
    #[serde(default)]
    pub url: String,
    /// Transport; `streamable-http` unless the server only speaks the older HTTP+SSE.
    #[serde(default)]
    pub transport: Transport,
    /// Prefix of the tool names the agent sees (`<prefix>_<tool>`; unique in the file).
    #[serde(default)]
    pub tools_prefix: String,
    /// Per-call timeout in seconds (≤ 0: 30).
    #[serde(default)]
    pub timeout: i64,
    /// Credentials sent with every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Extra HTTP headers sent with every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Only these tools are published (when non-empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools_allow: Vec<String>,
    /// These tools are never published.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools_deny: Vec<String>,
}

/// Where the token comes from and how it is sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Auth {
    /// `bearer` (`Authorization: Bearer <token>`) or `header` (`<headerName>: <token>`).
    #[serde(default, rename = "type")]
    pub kind: AuthKind,
    /// Name of the environment variable holding the token (the pod gets it from a Secret).
    /// `secretKey` is accepted as an alias: the original bridge read that name while its
    /// controller wrote `tokenEnv`, which broke every authenticated server.
    #[serde(default, alias = "secretKey")]
    pub token_env: String,
    /// Header name for `type: header`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_name: Option<String>,
}

/// Kinds of [`Auth`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// `Authorization: Bearer <token>`.
    #[default]
    Bearer,
    /// A custom header.
    Header,
}

impl ServerConfig {
    /// The per-call timeout.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(
            u64::try_from(self.timeout).ok().filter(|t| *t > 0).unwrap_or(DEFAULT_TIMEOUT_SECS),
        )
    }

    /// Whether the allow/deny filters publish `tool` (its name on the server).
    pub fn publishes(&self, tool: &str) -> bool {
        (self.tools_allow.is_empty() || self.tools_allow.iter().any(|a| a == tool))
            && !self.tools_deny.iter().any(|d| d == tool)
    }

    /// `<prefix>_<tool>`.
    pub fn prefixed(&self, tool: &str) -> String {
        format!("{}_{tool}", self.tools_prefix)
    }

    /// The HTTP headers of every request: auth (token from `env`) and custom headers.
    pub fn request_headers(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<(String, String)>, MissingToken> {
        let mut out: Vec<(String, String)> =
            self.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(auth) = &self.auth {
            let token = env(&auth.token_env)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| MissingToken(auth.token_env.clone()))?;
            match auth.kind {
                AuthKind::Bearer => out.push(("authorization".into(), format!("Bearer {}", token.trim()))),
                AuthKind::Header => {
                    out.push((auth.header_name.clone().unwrap_or_default(), token.trim().to_string()))
                }
            }
        }
        Ok(out)
    }
}

/// A server needs a token and its variable is empty.
#[derive(Debug, thiserror::Error)]
#[error("the token variable {0} is empty (is the auth Secret present?)")]
pub struct MissingToken(pub String);

impl ServersFile {
    /// Reads `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(ConfigError::Read { path: path.display().to_string(), source }),
        };
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => {
                ConfigError::Parse { path: path.display().to_string(), source }
            }
            other => other,
        })
    }

    /// Parses and validates YAML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let file: Self = serde_yaml::from_str(text)
            .map_err(|source| ConfigError::Parse { path: String::new(), source })?;
        file.validate()?;
        Ok(file)
    }

    /// Checks names, URLs, prefixes and auth.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |i: usize, field: &str, reason: String| ConfigError::Invalid {
            field: format!("servers[{i}].{field}"),
            reason,
        };
        let mut names = HashSet::new();
        let mut prefixes = HashSet::new();
        for (i, s) in self.servers.iter().enumerate() {
            if s.name.trim().is_empty() {
                return Err(invalid(i, "name", "is required".into()));
            }
            if !names.insert(s.name.as_str()) {
                return Err(invalid(i, "name", format!("{:?} is used by another server", s.name)));
            }
            match url::Url::parse(&s.url) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.host_str().is_some_and(|h| !h.is_empty()) => {}
                Ok(_) => {
                    return Err(invalid(i, "url", format!("{:?} is not an http(s) URL with a host", s.url)));
                }
                Err(e) => return Err(invalid(i, "url", format!("{:?} is not a URL: {e}", s.url))),
            }
            let prefix_ok = s.tools_prefix.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && s.tools_prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !prefix_ok {
                return Err(invalid(
                    i,
                    "toolsPrefix",
                    format!(
                        "{:?} must start with a letter and contain only letters, digits and '_'",
                        s.tools_prefix
                    ),
                ));
            }
            if !prefixes.insert(s.tools_prefix.as_str()) {
                return Err(invalid(
                    i,
                    "toolsPrefix",
                    format!("{:?} is used by another server", s.tools_prefix),
                ));
            }
            if let Some(auth) = &s.auth {
                if auth.token_env.is_empty() {
                    return Err(invalid(i, "auth.tokenEnv", "names no environment variable".into()));
                }
                if auth.kind == AuthKind::Header && auth.header_name.as_deref().is_none_or(str::is_empty) {
                    return Err(invalid(i, "auth.headerName", "is required for type header".into()));
                }
            }
        }
        Ok(())
    }

    /// The server whose tools carry `name`'s prefix; the longest prefix wins, so `gh` and
    /// `gh_enterprise` do not shadow each other.
    pub fn server_for_tool(&self, name: &str) -> Option<&ServerConfig> {
        self.servers
            .iter()
            .filter(|s| name.strip_prefix(s.tools_prefix.as_str()).is_some_and(|rest| rest.starts_with('_')))
            .max_by_key(|s| s.tools_prefix.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn validation_names_the_field_and_the_reason() {
        let cases = [
            ("servers: [{url: 'http://a', toolsPrefix: a}]", "servers[0].name: is required"),
            ("servers: [{name: a, url: 'ftp://a', toolsPrefix: a}]", "servers[0].url"),
            ("servers: [{name: a, url: 'http://a', toolsPrefix: '1a'}]", "servers[0].toolsPrefix"),
            (
                "servers: [{name: a, url: 'http://a', toolsPrefix: a}, {name: b, url: 'http://b', toolsPrefix: a}]",
                "servers[1].toolsPrefix: \"a\" is used by another server",
            ),
            (
                "servers: [{name: a, url: 'http://a', toolsPrefix: a, auth: {type: header, tokenEnv: T}}]",
                "servers[0].auth.headerName: is required for type header",
            ),
        ];
        for (yaml, want) in cases {
            let err = ServersFile::parse(yaml).unwrap_err().to_string();
            assert!(err.starts_with(want), "{yaml}: {err}");
        }
    }

    #[test]
    fn the_original_secret_key_field_names_the_token_variable() {
        let f = ServersFile::parse(
            "servers: [{name: gh, url: 'https://gh.example/mcp', toolsPrefix: gh, timeout: 0,\n  auth: {type: bearer, secretKey: MCP_AUTH_GH}, headers: {X-Team: a}}]",
        )
        .unwrap();
        let s = &f.servers[0];
        assert_eq!(s.call_timeout(), Duration::from_secs(30));
        let env = |k: &str| (k == "MCP_AUTH_GH").then(|| "tok\n".to_string());
        let headers = s.request_headers(&env).unwrap();
        assert!(headers.contains(&("authorization".into(), "Bearer tok".into())));
        assert!(headers.contains(&("X-Team".into(), "a".into())));
        let err = s.request_headers(&|_| None).unwrap_err().to_string();
        assert!(err.contains("MCP_AUTH_GH"), "{err}");
    }

    #[test]
    fn filters_and_longest_prefix() {
        let f = ServersFile::parse(
            "servers:\n- {name: a, url: 'http://a', toolsPrefix: gh, toolsAllow: [x, y], toolsDeny: [y]}\n- {name: b, url: 'http://b', toolsPrefix: gh_ent}",
        )
        .unwrap();
        assert!(f.servers[0].publishes("x") && !f.servers[0].publishes("y") && !f.servers[0].publishes("z"));
        assert_eq!(f.server_for_tool("gh_ent_list").unwrap().name, "b");
        assert_eq!(f.server_for_tool("gh_list").unwrap().name, "a");
        assert!(f.server_for_tool("ghx_list").is_none());
    }
}
