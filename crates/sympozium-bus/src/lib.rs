//! The Sympozium event bus on NATS JetStream.
//!
//! Every message travels on the stream `sympozium` (subjects `sympozium.>`, 24 h, file
//! storage) as a JSON [`Envelope`] `{topic, timestamp, metadata, data}` on subject
//! `sympozium.<topic>`, with W3C trace context in the `traceparent` header. Consumers that
//! must not lose messages use durable consumers ([`Bus::durable`]): a message published while
//! the consumer is down, or while NATS restarts, is delivered once it is back, and replicas
//! sharing a durable name split the work instead of each handling every message.
//! [`Bus::serve`] runs a [`Handler`] over a durable consumer and settles each message as
//! the handler's [`Outcome`] says (ack, redeliver after a delay, or drop).

pub mod auth;
mod bus;
mod consume;
mod envelope;
pub mod jwt;
pub mod origin;
pub mod payloads;
pub mod scope;
pub mod topics;
pub mod trace;

pub use bus::{Backlog, Bus, BusOptions, CONSUMER_EXPIRY};
pub use consume::{ACK_WAIT, Delivery, Handler, Outcome, RETRY_DELAY};
pub use envelope::Envelope;

/// Name of the JetStream stream.
pub const STREAM: &str = "sympozium";

/// The NATS subject of a topic: `sympozium.<topic>`.
pub fn subject(topic: &str) -> String {
    format!("{STREAM}.{topic}")
}

/// Errors of the event bus.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting to NATS failed.
    #[error("connecting to NATS at {url}: {reason}")]
    Connect {
        /// Server URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A JetStream operation failed.
    #[error("JetStream {operation}: {reason}")]
    JetStream {
        /// What was attempted.
        operation: &'static str,
        /// Why.
        reason: String,
    },
    /// A payload could not be encoded.
    #[error("encoding the {topic} envelope: {source}")]
    Encode {
        /// Topic.
        topic: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}
