//! How a run's pod reaches the bus: the Secret `<run>-bus` (owned by the run, so it goes with
//! it) holds the NATS user the controller minted for this run (`creds`: it reads only its
//! own `<topic>.<ns>.<run>` answers and may post only through its own instance's channel,
//! see [`sympozium_bus::scope`]) and the run's own origin key; the IPC bridge and the agent
//! runner take both by `secretKeyRef`. What the run publishes is then provably its own, it
//! reads nobody else's results, and it cannot answer tool approvals.

use std::collections::BTreeMap;
use sympozium_protocol::env as vars;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{EnvVar, Secret};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sympozium_api::AgentRun;
use sympozium_api::labels::{self, component};
use sympozium_bus::origin;

use crate::instance::bus_access::{CREDS_KEY, ORIGIN_KEY, from_secret};
use crate::settings::BusAuth;
use sympozium_bus::jwt::UserCredentials;
use sympozium_bus::scope::Identity;

/// Name of the run's bus Secret.
pub fn secret_name(run: &str) -> String {
    format!("{run}-bus")
}

/// The bus identity of `run`'s pod.
pub fn identity(run: &AgentRun) -> Identity {
    let instance = Some(run.spec.instance_ref.clone()).filter(|i| !i.is_empty());
    Identity::run(run.namespace().unwrap_or_default(), run.name_any(), instance)
}

/// The run's bus Secret, with `creds` (minted for [`identity`]).
pub fn secret(run: &AgentRun, auth: &BusAuth, creds: &UserCredentials) -> Secret {
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
            (CREDS_KEY.to_string(), ByteString(creds.to_creds().into_bytes())),
            (ORIGIN_KEY.to_string(), ByteString(key.into_bytes())),
        ])),
        ..Default::default()
    }
}

/// `NATS_CREDS` and `SYMPOZIUM_ORIGIN_KEY` of the run's bridge and runner, by reference.
pub fn env(run: &str) -> Vec<EnvVar> {
    let secret = secret_name(run);
    vec![
        from_secret(vars::NATS_CREDS, &secret, CREDS_KEY),
        from_secret(vars::SYMPOZIUM_ORIGIN_KEY, &secret, ORIGIN_KEY),
    ]
}
