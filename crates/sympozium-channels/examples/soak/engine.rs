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

#[path = "faults.rs"]
mod faults;
#[path = "ledger.rs"]
mod ledger;
#[path = "processes.rs"]
mod processes;
#[path = "report.rs"]
mod report;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_bus::Bus;
use sympozium_testkit::TestPlane;
use sympozium_testkit::fake_chat::{FakeDiscord, FakeSlack, FakeTelegram};
use sympozium_testkit::nats::NatsServer;

use faults::Rng;
use ledger::{Ledger, agent, message_text};
use processes::{Controllers, Instance, Platform, free_addr};
pub use report::Report;

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
    let schedule = faults::schedule(&mut rng, opts.faults, window);
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
        let stage =
            faults::Stage { nats: &mut nats, instances: &instances, controllers: &controllers, opts: &opts };
        faults::inject(fault, stage, &mut rng, t0).await?;
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
        let namespaces: BTreeSet<&str> = instances.iter().map(|i| i.ns.as_str()).collect();
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
