//! Personas: the PersonaPack catalog and the active teams.

use super::{Ctx, Table, Tone, or_dash, phase_tone, row};

/// `NAME CATEGORY AGENTS INSTALLED PHASE AGE`.
pub fn table(ctx: &Ctx<'_>) -> Table {
    let rows = ctx
        .scoped(&ctx.data.packs)
        .into_iter()
        .map(|p| {
            let status = p.status.clone().unwrap_or_default();
            let enabled = p.spec.enabled == Some(true);
            let phase = match (enabled, status.phase) {
                (false, _) => "Available".to_string(),
                (true, Some(phase)) => phase,
                (true, None) => "Activating".to_string(),
            };
            let tone = if enabled { phase_tone(&phase) } else { Tone::Dim };
            row(
                p.as_ref(),
                vec![
                    p.metadata.name.clone().unwrap_or_default(),
                    or_dash(p.spec.category.clone().unwrap_or_default()),
                    p.spec.personas.len().to_string(),
                    status.installed_count.to_string(),
                    phase,
                    ctx.age(p.metadata.creation_timestamp.as_ref()),
                ],
                tone,
            )
        })
        .collect();
    Table {
        headers: vec!["NAME", "CATEGORY", "AGENTS", "INSTALLED", "PHASE", "AGE"],
        rows,
        ..Table::default()
    }
}
