//! The whole way through, per platform, against the platform fakes, a real nats-server, the
//! controller's channel router and the test control plane: a user's message becomes an
//! AgentRun; the run's answer (published on the bus as its IPC bridge would) appears in the
//! same chat and thread through the platform API, exactly once; a refused sender gets the
//! deny message and no run; the bot's own (and other bots') messages start nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::{DENY, WAIT, World, wait_health, world};
use kube::ResourceExt;
use sympozium_channels::config::{ChannelType, Secret};
use sympozium_testkit::fake_chat::{FakeDiscord, FakeSlack, FakeTelegram, FakeWhatsApp};

/// Nothing more is posted and no further run appears for a while.
async fn settles(world: &World, posted: impl Fn() -> usize, expected_posts: usize, expected_runs: usize) {
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(posted(), expected_posts, "no extra message was posted");
    assert_eq!(world.runs().await.len(), expected_runs, "no extra run was created");
}

#[tokio::test]
async fn telegram_user_message_to_reply() {
    let w = world("tg-path", ChannelType::Telegram, "666").await;
    let fake = FakeTelegram::start("123:SECRET").await.unwrap();
    let mut config = w.config(ChannelType::Telegram);
    config.telegram_bot_token = Some(Secret::new("123:SECRET"));
    config.telegram_api_url = fake.url();
    let channel = sympozium_channels::start(config).await.unwrap();
    wait_health(channel.health_addr, 200).await;

    // A user asks in a group; the run carries chat, sender and message id.
    let asked = fake.user_says(-1001, 42, "Ann", "how are the pods?");
    let run = w.answer("how are the pods?", "All *12* pods are healthy.").await;
    let a = run.annotations();
    assert_eq!(a["sympozium.ai/reply-chat-id"], "-1001");
    assert_eq!(a["sympozium.ai/sender-id"], "42");
    assert_eq!(run.spec.task, "how are the pods?");
    let trace = a.get("otel.dev/traceparent").expect("the run continues the message's trace");
    assert!(sympozium_bus::trace::TraceParent::parse(trace).is_some(), "a W3C traceparent: {trace}");
    let sent = fake.wait_sent(1, WAIT).await.unwrap();
    assert_eq!(sent[0].chat, "-1001");
    assert_eq!(sent[0].text, "All *12* pods are healthy.");
    assert_eq!(sent[0].reply_to.as_deref(), Some(asked.to_string().as_str()), "answers the user's message");
    assert_eq!(sent[0].body["parse_mode"], "Markdown");

    // A long answer arrives whole, in parts within Telegram's limit; a 429 on the way is
    // waited out, not lost or doubled.
    fake.rate_limit_next(1, 1);
    fake.user_says(-1001, 42, "Ann", "show me the logs");
    let long = (0..700).map(|i| format!("line {i:04}")).collect::<Vec<_>>().join("\n");
    w.answer("show me the logs", &long).await;
    let sent = fake.wait_sent(3, WAIT).await.unwrap();
    assert!(sent[1..].iter().all(|s| s.text.chars().count() <= 4096));
    assert_eq!(format!("{}\n{}", sent[1].text, sent[2].text), long);
    assert!(sent[2].reply_to.is_none(), "only the first part replies to the question");

    // A refused sender gets the deny message in the same chat, and no run.
    fake.user_says(-1001, 666, "Mallory", "give me the secrets");
    let sent = fake.wait_sent(4, WAIT).await.unwrap();
    assert_eq!((sent[3].chat.as_str(), sent[3].text.as_str()), ("-1001", DENY));

    // In a forum topic, the answer goes to the same topic.
    fake.user_says_in_topic(-1002, 17, 42, "Ann", "which node is hot?");
    let run = w.answer("which node is hot?", "node-3, 91% CPU.").await;
    assert_eq!(run.annotations()["sympozium.ai/reply-thread-id"], "17");
    let sent = fake.wait_sent(5, WAIT).await.unwrap();
    assert_eq!((sent[4].chat.as_str(), sent[4].thread.as_deref()), ("-1002", Some("17")));

    // An answer Telegram's Markdown parser refuses (an unbalanced `_`) still arrives, as plain text.
    fake.user_says(-1001, 42, "Ann", "which exporter?");
    w.answer("which exporter?", "node_exporter on node-3").await;
    let sent = fake.wait_sent(6, WAIT).await.unwrap();
    assert_eq!(sent[5].text, "node_exporter on node-3");
    assert!(sent[5].body.get("parse_mode").is_none());

    // The bot's own message starts nothing.
    fake.bot_says(-1001, "All *12* pods are healthy.");
    settles(&w, || fake.sent().len(), 6, 4).await;
    assert_eq!(fake.unconfirmed(), 0, "every update was confirmed");
}

#[tokio::test]
async fn slack_user_message_to_threaded_reply() {
    let w = world("slack-path", ChannelType::Slack, "UMALLORY").await;
    let fake = FakeSlack::start("xoxb-bot", "xapp-app", "signing").await.unwrap();
    let mut config = w.config(ChannelType::Slack);
    config.slack_bot_token = Some(Secret::new("xoxb-bot"));
    config.slack_app_token = Some(Secret::new("xapp-app"));
    config.slack_api_url = fake.url();
    let channel = sympozium_channels::start(config).await.unwrap();
    wait_health(channel.health_addr, 200).await;

    // A top-level message is answered in a thread under it; a message inside a thread is
    // answered in that thread.
    let ts = fake.user_says("C1", "U1", "is the deploy done?", None);
    let run = w.answer("is the deploy done?", "Yes, rolled out at 10:02.").await;
    assert_eq!(run.annotations()["sympozium.ai/reply-thread-id"], ts);
    let sent = fake.wait_sent(1, WAIT).await.unwrap();
    assert_eq!((sent[0].chat.as_str(), sent[0].thread.as_deref()), ("C1", Some(ts.as_str())));
    assert_eq!(sent[0].text, "Yes, rolled out at 10:02.");
    fake.user_says("C1", "U1", "and the canary?", Some("1699999999.000100"));
    w.answer("and the canary?", "Canary is green.").await;
    let sent = fake.wait_sent(2, WAIT).await.unwrap();
    assert_eq!(sent[1].thread.as_deref(), Some("1699999999.000100"));

    // Rate limited once: still posted exactly once.
    fake.rate_limit_next(1, 1);
    fake.user_says("C2", "U2", "status?", None);
    w.answer("status?", "Green.").await;
    let sent = fake.wait_sent(3, WAIT).await.unwrap();
    assert_eq!((sent[2].chat.as_str(), sent[2].text.as_str()), ("C2", "Green."));

    // Refused sender: deny message in the thread of their message.
    let denied = fake.user_says("C1", "UMALLORY", "drop the database", None);
    let sent = fake.wait_sent(4, WAIT).await.unwrap();
    assert_eq!((sent[3].text.as_str(), sent[3].thread.as_deref()), (DENY, Some(denied.as_str())));

    // The bot's own posts come back as events (the fake echoes them like Slack does) and
    // another bot writes: neither starts a run.
    fake.other_bot_says("C1", "beep");
    settles(&w, || fake.sent().len(), 4, 3).await;
    assert_eq!(fake.wait_acked(WAIT).await.1, 0, "every envelope was acknowledged");
}

#[tokio::test]
async fn discord_user_message_to_reply() {
    let w = world("discord-path", ChannelType::Discord, "666").await;
    let fake = FakeDiscord::start("discord-token", Duration::from_millis(500)).await.unwrap();
    let mut config = w.config(ChannelType::Discord);
    config.discord_bot_token = Some(Secret::new("discord-token"));
    config.discord_api_url = fake.url();
    let channel = sympozium_channels::start(config).await.unwrap();
    wait_health(channel.health_addr, 200).await;

    let asked = fake.user_says("CH1", Some("G1"), "111", "what broke last night?");
    let run = w.answer("what broke last night?", "The ingress cert expired; renewed.").await;
    assert_eq!(run.annotations()["sympozium.ai/reply-chat-id"], "CH1");
    let sent = fake.wait_sent(1, WAIT).await.unwrap();
    assert_eq!((sent[0].chat.as_str(), sent[0].text.as_str()), ("CH1", "The ingress cert expired; renewed."));
    assert_eq!(sent[0].reply_to.as_deref(), Some(asked.as_str()));

    // 2000-character parts, in order, within the rate-limit bucket (12 parts > 5 per window).
    fake.user_says("CH1", Some("G1"), "111", "dump the config");
    let long: String =
        (0..12).map(|i| format!("{}\n\n", char::from(b'a' + i).to_string().repeat(1990))).collect();
    w.answer("dump the config", long.trim_end()).await;
    let sent = fake.wait_sent(13, WAIT).await.unwrap();
    assert!(sent[1..].iter().all(|s| s.text.chars().count() <= 2000));
    let parts: Vec<&str> = sent[1..].iter().map(|s| s.text.as_str()).collect();
    assert_eq!(parts.join("\n\n"), long.trim_end());
    assert_eq!(fake.bucket_violations(), 0, "the bucket headers were respected");

    // A DM from a refused sender: deny message, no run.
    fake.user_says("DM9", None, "666", "let me in");
    let sent = fake.wait_sent(14, WAIT).await.unwrap();
    assert_eq!((sent[13].chat.as_str(), sent[13].text.as_str()), ("DM9", DENY));

    // Every post above came back over the Gateway as the bot's own message: no runs from them.
    settles(&w, || fake.sent().len(), 14, 2).await;
}

#[tokio::test]
async fn whatsapp_user_message_to_reply() {
    let w = world("wa-path", ChannelType::Whatsapp, "4900000666").await;
    let fake = FakeWhatsApp::start("wa-token", "PN1", "app-secret").await.unwrap();
    let data = tempfile_dir("wa-path");
    let mut config = w.config(ChannelType::Whatsapp);
    config.whatsapp_access_token = Some(Secret::new("wa-token"));
    config.whatsapp_phone_number_id = Some("PN1".into());
    config.whatsapp_verify_token = Some(Secret::new("verify-me"));
    config.whatsapp_app_secret = Some(Secret::new("app-secret"));
    config.whatsapp_api_url = fake.url();
    config.whatsapp_data_dir = data.clone();
    let channel = sympozium_channels::start(config).await.unwrap();
    wait_health(channel.health_addr, 200).await;
    let hook = format!("http://{}/webhook", channel.webhook_addr.unwrap());

    // The subscription check: the right verify token gets the challenge back, a wrong one 403.
    assert_eq!(fake.verify_subscription(&hook, "verify-me", "1158201444").await, (200, "1158201444".into()));
    assert_eq!(fake.verify_subscription(&hook, "guess", "1").await.0, 403);
    // Unsigned or wrongly signed notifications are refused.
    assert_eq!(fake.post_raw(&hook, "{}", "sha256=00").await, 401);

    let asked = fake.user_says(&hook, "4915550001", "Ann", "any alerts?", WAIT).await.unwrap();
    let run = w.answer("any alerts?", "None in the last 24 hours.").await;
    assert_eq!(run.annotations()["sympozium.ai/reply-chat-id"], "4915550001");
    let sent = fake.wait_sent(1, WAIT).await.unwrap();
    assert_eq!((sent[0].chat.as_str(), sent[0].text.as_str()), ("4915550001", "None in the last 24 hours."));
    assert_eq!(sent[0].reply_to.as_deref(), Some(asked.as_str()));

    // Refused sender: deny message to them, no run.
    fake.user_says(&hook, "4900000666", "Mallory", "hi", WAIT).await.unwrap();
    let sent = fake.wait_sent(2, WAIT).await.unwrap();
    assert_eq!((sent[1].chat.as_str(), sent[1].text.as_str()), ("4900000666", DENY));

    // Status notifications for the bot's own messages start nothing; a message for a chat
    // that never wrote to this number is not sent.
    fake.status_update(&hook, "wamid.OUT1", "4915550001", "delivered").await.unwrap();
    common::send(&w.bus, ChannelType::Whatsapp, &w.instance, &w.ns, "4917000000", "unsolicited", None).await;
    settles(&w, || fake.sent().len(), 2, 1).await;
    drop(channel);
    let _ = std::fs::remove_dir_all(data);
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sympozium-channel-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
