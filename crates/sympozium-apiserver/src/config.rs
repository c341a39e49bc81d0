//! Command-line configuration of `sympozium-apiserver`.

use std::path::PathBuf;

/// `sympozium-apiserver` flags (each also from its environment variable).
#[derive(Clone, Debug, clap::Parser)]
#[command(name = "sympozium-apiserver", version, about = "Sympozium's REST/WebSocket API and web dashboard")]
pub struct Config {
    /// Listen address.
    #[arg(long, env = "SYMPOZIUM_API_ADDR", default_value = "0.0.0.0:8080")]
    pub addr: String,
    /// Event bus URL (streaming is off when it cannot be reached).
    #[arg(long, env = "EVENT_BUS_URL", default_value = "nats://nats.sympozium-system.svc:4222")]
    pub event_bus_url: String,
    /// The bus's operator user (`.creds` text or a file's path; the server only reads
    /// stream chunks).
    #[arg(long, env = "NATS_CREDS", hide_env_values = true)]
    pub event_bus_creds: Option<String>,
    /// The UI token; without it (and without `--token-from-secret`) the server refuses to start
    /// unless `--insecure-no-token` is given.
    #[arg(long, env = "SYMPOZIUM_UI_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Read the token from Secret `sympozium-ui-token` (key `token`) in the system namespace.
    #[arg(long, env = "SYMPOZIUM_UI_TOKEN_FROM_SECRET", default_value_t = false)]
    pub token_from_secret: bool,
    /// Serve without a token (local development only: anyone reaching the port is admin).
    #[arg(long, default_value_t = false)]
    pub insecure_no_token: bool,
    /// Namespace of Sympozium's own components.
    #[arg(long, env = "SYMPOZIUM_SYSTEM_NAMESPACE", default_value = "sympozium-system")]
    pub system_namespace: String,
    /// Bedrock endpoint for the model list instead of `https://bedrock.<region>.amazonaws.com`
    /// (e.g. a VPC interface endpoint); the AWS SDKs' variable name.
    #[arg(long, env = "AWS_ENDPOINT_URL_BEDROCK")]
    pub bedrock_endpoint: Option<String>,
    /// Kubeconfig to use instead of the in-cluster configuration.
    #[arg(long, env = "KUBECONFIG_PATH")]
    pub kubeconfig: Option<PathBuf>,
}
