//! `sympozium-web-proxy`: parses its configuration and serves the instance's web endpoint.

use clap::Parser;
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
    let Cli { config, telemetry } = Cli::parse();
    let flush = std::time::Duration::from_secs(5);
    sympozium_telemetry::instrumented("sympozium-web-proxy", telemetry, std::env::vars(), flush, async {
        anyhow::ensure!(
            !config.api_key.trim().is_empty(),
            "WEB_PROXY_API_KEY is empty: refusing to serve without a key"
        );
        anyhow::ensure!(!config.instance_name.trim().is_empty(), "INSTANCE_NAME is empty");
        let kube_config = sympozium_kube::process::kube_config(config.kubeconfig.as_deref()).await?;
        let client = kube::Client::try_from(kube_config)?;
        Ok(sympozium_web_proxy::run(config, client).await?)
    })
    .await
}
