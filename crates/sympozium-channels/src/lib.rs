//! Channel pods: one chat platform (Telegram, Slack, Discord or WhatsApp) bridged to the
//! Sympozium event bus for one instance.
//!
//! [`start`] connects to the bus, serves `/healthz`, and runs the platform's inbound side
//! (long polling, Socket Mode, Gateway or webhook) and the shared outbound loop
//! ([`bridge::outbound_loop`]) that posts this instance's replies. Health changes and a
//! periodic heartbeat go out as `channel.health.update`, which the instance controller turns
//! into `status.channels[]`.

pub mod bridge;
pub mod config;
pub mod discord;
pub mod health;
pub mod platform;
pub mod slack;
pub mod split;
pub mod telegram;
pub mod whatsapp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use sympozium_bus::Bus;
use tokio::task::JoinHandle;

use crate::bridge::{Identity, Inbound};
use crate::config::{ChannelType, Config, Missing, required};
use crate::health::HealthReporter;

/// Why a channel pod cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required setting (credential) is missing.
    #[error(transparent)]
    Missing(#[from] Missing),
    /// The event bus is unreachable.
    #[error("event bus: {0}")]
    Bus(#[from] sympozium_bus::Error),
    /// The bus credentials (`NATS_CREDS`) do not parse.
    #[error("bus credentials: NATS_CREDS: {0}")]
    Credentials(#[source] sympozium_bus::jwt::JwtError),
    /// A server could not listen.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A running channel; its tasks stop when it is dropped.
pub struct Running {
    /// Where `/healthz` is served.
    pub health_addr: SocketAddr,
    /// Where the webhook server listens (Slack Events API mode, WhatsApp).
    pub webhook_addr: Option<SocketAddr>,
    health: HealthReporter,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits until a task ends (they run forever unless the runtime shuts down).
    pub async fn wait(&mut self) {
        if self.tasks.is_empty() {
            return;
        }
        let tasks = std::mem::take(&mut self.tasks);
        let (_, _, rest) = futures_util::future::select_all(tasks).await;
        self.tasks = rest;
    }

    /// Reports "disconnected" (so the instance status shows it at once) and stops.
    pub async fn shutdown(self) {
        self.health.disconnected("channel pod stopping");
        // Give the health publisher a moment to send the change.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn serve(addr: SocketAddr, router: Router) -> Result<(SocketAddr, JoinHandle<()>), Error> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Listen { addr, source })?;
    let bound = listener.local_addr().map_err(|source| Error::Listen { addr, source })?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    Ok((bound, task))
}

/// How the pod connects: as its instance's channel user, signing as its instance, when the
/// instance's bus Secret gave it credentials (`NATS_CREDS`) and an origin key.
pub fn bus_options(config: &Config) -> Result<sympozium_bus::BusOptions, Error> {
    let set =
        |s: &Option<config::Secret>| s.as_ref().map(|s| s.expose().to_string()).filter(|s| !s.is_empty());
    let user = match set(&config.nats_creds) {
        Some(text) => {
            Some(sympozium_bus::jwt::UserCredentials::from_creds(&text).map_err(Error::Credentials)?)
        }
        None => None,
    };
    Ok(sympozium_bus::BusOptions {
        user,
        origin: set(&config.origin_key).map(|key| {
            let identity =
                sympozium_bus::origin::channel_identity(&config.instance_namespace, &config.instance_name);
            sympozium_bus::origin::Origin::new(identity, key)
        }),
        ..Default::default()
    })
}

/// Starts the channel described by `config`.
pub async fn start(config: Config) -> Result<Running, Error> {
    let kind = config.channel;
    // Credentials first: a pod without them fails at once, naming the variable.
    check_credentials(&config)?;
    let bus = Bus::connect_with(&config.event_bus_url, bus_options(&config)?).await?;
    let identity = Arc::new(Identity {
        channel: kind,
        instance: config.instance_name.clone(),
        namespace: config.instance_namespace.clone(),
    });
    let (health, health_rx) = HealthReporter::new();
    let (health_addr, server) = serve(config.health_addr, health::router(health_rx.clone())).await?;
    let mut tasks = vec![
        server,
        tokio::spawn(health::publish_loop(
            bus.clone(),
            identity.topic(sympozium_bus::topics::CHANNEL_HEALTH_UPDATE),
            health_rx.clone(),
            identity.metadata(),
            kind.as_str(),
            config.health_interval,
        )),
    ];
    let inbound = Inbound::new(bus.clone(), identity.clone());
    let mut webhook: Option<Router> = None;
    match kind {
        ChannelType::Telegram => {
            let token = required(&config.telegram_bot_token, kind, "TELEGRAM_BOT_TOKEN", "the bot token")?;
            let tg = Arc::new(telegram::Telegram::new(
                &config.telegram_api_url,
                token,
                config.telegram_poll_timeout,
            ));
            tasks.push(tokio::spawn(bridge::outbound_loop(bus.clone(), identity.clone(), tg.clone())));
            tasks.push(tokio::spawn(tg.run_inbound(inbound, health.clone())));
        }
        ChannelType::Slack => {
            let token = required(&config.slack_bot_token, kind, "SLACK_BOT_TOKEN", "the bot token")?;
            let slack = Arc::new(slack::Slack::new(&config.slack_api_url, token));
            tasks.push(tokio::spawn(bridge::outbound_loop(bus.clone(), identity.clone(), slack.clone())));
            match &config.slack_app_token {
                Some(app) => {
                    tasks.push(tokio::spawn(slack::socket::run(
                        slack.clone(),
                        app.clone(),
                        inbound,
                        health.clone(),
                    )));
                }
                None => {
                    let secret = required(
                        &config.slack_signing_secret,
                        kind,
                        "SLACK_SIGNING_SECRET",
                        "Events API mode (no SLACK_APP_TOKEN) verifies every request with it",
                    )?;
                    webhook = Some(
                        slack::events::router(slack.clone(), secret, inbound)
                            .merge(health::router(health_rx.clone())),
                    );
                    tasks.push(tokio::spawn(slack::events::watch_health(
                        slack,
                        health.clone(),
                        config.health_interval,
                    )));
                }
            }
        }
        ChannelType::Discord => {
            let token = required(&config.discord_bot_token, kind, "DISCORD_BOT_TOKEN", "the bot token")?;
            let discord = Arc::new(discord::Discord::new(&config.discord_api_url, token));
            tasks.push(tokio::spawn(bridge::outbound_loop(bus.clone(), identity.clone(), discord.clone())));
            tasks.push(tokio::spawn(discord::gateway::run(
                discord,
                config.discord_gateway_url.clone().filter(|u| !u.is_empty()),
                inbound,
                health.clone(),
            )));
        }
        ChannelType::Whatsapp => {
            let w = whatsapp_settings(&config)?;
            let wa = Arc::new(whatsapp::WhatsApp::new(
                &config.whatsapp_api_url,
                w.token,
                w.phone_number_id,
                config.whatsapp_data_dir.clone(),
            ));
            tasks.push(tokio::spawn(bridge::outbound_loop(bus.clone(), identity.clone(), wa.clone())));
            webhook = Some(
                whatsapp::router(wa.clone(), w.verify_token, w.app_secret, inbound)
                    .merge(health::router(health_rx.clone())),
            );
            tasks.push(tokio::spawn(whatsapp::watch_health(wa, health.clone(), config.health_interval)));
        }
    }
    let webhook_addr = match webhook {
        Some(router) => {
            let (addr, task) = serve(config.webhook_addr, router).await?;
            tasks.push(task);
            Some(addr)
        }
        None => None,
    };
    tracing::info!(channel = %kind, instance = %config.instance_name, %health_addr, ?webhook_addr, "channel started");
    Ok(Running { health_addr, webhook_addr, health, tasks })
}

struct WhatsAppSettings {
    token: config::Secret,
    phone_number_id: String,
    verify_token: config::Secret,
    app_secret: config::Secret,
}

fn whatsapp_settings(c: &Config) -> Result<WhatsAppSettings, Missing> {
    let kind = ChannelType::Whatsapp;
    Ok(WhatsAppSettings {
        token: required(
            &c.whatsapp_access_token,
            kind,
            "WHATSAPP_ACCESS_TOKEN",
            "the Cloud API access token",
        )?,
        phone_number_id: required(
            &c.whatsapp_phone_number_id,
            kind,
            "WHATSAPP_PHONE_NUMBER_ID",
            "the number to send from",
        )?,
        verify_token: required(
            &c.whatsapp_verify_token,
            kind,
            "WHATSAPP_VERIFY_TOKEN",
            "the webhook subscription check",
        )?,
        app_secret: required(
            &c.whatsapp_app_secret,
            kind,
            "WHATSAPP_APP_SECRET",
            "verifying webhook signatures",
        )?,
    })
}

fn check_credentials(c: &Config) -> Result<(), Missing> {
    let kind = c.channel;
    match kind {
        ChannelType::Telegram => {
            required(&c.telegram_bot_token, kind, "TELEGRAM_BOT_TOKEN", "the bot token").map(|_| ())
        }
        ChannelType::Slack => {
            required(&c.slack_bot_token, kind, "SLACK_BOT_TOKEN", "the bot token")?;
            if c.slack_app_token.is_none() {
                required(
                    &c.slack_signing_secret,
                    kind,
                    "SLACK_SIGNING_SECRET",
                    "Events API mode (no SLACK_APP_TOKEN) verifies every request with it",
                )?;
            }
            Ok(())
        }
        ChannelType::Discord => {
            required(&c.discord_bot_token, kind, "DISCORD_BOT_TOKEN", "the bot token").map(|_| ())
        }
        ChannelType::Whatsapp => whatsapp_settings(c).map(|_| ()),
    }
}
