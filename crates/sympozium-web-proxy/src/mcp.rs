//! The MCP server (Streamable HTTP, on `/mcp`): the agent as a tool. `ask_agent` runs the
//! task as one run of the instance and returns its answer; a failed run is a tool error
//! (`isError`), which MCP hosts show to their model.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;

use crate::runs::{Kind, Outcome, Runs};
use crate::wire::Prompt;

/// Name of the tool.
pub const ASK_AGENT: &str = "ask_agent";

/// The agent as an MCP server.
#[derive(Clone)]
pub struct AgentServer {
    runs: Runs,
}

fn ask_agent_tool(instance: &str) -> Tool {
    let schema = json!({
        "type": "object",
        "properties": {"task": {"type": "string", "description": "What the agent should do or answer."}},
        "required": ["task"],
        "additionalProperties": false,
    });
    let schema = match schema {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    Tool::new(
        ASK_AGENT,
        format!(
            "Ask the Sympozium agent {instance:?} to carry out a task; returns its final answer. Each call is a \
             separate run of the agent with its skills and memory."
        ),
        Arc::new(schema),
    )
}

impl AgentServer {
    /// A server starting runs through `runs`.
    pub fn new(runs: Runs) -> Self {
        Self { runs }
    }

    async fn ask(&self, task: String) -> Result<CallToolResult, ErrorData> {
        let inst = self.runs.instance().await.map_err(|e| ErrorData::internal_error(e.message, None))?;
        let prompt = Prompt { task, system: None };
        let mut handle = self
            .runs
            .start(&inst, Kind::Mcp, &prompt)
            .await
            .map_err(|e| ErrorData::internal_error(e.message, None))?;
        Ok(match handle.outcome().await {
            Ok(Outcome::Answer(text, _)) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Ok(Outcome::Failed(error)) => {
                CallToolResult::error(vec![ContentBlock::text(format!("agent run failed: {error}"))])
            }
            Err(e) => CallToolResult::error(vec![ContentBlock::text(e.message)]),
        })
    }
}

impl ServerHandler for AgentServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("sympozium-agent", env!("CARGO_PKG_VERSION")))
            .with_instructions(format!(
                "Call {ASK_AGENT} to hand a task to the agent {:?}.",
                self.runs.instance_name()
            ))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![ask_agent_tool(self.runs.instance_name())]))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        (name == ASK_AGENT).then(|| ask_agent_tool(self.runs.instance_name()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name != ASK_AGENT {
            return Err(ErrorData::invalid_params(
                format!("unknown tool {:?}; the tool is {ASK_AGENT}", request.name),
                None,
            ));
        }
        let task = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("task"))
            .and_then(|t| t.as_str())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        let Some(task) = task else {
            return Err(ErrorData::invalid_params("arguments.task: a non-empty string is required", None));
        };
        Ok(self.ask(task).await?.into())
    }
}

/// The Streamable HTTP service. Any `Host` is accepted: callers come through the Service
/// or the Gateway under names this pod cannot know, and every request carries the API key
/// (checked before this service), which a DNS-rebinding page does not have.
pub fn service(runs: Runs, max_body: usize) -> StreamableHttpService<AgentServer, LocalSessionManager> {
    let config =
        StreamableHttpServerConfig::default().disable_allowed_hosts().with_max_request_body_bytes(max_body);
    StreamableHttpService::new(move || Ok(AgentServer::new(runs.clone())), Arc::default(), config)
}
