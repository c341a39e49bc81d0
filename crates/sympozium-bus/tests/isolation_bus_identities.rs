//! Per-identity bus users (NATS operator mode), tried the way a hostile tenant would: a real
//! `nats-server -js` runs with exactly the trust chain [`Trust::server_config`] renders, and
//! every client connects with a user JWT the controller's [`Issuer`] minted for one instance's
//! channel pods or one run. An attacker holds what its own pod holds (its own credentials
//! from the Secret in its namespace) and tries to read or drive another instance or run.
//! Each attack must be refused by NATS itself (a permissions violation naming the subject,
//! or no connection at all) and leave nothing in the stream; the legitimate uses next to
//! them must keep working, end to end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use serde_json::json;
use sympozium_bus::jwt::{Issuer, Trust, UserCredentials};
use sympozium_bus::origin::{self, Origin, Verifier};
use sympozium_bus::scope::Identity;
use sympozium_bus::topics::{self, scoped};
use sympozium_bus::{Bus, BusOptions, Delivery, subject};
use sympozium_testkit::nats::NatsServer;
use tokio::sync::mpsc::Receiver;

const MASTER: &str = "test-master-key-0123456789abcdef";

fn in_an_hour() -> Option<i64> {
    Some(jiff::Timestamp::now().as_second() + 3600)
}

async fn server(trust: &Trust) -> NatsServer {
    let config = trust.server_config().unwrap();
    NatsServer::start_with_config(move |_, _| config).await.unwrap()
}

fn mint(issuer: &Issuer, identity: &Identity) -> UserCredentials {
    issuer.mint(identity, in_an_hour()).unwrap()
}

fn alpha() -> Identity {
    Identity::channel("team-a", "alpha")
}

fn beta() -> Identity {
    Identity::channel("team-b", "beta")
}

async fn controller(nats: &NatsServer, issuer: &Issuer) -> Bus {
    let options = BusOptions { verifier: Some(Verifier::new(MASTER)), ..Default::default() };
    Bus::connect_as(&nats.url(), &mint(issuer, &Identity::Controller), options).await.unwrap()
}

/// A pod's bus client: its minted user, signing with its origin key.
async fn pod(nats: &NatsServer, creds: &UserCredentials, identity: &Identity) -> Bus {
    let origin = Origin::new(identity.to_string(), Verifier::new(MASTER).key_for(&identity.to_string()));
    Bus::connect_as(&nats.url(), creds, BusOptions { origin: Some(origin), ..Default::default() })
        .await
        .unwrap()
}

/// A raw client with `creds` (parsed from the `.creds` text the Secret holds), collecting
/// what the server says about it (permission violations).
struct Raw {
    client: async_nats::Client,
    errors: Arc<Mutex<Vec<String>>>,
}

async fn raw(nats: &NatsServer, creds: &UserCredentials) -> Raw {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    let client = async_nats::ConnectOptions::new()
        .credentials(&creds.to_creds())
        .unwrap()
        .custom_inbox_prefix(creds.inbox_prefix())
        .event_callback(move |event| {
            let sink = sink.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    sink.lock().unwrap().push(e.to_string());
                }
            }
        })
        .connect(nats.url())
        .await
        .unwrap();
    Raw { client, errors }
}

impl Raw {
    async fn violation(&self, what: &str) -> String {
        for _ in 0..100 {
            if let Some(e) = self.errors.lock().unwrap().iter().find(|e| e.contains(what)) {
                return e.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no permissions violation for {what}; server said {:?}", self.errors.lock().unwrap());
    }

    /// Publishes through JetStream (waits briefly for the ack, which a refused publish never gets).
    async fn publish(&self, subject: &str, marker: &str) {
        let js = jetstream::new(self.client.clone());
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            js.publish(subject.to_string(), json!({"marker": marker}).to_string().into()),
        )
        .await;
    }

    /// Tries to subscribe to `subject` directly and expects the server to refuse it.
    async fn subscribe_refused(&self, subject: &str) {
        let _sub = self.client.subscribe(subject.to_string()).await.unwrap();
        let said = self.violation(&format!("Subscription to \"{subject}\"")).await;
        assert!(said.contains("Permissions Violation"), "{said}");
    }

    /// Tries to read `subject` through a JetStream consumer named `name`; `true` if JetStream
    /// created it (the server drops a refused API request without an answer).
    async fn consumer_on(&self, name: &str, subject: &str) -> bool {
        let api = format!("$JS.API.CONSUMER.CREATE.sympozium.{name}.{subject}");
        let body = json!({"stream_name": "sympozium", "config": {"name": name, "filter_subject": subject, "ack_policy": "explicit", "deliver_policy": "all"}});
        let request = self.client.request(api, body.to_string().into());
        match tokio::time::timeout(Duration::from_secs(3), request).await {
            Ok(Ok(reply)) => {
                let answer: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap_or_default();
                answer.get("error").is_none()
            }
            _ => false,
        }
    }
}

/// Whether the stream holds `marker` on `subject` (what a consumer would get).
async fn stored(controller: &Bus, subject: &str, marker: &str) -> bool {
    let js = jetstream::new(controller.client().clone());
    let stream = js.get_stream("sympozium").await.unwrap();
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(m) => String::from_utf8_lossy(&m.payload).contains(marker),
        Err(_) => false,
    }
}

#[derive(Default)]
struct Tally {
    tried: u32,
    refused: u32,
}

impl Tally {
    fn refused(&mut self, what: &str) {
        self.tried += 1;
        self.refused += 1;
        println!("refused: {what}");
    }
}

async fn next(rx: &mut Receiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.expect("a delivery in time").expect("open")
}

async fn refused_connect(nats: &NatsServer, creds: &UserCredentials) -> String {
    let attempt =
        async_nats::ConnectOptions::new().credentials(&creds.to_creds()).unwrap().connect(nats.url());
    match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Ok(Ok(_)) => panic!("connected with credentials that must be refused"),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no connection".into(),
    }
}

#[tokio::test]
async fn only_a_live_user_jwt_of_the_account_connects() {
    let trust = Trust::generate();
    let issuer = trust.issuer();
    let nats = server(&trust).await;
    let mut tally = Tally::default();

    let err = async_nats::connect(nats.url()).await.unwrap_err().to_string();
    assert!(err.to_lowercase().contains("authorization"), "{err}");
    tally.refused("connect without credentials");

    for (user, pass) in [("controller", "guess"), ("channel", ""), ("admin", "admin")] {
        let err = async_nats::ConnectOptions::new()
            .user_and_password(user.into(), pass.into())
            .connect(nats.url())
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.to_lowercase().contains("authorization"), "{user}: {err}");
        tally.refused(&format!("connect with user {user} and a password (no such users in operator mode)"));
    }

    let expired = issuer.mint(&alpha(), Some(jiff::Timestamp::now().as_second() - 60)).unwrap();
    let err = refused_connect(&nats, &expired).await;
    assert!(err.to_lowercase().contains("authorization") || err.contains("expired"), "{err}");
    tally.refused("connect with an expired user JWT");

    // Minted by someone else's trust chain (a self-made operator and account).
    let forger = Trust::generate().issuer();
    let err = refused_connect(&nats, &mint(&forger, &Identity::Controller)).await;
    assert!(err.to_lowercase().contains("authorization"), "{err}");
    tally.refused("connect with a controller JWT signed by a self-made account");

    // Another user's genuine JWT with the attacker's own nkey (cannot sign the nonce).
    let genuine = mint(&issuer, &Identity::Controller);
    let stolen = UserCredentials { jwt: genuine.jwt.clone(), seed: mint(&issuer, &alpha()).seed };
    let err = refused_connect(&nats, &stolen).await;
    assert!(err.to_lowercase().contains("authorization"), "{err}");
    tally.refused("connect with the controller's JWT (read from a log) and the attacker's own nkey");

    // A channel JWT with its permissions widened to everything, signature kept.
    let own = mint(&issuer, &alpha());
    let parts: Vec<&str> = own.jwt.split('.').collect();
    let mut claims = sympozium_bus::jwt::decode_claims(&own.jwt).unwrap();
    claims["nats"]["pub"] = json!({"allow": [">"]});
    claims["nats"]["sub"] = json!({"allow": [">"]});
    let widened = format!(
        "{}.{}.{}",
        parts[0],
        data_encoding::BASE64URL_NOPAD.encode(claims.to_string().as_bytes()),
        parts[2]
    );
    let err = refused_connect(&nats, &UserCredentials { jwt: widened, seed: own.seed.clone() }).await;
    assert!(err.to_lowercase().contains("authorization"), "{err}");
    tally.refused("connect with its own channel JWT edited to allow everything");

    // The legitimate credentials connect (also through the Bus API, which creates the stream).
    controller(&nats, &issuer).await;
    pod(&nats, &own, &alpha()).await;
    assert_eq!(tally.tried, tally.refused);
    println!("bus identities connect: {} attacks tried, {} refused", tally.tried, tally.refused);
}

#[tokio::test]
async fn a_channel_pod_of_instance_a_can_neither_read_nor_drive_instance_b() {
    let trust = Trust::generate();
    let issuer = trust.issuer();
    let nats = server(&trust).await;
    let ctl = controller(&nats, &issuer).await;
    let mut inbound =
        ctl.durable("channel-router-inbound", &format!("{}.>", topics::CHANNEL_MESSAGE_RECEIVED));
    let (a_creds, b_creds) = (mint(&issuer, &alpha()), mint(&issuer, &beta()));
    let b = pod(&nats, &b_creds, &beta()).await;
    let b_topic = scoped(topics::CHANNEL_MESSAGE_SEND, "team-b", "beta");
    let b_consumer = beta().consumer_name(&b_topic);
    let mut b_outbound = b.durable(&b_consumer, &b_topic);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tally = Tally::default();
    let attacker = raw(&nats, &a_creds).await;

    // B's outbound replies: a core subscription, a JetStream consumer, wildcards.
    let b_send = subject(&scoped(topics::CHANNEL_MESSAGE_SEND, "team-b", "beta"));
    attacker.subscribe_refused(&b_send).await;
    tally.refused("channel A subscribes to B's outbound subject");
    let a_topic = scoped(topics::CHANNEL_MESSAGE_SEND, "team-a", "alpha");
    let a_consumer = alpha().consumer_name(&a_topic);
    assert!(!attacker.consumer_on(&a_consumer, &b_send).await, "a consumer on B's replies must be refused");
    tally.refused("channel A creates its own consumer on B's outbound subject");
    assert!(!attacker.consumer_on(&b_consumer, &b_send).await);
    tally.refused("channel A creates B's own consumer (its name is no secret) on B's outbound subject");
    // B's existing consumer: pulling from it, inspecting it, acknowledging on it.
    let next_api = format!("$JS.API.CONSUMER.MSG.NEXT.sympozium.{b_consumer}");
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        attacker
            .client
            .request(next_api.clone(), json!({"batch": 1, "expires": 1_000_000_000}).to_string().into()),
    )
    .await;
    attacker.violation(&format!("Publish to \"{next_api}\"")).await;
    tally.refused("channel A pulls B's replies from B's own consumer");
    let info_api = format!("$JS.API.CONSUMER.INFO.sympozium.{b_consumer}");
    let _ =
        tokio::time::timeout(Duration::from_secs(2), attacker.client.request(info_api.clone(), "".into()))
            .await;
    attacker.violation(&format!("Publish to \"{info_api}\"")).await;
    tally.refused("channel A inspects B's consumer");
    let ack = format!("$JS.ACK.sympozium.{b_consumer}.1.1.1.0.0.0");
    attacker.client.publish(ack.clone(), "+ACK".into()).await.unwrap();
    attacker.violation(&format!("Publish to \"{ack}\"")).await;
    tally.refused("channel A acknowledges on B's consumer (making B lose a reply)");
    for pattern in [
        format!("{}.>", subject(topics::CHANNEL_MESSAGE_SEND)),
        subject(topics::CHANNEL_MESSAGE_SEND),
        "sympozium.>".into(),
    ] {
        assert!(!attacker.consumer_on(&a_consumer, &pattern).await, "consumer on {pattern}");
        tally.refused(&format!("channel A creates a JetStream consumer on {pattern}"));
    }
    // (The same request on its own outbound subject is answered: the refusals above are
    // permissions, not a malformed request.)
    assert!(attacker.consumer_on(&a_consumer, &subject(&a_topic)).await);
    // B's reply inbox (where B's pulled messages arrive) and the controller's.
    attacker.subscribe_refused(&format!("{}.>", b_creds.inbox_prefix())).await;
    tally.refused("channel A subscribes to B's reply inbox");
    attacker.subscribe_refused("_INBOX.>").await;
    tally.refused("channel A subscribes to the controller's reply inbox");

    // Making B run something / look unhealthy.
    for topic in [topics::CHANNEL_MESSAGE_RECEIVED, topics::CHANNEL_HEALTH_UPDATE] {
        let subj = subject(&scoped(topic, "team-b", "beta"));
        attacker.publish(&subj, "a-speaks-for-b").await;
        let said = attacker.violation(&format!("Publish to \"{subj}\"")).await;
        assert!(said.contains("Permissions Violation"), "{said}");
        assert!(!stored(&ctl, &subj, "a-speaks-for-b").await);
        tally.refused(&format!("channel A publishes on B's {topic} subject"));
    }
    // Posting through B's channel pod, answering approvals, finishing runs.
    for subj in [
        b_send.clone(),
        subject(&scoped(topics::TOOL_APPROVAL_RESPONSE, "team-b", "r1")),
        subject(topics::AGENT_RUN_COMPLETED),
        subject(topics::CHANNEL_MESSAGE_RECEIVED),
    ] {
        attacker.publish(&subj, "a-forged").await;
        attacker.violation(&format!("Publish to \"{subj}\"")).await;
        assert!(!stored(&ctl, &subj, "a-forged").await);
        tally.refused(&format!("channel A publishes on {subj}"));
    }

    // Legitimate traffic on both sides keeps flowing, each to its own instance only.
    let a = pod(&nats, &a_creds, &alpha()).await;
    let mut a_outbound = a.durable(&a_consumer, &a_topic);
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.publish(
        &scoped(topics::CHANNEL_MESSAGE_RECEIVED, "team-a", "alpha"),
        BTreeMap::new(),
        &json!({"text": "hi"}),
    )
    .await
    .unwrap();
    let d = next(&mut inbound).await;
    assert_eq!(d.origin.as_deref(), Some("channel/team-a/alpha"));
    for (ns, inst, text) in [("team-b", "beta", "for b"), ("team-a", "alpha", "for a")] {
        ctl.publish(&scoped(topics::CHANNEL_MESSAGE_SEND, ns, inst), BTreeMap::new(), &json!({"text": text}))
            .await
            .unwrap();
    }
    assert_eq!(next(&mut a_outbound).await.envelope.data["text"], "for a", "A gets only its own reply");
    assert_eq!(next(&mut b_outbound).await.envelope.data["text"], "for b");

    assert_eq!(tally.tried, tally.refused);
    println!("bus identities channel: {} attacks tried, {} refused", tally.tried, tally.refused);
}

#[tokio::test]
async fn a_run_reads_only_its_own_subjects_and_never_answers_approvals() {
    let trust = Trust::generate();
    let issuer = trust.issuer();
    let nats = server(&trust).await;
    let ctl = controller(&nats, &issuer).await;
    let r1 = Identity::run("team-a", "r1", Some("alpha".into()));
    let r1_creds = mint(&issuer, &r1);
    let attacker = raw(&nats, &r1_creds).await;
    let mut tally = Tally::default();

    // Other runs' follow-ups, approval answers, spawn/exec/schedule results — including a
    // run of the same name in another namespace.
    for (ns, run) in [("team-a", "r2"), ("team-b", "r1")] {
        for prefix in [
            topics::AGENT_FOLLOWUP_PREFIX,
            topics::TOOL_APPROVAL_RESPONSE,
            topics::AGENT_SPAWN_RESULT_PREFIX,
            topics::TOOL_EXEC_RESULT_PREFIX,
            topics::SCHEDULE_UPSERT_RESULT_PREFIX,
        ] {
            let topic = scoped(prefix, ns, run);
            let subj = subject(&topic);
            let theirs = Identity::run(ns, run, Some("alpha".into())).consumer_name(&topic);
            assert!(!attacker.consumer_on(&theirs, &subj).await, "consumer on {subj}");
            tally.refused(&format!("run team-a/r1 reads {subj} through the owner's consumer"));
        }
        let theirs =
            Identity::run(ns, run, None).consumer_name(&scoped(topics::AGENT_FOLLOWUP_PREFIX, ns, run));
        let next_api = format!("$JS.API.CONSUMER.MSG.NEXT.sympozium.{theirs}");
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            attacker.client.request(next_api.clone(), json!({"batch": 1}).to_string().into()),
        )
        .await;
        attacker.violation(&format!("Publish to \"{next_api}\"")).await;
        tally.refused(&format!("run team-a/r1 pulls from {ns}/{run}'s follow-up consumer"));
        let subj = subject(&scoped(topics::AGENT_FOLLOWUP_PREFIX, ns, run));
        attacker.subscribe_refused(&subj).await;
        tally.refused(&format!("run team-a/r1 subscribes to {subj}"));
    }
    let own_topic = scoped(topics::AGENT_FOLLOWUP_PREFIX, "team-a", "r1");
    assert!(attacker.consumer_on(&r1.consumer_name(&own_topic), &subject(&own_topic)).await);
    for pattern in
        [format!("{}.>", subject(topics::TOOL_APPROVAL_RESPONSE)), subject(topics::TOOL_APPROVAL_RESPONSE)]
    {
        let own = r1.consumer_name(&scoped(topics::TOOL_APPROVAL_RESPONSE, "team-a", "r1"));
        assert!(!attacker.consumer_on(&own, &pattern).await, "consumer on {pattern}");
        tally.refused(&format!("run team-a/r1 reads every approval answer ({pattern})"));
    }

    // Answering approvals — its own included — and posting through another instance.
    for subj in [
        subject(&scoped(topics::TOOL_APPROVAL_RESPONSE, "team-a", "r1")),
        subject(&scoped(topics::TOOL_APPROVAL_RESPONSE, "team-a", "r2")),
        subject(topics::TOOL_APPROVAL_RESPONSE),
        subject(&scoped(topics::CHANNEL_MESSAGE_SEND, "team-b", "beta")),
        subject(&scoped(topics::CHANNEL_MESSAGE_RECEIVED, "team-a", "alpha")),
        subject(&scoped(topics::AGENT_FOLLOWUP_PREFIX, "team-a", "r2")),
    ] {
        attacker.publish(&subj, "run-forged").await;
        let said = attacker.violation(&format!("Publish to \"{subj}\"")).await;
        assert!(said.contains("Permissions Violation"), "{said}");
        assert!(!stored(&ctl, &subj, "run-forged").await, "{subj}");
        tally.refused(&format!("run team-a/r1 publishes on {subj}"));
    }

    // Legitimate: the run reads its follow-up and the operator's answer to its own request.
    let run = pod(&nats, &r1_creds, &r1).await;
    let answers_topic = scoped(topics::TOOL_APPROVAL_RESPONSE, "team-a", "r1");
    let mut followups = run.durable(&r1.consumer_name(&own_topic), &own_topic);
    let mut answers = run.durable(&r1.consumer_name(&answers_topic), &answers_topic);
    tokio::time::sleep(Duration::from_millis(300)).await;
    ctl.publish(
        &scoped(topics::AGENT_FOLLOWUP_PREFIX, "team-a", "r2"),
        BTreeMap::new(),
        &json!({"text": "r2's"}),
    )
    .await
    .unwrap();
    ctl.publish(
        &scoped(topics::AGENT_FOLLOWUP_PREFIX, "team-a", "r1"),
        BTreeMap::new(),
        &json!({"text": "r1's"}),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut followups).await.envelope.data["text"], "r1's");
    run.publish(topics::TOOL_APPROVAL_REQUEST, BTreeMap::new(), &json!({"requestId": "q1"})).await.unwrap();
    let console = Bus::connect_as(&nats.url(), &mint(&issuer, &Identity::Operator), BusOptions::default())
        .await
        .unwrap();
    console
        .publish(
            &scoped(topics::TOOL_APPROVAL_RESPONSE, "team-a", "r1"),
            BTreeMap::new(),
            &json!({"requestId": "q1", "approved": true}),
        )
        .await
        .unwrap();
    assert_eq!(next(&mut answers).await.envelope.data["requestId"], "q1");

    assert_eq!(tally.tried, tally.refused);
    println!("bus identities run: {} attacks tried, {} refused", tally.tried, tally.refused);
}

/// The whole conversation with minted credentials only: a chat message arrives at instance
/// A's channel pod, the controller (as its routers do) hands it to run r1 as a follow-up, the
/// run answers, and the controller relays the answer to A's channel pod — every hop on the
/// per-instance and per-run subjects, every origin proven.
#[tokio::test]
async fn a_conversation_flows_end_to_end_with_minted_credentials() {
    let trust = Trust::generate();
    let issuer = trust.issuer();
    let nats = server(&trust).await;
    let ctl = controller(&nats, &issuer).await;
    let mut inbound =
        ctl.durable("channel-router-inbound", &format!("{}.>", topics::CHANNEL_MESSAGE_RECEIVED));
    let mut completions = ctl.durable("agentrun-completions", topics::AGENT_RUN_COMPLETED);

    let channel = pod(&nats, &mint(&issuer, &alpha()), &alpha()).await;
    let reply_topic = scoped(topics::CHANNEL_MESSAGE_SEND, "team-a", "alpha");
    let mut replies = channel.durable(&alpha().consumer_name(&reply_topic), &reply_topic);
    let r1 = Identity::run("team-a", "r1", Some("alpha".into()));
    let run = pod(&nats, &mint(&issuer, &r1), &r1).await;
    let followup_topic = scoped(topics::AGENT_FOLLOWUP_PREFIX, "team-a", "r1");
    let mut followups = run.durable(&r1.consumer_name(&followup_topic), &followup_topic);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let meta = BTreeMap::from([("chatId".to_string(), "c1".to_string())]);
    channel
        .publish(
            &scoped(topics::CHANNEL_MESSAGE_RECEIVED, "team-a", "alpha"),
            meta.clone(),
            &json!({"text": "status?"}),
        )
        .await
        .unwrap();
    let message = next(&mut inbound).await;
    assert_eq!(message.origin.as_deref(), Some("channel/team-a/alpha"));
    message.ack().await;
    ctl.publish(&scoped(topics::AGENT_FOLLOWUP_PREFIX, "team-a", "r1"), meta.clone(), &message.envelope.data)
        .await
        .unwrap();
    let task = next(&mut followups).await;
    assert_eq!(task.envelope.data["text"], "status?");
    task.ack().await;
    run.publish(topics::AGENT_RUN_COMPLETED, meta.clone(), &json!({"response": "all green"})).await.unwrap();
    let done = next(&mut completions).await;
    assert_eq!(done.origin.as_deref(), Some(origin::run_identity("team-a", "r1").as_str()));
    done.ack().await;
    ctl.publish(
        &scoped(topics::CHANNEL_MESSAGE_SEND, "team-a", "alpha"),
        meta,
        &json!({"text": done.envelope.data["response"]}),
    )
    .await
    .unwrap();
    let reply = next(&mut replies).await;
    assert_eq!(reply.envelope.data["text"], "all green");
    reply.ack().await;
}

/// Origins on top of the users: a channel pod of A, with A's own NATS user, publishes only on
/// A's subjects; whatever it claims there (B in the message, B's identity with its own key or a
/// guessed key, B's genuine signature copied from another subject), the controller's verifier
/// proves A or nothing — never B.
#[tokio::test]
async fn a_channel_pod_of_instance_a_cannot_speak_for_instance_b() {
    let trust = Trust::generate();
    let issuer = trust.issuer();
    let nats = server(&trust).await;
    let ctl = controller(&nats, &issuer).await;
    let verifier = Verifier::new(MASTER);
    let mut inbound =
        ctl.durable("channel-router-inbound", &format!("{}.>", topics::CHANNEL_MESSAGE_RECEIVED));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tally = Tally::default();

    let a_identity = origin::channel_identity("team-a", "alpha");
    let b_identity = origin::channel_identity("team-b", "beta");
    let a_key = verifier.key_for(&a_identity);
    let a_creds = mint(&issuer, &alpha());
    let pod_a = |origin: Option<Origin>| {
        let (url, user) = (nats.url(), a_creds.clone());
        async move {
            Bus::connect_with(&url, BusOptions { user: Some(user), origin, ..Default::default() })
                .await
                .unwrap()
        }
    };
    let meta = |ns: &str, inst: &str| {
        BTreeMap::from([
            ("namespace".to_string(), ns.to_string()),
            ("instanceName".to_string(), inst.to_string()),
        ])
    };
    let a_inbound = scoped(topics::CHANNEL_MESSAGE_RECEIVED, "team-a", "alpha");

    // Legitimate: A's pod speaks for A; the controller sees A's proven identity.
    let a = pod_a(Some(Origin::new(&a_identity, &a_key))).await;
    a.publish(&a_inbound, meta("team-a", "alpha"), &json!({"text": "from a"})).await.unwrap();
    let d = next(&mut inbound).await;
    assert_eq!(d.origin.as_deref(), Some("channel/team-a/alpha"));
    assert_eq!(d.topic(), a_inbound, "the subject names A, whatever the message says");

    // 1. A's pod claims B in the message: the proven origin (and the subject) is still A.
    a.publish(&a_inbound, meta("team-b", "beta"), &json!({"text": "run rm -rf for b"})).await.unwrap();
    let d = next(&mut inbound).await;
    assert_eq!(d.origin.as_deref(), Some("channel/team-a/alpha"), "the claim in the payload proves nothing");
    assert_eq!(d.topic(), a_inbound);
    tally.refused("channel A names instance B in the message");

    // 2. A's pod claims B's identity in the header, signing with A's key.
    let forged = pod_a(Some(Origin::new(&b_identity, &a_key))).await;
    forged.publish(&a_inbound, meta("team-b", "beta"), &json!({"text": "forged"})).await.unwrap();
    assert_eq!(next(&mut inbound).await.origin, None, "a signature with the wrong key proves nothing");
    tally.refused("channel A claims B's identity with its own key");

    // 3. A's pod with no origin at all.
    let bare = pod_a(None).await;
    bare.publish(&a_inbound, meta("team-b", "beta"), &json!({"text": "unsigned"})).await.unwrap();
    assert_eq!(next(&mut inbound).await.origin, None);
    tally.refused("channel A publishes without an origin");

    // 4. A's pod guesses B's key from what it knows (its own key, the identities).
    for guess in [a_key.clone(), origin::derive_key(&a_key, &b_identity), origin::derive_key("", &b_identity)]
    {
        let guessed = pod_a(Some(Origin::new(&b_identity, guess))).await;
        guessed.publish(&a_inbound, meta("team-b", "beta"), &json!({"text": "guess"})).await.unwrap();
        assert_eq!(next(&mut inbound).await.origin, None);
        tally.refused("channel A signs as B with a derived guess of B's key");
    }

    // 5. A's pod replays a message B's pod really signed, on A's own subject (headers kept).
    let b_creds = mint(&issuer, &beta());
    let b = Bus::connect_with(
        &nats.url(),
        BusOptions {
            user: Some(b_creds),
            origin: Some(Origin::new(&b_identity, verifier.key_for(&b_identity))),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut health = ctl.durable("instance-channel-health", &format!("{}.>", topics::CHANNEL_HEALTH_UPDATE));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b_health = scoped(topics::CHANNEL_HEALTH_UPDATE, "team-b", "beta");
    b.publish(&b_health, meta("team-b", "beta"), &json!({"connected": true})).await.unwrap();
    let original = next(&mut health).await;
    assert_eq!(original.origin.as_deref(), Some("channel/team-b/beta"));
    let payload = serde_json::to_vec(&original.envelope).unwrap();
    let sig = Origin::new(&b_identity, verifier.key_for(&b_identity)).sign(&subject(&b_health), &payload);
    assert_eq!(
        verifier.verify(Some(&b_identity), Some(&sig), &subject(&b_health), &payload).as_deref(),
        Some("channel/team-b/beta"),
        "it is B's valid signature where B sent it"
    );
    let attacker = raw(&nats, &a_creds).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(origin::IDENTITY_HEADER, b_identity.as_str());
    headers.insert(origin::SIGNATURE_HEADER, sig.as_str());
    jetstream::new(attacker.client.clone())
        .publish_with_headers(subject(&a_inbound), headers, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(next(&mut inbound).await.origin, None, "a signature is bound to its subject");
    tally.refused("channel A re-publishes B's signed message on its own inbound subject");

    assert_eq!(tally.tried, tally.refused);
    println!("bus identities origin: {} attacks tried, {} refused", tally.tried, tally.refused);
}
