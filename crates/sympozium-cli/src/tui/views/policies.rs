//! Policies.

use kube::ResourceExt;

use super::{Ctx, Table, Tone, row};

/// `NAME BOUND INSTANCES AGE`.
pub fn table(ctx: &Ctx<'_>) -> Table {
    let rows = ctx
        .scoped(&ctx.data.policies)
        .into_iter()
        .map(|p| {
            let bound = p.status.as_ref().map(|s| s.bound_instances).unwrap_or_default();
            row(
                p.as_ref(),
                vec![p.name_any(), bound.to_string(), ctx.age(p.metadata.creation_timestamp.as_ref())],
                Tone::Normal,
            )
        })
        .collect();
    Table { headers: vec!["NAME", "BOUND INSTANCES", "AGE"], rows, ..Table::default() }
}
