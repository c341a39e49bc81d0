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
    let cli = Cli::parse();
    let telemetry = sympozium_telemetry::init(
        "sympozium-apiserver",
        &cli.telemetry.with_secret_headers(std::env::vars()),
    )?;
    let result = sympozium_apiserver::serve::run(cli.config).await;
    telemetry.shutdown(std::time::Duration::from_secs(5));
    Ok(result?)
}
