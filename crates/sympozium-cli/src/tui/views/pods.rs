//! Pods: every pod of an instance — channel, memory and agent pods alike (the original
//! selected on a label agent pods do not carry).

use kube::ResourceExt;

use super::{Ctx, Table, or_dash, phase_tone, row};

/// `NAME INSTANCE PHASE NODE IP RESTARTS AGE`.
pub fn table(ctx: &Ctx<'_>) -> Table {
    let rows = ctx
        .scoped(&ctx.data.pods)
        .into_iter()
        .filter(|p| {
            ctx.instance
                .is_none_or(|i| p.labels().get(sympozium_api::labels::INSTANCE).is_some_and(|l| l == i))
        })
        .map(|p| {
            let status = p.status.clone().unwrap_or_default();
            let phase = status.phase.clone().unwrap_or_default();
            let restarts: i32 = status.container_statuses.iter().flatten().map(|c| c.restart_count).sum();
            row(
                p.as_ref(),
                vec![
                    p.name_any(),
                    or_dash(p.labels().get(sympozium_api::labels::INSTANCE).cloned().unwrap_or_default()),
                    or_dash(phase.clone()),
                    or_dash(p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default()),
                    or_dash(status.pod_ip.clone().unwrap_or_default()),
                    restarts.to_string(),
                    ctx.age(p.metadata.creation_timestamp.as_ref()),
                ],
                phase_tone(&phase),
            )
        })
        .collect();
    Table {
        headers: vec!["NAME", "INSTANCE", "PHASE", "NODE", "IP", "RESTARTS", "AGE"],
        rows,
        ..Table::default()
    }
}
