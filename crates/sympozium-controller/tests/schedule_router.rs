//! Agent-managed schedules end to end: `schedule.upsert` requests over a real nats-server
//! create, update, suspend, resume and delete SympoziumSchedules in the requesting run's
//! namespace on the test control plane, and every request gets an answer (with its id) on the
//! requesting run's own result subject; the instance's schedule limit refuses with the reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sympozium_api::{AgentRun, SympoziumSchedule};
use sympozium_bus::{Bus, topics};
use sympozium_controller::context::Context;
use sympozium_controller::schedule::router;
use sympozium_controller::settings::Settings;
use sympozium_testkit::nats::NatsServer;
use sympozium_testkit::{TestPlane, wait_for, wait_until_gone};

const WAIT: Duration = Duration::from_secs(30);

async fn run_in(client: &Client, ns: &str, name: &str, instance: &str) {
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "metadata": {"name": name},
        "spec": {"instanceRef": instance, "agentId": "primary", "sessionKey": "", "task": "t",
                 "model": {"provider": "openai", "model": "m", "authSecretRef": ""}}});
    Api::<AgentRun>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply("test"), &Patch::Apply(&body))
        .await
        .unwrap();
}

#[tokio::test]
async fn agents_manage_their_own_schedules_over_the_bus() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "sched-router").await.unwrap().name().to_string();
    let other = plane.namespace(&client, "sched-router-other").await.unwrap().name().to_string();
    let run = format!("run-{ns}");
    run_in(&client, &ns, &run, "agent").await;
    // Same run name elsewhere for another instance: must not confuse the router.
    run_in(&client, &other, &run, "someone-else").await;

    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    // Scoped to no namespace: the run is found by name and instance across namespaces.
    let settings = Settings { max_agent_schedules: 2, ..Default::default() };
    let ctx = Arc::new(Context { settings, ..Context::with_defaults(client.clone(), None) });
    let router_task = tokio::spawn(router::run(ctx, bus.clone()));
    let mut results = bus.durable("test-results", &topics::schedule_upsert_result(&ns, &run));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let meta = BTreeMap::from([
        ("agentRunID".to_string(), run.clone()),
        ("instanceName".to_string(), "agent".to_string()),
    ]);
    let mut asked = 0;
    let mut ask = async |mut req: Value| -> Value {
        asked += 1;
        req["id"] = json!(asked.to_string());
        bus.publish(topics::SCHEDULE_UPSERT, meta.clone(), &req).await.unwrap();
        let d = tokio::time::timeout(WAIT, results.recv()).await.expect("an answer").unwrap();
        d.ack().await;
        assert_eq!(d.envelope.meta("agentRunID"), run, "the answer goes to the requesting run");
        assert_eq!(d.envelope.data["id"], asked.to_string(), "the answer names the request");
        d.envelope.data
    };
    let schedules: Api<SympoziumSchedule> = Api::namespaced(client.clone(), &ns);

    let answer = ask(
        json!({"name": "nightly", "action": "create", "schedule": "0 2 * * *", "task": "write the report"}),
    )
    .await;
    assert_eq!(answer["accepted"], true, "{answer}");
    assert_eq!(answer["schedule"], "agent-nightly");
    let s = schedules.get("agent-nightly").await.unwrap();
    assert_eq!(s.spec.schedule, "0 2 * * *");
    assert_eq!(s.spec.task, "write the report");
    assert_eq!(s.labels()["sympozium.ai/source"], "agent");
    assert_eq!(s.labels()["sympozium.ai/instance"], "agent");
    assert!(
        Api::<SympoziumSchedule>::namespaced(client.clone(), &other)
            .get_opt("agent-nightly")
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(ask(json!({"name": "nightly", "action": "suspend"})).await["accepted"], true);
    wait_for(&schedules, "agent-nightly", "suspended", WAIT, |s: Option<&SympoziumSchedule>| {
        s.is_some_and(|s| s.spec.suspend == Some(true))
    })
    .await
    .unwrap();
    assert_eq!(
        ask(json!({"name": "nightly", "action": "update", "schedule": "30 3 * * 1-5"})).await["accepted"],
        true
    );
    let s = schedules.get("agent-nightly").await.unwrap();
    assert_eq!((s.spec.schedule.as_str(), s.spec.suspend), ("30 3 * * 1-5", Some(false)), "update resumes");
    assert_eq!(s.spec.task, "write the report", "an update without a task keeps it");

    let refused = ask(json!({"name": "nightly", "action": "update", "schedule": "every night"})).await;
    assert_eq!(refused["accepted"], false);
    assert!(refused["error"].as_str().unwrap().contains("invalid schedule"), "{refused}");
    assert_eq!(
        schedules.get("agent-nightly").await.unwrap().spec.schedule,
        "30 3 * * 1-5",
        "nothing changed"
    );

    // Schedules the agent does not own are out of its reach.
    let pack_owned = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumSchedule",
        "metadata": {"name": "agent-heartbeat"},
        "spec": {"instanceRef": "agent", "schedule": "*/30 * * * *", "task": "heartbeat"}});
    schedules
        .patch("agent-heartbeat", &PatchParams::apply("test"), &Patch::Apply(&pack_owned))
        .await
        .unwrap();
    let refused = ask(json!({"name": "heartbeat", "action": "delete"})).await;
    assert!(refused["error"].as_str().unwrap().contains("not managed by this agent"), "{refused}");
    assert!(schedules.get_opt("agent-heartbeat").await.unwrap().is_some());

    // The limit (2 here): a second agent schedule is fine, a third is refused with the
    // reason; the pack-owned one does not count, changing an existing one still works.
    let second =
        json!({"name": "weekly", "action": "create", "schedule": "0 4 * * 0", "task": "weekly digest"});
    assert_eq!(ask(second).await["accepted"], true);
    let third = json!({"name": "hourly", "action": "create", "schedule": "0 * * * *", "task": "ping"});
    let refused = ask(third.clone()).await;
    assert_eq!(refused["accepted"], false);
    let reason = refused["error"].as_str().unwrap();
    assert!(reason.contains("limit reached") && reason.contains("the limit is 2"), "{refused}");
    assert!(schedules.get_opt("agent-hourly").await.unwrap().is_none());
    // The requesting run's Events say what the agent changed and what it was refused (the
    // first of each; repeats are counted into it, as Kubernetes event series are).
    let notes = event_notes(&client, &ns, &run).await;
    assert!(notes.contains(&("ScheduleChanged".into(), "create agent-nightly".into())), "{notes:?}");
    assert!(
        notes.iter().any(|(reason, note)| reason == "ScheduleRefused"
            && note.starts_with("update nightly: invalid schedule")),
        "{notes:?}"
    );
    let again =
        json!({"name": "weekly", "action": "create", "schedule": "0 5 * * 0", "task": "weekly digest"});
    assert_eq!(ask(again).await["accepted"], true, "re-creating an existing one is an update");
    assert_eq!(ask(json!({"name": "weekly", "action": "delete"})).await["accepted"], true);
    wait_until_gone(&schedules, "agent-weekly", "deleted schedule", WAIT).await.unwrap();
    assert_eq!(ask(third).await["accepted"], true, "room again after a delete");

    assert_eq!(ask(json!({"name": "nightly", "action": "delete"})).await["accepted"], true);
    wait_until_gone(&schedules, "agent-nightly", "deleted schedule", WAIT).await.unwrap();
    router_task.abort();
}

/// (reason, note) of the Events about the run `run`, once both kinds are among them.
async fn event_notes(client: &Client, ns: &str, run: &str) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let mut notes = Vec::new();
    for _ in 0..40 {
        notes = events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(run))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect();
        if ["ScheduleChanged", "ScheduleRefused"].iter().all(|r| notes.iter().any(|(reason, _)| reason == r))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    notes
}
