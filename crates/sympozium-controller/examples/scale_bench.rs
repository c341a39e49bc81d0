//! The controller at scale, run as its own process against the test control plane:
//! N SympoziumInstances (1,000 by default) and P PersonaPacks of 7 personas (3) enabled at
//! once, then R AgentRuns (10,000) spread over the instances, whose pods the plane's fake
//! (kwok) node runs. Reports:
//!
//! - convergence: packs and instances created → all `Ready`/`Running`; runs created → all
//!   `Succeeded`/`Failed` (the fake node serves no logs, so each run settles from its exit
//!   code after the 30 s result grace period);
//! - API requests per object: kube-apiserver's `apiserver_request_total` on its `/metrics`
//!   before and after, by verb and resource (the whole cluster: the controller, and the
//!   Job/ReplicaSet controllers and the fake node acting on what it creates), and the
//!   controller's own `sympozium_api_requests_total`;
//! - the controller's CPU seconds and peak/settled RSS, from `/proc/<pid>`.
//!
//! `make bench-scale` (uses `TESTPLANE_KUBECONFIG`, or starts the test plane);
//! `BENCH_SCALE_ARGS="--instances 50 --runs 200"`. Never part of `make test`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::{AgentRun, PersonaPack, SympoziumInstance};
use sympozium_testkit::{TestPlane, procstat};

/// Controller scale benchmark on the test plane.
#[derive(Parser, Debug)]
struct Args {
    /// The controller binary (a release build).
    controller: PathBuf,
    /// SympoziumInstances created at once.
    #[arg(long, default_value_t = 1000)]
    instances: usize,
    /// AgentRuns created at once, spread round-robin over the instances.
    #[arg(long, default_value_t = 10_000)]
    runs: usize,
    /// PersonaPacks (7 personas each) enabled at once.
    #[arg(long, default_value_t = 3)]
    packs: usize,
    /// Longest wait for each phase to converge, in seconds.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// Requests in flight while creating objects.
    #[arg(long, default_value_t = 50)]
    parallel: usize,
}

struct Controller {
    child: Child,
    metrics: String,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start_controller(
    bin: &std::path::Path,
    kubeconfig: &std::path::Path,
    ns: &str,
) -> anyhow::Result<Controller> {
    let (metrics_port, health_port) = (free_port()?, free_port()?);
    let log = std::env::temp_dir().join(format!("scale-bench-{}.log", std::process::id()));
    let child = Command::new(bin)
        .args(["--kubeconfig", kubeconfig.to_str().context("kubeconfig path")?])
        .args(["--watch-namespace", ns, "--system-namespace", ns])
        .args(["--metrics-bind-address", &format!("127.0.0.1:{metrics_port}")])
        .args(["--health-probe-bind-address", &format!("127.0.0.1:{health_port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    println!("controller log: {}", log.display());
    Ok(Controller { child, metrics: format!("http://127.0.0.1:{metrics_port}/metrics") })
}

/// `(verb, resource[/subresource])` → requests, from a Prometheus exposition's `metric`
/// series (labels `verb`, `resource` and optionally `subresource`).
type Requests = BTreeMap<(String, String), f64>;

fn parse_requests(text: &str, metric: &str) -> Requests {
    let mut out = Requests::new();
    for line in text.lines().filter(|l| l.starts_with(&format!("{metric}{{"))) {
        let Some((labels, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let label = |name: &str| {
            let key = format!("{name}=\"");
            labels
                .find(&key)
                .map(|i| labels[i + key.len()..].split('"').next().unwrap_or_default().to_string())
        };
        let (Some(verb), Some(resource)) = (label("verb"), label("resource")) else { continue };
        let resource = match label("subresource").filter(|s| !s.is_empty()) {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource,
        };
        *out.entry((verb.to_lowercase(), resource)).or_default() += value;
    }
    out
}

async fn apiserver_requests(client: &Client) -> anyhow::Result<Requests> {
    let text = client.request_text(http::Request::get("/metrics").body(Vec::new())?).await?;
    Ok(parse_requests(&text, "apiserver_request_total"))
}

async fn controller_requests(ctl: &Controller) -> anyhow::Result<Requests> {
    let text = reqwest::get(&ctl.metrics).await?.text().await?;
    Ok(parse_requests(&text, "sympozium_api_requests_total"))
}

fn report(title: &str, before: &Requests, after: &Requests, objects: usize) {
    let mut rows: Vec<(String, f64)> = after
        .iter()
        .map(|(k, n)| (format!("{} {}", k.0, k.1), n - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, n)| *n > 0.0)
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = rows.iter().map(|r| r.1).sum();
    let per = |n: f64| n / objects.max(1) as f64;
    println!("{title}: {total:.0} requests, {:.2} per object ({objects} objects)", per(total));
    for (what, n) in rows.iter().filter(|(w, _)| !w.starts_with("watch ")).take(25) {
        println!("  {what:<48} {n:>9.0}  {:>7.3} per object", per(*n));
    }
}

/// Peak RSS since the last reset, sampled every 50 ms.
fn sample_rss(pid: u32, peak: Arc<Mutex<f64>>) {
    tokio::spawn(async move {
        loop {
            let rss = procstat::rss_mib(pid).unwrap_or(0.0);
            if let Ok(mut p) = peak.lock() {
                *p = p.max(rss);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

fn take_peak(peak: &Mutex<f64>) -> f64 {
    peak.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default()
}

fn cpu_seconds(pid: u32) -> f64 {
    procstat::cpu_ticks(pid).unwrap_or(0) as f64 / procstat::TICKS_PER_SECOND as f64
}

/// Watches `api` and records the names of objects for which `done` has held.
fn watch_done<K>(
    api: Api<K>,
    done: impl Fn(&K) -> bool + Send + 'static,
) -> Arc<Mutex<HashMap<String, Instant>>>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let out = seen.clone();
    tokio::spawn(async move {
        let mut stream =
            std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff().applied_objects());
        while let Some(item) = stream.next().await {
            if let Ok(obj) = item
                && done(&obj)
                && let Ok(mut s) = seen.lock()
            {
                s.entry(obj.name_any()).or_insert_with(Instant::now);
            }
        }
    });
    out
}

async fn wait_count(
    seen: &Mutex<HashMap<String, Instant>>,
    n: usize,
    what: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut reported = Instant::now();
    loop {
        let have = seen.lock().map(|s| s.len()).unwrap_or(0);
        if have >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what}: {have} of {n} within {timeout:?}");
        }
        if reported.elapsed() > Duration::from_secs(30) {
            println!("  … {what}: {have} of {n}");
            reported = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pack(name: &str) -> serde_json::Value {
    let personas: Vec<_> = (0..7)
        .map(|i| {
            json!({"name": format!("p{i}"), "systemPrompt": format!("You are persona {i}."),
                   "skills": ["k8s-ops"],
                   "schedule": {"type": "heartbeat", "interval": "1h", "task": "Check the cluster."},
                   "memory": {"enabled": true, "seeds": ["baseline"]}})
        })
        .collect();
    json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "PersonaPack", "metadata": {"name": name},
           "spec": {"enabled": true, "description": "scale bench", "personas": personas}})
}

fn instance(name: &str) -> serde_json::Value {
    json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance", "metadata": {"name": name},
           "spec": {"agents": {"default": {"model": "gpt-4o"}}}})
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.instances == 0 {
        bail!("--instances must be at least 1 (runs are spread over the instances)");
    }
    let timeout = Duration::from_secs(args.timeout);
    let plane = TestPlane::get()?;
    let client = plane.client().await?;
    let ns_guard = plane.namespace(&client, "bench-scale").await?;
    let ns = ns_guard.name().to_string();
    let ctl = start_controller(&args.controller, plane.kubeconfig(), &ns)?;
    let pid = ctl.child.id();
    let mut up = false;
    for _ in 0..400 {
        if reqwest::get(&ctl.metrics).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !up {
        bail!("the controller did not come up");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak = Arc::new(Mutex::new(0.0));
    sample_rss(pid, peak.clone());
    println!(
        "controller pid {pid}: idle RSS {:.1} MiB, {:.2} CPU s at start-up",
        procstat::rss_mib(pid).unwrap_or(0.0),
        cpu_seconds(pid)
    );
    let (api0, ctl0, cpu0) =
        (apiserver_requests(&client).await?, controller_requests(&ctl).await?, cpu_seconds(pid));

    // Phase 1: packs and instances at once.
    let pp = PatchParams::apply("bench").force();
    let packs_ready = watch_done(Api::<PersonaPack>::namespaced(client.clone(), &ns), |p: &PersonaPack| {
        p.status.as_ref().is_some_and(|s| s.phase.as_deref() == Some("Ready") && s.installed_count == 7)
    });
    let running =
        watch_done(Api::<SympoziumInstance>::namespaced(client.clone(), &ns), |i: &SympoziumInstance| {
            i.name_any().starts_with("inst-")
                && i.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    let packs: Api<PersonaPack> = Api::namespaced(client.clone(), &ns);
    for i in 0..args.packs {
        let name = format!("pack-{i}");
        packs.patch(&name, &pp, &Patch::Apply(pack(&name))).await?;
    }
    let instances: Api<SympoziumInstance> = Api::namespaced(client.clone(), &ns);
    futures::stream::iter(0..args.instances)
        .map(|i| {
            let (instances, pp) = (instances.clone(), pp.clone());
            async move {
                let name = format!("inst-{i}");
                instances.patch(&name, &pp, &Patch::Apply(instance(&name))).await
            }
        })
        .buffer_unordered(args.parallel.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    let created = t0.elapsed();
    wait_count(&running, args.instances, "instances Running", timeout).await?;
    let instances_done = t0.elapsed();
    wait_count(&packs_ready, args.packs, "packs Ready", timeout).await?;
    let packs_done = t0.elapsed();
    let rss_phase1 = take_peak(&peak);
    println!(
        "{} instances + {} packs (7 personas each) created in {} ; all instances Running after {} ; all packs Ready after {} ; peak RSS {rss_phase1:.1} MiB",
        args.instances,
        args.packs,
        secs(created),
        secs(instances_done),
        secs(packs_done)
    );
    let (api1, ctl1, cpu1) =
        (apiserver_requests(&client).await?, controller_requests(&ctl).await?, cpu_seconds(pid));
    let objects1 = args.instances + args.packs;
    report("  API server, all clients", &api0, &api1, objects1);
    report("  controller's own requests", &ctl0, &ctl1, objects1);
    println!("  controller CPU {:.1} s", cpu1 - cpu0);

    // Phase 2: runs at once, spread over the instances.
    let settled = watch_done(Api::<AgentRun>::namespaced(client.clone(), &ns), |r: &AgentRun| {
        matches!(
            r.status.as_ref().and_then(|s| s.phase),
            Some(AgentRunPhase::Succeeded | AgentRunPhase::Failed)
        )
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t1 = Instant::now();
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let instance_count = args.instances;
    futures::stream::iter(0..args.runs)
        .map(|n| {
            let runs = runs.clone();
            async move {
                let run: AgentRun = serde_json::from_value(json!({
                    "apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "metadata": {"name": format!("run-{n}")},
                    "spec": {"instanceRef": format!("inst-{}", n % instance_count), "agentId": "primary",
                             "sessionKey": "", "task": "t",
                             "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "openai-key"}}}))?;
                runs.create(&PostParams::default(), &run).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(args.parallel.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    let created = t1.elapsed();
    wait_count(&settled, args.runs, "runs settled", timeout).await?;
    let runs_done = t1.elapsed();
    let rss_phase2 = take_peak(&peak);
    println!(
        "{} AgentRuns created in {} ; all settled after {} ; peak RSS {rss_phase2:.1} MiB",
        args.runs,
        secs(created),
        secs(runs_done)
    );
    let (api2, ctl2, cpu2) =
        (apiserver_requests(&client).await?, controller_requests(&ctl).await?, cpu_seconds(pid));
    report("  API server, all clients", &api1, &api2, args.runs);
    report("  controller's own requests", &ctl1, &ctl2, args.runs);
    println!("  controller CPU {:.1} s", cpu2 - cpu1);

    // Settled: nothing left to do.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (ctl3, cpu3) = (controller_requests(&ctl).await?, cpu_seconds(pid));
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (ctl4, cpu4) = (controller_requests(&ctl).await?, cpu_seconds(pid));
    let idle: f64 = ctl4.iter().map(|(k, n)| n - ctl3.get(k).copied().unwrap_or(0.0)).sum();
    println!(
        "settled: RSS {:.1} MiB ; peak RSS overall (VmHWM) {:.1} MiB ; controller CPU {:.1} s in total, {:.2} s in the last 30 s idle ; {idle:.0} API requests in those 30 s",
        procstat::rss_mib(pid).unwrap_or(0.0),
        procstat::hwm_mib(pid).unwrap_or(0.0),
        cpu4 - cpu0,
        cpu4 - cpu3
    );
    drop(ctl);
    Ok(())
}
