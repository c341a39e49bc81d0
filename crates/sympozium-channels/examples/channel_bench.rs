//! Channel pod throughput and latency against the fake Telegram Bot API and a real
//! nats-server (`make bench-channels`): outbound (bus → `sendMessage`) and inbound
//! (`getUpdates` → bus) bursts, and the latency of one reply from the bus to the platform.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark program

use std::time::{Duration, Instant};

use sympozium_bus::{Bus, topics};
use sympozium_channels::config::{ChannelType, Config, Secret};
use sympozium_testkit::fake_chat::FakeTelegram;
use sympozium_testkit::nats::NatsServer;

const BURST: usize = 300;
const ROUND_TRIPS: usize = 50;

async fn publish_reply(bus: &Bus, text: &str) {
    let meta = [("instanceName", "bench"), ("channel", "telegram"), ("namespace", "ns")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let data = serde_json::json!({"channel": "telegram", "chatId": "1", "text": text, "format": "plain"});
    bus.publish(&topics::channel_send("ns", "bench"), meta, &data).await.unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let fake = FakeTelegram::start("1:B").await.unwrap();
    let mut config = Config::new(ChannelType::Telegram, "bench", "ns", &nats.url());
    config.health_addr = "127.0.0.1:0".parse().unwrap();
    config.telegram_bot_token = Some(Secret::new("1:B"));
    config.telegram_api_url = fake.url();
    config.telegram_poll_timeout = 1;
    let _channel = sympozium_channels::start(config).await.unwrap();
    let mut inbound = bus.durable("bench-inbound", &topics::every(topics::CHANNEL_MESSAGE_RECEIVED));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Latency of one reply: published on the bus → posted through the platform API.
    let mut latencies = Vec::new();
    for i in 0..ROUND_TRIPS {
        let start = Instant::now();
        publish_reply(&bus, &format!("ping {i}")).await;
        fake.wait_sent(i + 1, Duration::from_secs(30)).await.unwrap();
        latencies.push(start.elapsed());
    }
    latencies.sort();

    // Outbound burst.
    let start = Instant::now();
    for i in 0..BURST {
        publish_reply(&bus, &format!("burst {i}")).await;
    }
    fake.wait_sent(ROUND_TRIPS + BURST, Duration::from_secs(120)).await.unwrap();
    let outbound = start.elapsed();

    // Inbound burst.
    let start = Instant::now();
    for i in 0..BURST {
        fake.user_says(2, 3, "Bench", &format!("question {i}"));
    }
    let mut seen = 0;
    while seen < BURST {
        let d = tokio::time::timeout(Duration::from_secs(60), inbound.recv()).await.unwrap().unwrap();
        d.ack().await;
        seen += 1;
    }
    let inbound_time = start.elapsed();

    println!("channel bench (Telegram fake, nats-server, release build)");
    println!(
        "reply latency bus → sendMessage over {ROUND_TRIPS}: p50 {:.1} ms, p95 {:.1} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.95).as_secs_f64() * 1e3
    );
    println!(
        "outbound burst: {BURST} replies in {:.2} s = {:.0} messages/s",
        outbound.as_secs_f64(),
        BURST as f64 / outbound.as_secs_f64()
    );
    println!(
        "inbound burst: {BURST} user messages in {:.2} s = {:.0} messages/s",
        inbound_time.as_secs_f64(),
        BURST as f64 / inbound_time.as_secs_f64()
    );
}
