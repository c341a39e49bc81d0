#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use kube::ResourceExt;
use serde_json::json;
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_bus::payloads::InboundMessage;

use super::build::*;

fn instance() -> SympoziumInstance {
    serde_json::from_value(json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
        "metadata": {"name": "alice", "namespace": "team"},
        "spec": {"agents": {"default": {"model": "gpt-4.1", "baseURL": "http://llm:8080/v1",
                    "nodeSelector": {"gpu": "yes"}, "lifecycle": {"preRun": [{"name": "p", "image": "busybox", "command": ["true"]}]}}},
                 "authRefs": [{"provider": "openai", "secret": "openai-key"}],
                 "skills": [{"skillPackRef": "k8s-ops"}],
                 "imagePullSecrets": [{"name": "regcred"}]}}))
    .unwrap()
}

fn message() -> InboundMessage {
    InboundMessage {
        channel: "slack".into(),
        instance_name: "alice".into(),
        sender_id: "U1".into(),
        sender_name: Some("Ann".into()),
        chat_id: "C9".into(),
        thread_id: Some("1700000000.000100".into()),
        text: "restart the api".into(),
        metadata: Some(BTreeMap::from([("ts".to_string(), "1700000001.000200".to_string())])),
        ..Default::default()
    }
}

#[test]
fn the_run_carries_the_spec_labels_annotations_and_instance_settings() {
    let msg = message();
    let id = platform_id(&msg, &BTreeMap::new());
    assert_eq!(id.as_deref(), Some("1700000001.000200"));
    let key = message_key("team", &msg, id.as_deref(), 7);
    let run = agent_run(&instance(), &msg, &key, id.as_deref(), Some("00-aa-bb-01"), 42);
    assert_eq!(run.name_any(), format!("alice-ch-{key}"));
    assert_eq!(run.namespace().as_deref(), Some("team"));
    let l = run.labels();
    assert_eq!(l["sympozium.ai/instance"], "alice");
    assert_eq!(l["sympozium.ai/source"], "channel");
    assert_eq!(l["sympozium.ai/source-channel"], "slack");
    let a = run.annotations();
    assert_eq!(a["sympozium.ai/reply-channel"], "slack");
    assert_eq!(a["sympozium.ai/reply-chat-id"], "C9");
    assert_eq!(a["sympozium.ai/reply-thread-id"], "1700000000.000100");
    assert_eq!(a["sympozium.ai/reply-to"], "1700000001.000200");
    assert_eq!(a["sympozium.ai/sender-name"], "Ann");
    assert_eq!(a["sympozium.ai/sender-id"], "U1");
    assert_eq!(a["otel.dev/traceparent"], "00-aa-bb-01");
    assert_eq!(a["sympozium.ai/reply-state"], "pending");
    let s = &run.spec;
    assert_eq!((s.agent_id.as_str(), s.task.as_str()), ("primary", "restart the api"));
    assert_eq!(s.session_key, "channel-slack-C9-42");
    assert_eq!(s.timeout.as_deref(), Some("10m"));
    assert_eq!(s.model.model, "gpt-4.1");
    assert_eq!(s.model.base_url.as_deref(), Some("http://llm:8080/v1"));
    assert_eq!(s.model.auth_secret_ref, "openai-key");
    assert_eq!(s.model.node_selector.as_ref().unwrap()["gpu"], "yes");
    assert_eq!(s.skills[0].skill_pack_ref.as_deref(), Some("k8s-ops"));
    assert_eq!(s.image_pull_secrets[0].name, "regcred");
    assert!(s.lifecycle.is_some());
}

#[test]
fn one_message_one_key_and_names_stay_valid() {
    let msg = message();
    assert_eq!(
        message_key("team", &msg, Some("m1"), 1),
        message_key("team", &msg, Some("m1"), 2),
        "the platform id decides"
    );
    assert_ne!(message_key("team", &msg, Some("m1"), 1), message_key("team", &msg, Some("m2"), 1));
    assert_ne!(message_key("team", &msg, Some("m1"), 1), message_key("other", &msg, Some("m1"), 1));
    assert_eq!(
        message_key("team", &msg, None, 5),
        message_key("team", &msg, None, 5),
        "a redelivery has the same sequence"
    );
    assert_ne!(message_key("team", &msg, None, 5), message_key("team", &msg, None, 6));
    let long = "a".repeat(80);
    let name = run_name(&long, "0123456789ab");
    assert_eq!(name.len(), 63);
    assert!(name.ends_with("-ch-0123456789ab"));
    assert_eq!(
        run_name(&format!("{}-b", "a".repeat(46)), "0123456789ab").len(),
        62,
        "no double dash from the cut"
    );
}

#[test]
fn a_key_longer_than_the_name_allows_is_cut_instead_of_underflowing() {
    for key_len in [59, 60, 80] {
        let key = "k".repeat(key_len);
        let name = run_name("alice", &key);
        assert!(name.len() <= 63, "{key_len}: {name}");
        assert!(name.starts_with('a') && name.contains("-ch-k"), "{key_len}: {name}");
    }
}

#[test]
fn reply_texts() {
    assert_eq!(text_from_result(&json!({"status": "success", "response": "done"})), "done");
    assert_eq!(text_from_result(&json!({"status": "error", "error": "model down"})), "Error: model down");
    assert_eq!(text_from_result(&json!({"status": "error"})), "Error: the agent run failed");
    assert_eq!(text_from_result(&json!({"status": "success", "response": ""})), "(no response)");
    let mut run: AgentRun =
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "r", "namespace": "team"},
        "spec": {"instanceRef": "alice", "agentId": "primary", "sessionKey": "", "task": "t",
                 "model": {"provider": "openai", "model": "m", "authSecretRef": ""}},
        "status": {"phase": "Running"}}))
        .unwrap();
    assert_eq!(text_from_status(&run), None, "still running: no reply yet");
    run.status.as_mut().unwrap().phase = Some(sympozium_api::agentrun::AgentRunPhase::Failed);
    run.status.as_mut().unwrap().error = Some("x".repeat(2000));
    let text = text_from_status(&run).unwrap();
    assert!(text.starts_with("Error: xxx") && text.chars().count() < 520, "a short error");
}

#[test]
fn replies_go_to_the_instance_chat_and_thread() {
    let msg = message();
    let run = agent_run(&instance(), &msg, "k", Some("m1"), None, 1);
    let (out, meta) = reply(&run, "ok".into()).unwrap();
    assert_eq!((out.channel.as_str(), out.chat_id.as_str(), out.text.as_str()), ("slack", "C9", "ok"));
    assert_eq!(out.thread_id.as_deref(), Some("1700000000.000100"));
    assert_eq!(out.reply_to.as_deref(), Some("m1"));
    assert_eq!(meta["instanceName"], "alice");
    assert_eq!(meta["channel"], "slack");
    assert_eq!(meta["namespace"], "team");
    assert!(reply_pending(&run));
}
