//! MCP Servers: the tool servers agents can call, whether they answer, and how many tools
//! discovery found (the tool names are in the detail pane).

use kube::ResourceExt;
use sympozium_api::MCPServer;

use super::{Ctx, Table, Tone, or_dash, row};

/// `managed` (Sympozium runs it) or `external` (a URL), and the transport.
pub fn kind(m: &MCPServer) -> String {
    let transport = format!("{:?}", m.spec.transport_type).to_lowercase();
    let place = if m.spec.url.as_deref().is_some_and(|u| !u.is_empty()) { "external" } else { "managed" };
    format!("{transport} ({place})")
}

/// `NAME TRANSPORT READY URL TOOLS AGE`. A server whose last discovery failed is red even
/// while its pod is ready: agents would get no tools from it.
pub fn table(ctx: &Ctx<'_>) -> Table {
    let rows = ctx
        .scoped(&ctx.data.mcp_servers)
        .into_iter()
        .map(|m| {
            let status = m.status.clone().unwrap_or_default();
            let tone = if status.last_error.is_some() {
                Tone::Bad
            } else if status.ready {
                Tone::Good
            } else {
                Tone::Warn
            };
            row(
                m.as_ref(),
                vec![
                    m.name_any(),
                    kind(m),
                    if status.ready { "yes".into() } else { "no".into() },
                    or_dash(status.url.or_else(|| m.spec.url.clone()).unwrap_or_default()),
                    status.tool_count.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
                    ctx.age(m.metadata.creation_timestamp.as_ref()),
                ],
                tone,
            )
        })
        .collect();
    Table { headers: vec!["NAME", "TRANSPORT", "READY", "URL", "TOOLS", "AGE"], rows, ..Table::default() }
}
