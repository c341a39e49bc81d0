//! Server mode (`spec.mode: server`): the run becomes a long-lived Deployment and Service
//! running its serving sidecar (the web proxy), with an API key in a Secret.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;
use sympozium_protocol::env as vars;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Secret, SecretKeySelector, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DynamicObject, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::labels;
use sympozium_kube::apply::{apply, create_if_absent};

use super::inherit::effective_skills;
use super::pod::{ResolvedSidecar, hardened, run_labels, service_account_name};
use super::prepare::{grant, resolve_sidecars};
use super::{Error, publish, terminal};
use crate::context::Context;
use crate::gateway;

/// Name of the server Deployment and Service.
pub fn server_name(run: &AgentRun) -> String {
    format!("{}-server", run.name_any())
}

/// Labels (and selector) of the server pods.
pub fn server_labels(run: &AgentRun) -> BTreeMap<String, String> {
    let mut l = run_labels(run);
    l.insert(labels::COMPONENT.into(), "agent-server".into());
    l
}

/// A new random API key: `sk-` and 48 hex characters from the OS's random source.
fn new_api_key() -> std::io::Result<String> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!("sk-{}", hex::encode(bytes)))
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
}

fn probe(initial: i32, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".into()),
            port: IntOrString::Int(8080),
            ..Default::default()
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(period),
        ..Default::default()
    }
}

/// The server Deployment running the serving sidecar. `event_bus_url` replaces the
/// sidecar's own `EVENT_BUS_URL`: the proxy must listen where this cluster's runs publish.
pub fn deployment(
    run: &AgentRun,
    server: &ResolvedSidecar,
    key_secret: &str,
    event_bus_url: &str,
) -> Deployment {
    let labels = server_labels(run);
    let mut vars: Vec<EnvVar> = server
        .sidecar
        .env
        .iter()
        .filter(|e| e.name != vars::EVENT_BUS_URL)
        .map(|e| env(&e.name, e.value.clone()))
        .collect();
    vars.push(env(vars::EVENT_BUS_URL, event_bus_url));
    vars.push(env(vars::INSTANCE_NAME, run.spec.instance_ref.clone()));
    vars.push(EnvVar {
        name: "POD_NAMESPACE".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.namespace".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    vars.push(EnvVar {
        name: "WEB_PROXY_API_KEY".into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: key_secret.into(),
                key: "api-key".into(),
                optional: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    for (param, var) in [("rate_limit_rpm", "RATE_LIMIT_RPM"), ("rate_limit_burst", "RATE_LIMIT_BURST")] {
        if let Some(v) = server.params.get(param) {
            vars.push(env(var, v.clone()));
        }
    }
    for (k, v) in &server.params {
        vars.push(env(&format!("SKILL_{}", k.to_ascii_uppercase()), v.clone()));
    }
    let cpu = server.sidecar.resources.as_ref().and_then(|r| r.cpu.clone()).unwrap_or_else(|| "100m".into());
    let memory =
        server.sidecar.resources.as_ref().and_then(|r| r.memory.clone()).unwrap_or_else(|| "128Mi".into());
    let q = |c: &str, m: &str| {
        BTreeMap::from([("cpu".to_string(), Quantity(c.into())), ("memory".to_string(), Quantity(m.into()))])
    };
    let ports: Vec<_> = server
        .sidecar
        .ports
        .iter()
        .map(|p| ContainerPort {
            name: Some(p.name.clone()),
            container_port: p.container_port,
            protocol: p.protocol.clone().or(Some("TCP".into())),
            ..Default::default()
        })
        .collect();
    let container = Container {
        name: "web-proxy".into(),
        image: Some(server.sidecar.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(vars),
        ports: (!ports.is_empty()).then_some(ports),
        liveness_probe: Some(probe(5, 10)),
        readiness_probe: Some(probe(3, 5)),
        resources: Some(ResourceRequirements {
            requests: Some(q(&cpu, &memory)),
            limits: Some(q("500m", "256Mi")),
            ..Default::default()
        }),
        security_context: Some(hardened()),
        ..Default::default()
    };
    Deployment {
        metadata: ObjectMeta {
            name: Some(server_name(run)),
            namespace: run.namespace(),
            labels: Some(labels.clone()),
            owner_references: Some(run.controller_owner_ref(&()).into_iter().collect()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector { match_labels: Some(labels.clone()), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(PodSpec {
                    restart_policy: Some("Always".into()),
                    service_account_name: Some(service_account_name(run)),
                    automount_service_account_token: Some(
                        !server.sidecar.rbac.is_empty() || !server.sidecar.cluster_rbac.is_empty(),
                    ),
                    image_pull_secrets: (!run.spec.image_pull_secrets.is_empty())
                        .then(|| run.spec.image_pull_secrets.clone()),
                    node_selector: run.spec.model.node_selector.clone().filter(|n| !n.is_empty()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(1000),
                        fs_group: Some(1000),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Service in front of the server.
pub fn service(run: &AgentRun, server: &ResolvedSidecar) -> Service {
    let labels = server_labels(run);
    let mut ports: Vec<_> = server
        .sidecar
        .ports
        .iter()
        .map(|p| ServicePort {
            name: Some(p.name.clone()),
            port: p.container_port,
            target_port: Some(IntOrString::Int(p.container_port)),
            protocol: p.protocol.clone().or(Some("TCP".into())),
            ..Default::default()
        })
        .collect();
    if ports.is_empty() {
        ports.push(ServicePort {
            name: Some("http".into()),
            port: 8080,
            target_port: Some(IntOrString::Int(8080)),
            ..Default::default()
        });
    }
    Service {
        metadata: ObjectMeta {
            name: Some(server_name(run)),
            namespace: run.namespace(),
            labels: Some(labels.clone()),
            owner_references: Some(run.controller_owner_ref(&()).into_iter().collect()),
            ..Default::default()
        },
        spec: Some(ServiceSpec { selector: Some(labels), ports: Some(ports), ..Default::default() }),
        ..Default::default()
    }
}

/// Starts serving: RBAC, API key Secret, Deployment and Service; phase Serving.
pub async fn start(run: &AgentRun, api: &Api<AgentRun>, ctx: &Context) -> Result<Action, Error> {
    let ns = run.namespace().unwrap_or_default();
    let now = Time(ctx.clock.now());
    let Some(instance) = ctx.instance(&ns, &run.spec.instance_ref).await? else {
        let message = format!("instance \"{}\" not found", run.spec.instance_ref);
        terminal::fail(api, ctx, run, &message, now).await?;
        return Ok(Action::await_change());
    };
    let skills = effective_skills(run, Some(&instance));
    let (servers, withheld) = resolve_sidecars(run, &skills, ctx, true).await?;
    super::scope::report_withheld(run, api, ctx, &withheld, AgentRunPhase::Pending).await?;
    let Some(server) = servers.first() else {
        terminal::fail(api, ctx, run, "no sidecar with requiresServer=true found", now).await?;
        return Ok(Action::await_change());
    };
    let granted = match super::prepare::identity(run, ctx).await {
        Ok(()) => grant(run, &servers, ctx).await,
        Err(e) => Err(e),
    };
    if let Err(e) = granted {
        if !crate::context::is_refusal(&e) {
            return Err(e.into());
        }
        terminal::fail(api, ctx, run, &format!("granting the server's skill RBAC failed: {e}"), now).await?;
        return Ok(Action::await_change());
    }
    let key_secret = key_secret_name(run, &server.params);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    if secrets.get_metadata_opt(&key_secret).await?.is_none() {
        let key =
            new_api_key().map_err(|e| Error::Finalizer(format!("no random source for the API key: {e}")))?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(key_secret.clone()),
                namespace: Some(ns.clone()),
                labels: Some(BTreeMap::from([
                    (labels::COMPONENT.to_string(), "web-proxy".to_string()),
                    (labels::INSTANCE.to_string(), run.spec.instance_ref.clone()),
                ])),
                owner_references: Some(run.controller_owner_ref(&()).into_iter().collect()),
                ..Default::default()
            },
            string_data: Some(BTreeMap::from([("api-key".to_string(), key)])),
            ..Default::default()
        };
        create_if_absent(&secrets, &secret).await?;
    }
    let bus = ctx.settings.event_bus_url();
    apply(
        &Api::<Deployment>::namespaced(ctx.client.clone(), &ns),
        &deployment(run, server, &key_secret, &bus),
    )
    .await?;
    apply(&Api::<Service>::namespaced(ctx.client.clone(), &ns), &service(run, server)).await?;
    let server_name = server_name(run);
    let moved = terminal::transition(api, ctx, run, &[AgentRunPhase::Pending], |s| {
        s.phase = Some(AgentRunPhase::Serving);
        s.deployment_name = Some(server_name.clone());
        s.service_name = Some(server_name.clone());
        s.started_at = Some(now.clone());
    })
    .await?;
    if moved {
        publish(
            ctx,
            run,
            EventType::Normal,
            "Serving",
            &format!("serving through Deployment and Service {server_name}"),
        )
        .await;
    }
    route(run, server.params.get("hostname").map(String::as_str), &key_secret, ctx).await?;
    Ok(Action::requeue(Duration::from_secs(30)))
}

/// The Secret holding the run's API key (the skill's `auth_secret_ref`, else
/// `<instance>-web-proxy-key`).
fn key_secret_name(run: &AgentRun, params: &BTreeMap<String, String>) -> String {
    params
        .get("auth_secret_ref")
        .cloned()
        .unwrap_or_else(|| format!("{}-web-proxy-key", run.spec.instance_ref))
}

/// Creates the HTTPRoute `<run>-web` when the platform gateway is enabled and ready, and
/// records the endpoint's URL and key Secret on the run (the instance reports them in
/// `status.webEndpoint`). Without a ready gateway the URL is the in-cluster Service.
async fn route(run: &AgentRun, hostname: Option<&str>, key_secret: &str, ctx: &Context) -> Result<(), Error> {
    let ns = run.namespace().unwrap_or_default();
    let service = server_name(run);
    let mut url = format!("http://{service}.{ns}.svc:{}", gateway::build::BACKEND_PORT);
    if let Some(gw) = gateway::ready_gateway(ctx).await?
        && let Some(host) = gateway::build::route_hostname(run, hostname, &gw)
    {
        let route = gateway::build::http_route(
            run,
            server_labels(run),
            &host,
            &service,
            &gw,
            &ctx.settings.system_namespace,
        );
        let routes: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &ns, &gateway::build::http_route_resource());
        if routes.get_opt(&route.name_any()).await?.is_none()
            && let Some(holder) = hostname_taken(run, &host, ctx).await?
        {
            publish(ctx, run, EventType::Warning, "HostnameTaken", &holder).await;
            return record_url(run, &url, key_secret, ctx).await;
        }
        match create_if_absent(&routes, &route).await {
            Ok(created) => {
                if created {
                    publish(
                        ctx,
                        run,
                        EventType::Normal,
                        "RouteCreated",
                        &format!("HTTPRoute {} for {host}", route.name_any()),
                    )
                    .await;
                }
                url = gateway::build::route_url(&host, &gw);
            }
            Err(e) => tracing::warn!(error = %e, "creating the HTTPRoute; retried on the next reconcile"),
        }
    }
    record_url(run, &url, key_secret, ctx).await
}

/// Why `host` may not be routed to `run`: another route already serves it. The message
/// names that route only when it is in the run's own namespace (another tenant's namespace
/// is not the run's author's business).
async fn hostname_taken(run: &AgentRun, host: &str, ctx: &Context) -> Result<Option<String>, Error> {
    let ns = run.namespace().unwrap_or_default();
    let all: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &gateway::build::http_route_resource());
    let routes = all.list(&Default::default()).await?;
    let holder = gateway::build::hostname_holder(&routes.items, host, &ns, &run.spec.instance_ref);
    Ok(holder.map(|(holder_ns, name)| {
        let by = if holder_ns == ns { format!("HTTPRoute {name} in this namespace") } else { "a route of another namespace".to_string() };
        format!("hostname {host} is already served by {by}; set the web-endpoint skill's hostname param to another name. The endpoint stays reachable inside the cluster")
    }))
}

/// Records the endpoint's URL and key Secret on the run.
async fn record_url(run: &AgentRun, url: &str, key_secret: &str, ctx: &Context) -> Result<(), Error> {
    let ns = run.namespace().unwrap_or_default();
    let annotations = run.annotations();
    let unchanged = annotations.get(gateway::build::WEB_URL_ANNOTATION).map(String::as_str) == Some(url)
        && annotations.get(gateway::build::WEB_KEY_SECRET_ANNOTATION).map(String::as_str) == Some(key_secret);
    if !unchanged {
        let patch = serde_json::json!({"metadata": {"annotations": {
            gateway::build::WEB_URL_ANNOTATION: url,
            gateway::build::WEB_KEY_SECRET_ANNOTATION: key_secret,
        }}});
        Api::<AgentRun>::namespaced(ctx.client.clone(), &ns)
            .patch(&run.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

/// Serving: the Deployment must still exist.
pub async fn serving(run: &AgentRun, api: &Api<AgentRun>, ctx: &Context) -> Result<Action, Error> {
    let ns = run.namespace().unwrap_or_default();
    let name = server_name(run);
    if Api::<Deployment>::namespaced(ctx.client.clone(), &ns).get_opt(&name).await?.is_none() {
        terminal::fail(api, ctx, run, "server Deployment not found", Time(ctx.clock.now())).await?;
        return Ok(Action::await_change());
    }
    // The gateway may have become ready (or the skill's params changed) since serving began.
    let instance = ctx.instance(&ns, &run.spec.instance_ref).await?;
    let skills = effective_skills(run, instance.as_ref());
    let (servers, _withheld) = resolve_sidecars(run, &skills, ctx, true).await?;
    if let Some(server) = servers.first() {
        let key_secret = key_secret_name(run, &server.params);
        route(run, server.params.get("hostname").map(String::as_str), &key_secret, ctx).await?;
    }
    Ok(Action::requeue(Duration::from_secs(30)))
}
