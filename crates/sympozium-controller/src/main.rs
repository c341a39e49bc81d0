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
    let cli = Cli::parse();
    let telemetry = sympozium_telemetry::init(
        "sympozium-controller",
        &cli.telemetry.clone().with_secret_headers(std::env::vars()),
    )?;
    let config = cli.config;
    let result = sympozium_controller::run(config).await;
    telemetry.shutdown(std::time::Duration::from_secs(30));
    Ok(result?)
}
