//! `make soak`: chat users write MESSAGES messages to INSTANCES instances over Telegram,
//! Slack and Discord (the testkit fakes) while NATS restarts, channel pods and controller
//! replicas are killed at random; then every message must have exactly one reply and every
//! AgentRun a terminal phase. Prints a table and exits non-zero when anything was lost or
//! doubled. `SOAK_ARGS="--messages 60 --instances 3"` runs a small one. Never part of
//! `make test` (its small variant is `tests/soak.rs`).
//!
//! Uses the test plane of `TESTPLANE_KUBECONFIG` (or starts one) and the debug binaries of
//! `sympozium-controller` and `sympozium-channel` (`make soak` builds them).

mod engine;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Soak run of the chat path under faults.
#[derive(Debug, Parser)]
struct Args {
    /// Chat messages to send.
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// Instances, each with one channel (Telegram, Slack, Discord in turn).
    #[arg(long, default_value_t = 20)]
    instances: usize,
    /// Faults to inject at random moments (NATS restart, channel pod kill, controller kill -9 in turn).
    #[arg(long, default_value_t = 9)]
    faults: usize,
    /// Messages per second.
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    /// Seed of the fault schedule.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Seconds without any new reply, after the last message, before giving up waiting.
    #[arg(long, default_value_t = 120)]
    settle: u64,
    /// Directory of the binaries (default: <target>/debug).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where the components' logs go (default: <target>/soak).
    #[arg(long)]
    log_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| sympozium_testkit::repo_root().join("target"));
    let log_dir = args.log_dir.unwrap_or_else(|| target.join("soak").join(std::process::id().to_string()));
    let opts = engine::Options {
        messages: args.messages,
        instances: args.instances.max(1),
        faults: args.faults,
        rate: args.rate,
        seed: args.seed,
        settle: Duration::from_secs(args.settle),
        bin_dir: args.bin_dir.unwrap_or_else(|| target.join("debug")),
        log_dir: log_dir.clone(),
        shared_namespace: false,
    };
    eprintln!(
        "soak: {} messages, {} instances, {} faults, {}/s; logs in {}",
        opts.messages,
        opts.instances,
        opts.faults,
        opts.rate,
        log_dir.display()
    );
    let report = engine::run(opts).await?;
    println!("{}", report.table());
    if !report.clean() {
        anyhow::bail!(
            "the soak lost, doubled or left unfinished something (see the table; logs in {})",
            log_dir.display()
        );
    }
    Ok(())
}
