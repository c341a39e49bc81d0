//! Run-originated bus messages (completions, spawn and schedule requests, approval
//! requests) act only on the run that provably sent them. On a bus that verifies origins, a
//! message must be signed as `run/<namespace>/<run>`; every field that names the run or its
//! namespace is then overwritten with the proven values, so whatever the message claims,
//! the routers act for the sender and no one else. Without verification (a NATS without
//! authorization) messages pass unchanged.

use serde_json::Value;
use sympozium_bus::{Bus, Delivery};

/// A run-originated message that no run provably sent.
#[derive(Debug, thiserror::Error)]
#[error("{topic} message not signed by a run (proven origin: {origin}); refused")]
pub struct Unsigned {
    /// The message's topic.
    pub topic: String,
    /// The origin the bus proved, `none` when it proved none.
    pub origin: String,
}

/// Pins `delivery` to its proven run, or says why it is refused.
pub fn pin(bus: &Bus, delivery: &mut Delivery) -> Result<(), Unsigned> {
    if !bus.verifies_origin() {
        return Ok(());
    }
    let proven = delivery.origin.clone().unwrap_or_default();
    let Some((ns, run)) = proven.strip_prefix("run/").and_then(|rest| rest.split_once('/')) else {
        return Err(Unsigned {
            topic: delivery.envelope.topic.to_string(),
            origin: if proven.is_empty() { "none".to_string() } else { proven },
        });
    };
    let env = &mut delivery.envelope;
    env.metadata.insert("agentRunID".into(), run.into());
    env.metadata.insert("namespace".into(), ns.into());
    if let Value::Object(data) = &mut env.data {
        for key in ["agentRunId", "agentRunID", "parentRunId"] {
            if data.contains_key(key) {
                data.insert(key.into(), Value::String(run.into()));
            }
        }
        if data.contains_key("namespace") {
            data.insert("namespace".into(), Value::String(ns.into()));
        }
    }
    Ok(())
}
