//! Tenant isolation, "no escalation through runs", tried as a hostile tenant would on the
//! real test control plane: the API server calls the webhook over TLS for AgentRuns,
//! SkillPacks, SympoziumInstances and PersonaPacks, and the webhook asks the API server
//! (SubjectAccessReview) what the requesting user may do.
//!
//! The tenant is `alice`, bound to the stock `edit` ClusterRole in her namespace only (plus
//! the Sympozium kinds there), reached through client impersonation. Every way she could get
//! a run's ServiceAccount more than she holds is tried and must be refused with a message
//! naming the field, the rule and what she lacks; the permitted cases (built-in skills, rules
//! she holds) must keep working. The built-in skills come from the shipped manifests:
//! SkillPacks from `deploy/builtin`, the `sympozium-builtin-skills` ClusterRole from
//! `deploy/webhook/webhook.yaml`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::time::Duration;

use kube::Api;
use kube::api::DynamicObject;
use serde_json::{Value, json};
use support::{
    Attacks, Webhook, apply_json, create, exists, impersonating, may, patch_spec, repo, resource, tenant,
    yaml_documents,
};
use sympozium_testkit::TestPlane;

fn pack(rbac: Value, cluster: Value) -> Value {
    json!({"skills": [{"name": "tool", "content": "# Tool"}],
           "sidecar": {"image": "ghcr.io/example/skill:1", "rbac": rbac, "clusterRBAC": cluster}})
}

fn run_spec(extra: Value) -> Value {
    let mut spec = json!({"instanceRef": "agent", "agentId": "primary", "sessionKey": "", "task": "tidy up",
        "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "openai-key"}});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    spec
}

fn persona_pack(enabled: bool, persona: Value) -> Value {
    let mut p = json!({"name": "sre", "systemPrompt": "You keep the cluster healthy."});
    p.as_object_mut().unwrap().extend(persona.as_object().unwrap().clone());
    json!({"enabled": enabled, "personas": [p]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_give_a_run_more_than_it_holds() {
    let plane = TestPlane::get().unwrap();
    let admin = plane.client().await.unwrap();
    let team = plane.namespace(&admin, "iso-team").await.unwrap().name().to_string();
    let system = plane.namespace(&admin, "iso-system").await.unwrap().name().to_string();
    let user = format!("alice-{team}");

    // Admin-managed content: the shipped built-in skill packs in the system namespace, an
    // admin pack with cluster rules that no tenant may bind, and the shipped role that lets
    // `edit` users bind the built-ins.
    for entry in std::fs::read_dir(repo().join("deploy/builtin")).unwrap() {
        for mut doc in yaml_documents(&entry.unwrap().path()) {
            if doc["kind"] == "SkillPack" {
                doc["metadata"]["namespace"] = json!(system);
                apply_json(&admin, doc).await;
            }
        }
    }
    create(
        &admin,
        &system,
        "SkillPack",
        "node-reader",
        pack(json!([]), json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}])),
    )
    .await
    .unwrap();
    let shipped = yaml_documents(&repo().join("deploy/webhook/webhook.yaml"));
    let builtin_role = shipped
        .iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "sympozium-builtin-skills")
        .unwrap()
        .clone();
    apply_json(&admin, builtin_role).await;

    // Packs that exist in the tenant namespace before the webhook guards it (written before
    // it was installed): one with cluster rules, one with rules the tenant lacks.
    create(
        &admin,
        &team,
        "SkillPack",
        "old-cluster",
        pack(json!([]), json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}])),
    )
    .await
    .unwrap();
    create(
        &admin,
        &team,
        "SkillPack",
        "admin-tools",
        pack(
            json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["create"]}]),
            json!([]),
        ),
    )
    .await
    .unwrap();

    tenant(&admin, &team, &user).await;
    // The stock `edit` role picks the built-in skills role up through aggregation.
    let mut aggregated = false;
    for _ in 0..120 {
        if may(&admin, &user, &team, "bind", "skillpacks", Some("k8s-ops")).await {
            aggregated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(aggregated, "`edit` never aggregated sympozium-builtin-skills");
    assert!(!may(&admin, &user, &team, "bind", "skillpacks", Some("node-reader")).await);
    assert!(!may(&admin, &user, &team, "escalate", "skillpacks", Some("anything")).await);

    // The webhook, registered for the tenant and the system namespace.
    let webhook = Webhook::start(&plane, &admin, &system, &[team.as_str(), system.as_str()], &user).await;
    let alice = impersonating(&plane, &user).await;

    // Permitted: what alice holds, and the admin-managed built-ins.
    create(
        &alice,
        &team,
        "SkillPack",
        "pod-reader",
        pack(json!([{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]}]), json!([])),
    )
    .await
    .expect("a pack with rules alice holds is admitted");
    create(
        &alice,
        &team,
        "SympoziumInstance",
        "agent",
        json!({"agents": {"default": {"model": "gpt-4o",
                   "lifecycle": {"rbac": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]}}},
               "skills": [{"skillPackRef": "k8s-ops"}, {"skillPackRef": "pod-reader"}, {"skillPackRef": "memory"}]}),
    )
    .await
    .expect("an instance with the built-in k8s-ops and alice's own pack is admitted");
    create(
        &alice,
        &team,
        "AgentRun",
        "ok-run",
        run_spec(json!({"skills": [{"skillPackRef": "sre-observability"}, {"skillPackRef": "pod-reader"}],
            "lifecycle": {"rbac": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}]}})),
    )
    .await
    .expect("a run with a built-in skill, alice's pack and hooks within her rights is admitted");
    create(
        &alice,
        &team,
        "PersonaPack",
        "ok-team",
        persona_pack(
            true,
            json!({"skills": ["k8s-ops", "sre-observability"], "webEndpoint": {"enabled": true}}),
        ),
    )
    .await
    .expect("a persona team built from built-in skills is admitted");
    create(&alice, &team, "PersonaPack", "catalog", persona_pack(false, json!({"skills": ["admin-tools"]})))
        .await
        .expect("a disabled pack stamps nothing out and is a catalog entry");

    let who = format!("user \"{user}\"");
    let mut attacks = Attacks::default();

    // 1. A SkillPack in her own namespace asking for cluster-wide rights.
    attacks.expect_refused(
        "SkillPack with clusterRBAC in the tenant namespace",
        create(
            &alice,
            &team,
            "SkillPack",
            "cluster-secrets",
            pack(json!([]), json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}])),
        )
        .await,
        &format!("SkillPack \"cluster-secrets\" sidecar.clusterRBAC: cluster-wide rights are only granted from SkillPacks in the system namespace \"{system}\" (admin-managed), not from namespace \"{team}\""),
    );
    // 2. Shadowing a built-in with a local pack of the same name (local packs win).
    attacks.expect_refused(
        "local k8s-ops shadowing the built-in, with clusterRBAC",
        create(
            &alice,
            &team,
            "SkillPack",
            "k8s-ops",
            pack(json!([]), json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}])),
        )
        .await,
        "SkillPack \"k8s-ops\" sidecar.clusterRBAC: cluster-wide rights are only granted",
    );
    // 3. Namespaced rules she lacks: binding roles (the way to everything else).
    attacks.expect_refused(
        "SkillPack with rbac rules the user lacks",
        create(
            &alice,
            &team,
            "SkillPack",
            "binder",
            pack(
                json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                       {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["create"]}]),
                json!([]),
            ),
        )
        .await,
        &format!("SkillPack \"binder\" sidecar.rbac rule 1: {who} cannot \"create\" \"rolebindings\" (API group \"rbac.authorization.k8s.io\") in namespace \"{team}\""),
    );
    // 4. Wildcards.
    attacks.expect_refused(
        "SkillPack with wildcard rbac",
        create(
            &alice,
            &team,
            "SkillPack",
            "star",
            pack(json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]), json!([])),
        )
        .await,
        &format!("SkillPack \"star\" sidecar.rbac rule 0: {who} cannot \"*\" \"*\" (API group \"*\") in namespace \"{team}\""),
    );
    // 5. Turning her harmless pack into a dangerous one with an update.
    attacks.expect_refused(
        "SkillPack update adding rules the user lacks",
        patch_spec(
            &alice,
            &team,
            "SkillPack",
            "pod-reader",
            json!({"sidecar": {"image": "ghcr.io/example/skill:1",
                "rbac": [{"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["delete"]}]}}),
        )
        .await,
        &format!("SkillPack \"pod-reader\" sidecar.rbac rule 0: {who} cannot \"delete\" \"resourcequotas\" in namespace \"{team}\""),
    );
    // 6. Writing into the system namespace (plain RBAC already says no).
    attacks.expect_refused(
        "SkillPack in the system namespace",
        create(&alice, &system, "SkillPack", "mine", pack(json!([]), json!([]))).await,
        "forbidden",
    );
    // 7. An instance referencing a pre-existing local pack with cluster rules.
    attacks.expect_refused(
        "instance referencing a local pack with clusterRBAC",
        create(
            &alice,
            &team,
            "SympoziumInstance",
            "sneaky",
            json!({"agents": {"default": {"model": "gpt-4o"}},
                   "skills": [{"skillPackRef": "memory"}, {"skillPackRef": "old-cluster"}]}),
        )
        .await,
        &format!("spec.skills[1] \"old-cluster\" clusterRBAC: SkillPack \"old-cluster\" in namespace \"{team}\" asks for cluster-wide rights, which are only granted from SkillPacks in the system namespace \"{system}\""),
    );
    // 8. An instance referencing a pack someone else wrote with rules she lacks.
    attacks.expect_refused(
        "instance referencing a pack with rules the user lacks",
        create(
            &alice,
            &team,
            "SympoziumInstance",
            "borrow",
            json!({"agents": {"default": {"model": "gpt-4o"}}, "skills": [{"skillPackRef": "admin-tools"}]}),
        )
        .await,
        &format!("spec.skills[0] \"admin-tools\" rbac rule 0: {who} cannot \"create\" \"rolebindings\" (API group \"rbac.authorization.k8s.io\") in namespace \"{team}\""),
    );
    // 9. The same through the legacy `skillpack-` spelling.
    attacks.expect_refused(
        "instance referencing the pack by its legacy skillpack- name",
        create(
            &alice,
            &team,
            "SympoziumInstance",
            "legacy",
            json!({"agents": {"default": {"model": "gpt-4o"}}, "skills": [{"skillPackRef": "skillpack-admin-tools"}]}),
        )
        .await,
        &format!("spec.skills[0] \"skillpack-admin-tools\" rbac rule 0: {who} cannot \"create\" \"rolebindings\""),
    );
    // 10. An admin-managed pack she was never allowed to bind.
    attacks.expect_refused(
        "instance referencing a system pack the user may not bind",
        create(
            &alice,
            &team,
            "SympoziumInstance",
            "nodes",
            json!({"agents": {"default": {"model": "gpt-4o"}}, "skills": [{"skillPackRef": "node-reader"}]}),
        )
        .await,
        &format!("spec.skills[0] \"node-reader\" clusterRBAC rule 0: {who} cannot \"get\" \"nodes\" cluster-wide (to use this admin-managed skill without holding its rules, ask for \"bind\" on skillpacks \"node-reader\" in namespace \"{team}\")"),
    );
    // 11. Hooks on the instance's agent (copied into runs from schedules and chat messages).
    attacks.expect_refused(
        "instance agent lifecycle.rbac beyond the user's rights",
        create(
            &alice,
            &team,
            "SympoziumInstance",
            "hooked",
            json!({"agents": {"default": {"model": "gpt-4o",
                "lifecycle": {"rbac": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]}]}}}}),
        )
        .await,
        &format!("spec.agents.default.lifecycle.rbac rule 0: {who} cannot \"escalate\" \"roles\" (API group \"rbac.authorization.k8s.io\") in namespace \"{team}\""),
    );
    // 12. Swapping a skill into her admitted instance (whose runs schedules create).
    attacks.expect_refused(
        "instance update adding a forbidden skill",
        patch_spec(
            &alice,
            &team,
            "SympoziumInstance",
            "agent",
            json!({"skills": [{"skillPackRef": "admin-tools"}]}),
        )
        .await,
        "spec.skills[0] \"admin-tools\" rbac rule 0",
    );
    // 13. A run with hooks asking for more than she holds.
    attacks.expect_refused(
        "AgentRun lifecycle.rbac beyond the user's rights",
        create(
            &alice,
            &team,
            "AgentRun",
            "hook-run",
            run_spec(json!({"lifecycle": {"rbac": [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["create", "delete"]}]}})),
        )
        .await,
        &format!(
            "spec.lifecycle.rbac rule 1: {who} cannot \"create\" \"resourcequotas\" in namespace \"{team}\""
        ),
    );
    // 14. A run naming a forbidden skill directly.
    attacks.expect_refused(
        "AgentRun with a skill whose rules the user lacks",
        create(
            &alice,
            &team,
            "AgentRun",
            "skill-run",
            run_spec(json!({"skills": [{"skillPackRef": "memory"}, {"skillPackRef": "admin-tools"}]})),
        )
        .await,
        &format!("spec.skills[1] \"admin-tools\" rbac rule 0: {who} cannot \"create\" \"rolebindings\""),
    );
    // 15. A run naming a local pack with cluster rules.
    attacks.expect_refused(
        "AgentRun with a local clusterRBAC skill",
        create(
            &alice,
            &team,
            "AgentRun",
            "cluster-run",
            run_spec(json!({"skills": [{"skillPackRef": "old-cluster"}]})),
        )
        .await,
        "spec.skills[0] \"old-cluster\" clusterRBAC: SkillPack \"old-cluster\"",
    );
    // 16. Editing an admitted run to add the skill afterwards.
    attacks.expect_refused(
        "AgentRun update adding a forbidden skill",
        patch_spec(&alice, &team, "AgentRun", "ok-run", json!({"skills": [{"skillPackRef": "node-reader"}]}))
            .await,
        "spec.skills[0] \"node-reader\" clusterRBAC rule 0",
    );
    // 17. A persona team whose personas use a forbidden skill (the controller stamps the
    // instances under its own identity, so the pack is where alice is checked).
    attacks.expect_refused(
        "PersonaPack whose persona uses a skill the user lacks",
        create(&alice, &team, "PersonaPack", "evil-team", persona_pack(true, json!({"skills": ["k8s-ops", "admin-tools"]})))
            .await,
        &format!("spec.personas[0] \"sre\" skill \"admin-tools\" rbac rule 0: {who} cannot \"create\" \"rolebindings\""),
    );
    // 18. Enabling a catalog pack that carries one.
    attacks.expect_refused(
        "enabling a disabled PersonaPack with a forbidden skill",
        patch_spec(&alice, &team, "PersonaPack", "catalog", json!({"enabled": true})).await,
        "spec.personas[0] \"sre\" skill \"admin-tools\" rbac rule 0",
    );
    // 19. Persona hooks.
    attacks.expect_refused(
        "PersonaPack persona lifecycle.rbac beyond the user's rights",
        create(
            &alice,
            &team,
            "PersonaPack",
            "hook-team",
            persona_pack(
                true,
                json!({"lifecycle": {"rbac": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]}}),
            ),
        )
        .await,
        &format!("spec.personas[0].lifecycle.rbac rule 0: {who} cannot \"list\" \"nodes\" in namespace \"{team}\""),
    );
    // 20. A persona on an admin-managed pack she may not bind.
    attacks.expect_refused(
        "PersonaPack persona using a system pack the user may not bind",
        create(
            &alice,
            &team,
            "PersonaPack",
            "node-team",
            persona_pack(true, json!({"skills": ["node-reader"]})),
        )
        .await,
        "spec.personas[0] \"sre\" skill \"node-reader\" clusterRBAC rule 0",
    );
    // 21. A run's own ServiceAccount (web-endpoint's rules: it may create AgentRuns) trying
    // to start a run with a built-in skill it was never given.
    let runner = "runner";
    apply_json(&admin, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": runner, "namespace": team}})).await;
    apply_json(
        &admin,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "runner", "namespace": team},
        "rules": [{"apiGroups": ["sympozium.ai"], "resources": ["agentruns"], "verbs": ["get", "list", "watch", "create"]},
                  {"apiGroups": ["sympozium.ai"], "resources": ["sympoziuminstances"], "verbs": ["get", "list", "watch"]}]}),
    )
    .await;
    apply_json(
        &admin,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "runner", "namespace": team},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "runner"},
        "subjects": [{"kind": "ServiceAccount", "name": runner, "namespace": team}]}),
    )
    .await;
    let sa_user = format!("system:serviceaccount:{team}:{runner}");
    let as_run = impersonating(&plane, &sa_user).await;
    attacks.expect_refused(
        "a run's ServiceAccount creating a run with k8s-ops",
        create(
            &as_run,
            &team,
            "AgentRun",
            "laundered",
            run_spec(json!({"skills": [{"skillPackRef": "k8s-ops"}]})),
        )
        .await,
        &format!("spec.skills[0] \"k8s-ops\" rbac rule 0: user \"{sa_user}\" cannot"),
    );
    // 22. What `kubectl apply` shows her, word for word.
    let manifest = std::env::temp_dir().join(format!("{team}-evil-pack.json"));
    std::fs::write(
        &manifest,
        serde_json::to_vec(&json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SkillPack",
            "metadata": {"name": "kubectl-evil", "namespace": team},
            "spec": pack(json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]},
                                {"apiGroups": [""], "resources": ["limitranges"], "verbs": ["update"]}]), json!([]))}))
        .unwrap(),
    )
    .unwrap();
    let kubectl = plane.kubectl(&["apply", "--as", &user, "-f", manifest.to_str().unwrap()]);
    let _ = std::fs::remove_file(&manifest);
    attacks.expect_refused(
        "kubectl apply --as alice of a pack with rules she lacks",
        kubectl.map(|_| ()).map_err(|e| e.to_string()),
        &format!("admission webhook \"vskillpack.sympozium.ai\" denied the request: SkillPack \"kubectl-evil\" sidecar.rbac rule 1: {who} cannot \"update\" \"limitranges\" in namespace \"{team}\" (defining rules you do not hold needs \"escalate\" on skillpacks)"),
    );

    // Nothing refused was stored; what was admitted is unchanged.
    for (kind, name) in [
        ("SkillPack", "cluster-secrets"),
        ("SkillPack", "k8s-ops"),
        ("SkillPack", "binder"),
        ("SympoziumInstance", "sneaky"),
        ("SympoziumInstance", "nodes"),
        ("AgentRun", "hook-run"),
        ("AgentRun", "laundered"),
        ("PersonaPack", "evil-team"),
    ] {
        assert!(!exists(&admin, &team, kind, name).await, "{kind} {name} was stored");
    }
    let reader: DynamicObject =
        Api::namespaced_with(admin.clone(), &team, &resource("SkillPack")).get("pod-reader").await.unwrap();
    assert_eq!(reader.data["spec"]["sidecar"]["rbac"][0]["resources"], json!(["pods", "pods/log"]));

    // The admin (cluster-wide rights) may still define cluster rules in the system namespace.
    create(
        &admin,
        &system,
        "SkillPack",
        "admin-cluster",
        pack(json!([]), json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}])),
    )
    .await
    .expect("an admin's cluster rules in the system namespace are admitted");

    eprintln!("no escalation through runs: {} attacks tried, {} refused", attacks.tried, attacks.refused);
    assert_eq!(attacks.tried, attacks.refused);

    webhook.stop().await;
}
