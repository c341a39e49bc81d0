//! `sympozium-memory-server`: parses configuration and runs the server.

use anyhow::Context;
use clap::Parser;
use sympozium_memory::{Config, Server};
use sympozium_telemetry::TelemetryArgs;

/// The binary's configuration plus the shared telemetry settings.
#[derive(Debug, Parser)]
#[command(name = "sympozium-memory-server", version, about = "The Sympozium memory server")]
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
    sympozium_telemetry::instrumented("sympozium-memory-server", telemetry, std::env::vars(), flush, async {
        let server = Server::bind(&config)
            .await
            .with_context(|| format!("memory server failed to start (db {})", config.db_path.display()))?;
        // Tests and scripts read this line to learn the port when MEMORY_PORT=0.
        println!("listening on http://{}", server.local_addr());
        Ok(server.serve(sympozium_telemetry::shutdown::shutdown_signal(None)).await?)
    })
    .await
}
