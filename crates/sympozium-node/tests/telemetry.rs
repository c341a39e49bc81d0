//! One chat message, one trace, read back from a real OpenTelemetry Collector.
//!
//! The Telegram channel (the real `sympozium-channel` binary against the Telegram fake)
//! receives a user's message; the controller's channel router and AgentRun controller (in
//! this process, exporting like the controller binary) turn it into a run whose pod runs on
//! the local node (the real runner and IPC bridge, exporting from inside the pod through a
//! Service to the collector); the runner calls the fake OpenAI API. Every hop exports to
//! one collector, and the test reads its file output: one trace, rooted at the channel's
//! span, through `channel_router.handle_inbound`, `agentrun.reconcile`/`create_job`, the
//! runner's `sympozium.agent.run` and the GenAI `chat` spans with their token counts; the
//! metrics of the controller and the runner arrive too. Then the collector is stopped and
//! the next message is still answered: export never blocks a run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use support::*;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::{agentrun, channelrouter, queue_depth};
use sympozium_kube::metrics::Metrics;
use sympozium_telemetry::TelemetryArgs;
use sympozium_testkit::TestPlane;
use sympozium_testkit::fake_chat::FakeTelegram;
use sympozium_testkit::fake_llm::{FakeLlm, Turn};
use sympozium_testkit::nats::NatsServer;
use sympozium_testkit::otelcol::OtelCollector;

const TOKEN: &str = "777:TELEMETRY-TOKEN";
const WAIT: Duration = Duration::from_secs(180);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `f` every 200 ms for up to two minutes.
async fn eventually<T>(what: &str, collector: &OtelCollector, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..600 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what} never reached the collector; its log:\n{}", collector.log());
}

/// The finished run answering `text`.
async fn finished_run(runs: &Api<AgentRun>, text: &str) -> AgentRun {
    let found = async {
        loop {
            let list = runs.list(&ListParams::default()).await.unwrap().items;
            if let Some(run) = list.into_iter().find(|r| {
                // Later messages of a chat carry the conversation in the task; the
                // annotation holds the message itself.
                r.annotations().get("sympozium.ai/message").map(String::as_str) == Some(text)
                    && matches!(
                        r.status.as_ref().and_then(|s| s.phase),
                        Some(AgentRunPhase::Succeeded | AgentRunPhase::Failed)
                    )
            }) {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::time::timeout(WAIT, found).await.unwrap_or_else(|_| panic!("no finished run for {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_chat_message_is_one_connected_trace_and_a_stopped_collector_blocks_nothing() {
    ensure_built("sympozium-agent-runner", &["sympozium-agent-runner"]);
    ensure_built("sympozium-ipc-bridge", &["sympozium-ipc-bridge"]);
    let channel_bin = ensure_built("sympozium-channels", &["sympozium-channel"]).join("sympozium-channel");
    let mut collector = OtelCollector::start().await.unwrap();
    // This process plays the controller binary: the same telemetry init, the same name.
    let telemetry = sympozium_telemetry::init(
        "sympozium-controller",
        &TelemetryArgs {
            otel_endpoint: collector.grpc_endpoint(),
            otel_batch_timeout: Duration::from_millis(200),
            ..Default::default()
        },
    )
    .unwrap();

    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "otel-e2e").await;
    let ns = ns.name().to_string();

    // NATS, the fake LLM and the collector run here on loopback; pods reach them through
    // selector-less Services whose endpoint is the node.
    let nats = NatsServer::start().await.unwrap();
    host_service(&client, &ns, "nats", port_of(&nats.url())).await;
    let fake = FakeLlm::start().await.unwrap();
    host_service(&client, &ns, "llm", port_of(&fake.openai_base_url())).await;
    host_service(&client, &ns, "otel", port_of(&collector.grpc_endpoint())).await;
    let base_url = format!("http://llm.{ns}.svc/v1");

    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "openai-key"},
                "stringData": {"OPENAI_API_KEY": "sk-otel-key"}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let instance = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
        "metadata": {"name": "sre"},
        "spec": {"agents": {"default": {"model": "gpt-4o", "baseURL": base_url}},
                 "authRefs": [{"provider": "openai", "secret": "openai-key"}],
                 "channels": [{"type": "telegram", "configRef": {"secret": "tg"}}],
                 "memory": {"enabled": false},
                 "observability": {"enabled": true, "otlpEndpoint": format!("http://otel.{ns}.svc:80")}}});
    Api::<SympoziumInstance>::namespaced(client.clone(), &ns)
        .patch("sre", &PatchParams::apply("test").force(), &Patch::Apply(&instance))
        .await
        .unwrap();

    // The controller: router, AgentRun controller, completions and queue depths.
    let bus = sympozium_bus::Bus::connect(&nats.url()).await.unwrap();
    let settings = Settings { event_bus_url: Some(format!("nats://nats.{ns}.svc:80")), ..Default::default() };
    let metrics = Metrics::default();
    let ctx = Arc::new(Context::new(
        client.clone(),
        settings.clone(),
        metrics.clone(),
        Some(ns.clone()),
        "otel-e2e",
    ));
    let tasks = [
        tokio::spawn(agentrun::run(ctx.clone())),
        tokio::spawn(channelrouter::run(ctx.clone(), bus.clone())),
        tokio::spawn(agentrun::completion::run(ctx.clone(), bus.clone())),
        tokio::spawn(queue_depth::run(bus.clone(), metrics.clone(), Duration::from_millis(500))),
    ];

    // The channel pod, as its Deployment runs it, exporting to the collector.
    let telegram = FakeTelegram::start(TOKEN).await.unwrap();
    let mut channel = tokio::process::Command::new(&channel_bin)
        .env_clear()
        .env("CHANNEL_TYPE", "telegram")
        .env("INSTANCE_NAME", "sre")
        .env("INSTANCE_NAMESPACE", &ns)
        .env("EVENT_BUS_URL", nats.url())
        .env("TELEGRAM_BOT_TOKEN", TOKEN)
        .env("TELEGRAM_API_URL", telegram.url())
        .env("TELEGRAM_POLL_TIMEOUT", "1")
        .env("HEALTH_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("WEBHOOK_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector.grpc_endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_SERVICE_NAME", "sympozium-channel-telegram")
        .env("SYMPOZIUM_OTEL_BATCH_TIMEOUT", "200ms")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // The model uses a tool once, then answers.
    fake.push(Turn::tool_call("read_file", json!({"path": "/workspace/none.txt"})).with_usage(300, 12));
    fake.push(Turn::text("All 12 pods are healthy.").with_usage(420, 17));
    telegram.user_says(-1001, 42, "Ann", "how are the pods?");
    let sent = telegram.wait_sent(1, WAIT).await.unwrap_or_else(|e| panic!("no reply: {e}"));
    assert_eq!(sent[0].text, "All 12 pods are healthy.");
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let run = finished_run(&runs, "how are the pods?").await;
    let status = run.status.clone().unwrap();
    assert_eq!(status.phase, Some(AgentRunPhase::Succeeded), "{status:?}");

    // --- The trace: rooted at the channel's span, connected all the way to the model calls.
    let root = eventually("the channel's span", &collector, || {
        collector.spans().into_iter().find(|s| s["name"] == "telegram.message.received")
    })
    .await;
    let trace_id = root["traceId"].as_str().unwrap().to_string();
    assert_eq!(root["resource"]["service.name"], "sympozium-channel-telegram");
    assert_eq!(root["attrs"]["sympozium.instance"], "sre");
    assert_eq!(root["kind"], 4, "a producer span");
    assert_eq!(
        status.trace_id.as_deref(),
        Some(trace_id.as_str()),
        "the run's status names the message's trace"
    );
    let in_trace = || -> Vec<Value> {
        collector.spans().into_iter().filter(|s| s["traceId"].as_str() == Some(trace_id.as_str())).collect()
    };
    let spans = eventually("the runner's model calls in the message's trace", &collector, || {
        let spans = in_trace();
        (spans.iter().filter(|s| s["name"] == "chat gpt-4o").count() == 2
            && spans.iter().any(|s| s["name"] == "sympozium.agent.run"))
        .then_some(spans)
    })
    .await;
    let by_id: HashMap<&str, &Value> = spans.iter().map(|s| (s["spanId"].as_str().unwrap(), s)).collect();
    let named = |name: &str| -> Vec<&Value> { spans.iter().filter(|s| s["name"] == name).collect() };
    let parent_of = |s: &Value| -> Option<&Value> {
        s["parentSpanId"].as_str().filter(|p| !p.is_empty()).and_then(|p| by_id.get(p).copied())
    };

    let inbound = named("channel_router.handle_inbound");
    assert_eq!(inbound.len(), 1, "one router span: {spans:#?}");
    assert_eq!(inbound[0]["parentSpanId"], root["spanId"], "the router continues the channel's span");
    assert_eq!(inbound[0]["resource"]["service.name"], "sympozium-controller");
    assert_eq!(inbound[0]["attrs"]["sympozium.instance"], "sre");
    assert_eq!(inbound[0]["attrs"]["sympozium.sender.id"], "42");

    // Every reconcile of the run continues the router's span.
    let reconciles = named("agentrun.reconcile");
    assert!(!reconciles.is_empty(), "{spans:#?}");
    for r in &reconciles {
        assert_eq!(
            r["parentSpanId"], inbound[0]["spanId"],
            "the run's reconciles continue the router's span"
        );
    }
    let agent_run = named("sympozium.agent.run");
    assert_eq!(agent_run.len(), 1, "{spans:#?}");
    let agent_run = agent_run[0];
    // A reconcile that finds the Job already created passes through create_job again; the
    // pod continues the one that created it (TRACEPARENT).
    let create_job = parent_of(agent_run).expect("the pod's span has its parent in the trace");
    assert_eq!(create_job["name"], "agentrun.create_job", "the pod continues create_job");
    assert_eq!(parent_of(create_job).unwrap()["name"], "agentrun.reconcile");
    assert_eq!(agent_run["resource"]["service.name"], "sympozium-agent-runner");
    assert_eq!(agent_run["resource"]["sympozium.agent_run.id"], run.name_any().as_str());
    assert_eq!(agent_run["attrs"]["gen_ai.usage.input_tokens"], 720);
    assert_eq!(agent_run["attrs"]["gen_ai.usage.output_tokens"], 29);
    let chats = named("chat gpt-4o");
    for chat in &chats {
        assert_eq!(chat["parentSpanId"], agent_run["spanId"]);
        assert_eq!(chat["attrs"]["gen_ai.operation.name"], "chat");
        assert_eq!(chat["attrs"]["gen_ai.system"], "openai");
        assert_eq!(chat["attrs"]["gen_ai.request.model"], "gpt-4o");
    }
    let mut usage: Vec<(i64, i64)> = chats
        .iter()
        .map(|c| {
            (
                c["attrs"]["gen_ai.usage.input_tokens"].as_i64().unwrap(),
                c["attrs"]["gen_ai.usage.output_tokens"].as_i64().unwrap(),
            )
        })
        .collect();
    usage.sort_unstable();
    assert_eq!(usage, vec![(300, 12), (420, 17)], "token counts per model call");
    let tool = named("execute_tool read_file");
    assert_eq!(tool.len(), 1, "{spans:#?}");
    assert_eq!(tool[0]["parentSpanId"], agent_run["spanId"]);

    // Connected: every span's parent is in the trace, and the channel's span is the only root.
    let roots: Vec<&str> =
        spans.iter().filter(|s| parent_of(s).is_none()).map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(roots, vec!["telegram.message.received"], "exactly one root; spans: {spans:#?}");
    let services: HashSet<&str> =
        spans.iter().filter_map(|s| s["resource"]["service.name"].as_str()).collect();
    for service in ["sympozium-channel-telegram", "sympozium-controller", "sympozium-agent-runner"] {
        assert!(services.contains(service), "{service} in the trace: {services:?}");
    }

    // --- Metrics from the controller (run outcome, tokens, queue depths) and the runner.
    let metric_sum = |name: &str, service: &str| -> Option<f64> {
        collector
            .metrics()
            .iter()
            .filter(|m| m["name"] == name && m["resource"]["service.name"] == service)
            .flat_map(|m| {
                let points = m["sum"]["dataPoints"].as_array().or(m["gauge"]["dataPoints"].as_array());
                points.cloned().unwrap_or_default()
            })
            .filter_map(|p| {
                p["asInt"].as_str().and_then(|s| s.parse::<f64>().ok()).or_else(|| p["asDouble"].as_f64())
            })
            .reduce(f64::max)
    };
    let runs_counted = eventually("the controller's run counter", &collector, || {
        metric_sum("sympozium.agent.runs", "sympozium-controller")
    })
    .await;
    assert_eq!(runs_counted, 1.0);
    eventually("the queue depth gauge", &collector, || {
        metric_sum("sympozium.bus.consumer.pending", "sympozium-controller")
    })
    .await;
    let input_tokens = eventually("the runner's token counter", &collector, || {
        metric_sum("gen_ai.usage.input_tokens", "sympozium-agent-runner")
    })
    .await;
    assert_eq!(input_tokens, 720.0);
    let prometheus = metrics.render();
    assert!(
        prometheus.contains(&format!(
            r#"sympozium_bus_consumer_pending{{consumer="{}",state="pending"}} 0"#,
            sympozium_controller::channelrouter::INBOUND_CONSUMER
        )),
        "{prometheus}"
    );

    // --- The collector goes away: the next message is answered all the same.
    collector.stop();
    fake.push(Turn::text("Yes, node-3 is hot.").with_usage(50, 5));
    telegram.user_says(-1001, 42, "Ann", "any hot node?");
    let sent =
        telegram.wait_sent(2, WAIT).await.unwrap_or_else(|e| panic!("no reply without a collector: {e}"));
    assert_eq!(sent[1].text, "Yes, node-3 is hot.");
    let run = finished_run(&runs, "any hot node?").await;
    assert_eq!(run.status.unwrap().phase, Some(AgentRunPhase::Succeeded));
    assert!(channel.try_wait().unwrap().is_none(), "the channel keeps running without its collector");

    for t in tasks {
        t.abort();
    }
    let _ = channel.kill().await;
    // Bounded even with the collector gone.
    telemetry.shutdown(Duration::from_secs(2)).await;
}
