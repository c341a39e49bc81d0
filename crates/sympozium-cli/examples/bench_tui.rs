//! TUI responsiveness: input-to-frame latency with 500 instances and 5,000 runs.
//!
//! The objects are fed to the app state directly (as the worker would after a relist);
//! each sample is one key press handled by `App::on_key` plus one full frame drawn on
//! ratatui's `TestBackend` (200×50), which is the work between a key and the next frame.
//! Prints p50/p99/max per scenario. Run with `make bench-tui`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_cli::tui::app::App;
use sympozium_cli::tui::data::{Connection, Update};
use sympozium_cli::tui::render;

const INSTANCES: usize = 500;
const RUNS: usize = 5_000;
const SAMPLES: usize = 300;

/// The instances and runs of the benchmark.
type Fixtures = (Vec<Arc<SympoziumInstance>>, Vec<Arc<AgentRun>>);

fn fixtures() -> anyhow::Result<Fixtures> {
    let now = jiff::Timestamp::now();
    let mut instances = Vec::with_capacity(INSTANCES);
    for i in 0..INSTANCES {
        let created = (now - jiff::SignedDuration::from_mins(i as i64)).to_string();
        instances.push(Arc::new(serde_json::from_value(json!({
            "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
            "metadata": {"name": format!("agent-{i:03}"), "namespace": "bench", "creationTimestamp": created},
            "spec": {"agents": {"default": {"model": "gpt-4o"}},
                     "authRefs": [{"provider": "openai", "secret": "k"}],
                     "skills": [{"skillPackRef": "k8s-ops"}, {"skillPackRef": "memory"}],
                     "channels": [{"type": "slack", "configRef": {"secret": "s"}}]},
            "status": {"phase": "Running", "activeAgentPods": 1,
                       "channels": [{"type": "slack", "status": "Connected"}]}
        }))?));
    }
    let mut runs = Vec::with_capacity(RUNS);
    for r in 0..RUNS {
        let created = (now - jiff::SignedDuration::from_secs(r as i64 * 7)).to_string();
        let phase = ["Succeeded", "Failed", "Running", "Pending"][r % 4];
        runs.push(Arc::new(serde_json::from_value(json!({
            "apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
            "metadata": {"name": format!("agent-{:03}-run-{r:05}", r % INSTANCES), "namespace": "bench",
                         "creationTimestamp": created,
                         "labels": {"sympozium.ai/instance": format!("agent-{:03}", r % INSTANCES)}},
            "spec": {"instanceRef": format!("agent-{:03}", r % INSTANCES), "agentId": "primary",
                     "sessionKey": "s", "task": "Check the cluster and report anything unusual.",
                     "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "k"}},
            "status": {"phase": phase, "result": "All pods healthy.",
                       "tokenUsage": {"inputTokens": 900, "outputTokens": 40, "totalTokens": 940,
                                      "toolCalls": 2, "durationMs": 3100}}
        }))?));
    }
    Ok((instances, runs))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn scenario(
    name: &str,
    app: &mut App,
    terminal: &mut Terminal<TestBackend>,
    keys: &[KeyCode],
) -> anyhow::Result<()> {
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let key = KeyEvent::new(keys[i % keys.len()], KeyModifiers::NONE);
        let start = Instant::now();
        app.on_key(key);
        terminal.draw(|f| render::draw(f, app))?;
        samples.push(start.elapsed());
    }
    samples.sort();
    println!(
        "{name:<38} p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let (instances, runs) = fixtures()?;
    let mut app = App::new("bench", jiff::Timestamp::now());
    app.update(Update::Connection(Connection::Connected));
    app.update(Update::Instances(instances.clone()));
    app.update(Update::Runs(runs.clone()));
    let mut terminal = Terminal::new(TestBackend::new(200, 50))?;
    println!(
        "TUI input-to-frame latency, {INSTANCES} instances, {RUNS} runs, {SAMPLES} key presses each, 200x50"
    );
    scenario("Instances: move down (j)", &mut app, &mut terminal, &[KeyCode::Char('j')])?;
    app.on_key(KeyEvent::new(KeyCode::Char('3'), KeyModifiers::NONE));
    scenario("Runs: move down (j)", &mut app, &mut terminal, &[KeyCode::Char('j')])?;
    scenario(
        "switch views (2, 3, 6, 9)",
        &mut app,
        &mut terminal,
        &[KeyCode::Char('2'), KeyCode::Char('3'), KeyCode::Char('6'), KeyCode::Char('9')],
    )?;
    // A relist landing between key presses (the worker replaced the whole run list).
    let mut samples = Vec::with_capacity(SAMPLES);
    app.on_key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::NONE));
    for _ in 0..SAMPLES {
        let start = Instant::now();
        app.update(Update::Runs(runs.clone()));
        terminal.draw(|f| render::draw(f, &app))?;
        samples.push(start.elapsed());
    }
    samples.sort();
    println!(
        "{:<38} p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}",
        "update of 5,000 runs -> frame",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
    Ok(())
}
