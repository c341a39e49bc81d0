//! `sympozium-web-proxy`: parses its configuration and serves the instance's web endpoint.

use anyhow::Context as _;
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use sympozium_telemetry::TelemetryArgs;
use sympozium_web_proxy::Config;

/// The binary's configuration plus the shared telemetry settings.
#[derive(Debug, Parser)]
#[command(name = "sympozium-web-proxy", version, about = "Serves an instance's web endpoint")]
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
        "sympozium-web-proxy",
        &cli.telemetry.clone().with_secret_headers(std::env::vars()),
    )?;
    let config = cli.config;
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
    let result = sympozium_web_proxy::run(config, client).await;
    telemetry.shutdown(std::time::Duration::from_secs(5));
    Ok(result?)
}
