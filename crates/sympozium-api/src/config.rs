//! `SympoziumConfig`: the platform singleton (only `default` is read), currently the
//! shared Gateway for web endpoints.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a SympoziumConfig.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "sympozium.ai",
    version = "v1alpha1",
    kind = "SympoziumConfig",
    doc = "Platform-wide settings; only the object named default is read. Configures the shared Gateway for agent web endpoints.",
    category = "sympozium",
    plural = "sympoziumconfigs",
    namespaced,
    status = "SympoziumConfigStatus",
    printcolumn = r#"{"name":"Gateway","type":"boolean","jsonPath":".spec.gateway.enabled"}"#,
    printcolumn = r#"{"name":"Domain","type":"string","jsonPath":".spec.gateway.baseDomain"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SympoziumConfigSpec {
    /// The shared Gateway API gateway for web endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySpec>,
    /// Token prices for run cost (`status.cost` of AgentRuns, totals on instances); built-in
    /// defaults cover common hosted models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<crate::pricing::PricingSpec>,
}

/// Gateway settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!self.enabled || (has(self.baseDomain) && self.baseDomain != '')").message("baseDomain is required when the gateway is enabled"))]
pub struct GatewaySpec {
    /// Create the Gateway.
    #[serde(default)]
    pub enabled: bool,
    /// GatewayClass name.
    #[serde(default = "default_gateway_class")]
    pub gateway_class_name: String,
    /// Gateway name.
    #[serde(default = "default_gateway_name")]
    pub name: String,
    /// Base domain; endpoints get `<instance>.<baseDomain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_domain: Option<String>,
    /// TLS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<GatewayTls>,
}

impl Default for GatewaySpec {
    fn default() -> Self {
        Self {
            enabled: false,
            gateway_class_name: default_gateway_class(),
            name: default_gateway_name(),
            base_domain: None,
            tls: None,
        }
    }
}

fn default_gateway_class() -> String {
    "sympozium".into()
}
fn default_gateway_name() -> String {
    "sympozium-gateway".into()
}

/// Gateway TLS settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTls {
    /// Terminate TLS at the gateway.
    #[serde(default)]
    pub enabled: bool,
    /// cert-manager ClusterIssuer for the wildcard certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_manager_cluster_issuer: Option<String>,
    /// Secret holding the wildcard certificate.
    #[serde(default = "default_tls_secret")]
    pub secret_name: String,
}

impl Default for GatewayTls {
    fn default() -> Self {
        Self { enabled: false, cert_manager_cluster_issuer: None, secret_name: default_tls_secret() }
    }
}

fn default_tls_secret() -> String {
    "sympozium-wildcard-cert".into()
}

/// Observed state of a SympoziumConfig.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SympoziumConfigStatus {
    /// `Disabled`, `Pending`, `Ready` or `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Gateway state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayStatus>,
    /// Standard conditions (type `Ready`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Gateway state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// The Gateway is programmed.
    pub ready: bool,
    /// Its address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Number of listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_count: Option<i32>,
}
