//! Faults on the chat path that the other suites leave out, each counted: through the
//! controller's channel router, a real channel pod (Telegram, against its fake) and a real
//! nats-server,
//! * replies still streaming out while NATS crashes and comes back are each posted exactly
//!   once;
//! * a tool approval asked in the chat survives a NATS restart and a router restart while it
//!   waits: the user's "yes <code>" afterwards reaches the waiting runner exactly once, and
//!   the run then answers exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{WAIT, wait_health, world};
use kube::ResourceExt;
use serde_json::json;
use sympozium_bus::{Bus, topics};
use sympozium_channels::config::{ChannelType, Secret};
use sympozium_testkit::fake_chat::FakeTelegram;

/// Publishes until NATS acknowledges (the IPC bridge retries the same way while NATS is down).
async fn publish_until_acked(
    bus: &Bus,
    topic: &str,
    meta: BTreeMap<String, String>,
    data: serde_json::Value,
) {
    loop {
        if let Ok(Ok(())) =
            tokio::time::timeout(Duration::from_secs(3), bus.publish(topic, meta.clone(), &data)).await
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn count(fake: &FakeTelegram, text: &str) -> usize {
    fake.sent().iter().filter(|s| s.text == text).count()
}

#[tokio::test]
async fn replies_streaming_while_nats_restarts_are_each_posted_once() {
    let mut w = world("fault-stream", ChannelType::Telegram, "666").await;
    let fake = FakeTelegram::start("7:STREAM").await.unwrap();
    let mut config = w.config(ChannelType::Telegram);
    config.telegram_bot_token = Some(Secret::new("7:STREAM"));
    config.telegram_api_url = fake.url();
    let channel = sympozium_channels::start(config).await.unwrap();
    wait_health(channel.health_addr, 200).await;

    const N: usize = 20;
    for i in 0..N {
        fake.user_says(-500 - i as i64, 42, "Ann", &format!("question {i}"));
    }
    let mut runs = Vec::new();
    for i in 0..N {
        runs.push(w.run_for(&format!("question {i}")).await.name_any());
    }

    // The runs finish one after another; NATS crashes a third of the way through and is
    // down for two seconds while answers keep coming (their publishers retry).
    let streaming = {
        let bus = w.bus.clone();
        let instance = w.instance.clone();
        let ns = w.ns.clone();
        tokio::spawn(async move {
            for (i, run) in runs.into_iter().enumerate() {
                let meta = BTreeMap::from([
                    ("agentRunID".to_string(), run),
                    ("instanceName".to_string(), instance.clone()),
                    ("namespace".to_string(), ns.clone()),
                ]);
                let body = json!({"status": "success", "response": format!("answer {i}")});
                publish_until_acked(&bus, topics::AGENT_RUN_COMPLETED, meta, body).await;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };
    fake.wait_sent(N / 3, WAIT).await.unwrap();
    w.nats.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.nats.restart().await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), streaming).await.expect("every answer published").unwrap();

    fake.wait_sent(N, Duration::from_secs(60)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let sent = fake.sent();
    let per_answer: Vec<usize> = (0..N).map(|i| count(&fake, &format!("answer {i}"))).collect();
    assert_eq!(per_answer, vec![1; N], "every answer posted exactly once: {sent:?}");
    assert_eq!(sent.len(), N, "nothing else was posted");
    for i in 0..N {
        let s = sent.iter().find(|s| s.text == format!("answer {i}")).unwrap();
        assert_eq!(s.chat, (-500 - i as i64).to_string(), "answer {i} went to its own chat");
    }
    assert_eq!(w.runs().await.len(), N, "no run was made twice");
}

#[tokio::test]
async fn a_pending_approval_outlives_nats_and_router_restarts_and_is_answered_once() {
    let mut w = world("fault-approval", ChannelType::Telegram, "666").await;
    let fake = FakeTelegram::start("8:APPROVE").await.unwrap();
    let mut config = w.config(ChannelType::Telegram);
    config.telegram_bot_token = Some(Secret::new("8:APPROVE"));
    config.telegram_api_url = fake.url();
    let channel = sympozium_channels::start(config).await.unwrap();
    wait_health(channel.health_addr, 200).await;

    fake.user_says(-900, 42, "Ann", "clean up /tmp");
    let run = w.run_for("clean up /tmp").await.name_any();
    // The runner follows the answers before it asks (as the agent runner's approver does).
    let mut answers = w.bus.follow(&topics::approval_response(&w.ns, &run)).await.unwrap();
    let meta = BTreeMap::from([
        ("agentRunID".to_string(), run.clone()),
        ("instanceName".to_string(), w.instance.clone()),
    ]);
    let request = json!({"requestId": "req-fault-1", "agentRunId": run, "instanceName": w.instance,
        "namespace": w.ns, "tool": "execute_command", "arguments": {"command": "rm -rf /tmp/x"}});
    w.bus.publish(topics::TOOL_APPROVAL_REQUEST, meta.clone(), &request).await.unwrap();
    let asked = fake.wait_sent(1, WAIT).await.unwrap();
    let code = sympozium_controller::channelrouter::approval::code("req-fault-1");
    assert!(asked[0].text.contains(&format!("yes {code}")), "{}", asked[0].text);

    // While the approval waits: NATS crashes and the router (the controller) restarts.
    w.nats.kill();
    w.router.abort();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    w.nats.restart().await.unwrap();
    let bus = Bus::connect(&w.nats.url()).await.unwrap();
    w.router = tokio::spawn(sympozium_controller::channelrouter::run(
        std::sync::Arc::new(sympozium_controller::context::Context::with_defaults(
            w.client.clone(),
            Some(w.ns.clone()),
        )),
        bus,
    ));

    // The user answers in the chat afterwards: the runner gets exactly one verdict.
    fake.user_says(-900, 42, "Ann", &format!("yes {code}"));
    let verdict = tokio::time::timeout(WAIT, answers.recv()).await.expect("the verdict in time").unwrap();
    assert_eq!(
        (verdict.data["requestId"].as_str(), verdict.data["approved"].as_bool()),
        (Some("req-fault-1"), Some(true))
    );
    fake.wait_sent(2, WAIT).await.unwrap();
    assert_eq!(count(&fake, "Approved; the agent continues."), 1);

    // The run proceeds and finishes: one answer; no second verdict, no second run.
    let done = BTreeMap::from([
        ("agentRunID".to_string(), run.clone()),
        ("instanceName".to_string(), w.instance.clone()),
    ]);
    publish_until_acked(
        &w.bus,
        topics::AGENT_RUN_COMPLETED,
        done,
        json!({"status": "success", "response": "Cleaned up /tmp/x."}),
    )
    .await;
    fake.wait_sent(3, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(count(&fake, "Cleaned up /tmp/x."), 1);
    assert_eq!(fake.sent().len(), 3, "question, confirmation, answer — nothing twice");
    let again = tokio::time::timeout(Duration::from_millis(500), answers.recv()).await;
    assert!(again.is_err(), "a second verdict: {:?}", again.map(|e| e.map(|e| e.data)));
    assert_eq!(w.runs().await.len(), 1, "the answer started no run");
}
