//! Who answered what (the platforms' replies matched to the messages), and the agent
//! stand-in that answers each run on the bus.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_bus::{Bus, topics};

use super::processes::Instance;

/// Who answered what: per message the replies seen and when the first came.
#[derive(Default)]
pub struct Ledger {
    pub sent_at: HashMap<usize, (usize, Instant)>,
    pub first_reply: HashMap<usize, Instant>,
    pub reply_count: HashMap<usize, usize>,
    pub misrouted: usize,
    pub misrouted_examples: Vec<String>,
    pub seen_per_instance: Vec<usize>,
}

pub const REPLY_PREFIX: &str = "re: soak message ";

pub fn message_text(idx: usize) -> String {
    format!("soak message {idx}")
}

impl Ledger {
    pub fn poll(&mut self, instances: &[Arc<Instance>]) {
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
pub async fn agent(client: Client, nats_url: String, prefix: String) -> anyhow::Result<()> {
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
