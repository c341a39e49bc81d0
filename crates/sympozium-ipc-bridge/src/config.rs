//! Configuration of the bridge (flags with environment fallbacks; parsed in `main.rs`).

use std::path::PathBuf;
use std::time::Duration;
use sympozium_protocol::env as vars;

use clap::Parser;

/// The IPC bridge: `/ipc` files <-> the event bus, for one agent run.
#[derive(Parser, Debug, Clone)]
#[command(name = "sympozium-ipc-bridge", version, about)]
pub struct Config {
    /// The directory shared with the agent container.
    #[arg(long, env = vars::IPC_PATH, default_value = sympozium_protocol::ipc::DEFAULT_ROOT)]
    pub ipc_path: PathBuf,
    /// The AgentRun this pod executes (required).
    #[arg(long, env = vars::AGENT_RUN_ID, default_value = "")]
    pub agent_run_id: String,
    /// The run's SympoziumInstance.
    #[arg(long, env = vars::INSTANCE_NAME, default_value = "")]
    pub instance_name: String,
    /// The run's namespace.
    #[arg(long, env = vars::AGENT_NAMESPACE, default_value = "")]
    pub namespace: String,
    /// NATS URL of the event bus.
    #[arg(long, env = vars::EVENT_BUS_URL, default_value = "nats://nats.sympozium-system.svc:4222")]
    pub event_bus_url: String,
    /// The run's user on the bus (`.creds` text from the run's `<run>-bus` Secret); unset for
    /// a NATS without authorization.
    #[arg(long, env = vars::NATS_CREDS, hide_env_values = true)]
    pub nats_creds: Option<String>,
    /// The run's origin key (same Secret): everything the bridge publishes is signed with it.
    #[arg(long, env = vars::SYMPOZIUM_ORIGIN_KEY, hide_env_values = true)]
    pub origin_key: Option<String>,
    /// Safety-net rescan of `/ipc` in case a file-system event is missed, in milliseconds.
    #[arg(long, env = "IPC_RESCAN_INTERVAL_MS", default_value_t = 2000)]
    pub rescan_interval_ms: u64,
    /// How long the bridge stays up after publishing the result, in milliseconds.
    #[arg(long, env = "IPC_EXIT_DELAY_MS", default_value_t = 2000)]
    pub exit_delay_ms: u64,
}

impl Config {
    /// A configuration for run `run` on `ipc_path` with the default timings.
    pub fn new(ipc_path: impl Into<PathBuf>, run: &str, event_bus_url: &str) -> Self {
        Self {
            ipc_path: ipc_path.into(),
            agent_run_id: run.into(),
            instance_name: String::new(),
            namespace: String::new(),
            event_bus_url: event_bus_url.into(),
            nats_creds: None,
            origin_key: None,
            rescan_interval_ms: 2000,
            exit_delay_ms: 2000,
        }
    }

    /// The run's identity on the bus (its own subjects and consumers).
    pub fn identity(&self) -> sympozium_bus::scope::Identity {
        let instance = Some(self.instance_name.clone()).filter(|i| !i.is_empty());
        sympozium_bus::scope::Identity::run(self.bus_namespace(), &self.agent_run_id, instance)
    }

    /// The namespace on the bus: a bridge not told its run's namespace serves a run in
    /// `default` (the controller always tells it).
    pub fn bus_namespace(&self) -> &str {
        if self.namespace.is_empty() { "default" } else { &self.namespace }
    }

    /// How the bridge connects: as the run's own NATS user (`NATS_CREDS`), signing as its run.
    pub fn bus_options(&self) -> Result<sympozium_bus::BusOptions, sympozium_bus::jwt::JwtError> {
        let set =
            |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        let user = match set(&self.nats_creds) {
            Some(text) => Some(sympozium_bus::jwt::UserCredentials::from_creds(&text)?),
            None => None,
        };
        Ok(sympozium_bus::BusOptions {
            identity: Some(self.identity()),
            user,
            origin: set(&self.origin_key).map(|key| {
                let identity = sympozium_bus::origin::run_identity(&self.namespace, &self.agent_run_id);
                sympozium_bus::origin::Origin::new(identity, key)
            }),
            ..Default::default()
        })
    }

    /// The safety-net rescan period.
    pub fn rescan_interval(&self) -> Duration {
        Duration::from_millis(self.rescan_interval_ms.max(50))
    }

    /// The delay between publishing the result and exiting.
    pub fn exit_delay(&self) -> Duration {
        Duration::from_millis(self.exit_delay_ms)
    }
}
