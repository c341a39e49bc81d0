//! MCP tools: loaded from the bridge's manifest `<ipc>/tools/mcp-tools.json` and
//! called through `mcp-request-<n>.json` / `mcp-result-<n>.json` files in `<ipc>/tools`.
//! Servers the bridge could not reach at start (`unavailable` in the manifest) get a stand-in
//! that is not offered but forwards calls to `<prefix>_*` to the bridge, which retries the
//! server and otherwise answers with a clear error.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{MAX_RESULT_CHARS, Tool, ToolOutput};
use crate::llm::ToolSpec;
use crate::util::{truncate_chars, write_json_atomic};
use sympozium_protocol::ipc;

/// First result poll; doubled up to [`POLL_MAX`], so quick tools answer in milliseconds
/// without busy-polling slow ones.
const POLL_MIN: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(100);
const GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestTool {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    server: String,
    #[serde(default)]
    timeout: u64,
    #[serde(default)]
    input_schema: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Unavailable {
    server: String,
    tools_prefix: String,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    tools: Vec<ManifestTool>,
    #[serde(default)]
    unavailable: Vec<Unavailable>,
}

/// One MCP tool, or the stand-in for an unreachable server's tools.
pub struct McpTool {
    entry: ManifestTool,
    /// Set for the stand-in: the server's prefix and why discovery failed.
    unavailable: Option<Unavailable>,
    dir: PathBuf,
    counter: Arc<AtomicU64>,
    meta: Option<Value>,
}

impl McpTool {
    /// The MCP server that provides it.
    pub fn server(&self) -> &str {
        &self.entry.server
    }
}

/// Reads the manifest, waiting up to `wait` (polling 500 ms) for it to appear. `meta` (trace
/// context) is forwarded with every call as `_meta`.
pub async fn load_mcp_tools(tools_dir: &Path, wait: Duration, meta: Option<Value>) -> Vec<McpTool> {
    let path = tools_dir.join(ipc::MCP_TOOLS);
    let deadline = tokio::time::Instant::now() + wait;
    let bytes = loop {
        if let Ok(bytes) = tokio::fs::read(&path).await {
            break bytes;
        }
        if tokio::time::Instant::now() >= deadline {
            return Vec::new();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let manifest: Manifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring malformed MCP manifest");
            return Vec::new();
        }
    };
    let counter = Arc::new(AtomicU64::new(0));
    let standins = manifest.unavailable.into_iter().filter(|u| !u.tools_prefix.is_empty()).map(|u| {
        let entry = ManifestTool {
            name: format!("{}_*", u.tools_prefix),
            description: format!("tools of MCP server {} (unreachable at start: {})", u.server, u.error),
            server: u.server.clone(),
            timeout: 0,
            input_schema: None,
        };
        (entry, Some(u))
    });
    manifest
        .tools
        .into_iter()
        .filter(|t| !t.name.is_empty())
        .map(|t| (t, None))
        .chain(standins)
        .map(|(entry, unavailable)| McpTool {
            entry,
            unavailable,
            dir: tools_dir.to_path_buf(),
            counter: counter.clone(),
            meta: meta.clone(),
        })
        .collect()
}

impl McpTool {
    async fn run(&self, name: String, args: Value) -> ToolOutput {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let request = self.dir.join(ipc::mcp_request(&n.to_string()));
        let result = self.dir.join(ipc::mcp_result(&n.to_string()));
        let mut body = json!({"id": n.to_string(), "server": self.entry.server, "tool": name,
            "arguments": args});
        if let Some(meta) = &self.meta {
            body["_meta"] = meta.clone();
        }
        if let Err(e) = write_json_atomic(&request, &body, false) {
            return ToolOutput::err(format!("MCP Error: writing request: {e}"));
        }
        let timeout = if self.entry.timeout == 0 { 30 } else { self.entry.timeout };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout) + GRACE;
        let mut poll = POLL_MIN;
        let value = loop {
            if let Ok(bytes) = tokio::fs::read(&result).await
                && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
            {
                break v;
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = tokio::fs::remove_file(&request).await;
                return ToolOutput::err(format!(
                    "MCP Error: no result from the MCP bridge for {name} within {}s (is the mcp-bridge sidecar running?)",
                    timeout + GRACE.as_secs()
                ));
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(POLL_MAX);
        };
        let _ = tokio::fs::remove_file(&result).await;
        let texts: Vec<&str> = value
            .get("content")
            .and_then(Value::as_array)
            .map(|c| c.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect())
            .unwrap_or_default();
        let mut joined = texts.join("\n");
        if joined.is_empty()
            && let Some(structured) = value.get("structuredContent").filter(|v| !v.is_null())
        {
            joined = structured.to_string();
        }
        let success = value.get("success").and_then(Value::as_bool).unwrap_or(false)
            && !value.get("isError").and_then(Value::as_bool).unwrap_or(false);
        if !success {
            let error = value.get("error").and_then(Value::as_str).filter(|e| !e.is_empty());
            let first = texts.first().copied().unwrap_or("unknown error");
            return ToolOutput::err(format!("MCP Error: {}", error.unwrap_or(first)));
        }
        if joined.is_empty() {
            return ToolOutput::Ok("(no output)".into());
        }
        ToolOutput::Ok(truncate_chars(&joined, MAX_RESULT_CHARS))
    }
}

impl Tool for McpTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.entry.name.clone(),
            description: format!("{} [MCP: {}]", self.entry.description, self.entry.server),
            parameters: self.entry.input_schema.clone().unwrap_or_else(|| json!({"type": "object"})),
        }
    }

    fn call(&self, args: Value) -> BoxFuture<'_, ToolOutput> {
        Box::pin(self.run(self.entry.name.clone(), args))
    }

    fn offered(&self) -> bool {
        self.unavailable.is_none()
    }

    fn handles(&self, name: &str) -> bool {
        match &self.unavailable {
            None => self.entry.name == name,
            Some(u) => {
                name.strip_prefix(u.tools_prefix.as_str()).is_some_and(|r| r.len() > 1 && r.starts_with('_'))
            }
        }
    }

    fn call_as<'a>(&'a self, name: &'a str, args: Value) -> BoxFuture<'a, ToolOutput> {
        // The stand-in of an unreachable server answers any of its prefixed names; the bridge
        // retries the server before it gives up.
        Box::pin(self.run(name.to_string(), args))
    }
}
