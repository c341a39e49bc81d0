//! `sympozium-web-proxy`: parses its configuration and serves the instance's web endpoint.

use anyhow::Context as _;
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use sympozium_web_proxy::Config;
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
    anyhow::ensure!(
        !config.api_key.trim().is_empty(),
        "WEB_PROXY_API_KEY is empty: refusing to serve without a key"
    );
    anyhow::ensure!(!config.instance_name.trim().is_empty(), "INSTANCE_NAME is empty");
    let kube_config = match &config.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer().await.context("no in-cluster Kubernetes configuration")?,
    };
    let client = kube::Client::try_from(kube_config)?;
    sympozium_web_proxy::run(config, client).await?;
    Ok(())
}
