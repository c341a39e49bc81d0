//! Connection, stream, publishing and durable consumption.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::{ConnectOptions, HeaderMap};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::jwt::UserCredentials;
use crate::origin::{IDENTITY_HEADER, Origin, SIGNATURE_HEADER, Verifier};
use crate::scope::Identity;
use crate::{Envelope, Error, STREAM, subject};

/// A connection to the event bus.
#[derive(Clone, Debug)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    consumer_expiry: Duration,
    origin: Option<Origin>,
    verifier: Option<Verifier>,
    identity: Option<Identity>,
    followers: std::sync::Arc<tokio::sync::Mutex<BTreeMap<String, tokio::sync::broadcast::Sender<Envelope>>>>,
}

/// How a client identifies itself on the bus. The default (nothing) suits a NATS without
/// authorization (tests, local development); production pods get a NATS user and an origin.
#[derive(Clone, Debug, Default)]
pub struct BusOptions {
    /// Signs everything this client publishes as its instance or run.
    pub origin: Option<Origin>,
    /// Checks the origin of everything this client consumes (the controller).
    pub verifier: Option<Verifier>,
    /// The NATS user to connect as (operator mode: credentials the controller minted for
    /// this pod's identity, from `NATS_CREDS`).
    pub user: Option<UserCredentials>,
    /// Who this client is on the bus: [`Bus::replay`] and [`Bus::follow`] then read through
    /// the identity's own consumers ([`Identity::consumer_name`]), the only ones its
    /// permissions allow.
    pub identity: Option<Identity>,
}

impl BusOptions {
    /// Options of the operator console (TUI, `sympozium serve`, the API server): the operator
    /// user from `creds` (`.creds` text, or the path of a `.creds` file; empty or `None` for a
    /// NATS without authorization).
    pub fn operator(creds: Option<&str>) -> Result<Self, crate::jwt::JwtError> {
        let user = match creds.map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) => Some(UserCredentials::load(c)?),
            None => None,
        };
        Ok(Self { user, identity: Some(Identity::Operator), ..Default::default() })
    }
}

/// How long NATS keeps a durable consumer nobody pulls from. The stream keeps messages for
/// the same 24 h, so a consumer idle for longer has lost its backlog to the stream's age
/// limit anyway; without an expiry the consumers of deleted instances (one per instance and
/// channel) would stay on the server for ever.
pub const CONSUMER_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// The queue depth of a durable consumer ([`Bus::backlog`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Messages on the consumer's subject not yet delivered to it.
    pub pending: u64,
    /// Messages delivered and not yet acknowledged (being handled, or about to be redelivered).
    pub unacknowledged: u64,
}

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
        if let Err(e) = self.message.ack_with(jetstream::AckKind::Nak(Some(Duration::from_secs(2)))).await {
            tracing::warn!(error = %e, "nak failed");
        }
    }
}

impl Bus {
    /// Connects (retrying until NATS answers), reconnects forever after that, and makes
    /// sure the `sympozium` stream exists.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(url, BusOptions::default()).await
    }

    /// [`Bus::connect`] as `options.user` (if any), signing with an origin and verifying
    /// origins as `options` say.
    pub async fn connect_with(url: &str, options: BusOptions) -> Result<Self, Error> {
        let user = options.user.clone();
        Self::connect_inner(url, user.as_ref(), options).await
    }

    /// [`Bus::connect_with`] as the NATS user `user` (operator mode: a user JWT the
    /// controller minted, see [`crate::jwt`]); replies arrive under the user's own inbox
    /// prefix, the only one its permissions let it read. `options.user` is ignored.
    pub async fn connect_as(url: &str, user: &UserCredentials, options: BusOptions) -> Result<Self, Error> {
        Self::connect_inner(url, Some(user), options).await
    }

    async fn connect_inner(
        url: &str,
        user: Option<&UserCredentials>,
        options: BusOptions,
    ) -> Result<Self, Error> {
        let mut connect = ConnectOptions::new();
        if let Some(user) = user {
            let key = std::sync::Arc::new(
                user.key_pair().map_err(|e| Error::Connect { url: url.into(), reason: e.to_string() })?,
            );
            connect = connect
                .jwt(user.jwt.clone(), move |nonce| {
                    let key = key.clone();
                    async move { key.sign(&nonce).map_err(async_nats::AuthError::new) }
                })
                .custom_inbox_prefix(user.inbox_prefix());
        }
        let client = connect
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(|attempt| Duration::from_millis((250 * attempt as u64).min(5_000)))
            .connect(url)
            .await
            .map_err(|e| Error::Connect { url: url.into(), reason: e.to_string() })?;
        let js = jetstream::new(client.clone());
        let bus = Self {
            client,
            js,
            consumer_expiry: CONSUMER_EXPIRY,
            origin: options.origin,
            verifier: options.verifier,
            identity: options.identity,
            followers: Default::default(),
        };
        bus.ensure_stream().await?;
        Ok(bus)
    }

    /// Durable consumers this bus creates from now on are removed by NATS after `expiry`
    /// without a consumer (default [`CONSUMER_EXPIRY`]).
    pub fn with_consumer_expiry(mut self, expiry: Duration) -> Self {
        self.consumer_expiry = expiry;
        self
    }

    /// The origin this client signs with, if any.
    pub fn origin(&self) -> Option<&Origin> {
        self.origin.as_ref()
    }

    /// Whether this client checks origins: then a [`Delivery`] without a proven
    /// [`Delivery::origin`] came from a publisher that could not prove who it is.
    pub fn verifies_origin(&self) -> bool {
        self.verifier.is_some()
    }

    /// The origin verifier (the controller's), if any.
    pub fn verifier(&self) -> Option<&Verifier> {
        self.verifier.as_ref()
    }

    async fn ensure_stream(&self) -> Result<(), Error> {
        let config = stream::Config {
            name: STREAM.into(),
            subjects: vec![format!("{STREAM}.>")],
            max_age: Duration::from_secs(24 * 3600),
            storage: stream::StorageType::File,
            num_replicas: 1,
            ..Default::default()
        };
        let mut last = String::new();
        for _ in 0..10 {
            match tokio::time::timeout(Duration::from_secs(5), self.js.get_or_create_stream(config.clone()))
                .await
            {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = "timed out".into(),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        Err(Error::JetStream { operation: "creating the sympozium stream", reason: last })
    }

    /// Publishes `data` on `topic` and waits for JetStream to store it.
    pub async fn publish(
        &self,
        topic: &str,
        metadata: BTreeMap<String, String>,
        data: &impl Serialize,
    ) -> Result<(), Error> {
        self.publish_traced(topic, metadata, data, None).await
    }

    /// Like [`Bus::publish`], carrying a W3C `traceparent` header.
    pub async fn publish_traced(
        &self,
        topic: &str,
        metadata: BTreeMap<String, String>,
        data: &impl Serialize,
        traceparent: Option<&str>,
    ) -> Result<(), Error> {
        self.send(topic, metadata, data, traceparent, None).await
    }

    /// Like [`Bus::publish`], with a message id: JetStream stores a message with the same
    /// `id` only once within its duplicate window (2 minutes), so a publish retried after an
    /// uncertain outcome (a timeout across a NATS restart) never stores a second copy.
    pub async fn publish_once(
        &self,
        topic: &str,
        metadata: BTreeMap<String, String>,
        data: &impl Serialize,
        id: &str,
    ) -> Result<(), Error> {
        self.send(topic, metadata, data, None, Some(id)).await
    }

    /// [`Bus::publish_once`] carrying a W3C `traceparent` header.
    pub async fn publish_once_traced(
        &self,
        topic: &str,
        metadata: BTreeMap<String, String>,
        data: &impl Serialize,
        id: &str,
        traceparent: &str,
    ) -> Result<(), Error> {
        self.send(topic, metadata, data, Some(traceparent), Some(id)).await
    }

    async fn send(
        &self,
        topic: &str,
        metadata: BTreeMap<String, String>,
        data: &impl Serialize,
        traceparent: Option<&str>,
        id: Option<&str>,
    ) -> Result<(), Error> {
        let encode = |source| Error::Encode { topic: topic.into(), source };
        let envelope = Envelope::new(topic, metadata, serde_json::to_value(data).map_err(encode)?);
        let payload = serde_json::to_vec(&envelope).map_err(encode)?;
        let mut headers = HeaderMap::new();
        if let Some(tp) = traceparent {
            headers.insert("traceparent", tp);
        }
        if let Some(id) = id {
            headers.insert("Nats-Msg-Id", id);
        }
        let subject = subject(topic);
        if let Some(origin) = &self.origin {
            headers.insert(IDENTITY_HEADER, origin.identity());
            headers.insert(SIGNATURE_HEADER, origin.sign(&subject, &payload).as_str());
        }
        let ack = self
            .js
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(|e| Error::JetStream { operation: "publishing", reason: e.to_string() })?;
        ack.await
            .map_err(|e| Error::JetStream { operation: "publish acknowledgement", reason: e.to_string() })?;
        Ok(())
    }

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

    /// Every message ever kept on `topic` (the stream holds 24 h), then each new one, in
    /// order: for a reader that needs the whole history of a subject addressed to it (e.g.
    /// `agent.spawn.result.<ns>.<run>`), surviving NATS restarts. Without an identity it
    /// reads without acknowledgements through an ephemeral consumer (removed once idle);
    /// with one, through the identity's own durable consumer on `topic`, acknowledging what
    /// it forwarded (a restarted reader resumes where the last one stopped).
    pub fn replay(&self, topic: &str) -> mpsc::Receiver<Envelope> {
        if self.identity.is_some() {
            let (tx, rx) = mpsc::channel(64);
            let bus = self.clone();
            let topic = topic.to_string();
            tokio::spawn(async move {
                if let Ok(mut shared) = bus.shared(&topic, consumer::DeliverPolicy::All).await {
                    forward(&mut shared, &tx).await;
                }
            });
            return rx;
        }
        self.replay_from(topic, 0)
    }

    /// Every message published on `topic` from now on, in order, surviving NATS restarts and
    /// reconnects like [`Bus::replay`]: for a reader waiting for an answer it has not asked
    /// for yet (subscribe, then publish the question), so an answer sent while its
    /// connection is down still arrives. With an identity, every follower of `topic` in this
    /// process shares the identity's one consumer on it (each gets every message).
    pub async fn follow(&self, topic: &str) -> Result<mpsc::Receiver<Envelope>, Error> {
        let jetstream = |operation| move |e: String| Error::JetStream { operation, reason: e };
        if self.identity.is_some() {
            let mut shared = self.shared(topic, consumer::DeliverPolicy::New).await?;
            let (tx, rx) = mpsc::channel(64);
            tokio::spawn(async move { forward(&mut shared, &tx).await });
            return Ok(rx);
        }
        let mut stream =
            self.js.get_stream(STREAM).await.map_err(|e| jetstream("finding the stream")(e.to_string()))?;
        let last = stream
            .info()
            .await
            .map_err(|e| jetstream("reading the stream's position")(e.to_string()))?
            .state
            .last_sequence;
        Ok(self.replay_from(topic, last.saturating_add(1)))
    }

    /// A subscription to the one pump of this identity's consumer on `topic`, created (and
    /// the consumer with it, before this returns) by the first caller.
    async fn shared(
        &self,
        topic: &str,
        policy: consumer::DeliverPolicy,
    ) -> Result<tokio::sync::broadcast::Receiver<Envelope>, Error> {
        let mut followers = self.followers.lock().await;
        if let Some(sender) = followers.get(topic) {
            return Ok(sender.subscribe());
        }
        let Some(identity) = &self.identity else {
            return Err(Error::JetStream { operation: "following a topic", reason: "no identity".into() });
        };
        let name = identity.consumer_name(topic);
        let first = named_consumer(&self.js, &name, topic, policy, self.consumer_expiry)
            .await
            .map_err(|e| Error::JetStream { operation: "creating a consumer", reason: e.to_string() })?;
        let (sender, receiver) = tokio::sync::broadcast::channel(1024);
        followers.insert(topic.to_string(), sender.clone());
        let (js, topic, expiry) = (self.js.clone(), topic.to_string(), self.consumer_expiry);
        tokio::spawn(async move {
            let mut consumer = Some(first);
            let mut failures = 0u32;
            loop {
                let current = match consumer.take() {
                    Some(c) => Ok(c),
                    None => named_consumer(&js, &name, &topic, policy, expiry).await,
                };
                let result = match current {
                    Ok(c) => pump_named(c, &sender).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    failures = failures.saturating_add(1);
                    let delay = Duration::from_millis(200u64.saturating_mul(1 << failures.min(5)));
                    tracing::debug!(%topic, error = %e, retry_in = ?delay, "consumer interrupted");
                    tokio::time::sleep(delay).await;
                }
            }
        });
        Ok(receiver)
    }

    /// Messages on `topic` from stream sequence `next_seq` on (0 = from the start).
    fn replay_from(&self, topic: &str, mut next_seq: u64) -> mpsc::Receiver<Envelope> {
        let (tx, rx) = mpsc::channel(64);
        let js = self.js.clone();
        let topic = topic.to_string();
        tokio::spawn(async move {
            let mut failures = 0u32;
            while !tx.is_closed() {
                match pump_replay(&js, &topic, &mut next_seq, &tx).await {
                    Ok(()) => return,
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let delay = Duration::from_millis(200u64.saturating_mul(1 << failures.min(5)));
                        tracing::debug!(%topic, error = %e, retry_in = ?delay, "replay interrupted");
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        });
        rx
    }

    /// How far the durable consumer `name` is behind: messages not yet delivered and
    /// messages delivered but not acknowledged (the queue depth of whoever consumes it).
    /// `None` when no such consumer exists (not created yet, or expired while unused).
    pub async fn backlog(&self, name: &str) -> Result<Option<Backlog>, Error> {
        use async_nats::jetstream::context::ConsumerInfoErrorKind;
        let failed = |e: String| Error::JetStream { operation: "reading a consumer's backlog", reason: e };
        let stream = self.js.get_stream(STREAM).await.map_err(|e| failed(e.to_string()))?;
        match stream.consumer_info(name).await {
            Ok(info) => Ok(Some(Backlog {
                pending: info.num_pending,
                unacknowledged: u64::try_from(info.num_ack_pending).unwrap_or(u64::MAX),
            })),
            Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => Ok(None),
            Err(e) => Err(failed(e.to_string())),
        }
    }

    /// The underlying NATS client (for request/reply and live, non-durable subscriptions).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }
}

/// Why a consumer's message stream broke off; its pump then creates it again.
#[derive(Debug, thiserror::Error)]
enum PumpError {
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

/// How long a durable consumer waits for an acknowledgement before it hands the message
/// to another subscriber (the next leader, after a kill).
pub const ACK_WAIT: Duration = Duration::from_secs(30);

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
    if tx.is_closed() { Ok(()) } else { Err(PumpError::Ended) }
}

/// The next message, or `None` once the stream ends or `tx`'s receiver is dropped.
async fn next_or_closed<S: futures::Stream + Unpin, T>(
    messages: &mut S,
    tx: &mpsc::Sender<T>,
) -> Option<S::Item> {
    tokio::select! {
        next = messages.next() => next,
        () = tx.closed() => None,
    }
}

/// Forwards `topic` from stream sequence `next_seq` on (0 = from the start).
async fn pump_replay(
    js: &jetstream::Context,
    topic: &str,
    next_seq: &mut u64,
    tx: &mpsc::Sender<Envelope>,
) -> Result<(), PumpError> {
    let stream = js.get_stream(STREAM).await?;
    let deliver_policy = match *next_seq {
        0 => consumer::DeliverPolicy::All,
        start_sequence => consumer::DeliverPolicy::ByStartSequence { start_sequence },
    };
    // A random name puts the filter into the API subject (`CONSUMER.CREATE.<stream>.<name>.<filter>`),
    // which is what NATS permissions can restrict; nobody else can guess it to pull from it.
    let config = consumer::pull::Config {
        name: Some(format!("replay-{}", random_suffix())),
        filter_subject: subject(topic),
        ack_policy: consumer::AckPolicy::None,
        deliver_policy,
        inactive_threshold: Duration::from_secs(60),
        ..Default::default()
    };
    let consumer: consumer::PullConsumer = stream.create_consumer(config).await?;
    let mut messages = consumer.messages().await?;
    while let Some(next) = next_or_closed(&mut messages, tx).await {
        let message = next?;
        if let Ok(info) = message.info() {
            // After a NATS restart the server may hand out again what it already sent.
            if info.stream_sequence < *next_seq {
                continue;
            }
            *next_seq = info.stream_sequence.saturating_add(1);
        }
        match serde_json::from_slice::<Envelope>(&message.payload) {
            Ok(envelope) => {
                if tx.send(envelope).await.is_err() {
                    return Ok(());
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, subject = %message.subject, "skipping a message that is not an envelope")
            }
        }
    }
    if tx.is_closed() { Ok(()) } else { Err(PumpError::Ended) }
}

/// Forwards a shared subscription into `tx` until either side goes away.
async fn forward(shared: &mut tokio::sync::broadcast::Receiver<Envelope>, tx: &mpsc::Sender<Envelope>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        tokio::select! {
            next = shared.recv() => match next {
                Ok(envelope) => if tx.send(envelope).await.is_err() { return },
                Err(RecvError::Lagged(n)) => tracing::warn!(skipped = n, "a slow reader missed messages"),
                Err(RecvError::Closed) => return,
            },
            () = tx.closed() => return,
        }
    }
}

/// The durable consumer `name` on `topic` (created with the API form that names its filter,
/// the only one a scoped identity may use).
async fn named_consumer(
    js: &jetstream::Context,
    name: &str,
    topic: &str,
    deliver_policy: consumer::DeliverPolicy,
    expiry: Duration,
) -> Result<consumer::PullConsumer, PumpError> {
    let stream = js.get_stream(STREAM).await?;
    let config = consumer::pull::Config {
        durable_name: Some(name.into()),
        filter_subject: subject(topic),
        ack_policy: consumer::AckPolicy::Explicit,
        deliver_policy,
        ack_wait: Duration::from_secs(30),
        inactive_threshold: expiry,
        ..Default::default()
    };
    Ok(stream.get_or_create_consumer(name, config).await?)
}

/// Hands each message of `consumer` to every subscriber of `sender`, then acknowledges it.
async fn pump_named(
    consumer: consumer::PullConsumer,
    sender: &tokio::sync::broadcast::Sender<Envelope>,
) -> Result<(), PumpError> {
    let mut messages = consumer.stream().max_messages_per_batch(16).messages().await?;
    while let Some(next) = messages.next().await {
        let message = next?;
        match serde_json::from_slice::<Envelope>(&message.payload) {
            // Nobody listening right now is no reason to keep it: a follower wants what
            // arrives while it listens, a replayer is always listening.
            Ok(envelope) => {
                let _ = sender.send(envelope);
            }
            Err(e) => {
                tracing::warn!(error = %e, subject = %message.subject, "skipping a message that is not an envelope")
            }
        }
        if let Err(e) = message.ack().await {
            tracing::debug!(error = %e, "ack failed; the message may come again");
        }
    }
    Err(PumpError::Ended)
}

/// 128 random bits, hex (a fresh name per replay consumer).
fn random_suffix() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness: the time still makes the name unique in practice.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        return format!("{nanos:x}");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
