//! Connection, stream, publishing, and reading a subject's history (durable consumption
//! is in `consume`).

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::{ConnectOptions, HeaderMap};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::consume::{PumpError, next_or_closed};
use crate::jwt::UserCredentials;
use crate::origin::{IDENTITY_HEADER, Origin, SIGNATURE_HEADER, Verifier};
use crate::scope::Identity;
use crate::{Envelope, Error, STREAM, subject};

/// A connection to the event bus.
#[derive(Clone, Debug)]
pub struct Bus {
    client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) consumer_expiry: Duration,
    origin: Option<Origin>,
    pub(crate) verifier: Option<Verifier>,
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
