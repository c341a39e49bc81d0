//! The channel router: chat messages from channel pods become AgentRuns, and finished
//! runs answer in the chat, thread and instance they came from.
//!
//! * `channel.message.received.<ns>.<instance>` (durable consumer [`INBOUND_CONSUMER`]): the instance is
//!   found by namespace and name (by name alone only when unambiguous), the channel's
//!   access control applies ([`access`]; a refused sender gets the `denyMessage`), and the
//!   run `<instance>-ch-<key>` is created ([`build::agent_run`]) — the key derives from the
//!   message, so a redelivered or re-published message never makes a second run.
//! * Replies ([`reply`]): `agent.run.completed` (durable consumer [`COMPLETION_CONSUMER`])
//!   and a watch on channel runs reaching Succeeded/Failed; whichever comes first sends
//!   `channel.message.send.<ns>.<instance>` with metadata `{instanceName, channel, namespace}` and the
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
pub mod error;
pub mod history;
pub mod inbound;
pub mod reply;

#[cfg(test)]
mod build_tests;

use std::sync::Arc;

use conversations::ConversationIndex;
use kube::Client;
use sympozium_bus::{Bus, Delivery, Handler, Outcome, topics};

use crate::context::Context;
use crate::routers::observed;

/// Durable consumer of inbound messages (`channel.message.received.>`), shared by
/// controller replicas.
pub const INBOUND_CONSUMER: &str = "channel-router-inbound-scoped";
/// Durable consumer of run completions for replies, shared by controller replicas.
pub const COMPLETION_CONSUMER: &str = "channel-router-replies";
/// Durable consumer of tool approval requests, shared by controller replicas.
pub const APPROVAL_CONSUMER: &str = "channel-router-approvals";

/// Inbound chat messages, as [`Bus::serve`] hands them out.
struct Inbound {
    ctx: Arc<Context>,
    bus: Bus,
    conversations: ConversationIndex,
}

impl Handler for Inbound {
    async fn handle(&mut self, d: &mut Delivery) -> Outcome {
        let span = tracing::info_span!(
            "channel_router.handle_inbound",
            sympozium.channel = tracing::field::Empty,
            sympozium.instance = tracing::field::Empty,
            sympozium.sender.id = tracing::field::Empty,
            sympozium.access.denied = tracing::field::Empty
        );
        sympozium_telemetry::set_parent_from_traceparent(&span, d.traceparent.as_deref().unwrap_or_default());
        let handled = tracing::Instrument::instrument(
            inbound::handle(&self.ctx, &self.bus, &self.conversations, d),
            span.clone(),
        )
        .await;
        if matches!(handled, Ok(inbound::Handled::Denied)) {
            span.record("sympozium.access.denied", true);
        }
        match handled {
            Ok(inbound::Handled::Ignored(reason)) => {
                tracing::warn!(%reason, "inbound message dropped");
                Outcome::Ack
            }
            Ok(_) => Outcome::Ack,
            Err(e) => {
                tracing::warn!(error = %e, "inbound message failed; will retry");
                Outcome::retry()
            }
        }
    }
}

/// Run completions to reply to, as [`Bus::serve`] hands them out.
struct Completions {
    client: Client,
    bus: Bus,
    namespace: Option<String>,
}

impl Handler for Completions {
    async fn handle(&mut self, d: &mut Delivery) -> Outcome {
        if let Err(reason) = crate::run_origin::pin(&self.bus, d) {
            tracing::warn!(%reason, "bus message dropped");
            return Outcome::Ack;
        }
        match reply::on_completed(&self.client, &self.bus, d, self.namespace.as_deref()).await {
            Ok(()) => Outcome::Ack,
            Err(e) => {
                tracing::warn!(error = %e, "reply failed; will retry");
                Outcome::retry()
            }
        }
    }
}

/// Tool approval requests to put to the chat, as [`Bus::serve`] hands them out.
struct Approvals {
    client: Client,
    bus: Bus,
    namespace: Option<String>,
}

impl Handler for Approvals {
    async fn handle(&mut self, d: &mut Delivery) -> Outcome {
        if let Err(reason) = crate::run_origin::pin(&self.bus, d) {
            tracing::warn!(%reason, "bus message dropped");
            return Outcome::Ack;
        }
        match approval::on_request(&self.client, &self.bus, d, self.namespace.as_deref()).await {
            Ok(()) => Outcome::Ack,
            Err(e) => {
                tracing::warn!(error = %e, "asking for an approval in the chat failed; will retry");
                Outcome::retry()
            }
        }
    }
}

/// The topic a message with `meta` (`namespace`, `instanceName`) goes out on: that
/// instance's own outbound subject, which only its channel pods can read.
pub(crate) fn send_topic(meta: &std::collections::BTreeMap<String, String>) -> String {
    let get = |k: &str| meta.get(k).map_or("", String::as_str);
    topics::channel_send(get("namespace"), get("instanceName"))
}

/// Routes chat messages, replies and tool approvals until the process stops. With a
/// namespace in `ctx` (the controller's `--watch-namespace`) it looks at channel runs of that
/// namespace only: a router answers every finished channel run it sees on *its* bus, so a
/// router watching all namespaces would take the replies of runs another router (another
/// bus: another installation or test on the same cluster) is waiting to send.
pub async fn run(ctx: Arc<Context>, bus: Bus) {
    let (client, namespace) = (ctx.client.clone(), ctx.namespace.clone());
    let conversations = ConversationIndex::default();
    let inbound = topics::every(topics::CHANNEL_MESSAGE_RECEIVED);
    let handle_inbound = Inbound { ctx: ctx.clone(), bus: bus.clone(), conversations: conversations.clone() };
    let completions = Completions { client: client.clone(), bus: bus.clone(), namespace: namespace.clone() };
    let approvals = Approvals { client: client.clone(), bus: bus.clone(), namespace: namespace.clone() };
    futures::join!(
        conversations.watch(client.clone(), namespace.clone()),
        bus.serve(INBOUND_CONSUMER, &inbound, observed(&ctx, "channel-router-inbound", handle_inbound)),
        bus.serve(
            COMPLETION_CONSUMER,
            topics::AGENT_RUN_COMPLETED,
            observed(&ctx, "channel-router-replies", completions)
        ),
        bus.serve(
            APPROVAL_CONSUMER,
            topics::TOOL_APPROVAL_REQUEST,
            observed(&ctx, "channel-router-approvals", approvals)
        ),
        reply::watch_finished(client.clone(), bus.clone(), namespace.clone())
    );
}

/// Channel runs of `namespace`, or of every namespace.
fn runs_api(client: &Client, namespace: Option<&str>) -> kube::Api<sympozium_api::AgentRun> {
    match namespace {
        Some(ns) => kube::Api::namespaced(client.clone(), ns),
        None => kube::Api::all(client.clone()),
    }
}
