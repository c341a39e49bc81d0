//! Gateway: the SympoziumConfig gateway settings (the routes of instances with web
//! endpoints are in the detail pane).

use kube::ResourceExt;

use super::{Ctx, Table, Tone, or_dash, phase_tone, row};

/// `NAME ENABLED BASE DOMAIN PHASE TLS ADDRESS LISTENERS`.
pub fn table(ctx: &Ctx<'_>) -> Table {
    let rows = ctx
        .scoped(&ctx.data.configs)
        .into_iter()
        .map(|c| {
            let gw = c.spec.gateway.clone();
            let status = c.status.clone().unwrap_or_default();
            let phase = status.phase.clone().unwrap_or_default();
            let enabled = gw.as_ref().is_some_and(|g| g.enabled);
            row(
                c.as_ref(),
                vec![
                    c.name_any(),
                    if enabled { "yes".into() } else { "no".into() },
                    or_dash(gw.as_ref().and_then(|g| g.base_domain.clone()).unwrap_or_default()),
                    or_dash(phase.clone()),
                    if gw.as_ref().and_then(|g| g.tls.as_ref()).is_some_and(|t| t.enabled) {
                        "yes".into()
                    } else {
                        "-".into()
                    },
                    or_dash(status.gateway.as_ref().and_then(|g| g.address.clone()).unwrap_or_default()),
                    status
                        .gateway
                        .as_ref()
                        .and_then(|g| g.listener_count)
                        .map(|n| n.to_string())
                        .unwrap_or("-".into()),
                ],
                if enabled { phase_tone(&phase) } else { Tone::Dim },
            )
        })
        .collect();
    Table { headers: vec!["NAME", "ENABLED", "BASE DOMAIN", "PHASE", "TLS", "ADDRESS", "LISTENERS"], rows }
}
