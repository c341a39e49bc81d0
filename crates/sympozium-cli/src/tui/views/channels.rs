//! Channels: one row per channel of every instance, with what the controller reports.

use kube::ResourceExt;

use super::{Ctx, Row, Table, or_dash, phase_tone};

/// `INSTANCE TYPE SECRET STATUS CHECKED MESSAGE`.
pub fn table(ctx: &Ctx<'_>) -> Table {
    let mut rows = Vec::new();
    for i in ctx.scoped(&ctx.data.instances) {
        let name = i.name_any();
        if ctx.instance.is_some_and(|f| f != name) {
            continue;
        }
        for c in &i.spec.channels {
            let ty = c.type_.as_str();
            let status = i.status.as_ref().and_then(|s| s.channels.iter().find(|cs| cs.type_ == ty));
            let phase = status.map(|s| s.status.clone()).unwrap_or_default();
            rows.push(Row {
                ns: i.namespace().unwrap_or_default(),
                name: name.clone(),
                cells: vec![
                    name.clone(),
                    ty.to_string(),
                    or_dash(c.config_ref.secret.clone()),
                    or_dash(phase.clone()),
                    status
                        .and_then(|s| s.last_health_check.as_ref())
                        .map(|t| ctx.age(Some(t)))
                        .unwrap_or("-".into()),
                    or_dash(status.and_then(|s| s.message.clone()).unwrap_or_default()),
                ],
                tone: phase_tone(&phase),
            });
        }
    }
    Table {
        headers: vec!["INSTANCE", "TYPE", "SECRET", "STATUS", "CHECKED", "MESSAGE"],
        rows,
        ..Table::default()
    }
}
