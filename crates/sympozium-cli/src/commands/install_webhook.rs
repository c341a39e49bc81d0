//! The admission webhook part of `install --webhook`: its serving certificate (generated once,
//! kept across upgrades), RBAC, Deployment and Service, and — only once a replica serves —
//! the ValidatingWebhookConfiguration, so admission never points at a webhook that is not up.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde_json::{Value, json};

use super::install::Target;

/// Name of the webhook's Deployment, Service, ServiceAccount and certificate Secret prefix.
pub const NAME: &str = "sympozium-webhook";
const CERT_SECRET: &str = "sympozium-webhook-cert";

/// The serving certificate: CA, certificate and key, PEM.
#[derive(Clone, Debug, PartialEq)]
pub struct Certificate {
    /// The CA (the configuration's `caBundle`).
    pub ca: String,
    /// The serving certificate.
    pub cert: String,
    /// Its key.
    pub key: String,
}

fn text(data: &BTreeMap<String, ByteString>, key: &str) -> Option<String> {
    data.get(key).and_then(|b| String::from_utf8(b.0.clone()).ok()).filter(|s| !s.trim().is_empty())
}

/// The certificate already stored in the namespace, or a new one for the Service's DNS names.
pub async fn certificate(client: &Client, ns: &str) -> anyhow::Result<Certificate> {
    let existing = Api::<Secret>::namespaced(client.clone(), ns).get_opt(CERT_SECRET).await?;
    if let Some(data) = existing.and_then(|s| s.data)
        && let (Some(ca), Some(cert), Some(key)) =
            (text(&data, "ca.crt"), text(&data, "tls.crt"), text(&data, "tls.key"))
    {
        return Ok(Certificate { ca, cert, key });
    }
    let hosts = vec![format!("{NAME}.{ns}.svc"), format!("{NAME}.{ns}.svc.cluster.local")];
    let generated = sympozium_webhook::tls::generate(&hosts)
        .map_err(|e| anyhow::anyhow!("generating the webhook's certificate: {e}"))?;
    Ok(Certificate { ca: generated.ca_pem, cert: generated.cert_pem, key: generated.key_pem })
}

fn labels() -> Value {
    json!({"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "sympozium", "app.kubernetes.io/managed-by": "sympozium"})
}

/// Everything but the configuration: RBAC, the certificate Secret, the Deployment and Service.
pub fn objects(t: &Target, certificate: &Certificate) -> Vec<Value> {
    let ns = &t.namespace;
    let image = format!("{}/webhook:{}", t.registry.trim_end_matches('/'), t.tag);
    let certs = "/tmp/k8s-webhook-server/serving-certs";
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, "namespace": ns, "labels": labels()}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": NAME, "labels": labels()},
            "rules": [{"apiGroups": ["sympozium.ai"], "resources": ["sympoziuminstances", "sympoziumpolicies", "skillpacks"], "verbs": ["get"]},
                      {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": NAME, "labels": labels()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}]}),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": CERT_SECRET, "namespace": ns, "labels": labels()},
            "stringData": {"ca.crt": certificate.ca, "tls.crt": certificate.cert, "tls.key": certificate.key}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels()},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
                "template": {"metadata": {"labels": labels()},
                    "spec": {"serviceAccountName": NAME,
                        "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{"name": "webhook", "image": image,
                            "args": ["--bind=0.0.0.0:9443", format!("--cert-file={certs}/tls.crt"),
                                     format!("--key-file={certs}/tls.key"), format!("--system-namespace={ns}")],
                            "ports": [{"name": "https", "containerPort": 9443}],
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "https", "scheme": "HTTPS"}},
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "https", "scheme": "HTTPS"}},
                            "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
                            "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                                                "capabilities": {"drop": ["ALL"]}},
                            "volumeMounts": [{"name": "cert", "mountPath": certs, "readOnly": true}]}],
                        "volumes": [{"name": "cert", "secret": {"secretName": CERT_SECRET}}]}}}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME, "namespace": ns, "labels": labels()},
            "spec": {"selector": {"app.kubernetes.io/name": NAME},
                     "ports": [{"name": "https", "port": 443, "targetPort": "https"}]}}),
    ]
}

/// The configuration: AgentRuns are refused when the webhook cannot answer (`Fail`), instance
/// and pack reviews only warn (`Ignore`).
pub fn configuration(t: &Target, certificate: &Certificate) -> Value {
    use base64::Engine as _;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(certificate.ca.as_bytes());
    let hook = |name: &str, path: &str, resource: &str, failure: &str, timeout: u32| {
        json!({"name": name,
               "clientConfig": {"service": {"name": NAME, "namespace": t.namespace, "path": path}, "caBundle": ca_bundle},
               "rules": [{"apiGroups": ["sympozium.ai"], "apiVersions": ["v1alpha1"],
                          "operations": ["CREATE", "UPDATE"], "resources": [resource]}],
               "failurePolicy": failure, "sideEffects": "None", "admissionReviewVersions": ["v1"],
               "timeoutSeconds": timeout})
    };
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": NAME, "labels": labels()},
        "webhooks": [hook("vagentpod.sympozium.ai", "/validate-agent-pods", "agentruns", "Fail", 10),
                     hook("vinstance.sympozium.ai", "/validate-instances", "sympoziuminstances", "Ignore", 5),
                     hook("vpersonapack.sympozium.ai", "/validate-personapacks", "personapacks", "Ignore", 5)]})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_configuration_trusts_the_generated_ca_and_points_at_the_service() {
        let t = Target {
            namespace: "sym".into(),
            registry: "r.local/s/".into(),
            tag: "v2".into(),
            wait: Duration::ZERO,
            webhook: true,
        };
        let g = sympozium_webhook::tls::generate(&["sympozium-webhook.sym.svc".into()]).unwrap();
        let c = Certificate { ca: g.ca_pem, cert: g.cert_pem, key: g.key_pem };
        let config = configuration(&t, &c);
        let runs = &config["webhooks"][0];
        assert_eq!(runs["failurePolicy"], "Fail");
        assert_eq!(
            runs["clientConfig"]["service"],
            json!({"name": NAME, "namespace": "sym", "path": "/validate-agent-pods"})
        );
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD
            .decode(runs["clientConfig"]["caBundle"].as_str().unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(ca).unwrap(), c.ca);
        let objects = objects(&t, &c);
        let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "r.local/s/webhook:v2");
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        let secret = objects.iter().find(|o| o["kind"] == "Secret").unwrap();
        assert_eq!(secret["stringData"]["tls.key"], c.key.as_str());
    }
}
