//! The TUI on the event bus (when `--nats-url` is given): streamed answers
//! (`agent.stream.chunk`) and tool approval requests (`tool.approval.request`) arrive as
//! updates; approval answers go out as `tool.approval.response.<ns>.<run>` (to the asking run only). Plain NATS subscriptions:
//! the TUI wants what happens while it looks, not a durable backlog.

use std::collections::BTreeMap;

use futures::StreamExt;
use serde_json::json;
use sympozium_bus::{Bus, Envelope, subject, topics};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::data::{Approval, Connection, Update};

/// An approval answer for the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The request.
    pub approval: Approval,
    /// Allowed or refused.
    pub approved: bool,
}

fn update_of(env: &Envelope) -> Option<Update> {
    let text = |k: &str| env.data[k].as_str().unwrap_or_default().to_string();
    match env.topic.as_str() {
        topics::AGENT_STREAM_CHUNK => {
            let run = env.meta("agentRunID").to_string();
            (!run.is_empty()).then(|| Update::Chunk {
                run,
                index: env.data["index"].as_u64().unwrap_or_default(),
                text: text("content"),
            })
        }
        topics::TOOL_APPROVAL_REQUEST => {
            let run = Some(text("agentRunId"))
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| env.meta("agentRunID").into());
            let ns = Some(text("namespace"))
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| env.meta("namespace").into());
            let instance = Some(text("instanceName"))
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| env.meta("instanceName").into());
            let request_id = text("requestId");
            (!request_id.is_empty() && !run.is_empty()).then(|| {
                Update::Approval(Approval {
                    request_id,
                    run,
                    ns,
                    instance,
                    tool: text("tool"),
                    arguments: env.data["arguments"].to_string(),
                })
            })
        }
        topic if topics::scope_of(topics::TOOL_APPROVAL_RESPONSE, topic).is_some() => {
            Some(Update::Answered(text("requestId")))
        }
        _ => None,
    }
}

/// Connects (as the operator user when `creds`, a `.creds` path or text, is given),
/// forwards what arrives, publishes answers; reports the connection.
pub async fn run(
    url: String,
    creds: Option<String>,
    tx: UnboundedSender<Update>,
    mut answers: UnboundedReceiver<Answer>,
) {
    let _ = tx.send(Update::Bus(Connection::Connecting));
    // The TUI is a human at the keyboard: the operator user, which may answer approvals.
    let options = match sympozium_bus::BusOptions::operator(creds.as_deref()) {
        Ok(o) => o,
        Err(e) => {
            let _ = tx.send(Update::Bus(Connection::Disconnected(format!("--nats-creds: {e}"))));
            return;
        }
    };
    let bus = match Bus::connect_with(&url, options).await {
        Ok(b) => b,
        Err(e) => {
            let _ = tx.send(Update::Bus(Connection::Disconnected(e.to_string())));
            return;
        }
    };
    let mut subscriptions = Vec::new();
    let answers_of_all_runs = topics::every(topics::TOOL_APPROVAL_RESPONSE);
    for topic in [topics::AGENT_STREAM_CHUNK, topics::TOOL_APPROVAL_REQUEST, answers_of_all_runs.as_str()] {
        match bus.client().subscribe(subject(topic)).await {
            Ok(s) => subscriptions.push(s),
            Err(e) => {
                let _ = tx.send(Update::Bus(Connection::Disconnected(e.to_string())));
                return;
            }
        }
    }
    let _ = tx.send(Update::Bus(Connection::Connected));
    let mut messages = futures::stream::select_all(subscriptions);
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else { return };
                if let Ok(env) = serde_json::from_slice::<Envelope>(&msg.payload)
                    && let Some(update) = update_of(&env)
                    && tx.send(update).is_err()
                {
                    return;
                }
            }
            answer = answers.recv() => {
                let Some(Answer { approval: a, approved }) = answer else { return };
                let meta = BTreeMap::from([
                    ("agentRunID".to_string(), a.run.clone()),
                    ("instanceName".to_string(), a.instance.clone()),
                    ("namespace".to_string(), a.ns.clone()),
                ]);
                let body = json!({"requestId": a.request_id, "approved": approved,
                                  "reason": format!("{} in the TUI", if approved { "approved" } else { "refused" })});
                let update = match bus.publish(&topics::approval_response(if a.ns.is_empty() { "default" } else { &a.ns }, &a.run), meta, &body).await {
                    Ok(()) => Update::Notice(format!("{} {} for {}", a.tool, if approved { "allowed" } else { "refused" }, a.run)),
                    Err(e) => Update::Error(format!("answering the approval: {e}")),
                };
                let _ = tx.send(update);
            }
        }
    }
}
