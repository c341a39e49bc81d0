//! Metering a finished run once: its cost by the price table of `SympoziumConfig`
//! (`status.cost`), and its outcome, duration, tokens and cost as metrics.

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::pricing::PriceTable;
use sympozium_api::{AgentRun, SympoziumConfig, labels};
use sympozium_kube::metrics::RunRecord;

use crate::context::Context;

/// The only SympoziumConfig read (in the system namespace).
pub const CONFIG_NAME: &str = "default";

/// The price table in force: the `default` SympoziumConfig's over the built-in defaults.
pub async fn price_table(ctx: &Context) -> Result<PriceTable, kube::Error> {
    let ns = &ctx.settings.system_namespace;
    let config: Option<SympoziumConfig> =
        crate::watched::get(&ctx.watched.configs, &ctx.client, ns, CONFIG_NAME).await?;
    Ok(PriceTable::new(config.as_ref().and_then(|c| c.spec.pricing.as_ref())))
}

/// Records the cost and metrics of a finished run, once (marked by an annotation; a crash
/// between the metrics and the mark counts the run twice, never zero times).
pub async fn meter(run: &AgentRun, ctx: &Context) -> Result<(), kube::Error> {
    if run.annotations().contains_key(labels::METERED) {
        return Ok(());
    }
    let status = run.status.clone().unwrap_or_default();
    let name = run.name_any();
    let api: Api<AgentRun> = Api::namespaced(ctx.client.clone(), &run.namespace().unwrap_or_default());
    let usage = status.token_usage.unwrap_or_default();
    let mut cost = status.cost.clone();
    if cost.is_none() && status.token_usage.is_some() {
        cost = price_table(ctx).await?.cost(&run.spec.model.model, usage.input_tokens, usage.output_tokens);
        if let Some(c) = &cost {
            let terminal = [AgentRunPhase::Succeeded, AgentRunPhase::Failed];
            super::terminal::transition(&api, ctx, run, &terminal, |s| s.cost = Some(c.clone())).await?;
        }
    }
    ctx.metrics.run_finished(&RunRecord {
        instance: run.spec.instance_ref.clone(),
        model: run.spec.model.model.clone(),
        succeeded: status.phase == Some(AgentRunPhase::Succeeded),
        duration_ms: usage.duration_ms,
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cost: cost.as_ref().and_then(|c| Some((c.total.parse::<f64>().ok()?, c.currency.clone()))),
    });
    let patch = Patch::Merge(serde_json::json!({"metadata": {"annotations": {labels::METERED: "true"}}}));
    match api.patch(&name, &PatchParams::default(), &patch).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
