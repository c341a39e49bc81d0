//! `tool-executor`: the skill sidecar entry point.

use std::path::PathBuf;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // Configured by the environment only; `--version` exists so an image can be checked
    // (`make images` runs it from the unpacked rootfs). Other arguments stay ignored, as
    // skill images may pass their own.
    if let Some("--version" | "-V") = std::env::args().nth(1).as_deref() {
        println!("tool-executor {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let config = sympozium_tool_executor::Config {
        ipc_dir: env("IPC_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/ipc")),
        skill: env("SYMPOZIUM_SKILL"),
        poll: Duration::from_millis(200),
        gh_token_file: Some(
            env("GH_TOKEN_FILE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/secrets/github-token/GH_TOKEN")),
        ),
    };
    sympozium_tool_executor::run(config).await?;
    Ok(())
}
