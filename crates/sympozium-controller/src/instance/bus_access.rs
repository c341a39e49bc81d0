//! How an instance's channel pods reach an authenticated bus: the Secret
//! `<instance>-bus` (the `channel` role's password and the instance's own origin key,
//! derived from the controller's master key) and the env vars that take them from it by
//! `secretKeyRef`. A channel pod of this instance can then publish as the `channel` role and
//! prove it speaks for this instance, and for no other. Pure builders, no client.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, Secret, SecretKeySelector};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sympozium_api::SympoziumInstance;
use sympozium_api::labels::{self, component};
use sympozium_bus::origin;

use crate::settings::BusAuth;

/// Key of the role password in a bus Secret.
pub const PASSWORD_KEY: &str = "password";
/// Key of the origin key in a bus Secret.
pub const ORIGIN_KEY: &str = "origin-key";

/// Name of the instance's bus Secret.
pub fn secret_name(instance: &str) -> String {
    format!("{instance}-bus")
}

/// The instance's bus Secret, owned by the instance.
pub fn secret(inst: &SympoziumInstance, auth: &BusAuth) -> Secret {
    let name = inst.name_any();
    let ns = inst.namespace().unwrap_or_default();
    let key = origin::derive_key(&auth.master_key, &origin::channel_identity(&ns, &name));
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(&name)),
            namespace: inst.namespace(),
            labels: Some(BTreeMap::from([
                (labels::INSTANCE.to_string(), name.clone()),
                (labels::COMPONENT.to_string(), component::CHANNEL.to_string()),
            ])),
            owner_references: Some(inst.controller_owner_ref(&()).into_iter().collect()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (PASSWORD_KEY.to_string(), ByteString(auth.channel_password.as_bytes().to_vec())),
            (ORIGIN_KEY.to_string(), ByteString(key.into_bytes())),
        ])),
        ..Default::default()
    }
}

/// An env var taken from `secret`'s `key`.
pub fn from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `NATS_PASSWORD` and `SYMPOZIUM_ORIGIN_KEY` of a channel pod, by reference only.
pub fn channel_env(instance: &str) -> Vec<EnvVar> {
    let secret = secret_name(instance);
    vec![
        from_secret("NATS_PASSWORD", &secret, PASSWORD_KEY),
        from_secret("SYMPOZIUM_ORIGIN_KEY", &secret, ORIGIN_KEY),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_durable_consumer_of_the_controller_is_off_limits_to_role_clients() {
        for name in [
            crate::channelrouter::INBOUND_CONSUMER,
            crate::channelrouter::COMPLETION_CONSUMER,
            crate::channelrouter::APPROVAL_CONSUMER,
            crate::spawn::CONSUMER,
            crate::agentrun::completion::CONSUMER,
            crate::instance::health::CONSUMER,
            crate::schedule::router::CONSUMER,
        ] {
            assert!(sympozium_bus::auth::CONTROLLER_CONSUMERS.contains(&name), "{name} is not protected");
        }
    }

    #[test]
    fn each_instance_gets_its_own_origin_key_and_pods_get_it_by_reference() {
        let inst = |name: &str| -> SympoziumInstance {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
                "metadata": {"name": name, "namespace": "team", "uid": "u"},
                "spec": {"agents": {"default": {"model": "m"}}}
            }))
            .unwrap()
        };
        let auth =
            BusAuth { channel_password: "pw".into(), agent_password: "apw".into(), master_key: "mk".into() };
        let key = |s: &Secret| String::from_utf8(s.data.as_ref().unwrap()[ORIGIN_KEY].0.clone()).unwrap();
        let (a, b) = (secret(&inst("a"), &auth), secret(&inst("b"), &auth));
        assert_ne!(key(&a), key(&b));
        let verifier = origin::Verifier::new("mk");
        assert_eq!(key(&a), verifier.key_for("channel/team/a"));
        assert_eq!(a.metadata.name.as_deref(), Some("a-bus"));
        for env in channel_env("a") {
            assert!(env.value.is_none(), "{} only by reference", env.name);
            assert_eq!(env.value_from.unwrap().secret_key_ref.unwrap().name, "a-bus");
        }
    }
}
