//! `schedules trigger <name>`: one run of a schedule now, created by the schedule controller
//! exactly as a tick would (through the `sympozium.ai/run-now` annotation).

use std::time::{Duration, Instant};

use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sympozium_api::labels::{RUN_NOW, SCHEDULE};
use sympozium_api::{AgentRun, SympoziumSchedule};

use super::not_found;

/// Asks for the run and waits (up to `wait`) until the controller has created it.
pub async fn trigger(client: &Client, ns: &str, name: &str, wait: Duration) -> anyhow::Result<i32> {
    let schedules: Api<SympoziumSchedule> = Api::namespaced(client.clone(), ns);
    if schedules.get_opt(name).await?.is_none() {
        return Err(not_found("schedule", name, ns, "schedules"));
    }
    let request = format!(
        "cli-{}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    );
    let patch = json!({"metadata": {"annotations": {RUN_NOW: request}}});
    schedules.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), ns);
    let marker = format!("manual:{request}");
    let started = Instant::now();
    loop {
        let found = runs.list(&ListParams::default().labels(&format!("{SCHEDULE}={name}"))).await?.items;
        if let Some(run) =
            found.iter().find(|r| r.annotations().get("sympozium.ai/scheduled-time") == Some(&marker))
        {
            crate::output::emitln!("agentrun/{} created from schedule {name}", run.name_any());
            return Ok(0);
        }
        if started.elapsed() > wait {
            // Withdraw the request so it does not fire unexpectedly when a controller appears.
            let withdraw = json!({"metadata": {"annotations": {RUN_NOW: null}}});
            let _ = schedules.patch(name, &PatchParams::default(), &Patch::Merge(&withdraw)).await;
            anyhow::bail!(
                "no run was created for schedule \"{name}\" within {wait:?}: is the controller running? (sympozium doctor)"
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
