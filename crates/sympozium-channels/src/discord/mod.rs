//! Discord: the Gateway for inbound messages ([`gateway`]) and REST
//! `POST /channels/{id}/messages` for replies, split at 2000 characters, within the
//! rate-limit buckets Discord announces in its `X-RateLimit-*` headers (and after
//! `retry_after` on 429). Messages from bots, this one included, are ignored.

pub mod gateway;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sympozium_bus::payloads::{Attachment, InboundMessage};

use crate::config::Secret;
use crate::platform::{self, Part, Platform, SendError};

/// Discord's message length limit.
pub const LIMIT: usize = 2000;

/// Gateway intents: GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT.
pub const INTENTS: u64 = (1 << 9) | (1 << 12) | (1 << 15);

/// Rate-limit state learned from response headers.
#[derive(Default)]
struct Buckets {
    /// Route → bucket id (Discord shares buckets between routes).
    routes: HashMap<String, String>,
    /// Bucket → when requests may go again (set when `remaining` hit 0).
    blocked_until: HashMap<String, Instant>,
    /// A global rate limit.
    global_until: Option<Instant>,
}

/// A Discord REST client.
pub struct Discord {
    http: reqwest::Client,
    api: String,
    token: Secret,
    buckets: Mutex<Buckets>,
}

fn header_f64(headers: &reqwest::header::HeaderMap, name: &str) -> Option<f64> {
    headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

impl Discord {
    /// A client of the REST API at `api` (e.g. `https://discord.com/api/v10`).
    pub fn new(api: &str, token: Secret) -> Self {
        Self {
            http: platform::http_client(Duration::from_secs(30)),
            api: api.trim_end_matches('/').to_string(),
            token,
            buckets: Mutex::default(),
        }
    }

    fn authorization(&self) -> String {
        format!("Bot {}", self.token.expose())
    }

    /// The bot token (for the Gateway's identify and resume).
    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// The Gateway URL from `GET /gateway/bot`.
    pub async fn gateway_url(&self) -> Result<String, SendError> {
        let resp = self
            .http
            .get(format!("{}/gateway/bot", self.api))
            .header("authorization", self.authorization())
            .send()
            .await
            .map_err(|e| platform::network(&e))?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        match v["url"].as_str() {
            Some(url) if status.is_success() => Ok(url.to_string()),
            _ => Err(platform::classify(
                status,
                &headers,
                v["retry_after"].as_f64(),
                format!("GET /gateway/bot: {}", v["message"].as_str().unwrap_or("no url")),
            )),
        }
    }

    /// How long to wait before a request on `route` may go out.
    fn wait_for(&self, route: &str) -> Option<Duration> {
        let b = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let bucket = b.routes.get(route).and_then(|id| b.blocked_until.get(id)).copied();
        [b.global_until, bucket].into_iter().flatten().filter(|t| *t > now).max().map(|t| t - now)
    }

    fn learn(
        &self,
        route: &str,
        headers: &reqwest::header::HeaderMap,
        status: reqwest::StatusCode,
        body: &Value,
    ) {
        let mut b = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let bucket = headers
            .get("x-ratelimit-bucket")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| route.to_string());
        b.routes.insert(route.to_string(), bucket.clone());
        let remaining = header_f64(headers, "x-ratelimit-remaining");
        let reset_after =
            header_f64(headers, "x-ratelimit-reset-after").filter(|s| s.is_finite() && *s >= 0.0);
        if remaining == Some(0.0)
            && let Some(after) = reset_after
        {
            b.blocked_until.insert(bucket.clone(), now + Duration::from_secs_f64(after.min(3600.0)));
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let after = body["retry_after"].as_f64().filter(|s| s.is_finite() && *s >= 0.0).unwrap_or(1.0);
            let until = now + Duration::from_secs_f64(after.min(3600.0));
            if body["global"].as_bool() == Some(true) {
                b.global_until = Some(until);
            } else {
                b.blocked_until.insert(bucket, until);
            }
        }
    }

    async fn create_message(&self, channel: &str, body: &Value) -> Result<(), SendError> {
        let route = format!("channels/{channel}/messages");
        if let Some(wait) = self.wait_for(&route) {
            tracing::debug!(?wait, "waiting for the Discord rate-limit bucket");
            tokio::time::sleep(wait).await;
        }
        let resp = self
            .http
            .post(format!("{}/{route}", self.api))
            .header("authorization", self.authorization())
            .json(body)
            .send()
            .await
            .map_err(|e| platform::network(&e))?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        self.learn(&route, &headers, status, &v);
        if status.is_success() {
            return Ok(());
        }
        let detail = v["message"].as_str().unwrap_or("no message").to_string();
        Err(platform::classify(status, &headers, v["retry_after"].as_f64(), detail))
    }
}

/// The bus message of a `MESSAGE_CREATE` payload, or `None` for messages from bots
/// (this one included) and messages without text.
pub fn inbound_message(d: &Value, me: &str) -> Option<InboundMessage> {
    let author = d.get("author")?;
    // An empty id names no one: answering it would address no user and match no allow-list.
    let author_id = author["id"].as_str().filter(|id| !id.is_empty())?;
    if author_id == me || author["bot"].as_bool() == Some(true) {
        return None;
    }
    let text = d["content"].as_str().unwrap_or_default();
    if text.trim().is_empty() {
        return None;
    }
    let id = d["id"].as_str()?.to_string();
    let mut metadata = BTreeMap::from([("messageId".to_string(), id.clone())]);
    if let Some(guild) = d["guild_id"].as_str() {
        metadata.insert("guildId".into(), guild.into());
    }
    let attachments = d["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let mime = a["content_type"].as_str().map(str::to_string);
            let image = mime.as_deref().is_some_and(|m| m.starts_with("image/"));
            Attachment {
                type_: if image { "image".into() } else { "file".into() },
                url: a["url"].as_str().map(str::to_string),
                filename: a["filename"].as_str().map(str::to_string),
                mime_type: mime,
            }
        })
        .collect();
    Some(InboundMessage {
        id: Some(id),
        sender_id: author_id.to_string(),
        sender_name: author["global_name"].as_str().or(author["username"].as_str()).map(str::to_string),
        chat_id: d["channel_id"].as_str().filter(|c| !c.is_empty())?.to_string(),
        thread_id: None,
        text: text.to_string(),
        attachments,
        metadata: Some(metadata),
        ..Default::default()
    })
}

impl Platform for Discord {
    fn limit(&self) -> usize {
        LIMIT
    }

    async fn send(&self, part: Part<'_>) -> Result<(), SendError> {
        let m = part.message;
        // The nonce makes Discord drop a retried post it already has (≤ 25 characters).
        let nonce: String = format!("sz{}", part.key).chars().take(25).collect();
        let mut body = json!({"content": part.text, "nonce": nonce, "enforce_nonce": true,
            // An agent's answer must not ping @everyone or roles.
            "allowed_mentions": {"parse": ["users"]}});
        if part.index == 0
            && let Some(to) = m.reply_to.as_deref().filter(|r| !r.is_empty())
        {
            body["message_reference"] = json!({"message_id": to, "fail_if_not_exists": false});
        }
        self.create_message(&m.chat_id, &body).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn own_and_bot_messages_are_ignored() {
        let d = json!({"id": "9", "channel_id": "C", "guild_id": "G", "content": "hi",
            "author": {"id": "U1", "username": "ann"}});
        let m = inbound_message(&d, "BOT").unwrap();
        assert_eq!((m.sender_id.as_str(), m.chat_id.as_str()), ("U1", "C"));
        assert_eq!(m.metadata.unwrap()["guildId"], "G");
        assert!(inbound_message(&d, "U1").is_none());
        let mut bot = d.clone();
        bot["author"]["bot"] = true.into();
        assert!(inbound_message(&bot, "BOT").is_none());
        // Found by the platform_payloads fuzz target: an empty author id was accepted.
        let mut anonymous = d.clone();
        anonymous["author"]["id"] = "".into();
        assert!(inbound_message(&anonymous, "BOT").is_none());
        let mut nowhere = d.clone();
        nowhere["channel_id"] = "".into();
        assert!(inbound_message(&nowhere, "BOT").is_none());
    }

    #[test]
    fn attachments_travel_as_metadata() {
        let d = json!({"id": "9", "channel_id": "C", "content": "see screenshot",
            "author": {"id": "U1", "username": "ann"},
            "attachments": [{"id": "1", "filename": "err.png", "content_type": "image/png",
                             "url": "https://cdn.discordapp.com/attachments/1/err.png"},
                            {"id": "2", "filename": "log.txt", "content_type": "text/plain",
                             "url": "https://cdn.discordapp.com/attachments/1/log.txt"}]});
        let m = inbound_message(&d, "BOT").unwrap();
        assert_eq!(m.attachments.len(), 2);
        assert_eq!(
            (m.attachments[0].type_.as_str(), m.attachments[0].filename.as_deref()),
            ("image", Some("err.png"))
        );
        assert_eq!(m.attachments[1].mime_type.as_deref(), Some("text/plain"));
        assert_eq!(m.attachments[1].url.as_deref(), Some("https://cdn.discordapp.com/attachments/1/log.txt"));
    }

    #[test]
    fn buckets_block_until_reset() {
        let d = Discord::new("http://x", Secret::new("t"));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("x-ratelimit-bucket", "abc".parse().unwrap());
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        h.insert("x-ratelimit-reset-after", "2.5".parse().unwrap());
        d.learn("channels/1/messages", &h, reqwest::StatusCode::OK, &Value::Null);
        let wait = d.wait_for("channels/1/messages").unwrap();
        assert!(wait > Duration::from_secs(2) && wait <= Duration::from_millis(2500));
        assert!(d.wait_for("channels/2/messages").is_none());
    }
}
