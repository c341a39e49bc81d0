//! TUI responsiveness: input-to-frame latency with 500 instances and 5,000 runs.
//!
//! The objects are fed to the app state directly (as the worker would after a relist);
//! each sample is one key press handled by `App::on_key` plus one full frame drawn on
//! ratatui's `TestBackend` (200×50), which is the work between a key and the next frame.
//! Prints p50/p99/max per scenario. Run with `make bench-tui`.
//!
//! `--cluster` (`make bench-tui-cluster`): the same objects are created on the test control
//! plane and reach the app through the TUI's own worker (its watches), and runs keep changing
//! while keys are pressed; each sample is then the event loop's whole work: the watch updates
//! that arrived, the key, and the frame.

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
    scenario_with_updates(name, app, terminal, keys, Duration::ZERO, &mut |_| {})
}

/// Like [`scenario`], with `gap` between key presses (not timed) and what `pending` has
/// (watch updates) applied before each key, as the TUI's event loop does.
fn scenario_with_updates(
    name: &str,
    app: &mut App,
    terminal: &mut Terminal<TestBackend>,
    keys: &[KeyCode],
    gap: Duration,
    pending: &mut dyn FnMut(&mut App),
) -> anyhow::Result<()> {
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let key = KeyEvent::new(keys[i % keys.len()], KeyModifiers::NONE);
        std::thread::sleep(gap);
        let start = Instant::now();
        pending(app);
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
    if std::env::args().any(|a| a == "--cluster") {
        return tokio::runtime::Runtime::new()?.block_on(in_cluster());
    }
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

/// The objects as a client creates them: no status, namespace or timestamps.
fn bare<K: Clone + kube::Resource>(o: &K, ns: &str) -> K {
    let mut o = o.clone();
    let meta = o.meta_mut();
    meta.namespace = Some(ns.to_string());
    meta.creation_timestamp = None;
    o
}

async fn in_cluster() -> anyhow::Result<()> {
    use futures::{StreamExt, TryStreamExt};
    use kube::Api;
    use kube::api::{Patch, PatchParams, PostParams};

    let plane = sympozium_testkit::TestPlane::get()?;
    let client = plane.client().await?;
    let ns = plane.namespace(&client, "bench-tui").await?.name().to_string();
    let (instances, runs) = fixtures()?;
    let started = Instant::now();
    let inst_api: Api<SympoziumInstance> = Api::namespaced(client.clone(), &ns);
    futures::stream::iter(instances.iter().map(|i| {
        let mut o = bare(&**i, &ns);
        o.status = None;
        let api = inst_api.clone();
        async move { api.create(&PostParams::default(), &o).await }
    }))
    .buffer_unordered(16)
    .try_collect::<Vec<_>>()
    .await?;
    let run_api: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    futures::stream::iter(runs.iter().map(|r| {
        let mut o = bare(&**r, &ns);
        let status = o.status.take();
        let api = run_api.clone();
        async move {
            let name = o.metadata.name.clone().unwrap_or_default();
            api.create(&PostParams::default(), &o).await?;
            let body = json!({"status": status});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body)).await
        }
    }))
    .buffer_unordered(16)
    .try_collect::<Vec<_>>()
    .await?;
    println!("created {INSTANCES} instances and {RUNS} runs in namespace {ns} in {:.0?}", started.elapsed());

    // The TUI's own worker: cluster-wide watches feeding the app.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (_actions, actions_rx) = tokio::sync::mpsc::unbounded_channel();
    let worker = tokio::spawn(sympozium_cli::tui::worker::run(client.clone(), tx, actions_rx));
    let mut app = App::new(&ns, jiff::Timestamp::now());
    let in_ns = |m: &kube::api::ObjectMeta| m.namespace.as_deref() == Some(ns.as_str());
    let (mut seen_instances, mut seen_runs) = (0, 0);
    let loading = Instant::now();
    while seen_instances < INSTANCES || seen_runs < RUNS {
        anyhow::ensure!(
            loading.elapsed() < Duration::from_secs(180),
            "the watches did not deliver everything"
        );
        while let Ok(update) = rx.try_recv() {
            match &update {
                Update::Instances(v) => seen_instances = v.iter().filter(|i| in_ns(&i.metadata)).count(),
                Update::Runs(v) => seen_runs = v.iter().filter(|r| in_ns(&r.metadata)).count(),
                _ => {}
            }
            app.update(update);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("the watches delivered everything in {:.0?}", loading.elapsed());

    // Runs keep changing (about 20 status updates a second) while keys are pressed.
    let churn = tokio::spawn({
        let api = run_api.clone();
        async move {
            for i in 0usize.. {
                let name = format!("agent-{:03}-run-{:05}", i % INSTANCES, i % RUNS);
                let body = json!({"status": {"tokenUsage": {"inputTokens": i, "outputTokens": 1, "totalTokens": i + 1,
                    "toolCalls": 0, "durationMs": 1}}});
                let _ = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body)).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let mut terminal = Terminal::new(TestBackend::new(200, 50))?;
    let mut updates = 0usize;
    let mut pending = |app: &mut App| {
        while let Ok(update) = rx.try_recv() {
            updates += 1;
            app.update(update);
        }
    };
    println!(
        "TUI event loop latency in the cluster (watch updates + key + frame), {SAMPLES} key presses each, 200x50"
    );
    // Key presses 20 ms apart (a fast typist), so watch updates land between them.
    let gap = Duration::from_millis(20);
    scenario_with_updates(
        "Instances: move down (j)",
        &mut app,
        &mut terminal,
        &[KeyCode::Char('j')],
        gap,
        &mut pending,
    )?;
    app.on_key(KeyEvent::new(KeyCode::Char('3'), KeyModifiers::NONE));
    scenario_with_updates(
        "Runs: move down (j)",
        &mut app,
        &mut terminal,
        &[KeyCode::Char('j')],
        gap,
        &mut pending,
    )?;
    scenario_with_updates(
        "switch views (2, 3, 6, 9)",
        &mut app,
        &mut terminal,
        &[KeyCode::Char('2'), KeyCode::Char('3'), KeyCode::Char('6'), KeyCode::Char('9')],
        gap,
        &mut pending,
    )?;
    churn.abort();
    worker.abort();
    println!("watch updates applied during the key presses: {updates}");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    let _ = namespaces.delete(&ns, &Default::default()).await;
    Ok(())
}
