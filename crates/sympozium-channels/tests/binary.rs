//! The `sympozium-channel` binary with exactly the environment the instance controller puts
//! on a channel Deployment (plus the channel Secret's keys, as `envFrom` would): it serves
//! its instance, reads its type from `CHANNEL_TYPE`, fails clearly without credentials, and
//! never logs a token. Also the Slack Events API mode over HTTP (signed requests only).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use common::{WAIT, next_matching, wait_health};
use serde_json::json;
use sympozium_api::SympoziumInstance;
use sympozium_bus::{Bus, topics};
use sympozium_channels::config::{ChannelType, Secret};
use sympozium_controller::instance::build::channel_deployment;
use sympozium_controller::settings::Settings;
use sympozium_testkit::fake_chat::{FakeSlack, FakeTelegram};
use sympozium_testkit::nats::NatsServer;

const TOKEN: &str = "4242:VERY-SECRET-TOKEN";

/// The channel container's environment as the kubelet would resolve it.
fn deployment_env(ns: &str, nats: &str, secret: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut inst: SympoziumInstance = serde_json::from_value(json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
        "metadata": {"name": "sre-watchdog", "namespace": ns, "uid": "u1"},
        "spec": {"agents": {"default": {"model": "m"}},
                 "channels": [{"type": "telegram", "configRef": {"secret": "tg"}}]}}))
    .unwrap();
    inst.metadata.namespace = Some(ns.into());
    let d = channel_deployment(&inst, &inst.spec.channels[0], None, &Settings::default());
    let c = &d.spec.unwrap().template.spec.unwrap().containers[0];
    let mut env = BTreeMap::new();
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => {
                let path = &from.field_ref.as_ref().unwrap().field_path;
                assert_eq!(path, "metadata.namespace", "only the namespace comes from the downward API");
                ns.to_string()
            }
            (None, None) => String::new(),
        };
        env.insert(e.name.clone(), value);
    }
    env.insert("EVENT_BUS_URL".into(), nats.into());
    for (k, v) in secret {
        env.insert((*k).into(), (*v).into());
    }
    env
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn the_binary_runs_on_the_deployment_environment_and_never_logs_tokens() {
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let mut inbound = bus.durable("bin-inbound", &topics::every(topics::CHANNEL_MESSAGE_RECEIVED));
    let fake = FakeTelegram::start(TOKEN).await.unwrap();
    let port = free_port();
    let env = deployment_env("ops", &nats.url(), &[("TELEGRAM_BOT_TOKEN", TOKEN)]);
    assert_eq!(env["CHANNEL_TYPE"], "telegram");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium-channel"))
        .env_clear()
        .envs(&env)
        .env("TELEGRAM_API_URL", fake.url())
        .env("TELEGRAM_POLL_TIMEOUT", "1")
        .env("HEALTH_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_health(addr, 200).await;

    fake.user_says(77, 5, "Bo", "is prod up?");
    let d = next_matching(&mut inbound, |v| v["text"] == "is prod up?").await;
    assert_eq!(d.envelope.meta("instanceName"), "sre-watchdog");
    assert_eq!(d.envelope.meta("namespace"), "ops");
    assert_eq!(d.envelope.meta("channel"), "telegram");
    assert_eq!(d.envelope.data["chatId"], "77");
    assert_eq!(d.envelope.data["senderId"], "5");
    assert_eq!(d.envelope.data["senderName"], "Bo");

    // A failing platform produces error logs — without the token (it is in Telegram's URLs).
    fake.set_down(true);
    wait_health(addr, 503).await;
    fake.set_down(false);
    wait_health(addr, 200).await;
    common::send(&bus, ChannelType::Telegram, "sre-watchdog", "ops", "77", "Yes.", None).await;
    fake.wait_sent(1, WAIT).await.unwrap();
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let logs = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(logs.contains("getUpdates failed"), "the outage was logged: {logs}");
    assert!(!logs.contains("VERY-SECRET"), "a token reached the logs");

    // Without its token the pod stops at once and says which variable is missing.
    let mut env = deployment_env("ops", &nats.url(), &[]);
    env.remove("CHANNEL_TYPE");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium-channel"))
        .env_clear()
        .envs(&env)
        .arg("telegram")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TELEGRAM_BOT_TOKEN is required"), "{err}");
}

#[tokio::test]
async fn slack_events_api_mode_accepts_only_signed_requests() {
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let mut inbound = bus.durable("events-inbound", &topics::every(topics::CHANNEL_MESSAGE_RECEIVED));
    let fake = FakeSlack::start("xoxb-e", "unused", "the-signing-secret").await.unwrap();
    let mut config = common::channel_config(ChannelType::Slack, "helper", "ops", &nats.url());
    config.slack_bot_token = Some(Secret::new("xoxb-e"));
    config.slack_signing_secret = Some(Secret::new("the-signing-secret"));
    config.slack_api_url = fake.url();
    let channel = sympozium_channels::start(config).await.unwrap();
    wait_health(channel.health_addr, 200).await;
    let url = format!("http://{}/slack/events", channel.webhook_addr.unwrap());

    // url_verification is answered with the challenge — only when signed.
    let body = json!({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification"})
    .to_string();
    let (ts, sig) = fake.sign(&body);
    let (status, answer) = fake.post_raw(&url, &body, &ts, &sig).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&answer).unwrap()["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    assert_eq!(fake.post_raw(&url, &body, &ts, "v0=deadbeef").await.0, 401, "wrong signature");
    let old = (ts.parse::<i64>().unwrap() - 600).to_string();
    assert_eq!(fake.post_raw(&url, &body, &old, &sig).await.0, 401, "replayed old request");

    // A signed message event reaches the bus, threaded under itself.
    let ts = fake.user_says_http(&url, "C9", "U9", "hello over HTTP", WAIT).await.unwrap();
    let d = next_matching(&mut inbound, |v| v["text"] == "hello over HTTP").await;
    assert_eq!(d.envelope.data["threadId"], ts.as_str());
    assert_eq!(d.envelope.meta("instanceName"), "helper");
    // The health endpoint is also on the events port.
    let events_health =
        reqwest::get(format!("http://{}/healthz", channel.webhook_addr.unwrap())).await.unwrap();
    assert_eq!(events_health.status(), 200);
    // Replies go out in the thread.
    common::send(&bus, ChannelType::Slack, "helper", "ops", "C9", "Hi!", Some(&ts)).await;
    let sent = fake.wait_sent(1, WAIT).await.unwrap();
    assert_eq!(sent[0].thread.as_deref(), Some(ts.as_str()));
    tokio::time::sleep(Duration::from_millis(200)).await;
}
