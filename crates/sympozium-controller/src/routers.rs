//! The bus routers: durable consumers that turn bus messages into Kubernetes changes
//! (chat messages into runs, schedule and spawn requests, channel health, run outcomes).
//!
//! They run beside the controllers, on the elected leader only, and share the controllers'
//! [`Context`]: one client, the same `--watch-namespace` scope (a message naming a
//! namespace outside it is not acted on), Kubernetes Events on the objects they act for,
//! and their work on `/metrics` as the controllers' is — every handled message counts in
//! `sympozium_reconciles_total{controller="<router>"}` and its duration histogram, every
//! message handed back for redelivery in `sympozium_reconcile_failures_total`.

use std::sync::Arc;

use sympozium_bus::{Bus, Delivery, Handler, Outcome};
use sympozium_kube::metrics::Metrics;

use crate::context::Context;
use crate::{agentrun, channelrouter, instance, queue_depth, schedule, spawn};

/// Starts every router on its own task; they run until the process stops.
pub fn spawn(ctx: &Arc<Context>, bus: &Bus) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(schedule::router::run(ctx.clone(), bus.clone())),
        tokio::spawn(channelrouter::run(ctx.clone(), bus.clone())),
        tokio::spawn(spawn::run(ctx.clone(), bus.clone())),
        tokio::spawn(instance::health::run(ctx.clone(), bus.clone())),
        tokio::spawn(queue_depth::run(bus.clone(), ctx.metrics.clone(), queue_depth::INTERVAL)),
        tokio::spawn(agentrun::completion::run(ctx.clone(), bus.clone())),
    ]
}

/// A router's handler with its messages counted and timed on `/metrics` under `router`.
pub struct Observed<H> {
    metrics: Metrics,
    router: &'static str,
    inner: H,
}

/// Wraps `inner` so its messages show on `/metrics` under `router`.
pub fn observed<H: Handler>(ctx: &Context, router: &'static str, inner: H) -> Observed<H> {
    Observed { metrics: ctx.metrics.clone(), router, inner }
}

impl<H: Handler> Handler for Observed<H> {
    async fn handle(&mut self, delivery: &mut Delivery) -> Outcome {
        let _timer = self.metrics.reconcile(self.router);
        let outcome = self.inner.handle(delivery).await;
        match outcome {
            Outcome::Ack => {}
            Outcome::Nak(_) => self.metrics.failure(self.router, "redelivered"),
            Outcome::Term => self.metrics.failure(self.router, "dropped"),
        }
        outcome
    }
}
