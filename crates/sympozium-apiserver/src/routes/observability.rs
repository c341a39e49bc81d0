//! `/api/v1/observability/…`: summaries over the namespace's runs for the dashboard.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use sympozium_api::agentrun::AgentRunPhase;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::cache;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::params::NamespaceQuery;

/// The observability routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/observability/metrics", get(metrics))
        .route("/api/v1/observability/timeseries", get(timeseries))
}

/// A labelled number.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct LabelValue {
    /// Label.
    pub label: String,
    /// Value.
    pub value: f64,
}

/// `GET /api/v1/observability/metrics`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservabilityMetrics {
    /// Whether an OpenTelemetry collector answered (not probed yet: always false).
    pub collector_reachable: bool,
    /// Why it is not reachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collector_error: Option<String>,
    /// When this summary was made (RFC 3339).
    pub collected_at: String,
    /// Namespace summarised.
    pub namespace: String,
    /// Runs in the namespace.
    pub agent_runs_total: u64,
    /// Input tokens over all runs.
    pub input_tokens_total: i64,
    /// Output tokens over all runs.
    pub output_tokens_total: i64,
    /// Tool calls over all runs.
    pub tool_invocations: i64,
    /// Lower-case phase → runs.
    pub run_status: BTreeMap<String, u64>,
    /// Input tokens per model.
    pub input_by_model: Vec<LabelValue>,
    /// Output tokens per model.
    pub output_by_model: Vec<LabelValue>,
    /// Tool calls (one label, `tool_calls`).
    pub tools_by_name: Vec<LabelValue>,
    /// Metric names the collector would export.
    pub raw_metric_names: Vec<String>,
}

/// `?namespace=&range=` of the time series.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Namespace (default `default`).
    pub namespace: Option<String>,
    /// `1h` (5-minute buckets), `24h` (hourly, default) or `7d` (daily).
    pub range: Option<String>,
}

/// One bucket of [`TimeSeries`].
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    /// Start of the bucket (unix ms).
    pub ts: i64,
    /// Runs created in it.
    pub runs: u64,
    /// Of which failed.
    pub failed: u64,
    /// Input tokens of those runs.
    pub input_tokens: i64,
    /// Output tokens of those runs.
    pub output_tokens: i64,
    /// Tool calls of those runs.
    pub tool_calls: i64,
}

/// `GET /api/v1/observability/timeseries`: runs and tokens over time.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeSeries {
    /// The range asked for.
    pub range: String,
    /// Bucket width in seconds.
    pub bucket_seconds: i64,
    /// Oldest first.
    pub buckets: Vec<Bucket>,
}

fn sorted(m: BTreeMap<String, i64>) -> Vec<LabelValue> {
    let mut v: Vec<LabelValue> =
        m.into_iter().map(|(label, n)| LabelValue { label, value: n as f64 }).collect();
    v.sort_by(|a, b| b.value.total_cmp(&a.value).then(a.label.cmp(&b.label)));
    v
}

/// Totals over the namespace's runs.
#[utoipa::path(get, path = "/api/v1/observability/metrics", tag = "observability", params(NamespaceQuery),
    responses((status = 200, body = ObservabilityMetrics), (status = 400, body = ErrorBody)))]
pub async fn metrics(
    State(s): State<AppState>,
    Query(q): Query<NamespaceQuery>,
) -> ApiResult<Json<ObservabilityMetrics>> {
    let ns = q.ns()?;
    let runs = cache::list(&s.caches.runs, Some(&ns));
    let mut out = ObservabilityMetrics {
        collector_error: Some("no OpenTelemetry collector is probed by this server".into()),
        collected_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        namespace: ns,
        agent_runs_total: runs.len() as u64,
        raw_metric_names: [
            "gen_ai.client.token.usage",
            "sympozium.agent.runs",
            "sympozium.agent.run.duration",
            "sympozium.tool.invocations",
        ]
        .map(str::to_string)
        .to_vec(),
        ..Default::default()
    };
    let (mut input, mut output) = (BTreeMap::new(), BTreeMap::new());
    for r in &runs {
        let phase = super::phase_name(r.status.as_ref().and_then(|st| st.phase)).to_lowercase();
        *out.run_status.entry(if phase.is_empty() { "unknown".into() } else { phase }).or_default() += 1;
        if let Some(u) = r.status.as_ref().and_then(|st| st.token_usage) {
            out.input_tokens_total += u.input_tokens;
            out.output_tokens_total += u.output_tokens;
            out.tool_invocations += u.tool_calls;
            *input.entry(r.spec.model.model.clone()).or_default() += u.input_tokens;
            *output.entry(r.spec.model.model.clone()).or_default() += u.output_tokens;
        }
    }
    out.input_by_model = sorted(input);
    out.output_by_model = sorted(output);
    out.tools_by_name = vec![LabelValue { label: "tool_calls".into(), value: out.tool_invocations as f64 }];
    Ok(Json(out))
}

/// Runs, failures, tokens and tool calls per bucket over the range, by run creation time.
#[utoipa::path(get, path = "/api/v1/observability/timeseries", tag = "observability", params(RangeQuery),
    responses((status = 200, body = TimeSeries), (status = 400, body = ErrorBody)))]
pub async fn timeseries(
    State(s): State<AppState>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Json<TimeSeries>> {
    let ns = NamespaceQuery { namespace: q.namespace.clone() }.ns()?;
    let range = q.range.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| "24h".into());
    let (span, width) = match range.as_str() {
        "1h" => (3600, 300),
        "24h" => (86_400, 3600),
        "7d" => (7 * 86_400, 86_400),
        other => return Err(ApiError::invalid("range", format!("\"{other}\" is not one of 1h, 24h, 7d"))),
    };
    let now = chrono::Utc::now().timestamp();
    let end = (now / width + 1) * width;
    let start = end - span;
    let mut buckets: Vec<Bucket> =
        (0..span / width).map(|i| Bucket { ts: (start + i * width) * 1000, ..Default::default() }).collect();
    for r in cache::list(&s.caches.runs, Some(&ns)) {
        let Some(t) = r.creation_timestamp().map(|t| t.0.as_second()) else { continue };
        if t < start || t >= end {
            continue;
        }
        let Some(b) = buckets.get_mut(((t - start) / width) as usize) else { continue };
        b.runs += 1;
        let st = r.status.clone().unwrap_or_default();
        if st.phase == Some(AgentRunPhase::Failed) {
            b.failed += 1;
        }
        if let Some(u) = st.token_usage {
            b.input_tokens += u.input_tokens;
            b.output_tokens += u.output_tokens;
            b.tool_calls += u.tool_calls;
        }
    }
    Ok(Json(TimeSeries { range, bucket_seconds: width, buckets }))
}
