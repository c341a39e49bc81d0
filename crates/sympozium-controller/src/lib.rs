//! The Sympozium controller manager: hosts the controllers, serves metrics and health, and
//! elects a leader among replicas.

pub mod agentrun;
pub mod cache;
pub mod channelrouter;
pub mod clock;
pub mod config;
pub mod context;
pub mod finalizers;
pub mod gateway;
pub mod http;
pub mod instance;
pub mod integrations;
pub mod mcpserver;
pub mod personapack;
pub mod policy;
pub mod queue_depth;
pub mod routers;
pub mod run_origin;
pub mod schedule;
pub mod settings;
pub mod skillpack;
pub mod spawn;
pub mod stamps;
pub mod superseded;
pub mod watched;

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use sympozium_kube::leader::{self, LeaseConfig};
use sympozium_kube::metrics::Metrics;
use tokio::sync::watch;

use crate::config::Config;
use crate::context::Context;

/// Errors that stop the manager.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The leader would retry no sooner than its lease runs out, so it could not renew it.
    #[error(
        "kubernetes configuration: --leader-retry-period-ms ({retry_period_ms}) must be shorter than --leader-lease-duration-secs ({lease_duration_secs}s), or the leader could not renew its lease in time"
    )]
    LeaderTiming {
        /// `--leader-retry-period-ms`.
        retry_period_ms: u64,
        /// `--leader-lease-duration-secs`.
        lease_duration_secs: u64,
    },
    /// No usable cluster configuration.
    #[error("kubernetes configuration: {0}")]
    KubeConfig(#[from] sympozium_kube::process::KubeConfigError),
    /// The Kubernetes client could not be built from the configuration.
    #[error("kubernetes configuration: {0}")]
    Client(#[from] sympozium_kube::client::Error),
    /// The bus credentials in the flags are unusable.
    #[error("kubernetes configuration: {0}")]
    BusAuth(#[from] crate::config::BusAuthError),
    /// An endpoint could not listen.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The event bus could not be reached.
    #[error("event bus: {0}")]
    Bus(#[source] sympozium_bus::Error),
    /// Leadership was lost; the process exits so a fresh replica can take over cleanly.
    #[error("lost leadership of the lease")]
    LostLeadership,
}

/// Builds a client from `--kubeconfig` or the in-cluster environment.
pub async fn client(config: &Config) -> Result<Client, Error> {
    client_counted(config, None).await
}

/// Like [`client`], counting every API request in `metrics` when given.
pub async fn client_counted(config: &Config, metrics: Option<Metrics>) -> Result<Client, Error> {
    let kube_config = sympozium_kube::process::kube_config(config.kubeconfig.as_deref()).await?;
    let client = match metrics {
        Some(m) => sympozium_kube::client::multiplexed_counted(kube_config, m),
        None => sympozium_kube::client::multiplexed(kube_config),
    }?;
    // One request before the controllers start: the connection (HTTP/2 when the server
    // offers it) is in the pool before dozens of watches and reconciles ask for one at once.
    if let Err(e) = client.apiserver_version().await {
        tracing::warn!(error = %e, "the API server did not answer the first request");
    }
    Ok(client)
}

async fn serve(
    addr: std::net::SocketAddr,
    router: axum::Router,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Listen { addr, source })?;
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "HTTP endpoint stopped");
        }
    }))
}

/// Runs the manager until a shutdown signal (or loss of leadership).
pub async fn run(config: Config) -> Result<(), Error> {
    let metrics = Metrics::default();
    let client = client_counted(&config, Some(metrics.clone())).await?;
    let identity = config.identity.clone().unwrap_or_else(default_identity);
    let (ready_tx, ready_rx) = watch::channel(!config.leader_elect);
    serve(config.metrics_bind_address, http::metrics_router(metrics.clone())).await?;
    serve(config.health_probe_bind_address, http::health_router(ready_rx.clone())).await?;
    tracing::info!(metrics = %config.metrics_bind_address, health = %config.health_probe_bind_address, "endpoints up");

    if config.leader_elect {
        if config.leader_retry_period_ms >= config.leader_lease_duration_secs.saturating_mul(1000) {
            return Err(Error::LeaderTiming {
                retry_period_ms: config.leader_retry_period_ms,
                lease_duration_secs: config.leader_lease_duration_secs,
            });
        }
        let lease = LeaseConfig {
            name: "sympozium-controller-leader".into(),
            namespace: config.system_namespace.clone(),
            identity: identity.clone(),
            lease_duration: Duration::from_secs(config.leader_lease_duration_secs),
            retry_period: Duration::from_millis(config.leader_retry_period_ms),
        };
        // The Lease is renewed over a connection of its own: behind the requests of a
        // thousand reconciles queued on the shared connection a renewal would come late,
        // and a leader that is only busy would lose its Lease and stop.
        let lease_client = client_counted(&config, None).await?;
        tokio::spawn(leader::run(lease_client, lease, ready_tx));
        let mut leading = ready_rx.clone();
        tracing::info!(%identity, "waiting to become leader");
        if leading.wait_for(|l| *l).await.is_err() {
            return Err(Error::LostLeadership);
        }
        tracing::info!(%identity, "leading");
    }

    let agent_sandbox = config.agent_sandbox_enabled && agentrun::sandbox::available(&client).await;
    if let Some(found) = integrations::detect(&client).await {
        integrations::log(&found, agent_sandbox);
    }
    let ctx = Arc::new(
        Context::new(client, config.settings(), metrics, config.watch_namespace.clone(), &identity)
            .with_agent_sandbox(agent_sandbox),
    );
    if let Some(url) = config.nats_url.as_deref().filter(|u| !u.is_empty()) {
        let options = config.bus_options()?;
        let bus = sympozium_bus::Bus::connect_with(url, options).await.map_err(Error::Bus)?;
        routers::spawn(&ctx, &bus);
        tracing::info!(%url, "event bus routers started");
    }
    let controllers = run_controllers(ctx);
    if config.leader_elect {
        let mut leading = ready_rx;
        tokio::select! {
            () = controllers => Ok(()),
            _ = leading.wait_for(|l| !*l) => Err(Error::LostLeadership),
        }
    } else {
        controllers.await;
        Ok(())
    }
}

/// Runs every controller until the process is asked to stop.
pub async fn run_controllers(ctx: Arc<Context>) {
    futures::join!(
        instance::run(ctx.clone()),
        agentrun::run(ctx.clone()),
        schedule::run(ctx.clone()),
        personapack::run(ctx.clone()),
        skillpack::run(ctx.clone()),
        policy::run(ctx.clone()),
        gateway::run(ctx.clone()),
        mcpserver::run(ctx.clone())
    );
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let host = if host.is_empty() { "sympozium-controller".to_string() } else { host };
    format!("{host}-{}", std::process::id())
}
