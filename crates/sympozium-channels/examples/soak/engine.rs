//! The soak run itself: chat users write to many instances over three platforms while
//! faults are injected; at the end every message is matched to the replies the platform
//! received and to the AgentRun it became. Shared by `make soak` (the `soak` example) and
//! the small variant in `tests/soak.rs`.
//!
//! What is real: the test control plane, `nats-server -js`, the `sympozium-controller`
//! binary (two replicas with leader election, channel router and AgentRun controller
//! inside), one `sympozium-channel` process per instance (the channel pod), and the
//! platforms' wire protocols (the testkit fakes of Telegram, Slack and Discord). What stands
//! in: the agent pod. The AgentRun controller creates each run's Job as usual; once a run is
//! Running, the soak's agent answers it the way the run's IPC bridge does — an
//! `agent.run.completed` on the bus — so a thousand runs fit in minutes on a small machine.

#![allow(dead_code)] // the test uses a subset

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_bus::{Bus, topics};
use sympozium_testkit::TestPlane;
use sympozium_testkit::fake_chat::{FakeDiscord, FakeSlack, FakeTelegram, Sent};
use sympozium_testkit::nats::NatsServer;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Chat messages to send in all.
    pub messages: usize,
    /// Instances (each with one channel; the types take turns: Telegram, Slack, Discord).
    pub instances: usize,
    /// Faults to inject (NATS restart, channel pod kill, controller kill -9, in turn).
    pub faults: usize,
    /// Messages per second the users write.
    pub rate: f64,
    /// Seed of the fault schedule.
    pub seed: u64,
    /// How long the replies may stall (no new one) after the last message before the run
    /// gives up waiting.
    pub settle: Duration,
    /// Where the binaries are (`target/debug`).
    pub bin_dir: PathBuf,
    /// Where the components' logs go.
    pub log_dir: PathBuf,
    /// All instances in one namespace, the only one the controller watches: on a plane
    /// other tests share (their leftovers would otherwise be reconciled too).
    pub shared_namespace: bool,
}

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// nats-server killed and started again on the same store.
    NatsRestart,
    /// A channel pod (process) killed with SIGKILL and started again.
    ChannelKill,
    /// A controller replica killed with SIGKILL and started again.
    ControllerKill,
}

impl Fault {
    /// How the table names it.
    pub fn label(self) -> &'static str {
        match self {
            Fault::NatsRestart => "NATS restart",
            Fault::ChannelKill => "channel pod kill -9",
            Fault::ControllerKill => "controller kill -9",
        }
    }
}

/// What the run counted.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Messages the users wrote.
    pub messages: usize,
    /// Distinct messages that got a reply.
    pub replied: usize,
    /// Replies posted in all (a message answered twice counts twice).
    pub replies: usize,
    /// Messages answered more than once (one each).
    pub duplicates: usize,
    /// Messages never answered.
    pub lost: usize,
    /// Replies posted to the wrong instance's platform, or answering no message.
    pub misrouted: usize,
    /// AgentRuns made for the messages.
    pub runs: usize,
    /// Messages that made more than one run.
    pub duplicate_runs: usize,
    /// Runs in Succeeded or Failed at the end.
    pub terminal_runs: usize,
    /// Runs that failed (terminal, but the answer is an error).
    pub failed_runs: usize,
    /// Message written → reply posted, sorted.
    pub latencies: Vec<Duration>,
    /// Faults injected, per kind.
    pub faults: BTreeMap<Fault, usize>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

impl Report {
    /// Nothing lost, nothing doubled, every run finished.
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.misrouted == 0
            && self.duplicate_runs == 0
            && self.runs == self.messages
            && self.terminal_runs == self.runs
    }

    /// The `p`-quantile of the latencies.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let idx = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[idx.min(self.latencies.len() - 1)]
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let survived = if self.clean() { "yes" } else { "NO" };
        let faults: usize = self.faults.values().sum();
        let per_kind = self.faults.iter().map(|(k, n)| format!("{n} {}", k.label())).collect::<Vec<_>>();
        let rows = [
            ("messages", self.messages.to_string()),
            ("replies", self.replies.to_string()),
            ("messages answered", self.replied.to_string()),
            ("duplicates", self.duplicates.to_string()),
            ("lost", self.lost.to_string()),
            ("misrouted", self.misrouted.to_string()),
            ("agent runs", self.runs.to_string()),
            ("duplicate runs", self.duplicate_runs.to_string()),
            ("runs terminal", format!("{} ({} failed)", self.terminal_runs, self.failed_runs)),
            ("latency p50", format!("{:.2} s", self.percentile(0.5).as_secs_f64())),
            ("latency p99", format!("{:.2} s", self.percentile(0.99).as_secs_f64())),
            ("latency max", format!("{:.2} s", self.percentile(1.0).as_secs_f64())),
            ("restarts survived", format!("{faults} ({}) — clean: {survived}", per_kind.join(", "))),
            ("wall time", format!("{:.0} s", self.elapsed.as_secs_f64())),
        ];
        let mut out = String::from("| measure | value |\n|---|---|\n");
        for (k, v) in rows {
            out.push_str(&format!("| {k} | {v} |\n"));
        }
        out
    }
}

/// xorshift64*: the schedule only needs to be varied and repeatable from `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(self.below(span + 1))
    }
}

enum Platform {
    Telegram(FakeTelegram),
    Slack(FakeSlack),
    Discord(FakeDiscord),
}

impl Platform {
    fn kind(&self) -> &'static str {
        match self {
            Platform::Telegram(_) => "telegram",
            Platform::Slack(_) => "slack",
            Platform::Discord(_) => "discord",
        }
    }
    fn sent(&self) -> Vec<Sent> {
        match self {
            Platform::Telegram(f) => f.sent(),
            Platform::Slack(f) => f.sent(),
            Platform::Discord(f) => f.sent(),
        }
    }
    fn user_says(&self, chat: usize, text: &str) {
        match self {
            Platform::Telegram(f) => {
                f.user_says(100 + chat as i64, 42, "Ann", text);
            }
            Platform::Slack(f) => {
                f.user_says(&format!("C{chat}"), "U42", text, None);
            }
            Platform::Discord(f) => {
                f.user_says(&format!("CH{chat}"), Some("G1"), "111", text);
            }
        }
    }
    fn env(&self, i: usize) -> Vec<(&'static str, String)> {
        match self {
            Platform::Telegram(f) => {
                vec![("TELEGRAM_BOT_TOKEN", format!("{i}:SOAK")), ("TELEGRAM_API_URL", f.url())]
            }
            Platform::Slack(f) => vec![
                ("SLACK_BOT_TOKEN", format!("xoxb-soak-{i}")),
                ("SLACK_APP_TOKEN", format!("xapp-soak-{i}")),
                ("SLACK_SIGNING_SECRET", "soak".into()),
                ("SLACK_API_URL", f.url()),
            ],
            Platform::Discord(f) => {
                vec![("DISCORD_BOT_TOKEN", format!("soak-{i}")), ("DISCORD_API_URL", f.url())]
            }
        }
    }
}

/// One instance: its namespace, platform and channel pod.
struct Instance {
    name: String,
    ns: String,
    platform: Platform,
    health: std::net::SocketAddr,
    env: Vec<(&'static str, String)>,
    pod: Mutex<Option<Child>>,
    /// Discord only: its pod is down, so nobody writes to it (see `send_all`).
    offline: AtomicBool,
}

fn free_addr() -> anyhow::Result<std::net::SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn log_file(dir: &std::path::Path, name: &str) -> anyhow::Result<(Stdio, Stdio)> {
    let f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{name}.log")))?;
    Ok((Stdio::from(f.try_clone()?), Stdio::from(f)))
}

impl Instance {
    fn spawn(&self, opts: &Options) -> anyhow::Result<()> {
        let (out, err) = log_file(&opts.log_dir, &format!("channel-{}", self.name))?;
        let child = Command::new(opts.bin_dir.join("sympozium-channel"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("starting sympozium-channel (build it: cargo build -p sympozium-channels --bins)")?;
        *self.pod.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(())
    }

    fn kill(&self) {
        if let Some(mut child) = self.pod.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn healthy(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            let code = reqwest::get(format!("http://{}/healthz", self.health))
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            if code == 200 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }
}

/// The controller replicas (a Deployment of two with leader election).
struct Controllers {
    children: Mutex<Vec<Option<Child>>>,
    args: Vec<String>,
    nats_url: String,
    kubeconfig: PathBuf,
}

impl Controllers {
    fn spawn(&self, opts: &Options, replica: usize) -> anyhow::Result<()> {
        let (out, err) = log_file(&opts.log_dir, &format!("controller-{replica}"))?;
        let child = Command::new(opts.bin_dir.join("sympozium-controller"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NATS_URL", &self.nats_url)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info")
            .args(&self.args)
            .args(["--identity", &format!("soak-controller-{replica}")])
            .stdout(out)
            .stderr(err)
            .spawn()
            .context(
                "starting sympozium-controller (build it: cargo build -p sympozium-controller --bins)",
            )?;
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        if children.len() <= replica {
            children.resize_with(replica + 1, || None);
        }
        children[replica] = Some(child);
        Ok(())
    }

    fn kill(&self, replica: usize) {
        let taken =
            self.children.lock().unwrap_or_else(|p| p.into_inner()).get_mut(replica).and_then(Option::take);
        if let Some(mut child) = taken {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again every replica that exited on its own (as its Deployment would; a
    /// replica that loses its lease exits on purpose); how many were started.
    fn revive(&self, opts: &Options) -> usize {
        let exited: Vec<usize> = {
            let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
            children
                .iter_mut()
                .enumerate()
                .filter_map(|(r, c)| {
                    let exited = c.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(Some(_))));
                    exited.then_some(r)
                })
                .collect()
        };
        let mut started = 0;
        for r in exited {
            if self.spawn(opts, r).is_ok() {
                started += 1;
            }
        }
        started
    }

    fn kill_all(&self) {
        let n = self.children.lock().unwrap_or_else(|p| p.into_inner()).len();
        for r in 0..n {
            self.kill(r);
        }
    }
}

/// Who answered what: per message the replies seen and when the first came.
#[derive(Default)]
struct Ledger {
    sent_at: HashMap<usize, (usize, Instant)>,
    first_reply: HashMap<usize, Instant>,
    reply_count: HashMap<usize, usize>,
    misrouted: usize,
    misrouted_examples: Vec<String>,
    seen_per_instance: Vec<usize>,
}

const REPLY_PREFIX: &str = "re: soak message ";

fn message_text(idx: usize) -> String {
    format!("soak message {idx}")
}

impl Ledger {
    fn poll(&mut self, instances: &[Arc<Instance>]) {
        if self.seen_per_instance.len() < instances.len() {
            self.seen_per_instance.resize(instances.len(), 0);
        }
        for (i, inst) in instances.iter().enumerate() {
            let sent = inst.platform.sent();
            for s in &sent[self.seen_per_instance[i].min(sent.len())..] {
                let idx = s.text.strip_prefix(REPLY_PREFIX).and_then(|n| n.trim().parse::<usize>().ok());
                match idx.and_then(|idx| self.sent_at.get(&idx).map(|v| (idx, *v))) {
                    Some((idx, (owner, _))) if owner == i => {
                        *self.reply_count.entry(idx).or_default() += 1;
                        self.first_reply.entry(idx).or_insert_with(Instant::now);
                    }
                    _ => {
                        self.misrouted += 1;
                        if self.misrouted_examples.len() < 10 {
                            self.misrouted_examples
                                .push(format!("{} in chat {}: {:?}", inst.name, s.chat, s.text));
                        }
                    }
                }
            }
            self.seen_per_instance[i] = sent.len();
        }
    }
}

/// The agent stand-in: answers every Running soak run once, on the bus, as the run's IPC
/// bridge would, retrying while NATS is down.
async fn agent(client: Client, nats_url: String, prefix: String) -> anyhow::Result<()> {
    let bus = Bus::connect(&nats_url).await?;
    let runs: Api<AgentRun> = Api::all(client);
    let answered: Arc<Mutex<HashSet<(String, String)>>> = Arc::default();
    let stream = watcher(runs, watcher::Config::default().labels("sympozium.ai/source=channel"))
        .default_backoff()
        .applied_objects();
    futures_util::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let Ok(run) = event else { continue };
        let ns = run.namespace().unwrap_or_default();
        if !ns.starts_with(&prefix) {
            continue;
        }
        if run.status.as_ref().and_then(|s| s.phase) != Some(AgentRunPhase::Running) {
            continue;
        }
        let key = (ns.clone(), run.name_any());
        if !answered.lock().unwrap_or_else(|p| p.into_inner()).insert(key) {
            continue;
        }
        let message = run.annotations().get("sympozium.ai/message").cloned().unwrap_or_default();
        let meta = BTreeMap::from([
            ("agentRunID".to_string(), run.name_any()),
            ("instanceName".to_string(), run.spec.instance_ref.clone()),
            ("namespace".to_string(), ns),
        ]);
        let bus = bus.clone();
        tokio::spawn(async move {
            let body = json!({"status": "success", "response": format!("re: {message}")});
            loop {
                let publish = bus.publish(topics::AGENT_RUN_COMPLETED, meta.clone(), &body);
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), publish).await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
    Ok(())
}

/// Runs the soak on the test plane and returns what it counted.
pub async fn run(opts: Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    std::fs::create_dir_all(&opts.log_dir)?;
    let plane = TestPlane::get()?;
    let client = plane.client().await?;
    let system = plane.namespace(&client, "soak-system").await?.name().to_string();
    let prefix = format!("t-soak{}-", std::process::id());
    let mut nats = NatsServer::start().await?;
    let nats_url = nats.url();
    let shared = if opts.shared_namespace {
        Some(plane.namespace(&client, &format!("soak{}-all", std::process::id())).await?.name().to_string())
    } else {
        None
    };
    let mut controller_args: Vec<String> = [
        "--leader-elect",
        "--system-namespace",
        &system,
        "--metrics-bind-address",
        "127.0.0.1:0",
        "--health-probe-bind-address",
        "127.0.0.1:0",
        "--max-run-history",
        "100000",
        "--agent-sandbox-enabled",
        "false",
    ]
    .map(String::from)
    .to_vec();
    if let Some(ns) = &shared {
        controller_args.extend(["--watch-namespace".to_string(), ns.clone()]);
    }

    let controllers = Arc::new(Controllers {
        children: Mutex::new(Vec::new()),
        args: controller_args,
        nats_url: nats_url.clone(),
        kubeconfig: plane.kubeconfig().to_path_buf(),
    });
    controllers.spawn(&opts, 0)?;
    controllers.spawn(&opts, 1)?;
    // The controller first, as in a cluster, where the leader's routers are up before its
    // instance controller creates any channel pod: a durable consumer created later starts
    // at new messages, so a message written before the router's very first start would wait
    // for nobody.
    let probe = Bus::connect(&nats_url).await?;
    let ready = async {
        for name in [
            sympozium_controller::channelrouter::INBOUND_CONSUMER,
            sympozium_controller::channelrouter::COMPLETION_CONSUMER,
            sympozium_controller::channelrouter::APPROVAL_CONSUMER,
            sympozium_controller::agentrun::completion::CONSUMER,
        ] {
            while !matches!(probe.backlog(name).await, Ok(Some(_))) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(120), ready).await.is_err() {
        bail!("the controller's bus consumers never appeared (logs in {})", opts.log_dir.display());
    }

    // Instances, each in its own namespace (as tenants would be), with a channel pod.
    let mut instances = Vec::new();
    for i in 0..opts.instances {
        let ns = match &shared {
            Some(ns) => ns.clone(),
            None => {
                plane.namespace(&client, &format!("soak{}-{i}", std::process::id())).await?.name().to_string()
            }
        };
        let name = format!("bot{i}");
        let platform = match i % 3 {
            0 => Platform::Telegram(FakeTelegram::start(&format!("{i}:SOAK")).await?),
            1 => Platform::Slack(
                FakeSlack::start(&format!("xoxb-soak-{i}"), &format!("xapp-soak-{i}"), "soak").await?,
            ),
            _ => Platform::Discord(
                FakeDiscord::start(&format!("soak-{i}"), Duration::from_millis(1000)).await?,
            ),
        };
        let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
            "metadata": {"name": name},
            "spec": {"agents": {"default": {"model": "gpt-4.1"}},
                     "channels": [{"type": platform.kind(), "configRef": {"secret": "chat-creds"}}]}});
        Api::<SympoziumInstance>::namespaced(client.clone(), &ns)
            .patch(&name, &PatchParams::apply("soak"), &Patch::Apply(&body))
            .await?;
        let health = free_addr()?;
        let mut env = vec![
            ("CHANNEL_TYPE", platform.kind().to_string()),
            ("INSTANCE_NAME", name.clone()),
            ("INSTANCE_NAMESPACE", ns.clone()),
            ("EVENT_BUS_URL", nats_url.clone()),
            ("HEALTH_ADDR", health.to_string()),
            ("WEBHOOK_ADDR", free_addr()?.to_string()),
            ("HEALTH_INTERVAL_SECONDS", "1".into()),
            ("TELEGRAM_POLL_TIMEOUT", "1".into()),
            ("RUST_LOG", "info".into()),
        ];
        env.extend(platform.env(i));
        let inst = Instance {
            name,
            ns,
            platform,
            health,
            env,
            pod: Mutex::new(None),
            offline: AtomicBool::new(false),
        };
        inst.spawn(&opts)?;
        instances.push(Arc::new(inst));
    }
    for inst in &instances {
        if !inst.healthy(Duration::from_secs(60)).await {
            bail!("channel pod of {} never became healthy (logs in {})", inst.name, opts.log_dir.display());
        }
    }

    // The Deployment's part: replicas that exit are started again.
    let supervisor = {
        let controllers = controllers.clone();
        let opts = opts.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let n = controllers.revive(&opts);
                if n > 0 {
                    eprintln!("{n} controller replica(s) had exited (lost the lease) and were started again");
                }
            }
        })
    };
    let agent = tokio::spawn(agent(client.clone(), nats_url.clone(), prefix.clone()));

    // Users write at `rate`; faults land at random moments of that window.
    let window = Duration::from_secs_f64(opts.messages as f64 / opts.rate.max(0.01));
    let mut rng = Rng(opts.seed.max(1));
    let kinds = [Fault::NatsRestart, Fault::ChannelKill, Fault::ControllerKill];
    let mut schedule: Vec<(Duration, Fault)> = (0..opts.faults)
        .map(|k| (window.mul_f64(0.1 + 0.75 * (rng.below(1000) as f64 / 1000.0)), kinds[k % kinds.len()]))
        .collect();
    schedule.sort();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let t0 = Instant::now();

    let sender = {
        let instances = instances.clone();
        let ledger = ledger.clone();
        let rate = opts.rate.max(0.01);
        let n = opts.messages;
        tokio::spawn(async move {
            for idx in 0..n {
                let due = t0 + Duration::from_secs_f64(idx as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                // A Discord bot whose gateway session is gone misses what is written meanwhile
                // (Discord replays only to a resumed session): users write to a bot that is
                // online, as they would see it.
                let mut i = idx % instances.len();
                while instances[i].offline.load(Ordering::SeqCst) {
                    i = (i + 1) % instances.len();
                }
                ledger.lock().unwrap_or_else(|p| p.into_inner()).sent_at.insert(idx, (i, Instant::now()));
                instances[i].platform.user_says((idx / instances.len()) % 5, &message_text(idx));
            }
        })
    };

    let poller = {
        let instances = instances.clone();
        let ledger = ledger.clone();
        tokio::spawn(async move {
            loop {
                ledger.lock().unwrap_or_else(|p| p.into_inner()).poll(&instances);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let mut report = Report { messages: opts.messages, ..Report::default() };
    for (at, fault) in schedule {
        tokio::time::sleep_until((t0 + at).into()).await;
        match fault {
            Fault::NatsRestart => {
                eprintln!("[{:>5.0}s] fault: NATS restart", t0.elapsed().as_secs_f64());
                nats.kill();
                tokio::time::sleep(rng.between(Duration::from_secs(1), Duration::from_secs(4))).await;
                nats.restart().await?;
            }
            Fault::ChannelKill => {
                let inst = instances[rng.below(instances.len() as u64) as usize].clone();
                eprintln!(
                    "[{:>5.0}s] fault: kill -9 channel pod of {} ({})",
                    t0.elapsed().as_secs_f64(),
                    inst.name,
                    inst.platform.kind()
                );
                let discord = matches!(inst.platform, Platform::Discord(_));
                if discord {
                    inst.offline.store(true, Ordering::SeqCst);
                    // What was written just before is on the bus before the bot goes away.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                inst.kill();
                tokio::time::sleep(rng.between(Duration::from_secs(1), Duration::from_secs(3))).await;
                inst.spawn(&opts)?;
                if !inst.healthy(Duration::from_secs(60)).await {
                    bail!("channel pod of {} did not come back", inst.name);
                }
                inst.offline.store(false, Ordering::SeqCst);
            }
            Fault::ControllerKill => {
                let replica = rng.below(2) as usize;
                eprintln!(
                    "[{:>5.0}s] fault: kill -9 controller replica {replica}",
                    t0.elapsed().as_secs_f64()
                );
                controllers.kill(replica);
                tokio::time::sleep(rng.between(Duration::from_secs(1), Duration::from_secs(2))).await;
                controllers.spawn(&opts, replica)?;
            }
        }
        *report.faults.entry(fault).or_default() += 1;
    }
    sender.await?;
    eprintln!(
        "[{:>5.0}s] all {} messages written; waiting for replies",
        t0.elapsed().as_secs_f64(),
        opts.messages
    );

    // Every message answered, or no new reply for the settle time (a slow machine only
    // delays the replies; a stall means something is stuck), then a quiet spell for late
    // doubles.
    let mut last = (0, Instant::now());
    loop {
        let answered = ledger.lock().unwrap_or_else(|p| p.into_inner()).first_reply.len();
        if answered >= opts.messages {
            break;
        }
        if answered > last.0 {
            last = (answered, Instant::now());
        } else if last.1.elapsed() > opts.settle {
            eprintln!("no new reply for {:?}; giving up", opts.settle);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    poller.abort();
    let ledger = {
        let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
        l.poll(&instances);
        std::mem::take(&mut *l)
    };

    // Runs: one per message, each terminal (waiting a little for status to catch up).
    let runs_deadline = Instant::now() + Duration::from_secs(60);
    let all_runs = loop {
        let mut all = Vec::new();
        let namespaces: std::collections::BTreeSet<&str> = instances.iter().map(|i| i.ns.as_str()).collect();
        for ns in namespaces {
            let api: Api<AgentRun> = Api::namespaced(client.clone(), ns);
            all.extend(api.list(&ListParams::default().labels("sympozium.ai/source=channel")).await?.items);
        }
        let terminal = |r: &AgentRun| {
            matches!(
                r.status.as_ref().and_then(|s| s.phase),
                Some(AgentRunPhase::Succeeded | AgentRunPhase::Failed)
            )
        };
        if all.iter().all(terminal) || Instant::now() > runs_deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let mut per_message: HashMap<String, usize> = HashMap::new();
    for r in &all_runs {
        let phase = r.status.as_ref().and_then(|s| s.phase);
        if matches!(phase, Some(AgentRunPhase::Succeeded | AgentRunPhase::Failed)) {
            report.terminal_runs += 1;
        }
        if phase == Some(AgentRunPhase::Failed) {
            report.failed_runs += 1;
        }
        let message = r.annotations().get("sympozium.ai/message").cloned().unwrap_or_default();
        *per_message.entry(message).or_default() += 1;
    }
    report.runs = all_runs.len();
    report.duplicate_runs = per_message.values().filter(|n| **n > 1).count();

    report.replies = ledger.reply_count.values().sum();
    report.replied = ledger.reply_count.len();
    report.duplicates = ledger.reply_count.values().filter(|n| **n > 1).count();
    report.lost = opts.messages - report.replied;
    report.misrouted = ledger.misrouted;
    let mut latencies: Vec<Duration> = ledger
        .first_reply
        .iter()
        .filter_map(|(idx, at)| ledger.sent_at.get(idx).map(|(_, sent)| at.saturating_duration_since(*sent)))
        .collect();
    latencies.sort();
    report.latencies = latencies;
    for m in &ledger.misrouted_examples {
        eprintln!("misrouted or unknown reply: {m}");
    }
    if report.lost > 0 {
        let mut missing: Vec<usize> =
            (0..opts.messages).filter(|i| !ledger.reply_count.contains_key(i)).collect();
        missing.truncate(20);
        eprintln!("unanswered (first 20): {missing:?}");
    }

    // Tidy up: the controllers still run, so the runs' finalizers let the namespaces go.
    for inst in &instances {
        let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
            .delete(&inst.ns, &DeleteParams::default())
            .await;
        inst.kill();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    agent.abort();
    supervisor.abort();
    controllers.kill_all();
    nats.kill();
    report.elapsed = started.elapsed();
    Ok(report)
}
