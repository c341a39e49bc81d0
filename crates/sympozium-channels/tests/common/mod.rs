//! Shared harness of the channel tests: a namespace on the test control plane with an
//! instance whose channel has access control, a real nats-server, the controller's channel
//! router, and helpers to finish a run the way its IPC bridge would (publishing the agent's
//! result on the bus).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)] // test code

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_bus::{Bus, Delivery, topics};
use sympozium_channels::config::{ChannelType, Config};
use sympozium_testkit::TestPlane;
use sympozium_testkit::nats::NatsServer;
use tokio::sync::mpsc::Receiver;

/// Bound of every wait.
pub const WAIT: Duration = Duration::from_secs(30);

/// The text of the deny message the test instances use.
pub const DENY: &str = "Sorry, you may not talk to this agent.";

/// A test's world: plane namespace, instance, NATS, bus and router.
pub struct World {
    pub client: Client,
    pub ns: String,
    pub instance: String,
    pub nats: NatsServer,
    pub bus: Bus,
    pub router: tokio::task::JoinHandle<()>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.router.abort();
    }
}

/// A namespace with instance `<prefix>-bot` whose `channel` refuses `denied_sender`, and the
/// channel router running against a fresh nats-server.
pub async fn world(prefix: &str, channel: ChannelType, denied_sender: &str) -> World {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, prefix).await.unwrap().name().to_string();
    let instance = format!("{prefix}-bot");
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "chat-creds"},
        "stringData": {"TOKEN": "not-read-by-the-test"}}))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .patch("chat-creds", &PatchParams::apply("test").force(), &Patch::Apply(&secret))
        .await
        .unwrap();
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
        "metadata": {"name": instance},
        "spec": {"agents": {"default": {"model": "gpt-4.1"}},
                 "authRefs": [{"provider": "openai", "secret": "key"}],
                 "channels": [{"type": channel.as_str(), "configRef": {"secret": "chat-creds"},
                               "accessControl": {"deniedSenders": [denied_sender], "denyMessage": DENY}}]}});
    Api::<SympoziumInstance>::namespaced(client.clone(), &ns)
        .patch(&instance, &PatchParams::apply("test"), &Patch::Apply(&body))
        .await
        .unwrap();
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let router = tokio::spawn(sympozium_controller::channelrouter::run(
        std::sync::Arc::new(sympozium_controller::context::Context::with_defaults(
            client.clone(),
            Some(ns.clone()),
        )),
        bus.clone(),
    ));
    World { client, ns, instance, nats, bus, router }
}

impl World {
    /// A channel configuration for this world's instance (fast polling and health).
    pub fn config(&self, channel: ChannelType) -> Config {
        channel_config(channel, &self.instance, &self.ns, &self.nats.url())
    }

    /// The AgentRuns of the instance.
    pub async fn runs(&self) -> Vec<AgentRun> {
        let api: Api<AgentRun> = Api::namespaced(self.client.clone(), &self.ns);
        let selector = format!("sympozium.ai/instance={}", self.instance);
        api.list(&ListParams::default().labels(&selector)).await.unwrap().items
    }

    /// Waits for the run created for the user message `text` and returns it.
    pub async fn run_for(&self, text: &str) -> AgentRun {
        let found =
            async {
                loop {
                    if let Some(run) = self.runs().await.into_iter().find(|r| {
                        r.annotations().get("sympozium.ai/message").map(String::as_str) == Some(text)
                    }) {
                        return run;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
        tokio::time::timeout(WAIT, found).await.unwrap_or_else(|_| panic!("no AgentRun for {text:?}"))
    }

    /// Finishes the run answering `text` with `answer`, as its IPC bridge would; returns the run.
    pub async fn answer(&self, text: &str, answer: &str) -> AgentRun {
        let run = self.run_for(text).await;
        let meta = BTreeMap::from([
            ("agentRunID".to_string(), run.name_any()),
            ("instanceName".to_string(), self.instance.clone()),
        ]);
        self.bus
            .publish(topics::AGENT_RUN_COMPLETED, meta, &json!({"status": "success", "response": answer}))
            .await
            .unwrap();
        run
    }
}

/// A channel configuration with fast polling and health, health and webhook on free ports.
pub fn channel_config(channel: ChannelType, instance: &str, ns: &str, nats: &str) -> Config {
    let mut c = Config::new(channel, instance, ns, nats);
    c.health_addr = "127.0.0.1:0".parse().unwrap();
    c.webhook_addr = "127.0.0.1:0".parse().unwrap();
    c.health_interval = Duration::from_secs(1);
    c.telegram_poll_timeout = 1;
    c
}

/// `GET /healthz` status code.
pub async fn healthz(addr: std::net::SocketAddr) -> u16 {
    reqwest::get(format!("http://{addr}/healthz")).await.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// Waits until `/healthz` answers `code`.
pub async fn wait_health(addr: std::net::SocketAddr, code: u16) {
    let ok = async {
        while healthz(addr).await != code {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(WAIT, ok).await.unwrap_or_else(|_| panic!("/healthz never answered {code}"));
}

/// Collects what arrives on `rx` for `quiet` after the last message; acks everything.
pub async fn drain(rx: &mut Receiver<Delivery>, quiet: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(Some(d)) = tokio::time::timeout(quiet, rx.recv()).await {
        d.ack().await;
        out.push(d.envelope.data.clone());
    }
    out
}

/// Waits for the next message on `rx` whose data satisfies `pred`.
pub async fn next_matching(rx: &mut Receiver<Delivery>, pred: impl Fn(&Value) -> bool) -> Delivery {
    let found = async {
        loop {
            let d = rx.recv().await.unwrap();
            d.ack().await;
            if pred(&d.envelope.data) {
                return d;
            }
        }
    };
    tokio::time::timeout(WAIT, found).await.expect("the expected bus message")
}

/// Publishes an outbound message for `instance`'s `channel` (as the router would).
pub async fn send(
    bus: &Bus,
    channel: ChannelType,
    instance: &str,
    ns: &str,
    chat: &str,
    text: &str,
    thread: Option<&str>,
) {
    let meta = BTreeMap::from([
        ("instanceName".to_string(), instance.to_string()),
        ("channel".to_string(), channel.as_str().to_string()),
        ("namespace".to_string(), ns.to_string()),
    ]);
    let mut data = json!({"channel": channel.as_str(), "chatId": chat, "text": text});
    if let Some(t) = thread {
        data["threadId"] = t.into();
    }
    bus.publish(&topics::channel_send(if ns.is_empty() { "default" } else { ns }, instance), meta, &data)
        .await
        .unwrap();
}
