//! Settings every controller shares: where images come from, the system namespace and the
//! addresses built into the pods the controllers create.

/// Deployment-wide settings (from the controller manager's flags).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Registry (and path) of every Sympozium image, e.g. `ghcr.io/sympozium-ai/sympozium`.
    pub image_registry: String,
    /// Tag of every Sympozium image.
    pub image_tag: String,
    /// Namespace Sympozium itself runs in (NATS, built-in skills and policies).
    pub system_namespace: String,
    /// NATS URL handed to pods; derived from the system namespace when unset.
    pub event_bus_url: Option<String>,
    /// The controller's own OTLP endpoint, the default for pods whose instance sets none.
    pub otlp_endpoint: String,
    /// Finished AgentRuns kept per instance; older ones are deleted.
    pub max_run_history: usize,
    /// Memory server address of an instance; `{instance}` and `{namespace}` are filled in.
    /// A controller outside the cluster (development) points this at a port-forward.
    pub memory_url_template: String,
    /// Image of the small helper containers (post-run `done`).
    pub busybox_image: String,
    /// Bus credentials for the pods the controllers create; `None` when NATS runs without
    /// authorization (tests, hand-run development setups).
    pub bus_auth: Option<BusAuth>,
    /// Discovery attempts of a run's MCP bridge per server (`MCP_DISCOVERY_ATTEMPTS`).
    pub mcp_discovery_attempts: u32,
    /// Pause between two discovery attempts of the bridge (`MCP_DISCOVERY_INTERVAL_MS`).
    pub mcp_discovery_interval: std::time::Duration,
    /// Agent-managed schedules one instance may hold (`--max-agent-schedules`).
    pub max_agent_schedules: usize,
    /// Reconciles one controller runs at once (`--max-concurrent-reconciles`).
    pub max_concurrent_reconciles: u16,
}

/// Reconciles one controller runs at once unless told otherwise: enough that a burst of
/// runs starts in parallel, few enough that ten thousand queued runs do not each hold a
/// reconcile's memory at the same time.
pub const DEFAULT_MAX_CONCURRENT_RECONCILES: u16 = 64;

/// What the controller hands to pods so they can use an authenticated bus.
#[derive(Clone)]
pub struct BusAuth {
    /// Mints the NATS users of channel pods and runs (into their `-bus` Secrets).
    pub issuer: std::sync::Arc<sympozium_bus::jwt::Issuer>,
    /// Master key the per-instance and per-run origin keys derive from.
    pub master_key: String,
}

impl std::fmt::Debug for BusAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BusAuth(<redacted>)")
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            image_registry: "ghcr.io/sympozium-ai/sympozium".into(),
            image_tag: "latest".into(),
            system_namespace: "sympozium-system".into(),
            event_bus_url: None,
            otlp_endpoint: String::new(),
            max_run_history: 50,
            memory_url_template: "http://{instance}-memory.{namespace}.svc:8080".into(),
            busybox_image: "busybox:1.36".into(),
            bus_auth: None,
            mcp_discovery_attempts: 6,
            mcp_discovery_interval: std::time::Duration::from_secs(10),
            max_agent_schedules: crate::schedule::router::DEFAULT_MAX_AGENT_SCHEDULES,
            max_concurrent_reconciles: DEFAULT_MAX_CONCURRENT_RECONCILES,
        }
    }
}

impl Settings {
    /// Full reference of the Sympozium image `name`.
    pub fn image(&self, name: &str) -> String {
        format!("{}/{}:{}", self.image_registry.trim_end_matches('/'), name, self.image_tag)
    }

    /// The memory server URL of `instance` in `namespace`.
    pub fn memory_url(&self, instance: &str, namespace: &str) -> String {
        self.memory_url_template.replace("{instance}", instance).replace("{namespace}", namespace)
    }

    /// The NATS URL pods connect to.
    pub fn event_bus_url(&self) -> String {
        self.event_bus_url
            .clone()
            .unwrap_or_else(|| format!("nats://nats.{}.svc:4222", self.system_namespace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_registry_and_tag_for_every_image_and_a_configurable_system_namespace() {
        let s = Settings {
            image_registry: "registry.local/sym/".into(),
            image_tag: "v1".into(),
            system_namespace: "agents".into(),
            ..Default::default()
        };
        assert_eq!(s.image("channel-slack"), "registry.local/sym/channel-slack:v1");
        assert_eq!(s.event_bus_url(), "nats://nats.agents.svc:4222");
    }
}
