//! Schedules.

use kube::ResourceExt;

use super::{Ctx, Table, or_dash, phase_tone, row};

/// `NAME INSTANCE SCHEDULE TYPE PHASE RUNS AGE`.
pub fn table(ctx: &Ctx<'_>) -> Table {
    let rows = ctx
        .scoped(&ctx.data.schedules)
        .into_iter()
        .filter(|s| ctx.instance.is_none_or(|i| s.spec.instance_ref == i))
        .map(|s| {
            let status = s.status.clone().unwrap_or_default();
            let phase = if s.spec.suspend == Some(true) {
                "Suspended".to_string()
            } else {
                status.phase.unwrap_or_default()
            };
            row(
                s.as_ref(),
                vec![
                    s.name_any(),
                    s.spec.instance_ref.clone(),
                    s.spec.schedule.clone(),
                    s.spec.type_.as_str().to_string(),
                    or_dash(phase.clone()),
                    status.total_runs.to_string(),
                    ctx.age(s.metadata.creation_timestamp.as_ref()),
                ],
                phase_tone(&phase),
            )
        })
        .collect();
    Table {
        headers: vec!["NAME", "INSTANCE", "SCHEDULE", "TYPE", "PHASE", "RUNS", "AGE"],
        rows,
        ..Table::default()
    }
}
