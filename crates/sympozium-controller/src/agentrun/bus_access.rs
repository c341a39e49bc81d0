//! How a run's pod reaches an authenticated bus: the Secret `<run>-bus` (owned by the run, so
//! it goes with it) holds the `agent` role's password and the run's own origin key; the IPC
//! bridge and the agent runner take both by `secretKeyRef`. What the run publishes is then
//! provably its own, and it cannot answer tool approvals (the `agent` role may not).

use std::collections::BTreeMap;
use sympozium_protocol::env as vars;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{EnvVar, Secret};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sympozium_api::AgentRun;
use sympozium_api::labels::{self, component};
use sympozium_bus::origin;

use crate::instance::bus_access::{ORIGIN_KEY, PASSWORD_KEY, from_secret};
use crate::settings::BusAuth;

/// Name of the run's bus Secret.
pub fn secret_name(run: &str) -> String {
    format!("{run}-bus")
}

/// The run's bus Secret.
pub fn secret(run: &AgentRun, auth: &BusAuth) -> Secret {
    let name = run.name_any();
    let key = origin::derive_key(
        &auth.master_key,
        &origin::run_identity(&run.namespace().unwrap_or_default(), &name),
    );
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(&name)),
            namespace: run.namespace(),
            labels: Some(BTreeMap::from([
                (labels::AGENT_RUN.to_string(), name.clone()),
                (labels::COMPONENT.to_string(), component::AGENT_RUN.to_string()),
            ])),
            owner_references: Some(run.controller_owner_ref(&()).into_iter().collect()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (PASSWORD_KEY.to_string(), ByteString(auth.agent_password.as_bytes().to_vec())),
            (ORIGIN_KEY.to_string(), ByteString(key.into_bytes())),
        ])),
        ..Default::default()
    }
}

/// `NATS_PASSWORD` and `SYMPOZIUM_ORIGIN_KEY` of the run's bridge and runner, by reference.
pub fn env(run: &str) -> Vec<EnvVar> {
    let secret = secret_name(run);
    vec![
        from_secret(vars::NATS_PASSWORD, &secret, PASSWORD_KEY),
        from_secret(vars::SYMPOZIUM_ORIGIN_KEY, &secret, ORIGIN_KEY),
    ]
}
