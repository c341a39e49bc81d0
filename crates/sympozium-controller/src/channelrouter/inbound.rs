//! Inbound chat messages → access control → one AgentRun per message.

use std::collections::BTreeMap;

use kube::api::{ListParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use sympozium_api::{AgentRun, SympoziumInstance, labels};
use sympozium_bus::payloads::{InboundMessage, OutboundMessage};
use sympozium_bus::{Bus, Delivery, origin, topics};
use sympozium_kube::FIELD_MANAGER;

use super::access::{self, Access};
use super::conversations::ConversationIndex;
use super::error::{Refusal, RouterError};
use super::{approval, build, history};
use crate::context::Context;

/// What happened to an inbound message.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    /// Dropped (empty, unknown or ambiguous instance); the reason is logged.
    Ignored(String),
    /// Refused by access control.
    Denied,
    /// The answer to a tool approval the conversation's run waits for.
    Answered,
    /// The run exists (created now, or already by an earlier delivery).
    Run(String),
}

/// Finds the instance: by namespace and name when the message says the namespace, else by
/// name across the controller's namespaces, refusing an ambiguous match.
/// `Ok(Err(_))`: the message names no usable instance; `Err`: the lookup failed.
async fn instance(
    ctx: &Context,
    name: &str,
    namespace: Option<&str>,
) -> Result<Result<SympoziumInstance, Refusal>, RouterError> {
    if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
        let instance = format!("{ns}/{name}");
        if !ctx.in_scope(ns) {
            return Ok(Err(Refusal::InstanceNotFound { instance }));
        }
        let found = ctx
            .instance(ns, name)
            .await
            .map_err(|source| RouterError::InstanceLookup { instance: instance.clone(), source })?;
        return Ok(found.ok_or(Refusal::InstanceNotFound { instance }));
    }
    let all: Api<SympoziumInstance> = ctx.scoped();
    let mut found = all
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await
        .map_err(|source| RouterError::InstanceLookup { instance: name.to_string(), source })?
        .items;
    Ok(match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Refusal::InstanceNotFound { instance: name.to_string() }),
        count => Err(Refusal::AmbiguousInstance { name: name.to_string(), count }),
    })
}

/// Whether the message may speak for `inst`: it must arrive through a channel type the
/// instance configures, and — on an authenticated bus — be signed by that instance's own
/// channel pods (a pod of another instance holds another key, whatever the message claims).
fn check_origin(
    bus: &Bus,
    delivery: &Delivery,
    inst: &SympoziumInstance,
    msg: &InboundMessage,
) -> Result<(), Refusal> {
    let (ns, name) = (inst.namespace().unwrap_or_default(), inst.name_any());
    if !inst.spec.channels.iter().any(|c| c.type_.as_str() == msg.channel) {
        return Err(Refusal::NoSuchChannel { namespace: ns, name, channel: msg.channel.clone() });
    }
    // The subject is the instance's own (NATS lets a channel user publish on no other):
    // a message for another instance than its subject names is refused.
    if let Some((subject_ns, subject_name)) =
        topics::scope_of(topics::CHANNEL_MESSAGE_RECEIVED, delivery.topic())
        && (subject_ns != ns || subject_name != name)
    {
        return Err(Refusal::WrongSubject {
            subject_identity: origin::channel_identity(subject_ns, subject_name),
            namespace: ns,
            name,
        });
    }
    if bus.verifies_origin() {
        let expected = origin::channel_identity(&ns, &name);
        if delivery.origin.as_deref() != Some(expected.as_str()) {
            return Err(Refusal::NotSigned {
                namespace: ns,
                name,
                origin: delivery.origin.as_deref().unwrap_or("none").to_string(),
            });
        }
    }
    Ok(())
}

/// Handles one `channel.message.received`; `Err` = transient, redeliver. A message the
/// instance refuses (a sender access control keeps out, a channel it does not have, a
/// message its own channel pods did not sign) is also an Event on the instance, so
/// `kubectl describe` shows why a chat got no run.
pub async fn handle(
    ctx: &Context,
    bus: &Bus,
    conversations: &ConversationIndex,
    delivery: &Delivery,
) -> Result<Handled, RouterError> {
    let env = &delivery.envelope;
    let mut msg: InboundMessage = serde_json::from_value(env.data.clone()).unwrap_or_default();
    if msg.instance_name.is_empty() {
        msg.instance_name = env.meta("instanceName").to_string();
    }
    if msg.channel.is_empty() {
        msg.channel = env.meta("channel").to_string();
    }
    if msg.text.trim().is_empty() || msg.instance_name.is_empty() {
        return Ok(Handled::Ignored("message without text or instance".into()));
    }
    let span = tracing::Span::current();
    span.record("sympozium.channel", msg.channel.as_str());
    span.record("sympozium.instance", msg.instance_name.as_str());
    span.record("sympozium.sender.id", msg.sender_id.as_str());
    let namespace = msg.namespace.clone().or_else(|| env.metadata.get("namespace").cloned());
    let client = &ctx.client;
    let inst = match instance(ctx, &msg.instance_name, namespace.as_deref()).await? {
        Ok(i) => i,
        Err(reason) => return Ok(Handled::Ignored(reason.to_string())),
    };
    let ns = inst.namespace().unwrap_or_default();
    if let Err(reason) = check_origin(bus, delivery, &inst, &msg) {
        let note = format!("message on {} dropped: {reason}", msg.channel);
        ctx.publish_as(&inst, "ChannelMessage", EventType::Warning, "MessageRejected", &note).await;
        return Ok(Handled::Ignored(reason.to_string()));
    }
    let id = build::platform_id(&msg, &env.metadata);
    let now = jiff::Timestamp::now().as_nanosecond();
    // Without a platform id the stream position identifies the message (the same on every
    // redelivery); should even that be unknown, the message is never mistaken for another.
    let position =
        delivery.stream_sequence().unwrap_or_else(|| u64::try_from(now).unwrap_or_default() | (1 << 63));
    let key = build::message_key(&ns, &msg, id.as_deref(), position);
    if let Access::Deny { reason, reply } = access::check(&inst.spec, &msg) {
        tracing::info!(instance = %msg.instance_name, channel = %msg.channel, sender = %msg.sender_id, %reason, "message refused");
        let note = format!("{} sender {} refused: {reason}", msg.channel, msg.sender_id);
        ctx.publish_as(&inst, "ChannelMessage", EventType::Normal, "SenderRefused", &note).await;
        if let Some(text) = reply {
            let out = OutboundMessage {
                channel: msg.channel.clone(),
                chat_id: msg.chat_id.clone(),
                thread_id: msg.thread_id.clone(),
                text,
                ..Default::default()
            };
            let meta = BTreeMap::from([
                ("instanceName".to_string(), msg.instance_name.clone()),
                ("channel".to_string(), msg.channel.clone()),
                ("namespace".to_string(), ns.clone()),
            ]);
            let once = format!("deny/{ns}/{key}");
            bus.publish_once(&super::send_topic(&meta), meta, &out, &once).await?;
        }
        return Ok(Handled::Denied);
    }
    let conversation = history::key(&ns, &msg);
    if approval::try_answer(client, bus, &ns, &msg, &conversation).await? {
        return Ok(Handled::Answered);
    }
    // The run continues the trace under this router span (the message's own context when
    // telemetry is off).
    let traceparent = sympozium_telemetry::current_traceparent().or_else(|| delivery.traceparent.clone());
    let mut run = build::agent_run(&inst, &msg, &key, id.as_deref(), traceparent.as_deref(), now);
    let name = run.name_any();
    let api: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    // Conversation continuity: earlier turns of this chat/thread go ahead of the message —
    // from the index, or read from the conversation's runs until the index is filled.
    let turns = match conversations.turns(&ns, &inst.name_any(), &conversation, &name) {
        Some(turns) => turns,
        None => {
            let selector =
                format!("{}={},{}={conversation}", labels::INSTANCE, inst.name_any(), history::CONVERSATION);
            let earlier = api.list(&ListParams::default().labels(&selector)).await?.items;
            history::turns(&earlier, &name)
        }
    };
    run.spec.task = history::task(&turns, &msg.text);
    run.labels_mut().insert(history::CONVERSATION.into(), conversation);
    run.annotations_mut()
        .insert(history::MESSAGE.into(), history::cut(&msg.text, history::MAX_MESSAGE_CHARS));
    let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    match api.create(&params, &run).await {
        Ok(_) => {
            tracing::info!(run = %name, namespace = %ns, channel = %msg.channel, "run created for a chat message")
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            tracing::info!(run = %name, "message seen before; its run already exists")
        }
        Err(source) => return Err(RouterError::CreateRun { namespace: ns, name, source }),
    }
    Ok(Handled::Run(name))
}
