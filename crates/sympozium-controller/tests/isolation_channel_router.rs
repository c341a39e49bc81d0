//! A channel pod of instance A cannot make instance B run anything: the channel router on
//! the test control plane, behind a real nats-server in operator mode (the installed trust
//! chain), verifying origins with the master key as the installed controller does. The
//! attacker holds what a tenant of namespace A can read: A's channel user (NATS creds) and
//! A's origin key (both in `alpha-bus`). Each attack is made, then B's own channel pod sends one real
//! message; the router handles messages in order, so once B's real run exists every attack
//! before it has been decided — and B must have exactly that one run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sympozium_api::AgentRun;
use sympozium_bus::jwt::{Issuer, Trust};
use sympozium_bus::origin::{self, Origin, Verifier};
use sympozium_bus::scope::Identity;
use sympozium_bus::{Bus, BusOptions, topics};
use sympozium_controller::channelrouter;
use sympozium_testkit::TestPlane;
use sympozium_testkit::nats::NatsServer;

const MASTER: &str = "router-test-master-key";

async fn operator_mode() -> (NatsServer, Issuer) {
    let trust = Trust::generate();
    let config = trust.server_config().unwrap();
    (NatsServer::start_with_config(move |_, _| config).await.unwrap(), trust.issuer())
}

async fn controller(nats: &NatsServer, issuer: &Issuer, verifier: &Verifier) -> Bus {
    let options = BusOptions {
        user: Some(issuer.mint(&Identity::Controller, None).unwrap()),
        verifier: Some(verifier.clone()),
        ..Default::default()
    };
    Bus::connect_with(&nats.url(), options).await.unwrap()
}

async fn instance(client: &Client, ns: &str, name: &str, access: Value) {
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
        "metadata": {"name": name},
        "spec": {"agents": {"default": {"model": "gpt-4.1"}},
                 "authRefs": [{"provider": "openai", "secret": "key"}],
                 "channels": [{"type": "slack", "configRef": {"secret": "slack"}, "accessControl": access}]}});
    Api::<sympozium_api::SympoziumInstance>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply("test"), &Patch::Apply(&body))
        .await
        .unwrap();
}

/// A channel pod's connection: `user`'s NATS user, signing as `identity` with `key`.
async fn pod(nats: &NatsServer, issuer: &Issuer, user: &Identity, identity: Option<(&str, &str)>) -> Bus {
    let options = BusOptions {
        user: Some(issuer.mint(user, None).unwrap()),
        origin: identity.map(|(id, key)| Origin::new(id, key)),
        ..Default::default()
    };
    Bus::connect_with(&nats.url(), options).await.unwrap()
}

/// Publishes a chat message on `subject_of`'s own subject (the only one its pod may use),
/// claiming to be for `ns`/`instance`.
#[allow(clippy::too_many_arguments)]
async fn say(
    bus: &Bus,
    subject_of: &Identity,
    channel: &str,
    ns: &str,
    instance: &str,
    sender: &str,
    id: &str,
    text: &str,
) {
    let Identity::Channel { namespace, instance: own } = subject_of else { unreachable!() };
    let meta = BTreeMap::from([
        ("channel".to_string(), channel.to_string()),
        ("instanceName".to_string(), instance.to_string()),
        ("namespace".to_string(), ns.to_string()),
    ]);
    let data = json!({"channel": channel, "instanceName": instance, "namespace": ns, "senderId": sender,
        "chatId": "C1", "text": text, "metadata": {"ts": id}});
    bus.publish(&topics::channel_received(namespace, own), meta, &data).await.unwrap();
}

async fn runs(client: &Client, ns: &str) -> Vec<AgentRun> {
    Api::<AgentRun>::namespaced(client.clone(), ns).list(&ListParams::default()).await.unwrap().items
}

/// Waits (bounded) until `ns` has a run whose task contains `text`; returns all runs there.
async fn after_run_with(client: &Client, ns: &str, text: &str) -> Vec<AgentRun> {
    for _ in 0..200 {
        let all = runs(client, ns).await;
        if all.iter().any(|r| r.spec.task.contains(text)) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no run with {text:?} in {ns}");
}

#[tokio::test]
async fn a_channel_pod_of_one_instance_cannot_start_runs_of_another() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns_a = plane.namespace(&client, "iso-chan-a").await.unwrap().name().to_string();
    let ns_b = plane.namespace(&client, "iso-chan-b").await.unwrap().name().to_string();
    instance(&client, &ns_a, "alpha", json!({})).await;
    instance(&client, &ns_b, "beta", json!({"deniedSenders": ["mallory"]})).await;

    let (nats, issuer) = operator_mode().await;
    let verifier = Verifier::new(MASTER);
    let router = tokio::spawn(channelrouter::run(
        std::sync::Arc::new(sympozium_controller::context::Context::with_defaults(client.clone(), None)),
        controller(&nats, &issuer, &verifier).await,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let a_id = origin::channel_identity(&ns_a, "alpha");
    let b_id = origin::channel_identity(&ns_b, "beta");
    let a_key = verifier.key_for(&a_id);
    let b_key = verifier.key_for(&b_id);
    let (alpha, beta) = (Identity::channel(&ns_a, "alpha"), Identity::channel(&ns_b, "beta"));
    let pod_a = pod(&nats, &issuer, &alpha, Some((&a_id, &a_key))).await;
    let mut tried = 0;

    // 1. A's pod names B in the message.
    say(&pod_a, &alpha, "slack", &ns_b, "beta", "U1", "1.1", "attack: A names B").await;
    tried += 1;
    // 2. A's pod claims B's identity, signing with its own key.
    let forged = pod(&nats, &issuer, &alpha, Some((&b_id, &a_key))).await;
    say(&forged, &alpha, "slack", &ns_b, "beta", "U1", "1.2", "attack: A claims B's identity").await;
    tried += 1;
    // 3. A's pod sends unsigned, naming B.
    let bare = pod(&nats, &issuer, &alpha, None).await;
    say(&bare, &alpha, "slack", &ns_b, "beta", "U1", "1.3", "attack: unsigned").await;
    tried += 1;
    // 4. A's pod names B without a namespace (the name alone is unambiguous).
    let meta = BTreeMap::from([("instanceName".to_string(), "beta".to_string())]);
    let data = json!({"channel": "slack", "instanceName": "beta", "senderId": "U1", "chatId": "C1",
        "text": "attack: no namespace", "metadata": {"ts": "1.4"}});
    pod_a.publish(&topics::channel_received(&ns_a, "alpha"), meta.clone(), &data).await.unwrap();
    tried += 1;
    // 5. A's pod publishes on B's own subject, signed with B's identity claim: NATS refuses.
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        forged.publish(&topics::channel_received(&ns_b, "beta"), meta, &data),
    )
    .await;
    assert!(!matches!(refused, Ok(Ok(()))), "NATS stored a message A published on B's subject");
    tried += 1;
    // 6. B's own pod, on a channel type B does not configure.
    let pod_b = pod(&nats, &issuer, &beta, Some((&b_id, &b_key))).await;
    say(&pod_b, &beta, "telegram", &ns_b, "beta", "U1", "1.5", "attack: unconfigured channel type").await;
    tried += 1;
    // 7. B's own pod, from a sender B's slack entry denies (deny wins).
    say(&pod_b, &beta, "slack", &ns_b, "beta", "mallory", "1.6", "attack: denied sender").await;
    tried += 1;

    // The real message from B's pod: its run appears, and it is B's only run.
    say(&pod_b, &beta, "slack", &ns_b, "beta", "U1", "1.7", "legit message for beta").await;
    let b_runs = after_run_with(&client, &ns_b, "legit message for beta").await;
    let tasks: Vec<_> = b_runs.iter().map(|r| r.spec.task.clone()).collect();
    assert_eq!(b_runs.len(), 1, "only B's own message made a run in B: {tasks:?}");
    let refused = tried - (b_runs.len() - 1);

    // A's pod still works for A.
    say(&pod_a, &alpha, "slack", &ns_a, "alpha", "U1", "2.1", "legit message for alpha").await;
    let a_runs = after_run_with(&client, &ns_a, "legit message for alpha").await;
    assert_eq!(a_runs.len(), 1);
    assert!(runs(&client, &ns_b).await.len() == 1, "and nothing more in B");

    assert_eq!(tried, refused);
    println!("channel router isolation: {tried} attacks tried, {refused} refused");
    router.abort();
}

async fn running_run(client: &Client, ns: &str, name: &str) {
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "metadata": {"name": name},
        "spec": {"instanceRef": "inst", "agentId": "primary", "sessionKey": "", "task": "t",
                 "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "k"}}});
    let api = Api::<AgentRun>::namespaced(client.clone(), ns);
    api.patch(name, &PatchParams::apply("test"), &Patch::Apply(&body)).await.unwrap();
    let status =
        json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "status": {"phase": "Running"}});
    api.patch_status(name, &PatchParams::apply("test"), &Patch::Apply(&status)).await.unwrap();
}

async fn result_of(client: &Client, ns: &str, name: &str) -> Option<String> {
    let run = Api::<AgentRun>::namespaced(client.clone(), ns).get(name).await.unwrap();
    run.status.and_then(|s| s.result)
}

/// A run's pod (its own NATS user and origin key, all it has) tries to finish another
/// tenant's run with its own text; only the victim's own completion counts.
#[tokio::test]
async fn a_run_cannot_finish_another_tenants_run() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns_a = plane.namespace(&client, "iso-run-a").await.unwrap().name().to_string();
    let ns_b = plane.namespace(&client, "iso-run-b").await.unwrap().name().to_string();
    running_run(&client, &ns_a, "attacker").await;
    running_run(&client, &ns_b, "victim").await;

    let (nats, issuer) = operator_mode().await;
    let verifier = Verifier::new(MASTER);
    let completions = tokio::spawn(sympozium_controller::agentrun::completion::run(
        std::sync::Arc::new(sympozium_controller::context::Context::with_defaults(client.clone(), None)),
        controller(&nats, &issuer, &verifier).await,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Each pod holds only its own run's NATS user (the attacker's, even when it claims the
    // victim's identity in its origin header).
    let as_run = |ns: &str, run: &str, key: Option<String>| {
        let (url, identity) = (nats.url(), origin::run_identity(ns, run));
        let user_ns =
            if run == "victim" && key.as_deref() == Some(&verifier.key_for(&identity)) { ns } else { &ns_a };
        let user_run = if user_ns == ns_a { "attacker" } else { run };
        let user = issuer.mint(&Identity::run(user_ns, user_run, Some("inst".into())), None).unwrap();
        async move {
            let options = BusOptions {
                user: Some(user),
                origin: key.map(|k| Origin::new(identity, k)),
                ..Default::default()
            };
            Bus::connect_with(&url, options).await.unwrap()
        }
    };
    let victim_meta = BTreeMap::from([
        ("agentRunID".to_string(), "victim".to_string()),
        ("namespace".to_string(), ns_b.clone()),
        ("instanceName".to_string(), "inst".to_string()),
    ]);
    let attacker_key = verifier.key_for(&origin::run_identity(&ns_a, "attacker"));
    let mut tried = 0;
    // 1. Signed as itself, naming the victim: acts on the attacker's own run only.
    let attacker = as_run(&ns_a, "attacker", Some(attacker_key.clone())).await;
    let forged = json!({"status": "success", "response": "forged by attacker (own identity)"});
    attacker.publish(topics::AGENT_RUN_COMPLETED, victim_meta.clone(), &forged).await.unwrap();
    tried += 1;
    // 2. Claiming the victim's identity with its own key.
    let claiming = as_run(&ns_b, "victim", Some(attacker_key)).await;
    let forged = json!({"status": "success", "response": "forged by attacker (claimed identity)"});
    claiming.publish(topics::AGENT_RUN_COMPLETED, victim_meta.clone(), &forged).await.unwrap();
    tried += 1;
    // 3. Unsigned.
    let bare = as_run(&ns_a, "attacker", None).await;
    let forged = json!({"status": "success", "response": "forged by attacker (unsigned)"});
    bare.publish(topics::AGENT_RUN_COMPLETED, victim_meta.clone(), &forged).await.unwrap();
    tried += 1;

    // The attacker's first message finished the attacker's own run: all three are decided.
    let mut own = None;
    for _ in 0..200 {
        own = result_of(&client, &ns_a, "attacker").await;
        if own.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(own.as_deref(), Some("forged by attacker (own identity)"), "pinned to the sender's own run");
    // The victim's own pod finishes it; the result is its own.
    let victim =
        as_run(&ns_b, "victim", Some(verifier.key_for(&origin::run_identity(&ns_b, "victim")))).await;
    victim
        .publish(
            topics::AGENT_RUN_COMPLETED,
            victim_meta,
            &json!({"status": "success", "response": "the real answer"}),
        )
        .await
        .unwrap();
    let mut result = None;
    for _ in 0..200 {
        result = result_of(&client, &ns_b, "victim").await;
        if result.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(result.as_deref(), Some("the real answer"), "no forged completion reached the victim");
    println!("run origin isolation: {tried} attacks tried, {tried} refused");
    completions.abort();
}
