//! Shared by the fault-injection tests (`tests/faults_*.rs`): controller replicas run as the
//! real `sympozium-controller` binary with leader election, killed with SIGKILL; a ledger of
//! every Job UID the API server ever showed; and counting waits over many objects.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code; each binary uses a subset

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;

/// Lease timings of the replicas under test: short, so a takeover happens within seconds,
/// with room for an API server slowed by a busy machine (a leader that cannot renew in time
/// exits, and its supervisor — Kubernetes, or [`Replicas`] here — starts it again).
pub const LEASE_SECS: u64 = 6;
pub const RETRY_MS: u64 = 1000;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The controller binary: Cargo's for tests; for the failover benchmark (an example, which
/// Cargo tells no binary paths) the one beside the examples folder it runs from.
pub fn controller_bin() -> std::path::PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_sympozium-controller") {
        return path.into();
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().join("sympozium-controller")
}

/// One `sympozium-controller` process electing itself on the Lease in `ns`.
pub struct Replica {
    child: Child,
    health_port: u16,
    pub identity: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    /// Starts a replica watching (and keeping its Lease in) `ns`, with the bus at `nats_url`.
    pub fn start(kubeconfig: &Path, ns: &str, identity: &str, nats_url: Option<&str>) -> Replica {
        Self::start_with(kubeconfig, ns, identity, nats_url, LEASE_SECS, RETRY_MS)
    }

    /// Like [`Replica::start`] with explicit lease timings.
    pub fn start_with(
        kubeconfig: &Path,
        ns: &str,
        identity: &str,
        nats_url: Option<&str>,
        lease_secs: u64,
        retry_ms: u64,
    ) -> Replica {
        let health_port = free_port();
        let mut command = Command::new(controller_bin());
        command
            .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
            .args(["--watch-namespace", ns, "--system-namespace", ns, "--leader-elect"])
            .args(["--leader-lease-duration-secs", &lease_secs.to_string()])
            .args(["--leader-retry-period-ms", &retry_ms.to_string()])
            .args(["--identity", identity])
            .args(["--metrics-bind-address", &format!("127.0.0.1:{}", free_port())])
            .args(["--health-probe-bind-address", &format!("127.0.0.1:{health_port}")])
            .args(["--image-registry", "registry.example/sym", "--image-tag", "faults"])
            // Every run of a burst must stay countable: no pruning of finished runs.
            .args(["--max-run-history", "1000", "--agent-sandbox-enabled", "false"])
            // The fake node serves no container logs; the 500s of those reads are noise here.
            .env("RUST_LOG", "warn,kube_client::client::builder=off")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(url) = nats_url {
            command.args(["--nats-url", url]);
        }
        Replica { child: command.spawn().unwrap(), health_port, identity: identity.to_string() }
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Whether this replica holds the lease (its `/readyz` answers 200 only while leading).
    pub async fn leading(&self) -> bool {
        let url = format!("http://127.0.0.1:{}/readyz", self.health_port);
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        client.get(url).send().await.is_ok_and(|r| r.status().is_success())
    }

    /// `kill -9`: no shutdown hook runs, the Lease is left held until it expires.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// Two controller replicas on one plane and namespace, kept at two the way a Deployment
/// would: a replica that exits on its own (a leader that lost its Lease exits) is replaced.
pub struct Replicas {
    kubeconfig: std::path::PathBuf,
    ns: String,
    nats_url: Option<String>,
    pub list: Vec<Replica>,
    started: usize,
    pub killed: Vec<String>,
}

impl Replicas {
    pub fn start(kubeconfig: &Path, ns: &str, nats_url: Option<String>) -> Replicas {
        let mut r = Replicas {
            kubeconfig: kubeconfig.to_path_buf(),
            ns: ns.to_string(),
            nats_url,
            list: Vec::new(),
            started: 0,
            killed: Vec::new(),
        };
        r.top_up();
        r
    }

    fn top_up(&mut self) {
        self.list.retain_mut(|r| {
            let alive = r.alive();
            if !alive {
                eprintln!("{} exited on its own; replaced", r.identity);
            }
            alive
        });
        while self.list.len() < 2 {
            self.started += 1;
            let identity = format!("replica-{}", self.started);
            let replica = Replica::start(&self.kubeconfig, &self.ns, &identity, self.nats_url.as_deref());
            self.list.push(replica);
        }
    }

    /// Waits until exactly one replica leads and returns its index (replacing replicas
    /// that exited meanwhile).
    pub async fn leader(&mut self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.top_up();
            let mut leading = Vec::new();
            for (i, r) in self.list.iter().enumerate() {
                if r.leading().await {
                    leading.push(i);
                }
            }
            if let [one] = leading[..] {
                return one;
            }
            assert!(leading.len() <= 1, "two replicas lead at once: {leading:?}");
            assert!(tokio::time::Instant::now() < deadline, "no replica became leader within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9` of the leader; returns once another replica leads (a fresh standby is
    /// started beside it).
    pub async fn kill_leader(&mut self, timeout: Duration) {
        let i = self.leader(timeout).await;
        let mut dead = self.list.remove(i);
        dead.kill9();
        eprintln!("killed {} (kill {})", dead.identity, self.killed.len() + 1);
        self.killed.push(dead.identity.clone());
        // The survivor must take over before a fresh standby could compete for the Lease.
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.list.iter_mut().any(|r| !r.alive()) || tokio::time::Instant::now() > deadline {
                break;
            }
            if self.list[0].leading().await {
                eprintln!("{} took over", self.list[0].identity);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.leader(timeout).await;
    }
}

/// Every UID each object name ever had, as seen by a watch for the whole test: an object
/// deleted and created again (a Job: the agent running twice) shows up as a second UID.
pub struct UidLedger {
    seen: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for UidLedger {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Retries a broken watch every 200 ms, for as long as it takes.
struct Retry;

impl Iterator for Retry {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(Duration::from_millis(200))
    }
}

impl kube::runtime::utils::Backoff for Retry {
    fn reset(&mut self) {}
}

impl UidLedger {
    /// Starts watching `api`; the watch is retried across API server outages.
    pub fn watch<K>(api: Api<K>) -> UidLedger
    where
        K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let seen: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>> = Arc::default();
        let into = seen.clone();
        let task = tokio::spawn(async move {
            // A fixed short retry: kube's default backs off to 30 s across a long outage, and
            // a Job created and deleted inside that gap would never be seen.
            let mut stream = watcher(api, watcher::Config::default()).backoff(Retry).boxed();
            while let Some(event) = stream.next().await {
                if let Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) = event {
                    let uid = o.uid().unwrap_or_default();
                    into.lock().unwrap().entry(o.name_any()).or_default().insert(uid);
                }
            }
        });
        UidLedger { seen, task }
    }

    pub fn snapshot(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.seen.lock().unwrap().clone()
    }

    /// Asserts each of `names` was seen with exactly one UID.
    pub fn assert_once(&self, what: &str, names: &[String]) {
        let seen = self.snapshot();
        for name in names {
            let uids = seen.get(name).cloned().unwrap_or_default();
            assert_eq!(uids.len(), 1, "{what} {name} existed {} times over the test: {uids:?}", uids.len());
        }
    }
}

/// Polls `check` every 250 ms until it returns `Ok`, failing with its last `Err` (which
/// should say what is still missing) after `timeout`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn phase(r: &AgentRun) -> AgentRunPhase {
    r.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
}

/// Server-side applies a Sympozium object of `kind` (plural `plural`) named `name`.
pub async fn apply(client: &Client, ns: &str, kind: &str, plural: &str, name: &str, spec: Value) {
    let ar = kube::api::ApiResource {
        group: "sympozium.ai".into(),
        version: "v1alpha1".into(),
        api_version: "sympozium.ai/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec});
    api.patch(name, &PatchParams::apply("faults-test").force(), &Patch::Apply(&body)).await.unwrap();
}

/// The instance every burst run belongs to.
pub async fn instance(client: &Client, ns: &str, name: &str) {
    apply(
        client,
        ns,
        "SympoziumInstance",
        "sympoziuminstances",
        name,
        json!({"agents": {"default": {"model": "gpt-4o"}},
               "authRefs": [{"provider": "openai", "secret": "openai-key"}]}),
    )
    .await;
}

pub fn run_body(name: &str, instance: &str) -> AgentRun {
    serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": name},
        "spec": {"instanceRef": instance, "agentId": "primary", "sessionKey": "", "task": format!("task of {name}"),
                 "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "openai-key"}}}))
    .unwrap()
}

/// Creates `names` as AgentRuns, ten at a time, retrying a create the API server could not
/// answer (it may be restarting) until it exists; a 409 on retry means the first try landed.
pub async fn create_runs(client: &Client, ns: &str, instance: &str, names: &[String]) {
    let api: Api<AgentRun> = Api::namespaced(client.clone(), ns);
    futures::stream::iter(names.iter().cloned())
        .for_each_concurrent(10, |name| {
            let api = api.clone();
            async move {
                let body = run_body(&name, instance);
                // Bounded by time, not attempts: a request to an API server whose etcd is
                // down hangs until it times out, one to a stopped server fails at once.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
                let mut retried = false;
                loop {
                    match api.create(&PostParams::default(), &body).await {
                        Ok(_) => return,
                        Err(kube::Error::Api(e)) if e.code == 409 && retried => return,
                        Err(_) if tokio::time::Instant::now() < deadline => {
                            retried = true;
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        Err(e) => panic!("creating run {name}: {e}"),
                    }
                }
            }
        })
        .await;
}

/// The runs in `ns`, by name (an API error counts as "not yet": the server may be restarting).
pub async fn runs_by_name(client: &Client, ns: &str) -> Result<BTreeMap<String, AgentRun>, String> {
    let api: Api<AgentRun> = Api::namespaced(client.clone(), ns);
    let list = api.list(&ListParams::default()).await.map_err(|e| format!("listing runs: {e}"))?;
    Ok(list.items.into_iter().map(|r| (r.name_any(), r)).collect())
}

/// Names from `names` not (yet) satisfying `cond`, shortened for a message.
pub fn stragglers(
    runs: &BTreeMap<String, AgentRun>,
    names: &[String],
    cond: impl Fn(&AgentRun) -> bool,
) -> Vec<String> {
    names.iter().filter(|n| !runs.get(*n).is_some_and(&cond)).cloned().collect()
}

/// Publishes each run's outcome on the bus the way the run's IPC bridge does.
pub async fn complete_over_bus(bus: &sympozium_bus::Bus, ns: &str, instance: &str, names: &[String]) {
    for name in names {
        let meta = BTreeMap::from([
            ("agentRunID".to_string(), name.clone()),
            ("instanceName".to_string(), instance.to_string()),
            ("namespace".to_string(), ns.to_string()),
        ]);
        let data = json!({"status": "success", "response": format!("answer of {name}")});
        bus.publish_once(sympozium_bus::topics::AGENT_RUN_COMPLETED, meta, &data, &format!("{ns}/{name}"))
            .await
            .unwrap();
    }
}

/// Runs a burst of runs through to completion and checks nothing was lost or doubled:
/// every run got exactly one Job (one UID for its whole life, though finished runs' Jobs
/// are deleted) and Succeeded. Like a run's IPC bridge, the test publishes each outcome on
/// the bus once the run is Running; a run whose pod finished first may be settled from its
/// exit code instead (the fake node completes pods at once), but never twice.
pub async fn settle_and_count(
    client: &Client,
    ns: &str,
    instance: &str,
    bus: &sympozium_bus::Bus,
    names: &[String],
    jobs_ledger: &UidLedger,
    timeout: Duration,
) {
    // Names of a burst share a prefix (`<prefix>-<n>`): Jobs with it that no run of the
    // burst asked for are doubles.
    let prefix = names[0].rsplit_once('-').map(|(p, _)| format!("{p}-")).unwrap_or_default();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut published: BTreeSet<String> = BTreeSet::new();
    let runs = loop {
        let last = match runs_by_name(client, ns).await {
            Ok(runs) => {
                let started: Vec<String> = names
                    .iter()
                    .filter(|n| !published.contains(*n))
                    .filter(|n| runs.get(*n).is_some_and(|r| phase(r) != AgentRunPhase::Pending))
                    .cloned()
                    .collect();
                complete_over_bus(bus, ns, instance, &started).await;
                published.extend(started);
                let left = stragglers(&runs, names, |r| phase(r) == AgentRunPhase::Succeeded);
                if left.is_empty() {
                    break runs;
                }
                format!("{} not Succeeded: {:?}", left.len(), first(&left))
            }
            Err(e) => e,
        };
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?}: {last}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let mut from_bus = 0;
    for name in names {
        let status = runs[name].status.clone().unwrap();
        assert_eq!(status.job_name.as_deref(), Some(name.as_str()), "{name} names its Job");
        match status.result.as_deref() {
            None => {}
            Some(r) if r == format!("answer of {name}") => from_bus += 1,
            Some(other) => panic!("{name} recorded someone else's outcome: {other}"),
        }
    }
    eprintln!(
        "{} runs Succeeded: {from_bus} from the bus, {} from the exit code",
        names.len(),
        names.len() - from_bus
    );
    jobs_ledger.assert_once("the Job of run", names);
    let wanted: BTreeSet<&String> = names.iter().collect();
    let seen = jobs_ledger.snapshot();
    let stray: Vec<_> = seen.keys().filter(|n| n.starts_with(&prefix) && !wanted.contains(n)).collect();
    assert!(stray.is_empty(), "Jobs no run asked for: {stray:?}");
}

fn first(names: &[String]) -> &[String] {
    &names[..names.len().min(8)]
}
