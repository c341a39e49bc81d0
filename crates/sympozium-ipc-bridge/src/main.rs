//! `sympozium-ipc-bridge`: parses its configuration and runs the bridge.

use clap::Parser;
use sympozium_ipc_bridge::Config;
use sympozium_telemetry::TelemetryArgs;

/// The binary's configuration plus the shared telemetry settings.
#[derive(Debug, Parser)]
#[command(name = "sympozium-ipc-bridge", version, about = "The IPC bridge of an agent run")]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { config, telemetry } = Cli::parse();
    let flush = std::time::Duration::from_secs(3);
    sympozium_telemetry::instrumented("sympozium-ipc-bridge", telemetry, std::env::vars(), flush, async {
        Ok(sympozium_ipc_bridge::run(config).await?)
    })
    .await
}
