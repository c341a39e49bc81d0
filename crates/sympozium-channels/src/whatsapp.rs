//! WhatsApp through the official Cloud API. Inbound: the webhook (`GET /webhook` answers
//! the subscription check with the verify token; `POST /webhook` accepts only bodies signed
//! with the app secret, `X-Hub-Signature-256`, for this phone number id). Outbound: Graph
//! API `POST /{phone-number-id}/messages`, split at 4096 characters — and only to chats that
//! wrote to this number within the last 24 hours (WhatsApp's customer-service window), so the
//! bot never starts conversations with, or answers into, chats that did not talk to it. The
//! list of those chats lives in the channel's data volume and survives restarts.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sympozium_bus::payloads::{Attachment, InboundMessage};

use crate::bridge::Inbound;
use crate::config::Secret;
use crate::health::HealthReporter;
use crate::platform::{self, Part, Platform, SendError};

/// WhatsApp's text message limit.
pub const LIMIT: usize = 4096;
/// How long after a user's last message the bot may answer (seconds).
pub const WINDOW_SECS: i64 = 24 * 3600;

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// A WhatsApp Cloud API client.
pub struct WhatsApp {
    http: reqwest::Client,
    api: String,
    token: Secret,
    phone_number_id: String,
    /// Chat (wa_id) → when it last wrote (Unix seconds).
    chats: Mutex<HashMap<String, i64>>,
    store: PathBuf,
}

impl WhatsApp {
    /// A client of the Graph API at `api` sending from `phone_number_id`; the answerable
    /// chats are kept in `data_dir/whatsapp-chats.json`.
    pub fn new(api: &str, token: Secret, phone_number_id: String, data_dir: PathBuf) -> Self {
        let store = data_dir.join("whatsapp-chats.json");
        let chats =
            std::fs::read(&store).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Self {
            http: platform::http_client(Duration::from_secs(30)),
            api: api.trim_end_matches('/').to_string(),
            token,
            phone_number_id,
            chats: Mutex::new(chats),
            store,
        }
    }

    fn remember(&self, chat: &str) {
        let mut chats = self.chats.lock().unwrap_or_else(PoisonError::into_inner);
        let t = now();
        chats.insert(chat.to_string(), t);
        chats.retain(|_, last| t - *last <= WINDOW_SECS);
        // Best effort: without a writable volume the list lives in memory only.
        if let Ok(bytes) = serde_json::to_vec(&*chats)
            && let Err(e) = std::fs::write(&self.store, bytes)
        {
            tracing::debug!(error = %e, "could not persist the WhatsApp chat list");
        }
    }

    fn may_answer(&self, chat: &str) -> bool {
        let chats = self.chats.lock().unwrap_or_else(PoisonError::into_inner);
        chats.get(chat).is_some_and(|last| now() - *last <= WINDOW_SECS)
    }

    /// Checks the phone number through the Graph API (health).
    pub async fn check(&self) -> Result<(), CheckError> {
        let resp = self
            .http
            .get(format!("{}/{}", self.api, self.phone_number_id))
            .query(&[("fields", "id")])
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(CheckError::Request)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        let message = v["error"]["message"].as_str().unwrap_or("no message").to_string();
        Err(CheckError::Refused { status, message })
    }
}

/// Why the Graph API health check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The request failed (shown without its URL, which may carry the phone number id).
    #[error("{}", platform::describe(.0))]
    Request(#[source] reqwest::Error),
    /// The Graph API answered with an error status.
    #[error("HTTP {status}: {message}")]
    Refused {
        /// HTTP status.
        status: reqwest::StatusCode,
        /// The Graph API's error message (`no message` when it sent none).
        message: String,
    },
}

/// Rechecks the Graph API every `interval` and reports it as the channel's health.
pub async fn watch_health(wa: Arc<WhatsApp>, health: HealthReporter, interval: Duration) {
    loop {
        match wa.check().await {
            Ok(()) => health.connected(),
            Err(e) => health.disconnected(format!("WhatsApp Graph API: {e}")),
        }
        tokio::time::sleep(interval).await;
    }
}

/// What the webhook handlers need.
#[derive(Clone)]
struct WebhookState {
    wa: Arc<WhatsApp>,
    verify_token: Secret,
    app_secret: Secret,
    inbound: Inbound,
}

/// The `/webhook` router.
pub fn router(wa: Arc<WhatsApp>, verify_token: Secret, app_secret: Secret, inbound: Inbound) -> Router {
    Router::new().route("/webhook", get(subscribe).post(receive)).with_state(WebhookState {
        wa,
        verify_token,
        app_secret,
        inbound,
    })
}

async fn subscribe(State(s): State<WebhookState>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let field = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if field("hub.mode") == "subscribe" && field("hub.verify_token") == s.verify_token.expose() {
        return field("hub.challenge").to_string().into_response();
    }
    (StatusCode::FORBIDDEN, "verify token mismatch").into_response()
}

/// Whether `header` (`sha256=<hex>`) is the app secret's HMAC-SHA256 of `body`.
pub fn verify(secret: &Secret, body: &[u8], header: &str) -> bool {
    let Some(sig) = header.strip_prefix("sha256=").and_then(|h| hex::decode(h).ok()) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

async fn receive(State(s): State<WebhookState>, headers: HeaderMap, body: Bytes) -> Response {
    let sig = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !verify(&s.app_secret, &body, sig) {
        tracing::warn!("refusing a WhatsApp webhook with a missing or wrong signature");
        return (StatusCode::UNAUTHORIZED, "invalid signature").into_response();
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    for msg in inbound_messages(&payload, &s.wa.phone_number_id) {
        s.wa.remember(&msg.chat_id);
        s.inbound.publish(msg).await;
    }
    StatusCode::OK.into_response()
}

/// The user messages of a webhook payload addressed to `phone_number_id` (status updates,
/// other numbers and messages without text are skipped).
pub fn inbound_messages(payload: &Value, phone_number_id: &str) -> Vec<InboundMessage> {
    let mut out = Vec::new();
    let changes =
        payload["entry"].as_array().into_iter().flatten().flat_map(|e| e["changes"].as_array()).flatten();
    for change in changes.filter(|c| c["field"].as_str() == Some("messages")) {
        let value = &change["value"];
        if value["metadata"]["phone_number_id"].as_str() != Some(phone_number_id) {
            continue;
        }
        let names: HashMap<&str, &str> = value["contacts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| Some((c["wa_id"].as_str()?, c["profile"]["name"].as_str()?)))
            .collect();
        for m in value["messages"].as_array().into_iter().flatten() {
            if let Some(msg) = one(m, &names) {
                out.push(msg);
            }
        }
    }
    out
}

fn one(m: &Value, names: &HashMap<&str, &str>) -> Option<InboundMessage> {
    let from = m["from"].as_str().filter(|f| !f.is_empty())?;
    let id = m["id"].as_str()?;
    let kind = m["type"].as_str().unwrap_or_default();
    let media = &m[kind];
    let text = match kind {
        "text" => m["text"]["body"].as_str(),
        "button" => m["button"]["text"].as_str(),
        "interactive" => m["interactive"]["button_reply"]["title"]
            .as_str()
            .or(m["interactive"]["list_reply"]["title"].as_str()),
        _ => media["caption"].as_str(),
    }
    .unwrap_or_default();
    if text.trim().is_empty() {
        return None;
    }
    let attachments = match kind {
        "image" | "document" | "video" | "audio" | "sticker" => vec![Attachment {
            type_: kind.into(),
            url: None,
            filename: media["filename"].as_str().map(str::to_string),
            mime_type: media["mime_type"].as_str().map(str::to_string),
        }],
        _ => Vec::new(),
    };
    let mut metadata = BTreeMap::from([("messageId".to_string(), id.to_string())]);
    if let Some(media_id) = media["id"].as_str() {
        metadata.insert("mediaId".into(), media_id.into());
    }
    Some(InboundMessage {
        id: Some(id.to_string()),
        sender_id: from.to_string(),
        sender_name: names.get(from).map(|n| n.to_string()),
        // Cloud API conversations are one-to-one: the chat is the user.
        chat_id: from.to_string(),
        thread_id: None,
        text: text.to_string(),
        attachments,
        metadata: Some(metadata),
        ..Default::default()
    })
}

impl Platform for WhatsApp {
    fn limit(&self) -> usize {
        LIMIT
    }

    async fn send(&self, part: Part<'_>) -> Result<(), SendError> {
        let m = part.message;
        if !self.may_answer(&m.chat_id) {
            return Err(SendError::Permanent(format!(
                "chat {} has not written to this number in the last 24 hours",
                m.chat_id
            )));
        }
        let mut body = json!({"messaging_product": "whatsapp", "recipient_type": "individual",
            "to": m.chat_id, "type": "text", "text": {"body": part.text, "preview_url": false}});
        if part.index == 0
            && let Some(to) = m.reply_to.as_deref().filter(|r| !r.is_empty())
        {
            body["context"] = json!({"message_id": to});
        }
        let resp = self
            .http
            .post(format!("{}/{}/messages", self.api, self.phone_number_id))
            .bearer_auth(self.token.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| platform::network(&e))?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(());
        }
        let detail = v["error"]["message"].as_str().unwrap_or("no message").to_string();
        // Graph rate-limit codes (app, business account, pair rate) arrive as 400s too.
        if matches!(v["error"]["code"].as_i64(), Some(4 | 80007 | 130429 | 131048 | 131056)) {
            return Err(SendError::RetryAfter(Duration::from_secs(2), detail));
        }
        Err(platform::classify(status, &headers, None, detail))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_messages_for_this_number() {
        let p = json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
            "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "P1"},
                "contacts": [{"wa_id": "4915", "profile": {"name": "Ann"}}],
                "messages": [{"from": "4915", "id": "wamid.1", "type": "text", "text": {"body": "hi"}}],
                "statuses": []}}]}]});
        let m = inbound_messages(&p, "P1");
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].chat_id.as_str(), m[0].sender_name.as_deref()), ("4915", Some("Ann")));
        assert!(inbound_messages(&p, "P2").is_empty());
    }

    #[test]
    fn signature() {
        let secret = Secret::new("s3cret");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"{}");
        let header = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(verify(&secret, b"{}", &header));
        assert!(!verify(&secret, b"{ }", &header));
        assert!(!verify(&secret, b"{}", "sha256=00"));
    }
}
