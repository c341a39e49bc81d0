//! Human approval for `ask` tools over the event bus (spec 08 envelope).
//!
//! Request: subject `sympozium.tool.approval.request`, envelope
//! `{"topic":"tool.approval.request","timestamp","metadata":{"agentRunID","instanceName"},
//!   "data":{"requestId","agentRunId","instanceName","namespace","tool","arguments"}}`.
//! Response: subject `sympozium.tool.approval.response`, envelope whose `data` is
//! `{"requestId","approved":bool,"reason"?}`. The runner subscribes before publishing so a
//! fast answer is not missed; no answer within the policy's timeout counts as a denial.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::duration::format_duration;
use crate::util::{rfc3339_now, unix_nanos};

/// Subject approval requests are published on.
pub const REQUEST_SUBJECT: &str = "sympozium.tool.approval.request";
/// Subject approval responses arrive on.
pub const RESPONSE_SUBJECT: &str = "sympozium.tool.approval.response";

/// Asks for approvals; connects on first use so runs without `ask` tools never touch NATS.
pub struct Approver {
    url: String,
    run_id: String,
    instance: String,
    namespace: String,
    timeout: Duration,
    client: OnceCell<async_nats::Client>,
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
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<&async_nats::Client, String> {
        self.client
            .get_or_try_init(|| async {
                let connect = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(5))
                    .connect(self.url.as_str());
                match tokio::time::timeout(Duration::from_secs(10), connect).await {
                    Ok(Ok(c)) => Ok(c),
                    Ok(Err(e)) => Err(format!("cannot reach the event bus: {e}")),
                    Err(_) => Err("cannot reach the event bus: connect timed out".to_string()),
                }
            })
            .await
    }

    /// Requests approval for `tool(args)`. `Ok` = approved; `Err(reason)` = refused.
    pub async fn request(&self, tool: &str, args: &Value) -> Result<(), String> {
        let client = self.client().await?;
        let mut responses =
            client.subscribe(RESPONSE_SUBJECT).await.map_err(|e| format!("subscribing for approval: {e}"))?;
        let request_id = format!("{}-{}", self.run_id, unix_nanos());
        let envelope = json!({
            "topic": "tool.approval.request",
            "timestamp": rfc3339_now(),
            "metadata": {"agentRunID": self.run_id, "instanceName": self.instance},
            "data": {"requestId": request_id, "agentRunId": self.run_id, "instanceName": self.instance,
                     "namespace": self.namespace, "tool": tool, "arguments": args},
        });
        client
            .publish(REQUEST_SUBJECT, envelope.to_string().into())
            .await
            .map_err(|e| format!("publishing approval request: {e}"))?;
        client.flush().await.map_err(|e| format!("publishing approval request: {e}"))?;
        tracing::info!(tool, request_id, "waiting for tool approval");
        let wait = async {
            while let Some(message) = responses.next().await {
                let Ok(envelope) = serde_json::from_slice::<Value>(&message.payload) else { continue };
                let data = envelope.get("data").unwrap_or(&envelope);
                if data.get("requestId").and_then(Value::as_str) != Some(request_id.as_str()) {
                    continue;
                }
                let approved = data.get("approved").and_then(Value::as_bool).unwrap_or(false);
                let reason = data.get("reason").and_then(Value::as_str).unwrap_or("denied by reviewer");
                return if approved { Ok(()) } else { Err(reason.to_string()) };
            }
            Err("the approval subscription closed".to_string())
        };
        match tokio::time::timeout(self.timeout, wait).await {
            Ok(verdict) => verdict,
            Err(_) => Err(format!("no approval within {}", format_duration(self.timeout))),
        }
    }
}
