//! Channel health as a user sees it in the instance: with the instance controller and the
//! health consumer running on the test control plane, `status.channels` shows the channel
//! Connected (with `lastHealthCheck`), Disconnected with the reason while the platform is
//! down, and Connected again once it is back; `/healthz` follows the same connection. Telegram
//! in detail; Slack (Socket Mode), Discord (Gateway) and WhatsApp (Graph API) through the same
//! cycle.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{wait_health, world};
use kube::Api;
use sympozium_api::SympoziumInstance;
use sympozium_channels::config::{ChannelType, Secret};
use sympozium_controller::context::Context;
use sympozium_controller::instance;
use sympozium_controller::settings::Settings;
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::fake_chat::FakeTelegram;
use sympozium_testkit::wait_for;

fn channel_is(
    status: &'static str,
    message_has: &'static str,
) -> impl Fn(Option<&SympoziumInstance>) -> bool {
    move |inst| {
        inst.and_then(|i| i.status.as_ref())
            .and_then(|s| s.channels.iter().find(|c| c.type_ == "telegram"))
            .is_some_and(|c| {
                c.status == status
                    && c.last_health_check.is_some()
                    && c.message.as_deref().unwrap_or_default().contains(message_has)
            })
    }
}

#[tokio::test]
async fn instance_status_follows_the_platform_connection() {
    let w = world("chan-health", ChannelType::Telegram, "nobody").await;
    let settings = Settings { image_tag: "test".into(), ..Default::default() };
    let ctx =
        Arc::new(Context::new(w.client.clone(), settings, Metrics::default(), Some(w.ns.clone()), "test"));
    let controller = tokio::spawn(instance::run(ctx));
    let consumer = tokio::spawn(instance::health::run(
        Arc::new(Context::with_defaults(w.client.clone(), Some(w.ns.clone()))),
        w.bus.clone(),
    ));

    let fake = FakeTelegram::start("9:H").await.unwrap();
    let mut config = w.config(ChannelType::Telegram);
    config.telegram_bot_token = Some(Secret::new("9:H"));
    config.telegram_api_url = fake.url();
    let channel = sympozium_channels::start(config).await.unwrap();
    let api: Api<SympoziumInstance> = Api::namespaced(w.client.clone(), &w.ns);
    let wait = Duration::from_secs(45);

    wait_health(channel.health_addr, 200).await;
    let inst =
        wait_for(&api, &w.instance, "telegram Connected", wait, channel_is("Connected", "")).await.unwrap();
    let first_check = inst.status.unwrap().channels[0].last_health_check.clone().unwrap();

    fake.set_down(true);
    wait_health(channel.health_addr, 503).await;
    wait_for(&api, &w.instance, "telegram Disconnected", wait, channel_is("Disconnected", "502"))
        .await
        .unwrap();

    fake.set_down(false);
    wait_health(channel.health_addr, 200).await;
    let inst = wait_for(&api, &w.instance, "telegram Connected again", wait, channel_is("Connected", ""))
        .await
        .unwrap();
    let later = inst.status.unwrap().channels[0].last_health_check.clone().unwrap();
    assert!(later.0 > first_check.0, "lastHealthCheck moves with the reports");

    // The pod going away reports Disconnected on its way out.
    channel.shutdown().await;
    wait_for(
        &api,
        &w.instance,
        "telegram Disconnected on shutdown",
        wait,
        channel_is("Disconnected", "stopping"),
    )
    .await
    .unwrap();
    controller.abort();
    consumer.abort();
}

fn platform_is(channel: &'static str, status: &'static str) -> impl Fn(Option<&SympoziumInstance>) -> bool {
    move |inst| {
        inst.and_then(|i| i.status.as_ref())
            .and_then(|s| s.channels.iter().find(|c| c.type_ == channel))
            .is_some_and(|c| c.status == status && c.last_health_check.is_some())
    }
}

/// Connected → Disconnected while the platform is down → Connected, for one running channel.
async fn follows(
    w: &common::World,
    channel: &sympozium_channels::Running,
    kind: &'static str,
    down: impl Fn(bool),
) {
    let settings = Settings { image_tag: "test".into(), ..Default::default() };
    let ctx =
        Arc::new(Context::new(w.client.clone(), settings, Metrics::default(), Some(w.ns.clone()), "test"));
    let controller = tokio::spawn(instance::run(ctx));
    let consumer = tokio::spawn(instance::health::run(
        Arc::new(Context::with_defaults(w.client.clone(), Some(w.ns.clone()))),
        w.bus.clone(),
    ));
    let api: Api<SympoziumInstance> = Api::namespaced(w.client.clone(), &w.ns);
    let wait = Duration::from_secs(45);
    wait_health(channel.health_addr, 200).await;
    wait_for(&api, &w.instance, &format!("{kind} Connected"), wait, platform_is(kind, "Connected"))
        .await
        .unwrap();
    down(true);
    wait_health(channel.health_addr, 503).await;
    wait_for(&api, &w.instance, &format!("{kind} Disconnected"), wait, platform_is(kind, "Disconnected"))
        .await
        .unwrap();
    down(false);
    wait_health(channel.health_addr, 200).await;
    wait_for(&api, &w.instance, &format!("{kind} Connected again"), wait, platform_is(kind, "Connected"))
        .await
        .unwrap();
    controller.abort();
    consumer.abort();
}

#[tokio::test]
async fn slack_status_follows_its_socket_mode_connection() {
    let w = world("slack-health", ChannelType::Slack, "nobody").await;
    let fake = sympozium_testkit::fake_chat::FakeSlack::start("xoxb-h", "xapp-h", "signing").await.unwrap();
    let mut config = w.config(ChannelType::Slack);
    config.slack_bot_token = Some(Secret::new("xoxb-h"));
    config.slack_app_token = Some(Secret::new("xapp-h"));
    config.slack_api_url = fake.url();
    let channel = sympozium_channels::start(config).await.unwrap();
    follows(&w, &channel, "slack", |d| fake.set_down(d)).await;
    channel.shutdown().await;
}

#[tokio::test]
async fn discord_status_follows_its_gateway_connection() {
    let w = world("discord-health", ChannelType::Discord, "nobody").await;
    let fake =
        sympozium_testkit::fake_chat::FakeDiscord::start("dc-h", Duration::from_millis(500)).await.unwrap();
    let mut config = w.config(ChannelType::Discord);
    config.discord_bot_token = Some(Secret::new("dc-h"));
    config.discord_api_url = fake.url();
    let channel = sympozium_channels::start(config).await.unwrap();
    follows(&w, &channel, "discord", |d| fake.set_down(d)).await;
    channel.shutdown().await;
}

#[tokio::test]
async fn whatsapp_status_follows_the_graph_api() {
    let w = world("wa-health", ChannelType::Whatsapp, "nobody").await;
    let fake = sympozium_testkit::fake_chat::FakeWhatsApp::start("wa-h", "PN1", "app-secret").await.unwrap();
    let data = std::env::temp_dir().join(format!("sympozium-channel-wa-health-{}", std::process::id()));
    std::fs::create_dir_all(&data).unwrap();
    let mut config = w.config(ChannelType::Whatsapp);
    config.whatsapp_access_token = Some(Secret::new("wa-h"));
    config.whatsapp_phone_number_id = Some("PN1".into());
    config.whatsapp_verify_token = Some(Secret::new("verify-me"));
    config.whatsapp_app_secret = Some(Secret::new("app-secret"));
    config.whatsapp_api_url = fake.url();
    config.whatsapp_data_dir = data.clone();
    // The Graph API is polled; a short interval keeps the test short.
    config.health_interval = Duration::from_millis(300);
    let channel = sympozium_channels::start(config).await.unwrap();
    follows(&w, &channel, "whatsapp", |d| fake.set_down(d)).await;
    channel.shutdown().await;
    let _ = std::fs::remove_dir_all(data);
}
