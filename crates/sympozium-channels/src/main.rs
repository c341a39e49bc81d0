//! `sympozium-channel <type>`: parses its configuration and runs one channel.

use clap::Parser;
use sympozium_channels::config::Config;
use sympozium_telemetry::TelemetryArgs;

/// The binary's configuration plus the shared telemetry settings.
#[derive(Debug, Parser)]
#[command(name = "sympozium-channel", version, about = "Runs one chat channel")]
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
    sympozium_telemetry::instrumented("sympozium-channel", telemetry, std::env::vars(), flush, async {
        let mut running = sympozium_channels::start(config).await?;
        tokio::select! {
            () = running.wait() => anyhow::bail!("a channel task stopped unexpectedly"),
            () = sympozium_telemetry::shutdown::shutdown_signal(None) => {}
        }
        running.shutdown().await;
        Ok(())
    })
    .await
}
