//! `sympozium-ipc-bridge`: parses its configuration and runs the bridge.

use clap::Parser;
use sympozium_ipc_bridge::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .json()
        .with_writer(std::io::stderr)
        .init();
    let config = Config::parse();
    sympozium_ipc_bridge::run(config).await?;
    Ok(())
}
