//! Queue depths of the controller's durable bus consumers (the channel router's inbound
//! messages, replies and approvals, spawn requests, schedule upserts, run completions,
//! channel health), sampled from JetStream and recorded as `sympozium_bus_consumer_pending`
//! on `/metrics` and `sympozium.bus.consumer.pending` over OTLP. A growing `pending` means
//! messages arrive faster than the controller handles them.

use std::time::Duration;

use sympozium_bus::Bus;
use sympozium_kube::metrics::Metrics;

/// Every durable consumer the controller's bus routers read from.
pub const CONSUMERS: &[&str] = &[
    crate::channelrouter::INBOUND_CONSUMER,
    crate::channelrouter::COMPLETION_CONSUMER,
    crate::channelrouter::APPROVAL_CONSUMER,
    crate::spawn::CONSUMER,
    crate::schedule::router::CONSUMER,
    crate::agentrun::completion::CONSUMER,
    crate::instance::health::CONSUMER,
];

/// How often the depths are sampled by [`run`] in the controller binary.
pub const INTERVAL: Duration = Duration::from_secs(15);

/// Samples every consumer once. A consumer that does not exist (yet) counts as empty; a
/// bus that does not answer leaves the last values and is logged at debug level only, as
/// the routers report outages themselves.
pub async fn sample(bus: &Bus, metrics: &Metrics) {
    for consumer in CONSUMERS {
        match bus.backlog(consumer).await {
            Ok(backlog) => {
                let b = backlog.unwrap_or_default();
                metrics.queue_depth(consumer, b.pending, b.unacknowledged);
            }
            Err(e) => tracing::debug!(%consumer, error = %e, "queue depth not sampled"),
        }
    }
}

/// Samples every `interval` until the process stops.
pub async fn run(bus: Bus, metrics: Metrics, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sample(&bus, &metrics).await;
    }
}
