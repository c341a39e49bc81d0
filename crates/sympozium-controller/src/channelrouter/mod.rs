//! The channel router: chat messages from channel pods become AgentRuns, and finished
//! runs answer in the chat, thread and instance they came from.
//!
//! * `channel.message.received` (durable consumer [`INBOUND_CONSUMER`]): the instance is
//!   found by namespace and name (by name alone only when unambiguous), the channel's
//!   access control applies ([`access`]; a refused sender gets the `denyMessage`), and the
//!   run `<instance>-ch-<key>` is created ([`build::agent_run`]) — the key derives from the
//!   message, so a redelivered or re-published message never makes a second run.
//! * Replies ([`reply`]): `agent.run.completed` (durable consumer [`COMPLETION_CONSUMER`])
//!   and a watch on channel runs reaching Succeeded/Failed; whichever comes first sends
//!   `channel.message.send` with metadata `{instanceName, channel, namespace}` and the
//!   original thread, exactly once.
//! * Conversations ([`history`], [`conversations`]): each new run of a chat carries the
//!   chat's latest answered turns, looked up in an in-memory index kept from a watch on
//!   channel runs, so the cost does not grow with the chat's length.
//! * Tool approvals ([`approval`], durable consumer [`APPROVAL_CONSUMER`]): an `ask` tool of a
//!   channel run is put to the chat as a yes/no question; the answer goes back to the run.

pub mod access;
pub mod approval;
pub mod build;
pub mod conversations;
pub mod history;
pub mod inbound;
pub mod reply;

#[cfg(test)]
mod build_tests;

use conversations::ConversationIndex;
use kube::Client;
use sympozium_bus::{Bus, topics};

/// Durable consumer of inbound messages, shared by controller replicas.
pub const INBOUND_CONSUMER: &str = "channel-router-inbound";
/// Durable consumer of run completions for replies, shared by controller replicas.
pub const COMPLETION_CONSUMER: &str = "channel-router-replies";
/// Durable consumer of tool approval requests, shared by controller replicas.
pub const APPROVAL_CONSUMER: &str = "channel-router-approvals";

async fn inbound_loop(client: Client, bus: Bus, conversations: ConversationIndex) {
    let mut deliveries = bus.durable(INBOUND_CONSUMER, topics::CHANNEL_MESSAGE_RECEIVED);
    while let Some(d) = deliveries.recv().await {
        let span = tracing::info_span!(
            "channel_router.handle_inbound",
            sympozium.channel = tracing::field::Empty,
            sympozium.instance = tracing::field::Empty,
            sympozium.sender.id = tracing::field::Empty,
            sympozium.access.denied = tracing::field::Empty
        );
        sympozium_telemetry::set_parent_from_traceparent(&span, d.traceparent.as_deref().unwrap_or_default());
        let handled =
            tracing::Instrument::instrument(inbound::handle(&client, &bus, &conversations, &d), span.clone())
                .await;
        if matches!(handled, Ok(inbound::Handled::Denied)) {
            span.record("sympozium.access.denied", true);
        }
        match handled {
            Ok(inbound::Handled::Ignored(reason)) => {
                tracing::warn!(%reason, "inbound message dropped");
                d.ack().await;
            }
            Ok(_) => d.ack().await,
            Err(e) => {
                tracing::warn!(error = %e, "inbound message failed; will retry");
                d.nak().await;
            }
        }
    }
}

async fn completion_loop(client: Client, bus: Bus) {
    let mut deliveries = bus.durable(COMPLETION_CONSUMER, topics::AGENT_RUN_COMPLETED);
    while let Some(mut d) = deliveries.recv().await {
        if let Err(reason) = crate::run_origin::pin(&bus, &mut d) {
            tracing::warn!(%reason, "bus message dropped");
            d.ack().await;
            continue;
        }
        match reply::on_completed(&client, &bus, &d).await {
            Ok(()) => d.ack().await,
            Err(e) => {
                tracing::warn!(error = %e, "reply failed; will retry");
                d.nak().await;
            }
        }
    }
}

async fn approval_loop(client: Client, bus: Bus) {
    let mut deliveries = bus.durable(APPROVAL_CONSUMER, topics::TOOL_APPROVAL_REQUEST);
    while let Some(mut d) = deliveries.recv().await {
        if let Err(reason) = crate::run_origin::pin(&bus, &mut d) {
            tracing::warn!(%reason, "bus message dropped");
            d.ack().await;
            continue;
        }
        match approval::on_request(&client, &bus, &d).await {
            Ok(()) => d.ack().await,
            Err(e) => {
                tracing::warn!(error = %e, "asking for an approval in the chat failed; will retry");
                d.nak().await;
            }
        }
    }
}

/// Routes chat messages, replies and tool approvals until the process stops.
pub async fn run(client: Client, bus: Bus) {
    let conversations = ConversationIndex::default();
    futures::join!(
        conversations.clone().watch(client.clone()),
        inbound_loop(client.clone(), bus.clone(), conversations),
        completion_loop(client.clone(), bus.clone()),
        approval_loop(client.clone(), bus.clone()),
        reply::watch_finished(client, bus)
    );
}
