//! Pure builders of a managed MCPServer's Deployment and Service. No client here.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction,
    PodSpec, PodTemplateSpec, Probe, SecretEnvSource, SecretKeySelector, Service, ServicePort, ServiceSpec,
    TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sympozium_api::MCPServer;
use sympozium_api::mcpserver::{McpDeployment, McpTransport};
use sympozium_protocol::env as vars;

use crate::settings::Settings;

/// Port the stdio adapter listens on.
pub const ADAPTER_PORT: i32 = 8080;
/// Where the adapter binary is copied to in stdio pods.
pub const ADAPTER_DIR: &str = "/adapter";

/// Selector and pod labels.
pub fn labels(server: &MCPServer) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "mcpserver".to_string()),
        ("app.kubernetes.io/instance".to_string(), server.name_any()),
        ("app.kubernetes.io/managed-by".to_string(), "sympozium".to_string()),
    ])
}

/// The port the Service exposes.
pub fn port(server: &MCPServer) -> i32 {
    match (server.spec.transport_type, &server.spec.deployment) {
        (McpTransport::Stdio, _) => ADAPTER_PORT,
        (McpTransport::Http, Some(d)) => d.port,
        (McpTransport::Http, None) => ADAPTER_PORT,
    }
}

/// The MCP endpoint path.
pub fn path(server: &MCPServer) -> String {
    server
        .spec
        .deployment
        .as_ref()
        .and_then(|d| d.path.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/mcp".into())
}

/// In-cluster URL of a managed server.
pub fn service_url(server: &MCPServer) -> String {
    format!(
        "http://{}.{}.svc:{}{}",
        server.name_any(),
        server.namespace().unwrap_or_default(),
        port(server),
        path(server)
    )
}

fn meta(server: &MCPServer) -> ObjectMeta {
    ObjectMeta {
        name: Some(server.name_any()),
        namespace: server.namespace(),
        labels: Some(labels(server)),
        owner_references: Some(server.controller_owner_ref(&()).into_iter().collect()),
        ..Default::default()
    }
}

fn env(name: String, value: String) -> EnvVar {
    EnvVar { name, value: Some(value), ..Default::default() }
}

/// The stdio pod's containers: the adapter is copied from its image into an emptyDir, then
/// runs inside the server's image (where the server's command exists) and starts it.
/// `secret_keys` lists every key of every `secretRefs` Secret (read at reconcile time).
fn stdio_pod(
    server: &MCPServer,
    d: &McpDeployment,
    settings: &Settings,
    secret_keys: &[(String, String)],
) -> PodSpec {
    let mut vars = vec![
        env(vars::MCP_STDIO_ADAPTER.into(), "true".into()),
        env(vars::STDIO_CMD.into(), d.cmd.clone().unwrap_or_default()),
        // A JSON list: arguments may contain commas.
        env(vars::STDIO_ARGS.into(), serde_json::to_string(&d.args).unwrap_or_else(|_| "[]".into())),
        env(vars::STDIO_SERVER_NAME.into(), server.name_any()),
        env(vars::STDIO_PORT.into(), ADAPTER_PORT.to_string()),
    ];
    for (k, v) in d.env.iter().flatten() {
        vars.push(env(format!("STDIO_ENV_{k}"), v.clone()));
    }
    for (secret, key) in secret_keys {
        vars.push(EnvVar {
            name: format!("STDIO_ENV_{key}"),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.clone(),
                    key: key.clone(),
                    optional: Some(true),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let probe = |path: &str, initial: i32, period: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(ADAPTER_PORT),
            ..Default::default()
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(5),
        ..Default::default()
    };
    let adapter_mount =
        VolumeMount { name: "adapter-bin".into(), mount_path: ADAPTER_DIR.into(), ..Default::default() };
    PodSpec {
        init_containers: Some(vec![Container {
            name: "inject-adapter".into(),
            image: Some(settings.image("mcp-bridge")),
            image_pull_policy: Some("IfNotPresent".into()),
            command: Some(vec![
                "/usr/local/bin/mcp-bridge".into(),
                "--install-to".into(),
                ADAPTER_DIR.into(),
            ]),
            volume_mounts: Some(vec![adapter_mount.clone()]),
            security_context: Some(crate::agentrun::pod::hardened()),
            ..Default::default()
        }]),
        containers: vec![Container {
            name: "mcp-server".into(),
            image: Some(d.image.clone()),
            image_pull_policy: Some("IfNotPresent".into()),
            command: Some(vec![format!("{ADAPTER_DIR}/mcp-bridge")]),
            args: Some(vec!["--stdio-adapter".into()]),
            env: Some(vars),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: ADAPTER_PORT,
                ..Default::default()
            }]),
            resources: d.resources.clone(),
            liveness_probe: Some(probe("/healthz", 30, 15)),
            readiness_probe: Some(probe("/readyz", 1, 5)),
            volume_mounts: Some(vec![adapter_mount]),
            ..Default::default()
        }],
        volumes: Some(vec![Volume {
            name: "adapter-bin".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }]),
        service_account_name: d.service_account_name.clone(),
        ..Default::default()
    }
}

fn http_pod(d: &McpDeployment) -> PodSpec {
    let vars: Vec<EnvVar> = d.env.iter().flatten().map(|(k, v)| env(k.clone(), v.clone())).collect();
    let env_from: Vec<EnvFromSource> = d
        .secret_refs
        .iter()
        .map(|s| EnvFromSource {
            secret_ref: Some(SecretEnvSource { name: s.name.clone(), optional: None }),
            ..Default::default()
        })
        .collect();
    PodSpec {
        containers: vec![Container {
            name: "mcp-server".into(),
            image: Some(d.image.clone()),
            image_pull_policy: Some("IfNotPresent".into()),
            command: d.cmd.clone().filter(|c| !c.is_empty()).map(|c| vec![c]),
            args: (!d.args.is_empty()).then(|| d.args.clone()),
            env: (!vars.is_empty()).then_some(vars),
            env_from: (!env_from.is_empty()).then_some(env_from),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: d.port,
                ..Default::default()
            }]),
            resources: d.resources.clone(),
            readiness_probe: Some(Probe {
                tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(d.port), ..Default::default() }),
                initial_delay_seconds: Some(3),
                period_seconds: Some(5),
                ..Default::default()
            }),
            ..Default::default()
        }],
        service_account_name: d.service_account_name.clone(),
        ..Default::default()
    }
}

/// The Deployment of a managed server (`None` for external ones).
pub fn deployment(
    server: &MCPServer,
    settings: &Settings,
    secret_keys: &[(String, String)],
) -> Option<Deployment> {
    let d = server.spec.deployment.as_ref()?;
    if server.spec.url.as_deref().is_some_and(|u| !u.is_empty()) {
        return None;
    }
    let pod = match server.spec.transport_type {
        McpTransport::Stdio => stdio_pod(server, d, settings, secret_keys),
        McpTransport::Http => http_pod(d),
    };
    Some(Deployment {
        metadata: meta(server),
        spec: Some(DeploymentSpec {
            replicas: Some(server.spec.replicas),
            selector: LabelSelector { match_labels: Some(labels(server)), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels(server)), ..Default::default() }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The Service in front of it.
pub fn service(server: &MCPServer) -> Service {
    let mut selector = labels(server);
    selector.remove("app.kubernetes.io/managed-by");
    Service {
        metadata: meta(server),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: port(server),
                target_port: Some(IntOrString::Int(port(server))),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn server(spec: serde_json::Value) -> MCPServer {
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "MCPServer",
            "metadata": {"name": "notes", "namespace": "team", "uid": "u1"}, "spec": spec}))
        .unwrap()
    }

    #[test]
    fn a_stdio_server_runs_behind_the_adapter_with_its_env_and_secret_keys() {
        let s = server(json!({"transportType": "stdio", "toolsPrefix": "notes",
            "deployment": {"image": "mcp/notes:1", "cmd": "notes-server", "args": ["--tables", "a,b"],
                "env": {"NOTES_OWNER": "sre"}, "secretRefs": [{"name": "notes-secret"}]}}));
        let settings =
            Settings { image_registry: "reg/sym".into(), image_tag: "v2".into(), ..Default::default() };
        let d = deployment(&s, &settings, &[("notes-secret".into(), "API_KEY".into())]).unwrap();
        let pod = d.spec.unwrap().template.spec.unwrap();
        let init = &pod.init_containers.unwrap()[0];
        assert_eq!(init.image.as_deref(), Some("reg/sym/mcp-bridge:v2"));
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("mcp/notes:1"));
        assert_eq!(c.command.as_ref().unwrap(), &["/adapter/mcp-bridge"]);
        let env: BTreeMap<_, _> = c.env.iter().flatten().map(|e| (e.name.clone(), e)).collect();
        assert_eq!(env["STDIO_ARGS"].value.as_deref(), Some(r#"["--tables","a,b"]"#));
        assert_eq!(env["STDIO_ENV_NOTES_OWNER"].value.as_deref(), Some("sre"));
        let secret = env["STDIO_ENV_API_KEY"].value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
        assert_eq!((secret.name.as_str(), secret.key.as_str()), ("notes-secret", "API_KEY"));
        assert_eq!(service_url(&s), "http://notes.team.svc:8080/mcp");
        assert_eq!(service(&s).spec.unwrap().ports.unwrap()[0].port, 8080);
    }

    #[test]
    fn external_servers_get_no_workload() {
        let s = server(json!({"transportType": "http", "toolsPrefix": "kb", "url": "https://kb.example/mcp",
            "deployment": {"image": "x"}}));
        assert!(deployment(&s, &Settings::default(), &[]).is_none());
    }
}
