//! Slack: Socket Mode when an app token is configured ([`socket`]), else the Events API
//! with signing-secret verification ([`events`]). Replies go out with `chat.postMessage`
//! in the user's thread (`thread_ts`); messages from bots (this one included) are ignored.

pub mod events;
pub mod socket;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use sympozium_bus::payloads::{Attachment, InboundMessage};

use crate::config::Secret;
use crate::platform::{self, Part, Platform, SendError};

/// The length at which replies are split (Slack truncates past 40 000 and recommends 4 000).
pub const LIMIT: usize = 4000;

/// Who the bot is, from `auth.test`.
#[derive(Clone, Debug, Default)]
pub struct Me {
    /// The bot user's id.
    pub user_id: String,
    /// The bot id.
    pub bot_id: String,
}

/// A Slack Web API client.
pub struct Slack {
    http: reqwest::Client,
    api: String,
    bot_token: Secret,
    me: OnceLock<Me>,
}

impl Slack {
    /// A client of the Web API at `api` (e.g. `https://slack.com/api`).
    pub fn new(api: &str, bot_token: Secret) -> Self {
        Self {
            http: platform::http_client(Duration::from_secs(30)),
            api: api.trim_end_matches('/').to_string(),
            bot_token,
            me: OnceLock::new(),
        }
    }

    /// Calls a Web API method with `token` (the bot token unless given).
    pub async fn call(&self, method: &str, token: Option<&Secret>, body: &Value) -> Result<Value, SendError> {
        let token = token.unwrap_or(&self.bot_token);
        let resp = self
            .http
            .post(format!("{}/{method}", self.api))
            .bearer_auth(token.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| platform::network(&e))?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() && v["ok"].as_bool() == Some(true) {
            return Ok(v);
        }
        let error = v["error"].as_str().unwrap_or("no error given").to_string();
        if status.is_success() {
            return Err(match error.as_str() {
                "ratelimited" => SendError::RetryAfter(Duration::from_secs(1), error),
                "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
                    SendError::Transient(format!("{method}: {error}"))
                }
                _ => SendError::Permanent(format!("{method}: {error}")),
            });
        }
        Err(platform::classify(status, &headers, None, format!("{method}: {error}")))
    }

    /// Learns (once) who the bot is, so its own messages can be ignored.
    pub async fn identify(&self) -> Result<Me, SendError> {
        if let Some(me) = self.me.get() {
            return Ok(me.clone());
        }
        let v = self.call("auth.test", None, &json!({})).await?;
        let me = Me {
            user_id: v["user_id"].as_str().unwrap_or_default().into(),
            bot_id: v["bot_id"].as_str().unwrap_or_default().into(),
        };
        Ok(self.me.get_or_init(|| me).clone())
    }

    /// The bot's identity when known.
    pub fn me(&self) -> Me {
        self.me.get().cloned().unwrap_or_default()
    }
}

/// The bus message of an Events API `event`, or `None` for what the bot must not answer
/// (bot messages, its own, edits and other subtypes, other event types, empty text).
pub fn inbound_message(event: &Value, me: &Me) -> Option<InboundMessage> {
    if event["type"].as_str() != Some("message") {
        return None;
    }
    let subtype = event["subtype"].as_str();
    if !matches!(subtype, None | Some("file_share") | Some("thread_broadcast")) {
        return None;
    }
    let user = event["user"].as_str().filter(|u| !u.is_empty())?;
    if event.get("bot_id").is_some_and(|b| !b.is_null())
        || event.get("bot_profile").is_some_and(|b| !b.is_null())
        || user == me.user_id
    {
        return None;
    }
    let text = event["text"].as_str().unwrap_or_default();
    if text.trim().is_empty() {
        return None;
    }
    let channel = event["channel"].as_str().filter(|c| !c.is_empty())?;
    let ts = event["ts"].as_str()?;
    let attachments = event["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let mime = f["mimetype"].as_str().map(str::to_string);
            let kind = mime.as_deref().and_then(|m| m.split('/').next()).unwrap_or("file");
            Attachment {
                type_: if kind == "image" { "image".into() } else { "file".into() },
                url: f["url_private"].as_str().map(str::to_string),
                filename: f["name"].as_str().map(str::to_string),
                mime_type: mime,
            }
        })
        .collect();
    let mut metadata = BTreeMap::from([("ts".to_string(), ts.to_string())]);
    for key in ["channel_type", "team"] {
        if let Some(v) = event[key].as_str() {
            metadata.insert(key.replace("_type", "Type"), v.to_string());
        }
    }
    Some(InboundMessage {
        id: Some(ts.to_string()),
        sender_id: user.to_string(),
        sender_name: event["user_profile"]["display_name"].as_str().map(str::to_string),
        chat_id: channel.to_string(),
        // A top-level message starts a thread: the answer goes under it.
        thread_id: Some(event["thread_ts"].as_str().unwrap_or(ts).to_string()),
        text: text.to_string(),
        attachments,
        metadata: Some(metadata),
        ..Default::default()
    })
}

impl Platform for Slack {
    fn limit(&self) -> usize {
        LIMIT
    }

    async fn send(&self, part: Part<'_>) -> Result<(), SendError> {
        let m = part.message;
        let mut body = json!({"channel": m.chat_id, "text": part.text});
        if let Some(thread) = m.thread_id.as_deref().filter(|t| !t.is_empty()) {
            body["thread_ts"] = thread.into();
        }
        if m.format.as_deref() == Some("plain") {
            body["mrkdwn"] = false.into();
        }
        self.call("chat.postMessage", None, &body).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn me() -> Me {
        Me { user_id: "UBOT".into(), bot_id: "BBOT".into() }
    }

    #[test]
    fn user_messages_thread_under_themselves() {
        let e = json!({"type": "message", "user": "U1", "text": "hi", "channel": "C1", "ts": "1.2"});
        let m = inbound_message(&e, &me()).unwrap();
        assert_eq!(m.thread_id.as_deref(), Some("1.2"));
        let mut threaded = e.clone();
        threaded["thread_ts"] = "1.0".into();
        assert_eq!(inbound_message(&threaded, &me()).unwrap().thread_id.as_deref(), Some("1.0"));
    }

    #[test]
    fn bots_and_edits_are_ignored() {
        let e = json!({"type": "message", "user": "UBOT", "text": "hi", "channel": "C1", "ts": "1.2"});
        assert!(inbound_message(&e, &me()).is_none());
        let e = json!({"type": "message", "user": "U2", "bot_id": "B9", "text": "hi", "channel": "C1", "ts": "1"});
        assert!(inbound_message(&e, &me()).is_none());
        let e = json!({"type": "message", "subtype": "message_changed", "channel": "C1", "ts": "1"});
        assert!(inbound_message(&e, &me()).is_none());
    }
}
