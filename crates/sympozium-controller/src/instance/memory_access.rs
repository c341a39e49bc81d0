//! Who may use an instance's memory server: a per-instance bearer token (the Secret
//! `<instance>-memory-token`, created once by the controller, handed to the server and to the
//! instance's agent pods only through `secretKeyRef`) and an ingress NetworkPolicy admitting
//! only the instance's own agent pods and the controller manager. Pure builders, no client.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, Secret, SecretKeySelector};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sympozium_api::SympoziumInstance;
use sympozium_api::labels::{self, component};

/// Key of the token in the `<instance>-memory-token` Secret.
pub const TOKEN_KEY: &str = "token";
/// Environment variable carrying the token (memory server and agent runner).
pub const TOKEN_ENV: &str = "MEMORY_AUTH_TOKEN";
/// Port the memory server listens on.
pub const MEMORY_PORT: i32 = 8080;
/// Label the controller manager's pods carry (set by `sympozium install`).
pub const CONTROLLER_APP: &str = "sympozium-controller";

/// Name of the Secret holding the instance's memory token.
pub fn token_secret_name(instance: &str) -> String {
    format!("{instance}-memory-token")
}

/// Name of the NetworkPolicy guarding the instance's memory server.
pub fn network_policy_name(instance: &str) -> String {
    format!("{instance}-memory")
}

/// A fresh token: 32 random bytes, hex.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

fn owned_meta(inst: &SympoziumInstance, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: inst.namespace(),
        labels: Some(BTreeMap::from([
            (labels::INSTANCE.to_string(), inst.name_any()),
            (labels::COMPONENT.to_string(), component::MEMORY.to_string()),
        ])),
        owner_references: Some(inst.controller_owner_ref(&()).into_iter().collect()),
        ..Default::default()
    }
}

/// The token Secret (created if absent, never rewritten: a running server and the runs
/// already started hold the token it has).
pub fn token_secret(inst: &SympoziumInstance, token: &str) -> Secret {
    Secret {
        metadata: owned_meta(inst, token_secret_name(&inst.name_any())),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(TOKEN_KEY.to_string(), ByteString(token.as_bytes().to_vec()))])),
        ..Default::default()
    }
}

/// `MEMORY_AUTH_TOKEN` from the instance's token Secret.
pub fn token_env(instance: &str) -> EnvVar {
    EnvVar {
        name: TOKEN_ENV.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: token_secret_name(instance),
                key: TOKEN_KEY.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Ingress to the memory server only from the instance's agent pods (same namespace, labels
/// the controller sets on every run's pod) and from the controller manager (which records
/// failed runs) in the system namespace; everything else is dropped before it reaches the
/// server, which checks the token on top.
pub fn network_policy(inst: &SympoziumInstance, system_namespace: &str) -> NetworkPolicy {
    let name = inst.name_any();
    let agents = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([
                (labels::INSTANCE.to_string(), name.clone()),
                (labels::COMPONENT.to_string(), component::AGENT_RUN.to_string()),
            ])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let controller = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                system_namespace.to_string(),
            )])),
            ..Default::default()
        }),
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("app".to_string(), CONTROLLER_APP.to_string())])),
            ..Default::default()
        }),
        ..Default::default()
    };
    NetworkPolicy {
        metadata: owned_meta(inst, network_policy_name(&name)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([
                    (labels::COMPONENT.to_string(), component::MEMORY.to_string()),
                    (labels::INSTANCE.to_string(), name),
                ])),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![agents, controller]),
                ports: Some(vec![NetworkPolicyPort {
                    protocol: Some("TCP".into()),
                    port: Some(IntOrString::Int(MEMORY_PORT)),
                    end_port: None,
                }]),
            }]),
            egress: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn instance() -> SympoziumInstance {
        let mut inst: SympoziumInstance = serde_json::from_value(serde_json::json!({
            "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
            "metadata": {"name": "alpha", "namespace": "team-a", "uid": "u-1"},
            "spec": {"agents": {"default": {"model": "m"}}, "skills": [{"skillPackRef": "memory"}]}
        }))
        .unwrap();
        inst.metadata.uid = Some("u-1".into());
        inst
    }

    #[test]
    fn tokens_are_long_random_and_different() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn the_token_reaches_pods_only_by_reference() {
        let env = token_env("alpha");
        assert!(env.value.is_none(), "never the value itself in a pod spec");
        let r = env.value_from.unwrap().secret_key_ref.unwrap();
        assert_eq!((r.name.as_str(), r.key.as_str()), ("alpha-memory-token", "token"));
        let secret = token_secret(&instance(), "t0k3n");
        assert_eq!(secret.metadata.owner_references.unwrap()[0].uid, "u-1", "goes with the instance");
    }

    #[test]
    fn only_the_instances_agents_and_the_controller_reach_its_memory_server() {
        let np = network_policy(&instance(), "sympozium-system");
        let spec = np.spec.unwrap();
        let target = spec.pod_selector.unwrap().match_labels.unwrap();
        assert_eq!(target["sympozium.ai/instance"], "alpha");
        assert_eq!(target["sympozium.ai/component"], "memory");
        assert_eq!(spec.policy_types.unwrap(), vec!["Ingress"]);
        let rules = spec.ingress.unwrap();
        assert_eq!(rules.len(), 1);
        let from = rules[0].from.clone().unwrap();
        assert_eq!(from.len(), 2);
        // Same namespace only (no namespaceSelector), this instance's agent pods only.
        assert!(from[0].namespace_selector.is_none());
        let agents = from[0].pod_selector.clone().unwrap().match_labels.unwrap();
        assert_eq!(agents["sympozium.ai/instance"], "alpha");
        assert_eq!(agents["sympozium.ai/component"], "agent-run");
        let ns = from[1].namespace_selector.clone().unwrap().match_labels.unwrap();
        assert_eq!(ns["kubernetes.io/metadata.name"], "sympozium-system");
        assert_eq!(
            from[1].pod_selector.clone().unwrap().match_labels.unwrap()["app"],
            "sympozium-controller"
        );
        let ports = rules[0].ports.clone().unwrap();
        assert_eq!(ports[0].port, Some(IntOrString::Int(8080)));
    }
}
