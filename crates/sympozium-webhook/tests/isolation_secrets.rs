//! Tenant isolation, "no Secret through a reference", tried as a hostile tenant would on the
//! real test control plane. `bob` may create every Sympozium kind in his namespace but may
//! read only one Secret there (`bob-key`). Every field through which a run, channel pod or
//! skill sidecar would read a Secret is tried with the namespace's `prod-db` Secret; each
//! must be refused naming the field, the Secret and the missing right, and nothing stored
//! may change. Runs that use their instance's own key toward the instance's own endpoint,
//! and references to the Secret bob may read, keep working.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use kube::Api;
use kube::api::DynamicObject;
use serde_json::{Value, json};
use support::{
    Attacks, Webhook, apply_json, create, exists, impersonating, may_in_group, patch_spec, resource,
};
use sympozium_testkit::TestPlane;

const NEEDS_READ: &str = "cannot \"get\" secret \"prod-db\"";

fn instance(extra: Value) -> Value {
    let mut spec = json!({"agents": {"default": {"model": "gpt-4o"}}});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    spec
}

fn run(model: Value) -> Value {
    json!({"instanceRef": "shared", "agentId": "primary", "sessionKey": "", "task": "summarise the incidents",
           "model": model})
}

async fn secret(admin: &kube::Client, ns: &str, name: &str) {
    apply_json(
        admin,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
               "stringData": {"OPENAI_API_KEY": format!("value-of-{name}")}}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_hand_a_run_a_secret_it_may_not_read() {
    let plane = TestPlane::get().unwrap();
    let admin = plane.client().await.unwrap();
    let team = plane.namespace(&admin, "iso-secrets").await.unwrap().name().to_string();
    let system = plane.namespace(&admin, "iso-secrets-system").await.unwrap().name().to_string();
    let user = format!("bob-{team}");

    for name in ["prod-db", "bob-key", "team-openai-key"] {
        secret(&admin, &team, name).await;
    }
    // Written by the admin: an instance with the team's key and its own endpoint, and a
    // skill pack whose sidecar mounts `prod-db`.
    create(
        &admin,
        &team,
        "SympoziumInstance",
        "shared",
        instance(json!({"authRefs": [{"provider": "openai", "secret": "team-openai-key"}],
                        "agents": {"default": {"model": "gpt-4o", "baseURL": "https://llm.internal/v1"}}})),
    )
    .await
    .unwrap();
    create(
        &admin,
        &team,
        "SkillPack",
        "db-tool",
        json!({"skills": [{"name": "db", "content": "# DB"}],
               "sidecar": {"image": "ghcr.io/example/db:1", "secretRef": "prod-db"}}),
    )
    .await
    .unwrap();

    // bob: every Sympozium kind in his namespace, and `get` on one Secret only.
    apply_json(
        &admin,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "bob", "namespace": team},
        "rules": [{"apiGroups": ["sympozium.ai"],
                   "resources": ["agentruns", "skillpacks", "sympoziuminstances", "personapacks", "sympoziumschedules", "mcpservers"],
                   "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
                  {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["bob-key"], "verbs": ["get"]}]}),
    )
    .await;
    apply_json(
        &admin,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "bob", "namespace": team},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "bob"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
    )
    .await;
    assert!(!may_in_group(&admin, &user, &team, "get", "", "secrets", Some("prod-db")).await);
    assert!(may_in_group(&admin, &user, &team, "get", "", "secrets", Some("bob-key")).await);

    let webhook = Webhook::start(&plane, &admin, &system, &[team.as_str(), system.as_str()], &user).await;
    let bob = impersonating(&plane, &user).await;
    let mut attacks = Attacks::default();

    // Instances: every field that makes a pod read a Secret.
    let instance_attacks = [
        (
            "authRefs",
            json!({"authRefs": [{"provider": "openai", "secret": "prod-db"}]}),
            "spec.authRefs[0].secret",
        ),
        (
            "a channel's configRef",
            json!({"channels": [{"type": "telegram", "configRef": {"secret": "prod-db"}}]}),
            "spec.channels[0].configRef.secret",
        ),
        (
            "a fallback model's key, sent to bob's own host",
            json!({"agents": {"default": {"model": "gpt-4o", "modelFallbacks": [{"provider": "openai",
                "model": "gpt-4o", "baseURL": "https://collector.bob.example/v1", "authSecretRef": "prod-db"}]}}}),
            "spec.agents.default.modelFallbacks[0].authSecretRef",
        ),
        (
            "OTLP headers, exported to bob's collector",
            json!({"observability": {"enabled": true, "otlpEndpoint": "collector.bob.example:4317",
                                     "headersSecretRef": "prod-db"}}),
            "spec.observability.headersSecretRef",
        ),
        (
            "an MCP server token",
            json!({"mcpServers": [{"name": "x", "url": "http://mcp.bob.example", "toolsPrefix": "x",
                                   "authSecret": "prod-db"}]}),
            "spec.mcpServers[0].authSecret",
        ),
        (
            "a web endpoint key",
            json!({"webEndpoint": {"enabled": true, "authSecretRef": "prod-db"}}),
            "spec.webEndpoint.authSecretRef",
        ),
        (
            "a skill pack whose sidecar mounts the Secret",
            json!({"skills": [{"skillPackRef": "db-tool"}]}),
            "sidecar.secretRef \"prod-db\"",
        ),
    ];
    for (i, (what, extra, field)) in instance_attacks.into_iter().enumerate() {
        let name = format!("steal-{i}");
        let result = create(&bob, &team, "SympoziumInstance", &name, instance(extra)).await;
        attacks.expect_refused(&format!("instance naming prod-db in {what}"), result, field);
        assert!(!exists(&admin, &team, "SympoziumInstance", &name).await, "{what}: stored anyway");
    }
    let result = create(
        &bob,
        &team,
        "SympoziumInstance",
        "steal-x",
        instance(json!({"authRefs": [{"secret": "prod-db"}]})),
    )
    .await;
    attacks.expect_refused("the denial says what is missing", result, NEEDS_READ);

    // Changing an instance someone else wrote: refused, the stored spec unchanged.
    let result =
        patch_spec(&bob, &team, "SympoziumInstance", "shared", json!({"authRefs": [{"secret": "prod-db"}]}))
            .await;
    attacks.expect_refused(
        "re-pointing the shared instance's key at prod-db",
        result,
        "spec.authRefs[0].secret",
    );
    let stored: DynamicObject = Api::namespaced_with(admin.clone(), &team, &resource("SympoziumInstance"))
        .get("shared")
        .await
        .unwrap();
    assert_eq!(stored.data["spec"]["authRefs"][0]["secret"], "team-openai-key");

    // PersonaPacks hand their Secrets to every instance they stamp out.
    let personas = json!([{"name": "sre", "systemPrompt": "You keep the cluster healthy."}]);
    let result = create(
        &bob,
        &team,
        "PersonaPack",
        "steal-pack",
        json!({"enabled": true, "authRefs": [{"secret": "prod-db"}], "personas": personas}),
    )
    .await;
    attacks.expect_refused("an enabled pack's authRefs", result, "spec.authRefs[0].secret");
    let result = create(
        &bob,
        &team,
        "PersonaPack",
        "steal-pack",
        json!({"enabled": true, "channelConfigs": {"slack": "prod-db"}, "personas": personas}),
    )
    .await;
    attacks.expect_refused("an enabled pack's channelConfigs", result, "spec.channelConfigs.slack");

    // Runs: the instance's own key may not be redirected, and no other Secret may be named.
    let result = create(
        &bob,
        &team,
        "AgentRun",
        "steal-run-1",
        run(json!({"provider": "openai", "model": "gpt-4o",
        "baseURL": "https://collector.bob.example/v1", "authSecretRef": "team-openai-key"})),
    )
    .await;
    attacks.expect_refused(
        "the instance's key sent to bob's host",
        result,
        "spec.model.authSecretRef \"team-openai-key\"",
    );
    let result = create(
        &bob,
        &team,
        "AgentRun",
        "steal-run-2",
        run(json!({"provider": "custom", "model": "gpt-4o",
        "baseURL": "https://llm.internal/v1", "authSecretRef": "team-openai-key"})),
    )
    .await;
    attacks.expect_refused("the instance's key under another provider", result, "spec.model.authSecretRef");
    let result = create(
        &bob,
        &team,
        "AgentRun",
        "steal-run-3",
        run(json!({"provider": "openai", "model": "gpt-4o",
        "baseURL": "https://llm.internal/v1", "authSecretRef": "prod-db"})),
    )
    .await;
    attacks.expect_refused("a run naming prod-db as its key", result, NEEDS_READ);
    for i in 1..=3 {
        assert!(!exists(&admin, &team, "AgentRun", &format!("steal-run-{i}")).await);
    }

    // SkillPacks: a sidecar mounting a Secret bob may not read.
    let result = create(
        &bob,
        &team,
        "SkillPack",
        "steal-skill",
        json!({"skills": [{"name": "t", "content": "# T"}],
        "sidecar": {"image": "ghcr.io/example/skill:1", "secretRef": "prod-db"}}),
    )
    .await;
    attacks.expect_refused(
        "a sidecar mounting prod-db",
        result,
        "SkillPack \"steal-skill\" sidecar.secretRef \"prod-db\"",
    );

    // MCPServers: the bearer token goes to a URL bob chooses; a deployed server's pods get
    // every key of its secretRefs as env vars (and bob chooses the image).
    let mcp_attacks = [
        (
            "an MCP server's bearer token, sent to bob's host",
            json!({"transportType": "http", "url": "https://mcp.bob.example/mcp", "toolsPrefix": "x",
                   "authSecret": "prod-db"}),
            "spec.authSecret \"prod-db\"",
        ),
        (
            "a deployed MCP server's secretRefs",
            json!({"transportType": "http", "toolsPrefix": "x",
                   "deployment": {"image": "ghcr.io/bob/exfiltrate:1", "secretRefs": [{"name": "bob-key"}, {"name": "prod-db"}]}}),
            "spec.deployment.secretRefs[1].name \"prod-db\"",
        ),
        (
            "a stdio MCP server's secretRefs",
            json!({"transportType": "stdio", "toolsPrefix": "x",
                   "deployment": {"image": "ghcr.io/bob/exfiltrate:1", "cmd": "env", "secretRefs": [{"name": "prod-db"}]}}),
            NEEDS_READ,
        ),
    ];
    for (i, (what, spec, message)) in mcp_attacks.into_iter().enumerate() {
        let name = format!("steal-mcp-{i}");
        let result = create(&bob, &team, "MCPServer", &name, spec).await;
        attacks.expect_refused(what, result, message);
        assert!(!exists(&admin, &team, "MCPServer", &name).await, "{what}: stored anyway");
    }
    create(
        &admin,
        &team,
        "MCPServer",
        "shared-mcp",
        json!({"transportType": "http", "url": "https://mcp.internal/mcp", "toolsPrefix": "shared"}),
    )
    .await
    .unwrap();
    let result = patch_spec(&bob, &team, "MCPServer", "shared-mcp", json!({"authSecret": "prod-db"})).await;
    attacks.expect_refused(
        "adding prod-db as the token of the admin's MCP server",
        result,
        "spec.authSecret",
    );
    let stored: DynamicObject =
        Api::namespaced_with(admin.clone(), &team, &resource("MCPServer")).get("shared-mcp").await.unwrap();
    assert!(stored.data["spec"].get("authSecret").is_none(), "the stored MCPServer is unchanged");

    // Permitted: the instance's own key toward its own endpoint, the Secret bob may read, and
    // a disabled pack (a catalog entry: nothing is stamped out).
    create(
        &bob,
        &team,
        "AgentRun",
        "ok-run",
        run(json!({"provider": "openai", "model": "gpt-4o-mini",
        "baseURL": "https://llm.internal/v1", "authSecretRef": "team-openai-key"})),
    )
    .await
    .expect("a run using its instance's key toward the instance's endpoint is admitted");
    create(
        &bob,
        &team,
        "SympoziumInstance",
        "own-key",
        instance(json!({"authRefs": [{"secret": "bob-key"}],
        "channels": [{"type": "telegram", "configRef": {"secret": "bob-key"}}]})),
    )
    .await
    .expect("an instance naming the Secret bob may read is admitted");
    create(&bob, &team, "AgentRun", "ok-own", json!({"instanceRef": "own-key", "agentId": "primary",
        "sessionKey": "", "task": "t", "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "bob-key"}}))
    .await
    .expect("a run naming the Secret bob may read is admitted");
    create(
        &bob,
        &team,
        "PersonaPack",
        "catalog",
        json!({"enabled": false, "authRefs": [{"secret": "prod-db"}],
        "personas": personas}),
    )
    .await
    .expect("a disabled pack is a catalog entry");
    create(
        &bob,
        &team,
        "MCPServer",
        "own-mcp",
        json!({"transportType": "http", "url": "https://mcp.bob.example/mcp", "toolsPrefix": "own",
               "authSecret": "bob-key"}),
    )
    .await
    .expect("an MCPServer naming the Secret bob may read is admitted");
    let result = patch_spec(&bob, &team, "PersonaPack", "catalog", json!({"enabled": true})).await;
    attacks.expect_refused("enabling the catalog pack that names prod-db", result, "spec.authRefs[0].secret");

    eprintln!("no Secret through a reference: {} attacks tried, {} refused", attacks.tried, attacks.refused);
    assert_eq!(attacks.tried, attacks.refused);
    webhook.stop().await;
}
