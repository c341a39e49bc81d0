//! The event bus part of `install`: NATS with authorization. One Secret (`sympozium-nats`,
//! generated once and kept across upgrades) holds a random password per bus role, the origin
//! master key and the rendered `nats.conf`; NATS reads its configuration from it, the
//! controller its own password, the other roles' passwords and the master key (all by
//! `secretKeyRef`). A NetworkPolicy lets only Sympozium's pods reach NATS.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sympozium_bus::auth::{self, Role, RoleUser};

use super::install::Target;

/// Name of the bus Secret in the system namespace.
pub const SECRET: &str = "sympozium-nats";
/// Key of the origin master key in [`SECRET`].
pub const MASTER_KEY: &str = "origin-master-key";
/// Key of the rendered configuration in [`SECRET`].
pub const CONFIG_KEY: &str = "nats.conf";
/// Where NATS finds its configuration.
const CONFIG_DIR: &str = "/nats-config";

/// The bus secrets of an installation.
#[derive(Clone)]
pub struct BusSecrets {
    /// Password per role.
    pub passwords: BTreeMap<Role, String>,
    /// Origin master key.
    pub master_key: String,
}

impl std::fmt::Debug for BusSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BusSecrets(<redacted>)")
    }
}

impl BusSecrets {
    /// The rendered `nats.conf`.
    pub fn config(&self) -> String {
        let users: Vec<RoleUser> = self
            .passwords
            .iter()
            .map(|(role, password)| RoleUser { role: *role, password: password.clone() })
            .collect();
        auth::server_config(&users)
    }
}

fn text(data: &BTreeMap<String, ByteString>, key: &str) -> Option<String> {
    data.get(key).and_then(|v| String::from_utf8(v.0.clone()).ok()).filter(|v| !v.is_empty())
}

/// The installation's bus secrets: those already in [`SECRET`] (an upgrade keeps every
/// password, so running pods stay connected), new random ones for whatever is missing.
pub async fn secrets(client: &Client, namespace: &str) -> anyhow::Result<BusSecrets> {
    let existing = Api::<Secret>::namespaced(client.clone(), namespace).get_opt(SECRET).await?;
    let data = existing.and_then(|s| s.data).unwrap_or_default();
    let fresh =
        || auth::random_secret().map_err(|e| anyhow::anyhow!("no randomness for the bus passwords: {e}"));
    let mut passwords = BTreeMap::new();
    for role in Role::ALL {
        let password = match text(&data, &role.password_key()) {
            Some(p) => p,
            None => fresh()?,
        };
        passwords.insert(role, password);
    }
    let master_key = match text(&data, MASTER_KEY) {
        Some(k) => k,
        None => fresh()?,
    };
    Ok(BusSecrets { passwords, master_key })
}

fn labels() -> Value {
    json!({"app.kubernetes.io/part-of": "sympozium", "app.kubernetes.io/managed-by": "sympozium"})
}

/// The Secret NATS and the controller read.
pub fn secret(t: &Target, s: &BusSecrets) -> Value {
    let mut data = serde_json::Map::new();
    for (role, password) in &s.passwords {
        data.insert(role.password_key(), json!(password));
    }
    data.insert(MASTER_KEY.into(), json!(s.master_key));
    data.insert(CONFIG_KEY.into(), json!(s.config()));
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": t.namespace, "labels": labels()},
        "type": "Opaque", "stringData": data})
}

/// The NATS Deployment and Service: JetStream, configuration (users and permissions) from
/// [`SECRET`]; a changed configuration rolls the pod.
pub fn deployment_and_service(t: &Target, s: &BusSecrets) -> (Value, Value) {
    let config_hash = hex::encode(&Sha256::digest(s.config().as_bytes())[..8]);
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nats", "namespace": t.namespace, "labels": labels()},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "nats"}},
            "template": {"metadata": {"labels": {"app": "nats", "app.kubernetes.io/part-of": "sympozium"},
                                      "annotations": {"sympozium.ai/config-hash": config_hash}},
                "spec": {"securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                    "automountServiceAccountToken": false,
                    "containers": [{"name": "nats", "image": "nats:2-alpine",
                        "args": ["-js", "-sd", "/data", "-c", format!("{CONFIG_DIR}/{CONFIG_KEY}")],
                        "ports": [{"name": "client", "containerPort": 4222}],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                         {"name": "config", "mountPath": CONFIG_DIR, "readOnly": true}],
                        "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                                            "capabilities": {"drop": ["ALL"]}}}],
                    "volumes": [{"name": "data", "emptyDir": {}},
                                {"name": "config", "secret": {"secretName": SECRET,
                                    "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}]}}]}}}});
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "nats", "namespace": t.namespace, "labels": labels()},
        "spec": {"selector": {"app": "nats"}, "ports": [{"name": "client", "port": 4222, "targetPort": 4222}]}});
    (deployment, service)
}

fn from_secret(name: &str, key: &str) -> Value {
    json!({"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}})
}

/// The controller's bus env: its own password, the passwords it hands to channel and run
/// pods, and the origin master key, all by reference.
pub fn controller_env() -> Vec<Value> {
    vec![
        from_secret("SYMPOZIUM_NATS_PASSWORD", &Role::Controller.password_key()),
        from_secret("SYMPOZIUM_NATS_CHANNEL_PASSWORD", &Role::Channel.password_key()),
        from_secret("SYMPOZIUM_NATS_AGENT_PASSWORD", &Role::Agent.password_key()),
        from_secret("SYMPOZIUM_ORIGIN_MASTER_KEY", MASTER_KEY),
    ]
}

/// Ingress to NATS only from Sympozium's pods: everything in the system namespace (the
/// controller), and channel pods and agent pods (by the component label the controller
/// sets) in any namespace, on the client port.
pub fn network_policy(t: &Target) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "nats", "namespace": t.namespace, "labels": labels()},
        "spec": {"podSelector": {"matchLabels": {"app": "nats"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": t.namespace}}, "podSelector": {}},
                    {"namespaceSelector": {}, "podSelector": {"matchExpressions": [
                        {"key": "sympozium.ai/component", "operator": "In", "values": ["channel", "agent-run"]}]}}],
                "ports": [{"protocol": "TCP", "port": 4222}]}]}})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    fn target() -> Target {
        Target {
            namespace: "sym".into(),
            registry: "r".into(),
            tag: "t".into(),
            wait: Duration::from_secs(1),
            webhook: false,
        }
    }

    fn bus() -> BusSecrets {
        BusSecrets {
            passwords: Role::ALL.iter().map(|r| (*r, format!("pw-{}", r.user()))).collect(),
            master_key: "mk".into(),
        }
    }

    #[test]
    fn nats_runs_with_the_rendered_users_and_nothing_reaches_pods_by_value() {
        let (d, _) = deployment_and_service(&target(), &bus());
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["args"], json!(["-js", "-sd", "/data", "-c", "/nats-config/nats.conf"]));
        let secret = secret(&target(), &bus());
        let conf = secret["stringData"]["nats.conf"].as_str().unwrap();
        for role in Role::ALL {
            assert!(conf.contains(&format!("user: \"{}\", password: \"pw-{}\"", role.user(), role.user())));
        }
        for env in controller_env() {
            assert!(env.get("value").is_none(), "{env}");
            assert_eq!(env["valueFrom"]["secretKeyRef"]["name"], SECRET);
        }
    }

    #[test]
    fn only_sympozium_pods_reach_nats() {
        let np = network_policy(&target());
        assert_eq!(np["spec"]["podSelector"]["matchLabels"]["app"], "nats");
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
        let from = &np["spec"]["ingress"][0]["from"];
        assert_eq!(from.as_array().unwrap().len(), 2);
        assert_eq!(from[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "sym");
        assert_eq!(from[1]["podSelector"]["matchExpressions"][0]["values"], json!(["channel", "agent-run"]));
        assert_eq!(np["spec"]["ingress"][0]["ports"], json!([{"protocol": "TCP", "port": 4222}]));
    }
}
