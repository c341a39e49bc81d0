//! Typed telemetry settings, flattened into each binary's clap configuration.

use std::collections::BTreeMap;
use std::time::Duration;

/// OTLP export headers by name.
pub(crate) type Headers = BTreeMap<String, String>;

/// Why a telemetry setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting had a value that cannot be used.
    #[error("{field}: {reason}")]
    Invalid {
        /// The setting (environment variable) at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// OTLP transports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (port 4317 by convention).
    #[default]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318 by convention).
    HttpProtobuf,
}

/// An OTLP protocol name that is not supported.
#[derive(Debug, thiserror::Error)]
#[error("unsupported OTLP protocol {0:?}: use \"grpc\" or \"http/protobuf\"")]
pub struct UnsupportedProtocol(String);

impl std::str::FromStr for Protocol {
    type Err = UnsupportedProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "" | "grpc" => Ok(Self::Grpc),
            "http/protobuf" | "http" => Ok(Self::HttpProtobuf),
            other => Err(UnsupportedProtocol(other.to_string())),
        }
    }
}

/// Telemetry settings shared by every binary (`#[command(flatten)]`).
///
/// The variables are the OpenTelemetry ones, so a pod configured for any OTel SDK works.
#[derive(Clone, Debug, clap::Args)]
pub struct TelemetryArgs {
    /// OTLP collector endpoint (`host:port` or an `http://` URL); empty turns export off.
    #[arg(long = "otel-endpoint", env = "OTEL_EXPORTER_OTLP_ENDPOINT", default_value = "")]
    pub otel_endpoint: String,
    /// OTLP transport: `grpc` or `http/protobuf`.
    #[arg(long = "otel-protocol", env = "OTEL_EXPORTER_OTLP_PROTOCOL", default_value = "grpc")]
    pub otel_protocol: Protocol,
    /// `service.name` of the exported telemetry (defaults to the binary's name).
    #[arg(long = "otel-service-name", env = "OTEL_SERVICE_NAME", default_value = "")]
    pub otel_service_name: String,
    /// Extra resource attributes, `k=v` pairs separated by commas.
    #[arg(long = "otel-resource-attributes", env = "OTEL_RESOURCE_ATTRIBUTES", default_value = "")]
    pub otel_resource_attributes: String,
    /// Headers sent with every export, `k=v` pairs separated by commas (values never logged).
    #[arg(
        long = "otel-headers",
        env = "OTEL_EXPORTER_OTLP_HEADERS",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub otel_headers: String,
    /// Fraction of new traces sampled, 0.0 to 1.0 (a sampled parent is always followed).
    #[arg(long = "otel-sampling-ratio", env = "OTEL_TRACES_SAMPLER_ARG", default_value = "1.0", value_parser = parse_ratio)]
    pub otel_sampling_ratio: f64,
    /// How often batches of spans, logs and metrics are sent (`500ms`, `5s`, `1m`).
    #[arg(long = "otel-batch-timeout", env = "SYMPOZIUM_OTEL_BATCH_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub otel_batch_timeout: Duration,
    /// `k8s.namespace.name` resource attribute.
    #[arg(long = "otel-namespace", env = "NAMESPACE", default_value = "")]
    pub otel_namespace: String,
    /// `k8s.pod.name` resource attribute.
    #[arg(long = "otel-pod-name", env = "POD_NAME", default_value = "")]
    pub otel_pod_name: String,
    /// `k8s.node.name` resource attribute.
    #[arg(long = "otel-node-name", env = "NODE_NAME", default_value = "")]
    pub otel_node_name: String,
    /// `sympozium.instance` resource attribute.
    #[arg(long = "otel-instance", env = "INSTANCE_NAME", default_value = "")]
    pub otel_instance: String,
    /// Log filter in `RUST_LOG` syntax.
    #[arg(
        long = "log-filter",
        env = "RUST_LOG",
        default_value = "info,kube=warn,tower=warn,h2=warn,hyper=warn"
    )]
    pub log_filter: String,
    /// Headers from the instance's `headersSecretRef`, collected by `main` from the
    /// `SYMPOZIUM_OTEL_HEADER_<name>` variables the Secret is mounted as.
    #[arg(skip)]
    pub secret_headers: BTreeMap<String, String>,
}

impl Default for TelemetryArgs {
    fn default() -> Self {
        Self {
            otel_endpoint: String::new(),
            otel_protocol: Protocol::Grpc,
            otel_service_name: String::new(),
            otel_resource_attributes: String::new(),
            otel_headers: String::new(),
            otel_sampling_ratio: 1.0,
            otel_batch_timeout: Duration::from_secs(5),
            otel_namespace: String::new(),
            otel_pod_name: String::new(),
            otel_node_name: String::new(),
            otel_instance: String::new(),
            log_filter: "info,kube=warn,tower=warn,h2=warn,hyper=warn".into(),
            secret_headers: BTreeMap::new(),
        }
    }
}

/// Prefix of the variables a `headersSecretRef` Secret is mounted as (`envFrom` prefix).
pub const SECRET_HEADER_PREFIX: &str = "SYMPOZIUM_OTEL_HEADER_";

impl TelemetryArgs {
    /// Adds the headers found among `vars` under [`SECRET_HEADER_PREFIX`] (call from `main`
    /// with the process environment).
    pub fn with_secret_headers(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        for (k, v) in vars {
            if let Some(name) = k.strip_prefix(SECRET_HEADER_PREFIX).filter(|n| !n.is_empty()) {
                self.secret_headers.insert(name.to_ascii_lowercase(), v);
            }
        }
        self
    }

    /// The collector endpoint with a scheme, or `None` when export is off.
    pub(crate) fn endpoint_url(&self) -> Option<String> {
        let e = self.otel_endpoint.trim().trim_end_matches('/');
        if e.is_empty() {
            return None;
        }
        Some(if e.contains("://") { e.to_string() } else { format!("http://{e}") })
    }

    /// Export headers: the `OTEL_EXPORTER_OTLP_HEADERS` pairs, then the Secret's (which win).
    pub(crate) fn headers(&self) -> Result<Headers, ConfigError> {
        let mut out = BTreeMap::new();
        for pair in self.otel_headers.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                // The value may be a secret: name the position, not the text.
                return Err(ConfigError::Invalid {
                    field: "OTEL_EXPORTER_OTLP_HEADERS",
                    reason: "every entry must be key=value".into(),
                });
            };
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        out.extend(self.secret_headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(out)
    }

    /// `OTEL_RESOURCE_ATTRIBUTES` as pairs, empty keys or values left out.
    pub(crate) fn resource_attributes(&self) -> Vec<(String, String)> {
        self.otel_resource_attributes
            .split(',')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .collect()
    }
}

/// A sampling ratio that is not a number in 0.0..=1.0.
#[derive(Debug, thiserror::Error)]
enum RatioError {
    #[error("{0:?} is not a number")]
    NotANumber(String, #[source] std::num::ParseFloatError),
    #[error("{0} is outside 0.0..=1.0")]
    OutOfRange(String),
}

fn parse_ratio(s: &str) -> Result<f64, RatioError> {
    let r: f64 = s.trim().parse().map_err(|e| RatioError::NotANumber(s.to_string(), e))?;
    if (0.0..=1.0).contains(&r) { Ok(r) } else { Err(RatioError::OutOfRange(s.to_string())) }
}

/// A duration like `500ms`, `5s`, `2m`, or plain milliseconds (OpenTelemetry's unit for
/// its batch settings); zero is refused.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, sympozium_protocol::duration::DurationError> {
    use sympozium_protocol::duration::{BareUnit, parse_positive};
    parse_positive(s, BareUnit::Milliseconds)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        t: TelemetryArgs,
    }

    #[test]
    fn endpoint_gets_a_scheme_and_empty_means_off() {
        let mut a = TelemetryArgs::default();
        assert_eq!(a.endpoint_url(), None);
        a.otel_endpoint = "collector.obs.svc:4317".into();
        assert_eq!(a.endpoint_url().as_deref(), Some("http://collector.obs.svc:4317"));
        a.otel_endpoint = "https://c:4318/".into();
        assert_eq!(a.endpoint_url().as_deref(), Some("https://c:4318"));
    }

    #[test]
    fn headers_merge_env_and_secret_and_errors_hide_values() {
        let a = TelemetryArgs { otel_headers: "X-Tenant=acme, a=b".into(), ..Default::default() }
            .with_secret_headers([
                ("SYMPOZIUM_OTEL_HEADER_Authorization".to_string(), "Bearer s3cret".to_string()),
                ("PATH".to_string(), "/bin".to_string()),
            ]);
        let h = a.headers().unwrap();
        assert_eq!(h.get("x-tenant").map(String::as_str), Some("acme"));
        assert_eq!(h.get("authorization").map(String::as_str), Some("Bearer s3cret"));
        assert_eq!(h.len(), 3);
        let bad = TelemetryArgs { otel_headers: "tokens3cret".into(), ..Default::default() };
        let err = bad.headers().unwrap_err().to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_HEADERS") && !err.contains("s3cret"), "{err}");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = Cli::try_parse_from(["x", "--otel-sampling-ratio", "1.5"]).err().unwrap().to_string();
        assert!(err.contains("otel-sampling-ratio") && err.contains("outside"), "{err}");
        let err = Cli::try_parse_from(["x", "--otel-protocol", "thrift"]).err().unwrap().to_string();
        assert!(err.contains("otel-protocol") && err.contains("http/protobuf"), "{err}");
        let err = Cli::try_parse_from(["x", "--otel-batch-timeout", "soon"]).err().unwrap().to_string();
        assert!(err.contains("otel-batch-timeout"), "{err}");
        let ok =
            Cli::try_parse_from(["x", "--otel-batch-timeout", "250ms", "--otel-protocol", "http/protobuf"])
                .unwrap();
        assert_eq!(ok.t.otel_batch_timeout, Duration::from_millis(250));
        assert_eq!(ok.t.otel_protocol, Protocol::HttpProtobuf);
    }

    #[test]
    fn resource_attributes_drop_empties() {
        let a = TelemetryArgs { otel_resource_attributes: "a=1, =x,b=,c=3".into(), ..Default::default() };
        assert_eq!(a.resource_attributes(), vec![("a".into(), "1".into()), ("c".into(), "3".into())]);
    }
}
