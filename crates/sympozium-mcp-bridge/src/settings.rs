//! Command line and environment of the binary (parsed in `main.rs`) and the mode it runs in.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::adapter::{AdapterConfig, parse_args};
use crate::bridge::{Bridge, Settings, serve, write_atomic};
use crate::client::EnvLookup;
use crate::config::ServersFile;
use sympozium_protocol::env as vars;
use sympozium_protocol::ipc;

/// MCP bridge for agent pods and stdio adapter for MCPServer pods.
#[derive(Parser, Debug, Clone)]
#[command(name = "sympozium-mcp-bridge", version, about)]
pub struct Cli {
    /// The run's server list.
    #[arg(long, env = vars::MCP_CONFIG_PATH, default_value = "/config/mcp-servers.yaml")]
    pub config_path: PathBuf,
    /// Directory of request and result files shared with the runner.
    #[arg(long, env = vars::MCP_IPC_PATH, default_value = "/ipc/tools")]
    pub ipc_path: PathBuf,
    /// Where the tool manifest is written.
    #[arg(long, env = vars::MCP_MANIFEST_PATH, default_value = "/ipc/tools/mcp-tools.json")]
    pub manifest_path: PathBuf,
    /// The AgentRun (for logs).
    #[arg(long, env = vars::AGENT_RUN_ID, default_value = "")]
    pub agent_run_id: String,
    /// Discover, write the manifest and exit (the `mcp-discover` init container).
    #[arg(long, env = vars::MCP_DISCOVER_ONLY, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub discover_only: bool,
    /// Discovery attempts per server (a server still down after them is skipped: its tools
    /// are missing from the run).
    #[arg(long, env = vars::MCP_DISCOVERY_ATTEMPTS, default_value_t = crate::bridge::DISCOVERY_ATTEMPTS)]
    pub discovery_attempts: u32,
    /// Pause between two discovery attempts, in milliseconds.
    #[arg(long, env = vars::MCP_DISCOVERY_INTERVAL_MS, default_value_t = 10_000)]
    pub discovery_interval_ms: u64,
    /// Connect + handshake budget, in seconds.
    #[arg(long, env = vars::MCP_CONNECT_TIMEOUT, default_value_t = 10)]
    pub connect_timeout_secs: u64,
    /// Longest tool result handed to the runner, in characters (the rest is cut with a note).
    #[arg(long, env = vars::MCP_MAX_RESULT_CHARS, default_value_t = 7000)]
    pub max_result_chars: usize,
    /// Run as the stdio adapter of an MCPServer pod.
    #[arg(long = "stdio-adapter", env = vars::MCP_STDIO_ADAPTER, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub stdio_adapter: bool,
    /// Adapter: the stdio server's program.
    #[arg(long, env = vars::STDIO_CMD, default_value = "")]
    pub stdio_cmd: String,
    /// Adapter: its arguments (a JSON array of strings, or comma-separated).
    #[arg(long, env = vars::STDIO_ARGS, default_value = "")]
    pub stdio_args: String,
    /// Adapter: server name.
    #[arg(long, env = vars::STDIO_SERVER_NAME, default_value = "mcp-server")]
    pub stdio_server_name: String,
    /// Adapter: HTTP port.
    #[arg(long, env = vars::STDIO_PORT, default_value_t = 8080)]
    pub stdio_port: u16,
    /// Copy this program into DIR as `mcp-bridge` and exit (the `inject-adapter` init
    /// container of stdio MCPServer pods; images have no shell to copy with).
    #[arg(long, value_name = "DIR")]
    pub install_to: Option<PathBuf>,
}

/// Runs the selected mode. `env` is the process environment (the adapter passes
/// `STDIO_ENV_<NAME>` on as `<NAME>` and a few basics; nothing else).
pub async fn run(cli: Cli, env: Vec<(String, String)>) -> anyhow::Result<()> {
    if let Some(dir) = &cli.install_to {
        std::fs::create_dir_all(dir)?;
        let target = dir.join("mcp-bridge");
        std::fs::copy(std::env::current_exe()?, &target)?;
        tracing::info!(target = %target.display(), "installed the stdio adapter");
        return Ok(());
    }
    if cli.stdio_adapter {
        if cli.stdio_cmd.trim().is_empty() {
            anyhow::bail!("STDIO_CMD: the stdio server's command is required in adapter mode");
        }
        let child_env = env
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("STDIO_ENV_").filter(|k| !k.is_empty()).map(|k| (k.to_string(), v.clone()))
            })
            .collect();
        let config = AdapterConfig {
            name: cli.stdio_server_name.clone(),
            command: cli.stdio_cmd.clone(),
            args: parse_args(&cli.stdio_args)?,
            env: child_env,
            inherited_env: env,
            listen: ([0, 0, 0, 0], cli.stdio_port).into(),
        };
        crate::adapter::run(config, sympozium_telemetry::shutdown::shutdown_signal(None)).await?;
        return Ok(());
    }
    let file = ServersFile::load(&cli.config_path)?;
    if file.servers.is_empty() {
        tracing::info!(path = %cli.config_path.display(), "no MCP servers configured");
        return Ok(());
    }
    let settings = Settings {
        connect_timeout: Duration::from_secs(cli.connect_timeout_secs.max(1)),
        discovery_attempts: cli.discovery_attempts.max(1),
        discovery_interval: Duration::from_millis(cli.discovery_interval_ms),
        max_result_chars: cli.max_result_chars.max(100),
        ..Settings::default()
    };
    let vars: std::collections::HashMap<String, String> = env.into_iter().collect();
    let lookup: EnvLookup = Arc::new(move |k: &str| vars.get(k).cloned());
    let bridge = Arc::new(Bridge::new(&file, lookup, settings));
    let manifest = bridge.discover().await;
    write_atomic(&cli.manifest_path, &serde_json::to_value(&manifest)?)?;
    tracing::info!(run = %cli.agent_run_id, tools = manifest.tools.len(), unavailable = manifest.unavailable.len(),
        "wrote the MCP tool manifest");
    if cli.discover_only {
        return Ok(());
    }
    let done = cli.ipc_path.join("..").join(ipc::OUTPUT).join(ipc::RESULT);
    serve(bridge, cli.ipc_path.clone(), done, sympozium_telemetry::shutdown::shutdown_signal(None)).await?;
    tracing::info!(run = %cli.agent_run_id, "the run finished; MCP bridge exiting");
    Ok(())
}
