//! The AgentRun controller's per-run NetworkPolicy (built by the controller's own code for a
//! run whose SympoziumPolicy sets `denyAll`, `allowDNS`, `allowEventBus`, with the memory
//! skill) on the local node: the agent pod reaches its DNS, the bus in the system namespace,
//! its own instance's memory server and its model, and nothing of another tenant, another
//! instance or the node; nobody reaches the agent pod.

use super::*;
use sympozium_api::AgentRun;
use sympozium_controller::agentrun::network::{NetworkInputs, network_policy, pod_selector};
use sympozium_controller::settings::Settings;

#[tokio::test]
async fn the_controllers_run_policy_keeps_the_agent_pod_inside_its_tenant() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let score = Score::default();
    let tenant = namespace(&client, &plane, "np-tenant").await;
    let victim_ns = namespace(&client, &plane, "np-victim").await;
    let system = namespace(&client, &plane, "np-system").await;
    let (tenant, victim_ns, system) = (tenant.name(), victim_ns.name(), system.name());

    let bus = &start(&client, system, vec![server("nats", json!({"app": "nats"}), 4222)]).await[0];
    let victim = &start(&client, victim_ns, vec![server("victim-db", json!({"app": "db"}), 8080)]).await[0];
    let victim_svc = service(&client, victim_ns, "victim-db", json!({"app": "db"}), 8080).await;
    let ips = start(
        &client,
        tenant,
        vec![
            server("llm", json!({"app": "llm"}), 8000),
            server(
                "memory",
                json!({"sympozium.ai/instance": "inst", "sympozium.ai/component": "memory"}),
                8080,
            ),
            server(
                "other-memory",
                json!({"sympozium.ai/instance": "other", "sympozium.ai/component": "memory"}),
                8080,
            ),
            server("neighbour", json!({"app": "web"}), 8080),
        ],
    )
    .await;
    let (llm, memory, other_memory, neighbour) = (&ips[0], &ips[1], &ips[2], &ips[3]);
    let memory_svc = service(
        &client,
        tenant,
        "inst-memory",
        json!({"sympozium.ai/instance": "inst", "sympozium.ai/component": "memory"}),
        8080,
    )
    .await;

    let run: AgentRun = serde_json::from_value(json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "r1", "namespace": tenant, "uid": "00000000-0000-0000-0000-000000000001"},
        "spec": {"instanceRef": "inst", "agentId": "default", "sessionKey": "s", "task": "t",
            "model": {"provider": "openai", "model": "m", "baseURL": format!("http://{llm}:8000/v1"), "authSecretRef": "k"}}
    }))
    .unwrap();
    // The agent pod carries the labels the controller's Job gives it (and serves, so that
    // connections *to* it can be tried).
    let labels = serde_json::to_value(pod_selector(&run)).unwrap();
    let agent = &start(&client, tenant, vec![server("agent", labels, 8080)]).await[0];

    // No policy yet: everything below works.
    for (what, from, target, body) in [
        ("agent → another tenant's pod (no policy)", agent, at(victim, 8080), "hello from victim-db"),
        ("agent → another tenant's Service (no policy)", agent, victim_svc, "hello from victim-db"),
        (
            "agent → another instance's memory (no policy)",
            agent,
            at(other_memory, 8080),
            "hello from other-memory",
        ),
        ("agent → a neighbour pod (no policy)", agent, at(neighbour, 8080), "hello from neighbour"),
        ("neighbour → agent (no policy)", neighbour, at(agent, 8080), "hello from agent"),
        ("victim → agent (no policy)", victim, at(agent, 8080), "hello from agent"),
    ] {
        reaches(what, from, target, body).await;
    }

    let settings = Settings { system_namespace: system.to_string(), ..Default::default() };
    let net: sympozium_api::policy::NetworkPolicySpec =
        serde_json::from_value(json!({"denyAll": true, "allowDNS": true, "allowEventBus": true})).unwrap();
    let inputs = NetworkInputs {
        run: &run,
        policy: Some(&net),
        settings: &settings,
        memory: true,
        api_server: Vec::new(),
        mcp: &[],
    };
    let (mut np, _) = network_policy(&inputs).unwrap();
    // The run object does not exist here; an owner reference to it would let the garbage
    // collector delete the policy.
    np.metadata.owner_references = None;
    let nps: Api<NetworkPolicy> = Api::namespaced(client.clone(), tenant);
    nps.create(&PostParams::default(), &np).await.unwrap();

    score.refused("agent → another tenant's pod", agent, at(victim, 8080)).await;
    score.refused("agent → another tenant's Service", agent, victim_svc).await;
    score.refused("agent → another instance's memory server", agent, at(other_memory, 8080)).await;
    score.refused("agent → a neighbour pod of its own namespace", agent, at(neighbour, 8080)).await;
    score.refused("neighbour → agent", neighbour, at(agent, 8080)).await;
    score.refused("victim tenant → agent", victim, at(agent, 8080)).await;
    reaches("agent → its memory server", agent, at(memory, 8080), "hello from memory").await;
    reaches("agent → its memory Service", agent, memory_svc, "hello from memory").await;
    reaches("agent → the bus", agent, at(bus, 4222), "hello from nats").await;
    reaches("agent → its model", agent, at(llm, 8000), "hello from llm").await;
    let dns_server = {
        let a: Ipv4Addr = agent.parse().unwrap();
        Ipv4Addr::from(u32::from(a) & 0xffff_ff00 | 2)
    };
    let answers =
        dns_from(agent, dns_server, &format!("inst-memory.{tenant}.svc.cluster.local")).await.unwrap();
    assert_eq!(answers, vec![memory_svc.ip().to_string().parse::<Ipv4Addr>().unwrap()]);
    score.report("agent run");
}
