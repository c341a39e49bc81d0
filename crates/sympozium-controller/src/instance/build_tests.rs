#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;

use super::*;

fn instance(spec: serde_json::Value) -> SympoziumInstance {
    let mut inst: SympoziumInstance = serde_json::from_value(json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
        "metadata": {"name": "my-agent", "namespace": "team", "uid": "uid-1"},
        "spec": spec,
    }))
    .unwrap();
    inst.metadata.uid = Some("uid-1".into());
    inst
}

fn seed() -> SympoziumInstance {
    instance(json!({
        "channels": [{"type": "telegram", "configRef": {"secret": "telegram-creds"},
                      "accessControl": {"allowedSenders": ["123456"]}}],
        "agents": {"default": {"model": "gpt-4.1", "baseURL": "", "nodeSelector": {"gpu-type": "a100"}}},
        "skills": [{"skillPackRef": "k8s-ops"}, {"skillPackRef": "memory"}],
        "authRefs": [{"provider": "openai", "secret": "openai-key"}],
        "memory": {"enabled": true, "maxSizeKB": 256},
        "observability": {"enabled": true, "otlpEndpoint": "otel-collector.observability.svc:4317"},
        "imagePullSecrets": [{"name": "regcred"}],
    }))
}

fn env_of(c: &Container) -> Vec<(String, String)> {
    c.env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect()
}

#[test]
fn channel_deployment_has_the_spec_shape() {
    let inst = seed();
    let settings = Settings { image_tag: "v9".into(), ..Default::default() };
    let d = channel_deployment(&inst, &inst.spec.channels[0], Some("42"), &settings);
    assert_eq!(d.metadata.name.as_deref(), Some("my-agent-channel-telegram"));
    let labels = d.metadata.labels.clone().unwrap();
    assert_eq!(labels["sympozium.ai/component"], "channel");
    assert_eq!(labels["sympozium.ai/channel"], "telegram");
    assert_eq!(labels["sympozium.ai/instance"], "my-agent");
    let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("SympoziumInstance", Some(true)));
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.selector.match_labels.unwrap(), labels);
    assert!(spec.strategy.is_none(), "only whatsapp recreates");
    let tpl = spec.template;
    assert_eq!(tpl.metadata.as_ref().unwrap().annotations.as_ref().unwrap()[CONFIG_VERSION_ANNOTATION], "42");
    let pod = tpl.spec.unwrap();
    assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "regcred");
    let c = &pod.containers[0];
    assert_eq!(c.name, "channel");
    assert_eq!(c.image.as_deref(), Some("ghcr.io/sympozium-ai/sympozium/channel-telegram:v9"));
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(
        env_of(c),
        [
            ("INSTANCE_NAME".to_string(), "my-agent".to_string()),
            ("INSTANCE_NAMESPACE".into(), String::new()),
            ("CHANNEL_TYPE".into(), "telegram".into()),
            ("EVENT_BUS_URL".into(), "nats://nats.sympozium-system.svc:4222".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), "otel-collector.observability.svc:4317".into()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "grpc".into()),
            ("OTEL_SERVICE_NAME".into(), "sympozium-channel-telegram".into()),
        ]
    );
    let probe = c.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
    assert_eq!((probe.path.as_deref(), &probe.port), (Some("/healthz"), &IntOrString::Int(8080)));
    let ns = c.env.iter().flatten().find(|e| e.name == "INSTANCE_NAMESPACE").unwrap();
    let field = ns.value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
    assert_eq!(field.field_path, "metadata.namespace", "the channel pod knows its instance's namespace");
    assert_eq!(c.env_from.as_ref().unwrap()[0].secret_ref.as_ref().unwrap().name, "telegram-creds");
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!((sc.run_as_non_root, sc.read_only_root_filesystem), (Some(true), Some(true)));
}

#[test]
fn whatsapp_gets_its_volume_and_recreate_strategy() {
    let inst = instance(json!({"agents": {"default": {"model": "m"}}, "channels": [{"type": "whatsapp"}]}));
    let d = channel_deployment(&inst, &inst.spec.channels[0], None, &Settings::default());
    let spec = d.spec.unwrap();
    assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
    let pod = spec.template.spec.unwrap();
    assert_eq!(
        pod.volumes.unwrap()[0].persistent_volume_claim.as_ref().unwrap().claim_name,
        "my-agent-channel-whatsapp-data"
    );
    assert_eq!(pod.containers[0].volume_mounts.as_ref().unwrap()[0].mount_path, "/data");
    assert!(pod.containers[0].env_from.is_none(), "no credentials secret for whatsapp");
    let pvc = whatsapp_pvc(&inst);
    assert_eq!(pvc.metadata.name.as_deref(), Some("my-agent-channel-whatsapp-data"));
    assert_eq!(pvc.spec.unwrap().resources.unwrap().requests.unwrap()["storage"].0, "256Mi");
}

#[test]
fn otlp_endpoint_resolution() {
    let settings = Settings { otlp_endpoint: "controller-default:4317".into(), ..Default::default() };
    let off = instance(
        json!({"agents": {"default": {"model": "m"}}, "observability": {"enabled": false, "otlpEndpoint": "x:1"}}),
    );
    assert_eq!(otlp_endpoint(&off, &settings), "");
    let own = instance(
        json!({"agents": {"default": {"model": "m"}}, "observability": {"enabled": true, "otlpEndpoint": "x:1"}}),
    );
    assert_eq!(otlp_endpoint(&own, &settings), "x:1");
    let unset = instance(json!({"agents": {"default": {"model": "m"}}}));
    assert_eq!(otlp_endpoint(&unset, &settings), "controller-default:4317");
}

#[test]
fn memory_server_shape() {
    let inst = seed();
    assert!(wants_memory_server(&inst) && wants_memory_configmap(&inst));
    let d = memory_deployment(&inst, &Settings::default());
    assert_eq!(d.metadata.name.as_deref(), Some("my-agent-memory"));
    let spec = d.spec.unwrap();
    assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.security_context.as_ref().unwrap().fs_group, Some(1000));
    let c = &pod.containers[0];
    assert_eq!(c.name, "memory-server");
    assert_eq!(c.image.as_deref(), Some("ghcr.io/sympozium-ai/sympozium/skill-memory:latest"));
    assert_eq!(
        env_of(c),
        [
            ("MEMORY_DB_PATH".to_string(), "/data/memory.db".to_string()),
            ("MEMORY_PORT".into(), "8080".into()),
            // The token's value comes from the instance's Secret, never from the spec.
            ("MEMORY_AUTH_TOKEN".into(), String::new()),
            ("MEMORY_SEEDS_PATH".into(), "/seeds/MEMORY.md".into()),
        ]
    );
    let token = c.env.iter().flatten().find(|e| e.name == "MEMORY_AUTH_TOKEN").unwrap();
    let by_ref = token.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!((by_ref.name.as_str(), by_ref.key.as_str()), ("my-agent-memory-token", "token"));
    // Size limits a user sets on the instance reach the server.
    let mut limited = seed();
    let memory = limited.spec.memory.as_mut().unwrap();
    (memory.max_entries, memory.max_total_bytes, memory.max_entry_bytes) =
        (Some(5000), Some(1 << 20), Some(4096));
    let d = memory_deployment(&limited, &Settings::default());
    let env = env_of(&d.spec.unwrap().template.spec.unwrap().containers[0]);
    for (k, v) in [
        ("MEMORY_MAX_ENTRIES", "5000"),
        ("MEMORY_MAX_TOTAL_BYTES", "1048576"),
        ("MEMORY_MAX_ENTRY_BYTES", "4096"),
    ] {
        assert!(env.contains(&(k.to_string(), v.to_string())), "{k}: {env:?}");
    }
    let seeds = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == "memory-seeds").unwrap();
    let cm = seeds.config_map.as_ref().unwrap();
    assert_eq!(
        (cm.name.as_str(), cm.optional),
        ("my-agent-memory", Some(true)),
        "the seeded memory ConfigMap"
    );
    let mount = c.volume_mounts.as_ref().unwrap().iter().find(|m| m.name == "memory-seeds").unwrap();
    assert_eq!((mount.mount_path.as_str(), mount.read_only), ("/seeds", Some(true)));
    let startup = c.startup_probe.as_ref().unwrap();
    assert_eq!((startup.period_seconds, startup.failure_threshold), (Some(2), Some(30)));
    assert_eq!(c.readiness_probe.as_ref().unwrap().period_seconds, Some(10));
    let live = c.liveness_probe.as_ref().unwrap();
    assert_eq!((live.initial_delay_seconds, live.period_seconds), (Some(5), Some(30)));
    let res = c.resources.as_ref().unwrap();
    assert_eq!(res.requests.as_ref().unwrap()["cpu"].0, "50m");
    assert_eq!(res.limits.as_ref().unwrap()["memory"].0, "128Mi");
    let svc = memory_service(&inst).spec.unwrap();
    assert_eq!(svc.ports.unwrap()[0].port, 8080);
    assert_eq!(memory_pvc(&inst).spec.unwrap().resources.unwrap().requests.unwrap()["storage"].0, "1Gi");
    assert_eq!(memory_configmap(&inst).data.unwrap()["MEMORY.md"], MEMORY_PLACEHOLDER);
}

#[test]
fn web_endpoint_run_only_with_the_skill() {
    assert!(web_endpoint_run(&seed()).is_none());
    let inst = instance(json!({
        "agents": {"default": {"model": "gpt-4.1", "baseURL": "http://ollama:11434", "nodeSelector": {"gpu": "yes"}}},
        "skills": [{"skillPackRef": "web-endpoint", "params": {"hostname": "a.example.com"}}],
        "authRefs": [{"secret": "k"}],
        "imagePullSecrets": [{"name": "regcred"}],
    }));
    let run = web_endpoint_run(&inst).unwrap();
    assert_eq!(run.metadata.name.as_deref(), Some("my-agent-web-endpoint"));
    assert_eq!(run.metadata.labels.as_ref().unwrap()["sympozium.ai/component"], "web-endpoint");
    let s = &run.spec;
    assert_eq!((s.agent_id.as_str(), s.session_key.as_str()), ("web-endpoint", "web-endpoint"));
    assert_eq!(s.mode, RunMode::Server);
    assert_eq!(s.model.provider, "ollama");
    assert_eq!(s.model.auth_secret_ref, "k");
    assert_eq!(s.model.base_url.as_deref(), Some("http://ollama:11434"));
    assert_eq!(s.skills[0].params.as_ref().unwrap()["hostname"], "a.example.com");
    assert_eq!(s.image_pull_secrets[0].name, "regcred");
}

#[test]
fn memory_server_without_the_legacy_configmap_imports_no_seeds() {
    let inst =
        instance(json!({"agents": {"default": {"model": "m"}}, "skills": [{"skillPackRef": "memory"}]}));
    assert!(wants_memory_server(&inst) && !wants_memory_configmap(&inst));
    let pod = memory_deployment(&inst, &Settings::default()).spec.unwrap().template.spec.unwrap();
    assert!(env_of(&pod.containers[0]).iter().all(|(k, _)| k != "MEMORY_SEEDS_PATH"));
    assert!(
        pod.volumes.unwrap().iter().all(|v| v.name != "memory-seeds"),
        "a missing seeds file would stop the server"
    );
}
