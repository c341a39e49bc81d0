//! Skills: SkillPacks.

use kube::ResourceExt;

use super::{Ctx, Table, Tone, or_dash, row};

/// `NAME SKILLS CONFIGMAP HOST AGE`.
pub fn table(ctx: &Ctx<'_>) -> Table {
    let rows = ctx
        .scoped(&ctx.data.skills)
        .into_iter()
        .map(|s| {
            let host = s
                .spec
                .sidecar
                .as_ref()
                .and_then(|c| c.host_access.as_ref())
                .is_some_and(|h| h.enabled == Some(true));
            let configmap = s.status.as_ref().and_then(|st| st.config_map_name.clone()).unwrap_or_default();
            row(
                s.as_ref(),
                vec![
                    s.name_any(),
                    s.spec.skills.len().to_string(),
                    or_dash(configmap),
                    if host { "yes".into() } else { "-".into() },
                    ctx.age(s.metadata.creation_timestamp.as_ref()),
                ],
                if host { Tone::Warn } else { Tone::Normal },
            )
        })
        .collect();
    Table { headers: vec!["NAME", "SKILLS", "CONFIGMAP", "HOST", "AGE"], rows, ..Table::default() }
}
