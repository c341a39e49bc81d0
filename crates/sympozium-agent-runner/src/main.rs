//! `sympozium-agent-runner`: parses configuration, runs the agent, prints the result marker
//! (on every path, including configuration errors) and exits 0 on success, 1 on failure.

use std::io::Write;
use std::path::PathBuf;
use sympozium_protocol::env as vars;

use clap::Parser;
use sympozium_agent_runner::config::{Args, Config};
use sympozium_agent_runner::llm::AwsCredentials;
use sympozium_agent_runner::output::{Stats, result_json, result_marker, write_result};
use sympozium_agent_runner::prompt::{MEMORY_END, MEMORY_START};
use sympozium_agent_runner::run;
use sympozium_telemetry::TelemetryArgs;

/// The runner's flags plus the shared telemetry settings.
#[derive(Parser)]
#[command(name = "sympozium-agent-runner", version, about = "Runs one agent task against an LLM")]
struct Cli {
    #[command(flatten)]
    args: Args,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// Reports a failure that happened before a run could start.
fn fail_early(message: &str) -> ! {
    let ipc = std::env::var_os(vars::IPC_DIR)
        .map_or_else(|| PathBuf::from(sympozium_protocol::ipc::DEFAULT_ROOT), PathBuf::from);
    let result = result_json(&Err(message.to_string()), Stats::default(), std::time::Duration::ZERO);
    // Best effort: the directory may not exist outside a pod; the marker below still reports.
    let _ = write_result(&ipc, &result);
    print!("{}", result_marker(&result));
    let _ = std::io::stdout().flush();
    std::process::exit(1);
}

fn main() {
    // The runner holds the model's API key in its environment and memory. Not dumpable,
    // its /proc/<pid>/environ, mem and root belong to root and refuse every other process —
    // including tool commands running as the same user where containers share a PID
    // namespace (shareProcessNamespace, or a node without per-container PID namespaces).
    if let Err(e) = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable) {
        fail_early(&format!("making the runner non-dumpable (PR_SET_DUMPABLE): {e}"));
    }
    let (args, telemetry_args) = match Cli::try_parse() {
        Ok(cli) => (cli.args, cli.telemetry.with_secret_headers(std::env::vars())),
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            e.exit()
        }
        Err(e) => fail_early(&format!("invalid configuration: {}", e.render().to_string().trim())),
    };
    let fallback_keys: Vec<String> = match Config::fallbacks(&args.model_fallbacks) {
        Ok(list) => list
            .iter()
            .map(|f| if f.api_key_env.is_empty() { String::new() } else { env(&f.api_key_env) })
            .collect(),
        Err(e) => fail_early(&e.to_string()),
    };
    let config = match Config::from_args(args, &fallback_keys) {
        Ok(c) => c,
        Err(e) => fail_early(&e.to_string()),
    };
    let aws = AwsCredentials {
        access_key_id: env("AWS_ACCESS_KEY_ID"),
        secret_access_key: env("AWS_SECRET_ACCESS_KEY"),
        session_token: env("AWS_SESSION_TOKEN"),
        region: if env("AWS_REGION").is_empty() { env("AWS_DEFAULT_REGION") } else { env("AWS_REGION") },
        role_arn: env("AWS_ROLE_ARN"),
        web_identity_token_file: env("AWS_WEB_IDENTITY_TOKEN_FILE"),
        sts_endpoint: env("AWS_ENDPOINT_URL_STS"),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => fail_early(&format!("starting runtime: {e}")),
    };
    // Inside the runtime: OTLP over gRPC keeps its connection on it.
    let telemetry = {
        let _entered = runtime.enter();
        match sympozium_telemetry::init("sympozium-agent-runner", &telemetry_args) {
            Ok(t) => t,
            Err(e) => fail_early(&format!("telemetry: {e}")),
        }
    };
    let report = runtime.block_on(run(config, aws));
    // Spans of the run reach the collector before the pod ends (bounded: a collector that
    // is down costs at most this budget).
    // A loaded node can take seconds to connect and export the last batch; the pod waits.
    runtime.block_on(telemetry.shutdown(std::time::Duration::from_secs(5)));
    let mut stdout = std::io::stdout().lock();
    if let Some(memory) = &report.memory {
        let _ = write!(stdout, "\n{MEMORY_START}{memory}{MEMORY_END}\n");
    }
    let _ = write!(stdout, "{}", result_marker(&report.result));
    let _ = stdout.flush();
    drop(stdout);
    std::process::exit(report.exit_code);
}
