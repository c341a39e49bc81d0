//! The tools the test servers offer.

use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};

/// Arguments naming a note.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NoteArgs {
    /// The note's name.
    pub name: String,
}

/// Arguments of `long_report`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct LongArgs {
    /// How many characters to return.
    pub chars: usize,
}

/// Arguments of `slow`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SlowArgs {
    /// How long to take, in milliseconds.
    pub ms: u64,
}

/// A notes server. `owner` (from the environment of the stdio binary, `NOTES_OWNER`) shows
/// up in every note, so tests see that configured environment reached the server.
#[derive(Debug, Clone)]
pub struct Notes {
    owner: String,
    tool_router: ToolRouter<Self>,
}

impl Notes {
    /// A notes server whose notes are signed by `owner`.
    pub fn new(owner: &str) -> Self {
        Self { owner: owner.to_string(), tool_router: Self::tool_router() }
    }
}

#[tool_router]
impl Notes {
    /// Reads a note.
    #[tool(description = "Read one of the team's notes by name")]
    fn read_note(&self, Parameters(NoteArgs { name }): Parameters<NoteArgs>) -> String {
        format!("note {name} (kept by {}): rotate the on-call pager on Mondays", self.owner)
    }

    /// Deletes a note (tests deny it).
    #[tool(description = "Delete a note")]
    fn delete_note(&self, Parameters(NoteArgs { name }): Parameters<NoteArgs>) -> String {
        format!("deleted {name}")
    }

    /// A result longer than a model should read whole.
    #[tool(description = "Return a report of the given length")]
    fn long_report(&self, Parameters(LongArgs { chars }): Parameters<LongArgs>) -> String {
        "x".repeat(chars.min(5_000_000))
    }

    /// Takes its time.
    #[tool(description = "Answer after the given delay")]
    async fn slow(&self, Parameters(SlowArgs { ms }): Parameters<SlowArgs>) -> String {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        format!("slept {ms} ms")
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Notes {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// Arguments of `lookup`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct LookupArgs {
    /// The term to look up.
    pub term: String,
}

/// A structured answer.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Entry {
    /// The term looked up.
    pub term: String,
    /// Its definition.
    pub definition: String,
    /// How many documents mention it.
    pub documents: u32,
}

/// A knowledge-base server with a structured-result tool.
#[derive(Debug, Clone)]
pub struct KnowledgeBase {
    tool_router: ToolRouter<Self>,
}

impl Default for KnowledgeBase {
    fn default() -> Self {
        Self { tool_router: Self::tool_router() }
    }
}

#[tool_router]
impl KnowledgeBase {
    /// Looks a term up (structured result).
    #[tool(description = "Look a term up in the knowledge base")]
    fn lookup(&self, Parameters(LookupArgs { term }): Parameters<LookupArgs>) -> Json<Entry> {
        Json(Entry {
            definition: format!("{term} is a Kubernetes-native control plane for AI agents"),
            term,
            documents: 42,
        })
    }

    /// Deletes everything (tests deny it).
    #[tool(description = "Delete every entry of the knowledge base")]
    fn purge(&self) -> String {
        "purged every entry".into()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for KnowledgeBase {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}
