//! Connection health: the platform client sets it, `/healthz` answers from it (200 when
//! connected, 503 otherwise) and `channel.health.update` events report it — at once on every
//! change and periodically, so the instance's `status.channels[].lastHealthCheck` stays fresh.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;
use sympozium_bus::Bus;
use tokio::sync::watch;

/// The platform connection as last observed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    /// Whether the platform connection works.
    pub connected: bool,
    /// Why not (or a note), never containing credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Handle the platform client reports its connection state through.
#[derive(Clone, Debug)]
pub struct HealthReporter {
    tx: watch::Sender<Health>,
}

impl HealthReporter {
    /// A reporter starting "not connected yet".
    pub fn new() -> (Self, watch::Receiver<Health>) {
        let (tx, rx) = watch::channel(Health { connected: false, message: Some("connecting".into()) });
        (Self { tx }, rx)
    }

    /// The connection works.
    pub fn connected(&self) {
        self.set(Health { connected: true, message: None });
    }

    /// The connection is down, because of `why`.
    pub fn disconnected(&self, why: impl Into<String>) {
        self.set(Health { connected: false, message: Some(why.into()) });
    }

    fn set(&self, health: Health) {
        self.tx.send_if_modified(|h| {
            let changed = *h != health;
            *h = health;
            changed
        });
    }

    /// The current state.
    pub fn current(&self) -> Health {
        self.tx.borrow().clone()
    }
}

/// The `/healthz` router.
pub fn router(rx: watch::Receiver<Health>) -> Router {
    Router::new().route("/healthz", get(healthz)).with_state(rx)
}

async fn healthz(State(rx): State<watch::Receiver<Health>>) -> (StatusCode, Json<Health>) {
    let health = rx.borrow().clone();
    let code = if health.connected { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(health))
}

/// The `channel.health.update` payload.
#[derive(Serialize)]
struct Update<'a> {
    channel: &'a str,
    connected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

/// Publishes the health on every change and every `interval`, until the reporter is gone,
/// on `topic` (the instance's own `channel.health.update.<ns>.<instance>`).
pub async fn publish_loop(
    bus: Bus,
    topic: String,
    mut rx: watch::Receiver<Health>,
    metadata: BTreeMap<String, String>,
    channel: &'static str,
    interval: Duration,
) {
    loop {
        let health = rx.borrow_and_update().clone();
        let update = Update { channel, connected: health.connected, message: health.message.as_deref() };
        // A failed publish (NATS down) is not retried: the next change or tick reports the
        // then-current state, which is what matters.
        if let Err(e) = bus.publish(&topic, metadata.clone(), &update).await {
            tracing::debug!(error = %e, "health update not published");
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(interval) => {}
        }
    }
}
