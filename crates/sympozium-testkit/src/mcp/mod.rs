//! Real MCP servers for tests, written with rmcp (the official Rust MCP SDK): a notes server
//! (served over stdio by the `sympozium-testkit-mcp` binary, or in-process), a knowledge-base
//! server over Streamable HTTP with an optional bearer token, and the older HTTP+SSE transport
//! for either.

mod http;
mod servers;
mod sse;

pub use http::McpHttpServer;
pub use servers::{KnowledgeBase, Notes};
pub use sse::McpSseServer;
