//! The CRDs on a real API server (the test control plane): manifests apply as written,
//! the server fills in defaults, rejects bad input with the schema's message, garbage-
//! collects owned children, and kubectl shows our columns. Also proves the plane itself
//! runs Jobs and Deployments to completion on its fake node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};
use sympozium_api::{
    AgentRun, MCPServer, PersonaPack, SkillPack, SympoziumConfig, SympoziumInstance, SympoziumPolicy,
    SympoziumSchedule,
};
use sympozium_testkit::{TestNamespace, TestPlane, wait_for, wait_until_gone};

const WAIT: Duration = Duration::from_secs(60);

async fn setup(prefix: &str) -> (TestPlane, Client, TestNamespace) {
    let plane = TestPlane::get().expect("test control plane");
    let client = plane.client().await.expect("client for the test control plane");
    let ns = plane.namespace(&client, prefix).await.expect("test namespace");
    (plane, client, ns)
}

fn dynamic<K: Resource<DynamicType = ()>>(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<K>(&()))
}

async fn create_raw<K: Resource<DynamicType = ()>>(client: &Client, ns: &str, body: Value) -> Value {
    let api = dynamic::<K>(client, ns);
    let obj: DynamicObject = serde_json::from_value(body).unwrap();
    let created =
        api.create(&PostParams::default(), &obj).await.unwrap_or_else(|e| panic!("create failed: {e}"));
    serde_json::to_value(created).unwrap()
}

/// Creates `body` and returns the API server's rejection message.
async fn rejection<K: Resource<DynamicType = ()>>(client: &Client, ns: &str, body: Value) -> String {
    let api = dynamic::<K>(client, ns);
    let obj: DynamicObject = serde_json::from_value(body).unwrap();
    match api.create(&PostParams::default(), &obj).await {
        Ok(o) => panic!("the API server accepted an invalid object: {}", serde_json::to_string(&o).unwrap()),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "rejected as invalid: {}", status.message);
            status.message
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn schedule(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumSchedule",
           "metadata": {"name": name}, "spec": spec})
}

fn instance(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
           "metadata": {"name": name}, "spec": spec})
}

#[tokio::test]
async fn every_sample_manifest_applies_unchanged_with_kubectl() {
    let (plane, client, ns) = setup("samples").await;
    let samples = sympozium_testkit::repo_root().join("deploy/samples");
    let out = plane
        .kubectl(&["apply", "-n", ns.name(), "-f", samples.to_str().unwrap()])
        .expect("kubectl apply of every sample");
    for expected in [
        "sympoziuminstance.sympozium.ai/my-agent created",
        "personapack.sympozium.ai/platform-team created",
        "agentrun.sympozium.ai/my-agent-web-endpoint created",
        "skillpack.sympozium.ai/k8s-ops created",
        "sympoziumpolicy.sympozium.ai/restrictive created",
        "sympoziumschedule.sympozium.ai/my-agent-nightly created",
        "sympoziumconfig.sympozium.ai/default created",
        "mcpserver.sympozium.ai/github created",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    // What was stored reads back into the typed API with every seed setting intact.
    let inst = Api::<SympoziumInstance>::namespaced(client.clone(), ns.name()).get("my-agent").await.unwrap();
    let sandbox = inst.spec.agents.default.agent_sandbox.unwrap();
    assert_eq!(sandbox.warm_pool.unwrap().size, 3);
    assert_eq!(inst.spec.mcp_servers[0].tools_prefix, "gh");
    let pack = Api::<PersonaPack>::namespaced(client.clone(), ns.name()).get("platform-team").await.unwrap();
    assert_eq!(pack.spec.exclude_personas, ["cost-analyzer"]);
    assert_eq!(pack.spec.personas[0].memory.as_ref().unwrap().seeds.len(), 3);
    let sched =
        Api::<SympoziumSchedule>::namespaced(client, ns.name()).get("my-agent-nightly").await.unwrap();
    assert_eq!(sched.spec.include_memory, Some(false), "an explicit false is stored as false");
}

#[tokio::test]
async fn the_server_fills_in_schema_defaults() {
    let (_plane, client, ns) = setup("defaults").await;
    let ns = ns.name();

    let s = create_raw::<SympoziumSchedule>(
        &client,
        ns,
        schedule("tick", json!({"instanceRef": "a", "schedule": "*/5 * * * *", "task": "check"})),
    )
    .await;
    assert_eq!(s["spec"]["type"], "scheduled");
    assert_eq!(s["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(s["spec"]["includeMemory"], true);

    let r = create_raw::<AgentRun>(
        &client,
        ns,
        json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "metadata": {"name": "r1"},
        "spec": {"instanceRef": "a", "agentId": "primary", "sessionKey": "", "task": "t",
                 "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": ""}}}),
    )
    .await;
    assert_eq!(r["spec"]["mode"], "task");
    assert_eq!(r["spec"]["cleanup"], "delete");
    assert_eq!(r["spec"]["sessionKey"], "", "required strings may be empty");

    let i = create_raw::<SympoziumInstance>(&client, ns, instance("i1", json!({
        "agents": {"default": {"model": "m", "subagents": {}, "agentSandbox": {"enabled": true, "warmPool": {}}}},
        "memory": {}, "mcpServers": [{"name": "gh", "toolsPrefix": "gh"}],
        "channels": [{"type": "whatsapp"}]}))).await;
    let spec = &i["spec"];
    assert_eq!(spec["memory"]["enabled"], true);
    assert_eq!(spec["memory"]["maxSizeKB"], 256);
    assert_eq!(spec["mcpServers"][0]["timeout"], 30);
    assert_eq!(
        spec["agents"]["default"]["subagents"],
        json!({"maxDepth": 2, "maxConcurrent": 5, "maxChildrenPerAgent": 3})
    );
    assert_eq!(spec["agents"]["default"]["agentSandbox"]["warmPool"]["size"], 2);
    assert_eq!(spec["channels"][0]["configRef"], json!({"secret": ""}), "whatsapp needs no credentials");

    let m = create_raw::<MCPServer>(
        &client,
        ns,
        json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "MCPServer", "metadata": {"name": "m1"},
        "spec": {"transportType": "stdio", "toolsPrefix": "fs", "deployment": {"image": "mcp/fs"}}}),
    )
    .await;
    assert_eq!((m["spec"]["timeout"].as_i64(), m["spec"]["replicas"].as_i64()), (Some(30), Some(1)));
    assert_eq!(m["spec"]["deployment"]["port"], 8080);

    let p = create_raw::<PersonaPack>(&client, ns, json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "PersonaPack", "metadata": {"name": "team"},
        "spec": {"personas": [{"name": "a", "systemPrompt": "x", "schedule": {"interval": "5m", "task": "t"}}]}})).await;
    assert_eq!(p["spec"]["personas"][0]["schedule"]["type"], "heartbeat");
    // A catalog entry; the server stores the schema's default, which `kubectl get` shows.
    assert_eq!(p["spec"]["enabled"], false, "a new pack stays a catalog entry");

    let k = create_raw::<SkillPack>(&client, ns, json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SkillPack", "metadata": {"name": "k"},
        "spec": {"skills": [{"name": "s", "content": "# S"}],
                 "sidecar": {"image": "img", "hostAccess": {"mounts": [{"hostPath": "/var/log", "mountPath": "/host/log"}]}}}})).await;
    assert_eq!(k["spec"]["sidecar"]["mountWorkspace"], true);
    assert_eq!(k["spec"]["sidecar"]["hostAccess"]["mounts"][0]["readOnly"], true);

    let pol = create_raw::<SympoziumPolicy>(
        &client,
        ns,
        json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumPolicy", "metadata": {"name": "p"},
        "spec": {"subagentPolicy": {}, "toolGating": {}, "networkPolicy": {}}}),
    )
    .await;
    assert_eq!(pol["spec"]["subagentPolicy"], json!({"maxDepth": 3, "maxConcurrent": 5}));
    assert_eq!(pol["spec"]["toolGating"]["defaultAction"], "allow");
    let net = &pol["spec"]["networkPolicy"];
    assert_eq!(
        (&net["denyAll"], &net["allowDNS"], &net["allowEventBus"]),
        (&json!(true), &json!(true), &json!(true))
    );

    let c = create_raw::<SympoziumConfig>(
        &client,
        ns,
        json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumConfig", "metadata": {"name": "default"},
        "spec": {"gateway": {}}}),
    )
    .await;
    assert_eq!(c["spec"]["gateway"]["gatewayClassName"], "sympozium");
    assert_eq!(c["spec"]["gateway"]["name"], "sympozium-gateway");
}

#[tokio::test]
async fn invalid_objects_are_rejected_with_the_field_and_reason() {
    let (_plane, client, ns) = setup("invalid").await;
    let ns = ns.name();

    // enum
    let msg = rejection::<SympoziumSchedule>(&client, ns, schedule("bad-enum",
        json!({"instanceRef": "a", "schedule": "* * * * *", "task": "t", "concurrencyPolicy": "Sometimes"}))).await;
    assert!(
        msg.contains("spec.concurrencyPolicy") && msg.contains("Unsupported value: \"Sometimes\""),
        "{msg}"
    );

    // minLength
    let msg = rejection::<SympoziumInstance>(
        &client,
        ns,
        instance(
            "bad-prefix",
            json!({
        "agents": {"default": {"model": "m"}}, "mcpServers": [{"name": "gh", "toolsPrefix": ""}]}),
        ),
    )
    .await;
    assert!(msg.contains("spec.mcpServers[0].toolsPrefix") && msg.contains("at least 1 chars long"), "{msg}");

    // CEL: toolsPrefix unique across mcpServers
    let msg = rejection::<SympoziumInstance>(
        &client,
        ns,
        instance(
            "dup-prefix",
            json!({
        "agents": {"default": {"model": "m"}},
        "mcpServers": [{"name": "a", "toolsPrefix": "gh"}, {"name": "b", "toolsPrefix": "gh"}]}),
        ),
    )
    .await;
    assert!(
        msg.contains("spec.mcpServers") && msg.contains("toolsPrefix must be unique across mcpServers"),
        "{msg}"
    );

    // CEL: 5-field cron only
    for bad in ["@hourly", "*/5 * * *", "0 */5 * * * *"] {
        let msg = rejection::<SympoziumSchedule>(
            &client,
            ns,
            schedule("bad-cron", json!({"instanceRef": "a", "schedule": bad, "task": "t"})),
        )
        .await;
        assert!(msg.contains("spec.schedule") && msg.contains("5-field cron"), "{bad}: {msg}");
    }

    // CEL: a persona schedule needs an interval or a cron
    let msg = rejection::<PersonaPack>(
        &client,
        ns,
        json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "PersonaPack", "metadata": {"name": "p"},
        "spec": {"personas": [{"name": "a", "systemPrompt": "x", "schedule": {"task": "t"}}]}}),
    )
    .await;
    assert!(msg.contains("spec.personas[0].schedule") && msg.contains("needs an interval"), "{msg}");

    // CEL across fields: sandbox and agentSandbox are exclusive
    let msg = rejection::<AgentRun>(
        &client,
        ns,
        json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "metadata": {"name": "both"},
        "spec": {"instanceRef": "a", "agentId": "primary", "sessionKey": "", "task": "t",
                 "model": {"provider": "openai", "model": "m", "authSecretRef": ""},
                 "sandbox": {"enabled": true}, "agentSandbox": {"enabled": true}}}),
    )
    .await;
    assert!(msg.contains("spec.sandbox and spec.agentSandbox cannot both be enabled"), "{msg}");

    // missing required field
    let msg = rejection::<AgentRun>(
        &client,
        ns,
        json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "metadata": {"name": "no-task"},
        "spec": {"instanceRef": "a", "agentId": "primary", "sessionKey": "",
                 "model": {"provider": "openai", "model": "m", "authSecretRef": ""}}}),
    )
    .await;
    assert!(msg.contains("spec.task: Required value"), "{msg}");

    // duration format
    let msg = rejection::<SympoziumInstance>(
        &client,
        ns,
        instance(
            "bad-timeout",
            json!({
        "agents": {"default": {"model": "m", "runTimeout": "ten minutes"}}}),
        ),
    )
    .await;
    assert!(msg.contains("spec.agents.default.runTimeout") && msg.contains("must be a duration"), "{msg}");

    // nothing was half-written
    let all = dynamic::<SympoziumInstance>(&client, ns).list(&Default::default()).await.unwrap();
    assert!(all.items.is_empty(), "rejected objects are not stored");
}

#[tokio::test]
async fn children_owned_by_an_instance_are_garbage_collected() {
    let (_plane, client, ns) = setup("gc").await;
    let instances: Api<SympoziumInstance> = Api::namespaced(client.clone(), ns.name());
    let mut inst: SympoziumInstance =
        serde_json::from_value(instance("owner", json!({"agents": {"default": {"model": "m"}}}))).unwrap();
    inst = instances.create(&PostParams::default(), &inst).await.unwrap();

    let owner = inst.controller_owner_ref(&()).unwrap();
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("owner-memory".into()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        data: Some([("MEMORY.md".to_string(), "# Memory\n".to_string())].into()),
        ..Default::default()
    };
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    configmaps.create(&PostParams::default(), &cm).await.unwrap();

    instances.delete("owner", &DeleteParams::background()).await.unwrap();
    wait_until_gone(&configmaps, "owner-memory", "owned ConfigMap garbage collection", WAIT)
        .await
        .expect("the garbage collector removes the instance's ConfigMap");
}

#[tokio::test]
async fn status_subresource_and_kubectl_printer_columns() {
    let (plane, client, ns) = setup("columns").await;
    let instances: Api<SympoziumInstance> = Api::namespaced(client.clone(), ns.name());
    let inst: SympoziumInstance =
        serde_json::from_value(instance("shown", json!({"agents": {"default": {"model": "m"}}}))).unwrap();
    instances.create(&PostParams::default(), &inst).await.unwrap();

    // Status only changes through /status; a status in a main-resource patch is ignored.
    let status = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
                        "status": {"phase": "Running", "activeAgentPods": 2, "totalAgentRuns": 7}});
    instances.patch("shown", &PatchParams::apply("test").force(), &Patch::Apply(&status)).await.unwrap();
    assert!(instances.get("shown").await.unwrap().status.is_none(), "status ignored on the main resource");
    instances
        .patch_status("shown", &PatchParams::apply("test").force(), &Patch::Apply(&status))
        .await
        .unwrap();

    let out = plane.kubectl(&["get", "sympoziuminstances", "-n", ns.name()]).unwrap();
    let mut lines = out.lines();
    let header: Vec<_> = lines.next().unwrap().split("  ").map(str::trim).filter(|s| !s.is_empty()).collect();
    assert_eq!(header, ["NAME", "PHASE", "ACTIVE AGENTS", "TOTAL RUNS", "AGE"], "{out}");
    let row: Vec<_> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["shown", "Running", "2", "7"], "{out}");

    // `kubectl get sympozium` lists every kind through the category.
    let out = plane.kubectl(&["get", "sympozium", "-n", ns.name()]).unwrap();
    assert!(out.contains("sympoziuminstance.sympozium.ai/shown"), "{out}");

    // `kubectl explain` shows our field documentation.
    let out = plane.kubectl(&["explain", "sympoziuminstance.spec.mcpServers.toolsPrefix"]).unwrap();
    assert!(out.contains("Prefix of the tool names"), "{out}");
}

#[tokio::test]
async fn jobs_complete_and_deployments_become_available_on_the_fake_node() {
    let (_plane, client, ns) = setup("workloads").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns.name());
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "once"},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}}}))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let complete = |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref()?.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Complete" && c.status == "True"))
    };
    wait_for(&jobs, "once", "Job Complete", WAIT, complete).await.expect("the Job completes");

    let failing: Job = serde_json::from_value(json!({
        "metadata": {"name": "fails"},
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"labels": {"testplane.sympozium.ai/fail": "true"}},
            "spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["false"]}]}}}}))
    .unwrap();
    jobs.create(&PostParams::default(), &failing).await.unwrap();
    let failed = |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref()?.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Failed" && c.status == "True"))
    };
    wait_for(&jobs, "fails", "Job Failed", WAIT, failed).await.expect("a pod marked to fail fails its Job");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "busybox"}]}}}}))
    .unwrap();
    deployments.create(&PostParams::default(), &deploy).await.unwrap();
    let available = |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref()).is_some_and(|s| s.available_replicas == Some(2))
    };
    let d = wait_for(&deployments, "web", "Deployment Available", WAIT, available)
        .await
        .expect("the Deployment becomes available");
    assert_eq!(d.name_any(), "web");
}
