//! Channel message → AgentRun created: latency of the channel router, measured end to end
//! on the test control plane with a real nats-server. Each message is published, and the
//! clock stops when the AgentRun it became is seen by a watch (one message at a time, so
//! the figure is the per-message latency, not queueing). Prints p50/p90/p99/max, twice:
//! messages that each start a conversation (the creation path alone), then messages in one
//! ongoing chat, where each new run reads back the conversation's earlier answered turns.
//!
//! `make bench-channel-router` (uses `TESTPLANE_KUBECONFIG`, or starts the test plane);
//! `BENCH_MESSAGES` overrides the message count (default 1000; the one-chat pass sends a
//! fifth of it). Never part of `make test`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_bus::{Bus, topics};
use sympozium_controller::channelrouter;
use sympozium_testkit::TestPlane;
use sympozium_testkit::nats::NatsServer;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied().unwrap_or_default()
}

struct Sender<'a> {
    bus: &'a Bus,
    ns: &'a str,
    inst: &'a str,
    seen: &'a mut tokio::sync::mpsc::UnboundedReceiver<String>,
    next_id: usize,
}

impl Sender<'_> {
    /// Sends `n` messages one at a time (chat of message `i` from `chat`); latencies and
    /// the elapsed time of the pass.
    async fn measure(
        &mut self,
        n: usize,
        chat: impl Fn(usize) -> String,
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
            self.bus.publish(topics::CHANNEL_MESSAGE_RECEIVED, meta, &data).await?;
            loop {
                let task = tokio::time::timeout(Duration::from_secs(30), self.seen.recv())
                    .await
                    .with_context(|| format!("no run for message {id} within 30 s"))?;
                match task {
                    Some(t) if t == text => break,
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
    let n: usize = std::env::var("BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
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
    let router = tokio::spawn(channelrouter::run(client.clone(), Bus::connect(&nats.url()).await?));

    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(async move {
        let mut stream =
            std::pin::pin!(watcher(runs, watcher::Config::default()).default_backoff().applied_objects());
        while let Some(Ok(run)) = stream.next().await {
            let _ = tx.send(run.spec.task.clone());
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut send = Sender { bus: &bus, ns: &ns, inst, seen: &mut seen, next_id: 0 };
    let fresh = send.measure(n, |i| format!("chat-{i}")).await?;
    report(
        &format!("channel message -> AgentRun created, {n} messages each in a new chat, one at a time:"),
        fresh,
    );
    let one = (n / 5).max(1);
    let ongoing = send.measure(one, |_| "ongoing".to_string()).await?;
    report(&format!("the same, {one} messages in one chat (earlier turns read back for each run):"), ongoing);
    router.abort();
    watch.abort();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    Ok(())
}
