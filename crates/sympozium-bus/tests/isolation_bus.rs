//! The bus is authenticated and scoped, tried the way a hostile tenant would: a real
//! `nats-server -js` runs with exactly the configuration `sympozium install` renders
//! ([`auth::server_config`]), and each attack is made with the credentials a tenant can get
//! hold of (the `channel` and `agent` role passwords sit in Secrets of its own namespace,
//! next to its own origin key). Every attack must be refused by NATS itself (a permissions
//! violation naming the subject, nothing stored) or, for forged origins, by the controller's
//! verification; the legitimate uses right next to them must keep working.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use serde_json::json;
use sympozium_bus::auth::{self, Credentials, Role, RoleUser};
use sympozium_bus::origin::{self, Origin, Verifier};
use sympozium_bus::{Bus, BusOptions, Delivery, subject, topics};
use sympozium_testkit::nats::NatsServer;
use tokio::sync::mpsc::Receiver;

const MASTER: &str = "test-master-key-0123456789abcdef";

fn password(role: Role) -> String {
    format!("pw-{}-5f2c9a", role.user())
}

async fn server() -> NatsServer {
    let users: Vec<_> = Role::ALL.iter().map(|r| RoleUser { role: *r, password: password(*r) }).collect();
    NatsServer::start_with_config(|_, _| auth::server_config(&users)).await.unwrap()
}

fn creds(role: Role) -> Option<Credentials> {
    Some(Credentials { role, password: password(role) })
}

/// The controller: every permission, verifies origins.
async fn controller(nats: &NatsServer) -> Bus {
    Bus::connect_with(
        &nats.url(),
        BusOptions {
            credentials: creds(Role::Controller),
            verifier: Some(Verifier::new(MASTER)),
            origin: None,
        },
    )
    .await
    .unwrap()
}

/// A raw client as `role`, collecting what the server says about it (permission violations).
struct Raw {
    client: async_nats::Client,
    errors: Arc<Mutex<Vec<String>>>,
}

async fn raw(nats: &NatsServer, role: Role, inbox_prefix: Option<String>) -> Raw {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    let mut options = async_nats::ConnectOptions::new()
        .user_and_password(role.user().into(), password(role))
        .event_callback(move |event| {
            let sink = sink.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    sink.lock().unwrap().push(e.to_string());
                }
            }
        });
    if let Some(prefix) = inbox_prefix.or(role.inbox_prefix()) {
        options = options.custom_inbox_prefix(prefix);
    }
    let client = options.connect(nats.url()).await.unwrap();
    Raw { client, errors }
}

impl Raw {
    /// Waits (bounded) until the server reports a permissions violation mentioning `what`.
    async fn violation(&self, what: &str) -> String {
        for _ in 0..100 {
            if let Some(e) = self.errors.lock().unwrap().iter().find(|e| e.contains(what)) {
                return e.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no permissions violation for {what}; server said {:?}", self.errors.lock().unwrap());
    }

    /// A JetStream API request; `Err` when it got no answer (refused by permissions).
    async fn api(&self, subject: &str, body: serde_json::Value) -> Result<serde_json::Value, String> {
        let request = self.client.request(subject.to_string(), body.to_string().into());
        match tokio::time::timeout(Duration::from_secs(3), request).await {
            Ok(Ok(reply)) => Ok(serde_json::from_slice(&reply.payload).unwrap_or_default()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer".into()),
        }
    }
}

/// Whether the stream holds `marker` on `subject` (what the controller would consume).
async fn stored(controller: &Bus, subject: &str, marker: &str) -> bool {
    let js = jetstream::new(controller.client().clone());
    let stream = js.get_stream("sympozium").await.unwrap();
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(m) => String::from_utf8_lossy(&m.payload).contains(marker),
        Err(_) => false,
    }
}

/// Tallies attacks; each must end refused.
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

#[tokio::test]
async fn without_the_right_credentials_nothing_connects() {
    let nats = server().await;
    let mut tally = Tally::default();
    // No credentials at all.
    let err = async_nats::connect(nats.url()).await.unwrap_err().to_string();
    assert!(err.to_lowercase().contains("authorization"), "{err}");
    tally.refused("connect without credentials");
    // A role name with a wrong or empty password, and a made-up user.
    for (user, pass) in
        [("controller", "guess"), ("agent", ""), ("channel", "pw-agent-5f2c9a"), ("admin", "admin")]
    {
        let attempt = async_nats::ConnectOptions::new()
            .user_and_password(user.into(), pass.into())
            .connect(nats.url())
            .await;
        let err = attempt.map(|_| ()).unwrap_err().to_string();
        assert!(err.to_lowercase().contains("authorization"), "{user}: {err}");
        tally.refused(&format!("connect as {user} with a wrong password"));
    }
    // The right password connects.
    async_nats::ConnectOptions::new()
        .user_and_password("agent".into(), password(Role::Agent))
        .connect(nats.url())
        .await
        .unwrap();
    assert_eq!(tally.tried, tally.refused);
    println!("bus connect: {} attacks tried, {} refused", tally.tried, tally.refused);
}

#[tokio::test]
async fn each_role_can_do_only_what_its_components_need() {
    let nats = server().await;
    let ctl = controller(&nats).await;
    let mut tally = Tally::default();

    // --- A run (agent role) answering its own approval ---------------------------------
    let run = raw(&nats, Role::Agent, None).await;
    let runner_js = jetstream::new(run.client.clone());
    let answer = subject(topics::TOOL_APPROVAL_RESPONSE);
    let body = json!({"topic": topics::TOOL_APPROVAL_RESPONSE, "timestamp": "t", "metadata": {"agentRunID": "r1"},
                      "data": {"requestId": "q1", "approved": true, "marker": "self-approved"}});
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        runner_js.publish(answer.clone(), body.to_string().into()),
    )
    .await;
    let said = run.violation(&format!("Publish to \"{answer}\"")).await;
    assert!(said.contains("Permissions Violation"), "{said}");
    assert!(!stored(&ctl, &answer, "self-approved").await, "the self-approval never reached the stream");
    tally.refused("agent role publishes tool.approval.response (answers its own approval)");

    // The same run through the real Bus API: an error, not a silent success.
    let run_bus =
        Bus::connect_with(&nats.url(), BusOptions { credentials: creds(Role::Agent), ..Default::default() })
            .await
            .unwrap();
    let attempt = tokio::time::timeout(
        Duration::from_secs(10),
        run_bus.publish(
            topics::TOOL_APPROVAL_RESPONSE,
            BTreeMap::new(),
            &json!({"requestId": "q1", "approved": true}),
        ),
    )
    .await;
    assert!(!matches!(attempt, Ok(Ok(()))), "a run's approval answer must fail");
    tally.refused("agent role answers its approval through Bus::publish");

    // ... while asking for one, and reading the answers, works.
    run_bus
        .publish(
            topics::TOOL_APPROVAL_REQUEST,
            BTreeMap::new(),
            &json!({"requestId": "q2", "tool": "execute_command"}),
        )
        .await
        .unwrap();
    let mut answers = run_bus.follow(topics::TOOL_APPROVAL_RESPONSE).await.unwrap();
    let operator = Bus::connect_with(
        &nats.url(),
        BusOptions { credentials: creds(Role::Operator), ..Default::default() },
    )
    .await
    .unwrap();
    operator
        .publish(
            topics::TOOL_APPROVAL_RESPONSE,
            BTreeMap::new(),
            &json!({"requestId": "q2", "approved": true}),
        )
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), answers.recv()).await.unwrap().unwrap();
    assert_eq!(got.data["requestId"], "q2", "the TUI's answer reaches the run");

    // --- A channel pod publishing what only runs or the controller may --------------------
    let channel = raw(&nats, Role::Channel, None).await;
    let channel_js = jetstream::new(channel.client.clone());
    for topic in [
        topics::TOOL_APPROVAL_RESPONSE,
        topics::AGENT_RUN_COMPLETED,
        topics::SCHEDULE_UPSERT,
        topics::AGENT_SPAWN_REQUEST,
        topics::CHANNEL_MESSAGE_SEND,
    ] {
        let subj = subject(topic);
        let marker = format!("channel-forged-{topic}");
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            channel_js.publish(subj.clone(), json!({"marker": marker}).to_string().into()),
        )
        .await;
        channel.violation(&format!("Publish to \"{subj}\"")).await;
        assert!(!stored(&ctl, &subj, &marker).await, "{topic} from a channel pod never stored");
        tally.refused(&format!("channel role publishes {topic}"));
    }

    // --- Reading what is not yours ---------------------------------------------------------
    // The controller's reply inbox (where its pulled messages arrive) and another role's.
    for (who, client, inbox) in [
        ("agent", &run, "_INBOX.>"),
        ("channel", &channel, "_INBOX.>"),
        ("agent", &run, "_INBOX_channel.>"),
        ("channel", &channel, "_INBOX_operator.>"),
        ("agent", &run, "sympozium.>"),
        ("channel", &channel, ">"),
    ] {
        let _sub = client.client.subscribe(inbox.to_string()).await.unwrap();
        let said = client.violation(&format!("Subscription to \"{inbox}\"")).await;
        assert!(said.contains("Permissions Violation"), "{said}");
        tally.refused(&format!("{who} role subscribes to {inbox}"));
    }

    // JetStream API: consumers on other subjects, the controller's consumers, reading by
    // sequence, listing, and administering the stream.
    let js = "$JS.API";
    let attacks: Vec<(&str, &Raw, String, serde_json::Value)> = vec![
        (
            "channel role creates a consumer on agent.run.completed",
            &channel,
            format!("{js}.CONSUMER.CREATE.sympozium.spy.sympozium.agent.run.completed"),
            json!({"stream_name": "sympozium", "config": {"name": "spy", "filter_subject": "sympozium.agent.run.completed", "ack_policy": "none"}}),
        ),
        (
            "channel role creates an unnamed consumer (no filter in the API subject)",
            &channel,
            format!("{js}.CONSUMER.CREATE.sympozium"),
            json!({"stream_name": "sympozium", "config": {"ack_policy": "none"}}),
        ),
        (
            "agent role creates a consumer reading every chat message",
            &run,
            format!("{js}.CONSUMER.CREATE.sympozium.spy.sympozium.channel.message.received"),
            json!({"stream_name": "sympozium", "config": {"name": "spy", "filter_subject": "sympozium.channel.message.received", "ack_policy": "none"}}),
        ),
        (
            "agent role pulls from the controller's inbound consumer",
            &run,
            format!("{js}.CONSUMER.MSG.NEXT.sympozium.channel-router-inbound"),
            json!({"batch": 1, "expires": 1_000_000_000u64}),
        ),
        (
            "channel role inspects the controller's approval consumer",
            &channel,
            format!("{js}.CONSUMER.INFO.sympozium.channel-router-approvals"),
            json!({}),
        ),
        (
            "channel role redefines the controller's inbound consumer on its own subject",
            &channel,
            format!("{js}.CONSUMER.CREATE.sympozium.channel-router-inbound.sympozium.channel.message.send"),
            json!({"stream_name": "sympozium", "config": {"durable_name": "channel-router-inbound", "filter_subject": "sympozium.channel.message.send", "ack_policy": "explicit"}}),
        ),
        (
            "agent role reads a message by sequence",
            &run,
            format!("{js}.STREAM.MSG.GET.sympozium"),
            json!({"seq": 1}),
        ),
        ("agent role lists consumer names", &run, format!("{js}.CONSUMER.NAMES.sympozium"), json!({})),
        ("channel role lists consumers", &channel, format!("{js}.CONSUMER.LIST.sympozium"), json!({})),
        ("agent role purges the stream", &run, format!("{js}.STREAM.PURGE.sympozium"), json!({})),
        ("channel role deletes the stream", &channel, format!("{js}.STREAM.DELETE.sympozium"), json!({})),
        (
            "agent role shrinks the stream",
            &run,
            format!("{js}.STREAM.UPDATE.sympozium"),
            json!({"name": "sympozium", "subjects": ["sympozium.>"], "max_msgs": 1}),
        ),
        (
            "channel role deletes the controller's consumer",
            &channel,
            format!("{js}.CONSUMER.DELETE.sympozium.channel-router-inbound"),
            json!({}),
        ),
        ("agent role lists streams", &run, format!("{js}.STREAM.LIST"), json!({})),
    ];
    for (what, who, api_subject, body) in attacks {
        let answer = who.api(&api_subject, body).await;
        assert!(answer.is_err(), "{what}: answered {answer:?}");
        who.violation(&format!("Publish to \"{api_subject}\"")).await;
        tally.refused(what);
    }
    // Through an allowed API subject with a body asking for another filter: NATS checks that
    // the filter in the subject and in the body agree.
    let answer = channel
        .api(
            &format!("{js}.CONSUMER.CREATE.sympozium.sneaky.sympozium.channel.message.send"),
            json!({"stream_name": "sympozium", "config": {"name": "sneaky", "filter_subject": "sympozium.agent.run.completed", "ack_policy": "none"}}),
        )
        .await
        .expect("an answer from JetStream");
    assert!(answer.get("error").is_some(), "a mismatched filter must be refused: {answer}");
    tally.refused("channel role smuggles another filter through its allowed consumer subject");

    // The controller's consumers keep working after all this.
    let mut inbound = ctl.durable("channel-router-inbound", topics::CHANNEL_MESSAGE_RECEIVED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pod = Bus::connect_with(
        &nats.url(),
        BusOptions { credentials: creds(Role::Channel), ..Default::default() },
    )
    .await
    .unwrap();
    pod.publish(topics::CHANNEL_MESSAGE_RECEIVED, BTreeMap::new(), &json!({"text": "hello"})).await.unwrap();
    assert_eq!(next(&mut inbound).await.envelope.data["text"], "hello");

    assert_eq!(tally.tried, tally.refused);
    println!("bus permissions: {} attacks tried, {} refused", tally.tried, tally.refused);
}

#[tokio::test]
async fn a_channel_pod_of_instance_a_cannot_speak_for_instance_b() {
    let nats = server().await;
    let ctl = controller(&nats).await;
    let verifier = Verifier::new(MASTER);
    let mut inbound = ctl.durable("channel-router-inbound", topics::CHANNEL_MESSAGE_RECEIVED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tally = Tally::default();

    let a_identity = origin::channel_identity("team-a", "alpha");
    let b_identity = origin::channel_identity("team-b", "beta");
    let a_key = verifier.key_for(&a_identity);
    let pod_a = |origin: Option<Origin>| {
        let url = nats.url();
        async move {
            Bus::connect_with(&url, BusOptions { credentials: creds(Role::Channel), origin, verifier: None })
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

    // Legitimate: A's pod speaks for A; the controller sees A's proven identity.
    let a = pod_a(Some(Origin::new(&a_identity, &a_key))).await;
    a.publish(topics::CHANNEL_MESSAGE_RECEIVED, meta("team-a", "alpha"), &json!({"text": "from a"}))
        .await
        .unwrap();
    let d = next(&mut inbound).await;
    assert_eq!(d.origin.as_deref(), Some("channel/team-a/alpha"));

    // 1. A's pod claims B in the message: the proven origin is still A, which the router
    //    compares with the instance the message names.
    a.publish(topics::CHANNEL_MESSAGE_RECEIVED, meta("team-b", "beta"), &json!({"text": "run rm -rf for b"}))
        .await
        .unwrap();
    let d = next(&mut inbound).await;
    assert_eq!(d.origin.as_deref(), Some("channel/team-a/alpha"), "the claim in the payload proves nothing");
    assert_ne!(d.origin.as_deref(), Some(b_identity.as_str()));
    tally.refused("channel A names instance B in the message");

    // 2. A's pod claims B's identity in the header, signing with A's key.
    let forged = pod_a(Some(Origin::new(&b_identity, &a_key))).await;
    forged
        .publish(topics::CHANNEL_MESSAGE_RECEIVED, meta("team-b", "beta"), &json!({"text": "forged"}))
        .await
        .unwrap();
    assert_eq!(next(&mut inbound).await.origin, None, "a signature with the wrong key proves nothing");
    tally.refused("channel A claims B's identity with its own key");

    // 3. A's pod with no origin at all.
    let bare = pod_a(None).await;
    bare.publish(topics::CHANNEL_MESSAGE_RECEIVED, meta("team-b", "beta"), &json!({"text": "unsigned"}))
        .await
        .unwrap();
    assert_eq!(next(&mut inbound).await.origin, None);
    tally.refused("channel A publishes without an origin");

    // 4. A's pod guesses B's key from what it knows (its own key, the identities).
    for guess in [a_key.clone(), origin::derive_key(&a_key, &b_identity), origin::derive_key("", &b_identity)]
    {
        let guessed = pod_a(Some(Origin::new(&b_identity, guess))).await;
        guessed
            .publish(topics::CHANNEL_MESSAGE_RECEIVED, meta("team-b", "beta"), &json!({"text": "guess"}))
            .await
            .unwrap();
        assert_eq!(next(&mut inbound).await.origin, None);
        tally.refused("channel A signs as B with a derived guess of B's key");
    }

    // 5. A's pod replays a message B's pod really signed, on another subject (headers kept).
    let b = pod_a(Some(Origin::new(&b_identity, verifier.key_for(&b_identity)))).await;
    let mut health = ctl.durable("instance-channel-health", topics::CHANNEL_HEALTH_UPDATE);
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.publish(topics::CHANNEL_HEALTH_UPDATE, meta("team-b", "beta"), &json!({"connected": true}))
        .await
        .unwrap();
    let original = next(&mut health).await;
    assert_eq!(original.origin.as_deref(), Some("channel/team-b/beta"));
    // B's genuine signature of that message (recomputed here; the same bytes B sent).
    let payload = serde_json::to_vec(&original.envelope).unwrap();
    let sig = Origin::new(&b_identity, verifier.key_for(&b_identity))
        .sign(&subject(topics::CHANNEL_HEALTH_UPDATE), &payload);
    let health_subject = subject(topics::CHANNEL_HEALTH_UPDATE);
    assert_eq!(
        verifier.verify(Some(&b_identity), Some(&sig), &health_subject, &payload).as_deref(),
        Some("channel/team-b/beta"),
        "it is B's valid signature where B sent it"
    );
    let channel = raw(&nats, Role::Channel, None).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(origin::IDENTITY_HEADER, b_identity.as_str());
    headers.insert(origin::SIGNATURE_HEADER, sig.as_str());
    jetstream::new(channel.client.clone())
        .publish_with_headers(subject(topics::CHANNEL_MESSAGE_RECEIVED), headers, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(next(&mut inbound).await.origin, None, "a signature is bound to its subject");
    tally.refused("channel A re-publishes B's signed message on the inbound subject");

    assert_eq!(tally.tried, tally.refused);
    println!("bus origin: {} attacks tried, {} refused", tally.tried, tally.refused);
}
