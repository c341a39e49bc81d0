//! Command-line configuration of the controller manager (flags with environment fallbacks).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::settings::{BusAuth, Settings};

/// Why the bus credentials cannot be set up from the flags.
#[derive(Debug, thiserror::Error)]
pub enum BusAuthError {
    /// The account key or signing seed does not decode.
    #[error("--nats-account / --nats-signing-seed: {0}")]
    SigningKey(#[source] sympozium_bus::jwt::JwtError),
    /// The controller's own NATS user could not be minted.
    #[error("minting the controller's bus user: {0}")]
    Mint(#[source] sympozium_bus::jwt::JwtError),
}

/// The Sympozium controller manager.
#[derive(Parser, Debug, Clone)]
#[command(name = "sympozium-controller", version, about)]
pub struct Config {
    /// Kubeconfig to use; in-cluster configuration when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Address of the Prometheus metrics endpoint.
    #[arg(long, env = "SYMPOZIUM_METRICS_BIND_ADDRESS", default_value = "0.0.0.0:8080")]
    pub metrics_bind_address: SocketAddr,
    /// Address of the `/healthz` and `/readyz` endpoints.
    #[arg(long, env = "SYMPOZIUM_HEALTH_PROBE_BIND_ADDRESS", default_value = "0.0.0.0:8081")]
    pub health_probe_bind_address: SocketAddr,
    /// Elect a leader among replicas on the Lease `sympozium-controller-leader`.
    #[arg(long, env = "SYMPOZIUM_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Seconds a leader's Lease stays valid without renewal: after a leader dies, a standby
    /// takes over within about this long (Lease durations are whole seconds).
    #[arg(long, env = "SYMPOZIUM_LEADER_LEASE_DURATION_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub leader_lease_duration_secs: u64,
    /// Milliseconds between the leader's renewals and a standby's attempts to acquire.
    #[arg(long, env = "SYMPOZIUM_LEADER_RETRY_PERIOD_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(50..=600_000))]
    pub leader_retry_period_ms: u64,
    /// Namespace Sympozium runs in (NATS, built-in skills and policies, the leader Lease).
    #[arg(long, env = "SYMPOZIUM_SYSTEM_NAMESPACE", default_value = "sympozium-system")]
    pub system_namespace: String,
    /// Watch only this namespace (all namespaces when unset).
    #[arg(long, env = "SYMPOZIUM_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Registry of every image the controller puts into pods.
    #[arg(long, env = "SYMPOZIUM_IMAGE_REGISTRY", default_value = "ghcr.io/sympozium-ai/sympozium")]
    pub image_registry: String,
    /// Tag of every image the controller puts into pods.
    #[arg(long, env = "SYMPOZIUM_IMAGE_TAG", default_value = "latest")]
    pub image_tag: String,
    /// NATS URL handed to pods (default `nats://nats.<system namespace>.svc:4222`).
    #[arg(long, env = "SYMPOZIUM_EVENT_BUS_URL")]
    pub event_bus_url: Option<String>,
    /// OTLP endpoint pods default to when their instance names none.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", default_value = "")]
    pub otlp_endpoint: String,
    /// Finished AgentRuns kept per instance (older ones are deleted).
    #[arg(long, env = "SYMPOZIUM_MAX_RUN_HISTORY", default_value_t = 50)]
    pub max_run_history: usize,
    /// Memory server address of an instance (`{instance}`, `{namespace}` are filled in).
    #[arg(
        long,
        env = "SYMPOZIUM_MEMORY_URL_TEMPLATE",
        default_value = "http://{instance}-memory.{namespace}.svc:8080"
    )]
    pub memory_url_template: String,
    /// Use the agent-sandbox API when the cluster serves it (probed at start-up).
    #[arg(long, env = "AGENT_SANDBOX_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub agent_sandbox_enabled: bool,
    /// How many schedules an agent may create for its instance with `schedule_task` (per
    /// namespace); further creates are refused and the agent is told why.
    #[arg(long, env = "SYMPOZIUM_MAX_AGENT_SCHEDULES", default_value_t = crate::schedule::router::DEFAULT_MAX_AGENT_SCHEDULES)]
    pub max_agent_schedules: usize,
    /// Reconciles one controller runs at the same time (each object is still reconciled by
    /// one at a time). Bounds the work in flight — and the memory it holds — when thousands
    /// of runs arrive at once; the API server serves no more at once over the one
    /// connection anyway.
    #[arg(long, env = "SYMPOZIUM_MAX_CONCURRENT_RECONCILES", default_value_t = crate::settings::DEFAULT_MAX_CONCURRENT_RECONCILES, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_reconciles: u16,
    /// Image of small helper containers (post-run hooks' `done`).
    #[arg(long, env = "SYMPOZIUM_BUSYBOX_IMAGE", default_value = "busybox:1.36")]
    pub busybox_image: String,
    /// Discovery attempts per MCP server in a run's pod before the server is skipped.
    #[arg(long, env = "SYMPOZIUM_MCP_DISCOVERY_ATTEMPTS", default_value_t = 6)]
    pub mcp_discovery_attempts: u32,
    /// Seconds between two MCP discovery attempts.
    #[arg(long, env = "SYMPOZIUM_MCP_DISCOVERY_INTERVAL", default_value_t = 10)]
    pub mcp_discovery_interval_secs: u64,
    /// NATS URL of the event bus; the routers (agent-managed schedules, …) run only when
    /// set.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,
    /// Public key of the NATS account every bus user belongs to (operator mode, as
    /// installed: the `account` key of the `sympozium-nats` Secret).
    #[arg(long, env = "SYMPOZIUM_NATS_ACCOUNT")]
    pub nats_account: Option<String>,
    /// Seed of the account's signing key: the controller mints a NATS user per instance's
    /// channel pods and per run with it (into their `-bus` Secrets), and its own.
    #[arg(long, env = "SYMPOZIUM_NATS_SIGNING_SEED", hide_env_values = true)]
    pub nats_signing_seed: Option<String>,
    /// Master key of message origins: each channel and run gets a key derived from it, and
    /// the routers accept only messages whose origin matches what they claim.
    #[arg(long, env = "SYMPOZIUM_ORIGIN_MASTER_KEY", hide_env_values = true)]
    pub origin_master_key: Option<String>,
    /// Identity in the leader Lease and in Events (defaults to the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

impl Config {
    /// The settings controllers build pods from.
    pub fn settings(&self) -> Settings {
        Settings {
            image_registry: self.image_registry.clone(),
            image_tag: self.image_tag.clone(),
            system_namespace: self.system_namespace.clone(),
            event_bus_url: self.event_bus_url.clone(),
            otlp_endpoint: self.otlp_endpoint.clone(),
            max_run_history: self.max_run_history,
            memory_url_template: self.memory_url_template.clone(),
            busybox_image: self.busybox_image.clone(),
            bus_auth: self.bus_auth().ok().flatten(),
            mcp_discovery_attempts: self.mcp_discovery_attempts.max(1),
            mcp_discovery_interval: std::time::Duration::from_secs(self.mcp_discovery_interval_secs),
            max_agent_schedules: self.max_agent_schedules,
            max_concurrent_reconciles: self.max_concurrent_reconciles,
        }
    }

    /// Credentials for the pods' bus connections, when NATS runs in operator mode: `None`
    /// when not configured, an error when configured with keys that do not decode.
    pub fn bus_auth(&self) -> Result<Option<BusAuth>, BusAuthError> {
        let nonempty =
            |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        let (Some(account), Some(seed), Some(master_key)) = (
            nonempty(&self.nats_account),
            nonempty(&self.nats_signing_seed),
            nonempty(&self.origin_master_key),
        ) else {
            return Ok(None);
        };
        let issuer =
            sympozium_bus::jwt::Issuer::from_seed(&account, &seed).map_err(BusAuthError::SigningKey)?;
        Ok(Some(BusAuth { issuer: std::sync::Arc::new(issuer), master_key }))
    }

    /// How the controller itself connects to the bus: as its own NATS user, minted with the
    /// signing key, when NATS runs in operator mode.
    pub fn bus_options(&self) -> Result<sympozium_bus::BusOptions, BusAuthError> {
        let auth = self.bus_auth()?;
        let user = match &auth {
            Some(auth) => Some(
                auth.issuer
                    .mint(&sympozium_bus::scope::Identity::Controller, None)
                    .map_err(BusAuthError::Mint)?,
            ),
            None => None,
        };
        let master_key =
            self.origin_master_key.as_deref().map(str::trim).filter(|k| !k.is_empty()).map(str::to_string);
        Ok(sympozium_bus::BusOptions {
            user,
            verifier: master_key.map(sympozium_bus::origin::Verifier::new),
            ..Default::default()
        })
    }
}
