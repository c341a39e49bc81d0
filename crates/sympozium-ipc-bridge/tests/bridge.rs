//! The bridge against real files in a temp dir and a real nats-server: every kind of file
//! reaches its topic exactly once with the run's metadata, stream chunks in order, the
//! result last and then the bridge exits; sub-agent results come back into `/ipc/input`,
//! including those published before the bridge started.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sympozium_bus::payloads::SpawnResult;
use sympozium_bus::{Bus, Delivery, topics};
use sympozium_ipc_bridge::Config;
use sympozium_testkit::nats::NatsServer;
use tokio::sync::mpsc::Receiver;

const WAIT: Duration = Duration::from_secs(15);

/// Writes like the runner: a temporary file, then a rename.
fn write(root: &Path, rel: &str, value: &Value) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = root.join(format!("{rel}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(value).unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

async fn next(rx: &mut Receiver<Delivery>) -> Delivery {
    let d = tokio::time::timeout(WAIT, rx.recv()).await.expect("a message in time").unwrap();
    d.ack().await;
    d
}

async fn nothing_more(rx: &mut Receiver<Delivery>) {
    if let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        panic!("unexpected extra message on {}: {}", d.envelope.topic, d.envelope.data);
    }
}

fn config(root: &Path, nats: &NatsServer, run: &str) -> Config {
    let mut c = Config::new(root, run, &nats.url());
    c.instance_name = "alice".into();
    c.namespace = "team".into();
    c.exit_delay_ms = 300;
    c
}

#[tokio::test]
async fn every_file_is_published_once_in_order_and_the_bridge_exits_after_the_result() {
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    // Messages go to the run's own instance's outbound subject (team/alice).
    let channel_send = topics::channel_send("team", "alice");
    let watched = [
        channel_send.as_str(),
        topics::SCHEDULE_UPSERT,
        topics::AGENT_SPAWN_REQUEST,
        topics::TOOL_EXEC_REQUEST,
        topics::AGENT_STREAM_CHUNK,
        topics::AGENT_RUN_COMPLETED,
    ];
    let mut rx: Vec<_> =
        watched.iter().map(|t| bus.durable(&format!("t-{}", t.replace('.', "-")), t)).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ipc");
    // A long rescan interval: everything below must be noticed through inotify.
    let mut cfg = config(&root, &nats, "run-1");
    cfg.rescan_interval_ms = 60_000;
    let bridge = tokio::spawn(sympozium_ipc_bridge::run(cfg));
    let created = async {
        while !root.join("schedules").is_dir() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, created).await.expect("the bridge creates the IPC directories");
    for d in ["input", "output", "spawn", "tools", "messages", "schedules"] {
        assert!(root.join(d).is_dir(), "{d}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    write(&root, "messages/send-1.json", &json!({"channel": "telegram", "text": "hi", "chatId": "42"}));
    write(&root, "schedules/schedule-1.json", &json!({"name": "nightly", "action": "delete"}));
    write(
        &root,
        "spawn/spawn-7.json",
        &json!({"id": "7", "task": "sub", "parentRunId": "run-1", "wait": true}),
    );
    write(&root, "tools/exec-request-1.json", &json!({"id": "1", "command": "ls"}));
    write(&root, "tools/k8s/exec-request-2.json", &json!({"id": "2", "command": "kubectl get pods"}));
    // Answers written by others and half-written files are not published.
    write(&root, "tools/exec-result-1.json", &json!({"id": "1"}));
    std::fs::write(root.join("messages/send-2.json.tmp"), b"{\"partial").unwrap();
    for i in 0..20 {
        write(
            &root,
            &format!("output/stream-{i}.json"),
            &json!({"type": "text", "content": format!("c{i}"), "index": i}),
        );
    }

    let [messages, schedules, spawns, tools, chunks, completed] = rx.as_mut_slice() else { unreachable!() };
    let m = next(messages).await;
    assert_eq!(m.envelope.data["text"], "hi");
    assert_eq!(m.envelope.meta("agentRunID"), "run-1");
    assert_eq!(m.envelope.meta("instanceName"), "alice");
    assert_eq!(m.envelope.meta("namespace"), "team");
    assert_eq!(next(schedules).await.envelope.data["name"], "nightly");
    assert_eq!(next(spawns).await.envelope.data["task"], "sub");
    let mut commands = vec![
        next(tools).await.envelope.data["command"].clone(),
        next(tools).await.envelope.data["command"].clone(),
    ];
    commands.sort_by_key(|v| v.to_string());
    assert_eq!(commands, [json!("kubectl get pods"), json!("ls")]);
    for i in 0..20 {
        let c = next(chunks).await;
        assert_eq!(c.envelope.data["index"], i, "chunks arrive in order");
        assert_eq!(c.envelope.data["content"], format!("c{i}"));
    }
    assert!(!bridge.is_finished(), "no result yet: the bridge keeps running");

    write(&root, "output/result.json", &json!({"status": "success", "response": "done"}));
    let r = next(completed).await;
    assert_eq!(r.envelope.data["response"], "done");
    assert_eq!(r.envelope.meta("agentRunID"), "run-1");
    tokio::time::timeout(WAIT, bridge).await.expect("the bridge exits after the result").unwrap().unwrap();
    for rx in rx.iter_mut() {
        nothing_more(rx).await;
    }
}

#[tokio::test]
async fn files_already_there_are_found_and_sub_agent_results_come_back() {
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let mut completed = bus.durable("t-completed", topics::AGENT_RUN_COMPLETED);
    let mut chunks = bus.durable("t-chunks", topics::AGENT_STREAM_CHUNK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Answered before the bridge (re)started: still delivered.
    let early = SpawnResult {
        id: "100".into(),
        status: "success".into(),
        response: Some("early".into()),
        ..Default::default()
    };
    bus.publish(&topics::spawn_result("team", "run-2"), Default::default(), &early).await.unwrap();
    // Another run's answer is not ours.
    let other = SpawnResult::error("999", "not yours");
    bus.publish(&topics::spawn_result("team", "run-other"), Default::default(), &other).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write(&root, "output/stream-1.json", &json!({"type": "text", "content": "b", "index": 1}));
    write(&root, "output/stream-0.json", &json!({"type": "text", "content": "a", "index": 0}));
    let bridge = tokio::spawn(sympozium_ipc_bridge::run(config(&root, &nats, "run-2")));

    assert_eq!(next(&mut chunks).await.envelope.data["content"], "a");
    assert_eq!(next(&mut chunks).await.envelope.data["content"], "b");
    let read = async |id: &str| -> Value {
        let path = root.join("input").join(format!("spawn-result-{id}.json"));
        let found = async {
            loop {
                if let Ok(b) = std::fs::read(&path) {
                    return serde_json::from_slice::<Value>(&b).unwrap();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(WAIT, found).await.expect("the spawn result file")
    };
    assert_eq!(read("100").await, json!({"id": "100", "status": "success", "response": "early"}));
    let late = SpawnResult::error("101", "maxDepth 2 reached");
    bus.publish(&topics::spawn_result("team", "run-2"), Default::default(), &late).await.unwrap();
    assert_eq!(read("101").await["error"], "maxDepth 2 reached");
    assert!(!root.join("input/spawn-result-999.json").exists());

    // Follow-ups and command results published for this run land where the runner reads them.
    bus.publish(
        &topics::followup("team", "run-2"),
        Default::default(),
        &json!({"text": "also check the ingress"}),
    )
    .await
    .unwrap();
    bus.publish(&topics::tool_exec_result("team", "run-2"), Default::default(),
        &json!({"id": "77", "skill": "k8s-ops", "exitCode": 0, "stdout": "ok", "stderr": "", "timedOut": false})).await.unwrap();
    let file = async |rel: &str| -> Value {
        let path = root.join(rel);
        let found = async {
            loop {
                if let Ok(b) = std::fs::read(&path) {
                    return serde_json::from_slice::<Value>(&b).unwrap();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(WAIT, found).await.expect("the delivered file")
    };
    assert_eq!(file("input/followup-000001.json").await["text"], "also check the ingress");
    assert_eq!(file("tools/k8s-ops/exec-result-77.json").await["stdout"], "ok");

    // Schedule outcomes for this run (and only this run) land where `schedule_task` waits.
    let refused = json!({"id": "55", "name": "nightly", "action": "create", "schedule": "agent-nightly",
        "accepted": false, "error": "limit reached"});
    bus.publish(
        &topics::schedule_upsert_result("team", "run-other"),
        Default::default(),
        &json!({"id": "56",
        "name": "x", "action": "create", "schedule": "agent-x", "accepted": true}),
    )
    .await
    .unwrap();
    bus.publish(&topics::schedule_upsert_result("team", "run-2"), Default::default(), &refused)
        .await
        .unwrap();
    assert_eq!(file("input/schedule-result-55.json").await, refused);
    assert!(!root.join("input/schedule-result-56.json").exists(), "another run's answer is not ours");

    write(&root, "output/result.json", &json!({"status": "error", "error": "boom"}));
    assert_eq!(next(&mut completed).await.envelope.data["error"], "boom");
    tokio::time::timeout(WAIT, bridge).await.unwrap().unwrap().unwrap();
    nothing_more(&mut chunks).await;
}

#[test]
fn the_binary_refuses_to_start_without_a_run_id() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sympozium-ipc-bridge"))
        .env_remove("AGENT_RUN_ID")
        .env("IPC_PATH", dir.path())
        .env("EVENT_BUS_URL", "nats://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AGENT_RUN_ID is not set"), "{stderr}");
}

#[tokio::test]
async fn nothing_is_lost_or_doubled_when_nats_is_down_or_restarts() {
    let mut nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    // The bridge starts while NATS is down: files wait on disk.
    nats.kill();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let mut cfg = config(&root, &nats, "run-3");
    cfg.rescan_interval_ms = 200;
    let bridge = tokio::spawn(sympozium_ipc_bridge::run(cfg));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let chunk = |i: usize| json!({"type": "text", "content": format!("c{i}"), "index": i});
    for i in 0..3 {
        write(&root, &format!("output/stream-{i}.json"), &chunk(i));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    nats.restart().await.unwrap();
    let mut stored = bus.replay(topics::AGENT_STREAM_CHUNK);
    let mut next_chunk = async || {
        tokio::time::timeout(WAIT, stored.recv()).await.expect("a chunk in time").unwrap().data["index"]
            .clone()
    };
    for i in 0..3 {
        assert_eq!(next_chunk().await, i);
    }
    // A crash in the middle of the stream.
    nats.kill();
    for i in 3..6 {
        write(&root, &format!("output/stream-{i}.json"), &chunk(i));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    nats.restart().await.unwrap();
    write(&root, "output/result.json", &json!({"status": "success", "response": "done"}));
    for i in 3..6 {
        assert_eq!(next_chunk().await, i, "stored once each, in order, after the restart");
    }
    tokio::time::timeout(WAIT, bridge).await.unwrap().unwrap().unwrap();
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(500), stored.recv()).await {
        panic!("a chunk stored twice: {}", extra.data);
    }
    let mut results = bus.replay(topics::AGENT_RUN_COMPLETED);
    let r = tokio::time::timeout(WAIT, results.recv()).await.unwrap().unwrap();
    assert_eq!(r.data["response"], "done");
    assert!(tokio::time::timeout(Duration::from_millis(500), results.recv()).await.is_err(), "one result");
}
