//! The agent-pod side: discovers the run's MCP servers, publishes their tools to the runner
//! (`mcp-tools.json`), and answers the runner's `mcp-request-<id>.json` files with
//! `mcp-result-<id>.json`, one rmcp session per server.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::client::{ClientError, EnvLookup, Session, connect};
use crate::config::{ServerConfig, ServersFile};
use crate::content;
use sympozium_protocol::ipc;

/// Discovery attempts per server by default: a server that is still starting (a pod
/// scheduled with the run) gets about a minute.
pub const DISCOVERY_ATTEMPTS: u32 = 6;
/// Pause between discovery attempts by default.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);

/// Tunables of the bridge.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Connect + handshake budget per attempt.
    pub connect_timeout: Duration,
    /// Discovery attempts per server before it is reported unavailable.
    pub discovery_attempts: u32,
    /// Pause between two attempts.
    pub discovery_interval: Duration,
    /// Longest result text handed to the runner.
    pub max_result_chars: usize,
    /// Calls in flight at once.
    pub max_concurrent_calls: usize,
    /// Safety-net rescan of the IPC directory.
    pub rescan_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            discovery_attempts: DISCOVERY_ATTEMPTS,
            discovery_interval: DISCOVERY_INTERVAL,
            max_result_chars: 7000,
            max_concurrent_calls: 10,
            rescan_interval: Duration::from_millis(500),
        }
    }
}

/// One tool in the manifest the runner loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestTool {
    /// `<prefix>_<tool>`.
    pub name: String,
    /// The server's description of it.
    pub description: String,
    /// Server name.
    pub server: String,
    /// Per-call timeout in seconds.
    pub timeout: u64,
    /// JSON schema of the arguments.
    pub input_schema: Value,
}

/// A server whose tools could not be discovered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unavailable {
    /// Server name.
    pub server: String,
    /// Its tool prefix (calls to `<prefix>_*` get this error).
    pub tools_prefix: String,
    /// Why.
    pub error: String,
}

/// `mcp-tools.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Published tools.
    pub tools: Vec<ManifestTool>,
    /// Servers that did not answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<Unavailable>,
}

struct ServerState {
    config: ServerConfig,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    /// Filtered tool names on the server → published name.
    tools: Mutex<HashMap<String, ManifestTool>>,
}

/// The bridge for one run.
pub struct Bridge {
    servers: Vec<Arc<ServerState>>,
    env: EnvLookup,
    settings: Settings,
}

/// A request file.
#[derive(Debug, Deserialize)]
struct Request {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    server: Option<String>,
    tool: String,
    #[serde(default)]
    arguments: Option<Value>,
    #[serde(default, rename = "_meta")]
    meta: Option<Value>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Bridge {
    /// A bridge for `file`'s servers; tokens are read through `env`.
    pub fn new(file: &ServersFile, env: EnvLookup, settings: Settings) -> Self {
        let servers = file
            .servers
            .iter()
            .map(|c| {
                Arc::new(ServerState {
                    config: c.clone(),
                    session: tokio::sync::Mutex::new(None),
                    tools: Mutex::new(HashMap::new()),
                })
            })
            .collect();
        Self { servers, env, settings }
    }

    /// Connects to every server (in parallel, with retries) and lists their tools.
    pub async fn discover(&self) -> Manifest {
        let results = futures::future::join_all(self.servers.iter().map(|s| self.discover_one(s))).await;
        let mut manifest = Manifest::default();
        for (server, result) in self.servers.iter().zip(results) {
            match result {
                Ok(()) => {
                    let mut tools: Vec<ManifestTool> = lock(&server.tools).values().cloned().collect();
                    tools.sort_by(|a, b| a.name.cmp(&b.name));
                    tracing::info!(server = %server.config.name, tools = tools.len(), "discovered MCP tools");
                    manifest.tools.extend(tools);
                }
                Err(e) => {
                    tracing::warn!(server = %server.config.name, error = %e, "MCP server unavailable");
                    manifest.unavailable.push(Unavailable {
                        server: server.config.name.clone(),
                        tools_prefix: server.config.tools_prefix.clone(),
                        error: e.to_string(),
                    });
                }
            }
        }
        manifest
    }

    async fn discover_one(&self, server: &ServerState) -> Result<(), ClientError> {
        let mut attempt = 1;
        loop {
            let span = tracing::info_span!("mcp-bridge.discover", server = %server.config.name, attempt);
            let result = async {
                let session = self.session(server).await?;
                self.refresh_tools(server, &session).await
            };
            match tracing::Instrument::instrument(result, span).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= self.settings.discovery_attempts => return Err(e),
                Err(e) => {
                    tracing::info!(server = %server.config.name, attempt, error = %e, "discovery failed; retrying");
                    tokio::time::sleep(self.settings.discovery_interval).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn refresh_tools(&self, server: &ServerState, session: &Session) -> Result<(), ClientError> {
        let listed = match session.tools(self.settings.connect_timeout).await {
            Ok(t) => t,
            Err(e) => {
                *server.session.lock().await = None;
                return Err(e);
            }
        };
        let cfg = &server.config;
        let timeout = cfg.call_timeout().as_secs();
        let tools = listed
            .into_iter()
            .filter(|t| cfg.publishes(&t.name))
            .map(|t| {
                let entry = ManifestTool {
                    name: cfg.prefixed(&t.name),
                    description: t.description.as_deref().unwrap_or_default().to_string(),
                    server: cfg.name.clone(),
                    timeout,
                    input_schema: Value::Object((*t.input_schema).clone()),
                };
                (t.name.to_string(), entry)
            })
            .collect();
        *lock(&server.tools) = tools;
        Ok(())
    }

    /// The live session of `server`, connecting when there is none (or it closed).
    async fn session(&self, server: &ServerState) -> Result<Arc<Session>, ClientError> {
        let mut slot = server.session.lock().await;
        if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let session = Arc::new(connect(&server.config, &self.env, self.settings.connect_timeout).await?);
        *slot = Some(session.clone());
        Ok(session)
    }

    fn server_for(&self, tool: &str, named: Option<&str>) -> Option<&Arc<ServerState>> {
        if let Some(s) = self.servers.iter().find(|s| lock(&s.tools).values().any(|t| t.name == tool)) {
            return Some(s);
        }
        if let Some(name) = named
            && let Some(s) = self.servers.iter().find(|s| s.config.name == name)
        {
            return Some(s);
        }
        self.servers
            .iter()
            .filter(|s| tool.strip_prefix(s.config.tools_prefix.as_str()).is_some_and(|r| r.starts_with('_')))
            .max_by_key(|s| s.config.tools_prefix.len())
    }

    /// Runs one call of the published tool `tool`; the `Err` text is what the model reads.
    pub async fn call(
        &self,
        tool: &str,
        server: Option<&str>,
        arguments: Value,
        meta: Option<Value>,
    ) -> Result<rmcp::model::CallToolResult, CallError> {
        let Some(state) = self.server_for(tool, server) else {
            return Err(CallError::NoServer(tool.to_string()));
        };
        let cfg = &state.config;
        let unprefixed = tool
            .strip_prefix(cfg.tools_prefix.as_str())
            .and_then(|r| r.strip_prefix('_'))
            .ok_or_else(|| CallError::Prefix {
                tool: tool.to_string(),
                prefix: cfg.tools_prefix.clone(),
                server: cfg.name.clone(),
            })?
            .to_string();
        let unreachable = |source: ClientError| CallError::Unreachable {
            server: cfg.name.clone(),
            url: cfg.url.clone(),
            source,
        };
        let session = self.session(state).await.map_err(unreachable)?;
        if !lock(&state.tools).contains_key(&unprefixed) {
            // Unknown so far (the server was down at discovery, or added tools): ask again.
            self.refresh_tools(state, &session).await.map_err(unreachable)?;
            if !lock(&state.tools).contains_key(&unprefixed) {
                return Err(if cfg.publishes(&unprefixed) {
                    CallError::NoTool { server: cfg.name.clone(), tool: unprefixed }
                } else {
                    CallError::Filtered(tool.to_string())
                });
            }
        }
        let arguments = match arguments {
            Value::Object(m) => m,
            Value::Null => serde_json::Map::new(),
            _ => return Err(CallError::Arguments),
        };
        let timeout = cfg.call_timeout();
        let span = tracing::info_span!("mcp.tool_call", server = %cfg.name, tool = %unprefixed);
        let started = std::time::Instant::now();
        let result =
            tracing::Instrument::instrument(session.call(&unprefixed, arguments, meta, timeout), span).await;
        let ms = started.elapsed().as_millis();
        match result {
            Ok(r) => {
                tracing::info!(server = %cfg.name, tool = %unprefixed, duration_ms = ms, is_error = r.is_error.unwrap_or(false), "MCP tool call");
                Ok(r)
            }
            Err(ClientError::Timeout(t)) => {
                tracing::warn!(server = %cfg.name, tool = %unprefixed, "MCP tool call timed out");
                Err(CallError::Timeout { server: cfg.name.clone(), tool: unprefixed, secs: t.as_secs() })
            }
            Err(e) => {
                // The session may be broken; the next call reconnects.
                *state.session.lock().await = None;
                tracing::warn!(server = %cfg.name, tool = %unprefixed, error = %e, "MCP tool call failed");
                Err(CallError::Failed { server: cfg.name.clone(), tool: unprefixed, source: e })
            }
        }
    }

    /// Handles one request file and returns the result file body.
    async fn handle(&self, id_from_name: &str, bytes: &[u8]) -> Value {
        let request: Request = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => return content::error_file(id_from_name, &format!("malformed MCP request: {e}")),
        };
        let id = match &request.id {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => id_from_name.to_string(),
        };
        let arguments = request.arguments.unwrap_or(Value::Null);
        match self.call(&request.tool, request.server.as_deref(), arguments, request.meta).await {
            Ok(r) => content::result_file(&id, &r, self.settings.max_result_chars),
            Err(e) => content::error_file(&id, &e.to_string()),
        }
    }
}

/// Why a tool call failed; the text is what the model reads.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No server of the run publishes the tool's prefix.
    #[error("tool {0:?} belongs to none of this run's MCP servers")]
    NoServer(String),
    /// The tool does not carry the named server's prefix.
    #[error("tool {tool:?} does not carry the prefix {prefix}_ of MCP server {server:?}")]
    Prefix {
        /// The published tool name.
        tool: String,
        /// The server's prefix.
        prefix: String,
        /// The server.
        server: String,
    },
    /// The server cannot be reached.
    #[error("MCP server {server:?} is unreachable at {url}: {source}")]
    Unreachable {
        /// The server.
        server: String,
        /// Its URL.
        url: String,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// The server does not have the tool.
    #[error("MCP server {server:?} has no tool {tool:?}")]
    NoTool {
        /// The server.
        server: String,
        /// The server's own tool name.
        tool: String,
    },
    /// The tool is filtered out by the server's allow/deny lists.
    #[error("tool {0:?} is not available (filtered by the server's toolsAllow/toolsDeny)")]
    Filtered(String),
    /// The arguments are not a JSON object.
    #[error("tool arguments must be a JSON object")]
    Arguments,
    /// No answer within the call timeout.
    #[error("MCP server {server:?} did not answer {tool} within {secs}s; the call was cancelled")]
    Timeout {
        /// The server.
        server: String,
        /// The server's own tool name.
        tool: String,
        /// The timeout.
        secs: u64,
    },
    /// The call failed.
    #[error("MCP server {server:?} failed on {tool}: {source}")]
    Failed {
        /// The server.
        server: String,
        /// The server's own tool name.
        tool: String,
        /// The client's error.
        #[source]
        source: ClientError,
    },
}

/// Writes `value` to `path` via a temporary file and a rename, so readers never see half.
pub fn write_atomic(path: &Path, value: &Value) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, serde_json::to_vec(value).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

/// The id in `mcp-request-<id>.json`.
fn request_id(name: &str) -> Option<&str> {
    ipc::mcp_request_id(name)
}

/// Answers request files in `dir` until `done` exists (the runner's result), then waits for
/// the calls in flight; returns early (cancelling calls) when `stop` resolves.
pub async fn serve(
    bridge: Arc<Bridge>,
    dir: PathBuf,
    done: PathBuf,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(&dir)?;
    let wake = Arc::new(tokio::sync::Notify::new());
    let signal = wake.clone();
    let mut watcher = notify::recommended_watcher(move |_event: notify::Result<notify::Event>| {
        signal.notify_one();
    })
    .map_err(std::io::Error::other)?;
    notify::Watcher::watch(&mut watcher, &dir, notify::RecursiveMode::NonRecursive)
        .map_err(std::io::Error::other)?;
    let limit = Arc::new(Semaphore::new(bridge.settings.max_concurrent_calls.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    let rescan = bridge.settings.rescan_interval;
    tokio::pin!(stop);
    loop {
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(id) = request_id(&name) else { continue };
            if !seen.insert(name.clone()) {
                continue;
            }
            let (bridge, dir, limit, id) = (bridge.clone(), dir.clone(), limit.clone(), id.to_string());
            tasks.spawn(async move {
                let Ok(_permit) = limit.acquire_owned().await else { return };
                let path = dir.join(&name);
                let Ok(bytes) = tokio::fs::read(&path).await else { return };
                let result = bridge.handle(&id, &bytes).await;
                let out_id = result.get("id").and_then(Value::as_str).unwrap_or(&id).to_string();
                if let Err(e) = write_atomic(&dir.join(ipc::mcp_result(&out_id)), &result) {
                    tracing::error!(error = %e, id = %out_id, "cannot write the MCP result");
                }
                let _ = tokio::fs::remove_file(&path).await;
            });
        }
        while tasks.try_join_next().is_some() {}
        if done.exists() {
            while tasks.join_next().await.is_some() {}
            return Ok(());
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(rescan) => {}
            () = &mut stop => {
                tasks.abort_all();
                return Ok(());
            }
        }
    }
}
