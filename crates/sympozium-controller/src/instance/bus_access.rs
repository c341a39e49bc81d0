//! How an instance's channel pods reach the bus: the Secret `<instance>-bus` holds the NATS
//! user the controller minted for this instance's channel pods (`creds`, permissions scoped
//! to `channel.*.<ns>.<instance>`, see [`sympozium_bus::scope`]) and the instance's own origin
//! key (derived from the controller's master key); the pods take both by `secretKeyRef`
//! (`NATS_CREDS`, `SYMPOZIUM_ORIGIN_KEY`). A channel pod of this instance can then read and
//! publish only its own instance's subjects, and prove it speaks for this instance. Pure
//! builders, no client.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, Secret, SecretKeySelector};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sympozium_api::SympoziumInstance;
use sympozium_api::labels::{self, component};
use sympozium_bus::jwt::UserCredentials;
use sympozium_bus::origin;
use sympozium_bus::scope::Identity;

use crate::settings::BusAuth;
use sympozium_protocol::env as vars;

/// Key of the NATS user credentials (`.creds` text) in a bus Secret.
pub const CREDS_KEY: &str = "creds";
/// Key of the origin key in a bus Secret.
pub const ORIGIN_KEY: &str = "origin-key";

/// Name of the instance's bus Secret.
pub fn secret_name(instance: &str) -> String {
    format!("{instance}-bus")
}

/// The bus identity of `inst`'s channel pods.
pub fn identity(inst: &SympoziumInstance) -> Identity {
    Identity::channel(inst.namespace().unwrap_or_default(), inst.name_any())
}

/// The credentials `existing` (the Secret as it is) holds when they are still the right ones:
/// minted for `identity` by the account `auth` mints for. Reusing them keeps the Secret (and
/// the pods' env) stable across reconciles.
pub fn reusable(existing: Option<&Secret>, identity: &Identity, auth: &BusAuth) -> Option<UserCredentials> {
    let raw = existing?.data.as_ref()?.get(CREDS_KEY)?;
    let creds = UserCredentials::from_creds(std::str::from_utf8(&raw.0).ok()?).ok()?;
    let fits = creds.name().as_deref() == Some(identity.to_string().as_str())
        && creds.issuer_account().as_deref() == Some(auth.issuer.account())
        && creds.expires_at().is_none_or(|exp| exp > jiff::Timestamp::now().as_second() + 3600);
    fits.then_some(creds)
}

/// Annotation on a bus Secret naming the identity its `creds` were minted for.
pub const IDENTITY_ANNOTATION: &str = "sympozium.ai/bus-identity";
/// Annotation on a bus Secret naming the account (public key) that minted its `creds`.
pub const ACCOUNT_ANNOTATION: &str = "sympozium.ai/bus-account";

/// Whether a bus Secret with `meta` (from the metadata-only watch cache) already holds a user
/// minted for `identity` by `auth`'s account, so the reconcile need not read or rewrite it.
pub fn minted_for(meta: &ObjectMeta, identity: &Identity, auth: &BusAuth) -> bool {
    let annotation = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k)).map(String::as_str);
    annotation(IDENTITY_ANNOTATION) == Some(identity.to_string().as_str())
        && annotation(ACCOUNT_ANNOTATION) == Some(auth.issuer.account())
}

/// The instance's bus Secret, owned by the instance, with `creds` (minted for [`identity`]).
pub fn secret(inst: &SympoziumInstance, auth: &BusAuth, creds: &UserCredentials) -> Secret {
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
            annotations: Some(BTreeMap::from([
                (IDENTITY_ANNOTATION.to_string(), identity(inst).to_string()),
                (ACCOUNT_ANNOTATION.to_string(), auth.issuer.account().to_string()),
            ])),
            owner_references: Some(inst.controller_owner_ref(&()).into_iter().collect()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (CREDS_KEY.to_string(), ByteString(creds.to_creds().into_bytes())),
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

/// `NATS_CREDS` and `SYMPOZIUM_ORIGIN_KEY` of a channel pod, by reference only.
pub fn channel_env(instance: &str) -> Vec<EnvVar> {
    let secret = secret_name(instance);
    vec![
        from_secret(vars::NATS_CREDS, &secret, CREDS_KEY),
        from_secret(vars::SYMPOZIUM_ORIGIN_KEY, &secret, ORIGIN_KEY),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
        let trust = sympozium_bus::jwt::Trust::generate();
        let auth = BusAuth { issuer: std::sync::Arc::new(trust.issuer()), master_key: "mk".into() };
        let key = |s: &Secret| String::from_utf8(s.data.as_ref().unwrap()[ORIGIN_KEY].0.clone()).unwrap();
        let creds_a = auth.issuer.mint(&identity(&inst("a")), None).unwrap();
        let (a, b) = (secret(&inst("a"), &auth, &creds_a), secret(&inst("b"), &auth, &creds_a));
        // The creds in A's Secret are A's channel user: reused for A, never for B.
        assert_eq!(reusable(Some(&a), &identity(&inst("a")), &auth), Some(creds_a.clone()));
        assert_eq!(reusable(Some(&a), &identity(&inst("b")), &auth), None);
        let other = BusAuth {
            issuer: std::sync::Arc::new(sympozium_bus::jwt::Trust::generate().issuer()),
            master_key: "mk".into(),
        };
        assert_eq!(reusable(Some(&a), &identity(&inst("a")), &other), None, "minted by another account");
        assert_ne!(key(&a), key(&b));
        assert!(minted_for(&a.metadata, &identity(&inst("a")), &auth));
        assert!(!minted_for(&a.metadata, &identity(&inst("b")), &auth));
        assert!(!minted_for(&a.metadata, &identity(&inst("a")), &other));
        let verifier = origin::Verifier::new("mk");
        assert_eq!(key(&a), verifier.key_for("channel/team/a"));
        assert_eq!(a.metadata.name.as_deref(), Some("a-bus"));
        for env in channel_env("a") {
            assert!(env.value.is_none(), "{} only by reference", env.name);
            assert_eq!(env.value_from.unwrap().secret_key_ref.unwrap().name, "a-bus");
        }
    }
}
