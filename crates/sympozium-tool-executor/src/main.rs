//! `tool-executor`: the skill sidecar entry point.

use std::path::PathBuf;
use std::time::Duration;
use sympozium_protocol::env as vars;

use clap::Parser;
use sympozium_telemetry::TelemetryArgs;

/// The shared telemetry settings (`OTEL_*` variables).
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // Configured by the environment only; `--version` exists so an image can be checked
    // (`make images` runs it from the unpacked rootfs). Other arguments stay ignored, as
    // skill images may pass their own.
    if let Some("--version" | "-V") = std::env::args().nth(1).as_deref() {
        println!("tool-executor {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    // Telemetry settings come from the environment only (the arguments belong to the image).
    let cli = Cli::try_parse_from(["tool-executor"])?;
    let telemetry = sympozium_telemetry::init(
        "sympozium-tool-executor",
        &cli.telemetry.with_secret_headers(std::env::vars()),
    )?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let config = sympozium_tool_executor::Config {
        ipc_dir: env(vars::IPC_DIR).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/ipc")),
        skill: env(vars::SYMPOZIUM_SKILL),
        poll: Duration::from_millis(200),
        gh_token_file: Some(
            env("GH_TOKEN_FILE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/secrets/github-token/GH_TOKEN")),
        ),
    };
    let result = sympozium_tool_executor::run(config).await;
    // A loaded node can take seconds to connect and export the last batch; the pod waits.
    telemetry.shutdown(Duration::from_secs(5)).await;
    Ok(result?)
}
