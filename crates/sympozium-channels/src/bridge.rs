//! The bus side every channel pod shares.
//!
//! * Inbound ([`Inbound::publish`]): a user's message goes to `channel.message.received`
//!   with channel, instance and namespace filled in, under a message id derived from the
//!   platform's id — a publish retried across a NATS outage (or a platform redelivering a
//!   webhook) is stored once. It retries until the bus has it, so platform clients confirm a
//!   message to the platform (Telegram offset, Slack envelope ack, webhook 200) only after.
//! * Outbound ([`outbound_loop`]): a durable consumer of `channel.message.send` per instance
//!   and channel type; only messages addressed to this instance (metadata `instanceName`,
//!   and `namespace` when both sides know it) and channel are posted; everything else is
//!   acknowledged and skipped. A message is acknowledged only once every part is posted; a
//!   failing part is retried with backoff (or after the platform's `retry_after`), continuing
//!   from the part that failed, and a redelivery of a message already posted is recognised
//!   by its stream sequence, so nothing is posted twice.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use sympozium_bus::payloads::{InboundMessage, OutboundMessage};
use sympozium_bus::trace::TraceParent;
use sympozium_bus::{Bus, Delivery, Envelope, Outcome, topics};

use crate::config::ChannelType;
use crate::platform::{Part, Platform, SendError};
use crate::split::split;

/// Who this pod is: channel type, instance and namespace.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Channel type.
    pub channel: ChannelType,
    /// Instance name.
    pub instance: String,
    /// Instance namespace (may be empty when not wired).
    pub namespace: String,
}

impl Identity {
    /// Envelope metadata of everything this pod publishes.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::from([
            ("channel".to_string(), self.channel.as_str().to_string()),
            ("instanceName".to_string(), self.instance.clone()),
        ]);
        if !self.namespace.is_empty() {
            m.insert("namespace".into(), self.namespace.clone());
        }
        m
    }

    /// Whether an outbound message is addressed to this pod.
    pub fn owns(&self, envelope: &Envelope, message: &OutboundMessage) -> bool {
        let channel =
            if message.channel.is_empty() { envelope.meta("channel") } else { message.channel.as_str() };
        let namespace = envelope.meta("namespace");
        channel == self.channel.as_str()
            && envelope.meta("instanceName") == self.instance
            && (namespace.is_empty() || self.namespace.is_empty() || namespace == self.namespace)
    }

    /// The namespace on the bus: a pod not told its instance's namespace serves one in
    /// `default` (the controller always tells it).
    pub fn bus_namespace(&self) -> &str {
        if self.namespace.is_empty() { "default" } else { &self.namespace }
    }

    /// This instance's own subject of the base topic `base` (`<base>.<ns>.<instance>`), the
    /// only one its NATS user may publish on (or, for `channel.message.send`, read).
    pub fn topic(&self, base: &str) -> String {
        topics::scoped(base, self.bus_namespace(), &self.instance)
    }

    /// The durable consumer name of this pod's outbound messages (NATS names allow no dots).
    pub fn consumer(&self) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
                .collect()
        };
        let ns = if self.namespace.is_empty() { "_".to_string() } else { clean(&self.namespace) };
        format!("channel-{}-{ns}-{}", self.channel, clean(&self.instance))
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(5))
}

/// Publishes inbound messages for a platform client.
#[derive(Clone, Debug)]
pub struct Inbound {
    bus: Bus,
    identity: Arc<Identity>,
}

impl Inbound {
    /// An inbound publisher for `identity`.
    pub fn new(bus: Bus, identity: Arc<Identity>) -> Self {
        Self { bus, identity }
    }

    /// Publishes `msg` (channel, instance and namespace filled in), retrying until the bus
    /// stores it. `msg.id` (the platform's message id) makes retries and redeliveries of the
    /// same message land once.
    pub async fn publish(&self, mut msg: InboundMessage) {
        let id = &self.identity;
        msg.channel = id.channel.as_str().to_string();
        msg.instance_name = id.instance.clone();
        if !id.namespace.is_empty() {
            msg.namespace = Some(id.namespace.clone());
        }
        let once = msg
            .id
            .as_ref()
            .map(|mid| format!("in/{}/{}/{}/{}/{mid}", id.namespace, id.instance, id.channel, msg.chat_id));
        // The message starts a trace (root span `<type>.message.received`, exported when
        // telemetry is on); the router, the run's pod and the model calls continue it. With
        // no span context (a subscriber without OpenTelemetry) a fresh id still starts one.
        let span = tracing::info_span!(
            "channel.message.received",
            otel.name = %format!("{}.message.received", id.channel.as_str()),
            otel.kind = "producer",
            sympozium.channel = id.channel.as_str(),
            sympozium.instance = %id.instance,
            sympozium.sender.id = %msg.sender_id,
            messaging.system = "nats",
            messaging.destination.name = topics::CHANNEL_MESSAGE_RECEIVED,
        );
        let traceparent = span
            .in_scope(sympozium_telemetry::current_traceparent)
            .unwrap_or_else(|| TraceParent::root().to_string());
        tracing::Instrument::instrument(self.publish_traced(&msg, once.as_deref(), &traceparent), span).await;
    }

    async fn publish_traced(&self, msg: &InboundMessage, once: Option<&str>, traceparent: &str) {
        let id = &self.identity;
        let mut attempt = 0u32;
        loop {
            let topic = id.topic(topics::CHANNEL_MESSAGE_RECEIVED);
            let result = match once {
                Some(once) => {
                    self.bus.publish_once_traced(&topic, id.metadata(), msg, once, traceparent).await
                }
                None => self.bus.publish_traced(&topic, id.metadata(), msg, Some(traceparent)).await,
            };
            match result {
                Ok(()) => {
                    tracing::info!(chat = %msg.chat_id, sender = %msg.sender_id, %traceparent, "inbound message published");
                    return;
                }
                Err(e) => {
                    let delay = backoff(attempt);
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(error = %e, retry_in = ?delay, "publishing an inbound message failed");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// Stream sequences of messages already posted (bounded; oldest forgotten first).
#[derive(Default)]
struct Posted {
    order: VecDeque<u64>,
    set: HashSet<u64>,
}

impl Posted {
    const CAPACITY: usize = 4096;

    fn contains(&self, seq: u64) -> bool {
        self.set.contains(&seq)
    }

    fn insert(&mut self, seq: u64) {
        if self.set.insert(seq) {
            self.order.push_back(seq);
            while self.order.len() > Self::CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// Posts this pod's outbound messages through `platform` until the bus connection is gone.
pub async fn outbound_loop<P: Platform>(bus: Bus, identity: Arc<Identity>, platform: Arc<P>) {
    // The instance's own outbound subject, through this platform's own consumer of the
    // instance's bus identity: the only consumer its NATS user may pull from (and no other
    // instance's user may touch).
    let topic = identity.topic(topics::CHANNEL_MESSAGE_SEND);
    let bus_identity = sympozium_bus::scope::Identity::channel(identity.bus_namespace(), &identity.instance);
    let consumer = bus_identity.channel_consumer_name(&topic, identity.channel.as_str());
    let poster = Poster { identity, platform, posted: Posted::default(), progress: HashMap::new() };
    bus.serve(&consumer, &topic, poster).await;
}

/// Posts what [`Bus::serve`] hands out.
struct Poster<P> {
    identity: Arc<Identity>,
    platform: Arc<P>,
    posted: Posted,
    /// Parts already posted of a message whose later part failed (by stream sequence).
    progress: HashMap<u64, usize>,
}

impl<P: Platform> sympozium_bus::Handler for Poster<P> {
    async fn handle(&mut self, d: &mut Delivery) -> Outcome {
        handle(d, &self.identity, self.platform.as_ref(), &mut self.posted, &mut self.progress).await
    }
}

/// Posts one outbound message (every part not posted yet), retrying the platform until
/// it accepts or refuses for good; every path ends in an acknowledgement.
async fn handle<P: Platform>(
    d: &Delivery,
    identity: &Identity,
    platform: &P,
    posted: &mut Posted,
    progress: &mut HashMap<u64, usize>,
) -> Outcome {
    let message: OutboundMessage = match serde_json::from_value(d.envelope.data.clone()) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "discarding an outbound message that does not parse");
            return Outcome::Ack;
        }
    };
    if !identity.owns(&d.envelope, &message) {
        return Outcome::Ack;
    }
    let seq = d.stream_sequence().unwrap_or_default();
    if seq != 0 && posted.contains(seq) {
        tracing::debug!(seq, "redelivery of a message already posted");
        return Outcome::Ack;
    }
    let parts = split(&message.text, platform.limit());
    let mut next = progress.get(&seq).copied().unwrap_or(0);
    let mut attempt = 0u32;
    while let Some(text) = parts.get(next) {
        let key = format!("{seq}-{next}");
        match platform.send(Part { message: &message, text, index: next, key: &key }).await {
            Ok(()) => {
                next += 1;
                attempt = 0;
                progress.insert(seq, next);
            }
            Err(SendError::Permanent(reason)) => {
                // Retrying cannot help (unknown chat, refused text); keeping it would block
                // every later message.
                tracing::warn!(chat = %message.chat_id, %reason, "the platform refused an outbound message; dropped");
                break;
            }
            Err(SendError::RetryAfter(delay, reason)) => {
                tracing::info!(retry_in = ?delay, %reason, "rate limited by the platform");
                tokio::time::sleep(delay).await;
            }
            Err(SendError::Transient(reason)) => {
                let delay = backoff(attempt);
                attempt = attempt.saturating_add(1);
                tracing::warn!(chat = %message.chat_id, %reason, retry_in = ?delay, "posting failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
    progress.remove(&seq);
    if seq != 0 {
        posted.insert(seq);
    }
    tracing::info!(chat = %message.chat_id, parts = parts.len(), "outbound message delivered");
    // Posted, or dropped as refused: either way never posted again.
    Outcome::Ack
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity { channel: ChannelType::Telegram, instance: "a.b".into(), namespace: "ns".into() }
    }

    fn env(meta: &[(&str, &str)]) -> Envelope {
        Envelope::new(
            "channel.message.send",
            meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            serde_json::Value::Null,
        )
    }

    #[test]
    fn only_this_instance_and_channel() {
        let m = OutboundMessage { channel: "telegram".into(), ..Default::default() };
        assert!(id().owns(&env(&[("instanceName", "a.b"), ("namespace", "ns")]), &m));
        assert!(id().owns(&env(&[("instanceName", "a.b")]), &m), "the IPC bridge sends no namespace");
        assert!(!id().owns(&env(&[("instanceName", "a.b"), ("namespace", "other")]), &m));
        assert!(!id().owns(&env(&[("instanceName", "c")]), &m));
        let slack = OutboundMessage { channel: "slack".into(), ..Default::default() };
        assert!(!id().owns(&env(&[("instanceName", "a.b")]), &slack));
        assert_eq!(id().consumer(), "channel-telegram-ns-a_b");
    }

    #[test]
    fn posted_is_bounded() {
        let mut p = Posted::default();
        for i in 0..5000 {
            p.insert(i);
        }
        assert!(!p.contains(0) && p.contains(4999));
        assert_eq!(p.set.len(), Posted::CAPACITY);
    }
}
