//! `sympozium-mcp-bridge`: parses its configuration and runs the selected mode.

use clap::Parser;
use sympozium_mcp_bridge::settings::{Cli, run};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .json()
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    run(cli, std::env::vars().collect()).await
}
