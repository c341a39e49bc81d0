//! Fakes of the chat platforms' APIs (Telegram Bot API, Slack Web API + Socket Mode +
//! Events API, Discord REST + Gateway, WhatsApp Cloud API), speaking their real HTTP and
//! WebSocket shapes. Tests point a channel's `*_API_URL` at one, inject what a user writes
//! and read back what the bot posted; faults (platform down, rate limits, dropped sockets)
//! are switched on and off from the test.
//!
//! These are the one stand-in the channel tests use, because the real platforms are remote
//! services needing accounts.

pub mod discord;
pub mod slack;
pub mod telegram;
pub mod whatsapp;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;

pub use discord::FakeDiscord;
pub use slack::FakeSlack;
pub use telegram::FakeTelegram;
pub use whatsapp::FakeWhatsApp;

/// A message the bot posted through the platform API.
#[derive(Clone, Debug, PartialEq)]
pub struct Sent {
    /// Chat / channel / recipient.
    pub chat: String,
    /// Thread (Slack `thread_ts`, Telegram `message_thread_id`), if any.
    pub thread: Option<String>,
    /// The text.
    pub text: String,
    /// The message it replies to, if any.
    pub reply_to: Option<String>,
    /// The whole request body.
    pub body: Value,
}

/// What a fake chat platform reports when a test's expectation is not met.
#[derive(Debug, thiserror::Error)]
pub enum FakeChatError {
    /// Fewer messages than expected were posted in time.
    #[error("timed out after {timeout:?} waiting for {n} posted messages; got {got:?}")]
    Timeout {
        /// How long the test waited.
        timeout: Duration,
        /// How many messages it waited for.
        n: usize,
        /// What was posted.
        got: Vec<Sent>,
    },
    /// The bot's webhook never answered 200 in time.
    #[error("event not accepted: {status} {body}")]
    NotAccepted {
        /// The last HTTP status.
        status: String,
        /// The last response body.
        body: String,
    },
    /// The bot's webhook never answered 200 in time (its last status).
    #[error("webhook answered {0}")]
    Webhook(u16),
}

/// What every fake records and how tests wait on it.
#[derive(Default)]
pub(crate) struct Recorder {
    sent: Mutex<Vec<Sent>>,
    changed: Notify,
}

impl Recorder {
    pub(crate) fn push(&self, sent: Sent) {
        self.sent.lock().unwrap_or_else(PoisonError::into_inner).push(sent);
        self.changed.notify_waiters();
    }

    pub(crate) fn all(&self) -> Vec<Sent> {
        self.sent.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until at least `n` messages were posted; returns them all.
    pub(crate) async fn wait(&self, n: usize, timeout: Duration) -> Result<Vec<Sent>, FakeChatError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let all = self.all();
            if all.len() >= n {
                return Ok(all);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(FakeChatError::Timeout { timeout, n, got: all });
            }
        }
    }
}

/// Switchable faults shared by the fakes.
#[derive(Default)]
pub(crate) struct Faults {
    /// Every API request fails with a 5xx and sockets are refused.
    pub(crate) down: AtomicBool,
    /// Send requests answered with 429 before the next one succeeds.
    pub(crate) rate_limited: AtomicU32,
    /// Send requests answered with 5xx before the next one succeeds.
    pub(crate) failing_sends: AtomicU32,
}

impl Faults {
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Takes one unit of a counter, if any is left.
    pub(crate) fn take(counter: &AtomicU32) -> bool {
        counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
}

/// Serves `router` on a random loopback port.
pub(crate) async fn serve(
    router: axum::Router,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_on(router, std::net::Ipv4Addr::LOCALHOST.into()).await
}

/// Like [`serve`], on `ip` (e.g. every address, for clients in pods of the local node).
pub(crate) async fn serve_on(
    router: axum::Router,
    ip: std::net::IpAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        // The server lives as long as the test; an error has nowhere better to go.
        let _ = axum::serve(listener, router).await;
    });
    Ok((addr, task))
}

/// `Authorization: Bearer <token>` check.
pub(crate) fn bearer_ok(headers: &axum::http::HeaderMap, token: &str) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {token}"))
}
