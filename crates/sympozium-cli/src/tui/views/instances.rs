//! Instances: the agents (the model is in the detail pane).

use std::collections::HashMap;

use sympozium_api::resolve;

use super::{Ctx, Table, or_dash, phase_tone, row};

/// `NAME PHASE PROVIDER SKILLS PODS TOKENS AGE`; the phase is marked `⧉` when the agent runs
/// in an agent sandbox.
pub fn table(ctx: &Ctx<'_>) -> Table {
    // One pass over the runs, not one per instance: thousands of runs are normal.
    let mut tokens_by: HashMap<(Option<&str>, &str), i64> = HashMap::new();
    for r in &ctx.data.runs {
        if let Some(u) = r.status.as_ref().and_then(|s| s.token_usage.as_ref()) {
            *tokens_by.entry((r.metadata.namespace.as_deref(), r.spec.instance_ref.as_str())).or_default() +=
                u.total_tokens;
        }
    }
    let rows = ctx
        .scoped(&ctx.data.instances)
        .into_iter()
        .map(|i| {
            let status = i.status.clone().unwrap_or_default();
            let name = i.metadata.name.clone().unwrap_or_default();
            let tokens =
                tokens_by.get(&(i.metadata.namespace.as_deref(), name.as_str())).copied().unwrap_or_default();
            let phase = status.phase.clone().unwrap_or_default();
            let sandboxed = i.spec.agents.default.agent_sandbox.as_ref().is_some_and(|s| s.enabled);
            let skills: Vec<_> = i.spec.skills.iter().filter_map(|s| s.skill_pack_ref.clone()).collect();
            row(
                i.as_ref(),
                vec![
                    name,
                    if sandboxed {
                        format!("{} ⧉", or_dash(phase.clone()))
                    } else {
                        or_dash(phase.clone())
                    },
                    resolve::provider(&i.spec),
                    or_dash(skills.join(",")),
                    status.active_agent_pods.to_string(),
                    if tokens == 0 { "-".into() } else { tokens.to_string() },
                    ctx.age(i.metadata.creation_timestamp.as_ref()),
                ],
                phase_tone(&phase),
            )
        })
        .collect();
    Table {
        headers: vec!["NAME", "PHASE", "PROVIDER", "SKILLS", "PODS", "TOKENS", "AGE"],
        rows,
        ..Table::default()
    }
}
