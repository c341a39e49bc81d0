//! `sympozium-webhook`: the admission webhook binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use sympozium_telemetry::TelemetryArgs;

/// Validates AgentRuns against their SympoziumPolicy.
#[derive(Debug, Parser)]
#[command(name = "sympozium-webhook", version)]
struct Args {
    /// Address to serve HTTPS on.
    #[arg(long, env = "WEBHOOK_BIND_ADDRESS", default_value = "0.0.0.0:9443")]
    bind: SocketAddr,
    /// PEM certificate chain.
    #[arg(long, env = "WEBHOOK_CERT_FILE", default_value = "/tmp/k8s-webhook-server/serving-certs/tls.crt")]
    cert_file: PathBuf,
    /// PEM private key.
    #[arg(long, env = "WEBHOOK_KEY_FILE", default_value = "/tmp/k8s-webhook-server/serving-certs/tls.key")]
    key_file: PathBuf,
    /// Generate a CA and serving certificate for these hosts when the files are missing.
    #[arg(long, value_delimiter = ',')]
    generate_certificate_for: Vec<String>,
    /// Namespace of the built-in SkillPacks.
    #[arg(long, env = "SYMPOZIUM_SYSTEM_NAMESPACE", default_value = "sympozium-system")]
    system_namespace: String,
    /// Kubeconfig (in-cluster configuration when unset).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = sympozium_webhook::Config {
        bind: args.bind,
        cert_file: args.cert_file,
        key_file: args.key_file,
        generate_for: args.generate_certificate_for,
        kubeconfig: args.kubeconfig,
        system_namespace: args.system_namespace,
    };
    let flush = std::time::Duration::from_secs(5);
    sympozium_telemetry::instrumented("sympozium-webhook", args.telemetry, std::env::vars(), flush, async {
        Ok(sympozium_webhook::run(config).await?)
    })
    .await
}
