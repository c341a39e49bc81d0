//! The event bus part of `install`: NATS in operator mode (decentralized JWT auth). One
//! Secret (`sympozium-nats`, generated once and kept across upgrades) holds the trust chain's
//! seeds (operator, system account, application account, the account's signing key), the
//! account's public key, the operator console's user (`operator-creds`), the origin master
//! key and the rendered `nats.conf` (operator and account JWTs, no users, no seeds). NATS
//! reads its configuration from it; the controller takes only the account public key, the
//! signing seed and the master key (by `secretKeyRef`) and mints one NATS user per
//! instance's channel pods and per run; the API server takes the operator user. A
//! NetworkPolicy lets only Sympozium's pods reach NATS.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sympozium_bus::jwt::{Trust, TrustSeeds, UserCredentials};
use sympozium_bus::scope::Identity;

use super::install::Target;

/// Name of the bus Secret in the system namespace.
pub const SECRET: &str = "sympozium-nats";
/// Key of the origin master key in [`SECRET`].
pub const MASTER_KEY: &str = "origin-master-key";
/// Key of the rendered configuration in [`SECRET`].
pub const CONFIG_KEY: &str = "nats.conf";
/// Key of the account's public key in [`SECRET`].
pub const ACCOUNT_KEY: &str = "account";
/// Key of the account signing seed in [`SECRET`] (the controller's).
pub const SIGNING_SEED_KEY: &str = "signing-seed";
/// Key of the operator console's user (`.creds`) in [`SECRET`].
pub const OPERATOR_CREDS_KEY: &str = "operator-creds";
const OPERATOR_SEED_KEY: &str = "operator-seed";
const SYSTEM_ACCOUNT_SEED_KEY: &str = "system-account-seed";
const ACCOUNT_SEED_KEY: &str = "account-seed";
/// Where NATS finds its configuration.
const CONFIG_DIR: &str = "/nats-config";

/// The bus secrets of an installation.
pub struct BusSecrets {
    /// The trust chain.
    pub trust: Trust,
    /// The operator console's user.
    pub operator: UserCredentials,
    /// Origin master key.
    pub master_key: String,
    config: String,
}

impl std::fmt::Debug for BusSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BusSecrets(<redacted>)")
    }
}

impl BusSecrets {
    /// Secrets from a trust chain: the operator user minted (no expiry: it is the
    /// installation's console) unless `operator` is given.
    pub fn new(trust: Trust, operator: Option<UserCredentials>, master_key: String) -> anyhow::Result<Self> {
        let operator = match operator {
            Some(o) => o,
            None => trust.issuer().mint(&Identity::Operator, None)?,
        };
        // Fresh JWTs differ in their issue time: an upgrade keeps the rendered configuration
        // of the same chain ([`from_data`]) so NATS is not restarted for nothing.
        let config = trust.server_config()?;
        Ok(Self { trust, operator, master_key, config })
    }

    /// The rendered `nats.conf`.
    pub fn config(&self) -> String {
        self.config.clone()
    }
}

fn text(data: &BTreeMap<String, ByteString>, key: &str) -> Option<String> {
    data.get(key).and_then(|v| String::from_utf8(v.0.clone()).ok()).filter(|v| !v.is_empty())
}

/// The installation's bus secrets: the trust chain already in [`SECRET`] (an upgrade keeps
/// it, so every minted user stays valid and running pods stay connected), a new one when
/// there is none.
pub async fn secrets(client: &Client, namespace: &str) -> anyhow::Result<BusSecrets> {
    let existing = Api::<Secret>::namespaced(client.clone(), namespace).get_opt(SECRET).await?;
    from_data(&existing.and_then(|s| s.data).unwrap_or_default())
}

/// [`secrets`] from the Secret's data.
pub fn from_data(data: &BTreeMap<String, ByteString>) -> anyhow::Result<BusSecrets> {
    let seeds = match (
        text(data, OPERATOR_SEED_KEY),
        text(data, SYSTEM_ACCOUNT_SEED_KEY),
        text(data, ACCOUNT_SEED_KEY),
        text(data, SIGNING_SEED_KEY),
    ) {
        (Some(operator), Some(system_account), Some(account), Some(signing)) => {
            Some(TrustSeeds { operator, system_account, account, signing })
        }
        _ => None,
    };
    let trust = match seeds {
        Some(seeds) => Trust::from_seeds(&seeds)
            .map_err(|e| anyhow::anyhow!("Secret {SECRET} holds a broken trust chain: {e}"))?,
        None => Trust::generate(),
    };
    let operator = text(data, OPERATOR_CREDS_KEY)
        .and_then(|c| UserCredentials::from_creds(&c).ok())
        .filter(|c| c.issuer_account().as_deref() == Some(trust.account_public_key().as_str()));
    let master_key = match text(data, MASTER_KEY) {
        Some(k) => k,
        None => sympozium_bus::auth::random_secret()
            .map_err(|e| anyhow::anyhow!("no randomness for the origin master key: {e}"))?,
    };
    let mut secrets = BusSecrets::new(trust, operator, master_key)?;
    if let Some(config) = text(data, CONFIG_KEY)
        .filter(|c| c.contains("resolver: MEMORY") && c.contains(&secrets.trust.account_public_key()))
    {
        secrets.config = config;
    }
    Ok(secrets)
}

fn labels() -> Value {
    json!({"app.kubernetes.io/part-of": "sympozium", "app.kubernetes.io/managed-by": "sympozium"})
}

/// The Secret NATS, the controller and the API server read.
pub fn secret(t: &Target, s: &BusSecrets) -> Value {
    let seeds = s.trust.seeds();
    let data = json!({
        OPERATOR_SEED_KEY: seeds.operator,
        SYSTEM_ACCOUNT_SEED_KEY: seeds.system_account,
        ACCOUNT_SEED_KEY: seeds.account,
        SIGNING_SEED_KEY: seeds.signing,
        ACCOUNT_KEY: s.trust.account_public_key(),
        OPERATOR_CREDS_KEY: s.operator.to_creds(),
        MASTER_KEY: s.master_key,
        CONFIG_KEY: s.config(),
    });
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": t.namespace, "labels": labels()},
        "type": "Opaque", "stringData": data})
}

/// The NATS Deployment and Service: JetStream, configuration (operator mode: the trust
/// chain's JWTs) from [`SECRET`]; a changed configuration rolls the pod.
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

/// The controller's bus env: the account's public key and signing seed (it mints the pods'
/// NATS users, and its own) and the origin master key, all by reference; never the
/// operator's or the account's own seed.
pub fn controller_env() -> Vec<Value> {
    vec![
        from_secret("SYMPOZIUM_NATS_ACCOUNT", ACCOUNT_KEY),
        from_secret("SYMPOZIUM_NATS_SIGNING_SEED", SIGNING_SEED_KEY),
        from_secret("SYMPOZIUM_ORIGIN_MASTER_KEY", MASTER_KEY),
    ]
}

/// The operator console's `.creds` (for `sympozium nats-creds`): key [`OPERATOR_CREDS_KEY`]
/// of [`SECRET`] in `namespace`.
pub async fn operator_creds(client: &Client, namespace: &str) -> anyhow::Result<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(SECRET)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no Secret {SECRET} in {namespace}: is Sympozium installed there?"))?;
    text(&secret.data.unwrap_or_default(), OPERATOR_CREDS_KEY)
        .ok_or_else(|| anyhow::anyhow!("Secret {namespace}/{SECRET} has no {OPERATOR_CREDS_KEY}"))
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
        BusSecrets::new(Trust::generate(), None, "mk".into()).unwrap()
    }

    #[test]
    fn nats_runs_in_operator_mode_and_the_controller_gets_only_the_signing_key() {
        let bus = bus();
        let (d, _) = deployment_and_service(&target(), &bus);
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["args"], json!(["-js", "-sd", "/data", "-c", "/nats-config/nats.conf"]));
        let secret = secret(&target(), &bus);
        let conf = secret["stringData"]["nats.conf"].as_str().unwrap();
        assert!(
            conf.contains("resolver: MEMORY") && conf.contains(&bus.trust.account_public_key()),
            "{conf}"
        );
        assert!(!conf.contains("authorization"), "{conf}");
        let seeds = bus.trust.seeds();
        for seed in [&seeds.operator, &seeds.system_account, &seeds.account, &seeds.signing] {
            assert!(!conf.contains(seed.as_str()), "a seed in nats.conf");
        }
        let keys: Vec<_> = controller_env()
            .iter()
            .map(|env| {
                assert!(env.get("value").is_none(), "{env}");
                assert_eq!(env["valueFrom"]["secretKeyRef"]["name"], SECRET);
                env["valueFrom"]["secretKeyRef"]["key"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(keys, ["account", "signing-seed", "origin-master-key"]);
    }

    #[test]
    fn an_upgrade_keeps_the_trust_chain_and_the_operator_user() {
        let first = bus();
        let stored = secret(&target(), &first);
        let data: BTreeMap<String, ByteString> = stored["stringData"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), ByteString(v.as_str().unwrap().as_bytes().to_vec())))
            .collect();
        let again = from_data(&data).unwrap();
        assert_eq!(again.trust.account_public_key(), first.trust.account_public_key());
        assert_eq!(again.operator, first.operator);
        assert_eq!(again.master_key, "mk");
        assert_eq!(again.config(), first.config());
        let fresh = from_data(&BTreeMap::new()).unwrap();
        assert_ne!(fresh.trust.account_public_key(), first.trust.account_public_key());
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
