//! Typed configuration of a channel pod. The instance controller wires `INSTANCE_NAME`,
//! `INSTANCE_NAMESPACE`, `CHANNEL_TYPE` and `EVENT_BUS_URL` onto the channel Deployment and
//! the credentials through `envFrom` of the channel's Secret; only `main.rs` reads them.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// The chat platform a pod bridges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ChannelType {
    /// Telegram Bot API (long polling).
    Telegram,
    /// Slack (Socket Mode with an app token, else the Events API).
    Slack,
    /// Discord (Gateway + REST).
    Discord,
    /// WhatsApp Cloud API (webhook + Graph API).
    Whatsapp,
}

impl ChannelType {
    /// The wire name (`telegram`, …), as in `spec.channels[].type` and bus messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Telegram => "telegram",
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::Whatsapp => "whatsapp",
        }
    }
}

impl fmt::Display for ChannelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A credential: printed as `***` so it never reaches a log line or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for building a request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.trim().to_string()))
    }
}

/// A duration setting that is not a positive number of seconds.
#[derive(Debug, thiserror::Error)]
#[error("{value:?} is not a positive number of seconds")]
pub struct NotPositiveSeconds {
    /// The value as given.
    pub value: String,
}

fn seconds(s: &str) -> Result<Duration, NotPositiveSeconds> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| NotPositiveSeconds { value: s.to_string() })
}

/// Configuration of `sympozium-channel`.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "sympozium-channel",
    version,
    about = "Bridges one chat platform and the Sympozium event bus"
)]
pub struct Config {
    /// The platform: telegram, slack, discord or whatsapp.
    #[arg(value_enum, env = "CHANNEL_TYPE")]
    pub channel: ChannelType,
    /// The SympoziumInstance this pod serves.
    #[arg(long, env = "INSTANCE_NAME")]
    pub instance_name: String,
    /// Namespace of the instance (routes inbound messages unambiguously and filters replies).
    #[arg(long, env = "INSTANCE_NAMESPACE", default_value = "")]
    pub instance_namespace: String,
    /// NATS URL of the event bus.
    #[arg(long, env = "EVENT_BUS_URL", default_value = "nats://nats.sympozium-system.svc:4222")]
    pub event_bus_url: String,
    /// The instance's channel user on the bus (`.creds` text from the instance's
    /// `<instance>-bus` Secret); unset for a NATS without authorization.
    #[arg(long, env = "NATS_CREDS", hide_env_values = true)]
    pub nats_creds: Option<Secret>,
    /// This instance's origin key (same Secret): everything the pod publishes is signed
    /// with it, so the controller knows which instance really sent it.
    #[arg(long, env = "SYMPOZIUM_ORIGIN_KEY", hide_env_values = true)]
    pub origin_key: Option<Secret>,
    /// Address of the health endpoint (`/healthz`).
    #[arg(long, env = "HEALTH_ADDR", default_value = "0.0.0.0:8080")]
    pub health_addr: SocketAddr,
    /// Address of the webhook server (Slack Events API `/slack/events`, WhatsApp `/webhook`).
    #[arg(long, env = "WEBHOOK_ADDR", default_value = "0.0.0.0:3000")]
    pub webhook_addr: SocketAddr,
    /// Seconds between periodic `channel.health.update` events (changes are sent at once).
    #[arg(long, env = "HEALTH_INTERVAL_SECONDS", default_value = "30", value_parser = seconds)]
    pub health_interval: Duration,
    /// Telegram long-poll timeout (seconds) of `getUpdates`.
    #[arg(long, env = "TELEGRAM_POLL_TIMEOUT", default_value = "30")]
    pub telegram_poll_timeout: u64,

    /// Telegram bot token.
    #[arg(long, env = "TELEGRAM_BOT_TOKEN", hide_env_values = true)]
    pub telegram_bot_token: Option<Secret>,
    /// Telegram Bot API base URL.
    #[arg(long, env = "TELEGRAM_API_URL", default_value = "https://api.telegram.org")]
    pub telegram_api_url: String,

    /// Slack bot token (`xoxb-…`).
    #[arg(long, env = "SLACK_BOT_TOKEN", hide_env_values = true)]
    pub slack_bot_token: Option<Secret>,
    /// Slack app-level token (`xapp-…`): Socket Mode when set.
    #[arg(long, env = "SLACK_APP_TOKEN", hide_env_values = true)]
    pub slack_app_token: Option<Secret>,
    /// Slack signing secret: required in Events API mode to verify requests.
    #[arg(long, env = "SLACK_SIGNING_SECRET", hide_env_values = true)]
    pub slack_signing_secret: Option<Secret>,
    /// Slack Web API base URL.
    #[arg(long, env = "SLACK_API_URL", default_value = "https://slack.com/api")]
    pub slack_api_url: String,

    /// Discord bot token.
    #[arg(long, env = "DISCORD_BOT_TOKEN", hide_env_values = true)]
    pub discord_bot_token: Option<Secret>,
    /// Discord REST base URL.
    #[arg(long, env = "DISCORD_API_URL", default_value = "https://discord.com/api/v10")]
    pub discord_api_url: String,
    /// Discord Gateway URL; asked from `GET /gateway/bot` when unset.
    #[arg(long, env = "DISCORD_GATEWAY_URL")]
    pub discord_gateway_url: Option<String>,

    /// WhatsApp Cloud API access token.
    #[arg(long, env = "WHATSAPP_ACCESS_TOKEN", hide_env_values = true)]
    pub whatsapp_access_token: Option<Secret>,
    /// WhatsApp business phone number id (sends from it; webhooks for other numbers are ignored).
    #[arg(long, env = "WHATSAPP_PHONE_NUMBER_ID")]
    pub whatsapp_phone_number_id: Option<String>,
    /// The verify token the webhook subscription (`GET /webhook`) must present.
    #[arg(long, env = "WHATSAPP_VERIFY_TOKEN", hide_env_values = true)]
    pub whatsapp_verify_token: Option<Secret>,
    /// The Meta app secret that signs webhooks (`X-Hub-Signature-256`).
    #[arg(long, env = "WHATSAPP_APP_SECRET", hide_env_values = true)]
    pub whatsapp_app_secret: Option<Secret>,
    /// Graph API base URL.
    #[arg(long, env = "WHATSAPP_API_URL", default_value = "https://graph.facebook.com/v21.0")]
    pub whatsapp_api_url: String,
    /// Directory for the list of chats that may be answered (the channel's PVC).
    #[arg(long, env = "WHATSAPP_DATA_DIR", default_value = "/data")]
    pub whatsapp_data_dir: PathBuf,
}

/// A required setting is missing.
#[derive(Debug, thiserror::Error)]
#[error("{channel} channel: {variable} is required ({why})")]
pub struct Missing {
    /// The channel type.
    pub channel: ChannelType,
    /// The environment variable to set.
    pub variable: &'static str,
    /// What it is for.
    pub why: &'static str,
}

/// Returns the value or a [`Missing`] error naming the variable.
pub fn required<T: Clone>(
    value: &Option<T>,
    channel: ChannelType,
    variable: &'static str,
    why: &'static str,
) -> Result<T, Missing> {
    value.clone().ok_or(Missing { channel, variable, why })
}

impl Config {
    /// A configuration for `channel` with defaults and no credentials (tests fill in the rest).
    pub fn new(channel: ChannelType, instance: &str, namespace: &str, event_bus_url: &str) -> Self {
        let mut c = Self::parse_from(["sympozium-channel", channel.as_str(), "--instance-name", instance]);
        c.instance_namespace = namespace.into();
        c.event_bus_url = event_bus_url.into();
        c
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s: Secret = "123:ABC".parse().unwrap();
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(s.expose(), "123:ABC");
    }

    #[test]
    fn type_comes_from_the_first_argument() {
        let c = Config::try_parse_from(["x", "slack", "--instance-name", "i"]).unwrap();
        assert_eq!(c.channel, ChannelType::Slack);
        assert_eq!(c.health_addr.port(), 8080);
        assert!(Config::try_parse_from(["x", "irc", "--instance-name", "i"]).is_err());
    }
}
