//! The TUI with the event bus (a real `nats-server -js`) and the test control plane: an
//! agent's answer shows in the chat while it streams (`agent.stream.chunk`), a tool call
//! waiting for approval (`tool.approval.request`) pops up and `y` sends
//! `tool.approval.response` for exactly that request, and the final result replaces the
//! stream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod tui_support;

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use sympozium_api::AgentRun;
use sympozium_bus::{Bus, topics};
use sympozium_testkit::TestPlane;
use sympozium_testkit::nats::NatsServer;
use tui_support::Pty;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_answer_and_tool_approval_in_the_chat() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "tui-stream").await.unwrap().name().to_string();
    let sample = sympozium_testkit::repo_root().join("deploy/samples/sympoziuminstance-my-agent.yaml");
    plane.kubectl(&["apply", "-n", &ns, "-f", sample.to_str().unwrap()]).unwrap();
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let mut responses = bus.durable("t-tui-approvals", &topics::every(topics::TOOL_APPROVAL_RESPONSE));

    let kubeconfig = plane.kubeconfig().to_str().unwrap().to_string();
    let pty = Pty::start(
        "stream",
        &[env!("CARGO_BIN_EXE_sympozium"), "--kubeconfig", &kubeconfig, "-n", &ns, "--nats-url", &nats.url()],
        &[],
    );
    pty.wait_for("bus ●", 30);
    pty.wait_for("my-agent", 30);
    pty.keys(&["R"]);
    pty.wait_for("message for my-agent", 15);
    pty.type_text("Clean up /tmp please");
    pty.keys(&["Enter"]);
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let mut run = None;
    for _ in 0..100 {
        let list = runs.list(&ListParams::default().labels("sympozium.ai/instance=my-agent")).await.unwrap();
        run = list.items.into_iter().find(|r| r.annotations().contains_key("sympozium.ai/message"));
        if run.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = run.expect("the chat created a run").name_any();
    pty.wait_for("[pending]", 20);

    let meta = BTreeMap::from([
        ("agentRunID".to_string(), run.clone()),
        ("instanceName".to_string(), "my-agent".to_string()),
        ("namespace".to_string(), ns.clone()),
    ]);
    for (i, piece) in ["Looking at ", "/tmp now"].iter().enumerate() {
        let chunk = json!({"type": "text", "content": piece, "index": i});
        bus.publish(topics::AGENT_STREAM_CHUNK, meta.clone(), &chunk).await.unwrap();
    }
    pty.wait_for("agent ‹ Looking at /tmp now▌", 20);

    let request = json!({"requestId": "req-tui-1", "agentRunId": run, "instanceName": "my-agent",
                         "namespace": ns, "tool": "execute_command", "arguments": {"command": "rm -rf /tmp/x"}});
    bus.publish(topics::TOOL_APPROVAL_REQUEST, meta.clone(), &request).await.unwrap();
    let s = pty.wait_for("tool approval", 20);
    assert!(s.contains("execute_command") && s.contains("rm -rf /tmp/x"), "{s}");
    pty.keys(&["y"]);
    let answer = tokio::time::timeout(Duration::from_secs(10), responses.recv()).await.unwrap().unwrap();
    assert_eq!(answer.envelope.data["requestId"], "req-tui-1");
    assert_eq!(answer.envelope.data["approved"], true);
    assert_eq!(answer.envelope.meta("agentRunID"), run);
    answer.ack().await;
    pty.wait_for("execute_command allowed", 20);

    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
                      "status": {"phase": "Succeeded", "result": "Removed /tmp/x."}});
    runs.patch_status(&run, &PatchParams::apply("e2e-finisher"), &Patch::Apply(&body)).await.unwrap();
    pty.wait_for("agent ‹ Removed /tmp/x.", 30);
    pty.keys(&["q"]);
    pty.wait_for("[exited 0]", 20);
}
