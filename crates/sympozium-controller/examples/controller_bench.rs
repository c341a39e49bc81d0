//! The controller at load, run as its own process against the test control plane (its
//! memory and API connections are read from `/proc/<pid>`):
//!
//! - a PersonaPack of 7 personas: `enabled: true` → `Ready` with all 7 stamped out;
//! - 100 AgentRuns created at once → 100 Jobs (total, p50/p99 per run), then settled
//!   (the fake node completes the pods), with the controller's pod log reads per pod;
//! - N SympoziumInstances (1,000 by default) created at once → all `Running`, then the
//!   controller's idle CPU with them in place;
//! - peak and settled RSS, established API connections (peak and at rest), and the
//!   reconcile failures it logged, also while the namespace is torn down.
//!
//! `make bench-controller` (uses `TESTPLANE_KUBECONFIG`, or starts the test plane);
//! `BENCH_CONTROLLER_ARGS="--instances 200 --runs 50"`; `BENCH_RUST_LOG` sets the
//! controller's `RUST_LOG` (default `warn`). Never part of `make test`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::{AgentRun, PersonaPack, SympoziumInstance, SympoziumSchedule};
use sympozium_testkit::TestPlane;
use sympozium_testkit::procstat;

/// Controller benchmark on the test plane.
#[derive(Parser, Debug)]
struct Args {
    /// The controller binary (a release build).
    controller: PathBuf,
    /// Instances created at once.
    #[arg(long, default_value_t = 1000)]
    instances: usize,
    /// AgentRuns created at once.
    #[arg(long, default_value_t = 100)]
    runs: usize,
    /// PersonaPacks enabled one after another (each of 7 personas).
    #[arg(long, default_value_t = 3)]
    packs: usize,
    /// Pause after a pack's team is Running before the next pack is created, in ms: the
    /// plane is still starting the team's memory servers (ReplicaSets, pods, statuses) for a
    /// while, and a pack enabled meanwhile times that work as well.
    #[arg(long, default_value_t = 0)]
    pack_gap_ms: u64,
    /// Longest wait for the namespace to be deleted at the end, in seconds.
    #[arg(long, default_value_t = 600)]
    teardown_timeout: u64,
}

struct Controller {
    child: Child,
    metrics: String,
    log: PathBuf,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Controller {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = reqwest::get(&self.metrics).await?.text().await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    fn failures_logged(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|t| t.lines().filter(|l| l.contains("reconcile failed")).count())
            .unwrap_or(0)
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Peak RSS and API connections seen since the last reset, sampled every 20 ms.
#[derive(Default)]
struct Peaks {
    rss: f64,
    conns: usize,
}

fn sample(pid: u32, port: u16, peaks: Arc<Mutex<Peaks>>) {
    tokio::spawn(async move {
        loop {
            let rss = procstat::rss_mib(pid).unwrap_or(0.0);
            let conns = procstat::tcp_connections_to(pid, port);
            if let Ok(mut p) = peaks.lock() {
                p.rss = p.rss.max(rss);
                p.conns = p.conns.max(conns);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

fn take_peaks(peaks: &Mutex<Peaks>) -> (f64, usize) {
    peaks.lock().map(|mut p| (std::mem::take(&mut p.rss), std::mem::take(&mut p.conns))).unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// Watches `api` and records, per object name, when `done` first held.
fn watch_until<K>(
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
        while let Some(Ok(obj)) = stream.next().await {
            if done(&obj)
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
    loop {
        let have = seen.lock().map(|s| s.len()).unwrap_or(0);
        if have >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what}: {have} of {n} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn apply(client: &Client, ns: &str, body: serde_json::Value) -> anyhow::Result<()> {
    let kind = body["kind"].as_str().unwrap_or_default().to_string();
    let name = body["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let pp = PatchParams::apply("bench").force();
    match kind.as_str() {
        "PersonaPack" => {
            Api::<PersonaPack>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &Patch::Apply(&body))
                .await?;
        }
        "SympoziumInstance" => {
            Api::<SympoziumInstance>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &Patch::Apply(&body))
                .await?;
        }
        other => bail!("unexpected kind {other}"),
    }
    Ok(())
}

fn pack(name: &str, enabled: bool) -> serde_json::Value {
    let personas: Vec<_> = (0..7)
        .map(|i| {
            json!({"name": format!("p{i}"), "systemPrompt": format!("You are persona {i}."),
                   "skills": ["k8s-ops"],
                   "schedule": {"type": "heartbeat", "interval": "1h", "task": "Check the cluster."},
                   "memory": {"enabled": true, "seeds": ["baseline"]}})
        })
        .collect();
    json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "PersonaPack", "metadata": {"name": name},
           "spec": {"enabled": enabled, "description": "bench", "personas": personas}})
}

fn instance(name: &str) -> serde_json::Value {
    json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance", "metadata": {"name": name},
           "spec": {"agents": {"default": {"model": "gpt-4o"}}}})
}

fn start_controller(
    bin: &std::path::Path,
    kubeconfig: &std::path::Path,
    ns: &str,
) -> anyhow::Result<Controller> {
    let (metrics_port, health_port) = (free_port()?, free_port()?);
    let log = std::env::temp_dir().join(format!("controller-bench-{}.log", std::process::id()));
    let child = Command::new(bin)
        .args(["--kubeconfig", kubeconfig.to_str().context("kubeconfig path")?])
        .args(["--watch-namespace", ns, "--system-namespace", ns])
        .args(["--metrics-bind-address", &format!("127.0.0.1:{metrics_port}")])
        .args(["--health-probe-bind-address", &format!("127.0.0.1:{health_port}")])
        .env("RUST_LOG", std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(Controller { child, metrics: format!("http://127.0.0.1:{metrics_port}/metrics"), log })
}

fn api_port(kubeconfig: &std::path::Path) -> anyhow::Result<u16> {
    let doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(kubeconfig)?)?;
    let server = doc["clusters"][0]["cluster"]["server"].as_str().context("kubeconfig server")?;
    let url: reqwest::Url = server.parse()?;
    url.port_or_known_default().context("server port")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let plane = TestPlane::get()?;
    let installer = plane.client().await?;
    // The bench's own requests and watches share one HTTP/2 connection too: kube's default
    // client opens a connection per request in flight, and a watch it ends costs the next
    // request a new TLS connection (~45 ms here), which the pack figure would include.
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(plane.kubeconfig())?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = sympozium_kube::client::multiplexed(config)?;
    let ns_guard = plane.namespace(&installer, "bench-ctl").await?;
    let ns = ns_guard.name().to_string();
    let port = api_port(plane.kubeconfig())?;
    let ctl = start_controller(&args.controller, plane.kubeconfig(), &ns)?;
    let pid = ctl.pid();
    let peaks = Arc::new(Mutex::new(Peaks::default()));
    sample(pid, port, peaks.clone());
    let mut up = false;
    for _ in 0..200 {
        if reqwest::get(&ctl.metrics).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !up {
        bail!("the controller did not come up (log: {})", ctl.log.display());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, start_conns) = take_peaks(&peaks);
    println!(
        "controller pid {pid}: idle RSS {:.1} MiB, {} API connection(s) at start-up",
        procstat::rss_mib(pid).unwrap_or(0.0),
        start_conns
    );
    if let Some((anon, file)) = procstat::rss_parts_mib(pid) {
        println!(
            "  idle RSS: {anon:.1} MiB heap and private (RssAnon) + {file:.1} MiB mapped files (RssFile)"
        );
    }

    // PersonaPacks: disabled first (a catalog entry), then enabled and timed to Ready.
    let packs: Api<PersonaPack> = Api::namespaced(client.clone(), &ns);
    let (mut pack_times, mut team_times) = (Vec::new(), Vec::new());
    // Where a pack's time goes: when the team's objects (instances, schedules, seeded
    // memory) and the pack's `Pending` are first seen, from the same watches a user has.
    let member_seen = watch_until(Api::<SympoziumInstance>::namespaced(client.clone(), &ns), |_| true);
    let schedule_seen = watch_until(Api::<SympoziumSchedule>::namespaced(client.clone(), &ns), |_| true);
    let memory_seen = watch_until(Api::<ConfigMap>::namespaced(client.clone(), &ns), |_| true);
    let pending_seen = watch_until(packs.clone(), |p: &PersonaPack| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending")
    });
    let mut timelines: Vec<[Duration; 4]> = Vec::new();
    for i in 0..args.packs {
        let name = format!("pack-{i}");
        apply(&client, &ns, pack(&name, false)).await?;
        sympozium_testkit::wait_for(
            &packs,
            &name,
            "pack Inactive",
            Duration::from_secs(60),
            |p: Option<&PersonaPack>| {
                p.and_then(|p| p.status.as_ref()?.phase.clone()).as_deref() == Some("Inactive")
            },
        )
        .await?;
        let t0 = Instant::now();
        apply(&client, &ns, pack(&name, true)).await?;
        let enabling = t0.elapsed();
        sympozium_testkit::wait_for(
            &packs,
            &name,
            "pack Ready",
            Duration::from_secs(60),
            |p: Option<&PersonaPack>| {
                p.and_then(|p| p.status.as_ref())
                    .is_some_and(|s| s.phase.as_deref() == Some("Ready") && s.installed_count == 7)
            },
        )
        .await?;
        pack_times.push(t0.elapsed());
        let team: Vec<Instant> = [&member_seen, &schedule_seen, &memory_seen]
            .iter()
            .flat_map(|seen| {
                let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
                seen.into_iter().filter(|(n, _)| n.starts_with(&format!("{name}-"))).map(|(_, at)| at)
            })
            .collect();
        let since = |at: Option<&Instant>| at.map(|at| at.saturating_duration_since(t0)).unwrap_or_default();
        let pending = pending_seen.lock().ok().and_then(|s| s.get(&name).copied());
        timelines.push([
            enabling,
            since(pending.as_ref()),
            since(team.iter().min()),
            since(team.iter().max()),
        ]);
        // The next pack is timed on a settled controller: this team's instances are
        // converged (Deployments, Services, memory) before it is enabled.
        let team = Api::<SympoziumInstance>::namespaced(client.clone(), &ns);
        let selector = ListParams::default().labels(&format!("sympozium.ai/persona-pack={name}"));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let members = team.list(&selector).await?.items;
            let running = members
                .iter()
                .filter(|i| i.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            if running >= 7 {
                team_times.push(t0.elapsed());
                tokio::time::sleep(Duration::from_millis(args.pack_gap_ms)).await;
                break;
            }
            if Instant::now() > deadline {
                bail!("pack {name}: {running} of 7 instances Running within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    pack_times.sort();
    team_times.sort();
    println!(
        "PersonaPack of 7 personas, enabled -> Ready with 7 stamped: median {} (min {}, max {}, {} packs)",
        ms(percentile(&pack_times, 0.5)),
        ms(pack_times.first().copied().unwrap_or_default()),
        ms(pack_times.last().copied().unwrap_or_default()),
        pack_times.len()
    );
    let step = |i: usize| {
        let mut d: Vec<Duration> = timelines.iter().map(|t| t[i]).collect();
        d.sort();
        ms(percentile(&d, 0.5))
    };
    println!(
        "  medians from enabled: the enabling apply answered {}, Pending seen {}, first of the 21 objects seen {}, last {}",
        step(0),
        step(1),
        step(2),
        step(3)
    );
    println!("  ... and all 7 instances Running: median {}", ms(percentile(&team_times, 0.5)));

    // AgentRuns: all at once; per run, create -> its Job seen.
    apply(&client, &ns, instance("bench")).await?;
    let instances: Api<SympoziumInstance> = Api::namespaced(client.clone(), &ns);
    sympozium_testkit::wait_for(
        &instances,
        "bench",
        "instance Running",
        Duration::from_secs(60),
        |i: Option<&SympoziumInstance>| {
            i.and_then(|i| i.status.as_ref()?.phase.clone()).as_deref() == Some("Running")
        },
    )
    .await?;
    let jobs = watch_until(Api::<Job>::namespaced(client.clone(), &ns), |_| true);
    let settled = watch_until(Api::<AgentRun>::namespaced(client.clone(), &ns), |r: &AgentRun| {
        matches!(
            r.status.as_ref().and_then(|s| s.phase),
            Some(AgentRunPhase::Succeeded | AgentRunPhase::Failed)
        )
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_before, _) = (procstat::rss_mib(pid).unwrap_or(0.0), take_peaks(&peaks));
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let burst = Instant::now();
    let created: Vec<(String, Instant)> = futures::stream::iter(0..args.runs)
        .map(|i| {
            let runs = runs.clone();
            async move {
                let name = format!("run-{i}");
                let run: AgentRun = serde_json::from_value(json!({
                    "apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "metadata": {"name": name},
                    "spec": {"instanceRef": "bench", "agentId": "primary", "sessionKey": "", "task": "t",
                             "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "openai-key"}}}))?;
                let t = Instant::now();
                runs.create(&PostParams::default(), &run).await?;
                anyhow::Ok((name, t))
            }
        })
        .buffer_unordered(50)
        .try_collect()
        .await?;
    wait_count(&jobs, args.runs, "Jobs", Duration::from_secs(300)).await?;
    let all_jobs = burst.elapsed();
    let (rss_jobs, conns_jobs) = take_peaks(&peaks);
    let mut lat: Vec<Duration> = {
        let seen = jobs.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        created.iter().filter_map(|(n, t)| seen.get(n).map(|s| s.saturating_duration_since(*t))).collect()
    };
    lat.sort();
    println!(
        "{} AgentRuns -> {} Jobs: all in {} ; per run p50 {} p99 {} ; RSS {:.1} -> peak {:.1} MiB ; peak API connections {}",
        args.runs,
        lat.len(),
        ms(all_jobs),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        rss_before,
        rss_jobs,
        conns_jobs
    );
    wait_count(&settled, args.runs, "runs settled", Duration::from_secs(300)).await?;
    let all_settled = burst.elapsed();
    let (rss_settle, conns_settle) = take_peaks(&peaks);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let log_reads = ctl.metric("sympozium_pod_log_reads_total").await?;
    println!(
        "  all runs settled in {} ; peak RSS through the burst {:.1} MiB ; RSS 10 s after {:.1} MiB ; peak API connections {} ; now {}",
        ms(all_settled),
        rss_jobs.max(rss_settle),
        procstat::rss_mib(pid).unwrap_or(0.0),
        conns_jobs.max(conns_settle),
        procstat::tcp_connections_to(pid, port)
    );
    if let Some((anon, file)) = procstat::rss_parts_mib(pid) {
        println!(
            "  RSS 10 s after: {anon:.1} MiB heap and private (RssAnon) + {file:.1} MiB mapped files (RssFile)"
        );
    }
    println!(
        "  pod log reads: {log_reads:.0} for {} finished pods ({:.1} per pod)",
        args.runs,
        log_reads / args.runs.max(1) as f64
    );

    // Instances: N at once → all Running.
    let running =
        watch_until(Api::<SympoziumInstance>::namespaced(client.clone(), &ns), |i: &SympoziumInstance| {
            i.name_any().starts_with("inst-")
                && i.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        });
    tokio::time::sleep(Duration::from_millis(500)).await;
    take_peaks(&peaks);
    let t0 = Instant::now();
    futures::stream::iter(0..args.instances)
        .map(|i| {
            let client = client.clone();
            let ns = ns.clone();
            async move { apply(&client, &ns, instance(&format!("inst-{i}"))).await }
        })
        .buffer_unordered(50)
        .try_collect::<Vec<_>>()
        .await?;
    wait_count(&running, args.instances, "instances Running", Duration::from_secs(600)).await?;
    let converged = t0.elapsed();
    let (rss_inst, conns_inst) = take_peaks(&peaks);
    println!(
        "{} instances created at once -> all Running in {} ; peak RSS {:.1} MiB ; peak API connections {}",
        args.instances,
        ms(converged),
        rss_inst,
        conns_inst
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (c0, t) = (procstat::cpu_ticks(pid).unwrap_or(0), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu = procstat::cpu_ticks(pid).unwrap_or(0).saturating_sub(c0) as f64
        / procstat::TICKS_PER_SECOND as f64
        / t.elapsed().as_secs_f64();
    println!(
        "  idle with {} instances: CPU {:.1}% of a core ; RSS {:.1} MiB ; API connections {}",
        args.instances,
        cpu * 100.0,
        procstat::rss_mib(pid).unwrap_or(0.0),
        procstat::tcp_connections_to(pid, port)
    );

    // Teardown: the namespace goes; the controller should not call that a failure.
    // The controller runs until the namespace is gone: it removes the finalizers, and killing
    // it earlier would leave the namespace Terminating on the plane.
    let failures_before = ctl.failures_logged();
    let namespaces = Api::<Namespace>::all(client.clone());
    let deleting = Instant::now();
    namespaces.delete(&ns, &DeleteParams::default()).await?;
    let mut gone = false;
    while deleting.elapsed() < Duration::from_secs(args.teardown_timeout) {
        if namespaces.get_opt(&ns).await?.is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deletion = if gone {
        format!("deleted in {} ms", deleting.elapsed().as_millis())
    } else {
        format!("still Terminating after {} s", args.teardown_timeout)
    };
    println!(
        "namespace with {} instances {deletion} ; reconcile failures logged: {failures_before} before teardown, {} during namespace deletion ; peak RSS overall (VmHWM) {:.1} MiB",
        args.instances,
        ctl.failures_logged().saturating_sub(failures_before),
        procstat::hwm_mib(pid).unwrap_or(0.0)
    );
    drop(ctl);
    Ok(())
}
