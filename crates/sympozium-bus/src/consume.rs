//! Durable consumption: [`Bus::durable`] hands out [`Delivery`]s of a durable consumer,
//! [`Bus::serve`] runs a handler over them and settles each as the handler's [`Outcome`]
//! says. Both survive NATS restarts: a broken pull subscription is created again with
//! backoff, and what was not acknowledged is delivered again.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::origin::{IDENTITY_HEADER, SIGNATURE_HEADER, Verifier};
use crate::{Bus, Envelope, STREAM, subject};

/// What became of a delivery, as its handler decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Handled (or not worth keeping): never delivered again.
    Ack,
    /// Not handled now (a transient failure): delivered again after the delay.
    Nak(Duration),
    /// Never to be handled (malformed, refused for good): dropped without being handled.
    Term,
}

/// Handles the messages [`Bus::serve`] pulls, one at a time.
///
/// A trait rather than an async closure: the future of a closure called with a borrowed
/// [`Delivery`] cannot be proven `Send` (a compiler limitation), and routers run on spawned
/// tasks.
pub trait Handler: Send {
    /// Handles one message; the outcome settles it.
    fn handle(&mut self, delivery: &mut Delivery) -> impl Future<Output = Outcome> + Send;
}

/// The delay of [`Outcome::retry`]: short enough that a brief outage costs seconds, long
/// enough that a failing message does not spin.
pub const RETRY_DELAY: Duration = Duration::from_secs(2);

impl Outcome {
    /// Redelivery after [`RETRY_DELAY`], what every handler asks for after a transient failure.
    pub fn retry() -> Self {
        Self::Nak(RETRY_DELAY)
    }

    /// The acknowledgement JetStream is sent.
    pub fn ack_kind(self) -> jetstream::AckKind {
        match self {
            Self::Ack => jetstream::AckKind::Ack,
            // No delay is "now", which JetStream spells without one.
            Self::Nak(delay) if delay.is_zero() => jetstream::AckKind::Nak(None),
            Self::Nak(delay) => jetstream::AckKind::Nak(Some(delay)),
            Self::Term => jetstream::AckKind::Term,
        }
    }
}

/// How long a durable consumer waits for an acknowledgement before it hands the message
/// to another subscriber (the next leader, after a kill).
pub const ACK_WAIT: Duration = Duration::from_secs(30);

/// One message from a durable consumer; ack it once handled, or it is redelivered.
#[derive(Debug)]
pub struct Delivery {
    /// The decoded envelope.
    pub envelope: Envelope,
    /// The `traceparent` header, when the publisher sent one.
    pub traceparent: Option<String>,
    /// The publisher's proven identity (`channel/<ns>/<instance>`, `run/<ns>/<run>`) when
    /// the consuming [`Bus`] verifies origins and the signature matched; `None` otherwise.
    pub origin: Option<String>,
    message: jetstream::Message,
}

impl Delivery {
    /// Acknowledges the message and waits for the server to confirm it, so it is not
    /// delivered again (also not after a NATS restart right after the ack).
    pub async fn ack(&self) {
        if let Err(e) = self.message.double_ack().await {
            tracing::warn!(error = %e, topic = %self.envelope.topic, "ack failed; the message may be redelivered");
        }
    }

    /// The topic the message was published on (its NATS subject after `sympozium.`): unlike
    /// the envelope's `topic`, which the publisher writes, this is what its permissions
    /// allowed it to publish on.
    pub fn topic(&self) -> &str {
        let subject = self.message.subject.as_str();
        subject.strip_prefix(STREAM).and_then(|s| s.strip_prefix('.')).unwrap_or(subject)
    }

    /// The message's position in the stream: the same for every redelivery of it.
    pub fn stream_sequence(&self) -> Option<u64> {
        self.message.info().ok().map(|i| i.stream_sequence)
    }

    /// Asks for redelivery (e.g. a transient failure while handling it).
    pub async fn nak(&self) {
        self.settle(Outcome::retry()).await;
    }

    /// Settles the message as `outcome` says.
    pub async fn settle(&self, outcome: Outcome) {
        match outcome {
            Outcome::Ack => self.ack().await,
            other => {
                if let Err(e) = self.message.ack_with(other.ack_kind()).await {
                    tracing::warn!(error = %e, topic = %self.envelope.topic, outcome = ?other, "settling a message failed");
                }
            }
        }
    }
}

impl Bus {
    /// Consumes `topic` through the durable consumer `name`: messages published while the
    /// consumer was away are delivered when it returns, and processes sharing `name` split
    /// the messages. Survives NATS restarts. The channel closes only when dropped.
    pub fn durable(&self, name: &str, topic: &str) -> mpsc::Receiver<Delivery> {
        let (tx, rx) = mpsc::channel(64);
        let js = self.js.clone();
        let expiry = self.consumer_expiry;
        let verifier = self.verifier.clone();
        let (name, topic) = (name.to_string(), topic.to_string());
        tokio::spawn(async move {
            let mut failures = 0u32;
            while !tx.is_closed() {
                match pump(&js, &name, &topic, expiry, verifier.as_ref(), &tx).await {
                    Ok(()) => return,
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let delay = Duration::from_millis(200u64.saturating_mul(1 << failures.min(5)));
                        tracing::warn!(consumer = %name, error = %e, retry_in = ?delay, "durable consumer interrupted");
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        });
        rx
    }

    /// Runs `handler` over every message of the durable consumer `name` on `topic`, one at a
    /// time, and settles each as it says, until the process stops. Processes serving the
    /// same `name` split the messages; see [`Bus::serve_until`].
    pub async fn serve(&self, name: &str, topic: &str, handler: impl Handler) {
        self.serve_until(name, topic, std::future::pending(), handler).await;
    }

    /// [`Bus::serve`] until `shutdown` resolves. A message being handled then is finished
    /// and settled first; those already pulled but not handled yet are handed back for
    /// immediate redelivery (to another replica, or the next start) instead of waiting
    /// out [`ACK_WAIT`].
    pub async fn serve_until(
        &self,
        name: &str,
        topic: &str,
        shutdown: impl Future<Output = ()>,
        mut handler: impl Handler,
    ) {
        let mut deliveries = self.durable(name, topic);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let mut delivery = tokio::select! {
                next = deliveries.recv() => match next {
                    Some(d) => d,
                    None => return,
                },
                () = &mut shutdown => break,
            };
            let outcome = handler.handle(&mut delivery).await;
            delivery.settle(outcome).await;
        }
        // Closing stops the pump at its next send (it hands that message back itself);
        // what is still buffered is handed back here.
        deliveries.close();
        while let Some(pulled) = deliveries.recv().await {
            pulled.settle(Outcome::Nak(Duration::ZERO)).await;
        }
    }
}

/// Why a consumer's message stream broke off; its pump then creates it again.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PumpError {
    /// The stream could not be looked up.
    #[error("{0}")]
    Stream(#[from] jetstream::context::GetStreamError),
    /// The consumer could not be created or found.
    #[error("{0}")]
    Consumer(#[from] jetstream::stream::ConsumerError),
    /// Pulling from the consumer could not start.
    #[error("{0}")]
    Subscribe(#[from] consumer::StreamError),
    /// A pull failed.
    #[error("{0}")]
    Message(#[from] consumer::pull::MessagesError),
    /// The server ended the pull subscription.
    #[error("message stream ended")]
    Ended,
}

/// Forwards messages until the receiver goes away (`Ok`) or the consumer breaks (`Err`).
async fn pump(
    js: &jetstream::Context,
    name: &str,
    topic: &str,
    expiry: Duration,
    verifier: Option<&Verifier>,
    tx: &mpsc::Sender<Delivery>,
) -> Result<(), PumpError> {
    let stream = js.get_stream(STREAM).await?;
    let config = consumer::pull::Config {
        durable_name: Some(name.into()),
        filter_subject: subject(topic),
        ack_policy: consumer::AckPolicy::Explicit,
        deliver_policy: consumer::DeliverPolicy::New,
        ack_wait: ACK_WAIT,
        inactive_threshold: expiry,
        ..Default::default()
    };
    let consumer: consumer::PullConsumer = stream.get_or_create_consumer(name, config).await?;
    // One message in flight: nothing sits un-acked in a client buffer when this process
    // stops, so another replica (or the next start) gets it at once.
    let mut messages = consumer.stream().max_messages_per_batch(1).messages().await?;
    // Waiting on the receiver too: a dropped receiver must end the pull subscription at
    // once, not at the next message (which may never come), so the consumer can expire.
    while let Some(next) = next_or_closed(&mut messages, tx).await {
        let message = next?;
        let header = |name: &str| message.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.to_string());
        let traceparent = header("traceparent");
        let origin = verifier.and_then(|v| {
            let (identity, signature) = (header(IDENTITY_HEADER), header(SIGNATURE_HEADER));
            v.verify(identity.as_deref(), signature.as_deref(), message.subject.as_str(), &message.payload)
        });
        match serde_json::from_slice::<Envelope>(&message.payload) {
            Ok(envelope) => {
                if let Err(returned) = tx.send(Delivery { envelope, traceparent, origin, message }).await {
                    // Nobody listens any more: hand the message back for immediate redelivery.
                    let _ = returned.0.message.ack_with(jetstream::AckKind::Nak(None)).await;
                    hand_back(&mut messages).await;
                    return Ok(());
                }
            }
            Err(e) => {
                // Not ours to fix by retrying: drop it for good.
                tracing::warn!(error = %e, subject = %message.subject, "discarding a message that is not an envelope");
                let _ = message.ack_with(jetstream::AckKind::Term).await;
            }
        }
    }
    if !tx.is_closed() {
        return Err(PumpError::Ended);
    }
    hand_back(&mut messages).await;
    Ok(())
}

/// How long a stopping pump waits for messages the client library already fetched.
const HAND_BACK_WAIT: Duration = Duration::from_millis(100);

/// Hands back for immediate redelivery what the client library fetched ahead for a
/// receiver that is gone: dropped with the subscription, it would wait out [`ACK_WAIT`].
async fn hand_back<S>(messages: &mut S)
where
    S: futures::Stream<Item = Result<jetstream::Message, consumer::pull::MessagesError>> + Unpin,
{
    while let Ok(Some(Ok(message))) = tokio::time::timeout(HAND_BACK_WAIT, messages.next()).await {
        let _ = message.ack_with(jetstream::AckKind::Nak(None)).await;
    }
}

/// The next message, or `None` once the stream ends or `tx`'s receiver is dropped.
pub(crate) async fn next_or_closed<S: futures::Stream + Unpin, T>(
    messages: &mut S,
    tx: &mpsc::Sender<T>,
) -> Option<S::Item> {
    tokio::select! {
        next = messages.next() => next,
        () = tx.closed() => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_onto_acknowledgements() {
        assert!(matches!(Outcome::Ack.ack_kind(), jetstream::AckKind::Ack));
        assert!(matches!(Outcome::Term.ack_kind(), jetstream::AckKind::Term));
        let delay = Duration::from_millis(1500);
        assert!(matches!(Outcome::Nak(delay).ack_kind(), jetstream::AckKind::Nak(Some(d)) if d == delay));
        assert!(matches!(Outcome::retry().ack_kind(), jetstream::AckKind::Nak(Some(d)) if d == RETRY_DELAY));
        assert!(matches!(Outcome::Nak(Duration::ZERO).ack_kind(), jetstream::AckKind::Nak(None)));
    }
}
