//! The NATS users the controller mints, attacked with what a tenant can actually read: the
//! instance and AgentRun controllers run on the test control plane with the installed bus
//! settings (the account's signing key), create `alpha-bus` (namespace A), `beta-bus`
//! (namespace B), `r1-bus` (A) and `r2-bus` (B); a real `nats-server -js` runs with the
//! installation's trust chain (operator mode). The attacker takes A's channel credentials and
//! run r1's credentials out of the Secrets in its own namespace and tries to read B's replies,
//! publish as B, pull B's consumer, answer an approval, and read another run's spawn and
//! schedule results; a client without credentials tries to connect. NATS refuses each one
//! with a permissions violation naming the subject (or an authorization error), nothing is
//! stored, and B's own pod, reading with B's Secret, still gets its replies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use sympozium_bus::jwt::{Trust, UserCredentials};
use sympozium_bus::origin::Verifier;
use sympozium_bus::scope::Identity;
use sympozium_bus::topics;
use sympozium_bus::{Bus, BusOptions, subject};
use sympozium_controller::context::Context;
use sympozium_controller::settings::{BusAuth, Settings};
use sympozium_controller::{agentrun, instance};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::TestPlane;
use sympozium_testkit::nats::NatsServer;

const MASTER: &str = "bus-credentials-test-master-key";
const WAIT: Duration = Duration::from_secs(60);

async fn apply(client: &Client, ns: &str, kind: &str, name: &str, spec: serde_json::Value) {
    let plural = match kind {
        "SympoziumInstance" => "sympoziuminstances",
        _ => "agentruns",
    };
    let resource = kube::api::ApiResource {
        group: "sympozium.ai".into(),
        version: "v1alpha1".into(),
        api_version: "sympozium.ai/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec});
    api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&body)).await.unwrap();
}

async fn plain_secret(client: &Client, ns: &str, name: &str) {
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {"TOKEN": "x"}})).unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&secret))
        .await
        .unwrap();
}

/// The NATS user in Secret `name` (what a pod of that namespace gets as `NATS_CREDS`).
async fn creds_in(client: &Client, ns: &str, name: &str) -> UserCredentials {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    for _ in 0..(WAIT.as_millis() / 200) {
        if let Some(s) = api.get_opt(name).await.unwrap()
            && let Some(raw) = s.data.as_ref().and_then(|d| d.get("creds"))
        {
            return UserCredentials::from_creds(std::str::from_utf8(&raw.0).unwrap()).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no Secret {ns}/{name} with creds");
}

/// A raw client with `creds`, collecting what the server says about it.
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
    /// The server's permissions violation about `what` (bounded wait).
    async fn violation(&self, what: &str) -> String {
        for _ in 0..100 {
            if let Some(e) = self.errors.lock().unwrap().iter().find(|e| e.contains(what)) {
                assert!(e.contains("Permissions Violation"), "{e}");
                return e.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no permissions violation for {what}; server said {:?}", self.errors.lock().unwrap());
    }

    async fn publish(&self, subject: &str, marker: &str) {
        let js = jetstream::new(self.client.clone());
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            js.publish(subject.to_string(), json!({"marker": marker}).to_string().into()),
        )
        .await;
    }

    async fn subscribe_refused(&self, subject: &str) {
        let _sub = self.client.subscribe(subject.to_string()).await.unwrap();
        self.violation(&format!("Subscription to \"{subject}\"")).await;
    }

    /// Asks JetStream for consumer `name` on `subject` and expects the server to refuse the
    /// API request (it never reaches JetStream, so no answer comes).
    async fn consumer_refused(&self, name: &str, subject: &str) {
        let api = format!("$JS.API.CONSUMER.CREATE.sympozium.{name}.{subject}");
        let body = json!({"stream_name": "sympozium", "config": {"name": name, "filter_subject": subject,
            "ack_policy": "explicit", "deliver_policy": "all"}});
        let reply = tokio::time::timeout(
            Duration::from_secs(3),
            self.client.request(api.clone(), body.to_string().into()),
        )
        .await;
        if let Ok(Ok(reply)) = &reply {
            let answer: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap_or_default();
            assert!(answer.get("error").is_some(), "JetStream made consumer {name} on {subject}: {answer}");
        }
        self.violation(&format!("Publish to \"{api}\"")).await;
    }

    async fn request_refused(&self, api: &str) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.client.request(api.to_string(), json!({"batch": 1}).to_string().into()),
        )
        .await;
        self.violation(&format!("Publish to \"{api}\"")).await;
    }
}

/// Whether the stream holds `marker` on `subject`.
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

#[tokio::test]
async fn a_tenant_with_its_own_bus_secrets_cannot_reach_another_tenants_subjects() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns_a = plane.namespace(&client, "bus-creds-a").await.unwrap().name().to_string();
    let ns_b = plane.namespace(&client, "bus-creds-b").await.unwrap().name().to_string();

    // The installation: NATS in operator mode; the controllers hold the signing key.
    let trust = Trust::generate();
    let config = trust.server_config().unwrap();
    let nats = NatsServer::start_with_config(move |_, _| config).await.unwrap();
    let auth = BusAuth { issuer: Arc::new(trust.issuer()), master_key: MASTER.into() };
    let settings = Settings {
        image_tag: "test".into(),
        event_bus_url: Some(nats.url()),
        bus_auth: Some(auth.clone()),
        ..Default::default()
    };
    let mut tasks = Vec::new();
    for ns in [&ns_a, &ns_b] {
        let ctx = Arc::new(Context::new(
            client.clone(),
            settings.clone(),
            Metrics::default(),
            Some(ns.clone()),
            "test",
        ));
        tasks.push(tokio::spawn(instance::run(ctx.clone())));
        tasks.push(tokio::spawn(agentrun::run(ctx)));
    }
    let controller = Bus::connect_with(
        &nats.url(),
        BusOptions {
            user: Some(auth.issuer.mint(&Identity::Controller, None).unwrap()),
            verifier: Some(Verifier::new(MASTER)),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    for (ns, name) in [(&ns_a, "alpha"), (&ns_b, "beta")] {
        plain_secret(&client, ns, "slack").await;
        plain_secret(&client, ns, "openai-key").await;
        apply(
            &client,
            ns,
            "SympoziumInstance",
            name,
            json!({
            "agents": {"default": {"model": "gpt-4o"}},
            "authRefs": [{"provider": "openai", "secret": "openai-key"}],
            "channels": [{"type": "slack", "configRef": {"secret": "slack"}}]}),
        )
        .await;
    }
    for (ns, run, inst) in [(&ns_a, "r1", "alpha"), (&ns_b, "r2", "beta")] {
        apply(
            &client,
            ns,
            "AgentRun",
            run,
            json!({"instanceRef": inst, "agentId": "primary", "sessionKey": "",
            "task": "t", "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "openai-key"}}),
        )
        .await;
    }
    let a_creds = creds_in(&client, &ns_a, "alpha-bus").await;
    let b_creds = creds_in(&client, &ns_b, "beta-bus").await;
    let r1_creds = creds_in(&client, &ns_a, "r1-bus").await;
    assert_eq!(a_creds.name().as_deref(), Some(format!("channel/{ns_a}/alpha").as_str()));
    assert_eq!(r1_creds.name().as_deref(), Some(format!("run/{ns_a}/r1").as_str()));

    // The channel pod takes them by reference, never by value.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns_a);
    let mut env = Vec::new();
    for _ in 0..(WAIT.as_millis() / 200) {
        let list = deployments.list(&ListParams::default()).await.unwrap().items;
        if let Some(d) =
            list.into_iter().find(|d| d.metadata.name.as_deref().is_some_and(|n| n.contains("slack")))
        {
            env = d.spec.unwrap().template.spec.unwrap().containers[0].env.clone().unwrap_or_default();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let creds_env = env.iter().find(|e| e.name == "NATS_CREDS").expect("NATS_CREDS in the channel pod");
    assert!(creds_env.value.is_none());
    let by_ref = creds_env.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!((by_ref.name.as_str(), by_ref.key.as_str()), ("alpha-bus", "creds"));

    let mut tally = Tally::default();
    let beta = Identity::channel(&ns_b, "beta");
    let b_send = topics::channel_send(&ns_b, "beta");
    // B's pod reads its replies through its own consumer.
    let b_pod =
        Bus::connect_with(&nats.url(), BusOptions { user: Some(b_creds.clone()), ..Default::default() })
            .await
            .unwrap();
    let b_consumer = beta.channel_consumer_name(&b_send, "slack");
    let mut b_replies = b_pod.durable(&b_consumer, &b_send);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // --- With instance A's channel credentials.
    let a = raw(&nats, &a_creds).await;
    a.subscribe_refused(&subject(&b_send)).await;
    tally.refused("A's channel user subscribes to B's replies");
    a.consumer_refused(&b_consumer, &subject(&b_send)).await;
    tally.refused("A's channel user creates B's consumer on B's replies");
    let alpha = Identity::channel(&ns_a, "alpha");
    let a_send = topics::channel_send(&ns_a, "alpha");
    a.consumer_refused(&alpha.channel_consumer_name(&a_send, "slack"), &subject(&b_send)).await;
    tally.refused("A's channel user points its own consumer at B's replies");
    a.consumer_refused(&alpha.consumer_name(&a_send), &subject(&topics::every(topics::CHANNEL_MESSAGE_SEND)))
        .await;
    tally.refused("A's channel user reads every instance's replies (wildcard)");
    a.request_refused(&format!("$JS.API.CONSUMER.MSG.NEXT.sympozium.{b_consumer}")).await;
    tally.refused("A's channel user pulls from B's consumer");
    let received_b = subject(&topics::channel_received(&ns_b, "beta"));
    a.publish(&received_b, "a-as-b").await;
    a.violation(&format!("Publish to \"{received_b}\"")).await;
    assert!(!stored(&controller, &received_b, "a-as-b").await);
    tally.refused("A's channel user publishes a chat message as B");
    let answer = subject(&topics::approval_response(&ns_b, "r2"));
    a.publish(&answer, "a-answers").await;
    a.violation(&format!("Publish to \"{answer}\"")).await;
    assert!(!stored(&controller, &answer, "a-answers").await);
    tally.refused("A's channel user answers run r2's tool approval");

    // --- With run r1's credentials.
    let r1 = raw(&nats, &r1_creds).await;
    let r2 = Identity::run(&ns_b, "r2", Some("beta".into()));
    for topic in [topics::spawn_result(&ns_b, "r2"), topics::schedule_upsert_result(&ns_b, "r2")] {
        r1.consumer_refused(&r2.consumer_name(&topic), &subject(&topic)).await;
        tally.refused(&format!("run r1 reads {topic} through r2's consumer"));
        r1.subscribe_refused(&subject(&topic)).await;
        tally.refused(&format!("run r1 subscribes to {topic}"));
    }
    let own_answer = subject(&topics::approval_response(&ns_a, "r1"));
    r1.publish(&own_answer, "r1-self-approves").await;
    r1.violation(&format!("Publish to \"{own_answer}\"")).await;
    assert!(!stored(&controller, &own_answer, "r1-self-approves").await);
    tally.refused("run r1 answers its own tool approval");
    r1.publish(&subject(&b_send), "r1-posts-as-b").await;
    r1.violation(&format!("Publish to \"{}\"", subject(&b_send))).await;
    tally.refused("run r1 posts through B's channel pods");

    // --- Without credentials.
    let err = async_nats::connect(nats.url()).await.map(|_| ()).unwrap_err().to_string();
    assert!(err.to_lowercase().contains("authorization"), "{err}");
    tally.refused("a client without credentials connects");

    // B's own pod still gets exactly its own reply.
    let meta = BTreeMap::from([("instanceName".to_string(), "beta".to_string())]);
    controller.publish(&b_send, meta, &json!({"text": "for beta"})).await.unwrap();
    let reply = tokio::time::timeout(WAIT, b_replies.recv()).await.expect("B's reply in time").unwrap();
    assert_eq!(reply.envelope.data["text"], "for beta");
    reply.ack().await;

    assert_eq!(tally.tried, tally.refused);
    println!("bus credentials (plane): {} attacks tried, {} refused", tally.tried, tally.refused);
    for t in tasks {
        t.abort();
    }
}
