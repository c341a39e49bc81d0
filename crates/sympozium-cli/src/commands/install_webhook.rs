//! The admission webhook part of `install --webhook`: its serving certificate (generated once,
//! kept across upgrades), RBAC, Deployment and Service, and — only once a replica serves —
//! the ValidatingWebhookConfiguration, so admission never points at a webhook that is not up.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde::Deserialize as _;
use serde_json::{Value, json};

use super::install::Target;

/// Name of the webhook's Deployment, Service, ServiceAccount and certificate Secret prefix.
pub const NAME: &str = "sympozium-webhook";
const CERT_SECRET: &str = "sympozium-webhook-cert";
/// The ClusterRole (aggregated into `edit` and `admin`) that lets namespace users use the
/// built-in skills (`bind` on those SkillPacks).
pub const BUILTIN_SKILLS_ROLE: &str = "sympozium-builtin-skills";

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

/// The webhook's manifest as shipped for cert-manager installs; `install` uses the same
/// objects with its own certificate instead of cert-manager's.
const MANIFEST: &str = include_str!("../../../../deploy/webhook/webhook.yaml");

/// The manifest's objects for `t`: namespace, image and system namespace set, cert-manager's
/// Issuer and Certificate left out.
fn manifest(t: &Target) -> anyhow::Result<Vec<Value>> {
    let ns = &t.namespace;
    let image = format!("{}/webhook:{}", t.registry.trim_end_matches('/'), t.tag);
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(MANIFEST) {
        let mut value = Value::deserialize(doc)?;
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        if value.is_null() || kind == "Issuer" || kind == "Certificate" {
            continue;
        }
        if value["metadata"]["namespace"].is_string() {
            value["metadata"]["namespace"] = json!(ns);
        }
        match kind.as_str() {
            "ClusterRoleBinding" => {
                for subject in value["subjects"].as_array_mut().into_iter().flatten() {
                    subject["namespace"] = json!(ns);
                }
            }
            "Deployment" => {
                for c in value["spec"]["template"]["spec"]["containers"].as_array_mut().into_iter().flatten()
                {
                    c["image"] = json!(image);
                    for arg in c["args"].as_array_mut().into_iter().flatten() {
                        if arg.as_str().is_some_and(|a| a.starts_with("--system-namespace=")) {
                            *arg = json!(format!("--system-namespace={ns}"));
                        }
                    }
                }
            }
            "ValidatingWebhookConfiguration" => {
                // The CA comes from `install`, not from cert-manager's injector.
                value["metadata"].as_object_mut().map(|m| m.remove("annotations"));
                for hook in value["webhooks"].as_array_mut().into_iter().flatten() {
                    hook["clientConfig"]["service"]["namespace"] = json!(ns);
                }
            }
            _ => {}
        }
        out.push(value);
    }
    Ok(out)
}

/// Everything but the configuration: RBAC, the certificate Secret, the Deployment, its
/// disruption budget and Service.
pub fn objects(t: &Target, certificate: &Certificate) -> anyhow::Result<Vec<Value>> {
    let mut objects: Vec<Value> =
        manifest(t)?.into_iter().filter(|o| o["kind"] != "ValidatingWebhookConfiguration").collect();
    objects.push(json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": CERT_SECRET, "namespace": t.namespace,
                     "labels": {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "sympozium"}},
        "stringData": {"ca.crt": certificate.ca, "tls.crt": certificate.cert, "tls.key": certificate.key}}));
    Ok(objects)
}

/// The configuration, trusting `certificate`'s CA: AgentRuns, instances, PersonaPacks and
/// SkillPacks are refused when the webhook cannot answer (`Fail`), since each review also
/// stops RBAC escalation through runs.
pub fn configuration(t: &Target, certificate: &Certificate) -> anyhow::Result<Value> {
    use base64::Engine as _;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(certificate.ca.as_bytes());
    let mut config =
        manifest(t)?.into_iter().find(|o| o["kind"] == "ValidatingWebhookConfiguration").ok_or_else(
            || anyhow::anyhow!("deploy/webhook/webhook.yaml has no ValidatingWebhookConfiguration"),
        )?;
    for hook in config["webhooks"].as_array_mut().into_iter().flatten() {
        hook["clientConfig"]["caBundle"] = json!(ca_bundle);
    }
    Ok(config)
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
        let config = configuration(&t, &c).unwrap();
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
        let objects = objects(&t, &c).unwrap();
        let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "r.local/s/webhook:v2");
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        let args = container["args"].as_array().unwrap();
        assert!(args.contains(&json!("--system-namespace=sym")), "{args:?}");
        let binding = objects.iter().find(|o| o["kind"] == "ClusterRoleBinding").unwrap();
        assert_eq!(binding["subjects"][0]["namespace"], "sym");
        assert!(objects.iter().all(|o| o["kind"] != "Certificate" && o["kind"] != "Issuer"));
        assert!(
            objects
                .iter()
                .filter(|o| o["metadata"]["namespace"].is_string())
                .all(|o| o["metadata"]["namespace"] == "sym")
        );
        assert!(config["metadata"]["annotations"].is_null(), "no cert-manager injection");
        let secret = objects.iter().find(|o| o["kind"] == "Secret").unwrap();
        assert_eq!(secret["stringData"]["tls.key"], c.key.as_str());
    }
}
