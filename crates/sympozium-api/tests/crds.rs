//! The committed CRD YAML matches the code, and the schemas carry what kubectl users see:
//! printer columns, status subresources, defaults, enums and validation rules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use sympozium_api::crds;

fn crd(plural: &str) -> CustomResourceDefinition {
    crds::all().into_iter().find(|c| c.spec.names.plural == plural).expect("kind exists")
}

fn schema(plural: &str) -> JSONSchemaProps {
    crd(plural).spec.versions[0].schema.clone().unwrap().open_api_v3_schema.unwrap()
}

/// Walks a dotted path of property names (`spec.concurrencyPolicy`); `[]` steps into items.
fn prop(root: &JSONSchemaProps, path: &str) -> JSONSchemaProps {
    let mut cur = root.clone();
    for part in path.split('.') {
        if part == "[]" {
            cur = match cur.items.clone() {
                Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(s)) => *s,
                other => panic!("{path}: no items schema: {other:?}"),
            };
            continue;
        }
        cur = cur
            .properties
            .as_ref()
            .and_then(|p| p.get(part))
            .unwrap_or_else(|| panic!("{path}: no property {part}"))
            .clone();
    }
    cur
}

#[test]
fn committed_crds_match_the_code() {
    // deploy/crds for kubectl users, the Helm chart's crds/ for helm users: both generated.
    for rel in ["deploy/crds", "deploy/helm/sympozium/crds"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel);
        let rendered = crds::rendered().unwrap();
        assert_eq!(rendered.len(), 8);
        for (name, yaml) in rendered {
            let committed = std::fs::read_to_string(dir.join(&name))
                .unwrap_or_else(|_| panic!("{rel}/{name} missing: run `make crds`"));
            assert!(committed == yaml, "{rel}/{name} is stale: run `make crds` and commit");
        }
        let on_disk = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(on_disk, 8, "{rel} holds exactly the generated files");
    }
}

#[test]
fn every_kind_is_namespaced_with_status_and_the_spec_printer_columns() {
    let expected: &[(&str, &str, &[&str])] = &[
        ("sympoziuminstances", "SympoziumInstance", &["Phase", "Active Agents", "Total Runs", "Age"]),
        ("agentruns", "AgentRun", &["Instance", "Phase", "Pod", "Age"]),
        ("personapacks", "PersonaPack", &["Enabled", "Personas", "Installed", "Phase", "Age"]),
        ("skillpacks", "SkillPack", &["Skills", "ConfigMap", "Age"]),
        ("sympoziumpolicies", "SympoziumPolicy", &["Bound", "Age"]),
        (
            "sympoziumschedules",
            "SympoziumSchedule",
            &["Instance", "Schedule", "Type", "Phase", "Last Run", "Age"],
        ),
        ("sympoziumconfigs", "SympoziumConfig", &["Gateway", "Domain", "Phase", "Age"]),
        ("mcpservers", "MCPServer", &["Transport", "Ready", "URL", "Tools", "Age"]),
    ];
    for (plural, kind, columns) in expected {
        let c = crd(plural);
        assert_eq!(c.spec.group, "sympozium.ai");
        assert_eq!(&c.spec.names.kind, kind);
        assert_eq!(c.spec.scope, "Namespaced");
        assert_eq!(c.spec.names.short_names, None, "{kind}: the original has no short names");
        let v = &c.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(v.subresources.as_ref().unwrap().status.is_some(), "{kind} has /status");
        let names: Vec<_> =
            v.additional_printer_columns.as_ref().unwrap().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(&names, columns, "{kind} printer columns");
    }
}

#[test]
fn crds_stay_small_enough_for_client_side_apply() {
    // `kubectl apply` stores the whole object in an annotation capped at 256 KiB.
    for (name, yaml) in crds::rendered().unwrap() {
        assert!(yaml.len() < 128 * 1024, "{name} is {} bytes", yaml.len());
    }
}

#[test]
fn schemas_carry_the_spec_defaults_and_enums() {
    let s = schema("sympoziumschedules");
    assert_eq!(prop(&s, "spec.concurrencyPolicy").default.unwrap().0, "Forbid");
    assert_eq!(
        prop(&s, "spec.concurrencyPolicy").enum_.unwrap().iter().map(|j| j.0.clone()).collect::<Vec<_>>(),
        ["Forbid", "Allow", "Replace"]
    );
    assert_eq!(prop(&s, "spec.type").default.unwrap().0, "scheduled");
    assert_eq!(prop(&s, "spec.includeMemory").default.unwrap().0, true);

    let r = schema("agentruns");
    assert_eq!(prop(&r, "spec.mode").default.unwrap().0, "task");
    assert_eq!(prop(&r, "spec.cleanup").default.unwrap().0, "delete");
    let required = prop(&r, "spec").required.unwrap();
    for f in ["instanceRef", "agentId", "sessionKey", "task", "model"] {
        assert!(required.contains(&f.to_string()), "AgentRun spec.{f} is required");
    }
    assert!(prop(&r, "spec.model").required.unwrap().contains(&"authSecretRef".to_string()));

    let i = schema("sympoziuminstances");
    assert_eq!(prop(&i, "spec.memory.maxSizeKB").default.unwrap().0, 256);
    assert_eq!(prop(&i, "spec.memory.enabled").default.unwrap().0, true);
    assert_eq!(prop(&i, "spec.mcpServers.[].timeout").default.unwrap().0, 30);
    assert_eq!(prop(&i, "spec.mcpServers.[].toolsPrefix").min_length, Some(1));
    assert_eq!(prop(&i, "spec.agents.default.subagents.maxDepth").default.unwrap().0, 2);
    assert_eq!(prop(&i, "spec.agents.default.agentSandbox.warmPool.size").default.unwrap().0, 2);
    assert_eq!(
        prop(&i, "spec.observability.otlpProtocol")
            .enum_
            .unwrap()
            .iter()
            .map(|j| j.0.clone())
            .collect::<Vec<_>>(),
        ["grpc", "http/protobuf"]
    );
    let rules = prop(&i, "spec.mcpServers").x_kubernetes_validations.unwrap();
    assert!(
        rules.iter().any(|r| r.message.as_deref() == Some("toolsPrefix must be unique across mcpServers"))
    );

    let m = schema("mcpservers");
    assert_eq!(prop(&m, "spec.replicas").default.unwrap().0, 1);
    assert_eq!(prop(&m, "spec.deployment.port").default.unwrap().0, 8080);
    assert_eq!(prop(&m, "spec.deployment.image").min_length, Some(1));

    let k = schema("skillpacks");
    assert_eq!(prop(&k, "spec.sidecar.mountWorkspace").default.unwrap().0, true);
    assert_eq!(prop(&k, "spec.sidecar.hostAccess.mounts.[].readOnly").default.unwrap().0, true);

    let c = schema("sympoziumconfigs");
    assert_eq!(prop(&c, "spec.gateway.gatewayClassName").default.unwrap().0, "sympozium");
    assert_eq!(prop(&c, "spec.gateway.tls.secretName").default.unwrap().0, "sympozium-wildcard-cert");

    let p = schema("sympoziumpolicies");
    assert_eq!(prop(&p, "spec.subagentPolicy.maxDepth").default.unwrap().0, 3);
    assert_eq!(prop(&p, "spec.toolGating.defaultAction").default.unwrap().0, "allow");
    assert_eq!(prop(&p, "spec.networkPolicy.denyAll").default.unwrap().0, true);

    let pp = schema("personapacks");
    assert_eq!(prop(&pp, "spec.personas.[].schedule.type").default.unwrap().0, "heartbeat");
    // Catalog-only unless enabled; the stored `false` is what `kubectl get` shows as ENABLED.
    assert_eq!(prop(&pp, "spec.enabled").default.unwrap().0, false);
}
