//! `sympozium-apiserver`: parses its configuration and serves the API and dashboard
//! (see `sympozium_apiserver::serve`).

use clap::Parser;
use sympozium_apiserver::Config;
use sympozium_telemetry::TelemetryArgs;

/// The server's flags plus the shared telemetry settings.
#[derive(Parser)]
#[command(name = "sympozium-apiserver", version, about = "Sympozium's REST/WebSocket API and web dashboard")]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { config, telemetry } = Cli::parse();
    let flush = std::time::Duration::from_secs(5);
    sympozium_telemetry::instrumented("sympozium-apiserver", telemetry, std::env::vars(), flush, async {
        Ok(sympozium_apiserver::serve::run(config).await?)
    })
    .await
}
