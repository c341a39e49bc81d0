//! Slack (Socket Mode and Events API) and WhatsApp (Cloud API webhook) channels as real pods
//! on the local node, end to end: the instance controller (in-process, on the test plane)
//! runs each channel as its Deployment's pod (`sympozium-channel`) on `sympozium-node`; a
//! user writes on the platform fake; the channel pod publishes to a real nats-server; the
//! channel router starts an AgentRun; the run's pod (real runner + IPC bridge) asks the fake
//! LLM; the answer comes back through the channel pod into the user's chat and thread.
//!
//! The platforms reach what they call the way they would reach a cluster: Slack's Socket
//! Mode and both Web APIs are outside (host Services in front of the fakes on this host's
//! loopback); inbound webhooks (Events API, WhatsApp) go to the channel's webhook Service
//! `<instance>-channel-<type>`, at its ready endpoint — what an Ingress or load balancer in
//! front of the Service would forward to.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use support::*;
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_bus::Bus;
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::{agentrun, channelrouter, instance};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::fake_chat::{FakeSlack, FakeWhatsApp};
use sympozium_testkit::fake_llm::{FakeLlm, Turn};
use sympozium_testkit::nats::NatsServer;
use sympozium_testkit::{TestPlane, wait_for};

const WAIT: Duration = Duration::from_secs(120);

async fn secret(client: &Client, ns: &str, name: &str, data: Value) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let body = json!({"metadata": {"name": name}, "stringData": data});
    api.create(&PostParams::default(), &serde_json::from_value(body).unwrap()).await.unwrap();
}

async fn agent(client: &Client, ns: &str, name: &str, base_url: &str, channels: Value) {
    let api: Api<SympoziumInstance> = Api::namespaced(client.clone(), ns);
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
        "metadata": {"name": name},
        "spec": {"agents": {"default": {"model": "gpt-4o", "baseURL": base_url}},
                 "authRefs": [{"provider": "openai", "secret": "llm-key"}],
                 "channels": channels}});
    api.patch(name, &PatchParams::apply("test"), &Patch::Apply(&body)).await.unwrap();
}

/// Waits until every channel of `name` reports Connected (its pod's health over the bus).
async fn connected(client: &Client, ns: &str, name: &str, n: usize) {
    let api: Api<SympoziumInstance> = Api::namespaced(client.clone(), ns);
    let result =
        wait_for(&api, name, "its channels Connected", WAIT, move |i: Option<&SympoziumInstance>| {
            let channels = i.and_then(|i| i.status.as_ref()).map(|s| s.channels.clone()).unwrap_or_default();
            channels.len() == n && channels.iter().all(|c| c.status == "Connected")
        })
        .await;
    if let Err(e) = result {
        panic!("{e}; status: {:?}", api.get(name).await.unwrap().status);
    }
}

/// `http://<ready endpoint>:<webhook port>` of the channel's webhook Service.
async fn webhook_endpoint(client: &Client, ns: &str, service: &str) -> String {
    let svc: Service = Api::namespaced(client.clone(), ns).get(service).await.unwrap();
    let port = &svc.spec.unwrap().ports.unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("webhook"), 3000));
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        for slice in slices.list(&lp).await.unwrap() {
            let port = slice.ports.iter().flatten().find_map(|p| p.port);
            let ready = slice.endpoints.iter().flatten().find(|e| {
                e.conditions.as_ref().and_then(|c| c.ready) == Some(true) && !e.addresses.is_empty()
            });
            if let (Some(port), Some(endpoint)) = (port, ready) {
                return format!("http://{}:{port}", endpoint.addresses[0]);
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no ready endpoint behind Service {service}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn run_of(client: &Client, ns: &str, instance: &str) -> AgentRun {
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("sympozium.ai/instance={instance}"));
    let list = runs.list(&lp).await.unwrap().items;
    assert_eq!(
        list.len(),
        1,
        "one run per message: {:?}",
        list.iter().map(|r| r.name_any()).collect::<Vec<_>>()
    );
    list.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_whatsapp_channel_pods_answer_in_the_users_chat() {
    ensure_built("sympozium-agent-runner", &["sympozium-agent-runner"]);
    ensure_built("sympozium-ipc-bridge", &["sympozium-ipc-bridge"]);
    ensure_built("sympozium-channels", &["sympozium-channel"]);
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "channels").await;
    let ns = ns.name().to_string();

    // Everything outside the cluster, on this host: NATS, the model and the platforms.
    let nats = NatsServer::start().await.unwrap();
    host_service(&client, &ns, "nats", port_of(&nats.url())).await;
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let llm = FakeLlm::start().await.unwrap();
    llm.push(Turn::text("Socket Mode: all 12 pods in shop are healthy."));
    llm.push(Turn::text("Events API: the cart deployment rolled out at 14:02."));
    llm.push(Turn::text("WhatsApp: payments has 3/3 replicas ready."));
    host_service(&client, &ns, "llm", port_of(&llm.openai_base_url())).await;
    let base_url = format!("http://llm.{ns}.svc/v1");
    secret(&client, &ns, "llm-key", json!({"OPENAI_API_KEY": "sk-llm"})).await;
    let socket_slack = FakeSlack::start("xoxb-socket", "xapp-socket", "unused").await.unwrap();
    host_service(&client, &ns, "slack-socket", port_of(&socket_slack.url())).await;
    let events_slack = FakeSlack::start("xoxb-events", "xapp-unused", "signing-secret").await.unwrap();
    host_service(&client, &ns, "slack-events", port_of(&events_slack.url())).await;
    let whatsapp = FakeWhatsApp::start("wa-token", "1098765", "app-secret").await.unwrap();
    host_service(&client, &ns, "whatsapp", port_of(&whatsapp.url())).await;

    secret(
        &client,
        &ns,
        "slack-socket",
        json!({"SLACK_BOT_TOKEN": "xoxb-socket", "SLACK_APP_TOKEN": "xapp-socket",
        "SLACK_API_URL": format!("http://slack-socket.{ns}.svc/api")}),
    )
    .await;
    secret(&client, &ns, "slack-events", json!({"SLACK_BOT_TOKEN": "xoxb-events",
        "SLACK_SIGNING_SECRET": "signing-secret", "SLACK_API_URL": format!("http://slack-events.{ns}.svc/api")}))
    .await;
    secret(
        &client,
        &ns,
        "whatsapp",
        json!({"WHATSAPP_ACCESS_TOKEN": "wa-token", "WHATSAPP_PHONE_NUMBER_ID": "1098765",
        "WHATSAPP_VERIFY_TOKEN": "verify-me", "WHATSAPP_APP_SECRET": "app-secret",
        "WHATSAPP_API_URL": format!("http://whatsapp.{ns}.svc/v21.0")}),
    )
    .await;

    let settings = Settings {
        system_namespace: ns.clone(),
        event_bus_url: Some(format!("nats://nats.{ns}.svc:80")),
        ..Default::default()
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        settings,
        Metrics::default(),
        Some(ns.clone()),
        "channels-e2e",
    ));
    let tasks = [
        tokio::spawn(agentrun::run(ctx.clone())),
        tokio::spawn(instance::run(ctx.clone())),
        tokio::spawn(channelrouter::run(ctx.clone(), bus.clone())),
        tokio::spawn(agentrun::completion::run(ctx.clone(), bus.clone())),
    ];

    agent(
        &client,
        &ns,
        "socket-agent",
        &base_url,
        json!([{"type": "slack", "configRef": {"secret": "slack-socket"}}]),
    )
    .await;
    agent(
        &client,
        &ns,
        "hook-agent",
        &base_url,
        json!([{"type": "slack", "configRef": {"secret": "slack-events"}},
               {"type": "whatsapp", "configRef": {"secret": "whatsapp"}}]),
    )
    .await;
    connected(&client, &ns, "socket-agent", 1).await;
    connected(&client, &ns, "hook-agent", 2).await;

    // Slack over Socket Mode: the pod holds the socket; a top-level message is answered in
    // a thread under it, in the same channel.
    let asked = socket_slack.user_says("C-OPS", "U-ANN", "Are the shop pods healthy?", None);
    let sent = socket_slack.wait_sent(1, WAIT).await.unwrap();
    assert_eq!(sent[0].chat, "C-OPS");
    assert_eq!(sent[0].thread.as_deref(), Some(asked.as_str()), "answered in the message's thread");
    assert_eq!(sent[0].text, "Socket Mode: all 12 pods in shop are healthy.");
    let run = run_of(&client, &ns, "socket-agent").await;
    assert_eq!(run.spec.task, "Are the shop pods healthy?");
    assert_eq!(run.annotations()["sympozium.ai/reply-channel"], "slack");
    assert_eq!(socket_slack.wait_acked(WAIT).await.1, 0, "every envelope acknowledged");

    // Slack over the Events API: Slack POSTs the signed event to the webhook Service; the
    // answer goes to that channel and thread through the other workspace's Web API.
    let slack_hook =
        format!("{}/slack/events", webhook_endpoint(&client, &ns, "hook-agent-channel-slack").await);
    let forged = events_slack.post_raw(&slack_hook, "{\"type\":\"event_callback\"}", "1", "v0=00").await;
    assert_eq!(forged.0.as_u16(), 401, "an unsigned event is refused: {}", forged.1);
    let asked = events_slack
        .user_says_http(&slack_hook, "C-DEV", "U-BEN", "When did cart roll out?", Duration::from_secs(30))
        .await
        .unwrap();
    let sent = events_slack.wait_sent(1, WAIT).await.unwrap();
    assert_eq!(sent[0].chat, "C-DEV");
    assert_eq!(sent[0].thread.as_deref(), Some(asked.as_str()));
    assert_eq!(sent[0].text, "Events API: the cart deployment rolled out at 14:02.");
    assert_eq!(socket_slack.sent().len(), 1, "the other instance's Slack got nothing more");

    // WhatsApp: Meta checks the subscription, then notifies the webhook Service; the reply
    // goes to the user's number, quoting their message.
    let wa_hook = format!("{}/webhook", webhook_endpoint(&client, &ns, "hook-agent-channel-whatsapp").await);
    let (status, challenge) = whatsapp.verify_subscription(&wa_hook, "verify-me", "ch-42").await;
    assert_eq!((status, challenge.as_str()), (200, "ch-42"));
    let (status, _) = whatsapp.verify_subscription(&wa_hook, "wrong", "ch-43").await;
    assert_eq!(status, 403, "a wrong verify token is refused");
    let asked = whatsapp
        .user_says(&wa_hook, "15551234567", "Cleo", "Is payments ready?", Duration::from_secs(30))
        .await
        .unwrap();
    let sent = whatsapp.wait_sent(1, WAIT).await.unwrap();
    assert_eq!(sent[0].chat, "15551234567");
    assert_eq!(sent[0].reply_to.as_deref(), Some(asked.as_str()));
    assert_eq!(sent[0].text, "WhatsApp: payments has 3/3 replicas ready.");
    assert_eq!(events_slack.sent().len(), 1, "one reply per message, on its own platform");

    // What the model saw: each user's message, through each instance's own run.
    let requests = llm.requests();
    assert_eq!(requests.len(), 3);
    for (i, text) in
        ["Are the shop pods healthy?", "When did cart roll out?", "Is payments ready?"].iter().enumerate()
    {
        assert!(requests[i].body.to_string().contains(text), "{i}: {}", requests[i].body);
    }
    for t in tasks {
        t.abort();
    }
}
