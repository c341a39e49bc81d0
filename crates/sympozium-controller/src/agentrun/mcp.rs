//! MCP servers of a run: the instance's `mcpServers` resolved to URLs (inline, or from
//! MCPServers in the run's namespace, then the system namespace), the ConfigMap
//! `<run>-mcp-servers` the bridge reads, and the `mcp-discover` init container and
//! `mcp-bridge` sidecar added to the pod.

use std::collections::BTreeMap;
use sympozium_protocol::env as vars;
use sympozium_protocol::ipc;

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EnvVar, EnvVarSource, PodSpec, SecretKeySelector, Volume,
};
use kube::api::ObjectMeta;
use kube::{Api, Resource, ResourceExt};
use sympozium_api::instance::McpServerRef;
use sympozium_api::{AgentRun, MCPServer, SympoziumInstance};
use sympozium_mcp_bridge::config::{Auth, AuthKind, ServerConfig, ServersFile};

use super::pod::{hardened, run_labels};
use crate::settings::Settings;

/// Key of the server list in the ConfigMap.
pub const CONFIG_KEY: &str = "mcp-servers.yaml";

/// One server the run uses, with where its token comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedServer {
    /// What the bridge reads.
    pub config: ServerConfig,
    /// `(Secret, key)` of the token, reaching the pod as `MCP_AUTH_<NAME>`.
    pub token: Option<(String, String)>,
    /// The pods of a managed MCPServer (`None` for a URL: external or inline), so the run's
    /// NetworkPolicy can open exactly them.
    pub pods: Option<ManagedPods>,
}

/// Where a managed MCPServer's pods are: its namespace, pod labels and container port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedPods {
    /// Namespace of the MCPServer.
    pub namespace: String,
    /// Labels of its pods (the Service's selector).
    pub labels: BTreeMap<String, String>,
    /// The port its pods serve MCP on.
    pub port: i32,
}

/// Name of the ConfigMap of `run`.
pub fn config_map_name(run: &AgentRun) -> String {
    format!("{}-mcp-servers", run.name_any())
}

/// `MCP_AUTH_<NAME>`: the variable holding a server's token.
pub fn token_env(server: &str) -> String {
    let name: String = server
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .collect();
    format!("MCP_AUTH_{name}")
}

/// The URL runs reach a MCPServer at: the external URL, or what the controller published.
pub fn server_url(server: &MCPServer) -> Option<String> {
    server
        .spec
        .url
        .clone()
        .filter(|u| !u.is_empty())
        .or_else(|| server.status.as_ref().and_then(|s| s.url.clone()))
        .filter(|u| !u.is_empty())
}

/// A reference combined with the MCPServer it names (`None` for inline URLs). The reference
/// wins where it says something; the MCPServer's credentials are only used by runs in its
/// own namespace (a Secret cannot be read across namespaces anyway).
pub fn resolve_ref(r: &McpServerRef, server: Option<&MCPServer>, run_ns: &str) -> Option<ResolvedServer> {
    let url = match (&r.url, server) {
        (Some(u), _) if !u.is_empty() => u.clone(),
        (_, Some(s)) => server_url(s)?,
        _ => return None,
    };
    let same_ns = server.is_some_and(|s| s.namespace().as_deref() == Some(run_ns));
    let timeout = match server {
        // 30 is the reference's default: an MCPServer's own timeout then applies.
        Some(s) if r.timeout == 30 => s.spec.timeout,
        _ => r.timeout,
    };
    let pick = |own: &Vec<String>, theirs: Option<&Vec<String>>| {
        if own.is_empty() { theirs.cloned().unwrap_or_default() } else { own.clone() }
    };
    let mut headers: BTreeMap<String, String> =
        server.filter(|_| same_ns).and_then(|s| s.spec.headers.clone()).unwrap_or_default();
    headers.extend(r.headers.clone().unwrap_or_default());
    let token = match (&r.auth_secret, server.filter(|_| same_ns)) {
        (Some(secret), _) if !secret.is_empty() => {
            Some((secret.clone(), r.auth_key.clone().unwrap_or_else(|| "token".into())))
        }
        (_, Some(s)) => s
            .spec
            .auth_secret
            .clone()
            .filter(|s| !s.is_empty())
            .map(|secret| (secret, s.spec.auth_key.clone().unwrap_or_else(|| "token".into()))),
        _ => None,
    };
    let pods = server
        .filter(|_| r.url.as_deref().is_none_or(str::is_empty))
        .filter(|s| s.spec.url.as_deref().is_none_or(str::is_empty))
        .map(|s| {
            let mut labels = crate::mcpserver::build::labels(s);
            labels.remove("app.kubernetes.io/managed-by");
            ManagedPods {
                namespace: s.namespace().unwrap_or_default(),
                labels,
                port: crate::mcpserver::build::port(s),
            }
        });
    let auth = token.as_ref().map(|_| Auth {
        kind: AuthKind::Bearer,
        token_env: token_env(&r.name),
        header_name: None,
    });
    Some(ResolvedServer {
        config: ServerConfig {
            name: r.name.clone(),
            url,
            transport: Default::default(),
            tools_prefix: r.tools_prefix.clone(),
            timeout: i64::from(timeout),
            auth,
            headers,
            tools_allow: pick(&r.tools_allow, server.map(|s| &s.spec.tools_allow)),
            tools_deny: pick(&r.tools_deny, server.map(|s| &s.spec.tools_deny)),
        },
        token,
        pods,
    })
}

/// Resolves the instance's servers for a run in `run_ns`; the second list says what was
/// skipped and why (for an Event).
pub async fn resolve(
    client: &kube::Client,
    settings: &Settings,
    instance: &SympoziumInstance,
    run_ns: &str,
) -> Result<(Vec<ResolvedServer>, Vec<String>), kube::Error> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for r in &instance.spec.mcp_servers {
        let server = if r.url.as_deref().is_some_and(|u| !u.is_empty()) {
            None
        } else {
            let mut found = None;
            for ns in [run_ns, settings.system_namespace.as_str()] {
                if let Some(s) = Api::<MCPServer>::namespaced(client.clone(), ns).get_opt(&r.name).await? {
                    found = Some(s);
                    break;
                }
            }
            if found.is_none() {
                skipped.push(format!(
                    "MCPServer {} not found in {run_ns} or {}",
                    r.name, settings.system_namespace
                ));
                continue;
            }
            found
        };
        match resolve_ref(r, server.as_ref(), run_ns) {
            Some(resolved) => out.push(resolved),
            None => skipped.push(format!("MCPServer {} has no URL yet (not deployed?)", r.name)),
        }
    }
    Ok((out, skipped))
}

/// The ConfigMap `<run>-mcp-servers` (owned by the run).
pub fn config_map(run: &AgentRun, servers: &[ResolvedServer]) -> Result<ConfigMap, serde_yaml::Error> {
    let file = ServersFile { servers: servers.iter().map(|s| s.config.clone()).collect() };
    let mut labels = run_labels(run);
    labels.insert(sympozium_api::labels::COMPONENT.into(), "mcp-config".into());
    Ok(ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name(run)),
            namespace: run.namespace(),
            labels: Some(labels),
            owner_references: Some(run.controller_owner_ref(&()).into_iter().collect()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(CONFIG_KEY.to_string(), serde_yaml::to_string(&file)?)])),
        ..Default::default()
    })
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
}

fn bridge_container(
    run: &AgentRun,
    servers: &[ResolvedServer],
    settings: &Settings,
    discover_only: bool,
) -> Container {
    let mut vars = vec![
        env(vars::AGENT_RUN_ID, &run.name_any()),
        env(vars::MCP_CONFIG_PATH, &format!("/config/{CONFIG_KEY}")),
        env(vars::MCP_IPC_PATH, &format!("{}/{}", ipc::DEFAULT_ROOT, ipc::TOOLS)),
        env(vars::MCP_MANIFEST_PATH, &format!("{}/{}/{}", ipc::DEFAULT_ROOT, ipc::TOOLS, ipc::MCP_TOOLS)),
        env(vars::MCP_DISCOVERY_ATTEMPTS, &settings.mcp_discovery_attempts.max(1).to_string()),
        env(vars::MCP_DISCOVERY_INTERVAL_MS, &settings.mcp_discovery_interval.as_millis().to_string()),
    ];
    if discover_only {
        vars.push(env(vars::MCP_DISCOVER_ONLY, "true"));
    }
    for s in servers {
        if let (Some((secret, key)), Some(auth)) = (&s.token, &s.config.auth) {
            vars.push(EnvVar {
                name: auth.token_env.clone(),
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
    }
    let q = |cpu: &str, mem: &str| {
        BTreeMap::from([
            ("cpu".to_string(), k8s_openapi::apimachinery::pkg::api::resource::Quantity(cpu.into())),
            ("memory".to_string(), k8s_openapi::apimachinery::pkg::api::resource::Quantity(mem.into())),
        ])
    };
    Container {
        name: if discover_only { "mcp-discover" } else { "mcp-bridge" }.into(),
        image: Some(settings.image("mcp-bridge")),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(vars),
        volume_mounts: Some(vec![
            k8s_openapi::api::core::v1::VolumeMount {
                name: "ipc".into(),
                mount_path: ipc::DEFAULT_ROOT.into(),
                ..Default::default()
            },
            k8s_openapi::api::core::v1::VolumeMount {
                name: "mcp-config".into(),
                mount_path: "/config".into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        resources: Some(k8s_openapi::api::core::v1::ResourceRequirements {
            requests: Some(q("100m", "128Mi")),
            limits: Some(q("200m", "256Mi")),
            ..Default::default()
        }),
        security_context: Some(hardened()),
        ..Default::default()
    }
}

/// Adds discovery (an init container that runs before the agent starts, so the runner finds
/// the tool manifest at once), the bridge sidecar and the config volume to the run's pod.
pub fn add_to_pod(pod: &mut PodSpec, run: &AgentRun, servers: &[ResolvedServer], settings: &Settings) {
    if servers.is_empty() {
        return;
    }
    let init = pod.init_containers.get_or_insert_with(Vec::new);
    // After waiting for memory, before pre-run hooks (which may use the tools' manifest).
    let at = init.iter().position(|c| c.name != "wait-for-memory").unwrap_or(init.len());
    init.insert(at, bridge_container(run, servers, settings, true));
    let after_ipc_bridge =
        pod.containers.iter().position(|c| c.name == "ipc-bridge").map_or(pod.containers.len(), |i| i + 1);
    pod.containers.insert(after_ipc_bridge, bridge_container(run, servers, settings, false));
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: "mcp-config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map_name(run),
            optional: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn server(ns: &str, spec: serde_json::Value, url: Option<&str>) -> MCPServer {
        let mut s: MCPServer =
            serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "MCPServer",
            "metadata": {"name": "kb", "namespace": ns}, "spec": spec}))
            .unwrap();
        s.status = url.map(|u| sympozium_api::McpServerStatus { url: Some(u.into()), ..Default::default() });
        s
    }

    fn reference(v: serde_json::Value) -> McpServerRef {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_reference_inherits_what_it_does_not_say_and_credentials_only_in_the_servers_namespace() {
        let s = server(
            "team",
            json!({"transportType": "http", "toolsPrefix": "x", "timeout": 12,
            "deployment": {"image": "kb"}, "toolsDeny": ["purge"], "authSecret": "kb-token", "headers": {"X-A": "1"}}),
            Some("http://kb.team.svc:8080/mcp"),
        );
        let r = reference(json!({"name": "kb", "toolsPrefix": "kb"}));
        let got = resolve_ref(&r, Some(&s), "team").unwrap();
        assert_eq!(got.config.url, "http://kb.team.svc:8080/mcp");
        assert_eq!((got.config.timeout, got.config.tools_deny.clone()), (12, vec!["purge".to_string()]));
        assert_eq!(got.token, Some(("kb-token".into(), "token".into())));
        assert_eq!(got.config.auth.as_ref().unwrap().token_env, "MCP_AUTH_KB");
        assert_eq!(got.config.headers.get("X-A").map(String::as_str), Some("1"));
        // The same server in the system namespace lends its URL, not its Secret or headers.
        let system = server(
            "sympozium-system",
            s.spec.clone().into_json(),
            Some("http://kb.sympozium-system.svc:8080/mcp"),
        );
        let got = resolve_ref(&r, Some(&system), "team").unwrap();
        assert!(got.token.is_none() && got.config.auth.is_none() && got.config.headers.is_empty());
        // Not deployed yet: no URL, nothing to resolve.
        assert!(
            resolve_ref(
                &r,
                Some(&server(
                    "team",
                    json!({"transportType": "stdio", "toolsPrefix": "x", "deployment": {"image": "i"}}),
                    None
                )),
                "team"
            )
            .is_none()
        );
        // Inline URLs with their own token.
        let inline = reference(
            json!({"name": "gh-enterprise", "url": "https://gh/mcp", "toolsPrefix": "gh", "authSecret": "gh", "authKey": "pat"}),
        );
        let got = resolve_ref(&inline, None, "team").unwrap();
        assert_eq!(got.token, Some(("gh".into(), "pat".into())));
        assert_eq!(got.config.auth.unwrap().token_env, "MCP_AUTH_GH_ENTERPRISE");
    }

    #[test]
    fn both_bridge_containers_get_the_discovery_retries_of_the_settings() {
        let run: AgentRun =
            serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
            "metadata": {"name": "r1", "namespace": "team"},
            "spec": {"instanceRef": "i", "agentId": "a", "sessionKey": "s", "task": "t",
                     "model": {"provider": "openai", "model": "m", "authSecretRef": "k"}}}))
            .unwrap();
        let inline = reference(json!({"name": "kb", "url": "http://kb/mcp", "toolsPrefix": "kb"}));
        let servers = vec![resolve_ref(&inline, None, "team").unwrap()];
        let value = |c: &Container, k: &str| {
            c.env.iter().flatten().find(|e| e.name == k).and_then(|e| e.value.clone()).unwrap_or_default()
        };
        let mut pod = PodSpec::default();
        add_to_pod(&mut pod, &run, &servers, &Settings::default());
        let discover = &pod.init_containers.as_ref().unwrap()[0];
        assert_eq!(
            (value(discover, "MCP_DISCOVERY_ATTEMPTS"), value(discover, "MCP_DISCOVERY_INTERVAL_MS")),
            ("6".to_string(), "10000".to_string()),
            "the defaults: 6 attempts 10 s apart"
        );
        let fast = Settings {
            mcp_discovery_attempts: 2,
            mcp_discovery_interval: std::time::Duration::from_millis(250),
            ..Settings::default()
        };
        let mut pod = PodSpec::default();
        add_to_pod(&mut pod, &run, &servers, &fast);
        for c in pod.init_containers.iter().flatten().chain(pod.containers.iter()) {
            assert_eq!(
                (value(c, "MCP_DISCOVERY_ATTEMPTS"), value(c, "MCP_DISCOVERY_INTERVAL_MS")),
                ("2".into(), "250".into())
            );
        }
        assert_eq!(pod.containers.len(), 1, "the mcp-bridge sidecar");
    }

    trait IntoJson {
        fn into_json(self) -> serde_json::Value;
    }
    impl IntoJson for sympozium_api::MCPServerSpec {
        fn into_json(self) -> serde_json::Value {
            serde_json::to_value(self).unwrap()
        }
    }
}
