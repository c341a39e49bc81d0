//! `features enable|disable|list --policy P`: a SympoziumPolicy's `spec.featureGates`.

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use sympozium_api::SympoziumPolicy;

use super::not_found;
use crate::cli::FeatureCommand;
use crate::output::table;

/// The gates the runner and webhook act on.
pub const KNOWN: &[&str] = &["code-execution", "sub-agents", "file-access", "browser-automation"];

/// Runs a `features` command.
pub async fn dispatch(client: &Client, ns: &str, cmd: &FeatureCommand) -> anyhow::Result<i32> {
    let api: Api<SympoziumPolicy> = Api::namespaced(client.clone(), ns);
    let policy_name = match cmd {
        FeatureCommand::List { policy }
        | FeatureCommand::Enable { policy, .. }
        | FeatureCommand::Disable { policy, .. } => policy,
    };
    let policy =
        api.get_opt(policy_name).await?.ok_or_else(|| not_found("policy", policy_name, ns, "policies"))?;
    let (gate, on) = match cmd {
        FeatureCommand::List { .. } => {
            let gates = policy.spec.feature_gates.unwrap_or_default();
            let mut names: Vec<&str> = KNOWN.to_vec();
            names.extend(gates.keys().map(String::as_str).filter(|g| !KNOWN.contains(g)));
            let rows: Vec<Vec<String>> = names
                .iter()
                .map(|g| {
                    let state = match gates.get(*g) {
                        Some(true) => "enabled",
                        Some(false) => "disabled",
                        None => "unset",
                    };
                    vec![g.to_string(), state.to_string()]
                })
                .collect();
            crate::output::emit!("{}", table(&["FEATURE", "STATE"], &rows));
            return Ok(0);
        }
        FeatureCommand::Enable { gate, .. } => (gate, true),
        FeatureCommand::Disable { gate, .. } => (gate, false),
    };
    if !KNOWN.contains(&gate.as_str()) {
        anyhow::bail!("unknown feature \"{gate}\": use one of {}", KNOWN.join(", "));
    }
    let patch = json!({"spec": {"featureGates": {gate: on}}});
    api.patch(policy_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    crate::output::emitln!(
        "feature {gate} {} in policy {policy_name}",
        if on { "enabled" } else { "disabled" }
    );
    Ok(0)
}
