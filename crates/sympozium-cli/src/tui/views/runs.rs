//! Runs: agent runs, newest first, with what triggered them.

use kube::ResourceExt;
use sympozium_api::AgentRun;

use super::{Ctx, Table, Tone, or_dash, phase_tone, row};

/// What started a run: the schedule type for scheduled runs, else the source label.
pub fn trigger(r: &AgentRun) -> String {
    let labels = r.labels();
    if labels.contains_key(sympozium_api::labels::SCHEDULE) {
        return labels.get("sympozium.ai/type").cloned().unwrap_or_else(|| "scheduled".into());
    }
    labels.get(sympozium_api::labels::SOURCE).cloned().unwrap_or_else(|| "manual".into())
}

/// The phase as shown (`Pending` when the controller has not reported yet).
pub fn phase(r: &AgentRun) -> String {
    r.status.as_ref().and_then(|s| s.phase).map(|p| format!("{p:?}")).unwrap_or_else(|| "Pending".into())
}

/// `NAME INSTANCE PHASE TRIGGER POD AGE`.
pub fn table(ctx: &Ctx<'_>) -> Table {
    let mut runs = ctx.scoped(&ctx.data.runs);
    runs.retain(|r| ctx.instance.is_none_or(|i| r.spec.instance_ref == i));
    runs.sort_by_key(|r| {
        std::cmp::Reverse((r.metadata.creation_timestamp.clone().map(|t| t.0), r.name_any()))
    });
    let rows = runs
        .into_iter()
        .map(|r| {
            let phase = phase(r);
            let trigger = trigger(r);
            let tone = match (phase_tone(&phase), trigger.as_str()) {
                (Tone::Good | Tone::Normal, "heartbeat" | "scheduled" | "sweep") => Tone::Dim,
                (t, _) => t,
            };
            row(
                r.as_ref(),
                vec![
                    r.name_any(),
                    r.spec.instance_ref.clone(),
                    phase,
                    trigger,
                    or_dash(r.status.as_ref().and_then(|s| s.pod_name.clone()).unwrap_or_default()),
                    ctx.age(r.metadata.creation_timestamp.as_ref()),
                ],
                tone,
            )
        })
        .collect();
    Table { headers: vec!["NAME", "INSTANCE", "PHASE", "TRIGGER", "POD", "AGE"], rows, ..Table::default() }
}
