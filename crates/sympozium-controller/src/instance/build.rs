//! Pure builders: the Kubernetes objects an instance should own, from its spec and the
//! deployment settings. No client here, so every shape is unit-tested.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvFromSource, EnvVar,
    EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretEnvSource, SecurityContext, Service,
    ServicePort, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};
use sympozium_api::agentrun::RunMode;
use sympozium_api::instance::{ChannelSpec, ChannelType};
use sympozium_api::labels::{self, component, skills};
use sympozium_api::{AgentRun, AgentRunSpec, SympoziumInstance, resolve};

use crate::settings::Settings;

/// Where the memory server finds the memory ConfigMap's `MEMORY.md` to import as seeds.
pub const SEEDS_DIR: &str = "/seeds";
/// Placeholder written into a new legacy memory ConfigMap.
pub const MEMORY_PLACEHOLDER: &str = "# Agent Memory\n\nNo memories recorded yet.\n";
/// Pod-template annotation carrying the credentials Secret's resourceVersion, so a changed
/// Secret rolls the channel Deployment without the controller reading secret values.
pub const CONFIG_VERSION_ANNOTATION: &str = "sympozium.ai/config-version";
/// Pod-template annotation carrying a hash of the channel's access control.
pub const ACCESS_HASH_ANNOTATION: &str = "sympozium.ai/access-control-hash";

/// Name of the channel Deployment of `channel` on `instance`.
pub fn channel_deployment_name(instance: &str, channel: ChannelType) -> String {
    format!("{instance}-channel-{channel}")
}

/// Port of a channel pod's inbound webhook (`WEBHOOK_ADDR`): Slack's Events API
/// (`POST /slack/events`) and the WhatsApp Cloud API (`GET`/`POST /webhook`).
pub const WEBHOOK_PORT: i32 = 3000;

/// Whether the platform calls the channel pod (webhooks) rather than only the reverse.
/// Slack in Socket Mode does not, but the controller never reads the Secret that decides
/// the mode, so every Slack channel gets the Service (nothing listens behind it then).
pub fn receives_webhooks(channel: ChannelType) -> bool {
    matches!(channel, ChannelType::Slack | ChannelType::Whatsapp)
}

/// Name of the legacy memory ConfigMap, and of the memory server Deployment and Service.
pub fn memory_name(instance: &str) -> String {
    format!("{instance}-memory")
}

/// Name of the memory server's database PVC.
pub fn memory_pvc_name(instance: &str) -> String {
    format!("{instance}-memory-db")
}

/// Name of the serving AgentRun of the web-endpoint skill.
pub fn web_endpoint_run_name(instance: &str) -> String {
    format!("{instance}-web-endpoint")
}

/// Whether the instance attaches the `memory` skill (and so gets a memory server).
pub fn wants_memory_server(inst: &SympoziumInstance) -> bool {
    inst.spec.skills.iter().any(|s| s.skill_pack_ref.as_deref() == Some(skills::MEMORY))
}

/// Whether the legacy ConfigMap memory is on (`spec.memory.enabled`).
pub fn wants_memory_configmap(inst: &SympoziumInstance) -> bool {
    inst.spec.memory.as_ref().is_some_and(|m| m.enabled)
}

fn owner(inst: &SympoziumInstance) -> Vec<OwnerReference> {
    inst.controller_owner_ref(&()).into_iter().collect()
}

fn meta(inst: &SympoziumInstance, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: inst.namespace(),
        labels: Some(labels),
        owner_references: Some(owner(inst)),
        ..Default::default()
    }
}

fn labels_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
}

/// An env var from the pod's own metadata (downward API).
fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn quantity(s: &str) -> Quantity {
    Quantity(s.to_string())
}

/// Non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp.
fn locked_down_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
        ..Default::default()
    }
}

fn locked_down_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(1000),
        run_as_group: Some(1000),
        fs_group: Some(1000),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
        ..Default::default()
    }
}

/// The OTLP endpoint channel pods export to: none when the instance turns observability
/// off, the instance's endpoint when it names one, else the controller's own.
pub fn otlp_endpoint(inst: &SympoziumInstance, settings: &Settings) -> String {
    match &inst.spec.observability {
        Some(o) if !o.enabled => String::new(),
        Some(o) if o.otlp_endpoint.as_deref().is_some_and(|e| !e.is_empty()) => {
            o.otlp_endpoint.clone().unwrap_or_default()
        }
        _ => settings.otlp_endpoint.clone(),
    }
}

fn short_hash(value: &impl serde::Serialize) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// The Deployment of one channel. `secret_version` is the resourceVersion of the
/// channel's credentials Secret (when it names one).
pub fn channel_deployment(
    inst: &SympoziumInstance,
    channel: &ChannelSpec,
    secret_version: Option<&str>,
    settings: &Settings,
) -> Deployment {
    let name = inst.name_any();
    let deploy_name = channel_deployment_name(&name, channel.type_);
    let kind = channel.type_.as_str();
    let labels = labels_of(&[
        (labels::COMPONENT, component::CHANNEL),
        (labels::CHANNEL, kind),
        (labels::INSTANCE, &name),
    ]);
    let whatsapp = channel.type_ == ChannelType::Whatsapp;
    let secret = channel.config_ref.secret.trim();

    let mut annotations = BTreeMap::new();
    if let Some(version) = secret_version {
        annotations.insert(CONFIG_VERSION_ANNOTATION.to_string(), version.to_string());
    }
    if let Some(ac) = &channel.access_control {
        annotations.insert(ACCESS_HASH_ANNOTATION.to_string(), short_hash(ac));
    }

    let mut env_vars = vec![
        env("INSTANCE_NAME", name.clone()),
        field_env("INSTANCE_NAMESPACE", "metadata.namespace"),
        env("CHANNEL_TYPE", kind),
        env("EVENT_BUS_URL", settings.event_bus_url()),
        env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_endpoint(inst, settings)),
        env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        env("OTEL_SERVICE_NAME", format!("sympozium-channel-{kind}")),
    ];
    if settings.bus_auth.is_some() {
        env_vars.extend(super::bus_access::channel_env(&name));
    }
    let container = Container {
        name: "channel".into(),
        image: Some(settings.image(&format!("channel-{kind}"))),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(env_vars),
        env_from: (!secret.is_empty()).then(|| {
            vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource { name: secret.to_string(), optional: None }),
                ..Default::default()
            }]
        }),
        volume_mounts: whatsapp.then(|| {
            vec![VolumeMount {
                name: "whatsapp-data".into(),
                mount_path: "/data".into(),
                ..Default::default()
            }]
        }),
        ports: Some(
            [("health", 8080)]
                .into_iter()
                .chain(receives_webhooks(channel.type_).then_some(("webhook", WEBHOOK_PORT)))
                .map(|(name, port)| ContainerPort {
                    name: Some(name.into()),
                    container_port: port,
                    ..Default::default()
                })
                .collect(),
        ),
        // Ready only while the platform connection works (the pod's /healthz), so the
        // Deployment's readiness says the same as the pod's health reports.
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz".into()),
                port: IntOrString::Int(8080),
                ..Default::default()
            }),
            period_seconds: Some(10),
            ..Default::default()
        }),
        security_context: Some(locked_down_container()),
        ..Default::default()
    };
    Deployment {
        metadata: meta(inst, deploy_name.clone(), labels.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector { match_labels: Some(labels.clone()), ..Default::default() },
            // The WhatsApp session lives on a ReadWriteOnce volume: never two pods at once.
            strategy: whatsapp
                .then(|| DeploymentStrategy { type_: Some("Recreate".into()), ..Default::default() }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    image_pull_secrets: (!inst.spec.image_pull_secrets.is_empty())
                        .then(|| inst.spec.image_pull_secrets.clone()),
                    security_context: Some(locked_down_pod()),
                    automount_service_account_token: Some(false),
                    volumes: whatsapp.then(|| {
                        vec![Volume {
                            name: "whatsapp-data".into(),
                            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                                claim_name: format!("{deploy_name}-data"),
                                read_only: None,
                            }),
                            ..Default::default()
                        }]
                    }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Service `<instance>-channel-<type>` in front of a channel pod's webhook port, for
/// the platforms that call the pod ([`receives_webhooks`]): what an Ingress or Gateway
/// route points Slack's Request URL or Meta's callback URL at.
pub fn channel_webhook_service(inst: &SympoziumInstance, channel: ChannelType) -> Option<Service> {
    if !receives_webhooks(channel) {
        return None;
    }
    let name = inst.name_any();
    let labels = labels_of(&[
        (labels::COMPONENT, component::CHANNEL),
        (labels::CHANNEL, channel.as_str()),
        (labels::INSTANCE, &name),
    ]);
    Some(Service {
        metadata: meta(inst, channel_deployment_name(&name, channel), labels.clone()),
        spec: Some(ServiceSpec {
            selector: Some(labels),
            ports: Some(vec![ServicePort {
                name: Some("webhook".into()),
                port: WEBHOOK_PORT,
                target_port: Some(IntOrString::String("webhook".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn pvc(
    inst: &SympoziumInstance,
    name: String,
    labels: BTreeMap<String, String>,
    size: &str,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: meta(inst, name, labels),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_string(), quantity(size))].into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The WhatsApp session PVC `<deployment>-data` (256Mi).
pub fn whatsapp_pvc(inst: &SympoziumInstance) -> PersistentVolumeClaim {
    let name = inst.name_any();
    let labels = labels_of(&[
        (labels::COMPONENT, component::CHANNEL),
        (labels::CHANNEL, ChannelType::Whatsapp.as_str()),
        (labels::INSTANCE, &name),
    ]);
    pvc(inst, format!("{}-data", channel_deployment_name(&name, ChannelType::Whatsapp)), labels, "256Mi")
}

/// The legacy memory ConfigMap with its placeholder.
pub fn memory_configmap(inst: &SympoziumInstance) -> ConfigMap {
    let name = inst.name_any();
    ConfigMap {
        metadata: meta(
            inst,
            memory_name(&name),
            labels_of(&[(labels::INSTANCE, &name), (labels::COMPONENT, component::MEMORY)]),
        ),
        data: Some([("MEMORY.md".to_string(), MEMORY_PLACEHOLDER.to_string())].into()),
        ..Default::default()
    }
}

/// The memory server's database PVC (1Gi).
pub fn memory_pvc(inst: &SympoziumInstance) -> PersistentVolumeClaim {
    let name = inst.name_any();
    pvc(
        inst,
        memory_pvc_name(&name),
        labels_of(&[(labels::INSTANCE, &name), (labels::COMPONENT, component::MEMORY_DB)]),
        "1Gi",
    )
}

fn memory_labels(inst: &str) -> BTreeMap<String, String> {
    labels_of(&[(labels::COMPONENT, component::MEMORY), (labels::INSTANCE, inst)])
}

fn health_probe(period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/health".into()),
            port: IntOrString::Int(8080),
            ..Default::default()
        }),
        period_seconds: Some(period),
        ..Default::default()
    }
}

/// The memory server Deployment `<inst>-memory`.
pub fn memory_deployment(inst: &SympoziumInstance, settings: &Settings) -> Deployment {
    let name = inst.name_any();
    let labels = memory_labels(&name);
    let mut env_vars = vec![
        env("MEMORY_DB_PATH", "/data/memory.db"),
        env("MEMORY_PORT", "8080"),
        super::memory_access::token_env(&name),
    ];
    // The user's size limits, when set; the server's own defaults otherwise.
    let memory = inst.spec.memory.clone().unwrap_or_default();
    for (var, value) in [
        ("MEMORY_MAX_ENTRIES", memory.max_entries),
        ("MEMORY_MAX_TOTAL_BYTES", memory.max_total_bytes),
        ("MEMORY_MAX_ENTRY_BYTES", memory.max_entry_bytes),
    ] {
        if let Some(v) = value {
            env_vars.push(env(var, v.to_string()));
        }
    }
    let mut mounts =
        vec![VolumeMount { name: "memory-db".into(), mount_path: "/data".into(), ..Default::default() }];
    let mut volumes = vec![Volume {
        name: "memory-db".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: memory_pvc_name(&name),
            read_only: None,
        }),
        ..Default::default()
    }];
    // The memory ConfigMap (a PersonaPack's seeds, or the placeholder) is imported into the
    // database once per seed at start-up, so seeded memories are searchable.
    if wants_memory_configmap(inst) {
        env_vars.push(env("MEMORY_SEEDS_PATH", format!("{SEEDS_DIR}/MEMORY.md")));
        mounts.push(VolumeMount {
            name: "memory-seeds".into(),
            mount_path: SEEDS_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
        volumes.push(Volume {
            name: "memory-seeds".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: memory_name(&name),
                items: Some(vec![KeyToPath {
                    key: "MEMORY.md".into(),
                    path: "MEMORY.md".into(),
                    mode: None,
                }]),
                optional: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let container = Container {
        name: "memory-server".into(),
        image: Some(settings.image("skill-memory")),
        image_pull_policy: Some("IfNotPresent".into()),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        env: Some(env_vars),
        volume_mounts: Some(mounts),
        startup_probe: Some(Probe { failure_threshold: Some(30), ..health_probe(2) }),
        readiness_probe: Some(health_probe(10)),
        liveness_probe: Some(Probe { initial_delay_seconds: Some(5), ..health_probe(30) }),
        resources: Some(ResourceRequirements {
            requests: Some(
                [("cpu".to_string(), quantity("50m")), ("memory".to_string(), quantity("64Mi"))].into(),
            ),
            limits: Some(
                [("cpu".to_string(), quantity("200m")), ("memory".to_string(), quantity("128Mi"))].into(),
            ),
            ..Default::default()
        }),
        security_context: Some(locked_down_container()),
        ..Default::default()
    };
    Deployment {
        metadata: meta(inst, memory_name(&name), labels.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector { match_labels: Some(labels.clone()), ..Default::default() },
            // SQLite on a ReadWriteOnce volume: one writer pod at a time.
            strategy: Some(DeploymentStrategy { type_: Some("Recreate".into()), ..Default::default() }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    security_context: Some(locked_down_pod()),
                    automount_service_account_token: Some(false),
                    image_pull_secrets: (!inst.spec.image_pull_secrets.is_empty())
                        .then(|| inst.spec.image_pull_secrets.clone()),
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The memory server Service `<inst>-memory` on port 8080.
pub fn memory_service(inst: &SympoziumInstance) -> Service {
    let name = inst.name_any();
    let labels = memory_labels(&name);
    Service {
        metadata: meta(inst, memory_name(&name), labels.clone()),
        spec: Some(ServiceSpec {
            selector: Some(labels),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 8080,
                target_port: Some(IntOrString::Int(8080)),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The serving AgentRun `<inst>-web-endpoint`, when the instance attaches the
/// web-endpoint skill.
pub fn web_endpoint_run(inst: &SympoziumInstance) -> Option<AgentRun> {
    let skill = inst.spec.skills.iter().find(|s| s.is_web_endpoint())?;
    let name = inst.name_any();
    let mut run = AgentRun::new(
        &web_endpoint_run_name(&name),
        AgentRunSpec {
            instance_ref: name.clone(),
            agent_id: "web-endpoint".into(),
            session_key: "web-endpoint".into(),
            task: "Serve HTTP requests for this instance".into(),
            mode: RunMode::Server,
            // Serving answers requests as they come: no extended reasoning.
            model: resolve::model_spec(
                &inst.spec,
                &resolve::ModelOverrides { thinking: Some(None), ..Default::default() },
            ),
            skills: vec![skill.clone()],
            image_pull_secrets: inst.spec.image_pull_secrets.clone(),
            ..Default::default()
        },
    );
    run.metadata = meta(
        inst,
        web_endpoint_run_name(&name),
        labels_of(&[(labels::INSTANCE, &name), (labels::COMPONENT, component::WEB_ENDPOINT)]),
    );
    Some(run)
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
