//! `sympozium-mcp-bridge`: MCP for agent pods, on rmcp (the official Rust MCP SDK).
//!
//! * **Bridge** (sidecar `mcp-bridge`, init container `mcp-discover`): connects to the run's
//!   MCP servers (Streamable HTTP, or the older HTTP+SSE), publishes their tools to the agent
//!   runner as `<prefix>_<tool>` in `mcp-tools.json`, and answers the runner's
//!   `mcp-request-<id>.json` files with `mcp-result-<id>.json` (see [`bridge`]).
//! * **Stdio adapter** (MCPServer pods of `transportType: stdio`): runs a stdio MCP server and
//!   serves it over Streamable HTTP (see [`adapter`]).
//! * [`client`] is also what the controller uses to discover an MCPServer's tools.

pub mod adapter;
pub mod bridge;
pub mod client;
pub mod config;
pub mod content;
pub mod legacy_sse;
pub mod settings;

pub use bridge::{Bridge, Manifest, ManifestTool, Unavailable};
pub use config::{ServerConfig, ServersFile};
