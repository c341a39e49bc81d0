//! `sympozium-mcp-bridge`: parses its configuration and runs the selected mode.

use clap::Parser;
use sympozium_mcp_bridge::settings::{Cli as Config, run};
use sympozium_telemetry::TelemetryArgs;

/// The binary's configuration plus the shared telemetry settings.
#[derive(Debug, Parser)]
#[command(
    name = "sympozium-mcp-bridge",
    version,
    about = "MCP bridge for agent pods and stdio adapter for MCPServer pods"
)]
struct BridgeCli {
    #[command(flatten)]
    config: Config,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let BridgeCli { config, telemetry } = BridgeCli::parse();
    let flush = std::time::Duration::from_secs(3);
    sympozium_telemetry::instrumented(
        "sympozium-mcp-bridge",
        telemetry,
        std::env::vars(),
        flush,
        run(config, std::env::vars().collect()),
    )
    .await
}
