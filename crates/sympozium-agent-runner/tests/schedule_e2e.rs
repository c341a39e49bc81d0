//! Agent-managed schedules as the agent sees them: the real runner binary (against the fake
//! LLM) calls `schedule_task`; its request goes through the real IPC bridge and a real
//! nats-server to the controller's schedule router on the test control plane, and the tool
//! result the model receives is what the platform did — applied, or refused with the reason
//! (the instance's limit, a schedule that does not exist, a bad cron).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::Pod;
use kube::Api;
use serde_json::{Value, json};
use sympozium_api::SympoziumSchedule;
use sympozium_bus::Bus;
use sympozium_controller::schedule::router;
use sympozium_testkit::TestPlane;
use sympozium_testkit::fake_llm::{FakeLlm, Turn};
use sympozium_testkit::nats::NatsServer;

const WAIT: Duration = Duration::from_secs(60);

/// The last tool result in a request the model received.
fn last_tool_result(request: &sympozium_testkit::fake_llm::RecordedRequest) -> String {
    request.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "tool")
        .and_then(|m| m["content"].as_str())
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_is_told_what_became_of_its_schedule_requests() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "sched-e2e").await.unwrap().name().to_string();
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    // One agent-managed schedule per instance here, so the second create hits the limit.
    let settings = sympozium_controller::settings::Settings { max_agent_schedules: 1, ..Default::default() };
    let ctx = sympozium_controller::context::Context {
        settings,
        ..sympozium_controller::context::Context::with_defaults(client.clone(), Some(ns.clone()))
    };
    let router_task = tokio::spawn(router::run(std::sync::Arc::new(ctx), bus));

    let pod = Pod::new();
    let mut bridge = sympozium_ipc_bridge::Config::new(pod.ipc.clone(), "ops-run-1", &nats.url());
    bridge.instance_name = "ops".into();
    bridge.namespace = ns.clone();
    bridge.exit_delay_ms = 100;
    let bridge = tokio::spawn(sympozium_ipc_bridge::run(bridge));

    let fake = FakeLlm::start().await.unwrap();
    let call = |args: Value| Turn::tool_call("schedule_task", args);
    fake.script([
        call(json!({"name": "nightly", "action": "create", "schedule": "0 2 * * *", "task": "write the report"})),
        call(json!({"name": "hourly", "action": "create", "schedule": "0 * * * *", "task": "ping"})),
        call(json!({"name": "broken", "action": "create", "schedule": "61 * * * *", "task": "never"})),
        call(json!({"name": "ghost", "action": "update", "task": "haunt"})),
        Turn::text("Scheduled the nightly report."),
    ]);
    let base = fake.openai_base_url();
    let env = [
        ("TASK", "Set up my recurring jobs."),
        ("MODEL_BASE_URL", base.as_str()),
        ("TOOLS_ENABLED", "true"),
        ("AGENT_RUN_ID", "ops-run-1"),
        ("INSTANCE_NAME", "ops"),
        ("AGENT_NAMESPACE", ns.as_str()),
        // Three refusals in a row are the point here, not a reason to stop the run.
        ("MAX_CONSECUTIVE_TOOL_ERRORS", "10"),
    ];
    let out = tokio::time::timeout(WAIT * 3, common::run_runner(&pod, &env)).await.unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let requests = fake.requests();
    assert_eq!(requests.len(), 5);

    let applied = last_tool_result(&requests[1]);
    assert!(applied.contains("applied") && applied.contains("ops-nightly"), "{applied}");
    let limit = last_tool_result(&requests[2]);
    assert!(limit.starts_with("Error:") && limit.contains("limit reached"), "{limit}");
    assert!(limit.contains("the limit is 1"), "{limit}");
    let cron = last_tool_result(&requests[3]);
    assert!(cron.starts_with("Error:") && cron.contains("not a valid cron expression"), "{cron}");
    let ghost = last_tool_result(&requests[4]);
    assert!(ghost.starts_with("Error:") && ghost.contains("\"ops-ghost\" does not exist"), "{ghost}");

    // And the cluster agrees with what the agent was told.
    let schedules: Api<SympoziumSchedule> = Api::namespaced(client.clone(), &ns);
    let nightly = schedules.get("ops-nightly").await.unwrap();
    assert_eq!(
        (nightly.spec.schedule.as_str(), nightly.spec.task.as_str()),
        ("0 2 * * *", "write the report")
    );
    for absent in ["ops-hourly", "ops-broken", "ops-ghost"] {
        assert!(schedules.get_opt(absent).await.unwrap().is_none(), "{absent}");
    }
    tokio::time::timeout(WAIT, bridge).await.unwrap().unwrap().unwrap();
    router_task.abort();
}
