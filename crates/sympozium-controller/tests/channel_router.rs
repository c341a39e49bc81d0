//! The channel router on the test control plane with a real nats-server: chat message →
//! AgentRun with the spec's labels and annotations → exactly one reply, to that instance's
//! channel and thread; access control with its deny message; a failed run still answers;
//! a message seen twice makes one run; an ambiguous instance name makes none; a later
//! message in the same chat and thread carries the conversation so far; a tool approval is
//! asked and answered in the chat.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sympozium_api::AgentRun;
use sympozium_bus::{Bus, Delivery, topics};
use sympozium_controller::channelrouter;
use sympozium_controller::context::Context;
use sympozium_testkit::nats::NatsServer;
use sympozium_testkit::{TestPlane, wait_for};
use tokio::sync::mpsc::Receiver;

/// The subject a channel pod of the instance `meta` names publishes on (its own).
fn received(meta: &std::collections::BTreeMap<String, String>) -> String {
    let get = |k: &str| meta.get(k).map(String::as_str).filter(|v| !v.is_empty());
    sympozium_bus::topics::channel_received(
        get("namespace").unwrap_or("default"),
        get("instanceName").unwrap_or("none"),
    )
}

const WAIT: Duration = Duration::from_secs(20);

async fn instance(client: &Client, ns: &str, name: &str, access: Value) {
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
        "metadata": {"name": name},
        "spec": {"agents": {"default": {"model": "gpt-4.1"}},
                 "authRefs": [{"provider": "openai", "secret": "key"}],
                 "channels": [{"type": "slack", "configRef": {"secret": "slack"}, "accessControl": access},
                              {"type": "telegram", "configRef": {"secret": "tg"}}]}});
    Api::<sympozium_api::SympoziumInstance>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply("test"), &Patch::Apply(&body))
        .await
        .unwrap();
}

fn inbound(
    instance: &str,
    ns: Option<&str>,
    sender: &str,
    id: &str,
    text: &str,
) -> (BTreeMap<String, String>, Value) {
    let mut meta = BTreeMap::from([
        ("channel".to_string(), "slack".to_string()),
        ("instanceName".to_string(), instance.to_string()),
    ]);
    if let Some(ns) = ns {
        meta.insert("namespace".into(), ns.into());
    }
    let data = json!({"channel": "slack", "instanceName": instance, "senderId": sender, "senderName": "Ann",
        "chatId": "C1", "threadId": "1700.1", "text": text, "metadata": {"ts": id}});
    (meta, data)
}

async fn next(rx: &mut Receiver<Delivery>) -> Delivery {
    let d = tokio::time::timeout(WAIT, rx.recv()).await.expect("a reply in time").unwrap();
    d.ack().await;
    d
}

async fn quiet(rx: &mut Receiver<Delivery>) {
    if let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(1500), rx.recv()).await {
        panic!("unexpected message: {:?} {}", d.envelope.metadata, d.envelope.data);
    }
}

async fn runs_of(api: &Api<AgentRun>, instance: &str) -> Vec<AgentRun> {
    api.list(&ListParams::default().labels(&format!("sympozium.ai/instance={instance}"))).await.unwrap().items
}

async fn one_run(api: &Api<AgentRun>, instance: &str) -> AgentRun {
    let found = async {
        loop {
            let runs = runs_of(api, instance).await;
            if !runs.is_empty() {
                return runs;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let runs = tokio::time::timeout(WAIT, found).await.expect("a run for the message");
    assert_eq!(runs.len(), 1, "one run per message");
    runs.into_iter().next().unwrap()
}

#[tokio::test]
async fn chat_messages_become_runs_and_runs_answer_once_in_the_right_place() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "chan-router").await.unwrap().name().to_string();
    let other = plane.namespace(&client, "chan-router-b").await.unwrap().name().to_string();
    let alice = format!("alice-{ns}");
    instance(
        &client,
        &ns,
        &alice,
        json!({"deniedSenders": ["mallory"], "denyMessage": "You may not talk to me."}),
    )
    .await;
    // The same name in two namespaces: a message that does not say which is refused.
    let dup = format!("dup-{ns}");
    instance(&client, &ns, &dup, json!({})).await;
    instance(&client, &other, &dup, json!({})).await;

    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let mut out = bus.durable("test-outbound", &topics::every(topics::CHANNEL_MESSAGE_SEND));
    let mut approvals = bus.durable("test-approvals", &topics::every(topics::TOOL_APPROVAL_RESPONSE));
    let router =
        tokio::spawn(channelrouter::run(Arc::new(Context::with_defaults(client.clone(), None)), bus.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);

    // Inbound → one run, even when the channel pod delivers the message twice.
    let (meta, data) = inbound(&alice, Some(&ns), "U1", "1700.2", "how are the pods?");
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    bus.publish_traced(&received(&meta), meta.clone(), &data, Some(tp)).await.unwrap();
    bus.publish_traced(&received(&meta), meta, &data, Some(tp)).await.unwrap();
    let run = one_run(&runs, &alice).await;
    let name = run.name_any();
    assert!(name.starts_with(&format!("{alice}-ch-")), "{name}");
    assert_eq!(run.labels()["sympozium.ai/source"], "channel");
    assert_eq!(run.labels()["sympozium.ai/source-channel"], "slack");
    let a = run.annotations();
    assert_eq!(a["sympozium.ai/reply-channel"], "slack");
    assert_eq!(a["sympozium.ai/reply-chat-id"], "C1");
    assert_eq!(a["sympozium.ai/reply-thread-id"], "1700.1");
    assert_eq!(a["sympozium.ai/sender-id"], "U1");
    assert_eq!(a["sympozium.ai/sender-name"], "Ann");
    assert_eq!(a["otel.dev/traceparent"], tp);
    assert_eq!(run.spec.task, "how are the pods?");
    assert_eq!(run.spec.timeout.as_deref(), Some("10m"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(runs_of(&runs, &alice).await.len(), 1, "the second delivery made no second run");

    // Completion → exactly one reply for this instance, in the thread.
    let done = BTreeMap::from([
        ("agentRunID".to_string(), name.clone()),
        ("instanceName".to_string(), alice.clone()),
    ]);
    let result = json!({"status": "success", "response": "All 12 pods are healthy."});
    bus.publish(topics::AGENT_RUN_COMPLETED, done.clone(), &result).await.unwrap();
    let reply = next(&mut out).await;
    assert_eq!(reply.envelope.meta("instanceName"), alice);
    assert_eq!(reply.envelope.meta("channel"), "slack");
    assert_eq!(reply.envelope.meta("namespace"), ns);
    assert_eq!(reply.envelope.data["text"], "All 12 pods are healthy.");
    assert_eq!(reply.envelope.data["chatId"], "C1");
    assert_eq!(reply.envelope.data["threadId"], "1700.1");
    // The same completion again, and the run then reaching Succeeded: no second reply.
    bus.publish(topics::AGENT_RUN_COMPLETED, done, &result).await.unwrap();
    runs.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Succeeded", "result": "All 12 pods are healthy."}})),
    )
    .await
    .unwrap();
    quiet(&mut out).await;
    assert_eq!(runs.get(&name).await.unwrap().annotations()["sympozium.ai/reply-state"], "sent");

    // A run that fails without any result still answers, with a short error.
    let (meta, data) = inbound(&alice, Some(&ns), "U2", "1700.3", "deploy it");
    bus.publish(&received(&meta), meta, &data).await.unwrap();
    let failed = async {
        loop {
            if let Some(r) = runs_of(&runs, &alice).await.into_iter().find(|r| {
                r.annotations().get("sympozium.ai/message").map(String::as_str) == Some("deploy it")
            }) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let failed = tokio::time::timeout(WAIT, failed).await.expect("a run for the second message");
    // Same chat and thread: the conversation so far comes with the new message.
    assert_eq!(
        failed.spec.task,
        "## Conversation so far (earlier messages in this chat and your answers)\n\
         User: how are the pods?\nAssistant: All 12 pods are healthy.\n\n## New message\ndeploy it"
    );
    assert_eq!(failed.labels()["sympozium.ai/conversation"], run.labels()["sympozium.ai/conversation"]);
    let failed = failed.name_any();
    runs.patch_status(
        &failed,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Failed", "error": "agent container OOMKilled"}})),
    )
    .await
    .unwrap();
    let reply = next(&mut out).await;
    assert_eq!(reply.envelope.data["text"], "Error: agent container OOMKilled");
    assert_eq!(reply.envelope.meta("instanceName"), alice);
    assert_eq!(reply.envelope.data["threadId"], "1700.1");
    quiet(&mut out).await;

    // A denied sender gets the deny message and no run.
    // (Delivered twice by the channel pod: still one deny message.)
    let (meta, data) = inbound(&alice, Some(&ns), "mallory", "1700.4", "give me the secrets");
    bus.publish(&received(&meta), meta.clone(), &data).await.unwrap();
    bus.publish(&received(&meta), meta, &data).await.unwrap();
    let deny = next(&mut out).await;
    assert_eq!(deny.envelope.data["text"], "You may not talk to me.");
    assert_eq!(deny.envelope.data["chatId"], "C1");
    assert_eq!(deny.envelope.meta("instanceName"), alice);
    assert_eq!(runs_of(&runs, &alice).await.len(), 2, "no run for the denied sender");

    // A tool approval is asked in the chat; the sender's "yes <code>" answers the runner.
    let (meta, data) = inbound(&alice, Some(&ns), "U1", "1700.7", "clean up /tmp");
    bus.publish(&received(&meta), meta, &data).await.unwrap();
    let asking = async {
        loop {
            if let Some(r) = runs_of(&runs, &alice).await.into_iter().find(|r| {
                r.annotations().get("sympozium.ai/message").map(String::as_str) == Some("clean up /tmp")
            }) {
                return r.name_any();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let asking = tokio::time::timeout(WAIT, asking).await.expect("a run for the third message");
    let request = json!({"requestId": "req-1", "agentRunId": asking, "instanceName": alice, "namespace": ns,
        "tool": "execute_command", "arguments": {"command": "rm -rf /tmp/x"}});
    let meta = BTreeMap::from([
        ("agentRunID".to_string(), asking.clone()),
        ("instanceName".to_string(), alice.clone()),
    ]);
    bus.publish(topics::TOOL_APPROVAL_REQUEST, meta, &request).await.unwrap();
    let question = next(&mut out).await;
    let code = channelrouter::approval::code("req-1");
    let text = question.envelope.data["text"].as_str().unwrap().to_string();
    assert!(text.contains("execute_command") && text.contains(&format!("yes {code}")), "{text}");
    assert_eq!(question.envelope.data["threadId"], "1700.1");
    assert_eq!(question.envelope.meta("instanceName"), alice);
    let (meta, data) = inbound(&alice, Some(&ns), "U1", "1700.8", &format!("yes {code}"));
    bus.publish(&received(&meta), meta, &data).await.unwrap();
    let answer = next(&mut approvals).await;
    assert_eq!(
        (answer.envelope.data["requestId"].as_str(), answer.envelope.data["approved"].as_bool()),
        (Some("req-1"), Some(true))
    );
    assert_eq!(next(&mut out).await.envelope.data["text"], "Approved; the agent continues.");
    assert_eq!(runs_of(&runs, &alice).await.len(), 3, "the answer started no run");

    // Ambiguous instance name (no namespace given): nothing is created; with the namespace it works.
    let (meta, data) = inbound(&dup, None, "U1", "1700.5", "hello?");
    bus.publish(&received(&meta), meta, &data).await.unwrap();
    let (meta, data) = inbound(&dup, Some(&other), "U1", "1700.6", "hello!");
    bus.publish(&received(&meta), meta, &data).await.unwrap();
    let in_other: Api<AgentRun> = Api::namespaced(client.clone(), &other);
    let r = one_run(&in_other, &dup).await;
    assert_eq!(r.spec.task, "hello!");
    assert!(runs_of(&runs, &dup).await.is_empty());
    wait_for(&runs, &name, "reply recorded", WAIT, |r: Option<&AgentRun>| r.is_some()).await.unwrap();
    quiet(&mut out).await;
    router.abort();
}

/// The next outbound message for `instance`; others' are skipped (this router also watches
/// runs that other tests finish).
async fn next_of(rx: &mut Receiver<Delivery>, instance: &str) -> Delivery {
    loop {
        let d = next(rx).await;
        if d.envelope.meta("instanceName") == instance {
            return d;
        }
    }
}

#[tokio::test]
async fn every_access_rule_is_applied_by_the_running_router() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "chan-access").await.unwrap().name().to_string();
    let gate = format!("gate-{ns}");
    let access = json!({"allowedChats": ["C1"], "allowedSenders": ["ann", "mallory"],
        "deniedSenders": ["mallory"], "denyMessage": "Not you."});
    instance(&client, &ns, &gate, access).await;
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let mut out = bus.durable("access-outbound", &topics::every(topics::CHANNEL_MESSAGE_SEND));
    let router = tokio::spawn(channelrouter::run(
        Arc::new(Context::with_defaults(client.clone(), Some(ns.clone()))),
        bus.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let say = |sender: &str, chat: &str, id: &str| {
        let (meta, mut data) = inbound(&gate, Some(&ns), sender, id, "what changed today?");
        data["chatId"] = json!(chat);
        let bus = bus.clone();
        async move { bus.publish(&received(&meta), meta, &data).await.unwrap() }
    };

    // On the sender list, in an allowed chat: a run.
    say("ann", "C1", "1800.1").await;
    assert_eq!(one_run(&runs, &gate).await.annotations()["sympozium.ai/sender-id"], "ann");
    // Not on the sender list: the deny message, in that chat.
    say("bob", "C1", "1800.2").await;
    let deny = next(&mut out).await;
    assert_eq!(
        (deny.envelope.data["text"].as_str(), deny.envelope.data["chatId"].as_str()),
        (Some("Not you."), Some("C1"))
    );
    // An allowed sender in a chat that is not allowed: refused there.
    say("ann", "C9", "1800.3").await;
    let deny = next(&mut out).await;
    assert_eq!(
        (deny.envelope.data["text"].as_str(), deny.envelope.data["chatId"].as_str()),
        (Some("Not you."), Some("C9"))
    );
    // On the allow list and the deny list: deny wins.
    say("mallory", "C1", "1800.4").await;
    assert_eq!(next_of(&mut out, &gate).await.envelope.data["text"], "Not you.");
    let more = tokio::time::timeout(Duration::from_millis(1500), next_of(&mut out, &gate)).await;
    assert!(more.is_err(), "one deny message each, nothing else: {:?}", more.map(|d| d.envelope.data));
    assert_eq!(runs_of(&runs, &gate).await.len(), 1, "only ann in C1 made a run");
    // `kubectl describe` on the instance says who was kept out and why (repeats of the same
    // Event are counted into the first, as Kubernetes event series are).
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let refused: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("SenderRefused"))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(gate.as_str()))
        .filter_map(|e| e.note)
        .collect();
    assert!(
        refused.iter().any(|n| n.contains("sender bob refused: sender not in allowedSenders")),
        "{refused:?}"
    );
    router.abort();
}
