//! An instance's web endpoint served for real on the local node and called with the
//! clients users run: the instance controller creates the serving AgentRun, the AgentRun
//! controller its Deployment and Service, and the local node runs `sympozium-web-proxy` in
//! the pod. The official `openai` and `mcp` Python SDKs then call it through the Service's
//! cluster IP (from the node's services network namespace); each request becomes a run whose
//! pod (real runner + IPC bridge) asks the fake LLM, and the answer streams back over NATS.
//! The SympoziumConfig controller makes the shared Gateway, and the serving run its
//! HTTPRoute; this test plays the Gateway implementation by marking the Gateway programmed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use support::*;
use sympozium_api::{SympoziumConfig, SympoziumInstance};
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::{agentrun, gateway, instance, skillpack};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::fake_llm::{FakeLlm, Turn};
use sympozium_testkit::{TestPlane, wait_for};

const WAIT: Duration = Duration::from_secs(120);

async fn create<K>(client: &Client, ns: &str, obj: Value)
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope> + Clone + std::fmt::Debug,
    K: serde::de::DeserializeOwned + serde::Serialize,
    <K as kube::Resource>::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &serde_json::from_value(obj).unwrap()).await.unwrap();
}

fn gw(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind), plural)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_and_mcp_sdks_talk_to_an_agent_through_its_web_endpoint() {
    ensure_built("sympozium-agent-runner", &["sympozium-agent-runner"]);
    ensure_built("sympozium-ipc-bridge", &["sympozium-ipc-bridge"]);
    ensure_built("sympozium-web-proxy", &["sympozium-web-proxy"]);
    let python =
        sympozium_testkit::python::python_venv("serving-clients", &["openai>=1.40", "mcp>=1.9", "httpx2"])
            .expect("a venv with the openai and mcp SDKs (pip install from PyPI)");
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "serving").await;
    let ns = ns.name().to_string();

    create::<Pod>(
        &client,
        &ns,
        json!({"metadata": {"name": "nats", "labels": {"app": "nats"}},
        "spec": {"containers": [{"name": "nats", "image": "nats:2.10", "args": ["-js", "-sd", "/data"],
            "ports": [{"name": "client", "containerPort": 4222}],
            "readinessProbe": {"tcpSocket": {"port": 4222}, "periodSeconds": 1},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]}}),
    )
    .await;
    create::<Service>(&client, &ns, json!({"metadata": {"name": "nats"},
        "spec": {"selector": {"app": "nats"}, "ports": [{"name": "client", "port": 4222, "targetPort": "client"}]}}))
    .await;

    let fake = FakeLlm::start().await.unwrap();
    fake.push(Turn::text("Two pods crash-loop in shop: payments and cart.").with_usage(420, 17));
    fake.push(
        Turn::text("The payment gateway timed out for twelve minutes after the 14:02 deploy.")
            .with_usage(300, 25)
            .streamed(5, Duration::from_millis(150)),
    );
    fake.push(Turn::text("Payments is healthy: 3/3 replicas ready.").with_usage(200, 9));
    host_service(&client, &ns, "llm", port_of(&fake.openai_base_url())).await;
    let base_url = format!("http://llm.{ns}.svc/v1");
    create::<Secret>(
        &client,
        &ns,
        json!({"metadata": {"name": "team-openai-key"}, "stringData": {"OPENAI_API_KEY": "sk-llm-key"}}),
    )
    .await;
    // The built-in web-endpoint skill, as installed.
    let skill: Value = serde_yaml::from_str(
        &std::fs::read_to_string(
            sympozium_testkit::repo_root().join("deploy/builtin/skillpack-web-endpoint.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let skills = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &ns,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("sympozium.ai", "v1alpha1", "SkillPack"),
            "skillpacks",
        ),
    );
    skills.create(&PostParams::default(), &serde_json::from_value(skill).unwrap()).await.unwrap();

    // This namespace plays the system namespace: the platform config lives here.
    let settings = Settings {
        system_namespace: ns.clone(),
        event_bus_url: Some(format!("nats://nats.{ns}.svc:4222")),
        ..Default::default()
    };
    let ctx =
        Arc::new(Context::new(client.clone(), settings, Metrics::default(), Some(ns.clone()), "serving-e2e"));
    let tasks = [
        tokio::spawn(agentrun::run(ctx.clone())),
        tokio::spawn(skillpack::run(ctx.clone())),
        tokio::spawn(instance::run(ctx.clone())),
        tokio::spawn(gateway::run(ctx.clone())),
    ];

    // The platform gateway: created by the controller, programmed by "the implementation".
    let configs: Api<SympoziumConfig> = Api::namespaced(client.clone(), &ns);
    configs
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
            "kind": "SympoziumConfig", "metadata": {"name": "default"},
            "spec": {"gateway": {"enabled": true, "baseDomain": "agents.example.test",
                "tls": {"enabled": true, "certManagerClusterIssuer": "letsencrypt"}}}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let gateways = Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &gw("Gateway", "gateways"));
    let gateway_obj =
        wait_for(&gateways, "sympozium-gateway", "the Gateway", WAIT, |g: Option<&DynamicObject>| {
            g.is_some()
        })
        .await
        .unwrap();
    let listeners = gateway_obj.data["spec"]["listeners"].as_array().unwrap().clone();
    assert_eq!(listeners.len(), 2, "{listeners:?}");
    assert_eq!(listeners[1]["hostname"], "*.agents.example.test");
    assert_eq!(gateway_obj.annotations()["cert-manager.io/cluster-issuer"], "letsencrypt");
    let classes = Api::<DynamicObject>::all_with(client.clone(), &gw("GatewayClass", "gatewayclasses"));
    assert!(classes.get_opt("sympozium").await.unwrap().is_some(), "the GatewayClass");
    let programmed = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "status": {
        "addresses": [{"type": "IPAddress", "value": "203.0.113.7"}],
        "conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed", "message": "test",
            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1},
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "test",
            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}]}});
    gateways
        .patch_status(
            "sympozium-gateway",
            &PatchParams::apply("gateway-implementation").force(),
            &Patch::Apply(&programmed),
        )
        .await
        .unwrap();
    let ready = wait_for(&configs, "default", "the config Ready", WAIT, |c: Option<&SympoziumConfig>| {
        c.and_then(|c| c.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some("Ready")
    })
    .await
    .unwrap();
    let gs = ready.status.unwrap().gateway.unwrap();
    assert_eq!((gs.ready, gs.address.as_deref(), gs.listener_count), (true, Some("203.0.113.7"), Some(2)));

    // The agent with a web endpoint.
    let instances: Api<SympoziumInstance> = Api::namespaced(client.clone(), &ns);
    instances
        .create(&PostParams::default(), &serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
            "kind": "SympoziumInstance", "metadata": {"name": "helper"},
            "spec": {"agents": {"default": {"model": "gpt-4o", "baseURL": base_url}},
                "authRefs": [{"provider": "openai", "secret": "team-openai-key"}],
                "skills": [{"skillPackRef": "web-endpoint", "params": {"rate_limit_rpm": "600", "rate_limit_burst": "20"}}],
                "memory": {"enabled": false, "systemPrompt": "You are the shop's SRE helper."}}})).unwrap())
        .await
        .unwrap();
    let serving = wait_for(
        &instances,
        "helper",
        "the instance Serving with its URL",
        WAIT,
        |i: Option<&SympoziumInstance>| {
            let s = i.and_then(|i| i.status.as_ref());
            s.and_then(|s| s.phase.as_deref()) == Some("Serving")
                && s.and_then(|s| s.web_endpoint.as_ref())
                    .and_then(|w| w.url.as_deref())
                    .is_some_and(|u| u.starts_with("https://"))
        },
    )
    .await;
    let serving = match serving {
        Ok(s) => s,
        Err(e) => panic!("{e}; instance status: {:?}", instances.get("helper").await.unwrap().status),
    };
    let web = serving.status.unwrap().web_endpoint.unwrap();
    assert_eq!(web.url.as_deref(), Some("https://helper.agents.example.test"));
    assert_eq!(web.auth_secret_name.as_deref(), Some("helper-web-proxy-key"));

    let routes = Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &gw("HTTPRoute", "httproutes"));
    let route = routes.get("helper-web-endpoint-web").await.unwrap();
    assert_eq!(route.data["spec"]["hostnames"], json!(["helper.agents.example.test"]));
    assert_eq!(route.data["spec"]["parentRefs"][0]["name"], "sympozium-gateway");
    assert_eq!(route.data["spec"]["parentRefs"][0]["namespace"], ns.as_str());
    assert_eq!(route.data["spec"]["rules"][0]["backendRefs"][0]["name"], "helper-web-endpoint-server");
    assert_eq!(route.data["spec"]["rules"][0]["backendRefs"][0]["port"], 8080);
    assert_eq!(route.metadata.owner_references.as_ref().unwrap()[0].name, "helper-web-endpoint");

    // The proxy pod ran on the local node and is ready.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let proxy_ready = wait_for_pod(&pods, "sympozium.ai/component=agent-server", WAIT).await;
    assert_eq!(proxy_ready.spec.as_ref().unwrap().node_name.as_deref(), Some(NODE));
    let svc: Service = Api::namespaced(client.clone(), &ns).get("helper-web-endpoint-server").await.unwrap();
    let cluster_ip = svc.spec.unwrap().cluster_ip.unwrap();
    let secret: Secret = Api::namespaced(client.clone(), &ns).get("helper-web-proxy-key").await.unwrap();
    let key = String::from_utf8(secret.data.unwrap()["api-key"].0.clone()).unwrap();
    assert!(key.starts_with("sk-") && key.len() == 51, "{key}");

    // The SDKs, in the node's services network namespace, through the Service's cluster IP.
    let script =
        sympozium_testkit::repo_root().join("crates/sympozium-web-proxy/tests/clients/serving_clients.py");
    let out = tokio::process::Command::new("ip")
        .args(["netns", "exec", &format!("{}-svc", bridge())])
        .arg(&python)
        .arg(&script)
        .arg(format!("http://{cluster_ip}:8080/v1"))
        .arg(&key)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        let logs =
            pods.list(&ListParams::default().labels("sympozium.ai/component=agent-server")).await.unwrap();
        let pod = logs.items[0].name_any();
        panic!("clients failed: {stderr}\nproxy log:\n{}", support::logs(&plane, &ns, &pod, "web-proxy"));
    }
    let seen: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));

    let chat = &seen["chat"];
    assert_eq!(chat["content"], "Two pods crash-loop in shop: payments and cart.", "{seen:#}");
    assert_eq!(chat["object"], "chat.completion");
    assert_eq!(chat["role"], "assistant");
    assert_eq!(chat["model"], "gpt-4o");
    assert_eq!(chat["finish_reason"], "stop");
    assert_eq!(chat["usage"]["prompt_tokens"], 420);
    assert_eq!(chat["usage"]["completion_tokens"], 17);
    assert_eq!(chat["usage"]["total_tokens"], 437);
    assert!(chat["id"].as_str().unwrap().starts_with("chatcmpl-helper-web-"), "{chat}");

    let stream = &seen["stream"];
    assert_eq!(
        stream["content"], "The payment gateway timed out for twelve minutes after the 14:02 deploy.",
        "{seen:#}"
    );
    assert!(stream["pieces"].as_array().unwrap().len() > 1, "the answer arrived in pieces: {stream}");
    assert_eq!(stream["finish_reason"], "stop");
    assert_eq!(stream["roles"], json!(["assistant"]));
    assert_eq!(stream["usage"]["total_tokens"], 325);
    assert_eq!(seen["models"], json!(["gpt-4o"]));
    assert_eq!(seen["wrong_key"]["status"], 401, "{seen:#}");

    let mcp = &seen["mcp"];
    assert_eq!(mcp["server"], "sympozium-agent");
    assert_eq!(mcp["tools"], json!(["ask_agent"]));
    assert_eq!(mcp["schema_required"], json!([["task"]]));
    assert_eq!(mcp["is_error"], false, "{mcp}");
    assert_eq!(mcp["text"], "Payments is healthy: 3/3 replicas ready.");

    // What the model saw: the instance prompt and the request's system message, and the
    // conversation so far ahead of the new message.
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    let system = requests[0].system_prompt();
    assert!(system.contains("You are the shop's SRE helper."), "{system}");
    assert!(system.contains("Answer in one sentence."), "{system}");
    let first = requests[0].body.to_string();
    assert!(first.contains("User: My name is Ada.") && first.contains("Assistant: Hello Ada."), "{first}");
    assert!(first.contains("Which pods are crash-looping?"), "{first}");
    assert_eq!(requests[0].header("authorization"), Some("Bearer sk-llm-key"));
    assert!(requests[2].body.to_string().contains("Is the payments service healthy?"));

    // Every request was a run of the instance, labelled as the web proxy's.
    let runs = Api::<sympozium_api::AgentRun>::namespaced(client.clone(), &ns)
        .list(&ListParams::default().labels("sympozium.ai/source=web-proxy,sympozium.ai/instance=helper"))
        .await
        .unwrap();
    let mut names: Vec<_> = runs.items.iter().map(|r| r.name_any()).collect();
    names.sort();
    assert_eq!(names.iter().filter(|n| n.starts_with("helper-web-")).count(), 2, "{names:?}");
    assert_eq!(names.iter().filter(|n| n.starts_with("helper-mcp-")).count(), 1, "{names:?}");

    // Another instance asking for the hostname `helper` already serves gets no route: the
    // first claim keeps it, the newcomer is told why and stays reachable in the cluster.
    instances
        .create(&PostParams::default(), &serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
            "kind": "SympoziumInstance", "metadata": {"name": "squatter"},
            "spec": {"agents": {"default": {"model": "gpt-4o", "baseURL": base_url}},
                "authRefs": [{"provider": "openai", "secret": "team-openai-key"}],
                "skills": [{"skillPackRef": "web-endpoint", "params": {"hostname": "HELPER.agents.example.test"}}],
                "memory": {"enabled": false}}})).unwrap())
        .await
        .unwrap();
    let in_cluster = format!("http://squatter-web-endpoint-server.{ns}.svc:8080");
    let squatter = wait_for(
        &instances,
        "squatter",
        "the squatter's in-cluster URL",
        WAIT,
        |i: Option<&SympoziumInstance>| {
            i.and_then(|i| i.status.as_ref()?.web_endpoint.as_ref()?.url.clone()).as_deref()
                == Some(in_cluster.as_str())
        },
    )
    .await;
    assert!(squatter.is_ok(), "{squatter:?}");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let mut taken = None;
    for _ in 0..240 {
        taken = events.list(&ListParams::default()).await.unwrap().items.into_iter().find(|e| {
            e.reason.as_deref() == Some("HostnameTaken")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("squatter-web-endpoint")
        });
        if taken.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let note = taken.expect("a HostnameTaken Event on the squatter's run").note.unwrap_or_default();
    assert!(
        note.contains("helper.agents.example.test") && note.contains("HTTPRoute helper-web-endpoint-web"),
        "{note}"
    );
    assert!(
        routes.get_opt("squatter-web-endpoint-web").await.unwrap().is_none(),
        "no route for a taken hostname"
    );
    let kept = routes.get("helper-web-endpoint-web").await.unwrap();
    assert_eq!(kept.data["spec"]["hostnames"], json!(["helper.agents.example.test"]));

    // Only the platform config is acted on; another one only says so.
    configs
        .create(&PostParams::default(), &serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
            "kind": "SympoziumConfig", "metadata": {"name": "mine"},
            "spec": {"gateway": {"enabled": true, "name": "tenant-gateway", "baseDomain": "evil.example.test"}}})).unwrap())
        .await
        .unwrap();
    let ignored =
        wait_for(&configs, "mine", "the other config refused", WAIT, |c: Option<&SympoziumConfig>| {
            c.and_then(|c| c.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some("Error")
        })
        .await
        .unwrap();
    assert!(ignored.status.unwrap().conditions[0].message.contains("only"), "why it was ignored");
    assert!(gateways.get_opt("tenant-gateway").await.unwrap().is_none());

    // Disabling the gateway removes the Gateway and the GatewayClass the controller made.
    configs
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"gateway": {"enabled": false}}})),
        )
        .await
        .unwrap();
    sympozium_testkit::wait_until_gone(&gateways, "sympozium-gateway", "the Gateway", WAIT).await.unwrap();
    sympozium_testkit::wait_until_gone(&classes, "sympozium", "the GatewayClass", WAIT).await.unwrap();
    let disabled = wait_for(&configs, "default", "Disabled", WAIT, |c: Option<&SympoziumConfig>| {
        c.and_then(|c| c.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some("Disabled")
    })
    .await;
    assert!(disabled.is_ok(), "{disabled:?}");

    for t in tasks {
        t.abort();
    }
}

async fn wait_for_pod(pods: &Api<Pod>, selector: &str, timeout: Duration) -> Pod {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let list = pods.list(&ListParams::default().labels(selector)).await.unwrap();
        if let Some(p) = list.items.iter().find(|p| ready(Some(p))) {
            return p.clone();
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "no ready pod for {selector}: {:?}",
                list.items.iter().map(|p| p.status.clone()).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
