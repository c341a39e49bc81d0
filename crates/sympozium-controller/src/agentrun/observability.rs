//! The OpenTelemetry environment of an agent pod's `agent` and `ipc-bridge` containers when
//! the instance turns observability on: endpoint, protocol, service name and resource
//! attributes, plus what the original declared but never passed on — the
//! instance's OTLP headers and its sampling ratio.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, SecretEnvSource};
use kube::ResourceExt;
use sympozium_api::{AgentRun, SympoziumInstance};

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
}

/// `k=v` pairs sorted by key, comma-joined, pairs with an empty key or value left out.
fn joined(pairs: &BTreeMap<String, String>) -> String {
    pairs
        .iter()
        .filter(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty())
        .map(|(k, v)| format!("{}={}", k.trim(), v.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Prefix under which the keys of `observability.headersSecretRef` become variables; the
/// shared telemetry init turns `SYMPOZIUM_OTEL_HEADER_<name>` into the export header
/// `<name>`. The values stay in the Secret: the pod spec only names it.
pub const HEADER_PREFIX: &str = "SYMPOZIUM_OTEL_HEADER_";

/// The `envFrom` entry mounting `headersSecretRef` (optional: a missing Secret costs the
/// headers, not the run), when observability is on and a Secret is named.
pub fn headers_env_from(instance: Option<&SympoziumInstance>) -> Option<EnvFromSource> {
    let o = instance.and_then(|i| i.spec.observability.as_ref()).filter(|o| o.enabled)?;
    let secret = o.headers_secret_ref.as_deref().map(str::trim).filter(|s| !s.is_empty())?;
    Some(EnvFromSource {
        prefix: Some(HEADER_PREFIX.into()),
        secret_ref: Some(SecretEnvSource { name: secret.into(), optional: Some(true) }),
        ..Default::default()
    })
}

/// The variables, empty unless `instance.spec.observability.enabled`.
pub fn env_vars(run: &AgentRun, instance: Option<&SympoziumInstance>) -> Vec<EnvVar> {
    let Some(o) = instance.and_then(|i| i.spec.observability.as_ref()).filter(|o| o.enabled) else {
        return Vec::new();
    };
    let mut vars = vec![env("SYMPOZIUM_OTEL_ENABLED", "true")];
    let both = |vars: &mut Vec<EnvVar>, ours: &str, otel: &str, value: &str| {
        vars.push(env(ours, value));
        vars.push(env(otel, value));
    };
    if let Some(endpoint) = o.otlp_endpoint.as_deref().filter(|e| !e.is_empty()) {
        both(&mut vars, "SYMPOZIUM_OTEL_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
    }
    if let Some(protocol) = o.otlp_protocol.and_then(|p| serde_json::to_value(p).ok()) {
        let protocol = protocol.as_str().unwrap_or_default().to_string();
        both(&mut vars, "SYMPOZIUM_OTEL_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL", &protocol);
    }
    if let Some(name) = o.service_name.as_deref().filter(|n| !n.is_empty()) {
        both(&mut vars, "SYMPOZIUM_OTEL_SERVICE_NAME", "OTEL_SERVICE_NAME", name);
    }
    let mut attributes = BTreeMap::from([
        ("sympozium.instance.name".to_string(), run.spec.instance_ref.clone()),
        ("sympozium.agent_run.id".to_string(), run.name_any()),
        ("k8s.namespace.name".to_string(), run.namespace().unwrap_or_default()),
    ]);
    // The user's attributes win over ours.
    attributes.extend(o.resource_attributes.clone().unwrap_or_default());
    let attributes = joined(&attributes);
    both(&mut vars, "SYMPOZIUM_OTEL_RESOURCE_ATTRIBUTES", "OTEL_RESOURCE_ATTRIBUTES", &attributes);
    if let Some(headers) = o.headers.as_ref().map(joined).filter(|h| !h.is_empty()) {
        vars.push(env("OTEL_EXPORTER_OTLP_HEADERS", headers));
    }
    if let Some(ratio) = o.sampling_ratio.as_deref().filter(|r| !r.is_empty()) {
        vars.push(env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"));
        vars.push(env("OTEL_TRACES_SAMPLER_ARG", ratio));
    }
    vars
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn instance(observability: serde_json::Value) -> SympoziumInstance {
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
            "metadata": {"name": "agent", "namespace": "team"},
            "spec": {"agents": {"default": {"model": "m"}}, "observability": observability}}))
        .unwrap()
    }

    fn run() -> AgentRun {
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
            "metadata": {"name": "r1", "namespace": "team"},
            "spec": {"instanceRef": "agent", "agentId": "a", "sessionKey": "", "task": "t",
                     "model": {"provider": "openai", "model": "m", "authSecretRef": ""}}}))
        .unwrap()
    }

    fn get<'a>(vars: &'a [EnvVar], name: &str) -> Option<&'a str> {
        vars.iter().find(|v| v.name == name).and_then(|v| v.value.as_deref())
    }

    #[test]
    fn nothing_unless_enabled() {
        assert!(env_vars(&run(), None).is_empty());
        let off = instance(json!({"enabled": false, "otlpEndpoint": "c:4317"}));
        assert!(env_vars(&run(), Some(&off)).is_empty());
    }

    #[test]
    fn endpoint_protocol_name_attributes_headers_and_sampling() {
        let inst = instance(json!({"enabled": true, "otlpEndpoint": "otel-collector.observability.svc:4317",
            "otlpProtocol": "http/protobuf", "serviceName": "triage",
            "resourceAttributes": {"team": "sre", "k8s.namespace.name": "override", "": "x", "empty": ""},
            "headers": {"x-tenant": "acme"}, "samplingRatio": "0.25"}));
        let vars = env_vars(&run(), Some(&inst));
        assert_eq!(get(&vars, "SYMPOZIUM_OTEL_ENABLED"), Some("true"));
        for name in ["SYMPOZIUM_OTEL_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"] {
            assert_eq!(get(&vars, name), Some("otel-collector.observability.svc:4317"));
        }
        assert_eq!(get(&vars, "OTEL_EXPORTER_OTLP_PROTOCOL"), Some("http/protobuf"));
        assert_eq!(get(&vars, "OTEL_SERVICE_NAME"), Some("triage"));
        let attributes =
            "k8s.namespace.name=override,sympozium.agent_run.id=r1,sympozium.instance.name=agent,team=sre";
        assert_eq!(
            get(&vars, "OTEL_RESOURCE_ATTRIBUTES"),
            Some(attributes),
            "sorted, the user's win, empties dropped"
        );
        assert_eq!(get(&vars, "SYMPOZIUM_OTEL_RESOURCE_ATTRIBUTES"), Some(attributes));
        assert_eq!(get(&vars, "OTEL_EXPORTER_OTLP_HEADERS"), Some("x-tenant=acme"));
        assert_eq!(get(&vars, "OTEL_TRACES_SAMPLER_ARG"), Some("0.25"));
    }

    #[test]
    fn headers_secret_is_referenced_never_copied() {
        let inst =
            instance(json!({"enabled": true, "otlpEndpoint": "c:4317", "headersSecretRef": "otel-auth"}));
        let from = headers_env_from(Some(&inst)).unwrap();
        assert_eq!(from.prefix.as_deref(), Some(HEADER_PREFIX));
        assert_eq!(from.secret_ref.as_ref().map(|s| s.name.as_str()), Some("otel-auth"));
        assert!(env_vars(&run(), Some(&inst)).iter().all(|v| !v.name.starts_with(HEADER_PREFIX)));
        let off = instance(json!({"enabled": false, "headersSecretRef": "otel-auth"}));
        assert!(headers_env_from(Some(&off)).is_none());
    }
}
