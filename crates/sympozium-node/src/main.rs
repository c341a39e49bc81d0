//! `sympozium-node`: parses flags and environment, then runs the node until SIGTERM or SIGINT.

use clap::Parser;
use sympozium_node::Config;
use sympozium_telemetry::TelemetryArgs;

/// The binary's configuration plus the shared telemetry settings.
#[derive(Debug, Parser)]
#[command(
    name = "sympozium-node",
    version,
    about = "A local Kubernetes node that runs agent pods as processes"
)]
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
    sympozium_telemetry::instrumented("sympozium-node", telemetry, std::env::vars(), flush, async {
        let kube_config = sympozium_kube::process::kube_config(config.kubeconfig.as_deref()).await?;
        let shutdown = sympozium_telemetry::shutdown::shutdown_signal(config.parent_pid);
        Ok(sympozium_node::run(config, kube_config, shutdown).await?)
    })
    .await
}
