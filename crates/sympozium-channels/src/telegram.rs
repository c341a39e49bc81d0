//! Telegram through the Bot API: long polling `getUpdates` (the offset moves past an update
//! only once its message is on the bus, so nothing is lost across restarts or outages) and
//! `sendMessage` with parse mode, reply-to and forum topics, split at 4096 characters, with
//! `retry_after` honoured on 429.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sympozium_bus::payloads::{Attachment, InboundMessage};

use crate::bridge::Inbound;
use crate::config::Secret;
use crate::health::HealthReporter;
use crate::platform::{self, Part, Platform, SendError};

/// Telegram's message length limit.
pub const LIMIT: usize = 4096;

/// A Telegram Bot API client.
pub struct Telegram {
    http: reqwest::Client,
    api: String,
    token: Secret,
    poll_timeout: u64,
}

impl Telegram {
    /// A client of the Bot API at `api` (e.g. `https://api.telegram.org`).
    pub fn new(api: &str, token: Secret, poll_timeout: u64) -> Self {
        Self {
            http: platform::http_client(Duration::from_secs(30)),
            api: api.trim_end_matches('/').to_string(),
            token,
            poll_timeout,
        }
    }

    async fn call(&self, method: &str, body: &Value, timeout: Duration) -> Result<Value, SendError> {
        // The token is part of the path: errors are described without the URL.
        let url = format!("{}/bot{}/{method}", self.api, self.token.expose());
        let resp = self
            .http
            .post(url)
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| platform::network(&e))?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() && v["ok"].as_bool() == Some(true) {
            return Ok(v["result"].clone());
        }
        let detail = v["description"].as_str().unwrap_or("no description").to_string();
        Err(platform::classify(
            status,
            &headers,
            v["parameters"]["retry_after"].as_f64(),
            format!("{method}: {detail}"),
        ))
    }

    /// Polls for updates forever, publishing each user message before confirming it.
    pub async fn run_inbound(self: Arc<Self>, inbound: Inbound, health: HealthReporter) {
        let mut attempt = 0u32;
        let me = loop {
            match self.call("getMe", &json!({}), Duration::from_secs(30)).await {
                Ok(user) => break user["id"].as_i64().unwrap_or_default(),
                Err(e) => {
                    health.disconnected(format!("Telegram getMe failed: {e}"));
                    tokio::time::sleep(delay(&e, &mut attempt)).await;
                }
            }
        };
        health.connected();
        let mut offset = 0i64;
        let timeout = Duration::from_secs(self.poll_timeout + 15);
        loop {
            let body =
                json!({"offset": offset, "timeout": self.poll_timeout, "allowed_updates": ["message"]});
            match self.call("getUpdates", &body, timeout).await {
                Ok(updates) => {
                    health.connected();
                    attempt = 0;
                    for update in updates.as_array().into_iter().flatten() {
                        if let Some(msg) = inbound_message(update, me) {
                            inbound.publish(msg).await;
                        }
                        if let Some(id) = update["update_id"].as_i64() {
                            offset = offset.max(id + 1);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Telegram getUpdates failed");
                    health.disconnected(format!("Telegram getUpdates failed: {e}"));
                    tokio::time::sleep(delay(&e, &mut attempt)).await;
                }
            }
        }
    }
}

fn delay(e: &SendError, attempt: &mut u32) -> Duration {
    *attempt = attempt.saturating_add(1);
    match e {
        SendError::RetryAfter(d, _) => *d,
        _ => {
            Duration::from_millis(500u64.saturating_mul(1 << (*attempt).min(5))).min(Duration::from_secs(15))
        }
    }
}

fn attachment(kind: &str, v: &Value, default_mime: Option<&str>) -> Attachment {
    Attachment {
        type_: kind.into(),
        url: None,
        filename: v["file_name"].as_str().map(str::to_string),
        mime_type: v["mime_type"].as_str().or(default_mime).map(str::to_string),
    }
}

/// The bus message of one update, or `None` for what the bot must not answer (bots,
/// itself, updates without text).
pub fn inbound_message(update: &Value, me: i64) -> Option<InboundMessage> {
    let m = update.get("message")?;
    let from = m.get("from")?;
    if from["is_bot"].as_bool() == Some(true) || from["id"].as_i64() == Some(me) {
        return None;
    }
    let text = m["text"].as_str().or(m["caption"].as_str()).unwrap_or_default().to_string();
    if text.trim().is_empty() {
        return None;
    }
    let mut attachments = Vec::new();
    if m["photo"].is_array() {
        attachments.push(attachment("image", &Value::Null, Some("image/jpeg")));
    }
    for (key, kind) in [("document", "document"), ("video", "video"), ("audio", "audio"), ("voice", "audio")]
    {
        if m[key].is_object() {
            attachments.push(attachment(kind, &m[key], None));
        }
    }
    let message_id = m["message_id"].as_i64()?.to_string();
    let mut metadata = std::collections::BTreeMap::from([
        ("messageId".to_string(), message_id.clone()),
        ("chatType".to_string(), m["chat"]["type"].as_str().unwrap_or_default().to_string()),
    ]);
    if let Some(u) = from["username"].as_str() {
        metadata.insert("username".into(), u.into());
    }
    let topic = m["is_topic_message"].as_bool() == Some(true);
    Some(InboundMessage {
        id: Some(message_id),
        sender_id: from["id"].as_i64()?.to_string(),
        sender_name: from["first_name"].as_str().map(str::to_string),
        chat_id: m["chat"]["id"].as_i64()?.to_string(),
        thread_id: m["message_thread_id"].as_i64().filter(|_| topic).map(|t| t.to_string()),
        text,
        attachments,
        metadata: Some(metadata),
        ..Default::default()
    })
}

fn id_value(id: &str) -> Value {
    id.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(id))
}

impl Platform for Telegram {
    fn limit(&self) -> usize {
        LIMIT
    }

    async fn send(&self, part: Part<'_>) -> Result<(), SendError> {
        let m = part.message;
        let mut body = json!({"chat_id": id_value(&m.chat_id), "text": part.text});
        let parse_mode = match m.format.as_deref() {
            Some("html") => Some("HTML"),
            Some("plain") => None,
            _ => Some("Markdown"),
        };
        if let Some(mode) = parse_mode {
            body["parse_mode"] = mode.into();
        }
        if let Some(thread) = m.thread_id.as_deref().and_then(|t| t.parse::<i64>().ok()) {
            body["message_thread_id"] = thread.into();
        }
        if part.index == 0
            && let Some(to) = m.reply_to.as_deref().and_then(|r| r.parse::<i64>().ok())
        {
            body["reply_to_message_id"] = to.into();
            body["allow_sending_without_reply"] = true.into();
        }
        let timeout = Duration::from_secs(30);
        match self.call("sendMessage", &body, timeout).await {
            // Agents write Markdown Telegram's parser may reject (unbalanced `_`, `*`): the
            // text is worth more than its formatting.
            Err(SendError::Permanent(reason))
                if parse_mode.is_some() && reason.contains("parse entities") =>
            {
                if let Some(o) = body.as_object_mut() {
                    o.remove("parse_mode");
                }
                self.call("sendMessage", &body, timeout).await.map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn user_messages_only() {
        let u = json!({"update_id": 5, "message": {"message_id": 7, "from": {"id": 42, "is_bot": false,
            "first_name": "Ann", "username": "ann"}, "chat": {"id": -100, "type": "group"}, "text": "hi"}});
        let m = inbound_message(&u, 1).unwrap();
        assert_eq!((m.sender_id.as_str(), m.chat_id.as_str(), m.text.as_str()), ("42", "-100", "hi"));
        assert_eq!(m.id.as_deref(), Some("7"));
        assert_eq!(m.metadata.unwrap()["username"], "ann");
        let mut bot = u.clone();
        bot["message"]["from"]["is_bot"] = true.into();
        assert!(inbound_message(&bot, 1).is_none());
        assert!(inbound_message(&u, 42).is_none(), "its own message");
    }

    #[test]
    fn captions_and_files() {
        let u = json!({"update_id": 6, "message": {"message_id": 8, "from": {"id": 42, "is_bot": false},
            "chat": {"id": 42, "type": "private"}, "caption": "what is this?",
            "document": {"file_id": "F", "file_name": "dump.log", "mime_type": "text/plain"}}});
        let m = inbound_message(&u, 1).unwrap();
        assert_eq!(m.text, "what is this?");
        assert_eq!(m.attachments[0].type_, "document");
        assert_eq!(m.attachments[0].filename.as_deref(), Some("dump.log"));
        let mut photo_only = u.clone();
        photo_only["message"]["caption"] = serde_json::Value::Null;
        assert!(inbound_message(&photo_only, 1).is_none(), "nothing to answer without text");
    }
}
