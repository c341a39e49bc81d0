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
    let cli = Cli::parse();
    let telemetry = sympozium_telemetry::init(
        "sympozium-node",
        &cli.telemetry.clone().with_secret_headers(std::env::vars()),
    )?;
    let config = cli.config;
    let kube_config = match &config.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    let parent = config.parent_pid;
    let shutdown = async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            () = async {
                let Some(pid) = parent else { return std::future::pending().await };
                while std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            } => {}
        }
    };
    let result = sympozium_node::run(config, kube_config, shutdown).await;
    telemetry.shutdown(std::time::Duration::from_secs(5));
    Ok(result?)
}
