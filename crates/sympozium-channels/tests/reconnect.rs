//! Recovery without loss or duplicates, per platform, against the fakes and a real
//! nats-server: the platform drops the connection or answers 5xx, or NATS restarts, while a
//! user writes and a reply is due. Afterwards every user message is on the bus exactly once
//! and every reply was posted exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::{WAIT, channel_config, drain, next_matching, send, wait_health};
use sympozium_bus::{Bus, Delivery, topics};
use sympozium_channels::config::{ChannelType, Config, Secret};
use sympozium_testkit::fake_chat::{FakeDiscord, FakeSlack, FakeTelegram, FakeWhatsApp};
use sympozium_testkit::nats::NatsServer;
use tokio::sync::mpsc::Receiver;

const NS: &str = "team-a";
const INSTANCE: &str = "watchdog";

struct Bench {
    nats: NatsServer,
    bus: Bus,
    inbound: Receiver<Delivery>,
}

async fn bench() -> Bench {
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let inbound = bus.durable("test-inbound", &topics::every(topics::CHANNEL_MESSAGE_RECEIVED));
    Bench { nats, bus, inbound }
}

impl Bench {
    fn config(&self, channel: ChannelType) -> Config {
        channel_config(channel, INSTANCE, NS, &self.nats.url())
    }

    /// The user message `text` arrives on the bus, with this instance's identity, and no
    /// second copy follows.
    async fn arrives_once(&mut self, text: &str) {
        let d = next_matching(&mut self.inbound, |v| v["text"] == text).await;
        assert_eq!(d.envelope.meta("instanceName"), INSTANCE);
        assert_eq!(d.envelope.data["namespace"], NS);
        let again = drain(&mut self.inbound, Duration::from_millis(1500)).await;
        assert!(again.iter().all(|v| v["text"] != text), "{text:?} was published twice: {again:?}");
    }

    async fn reply(&self, channel: ChannelType, chat: &str, text: &str) {
        send(&self.bus, channel, INSTANCE, NS, chat, text, None).await;
    }
}

fn count(sent: &[sympozium_testkit::fake_chat::Sent], text: &str) -> usize {
    sent.iter().filter(|s| s.text == text).count()
}

#[tokio::test]
async fn telegram_survives_platform_outage_and_nats_restart() {
    let mut b = bench().await;
    let fake = FakeTelegram::start("1:T").await.unwrap();
    let mut config = b.config(ChannelType::Telegram);
    config.telegram_bot_token = Some(Secret::new("1:T"));
    config.telegram_api_url = fake.url();
    let channel = sympozium_channels::start(config).await.unwrap();
    wait_health(channel.health_addr, 200).await;

    // Platform returns 502: health drops, a reply waits, a message written meanwhile is
    // fetched once it is back.
    fake.set_down(true);
    wait_health(channel.health_addr, 503).await;
    fake.user_says(5, 42, "Ann", "written during the outage");
    b.reply(ChannelType::Telegram, "5", "reply during the outage").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(fake.sent().is_empty());
    fake.set_down(false);
    wait_health(channel.health_addr, 200).await;
    b.arrives_once("written during the outage").await;
    fake.wait_sent(1, WAIT).await.unwrap();

    // NATS restarts: a message read while the bus is down is published once it is back
    // (the update is confirmed to Telegram only after that); replies flow again after.
    b.nats.kill();
    let during = fake.user_says(5, 42, "Ann", "written while NATS is down");
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.nats.restart().await.unwrap();
    b.arrives_once("written while NATS is down").await;
    assert_eq!(fake.times_handed_out(during), 1, "fetched once, confirmed after publishing");
    b.reply(ChannelType::Telegram, "5", "reply after the restart").await;
    fake.wait_sent(2, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = fake.sent();
    assert_eq!((count(&sent, "reply during the outage"), count(&sent, "reply after the restart")), (1, 1));
    assert_eq!(sent.len(), 2);
}

#[tokio::test]
async fn slack_reconnects_after_drops_and_disconnect_requests() {
    let mut b = bench().await;
    let fake = FakeSlack::start("xoxb-1", "xapp-1", "sig").await.unwrap();
    let mut config = b.config(ChannelType::Slack);
    config.slack_bot_token = Some(Secret::new("xoxb-1"));
    config.slack_app_token = Some(Secret::new("xapp-1"));
    config.slack_api_url = fake.url();
    let channel = sympozium_channels::start(config).await.unwrap();
    wait_health(channel.health_addr, 200).await;

    // The socket dies; an event sent meanwhile is redelivered on the new connection.
    fake.drop_socket();
    fake.user_says("C1", "U1", "sent while the socket was gone", None);
    b.arrives_once("sent while the socket was gone").await;
    assert!(fake.connections() >= 2);

    // Slack asks for a reconnect: the next message still arrives.
    let before = fake.connections();
    fake.disconnect("refresh_requested");
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.user_says("C1", "U1", "after the refresh", None);
    b.arrives_once("after the refresh").await;
    assert!(fake.connections() > before);

    // Slack down (503): health shows it, the reply waits and is posted once.
    fake.set_down(true);
    wait_health(channel.health_addr, 503).await;
    b.reply(ChannelType::Slack, "C1", "posted after the outage").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(fake.sent().is_empty());
    fake.set_down(false);
    wait_health(channel.health_addr, 200).await;
    fake.wait_sent(1, WAIT).await.unwrap();

    // NATS restart with an event in flight.
    b.nats.kill();
    fake.user_says("C1", "U1", "sent while NATS is down", None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.nats.restart().await.unwrap();
    b.arrives_once("sent while NATS is down").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.wait_acked(WAIT).await.1, 0, "every envelope acknowledged once on the bus");
    assert_eq!(count(&fake.sent(), "posted after the outage"), 1);
}

#[tokio::test]
async fn discord_resumes_and_replays_what_it_missed() {
    let mut b = bench().await;
    let fake = FakeDiscord::start("dtok", Duration::from_millis(400)).await.unwrap();
    let mut config = b.config(ChannelType::Discord);
    config.discord_bot_token = Some(Secret::new("dtok"));
    config.discord_api_url = fake.url();
    let channel = sympozium_channels::start(config).await.unwrap();
    wait_health(channel.health_addr, 200).await;

    // The connection drops; a message written meanwhile is replayed on Resume.
    fake.drop_socket();
    fake.user_says("CH1", Some("G1"), "111", "written while dropped");
    b.arrives_once("written while dropped").await;
    let (identifies, resumes) = fake.sessions();
    assert_eq!(identifies, 1, "the session was resumed, not started over");
    assert!(resumes >= 1);

    // Discord down: health shows it; messages of the session come after the resume.
    fake.set_down(true);
    wait_health(channel.health_addr, 503).await;
    fake.user_says("CH1", Some("G1"), "111", "written during the outage");
    b.reply(ChannelType::Discord, "CH1", "reply during the outage").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(fake.sent().is_empty());
    fake.set_down(false);
    wait_health(channel.health_addr, 200).await;
    b.arrives_once("written during the outage").await;
    fake.wait_sent(1, WAIT).await.unwrap();

    // Rate limited twice: posted once, after waiting.
    fake.rate_limit_next(2, 1);
    b.reply(ChannelType::Discord, "CH1", "reply after 429s").await;
    fake.wait_sent(2, WAIT).await.unwrap();

    // NATS restart.
    b.nats.kill();
    fake.user_says("CH1", Some("G1"), "111", "written while NATS is down");
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.nats.restart().await.unwrap();
    b.arrives_once("written while NATS is down").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let sent = fake.sent();
    assert_eq!((count(&sent, "reply during the outage"), count(&sent, "reply after 429s")), (1, 1));
}

#[tokio::test]
async fn whatsapp_survives_graph_outage_and_nats_restart() {
    let mut b = bench().await;
    let fake = FakeWhatsApp::start("watok", "PN9", "appsec").await.unwrap();
    let dir = std::env::temp_dir().join(format!("sympozium-wa-reconnect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = b.config(ChannelType::Whatsapp);
    config.whatsapp_access_token = Some(Secret::new("watok"));
    config.whatsapp_phone_number_id = Some("PN9".into());
    config.whatsapp_verify_token = Some(Secret::new("v"));
    config.whatsapp_app_secret = Some(Secret::new("appsec"));
    config.whatsapp_api_url = fake.url();
    config.whatsapp_data_dir = dir.clone();
    let channel = sympozium_channels::start(config).await.unwrap();
    wait_health(channel.health_addr, 200).await;
    let hook = format!("http://{}/webhook", channel.webhook_addr.unwrap());
    fake.user_says(&hook, "4911", "Ann", "first", WAIT).await.unwrap();
    b.arrives_once("first").await;

    // Graph API down: health shows it; the reply is posted once it is back.
    fake.set_down(true);
    wait_health(channel.health_addr, 503).await;
    b.reply(ChannelType::Whatsapp, "4911", "reply during the outage").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(fake.sent().is_empty());
    fake.set_down(false);
    wait_health(channel.health_addr, 200).await;
    fake.wait_sent(1, WAIT).await.unwrap();

    // NATS down: the webhook is answered only once the message is on the bus, so Meta's
    // delivery waits (or retries) and nothing is lost.
    b.nats.kill();
    let delivering = {
        let hook = hook.clone();
        async move { fake.user_says(&hook, "4911", "Ann", "while NATS is down", WAIT).await.map(|_| fake) }
    };
    let delivering = tokio::spawn(delivering);
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.nats.restart().await.unwrap();
    let fake = delivering.await.unwrap().unwrap();
    b.arrives_once("while NATS is down").await;

    // Rate limited (pair rate limit) once: posted once.
    fake.rate_limit_next(1);
    b.reply(ChannelType::Whatsapp, "4911", "after the restart").await;
    fake.wait_sent(2, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let sent = fake.sent();
    assert_eq!((count(&sent, "reply during the outage"), count(&sent, "after the restart")), (1, 1));
    drop(channel);
    let _ = std::fs::remove_dir_all(dir);
}
