//! Human approval for `ask` tools over the event bus.
//!
//! Request: subject `sympozium.tool.approval.request`, envelope
//! `{"topic":"tool.approval.request","timestamp","metadata":{"agentRunID","instanceName"},
//!   "data":{"requestId","agentRunId","instanceName","namespace","tool","arguments"}}`.
//! Response: subject `sympozium.tool.approval.response.<ns>.<run>` (the only answers the run's
//! NATS user may read, and which it may not publish itself), envelope whose `data` is
//! `{"requestId","approved":bool,"reason"?}`. The runner starts following the response
//! subject on the JetStream stream before it publishes the request, so neither a fast answer
//! nor one sent while its connection to NATS is down (a NATS restart) is missed; no answer
//! within the policy's timeout counts as a denial.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sympozium_bus::jwt::UserCredentials;
use sympozium_bus::origin::Origin;
use sympozium_bus::scope::Identity;
use sympozium_bus::{Bus, BusOptions, topics};
use tokio::sync::OnceCell;

use crate::duration::format_duration;
use crate::util::unix_nanos;

/// Why a tool call was not approved. The texts reach the model in the tool's result.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// `NATS_CREDS` does not hold valid credentials.
    #[error("NATS_CREDS: {0}")]
    InvalidCredentials(#[source] sympozium_bus::jwt::JwtError),
    /// The run has no bus to ask on.
    #[error("no approval channel is configured (EVENT_BUS_URL is empty)")]
    NotConfigured,
    /// Connecting to NATS failed.
    #[error("cannot reach the event bus: {0}")]
    Unreachable(#[source] sympozium_bus::Error),
    /// NATS did not answer within the connect budget.
    #[error("cannot reach the event bus: connect timed out")]
    ConnectTimeout,
    /// The response subject could not be followed.
    #[error("following approval responses: {0}")]
    Follow(#[source] sympozium_bus::Error),
    /// The request could not be published.
    #[error("publishing approval request: {0}")]
    Publish(#[source] sympozium_bus::Error),
    /// The reviewer refused (their reason, or `denied by reviewer`).
    #[error("{reason}")]
    Denied {
        /// The reviewer's reason.
        reason: String,
    },
    /// The response stream ended before an answer came.
    #[error("the approval subscription closed")]
    SubscriptionClosed,
    /// No answer within the policy's approval timeout.
    #[error("no approval within {}", format_duration(*.0))]
    TimedOut(Duration),
}

/// Asks for approvals; connects on first use so runs without `ask` tools never touch NATS.
pub struct Approver {
    url: String,
    run_id: String,
    instance: String,
    namespace: String,
    timeout: Duration,
    options: BusOptions,
    bus: OnceCell<Bus>,
}

/// The namespace on the bus: a runner not told its namespace runs in `default`.
fn bus_namespace(namespace: &str) -> &str {
    if namespace.is_empty() { "default" } else { namespace }
}

/// How a run connects: as its own NATS user and signing as itself, when its `<run>-bus`
/// Secret gave it credentials (`NATS_CREDS`) and a key (empty values: NATS without
/// authorization). Credentials that do not parse are an error naming the variable.
pub fn bus_options(
    creds: &str,
    origin_key: &str,
    namespace: &str,
    run: &str,
    instance: &str,
) -> Result<BusOptions, ApprovalError> {
    let user = if creds.trim().is_empty() {
        None
    } else {
        Some(UserCredentials::from_creds(creds).map_err(ApprovalError::InvalidCredentials)?)
    };
    let instance = Some(instance.to_string()).filter(|i| !i.is_empty());
    Ok(BusOptions {
        user,
        identity: Some(Identity::run(bus_namespace(namespace), run, instance)),
        origin: (!origin_key.is_empty())
            .then(|| Origin::new(sympozium_bus::origin::run_identity(namespace, run), origin_key)),
        ..Default::default()
    })
}

impl Approver {
    /// An approver talking to `url`.
    pub fn new(url: &str, run_id: &str, instance: &str, namespace: &str, timeout: Duration) -> Self {
        Self {
            url: url.to_string(),
            run_id: run_id.to_string(),
            instance: instance.to_string(),
            namespace: namespace.to_string(),
            timeout,
            options: BusOptions::default(),
            bus: OnceCell::new(),
        }
    }

    /// Connects with `options` (credentials and the run's origin).
    pub fn with_bus_options(mut self, options: BusOptions) -> Self {
        self.options = options;
        self
    }

    async fn bus(&self) -> Result<&Bus, ApprovalError> {
        self.bus
            .get_or_try_init(|| async {
                // Connecting retries until NATS answers: bounded here, a run must not hang.
                match tokio::time::timeout(
                    Duration::from_secs(10),
                    Bus::connect_with(&self.url, self.options.clone()),
                )
                .await
                {
                    Ok(Ok(bus)) => Ok(bus),
                    Ok(Err(e)) => Err(ApprovalError::Unreachable(e)),
                    Err(_) => Err(ApprovalError::ConnectTimeout),
                }
            })
            .await
    }

    /// Requests approval for `tool(args)`. `Ok` = approved; `Err` = refused, or no verdict.
    pub async fn request(&self, tool: &str, args: &Value) -> Result<(), ApprovalError> {
        let bus = self.bus().await?;
        let mut responses = bus
            .follow(&topics::approval_response(bus_namespace(&self.namespace), &self.run_id))
            .await
            .map_err(ApprovalError::Follow)?;
        let request_id = format!("{}-{}", self.run_id, unix_nanos());
        let meta = BTreeMap::from([
            ("agentRunID".to_string(), self.run_id.clone()),
            ("instanceName".to_string(), self.instance.clone()),
        ]);
        let data = json!({"requestId": request_id, "agentRunId": self.run_id, "instanceName": self.instance,
                          "namespace": self.namespace, "tool": tool, "arguments": args});
        publish_request(bus, meta, &data, self.timeout).await?;
        tracing::info!(tool, request_id, "waiting for tool approval");
        let wait = async {
            while let Some(envelope) = responses.recv().await {
                let data = &envelope.data;
                if data.get("requestId").and_then(Value::as_str) != Some(request_id.as_str()) {
                    continue;
                }
                let approved = data.get("approved").and_then(Value::as_bool).unwrap_or(false);
                let reason = data.get("reason").and_then(Value::as_str).unwrap_or("denied by reviewer");
                return if approved {
                    Ok(())
                } else {
                    Err(ApprovalError::Denied { reason: reason.to_string() })
                };
            }
            Err(ApprovalError::SubscriptionClosed)
        };
        match tokio::time::timeout(self.timeout, wait).await {
            Ok(verdict) => verdict,
            Err(_) => Err(ApprovalError::TimedOut(self.timeout)),
        }
    }
}

/// Publishes the request, again if NATS went away before acknowledging it: a bus restart
/// while the request is in flight must not read as the reviewer's refusal. A repeat carries
/// the same request id, so a reviewer who saw the first one answers both with one verdict.
async fn publish_request(
    bus: &Bus,
    meta: BTreeMap<String, String>,
    data: &Value,
    budget: Duration,
) -> Result<(), ApprovalError> {
    let deadline = tokio::time::Instant::now() + budget;
    let mut attempt = 0u32;
    loop {
        match bus.publish(topics::TOOL_APPROVAL_REQUEST, meta.clone(), data).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                attempt = attempt.saturating_add(1);
                let delay = Duration::from_millis(250u64.saturating_mul(u64::from(attempt.min(8))));
                if attempt >= 10 || tokio::time::Instant::now() + delay >= deadline {
                    return Err(ApprovalError::Publish(e));
                }
                tracing::warn!(error = %e, attempt, "approval request not acknowledged; publishing again");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
