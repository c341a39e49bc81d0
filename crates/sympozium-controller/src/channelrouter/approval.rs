//! Tool approvals in the chat: when a channel run's agent asks to use an `ask` tool
//! (`tool.approval.request`), the question goes to the chat the run answers, with a short
//! code; the sender who started the run answers `yes <code>` or `no <code>` (the code may
//! be left out when only one approval waits), and the router publishes
//! `tool.approval.response` `{requestId, approved, reason}` for the waiting runner instead
//! of starting a new run.

use std::collections::BTreeMap;

use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sympozium_api::{AgentRun, labels};
use sympozium_bus::payloads::InboundMessage;
use sympozium_bus::{Bus, Delivery, topics};
use sympozium_kube::FIELD_MANAGER;

use super::build::{self, SENDER_ID};
use super::error::RouterError;
use super::history::{CONVERSATION, cut};

/// Annotation: the approval request a run waits for.
pub const REQUEST_ID: &str = "sympozium.ai/approval-request-id";
/// Annotation: the short code of that request, as shown in the chat.
pub const CODE: &str = "sympozium.ai/approval-code";

/// The short code of a request id.
pub fn code(request_id: &str) -> String {
    hex::encode(Sha256::digest(request_id.as_bytes()))[..4].to_string()
}

/// Reads a chat answer: `yes`/`y`/`approve` or `no`/`n`/`deny`, optionally followed by the
/// code; `None` for anything else.
pub fn parse_answer(text: &str) -> Option<(bool, Option<String>)> {
    let mut words = text.split_whitespace();
    let approved = match words.next()?.trim_end_matches(['.', '!']).to_ascii_lowercase().as_str() {
        "yes" | "y" | "approve" | "approved" => true,
        "no" | "n" | "deny" | "denied" => false,
        _ => return None,
    };
    let code = words.next().map(|c| c.to_ascii_lowercase());
    if words.next().is_some() {
        return None;
    }
    Some((approved, code))
}

/// The question put to the chat.
pub fn question(tool: &str, arguments: &Value, code: &str) -> String {
    let args = cut(&arguments.to_string(), 300);
    format!(
        "The agent wants to use the tool `{tool}` with {args}.\nReply \"yes {code}\" to allow it or \"no {code}\" to refuse."
    )
}

fn params() -> PatchParams {
    PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }
}

/// Handles one `tool.approval.request`: asks the chat when the run came from one (within
/// `scope`, the controller's namespace, when set).
pub async fn on_request(
    client: &Client,
    bus: &Bus,
    delivery: &Delivery,
    scope: Option<&str>,
) -> Result<(), RouterError> {
    let data = &delivery.envelope.data;
    let text = |k: &str| data[k].as_str().unwrap_or_default().to_string();
    let (request_id, run, tool) = (text("requestId"), text("agentRunId"), text("tool"));
    let run = if run.is_empty() { delivery.envelope.meta("agentRunID").to_string() } else { run };
    if request_id.is_empty() || run.is_empty() {
        return Ok(());
    }
    let ns = Some(text("namespace"))
        .filter(|n| !n.is_empty())
        .or_else(|| delivery.envelope.metadata.get("namespace").cloned());
    let api: Api<AgentRun> = match (ns.as_deref(), scope) {
        (Some(ns), Some(scope)) if ns != scope => return Ok(()),
        (Some(ns), _) => Api::namespaced(client.clone(), ns),
        (None, scope) => super::runs_api(client, scope),
    };
    let found = api
        .list(
            &ListParams::default()
                .labels(&format!("{}={}", labels::SOURCE, build::SOURCE_VALUE))
                .fields(&format!("metadata.name={run}")),
        )
        .await?
        .items;
    let [found] = found.as_slice() else { return Ok(()) };
    let code = code(&request_id);
    let Some((message, meta)) = build::reply(found, question(&tool, &data["arguments"], &code)) else {
        return Ok(());
    };
    let api: Api<AgentRun> = Api::namespaced(client.clone(), &found.namespace().unwrap_or_default());
    let patch = json!({"metadata": {"annotations": {REQUEST_ID: request_id, CODE: code}}});
    api.patch(&found.name_any(), &params(), &Patch::Merge(&patch)).await?;
    let once = format!("approval-ask/{request_id}");
    bus.publish_once(&super::send_topic(&meta), meta, &message, &once).await?;
    tracing::info!(run = %found.name_any(), %tool, "tool approval asked in the chat");
    Ok(())
}

/// Treats `msg` as the answer to a waiting approval of its conversation when it is one;
/// `Ok(true)` = handled (no run is created).
pub async fn try_answer(
    client: &Client,
    bus: &Bus,
    ns: &str,
    msg: &InboundMessage,
    conversation: &str,
) -> Result<bool, RouterError> {
    let Some((approved, code)) = parse_answer(&msg.text) else { return Ok(false) };
    let api: Api<AgentRun> = Api::namespaced(client.clone(), ns);
    let selector = format!("{}={},{CONVERSATION}={conversation}", labels::INSTANCE, msg.instance_name);
    let waiting: Vec<AgentRun> = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|r| r.annotations().contains_key(REQUEST_ID))
        .filter(|r| r.annotations().get(SENDER_ID) == Some(&msg.sender_id))
        .filter(|r| code.as_ref().is_none_or(|c| r.annotations().get(CODE) == Some(c)))
        .collect();
    let run = match waiting.as_slice() {
        [] => return Ok(false),
        [run] => run,
        [first, ..] => {
            if let Some((mut m, meta)) = build::reply(first, String::new()) {
                m.text = "Several approvals are waiting; answer with the code, e.g. \"yes <code>\".".into();
                bus.publish(&super::send_topic(&meta), meta, &m).await?;
            }
            return Ok(true);
        }
    };
    let request_id = run.annotations()[REQUEST_ID].clone();
    let who = msg.sender_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| msg.sender_id.clone());
    let response = json!({"requestId": request_id, "approved": approved,
        "reason": format!("{} in {} by {who}", if approved { "approved" } else { "refused" }, msg.channel)});
    let meta = BTreeMap::from([
        ("agentRunID".to_string(), run.name_any()),
        ("instanceName".to_string(), msg.instance_name.clone()),
        ("namespace".to_string(), ns.to_string()),
    ]);
    let once = format!("approval-answer/{request_id}");
    bus.publish_once(&topics::approval_response(ns, &run.name_any()), meta, &response, &once).await?;
    let clear = json!({"metadata": {"annotations": {REQUEST_ID: null, CODE: null}}});
    api.patch(&run.name_any(), &params(), &Patch::Merge(&clear)).await?;
    if let Some((message, meta)) = build::reply(
        run,
        if approved {
            "Approved; the agent continues.".into()
        } else {
            "Refused; the agent was told.".into()
        },
    ) {
        let once = format!("approval-ack/{request_id}");
        bus.publish_once(&super::send_topic(&meta), meta, &message, &once).await?;
    }
    tracing::info!(run = %run.name_any(), approved, "tool approval answered in the chat");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn chat_answers() {
        assert_eq!(parse_answer("yes"), Some((true, None)));
        assert_eq!(parse_answer("Yes A1B2"), Some((true, Some("a1b2".into()))));
        assert_eq!(parse_answer("no 1234"), Some((false, Some("1234".into()))));
        assert_eq!(parse_answer("deny!"), Some((false, None)));
        assert_eq!(parse_answer("yes please do it"), None);
        assert_eq!(parse_answer("deploy it"), None);
        assert_eq!(parse_answer(""), None);
    }

    #[test]
    fn the_question_names_the_tool_and_the_code() {
        let c = code("run-1-123");
        assert_eq!(c.len(), 4);
        assert_eq!(c, code("run-1-123"));
        let q = question("execute_command", &json!({"command": "rm -rf /tmp/x"}), &c);
        assert!(
            q.contains("`execute_command`") && q.contains("rm -rf /tmp/x") && q.contains(&format!("yes {c}")),
            "{q}"
        );
    }
}
