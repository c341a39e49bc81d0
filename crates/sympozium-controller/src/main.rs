//! `sympozium-controller`: parses its configuration and runs the controller manager.

use clap::Parser;
use sympozium_controller::config::Config;
use sympozium_telemetry::TelemetryArgs;

/// The binary's configuration plus the shared telemetry settings.
#[derive(Debug, Parser)]
#[command(name = "sympozium-controller", version, about = "The Sympozium controller manager")]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { config, telemetry } = Cli::parse();
    // Leader hand-over and the last reconciles' spans are worth waiting for at exit.
    let flush = std::time::Duration::from_secs(30);
    sympozium_telemetry::instrumented("sympozium-controller", telemetry, std::env::vars(), flush, async {
        Ok(sympozium_controller::run(config).await?)
    })
    .await
}
