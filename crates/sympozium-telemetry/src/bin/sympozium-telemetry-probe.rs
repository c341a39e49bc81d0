//! `sympozium-telemetry-probe`: sends one test trace (a parent and a child span), one
//! counter and one log record through the shared telemetry init, then flushes — a quick
//! check that a collector endpoint, protocol and headers work, configured exactly like
//! every Sympozium component (the `OTEL_*` variables or the `--otel-*` flags).
//! Prints the trace id and how long flushing took as a JSON line on stdout.

use std::time::{Duration, Instant};

use clap::Parser;
use sympozium_telemetry::{TelemetryArgs, current_traceparent, init, meter, set_parent_from_traceparent};

#[derive(Debug, Parser)]
#[command(about = "Send a test trace, metric and log to an OTLP collector")]
struct Cli {
    #[command(flatten)]
    telemetry: TelemetryArgs,
    /// Continue this trace (a W3C `traceparent`) instead of starting a new one.
    #[arg(long, env = "TRACEPARENT", default_value = "")]
    traceparent: String,
    /// Longest time to wait for the final flush.
    #[arg(long, default_value = "5")]
    flush_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = cli.telemetry.clone().with_secret_headers(std::env::vars());
    let telemetry = init("sympozium-telemetry-probe", &args)?;
    let started = Instant::now();
    let root = tracing::info_span!("sympozium.probe", "probe.kind" = "test");
    set_parent_from_traceparent(&root, &cli.traceparent);
    let traceparent = {
        let _g = root.enter();
        let child = tracing::info_span!("sympozium.probe.child", "probe.step" = 1_i64);
        let _c = child.enter();
        tracing::info!(answer = 42_i64, "probe log record");
        meter()
            .u64_counter("sympozium.probe.count")
            .build()
            .add(1, &[opentelemetry::KeyValue::new("probe", "yes")]);
        current_traceparent()
    };
    drop(root);
    let recorded = started.elapsed();
    let flush = Instant::now();
    telemetry.shutdown(Duration::from_secs(cli.flush_seconds)).await;
    println!(
        "{}",
        serde_json::json!({
            "traceparent": traceparent,
            "record_ms": recorded.as_millis() as u64,
            "shutdown_ms": flush.elapsed().as_millis() as u64,
        })
    );
    Ok(())
}
