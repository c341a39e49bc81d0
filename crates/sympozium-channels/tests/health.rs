//! Channel health as a user sees it in the instance: with the instance controller and the
//! health consumer running on the test control plane, `status.channels` shows the channel
//! Connected (with `lastHealthCheck`), Disconnected with the reason while the platform is
//! down, and Connected again once it is back; `/healthz` follows the same connection.

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
    let consumer = tokio::spawn(instance::health::run(w.client.clone(), w.bus.clone()));

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
