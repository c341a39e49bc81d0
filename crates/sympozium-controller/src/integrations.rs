//! Optional integrations, found once at start from the API server's discovery and logged,
//! so an operator reading the controller's first lines knows which features can work:
//! agent-sandbox (sandboxed runs and warm pools), the Gateway API (web endpoints behind the
//! shared gateway) and cert-manager (certificates for the gateway and the webhook).

use kube::Client;

/// API group of the agent-sandbox `Sandbox` kind.
pub const AGENT_SANDBOX_GROUP: &str = "agents.x-k8s.io";
/// API group of the agent-sandbox templates, claims and warm pools.
pub const AGENT_SANDBOX_EXTENSIONS_GROUP: &str = "extensions.agents.x-k8s.io";
/// API group of the Gateway API.
pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";
/// API group of cert-manager.
pub const CERT_MANAGER_GROUP: &str = "cert-manager.io";

/// Which optional APIs the cluster serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Integrations {
    /// agent-sandbox CRDs (`agents.x-k8s.io`).
    pub agent_sandbox: bool,
    /// agent-sandbox extension CRDs (`extensions.agents.x-k8s.io`: warm pools, claims).
    pub agent_sandbox_extensions: bool,
    /// Gateway API CRDs (`gateway.networking.k8s.io`).
    pub gateway_api: bool,
    /// cert-manager CRDs (`cert-manager.io`).
    pub cert_manager: bool,
}

impl Integrations {
    /// Which of the optional groups are among `groups`.
    pub fn from_groups<'a>(groups: impl IntoIterator<Item = &'a str>) -> Self {
        let mut found = Self::default();
        for g in groups {
            match g {
                AGENT_SANDBOX_GROUP => found.agent_sandbox = true,
                AGENT_SANDBOX_EXTENSIONS_GROUP => found.agent_sandbox_extensions = true,
                GATEWAY_API_GROUP => found.gateway_api = true,
                CERT_MANAGER_GROUP => found.cert_manager = true,
                _ => {}
            }
        }
        found
    }
}

/// Asks the API server which groups it serves; `None` (and a warning) when it does not answer.
pub async fn detect(client: &Client) -> Option<Integrations> {
    match client.list_api_groups().await {
        Ok(list) => Some(Integrations::from_groups(list.groups.iter().map(|g| g.name.as_str()))),
        Err(e) => {
            tracing::warn!(error = %e, "could not list the cluster's API groups; optional integrations unknown");
            None
        }
    }
}

/// Logs what was found, one line, at info.
pub fn log(found: &Integrations, agent_sandbox_mode: bool) {
    tracing::info!(
        agent_sandbox_crds = found.agent_sandbox,
        agent_sandbox_extensions = found.agent_sandbox_extensions,
        gateway_api = found.gateway_api,
        cert_manager = found.cert_manager,
        agent_sandbox_mode,
        "optional integrations detected"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_map_to_integrations() {
        let found = Integrations::from_groups([
            "apps",
            "cert-manager.io",
            "agents.x-k8s.io",
            "gateway.networking.k8s.io",
        ]);
        assert_eq!(
            found,
            Integrations {
                agent_sandbox: true,
                agent_sandbox_extensions: false,
                gateway_api: true,
                cert_manager: true
            }
        );
        assert_eq!(Integrations::from_groups(["apps", "batch"]), Integrations::default());
    }
}
