//! Channel message → AgentRun created: latency of the channel router, measured end to end
//! on the test control plane with a real nats-server. Each message is published, and the
//! clock stops when the AgentRun it became is seen by a watch (one message at a time, so
//! the figure is the per-message latency, not queueing). Prints p50/p90/p99/max, twice:
//! messages that each start a conversation (the creation path alone), then messages in one
//! ongoing chat, where each run is answered (marked Succeeded with a result, outside the
//! timed part) so that every new run carries the conversation's earlier turns; as in a real
//! chat, the next message is sent once the reply is out (the router has published it and
//! marked the run `sent`), so each figure is the message's own path, not its overlap with
//! the router still delivering the previous answer. A last pass
//! creates copies of the final chat run directly, without bus or router, timed the same way:
//! the floor the API server's create and the watch set under the router's figure.
//!
//! `make bench-channel-router` (uses `TESTPLANE_KUBECONFIG`, or starts the test plane);
//! `BENCH_MESSAGES` sets the count of messages in new chats (default 1000) and
//! `BENCH_CHAT_MESSAGES` the length of the one ongoing chat (default 1000). Never part of
//! `make test`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_bus::{Bus, topics};
use sympozium_controller::channelrouter;
use sympozium_controller::channelrouter::build::REPLY_STATE;
use sympozium_controller::channelrouter::history::MESSAGE;
use sympozium_testkit::TestPlane;
use sympozium_testkit::nats::NatsServer;

/// The subject a channel pod of the instance `meta` names publishes on (its own).
fn received(meta: &std::collections::BTreeMap<String, String>) -> String {
    let get = |k: &str| meta.get(k).map(String::as_str).filter(|v| !v.is_empty());
    topics::channel_received(get("namespace").unwrap_or("default"), get("instanceName").unwrap_or("none"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied().unwrap_or_default()
}

/// A run as the bench's watch saw it: its name, the chat message it carries and its reply
/// state (`pending` until the router has sent the answer, then `sent`).
struct Seen {
    name: String,
    message: String,
    reply_state: Option<String>,
}

struct Sender<'a> {
    bus: &'a Bus,
    ns: &'a str,
    inst: &'a str,
    runs: &'a Api<AgentRun>,
    seen: &'a mut tokio::sync::mpsc::UnboundedReceiver<Seen>,
    next_id: usize,
    /// The name of the last run a message became.
    last_run: Option<String>,
    /// How long each publish took to be acknowledged by JetStream (part of each latency).
    published: Vec<Duration>,
}

impl Sender<'_> {
    /// Sends `n` messages one at a time (chat of message `i` from `chat`); with `answer`,
    /// each run is then marked Succeeded with a result (untimed). Latencies and the elapsed
    /// time of the pass.
    async fn measure(
        &mut self,
        n: usize,
        chat: impl Fn(usize) -> String,
        answer: bool,
    ) -> anyhow::Result<(Vec<Duration>, Duration)> {
        let mut latencies = Vec::with_capacity(n);
        let started = Instant::now();
        for i in 0..n {
            let id = self.next_id;
            self.next_id += 1;
            let meta = BTreeMap::from([
                ("channel".to_string(), "telegram".to_string()),
                ("instanceName".to_string(), self.inst.to_string()),
                ("namespace".to_string(), self.ns.to_string()),
            ]);
            let text = format!("message {id}");
            let data = json!({"channel": "telegram", "instanceName": self.inst, "senderId": "1", "chatId": chat(i),
                "text": text, "metadata": {"messageId": id.to_string()}});
            let t0 = Instant::now();
            self.bus.publish(&received(&meta), meta, &data).await?;
            self.published.push(t0.elapsed());
            let run = loop {
                let seen = tokio::time::timeout(Duration::from_secs(30), self.seen.recv())
                    .await
                    .with_context(|| format!("no run for message {id} within 30 s"))?;
                match seen {
                    Some(seen) if seen.message == text => break seen.name,
                    Some(_) => continue,
                    None => bail!("the watch ended"),
                }
            };
            latencies.push(t0.elapsed());
            self.last_run = Some(run.clone());
            if answer {
                let status = json!({"status": {"phase": "Succeeded", "result": format!("answer to {text}")}});
                self.runs.patch_status(&run, &PatchParams::default(), &Patch::Merge(&status)).await?;
                self.reply_sent(&run).await?;
            }
        }
        Ok((latencies, started.elapsed()))
    }

    /// Waits (untimed) until the router has sent the reply of the run `name`.
    async fn reply_sent(&mut self, name: &str) -> anyhow::Result<()> {
        loop {
            let seen = tokio::time::timeout(Duration::from_secs(30), self.seen.recv())
                .await
                .with_context(|| format!("no reply sent for run {name} within 30 s"))?;
            match seen {
                Some(seen) if seen.name == name && seen.reply_state.as_deref() == Some("sent") => {
                    return Ok(());
                }
                Some(_) => continue,
                None => bail!("the watch ended"),
            }
        }
    }

    /// The floor under the router's figure: `n` copies of the run named `template` created
    /// directly by this process, one at a time, each timed until the watch sees it — the
    /// API server's create and the watch, without the bus or the router.
    async fn measure_direct(
        &mut self,
        n: usize,
        template: &str,
    ) -> anyhow::Result<(Vec<Duration>, Duration)> {
        let template = self.runs.get(template).await?;
        let mut latencies = Vec::with_capacity(n);
        let started = Instant::now();
        for i in 0..n {
            let text = format!("direct {i}");
            let mut run = AgentRun::new(&format!("direct-{i}"), template.spec.clone());
            run.metadata.labels = template.metadata.labels.clone();
            let mut annotations = template.metadata.annotations.clone().unwrap_or_default();
            annotations.insert(MESSAGE.to_string(), text.clone());
            run.metadata.annotations = Some(annotations);
            let t0 = Instant::now();
            self.runs.create(&PostParams::default(), &run).await?;
            loop {
                let seen = tokio::time::timeout(Duration::from_secs(30), self.seen.recv())
                    .await
                    .with_context(|| format!("direct run {i} not seen within 30 s"))?;
                match seen {
                    Some(seen) if seen.message == text => break,
                    Some(_) => continue,
                    None => bail!("the watch ended"),
                }
            }
            latencies.push(t0.elapsed());
        }
        Ok((latencies, started.elapsed()))
    }
}

fn report(title: &str, (mut latencies, total): (Vec<Duration>, Duration)) {
    let n = latencies.len();
    latencies.sort();
    let mean = latencies.iter().sum::<Duration>() / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    println!("{title}");
    println!(
        "  p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms  mean {:.1} ms  ({:.0} msg/s)",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.90).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3,
        n as f64 / total.as_secs_f64()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count = |var: &str| std::env::var(var).ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(1000);
    let (n, chat_len) = (count("BENCH_MESSAGES"), count("BENCH_CHAT_MESSAGES"));
    let plane = TestPlane::get()?;
    let client = plane.client().await?;
    let ns = plane.namespace(&client, "bench-chan").await?.name().to_string();
    let inst = "bench";
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance", "metadata": {"name": inst},
        "spec": {"agents": {"default": {"model": "gpt-4.1"}}, "channels": [{"type": "telegram", "configRef": {"secret": "tg"}}]}});
    Api::<SympoziumInstance>::namespaced(client.clone(), &ns)
        .patch(inst, &PatchParams::apply("bench"), &Patch::Apply(&body))
        .await?;
    let nats = NatsServer::start().await?;
    let bus = Bus::connect(&nats.url()).await?;
    // The router reads instances from the instance controller's store, as in the controller
    // manager; a reflector fills one here without running that controller (whose reconciles
    // of the bench's instance on every run would be timed as well).
    // The router's client is the controller manager's: one HTTP/2 connection.
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(plane.kubeconfig())?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let router_client = sympozium_kube::client::multiplexed(config)?;
    let ctx = sympozium_controller::context::Context::with_defaults(router_client, Some(ns.clone()));
    let (store, writer) = kube::runtime::reflector::store();
    let _ = ctx.watched.instances.set(store);
    let reflect =
        watcher(Api::<SympoziumInstance>::namespaced(client.clone(), &ns), watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .for_each(|_| futures::future::ready(()));
    let instances = tokio::spawn(reflect);
    let ctx = std::sync::Arc::new(ctx);
    let router = tokio::spawn(channelrouter::run(ctx, Bus::connect(&nats.url()).await?));

    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let watched = runs.clone();
    let watch = tokio::spawn(async move {
        let mut stream =
            std::pin::pin!(watcher(watched, watcher::Config::default()).default_backoff().applied_objects());
        while let Some(Ok(run)) = stream.next().await {
            // The chat message as written (the task may carry the conversation before it).
            let message = run.annotations().get(MESSAGE).cloned().unwrap_or_else(|| run.spec.task.clone());
            let reply_state = run.annotations().get(REPLY_STATE).cloned();
            let _ = tx.send(Seen { name: run.name_any(), message, reply_state });
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut send = Sender {
        bus: &bus,
        ns: &ns,
        inst,
        runs: &runs,
        seen: &mut seen,
        next_id: 0,
        last_run: None,
        published: Vec::new(),
    };
    let fresh = send.measure(n, |i| format!("chat-{i}"), false).await?;
    report(
        &format!("channel message -> AgentRun created, {n} messages each in a new chat, one at a time:"),
        fresh,
    );
    // Reported in tenths so the growth with the chat's length shows.
    let tenth = (chat_len / 10).max(1);
    let mut all = Vec::new();
    let mut done = 0;
    while done < chat_len {
        let step = tenth.min(chat_len - done);
        let (lat, total) = send.measure(step, |_| "ongoing".to_string(), true).await?;
        done += step;
        report(&format!("  messages {}..{done} of one chat:", done - step + 1), (lat.clone(), total));
        all.push((lat, total));
    }
    let (lat, total) = all.into_iter().fold((Vec::new(), Duration::ZERO), |(mut l, t), (lat, total)| {
        l.extend(lat);
        (l, t + total)
    });
    report(
        &format!(
            "the same, {chat_len} messages in one chat, each answered (earlier turns carried into each run):"
        ),
        (lat, total),
    );
    let mut published = std::mem::take(&mut send.published);
    published.sort();
    println!(
        "of each latency above, the publish until JetStream acknowledged it: p50 {:.1} ms  p99 {:.1} ms",
        percentile(&published, 0.50).as_secs_f64() * 1e3,
        percentile(&published, 0.99).as_secs_f64() * 1e3
    );
    // The same runs created without the router: what the API server and the watch take.
    let last = send.last_run.clone().context("no run seen")?;
    report(
        &format!(
            "AgentRun created directly (the last chat run's copy) -> seen by the watch, {n} one at a time:"
        ),
        send.measure_direct(n, &last).await?,
    );
    router.abort();
    instances.abort();
    watch.abort();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    Ok(())
}
