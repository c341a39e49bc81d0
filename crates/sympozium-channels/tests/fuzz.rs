//! Fuzz targets for what chat platforms send a channel pod: Telegram updates, Discord
//! `MESSAGE_CREATE` payloads, Slack events and WhatsApp webhooks through their parsers,
//! the Slack and WhatsApp request signatures, and the splitting of long answers.
//!
//! Under `cargo test` each target runs for about a second on random input plus its
//! committed corpus (`tests/__fuzz__/<test name>/corpus`, real payloads); `make fuzz` runs
//! them under libFuzzer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use sympozium_bus::payloads::InboundMessage;
use sympozium_channels::config::Secret;
use sympozium_channels::slack::Me;
use sympozium_channels::{discord, slack, split, telegram, whatsapp};
use sympozium_testkit::fuzz::{self, Choices};

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/__fuzz__").join(target).join("corpus")
}

/// What every parser promises of a message it accepts: something to answer, from someone,
/// in a chat, and a bus payload that reads back as itself.
fn check(msg: &InboundMessage) {
    assert!(!msg.text.trim().is_empty(), "no message without text: {msg:?}");
    assert!(!msg.sender_id.is_empty() && !msg.chat_id.is_empty(), "sender and chat: {msg:?}");
    let back: InboundMessage = serde_json::from_value(serde_json::to_value(msg).unwrap()).unwrap();
    assert_eq!(&back, msg, "bus payload round trip");
}

fn parse_all(payload: &Value) {
    if let Some(m) = telegram::inbound_message(payload, 1) {
        check(&m);
    }
    if let Some(m) = discord::inbound_message(payload, "BOT") {
        check(&m);
    }
    let me = Me { user_id: "UBOT".into(), bot_id: "BBOT".into() };
    // Slack delivers the event inside an envelope (Events API and Socket Mode alike).
    for event in [payload, &payload["event"], &payload["payload"]["event"]] {
        if let Some(m) = slack::inbound_message(event, &me) {
            check(&m);
            assert_ne!(m.sender_id, me.user_id, "its own messages are not answered");
        }
    }
    for m in whatsapp::inbound_messages(payload, "1000001") {
        check(&m);
    }
}

#[test]
fn platform_payloads() {
    let seeds = fuzz::seeds(&corpus("platform_payloads"));
    assert!(seeds.len() >= 4, "the committed seed payloads are there");
    bolero::check!().for_each(|bytes: &[u8]| {
        if let Ok(raw) = serde_json::from_slice::<Value>(bytes) {
            parse_all(&raw);
        }
        parse_all(&fuzz::document(&seeds, bytes));
    });
}

fn slack_signature(secret: &str, ts: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn request_signatures() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let mut c = Choices::new(bytes);
        let secret = Secret::new(c.string());
        let ts = c.string();
        let header = c.string();
        let now = 1_700_000_000i64;
        let body = c.text(256);
        // Whatever an attacker puts in the headers: an answer, never a panic, and never
        // "valid" for a signature the secret did not make.
        let forged = slack::events::verify(&secret, &ts, body.as_bytes(), &header, now);
        if forged {
            assert_eq!(header, slack_signature(secret.expose(), &ts, body.as_bytes()));
        }
        let _ = whatsapp::verify(&secret, body.as_bytes(), &header);
        // A genuine signature passes exactly while the timestamp is within five minutes.
        let skew = i64::from(c.byte() as i8) * 10;
        let ts = (now + skew).to_string();
        let good = slack_signature(secret.expose(), &ts, body.as_bytes());
        assert_eq!(slack::events::verify(&secret, &ts, body.as_bytes(), &good, now), skew.abs() <= 300);
    });
}

#[test]
fn answer_splitting() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let mut c = Choices::new(bytes);
        let limit = c.below(50);
        let text = c.text(4096);
        let parts = split::split(&text, limit);
        for p in &parts {
            assert!(!p.is_empty(), "no empty part");
            assert!(p.chars().count() <= limit.max(1), "{p:?} longer than {limit}");
        }
        // Only the blanks at a cut may go; every other character arrives, in order.
        let visible = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        assert_eq!(visible(&parts.concat()), visible(&text));
    });
}
