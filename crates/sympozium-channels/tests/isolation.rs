//! Each pod answers for its own instance only: two Telegram instances on one bus (the
//! original let every Telegram pod post every reply), the same instance name in two
//! namespaces, and a WhatsApp pod that restarts still answers the chats that wrote to it
//! (kept on its volume) and no others.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::{WAIT, channel_config, send, wait_health};
use sympozium_bus::Bus;
use sympozium_channels::config::{ChannelType, Secret};
use sympozium_testkit::fake_chat::{FakeTelegram, FakeWhatsApp};
use sympozium_testkit::nats::NatsServer;

#[tokio::test]
async fn replies_go_out_through_their_own_instance_only() {
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let mut pods = Vec::new();
    let mut fakes = Vec::new();
    // alice in team-a, bob in team-a, alice in team-b: three bots, three tokens.
    for (i, (instance, ns)) in
        [("alice", "team-a"), ("bob", "team-a"), ("alice", "team-b")].into_iter().enumerate()
    {
        let token = format!("{i}:TOKEN");
        let fake = FakeTelegram::start(&token).await.unwrap();
        let mut config = channel_config(ChannelType::Telegram, instance, ns, &nats.url());
        config.telegram_bot_token = Some(Secret::new(token));
        config.telegram_api_url = fake.url();
        let pod = sympozium_channels::start(config).await.unwrap();
        wait_health(pod.health_addr, 200).await;
        pods.push(pod);
        fakes.push(fake);
    }

    send(&bus, ChannelType::Telegram, "alice", "team-a", "10", "for alice in team-a", None).await;
    send(&bus, ChannelType::Telegram, "bob", "team-a", "20", "for bob", None).await;
    send(&bus, ChannelType::Telegram, "alice", "team-b", "30", "for alice in team-b", None).await;
    // Same instance, other channel type: no Telegram pod posts it.
    send(&bus, ChannelType::Slack, "alice", "team-a", "C1", "for alice's slack", None).await;
    for fake in &fakes {
        fake.wait_sent(1, WAIT).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let texts: Vec<Vec<String>> =
        fakes.iter().map(|f| f.sent().into_iter().map(|s| s.text).collect()).collect();
    assert_eq!(
        texts,
        [
            vec!["for alice in team-a".to_string()],
            vec!["for bob".to_string()],
            vec!["for alice in team-b".to_string()]
        ]
    );
}

#[tokio::test]
async fn whatsapp_remembers_who_may_be_answered_across_restarts() {
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let fake = FakeWhatsApp::start("tok", "PN2", "sec").await.unwrap();
    let dir = std::env::temp_dir().join(format!("sympozium-wa-isolation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let start = || {
        let mut config = channel_config(ChannelType::Whatsapp, "helper", "ops", &nats.url());
        config.whatsapp_access_token = Some(Secret::new("tok"));
        config.whatsapp_phone_number_id = Some("PN2".into());
        config.whatsapp_verify_token = Some(Secret::new("v"));
        config.whatsapp_app_secret = Some(Secret::new("sec"));
        config.whatsapp_api_url = fake.url();
        config.whatsapp_data_dir = dir.clone();
        sympozium_channels::start(config)
    };
    let pod = start().await.unwrap();
    wait_health(pod.health_addr, 200).await;
    let hook = format!("http://{}/webhook", pod.webhook_addr.unwrap());
    fake.user_says(&hook, "4930", "Ann", "remember me", WAIT).await.unwrap();
    drop(pod);

    // A new pod (same volume): the chat that wrote is answered, a stranger is not.
    let pod = start().await.unwrap();
    wait_health(pod.health_addr, 200).await;
    send(&bus, ChannelType::Whatsapp, "helper", "ops", "4999", "to a stranger", None).await;
    send(&bus, ChannelType::Whatsapp, "helper", "ops", "4930", "welcome back", None).await;
    let sent = fake.wait_sent(1, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sent[0].chat, "4930");
    assert_eq!(fake.sent().len(), 1, "nothing went to the chat that never wrote");
    drop(pod);
    let _ = std::fs::remove_dir_all(dir);
}
