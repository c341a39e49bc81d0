//! `sympozium-controller`: parses its configuration and runs the controller manager.

use clap::Parser;
use sympozium_controller::config::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn")),
        )
        .json()
        .init();
    let config = Config::parse();
    sympozium_controller::run(config).await?;
    Ok(())
}
