//! `install` / `uninstall`: CRDs, the controller manager with its RBAC, NATS, the REST API
//! server and web dashboard, and the built-in policies, skills and (disabled) team catalog,
//! into one namespace, with one image registry/tag for every image. Idempotent (server-side
//! apply); waits until ready.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{install_apiserver, install_nats, install_webhook};
use crate::output::emitln;
use crate::progress::Progress;

const MANAGER: &str = "sympozium-cli";

/// The built-in content, compiled in so `install` works without the repository.
const BUILTIN: &[&str] = &[
    include_str!("../../../../deploy/builtin/sympoziumpolicies.yaml"),
    include_str!("../../../../deploy/builtin/skillpack-code-review.yaml"),
    include_str!("../../../../deploy/builtin/skillpack-github-gitops.yaml"),
    include_str!("../../../../deploy/builtin/skillpack-incident-response.yaml"),
    include_str!("../../../../deploy/builtin/skillpack-k8s-ops.yaml"),
    include_str!("../../../../deploy/builtin/skillpack-llmfit.yaml"),
    include_str!("../../../../deploy/builtin/skillpack-memory.yaml"),
    include_str!("../../../../deploy/builtin/skillpack-software-dev.yaml"),
    include_str!("../../../../deploy/builtin/skillpack-sre-observability.yaml"),
    include_str!("../../../../deploy/builtin/skillpack-web-endpoint.yaml"),
    include_str!("../../../../deploy/builtin/personapack-developer-team.yaml"),
    include_str!("../../../../deploy/builtin/personapack-devops-essentials.yaml"),
    include_str!("../../../../deploy/builtin/personapack-observability-mcp-team.yaml"),
    include_str!("../../../../deploy/builtin/personapack-platform-team.yaml"),
];

/// What to install where.
#[derive(Debug, Clone)]
pub struct Target {
    /// Namespace Sympozium runs in.
    pub namespace: String,
    /// Registry of every Sympozium image.
    pub registry: String,
    /// Tag of every Sympozium image.
    pub tag: String,
    /// How long to wait for readiness.
    pub wait: Duration,
    /// Also install the admission webhook (registered once a replica serves).
    pub webhook: bool,
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/part-of".to_string(), "sympozium".to_string()),
        ("app.kubernetes.io/managed-by".to_string(), "sympozium".to_string()),
    ])
}

fn controller_env() -> Vec<Value> {
    let mut env =
        vec![json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})];
    env.extend(install_nats::controller_env());
    env
}

fn controller_deployment(t: &Target) -> Value {
    let image = format!("{}/controller:{}", t.registry.trim_end_matches('/'), t.tag);
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "sympozium-controller-manager", "namespace": t.namespace, "labels": labels()},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "sympozium-controller"}},
            "template": {"metadata": {"labels": {"app": "sympozium-controller", "app.kubernetes.io/part-of": "sympozium"}},
                "spec": {"serviceAccountName": "sympozium-controller",
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{"name": "manager", "image": image, "imagePullPolicy": "IfNotPresent",
                        "args": ["--leader-elect", "--system-namespace", t.namespace,
                                 "--image-registry", t.registry, "--image-tag", t.tag,
                                 "--nats-url", format!("nats://nats.{}.svc:4222", t.namespace)],
                        "env": controller_env(),
                        "ports": [{"name": "metrics", "containerPort": 8080}, {"name": "health", "containerPort": 8081}],
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8081}},
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8081}},
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
                        "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                                            "capabilities": {"drop": ["ALL"]}}}]}}}})
}

fn rbac(t: &Target) -> (Value, Value, Value) {
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "sympozium-controller", "namespace": t.namespace, "labels": labels()}});
    // The controller grants skills' RBAC to runs, so it needs bind/escalate over what skills ask.
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "sympozium-controller", "labels": labels()},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "sympozium-controller", "labels": labels()},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "sympozium-controller"},
        "subjects": [{"kind": "ServiceAccount", "name": "sympozium-controller", "namespace": t.namespace}]});
    (sa, role, binding)
}

/// Server-side applies one object given as JSON.
pub async fn apply_json(client: &Client, value: &Value) -> anyhow::Result<()> {
    let obj: DynamicObject = serde_json::from_value(value.clone())?;
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "SympoziumPolicy" => "sympoziumpolicies".to_string(),
        "NetworkPolicy" => "networkpolicies".to_string(),
        other => format!("{}s", other.to_ascii_lowercase()),
    };
    let ar = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural,
    };
    let name = obj.name_any();
    let api: Api<DynamicObject> = match obj.namespace() {
        Some(ns) => Api::namespaced_with(client.clone(), &ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&obj))
        .await
        .map_err(|e| anyhow::anyhow!("applying {kind}/{name}: {e}"))?;
    Ok(())
}

/// Installs (or upgrades) Sympozium; returns the exit code. Steps animate on a terminal;
/// piped output stays just the summary line.
pub async fn install(client: &Client, t: &Target) -> anyhow::Result<i32> {
    install_with(client, t, &mut Progress::terminal_only()).await
}

/// Whether the admission webhook's Deployment is installed in `namespace`.
pub async fn webhook_installed(client: &Client, namespace: &str) -> anyhow::Result<bool> {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), namespace);
    Ok(api.get_opt(install_webhook::NAME).await?.is_some())
}

/// [`install`], reporting its steps on `progress` (a caller's own step sequence).
pub async fn install_with(client: &Client, t: &Target, progress: &mut Progress) -> anyhow::Result<i32> {
    let started = Instant::now();
    progress.step("CustomResourceDefinitions");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in sympozium_api::crds::all() {
        crds.patch(&crd.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&crd)).await?;
    }
    for crd in sympozium_api::crds::all() {
        let established = kube::runtime::wait::conditions::is_crd_established();
        tokio::time::timeout(
            t.wait,
            kube::runtime::wait::await_condition(crds.clone(), &crd.name_any(), established),
        )
        .await
        .map_err(|_| anyhow::anyhow!("CRD {} not established after {:?}", crd.name_any(), t.wait))??;
    }
    progress.step(&format!("namespace {}", t.namespace));
    apply_json(client, &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": t.namespace, "labels": labels()}}))
        .await?;
    progress.step("controller RBAC, NATS and the controller manager");
    let (sa, role, binding) = rbac(t);
    let bus = install_nats::secrets(client, &t.namespace).await?;
    let (nats_deployment, nats_service) = install_nats::deployment_and_service(t, &bus);
    for obj in [
        sa,
        role,
        binding,
        install_nats::secret(t, &bus),
        nats_deployment,
        nats_service,
        install_nats::network_policy(t),
        controller_deployment(t),
    ] {
        apply_json(client, &obj).await?;
    }
    let certificate = if t.webhook {
        progress.step("the admission webhook (certificate, RBAC, Deployment, Service)");
        let certificate = install_webhook::certificate(client, &t.namespace).await?;
        for obj in install_webhook::objects(t, &certificate)? {
            apply_json(client, &obj).await?;
        }
        Some(certificate)
    } else {
        None
    };
    progress.step("the API server and web dashboard (token Secret, RBAC, Deployment, Service)");
    for obj in install_apiserver::objects(client, t).await? {
        apply_json(client, &obj).await?;
    }
    progress.step("built-in policies, skills and the agent-team catalog");
    let mut builtin = 0;
    for file in BUILTIN {
        for doc in serde_yaml::Deserializer::from_str(file) {
            let mut value = Value::deserialize(doc)?;
            if value.is_null() {
                continue;
            }
            value["metadata"]["namespace"] = json!(t.namespace);
            apply_json(client, &value).await?;
            builtin += 1;
        }
    }
    progress.step("waiting for the controller, NATS and the API server to be available");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &t.namespace);
    let mut names = vec!["nats", "sympozium-controller-manager", install_apiserver::NAME];
    if t.webhook {
        names.push(install_webhook::NAME);
    }
    for name in names {
        let available = |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref()).is_some_and(|s| s.available_replicas.unwrap_or(0) > 0)
        };
        tokio::time::timeout(t.wait, kube::runtime::wait::await_condition(deployments.clone(), name, available))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "Deployment {name} not available after {:?}: check `kubectl -n {} describe deployment {name}`",
                    t.wait,
                    t.namespace
                )
            })??;
    }
    if let Some(certificate) = &certificate {
        progress.step("registering the admission webhook");
        apply_json(client, &install_webhook::configuration(t, certificate)?).await?;
    }
    progress.done();
    emitln!(
        "sympozium installed in namespace {} ({} CRDs, {builtin} built-in objects, images {}/*:{}) in {:.1}s",
        t.namespace,
        sympozium_api::crds::all().len(),
        t.registry,
        t.tag,
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}

/// Removes what `install` created; CRDs (and so every Sympozium object) only with `crds`.
pub async fn uninstall(client: &Client, namespace: &str, crds: bool) -> anyhow::Result<i32> {
    let dp = DeleteParams::default();
    let ignore_missing = |r: Result<(), kube::Error>| match r {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other,
    };
    // The webhook configuration first: nothing may be refused by a webhook that is going away.
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    let webhook = install_webhook::NAME;
    ignore_missing(
        Api::<ValidatingWebhookConfiguration>::all(client.clone()).delete(webhook, &dp).await.map(|_| ()),
    )?;
    ignore_missing(
        Api::<Service>::namespaced(client.clone(), namespace).delete(webhook, &dp).await.map(|_| ()),
    )?;
    ignore_missing(
        Api::<ServiceAccount>::namespaced(client.clone(), namespace).delete(webhook, &dp).await.map(|_| ()),
    )?;
    ignore_missing(
        Api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>::namespaced(client.clone(), namespace)
            .delete(webhook, &dp)
            .await
            .map(|_| ()),
    )?;
    ignore_missing(Api::<ClusterRoleBinding>::all(client.clone()).delete(webhook, &dp).await.map(|_| ()))?;
    for role in [webhook, install_webhook::BUILTIN_SKILLS_ROLE] {
        ignore_missing(Api::<ClusterRole>::all(client.clone()).delete(role, &dp).await.map(|_| ()))?;
    }
    for name in ["sympozium-controller-manager", "nats", webhook, install_apiserver::NAME] {
        ignore_missing(
            Api::<Deployment>::namespaced(client.clone(), namespace).delete(name, &dp).await.map(|_| ()),
        )?;
    }
    // The API server's token Secret stays, so a reinstall keeps users logged in.
    let api_server = install_apiserver::NAME;
    ignore_missing(
        Api::<Service>::namespaced(client.clone(), namespace).delete(api_server, &dp).await.map(|_| ()),
    )?;
    ignore_missing(
        Api::<ServiceAccount>::namespaced(client.clone(), namespace)
            .delete(api_server, &dp)
            .await
            .map(|_| ()),
    )?;
    let api_role = install_apiserver::role_name(namespace);
    ignore_missing(Api::<ClusterRoleBinding>::all(client.clone()).delete(&api_role, &dp).await.map(|_| ()))?;
    ignore_missing(Api::<ClusterRole>::all(client.clone()).delete(&api_role, &dp).await.map(|_| ()))?;
    ignore_missing(
        Api::<Service>::namespaced(client.clone(), namespace).delete("nats", &dp).await.map(|_| ()),
    )?;
    ignore_missing(
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), namespace)
            .delete(install_nats::SECRET, &dp)
            .await
            .map(|_| ()),
    )?;
    ignore_missing(
        Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(client.clone(), namespace)
            .delete("nats", &dp)
            .await
            .map(|_| ()),
    )?;
    ignore_missing(
        Api::<ServiceAccount>::namespaced(client.clone(), namespace)
            .delete("sympozium-controller", &dp)
            .await
            .map(|_| ()),
    )?;
    ignore_missing(
        Api::<ClusterRoleBinding>::all(client.clone()).delete("sympozium-controller", &dp).await.map(|_| ()),
    )?;
    ignore_missing(
        Api::<ClusterRole>::all(client.clone()).delete("sympozium-controller", &dp).await.map(|_| ()),
    )?;
    if crds {
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in sympozium_api::crds::all() {
            ignore_missing(api.delete(&crd.name_any(), &dp).await.map(|_| ()))?;
        }
        ignore_missing(Api::<Namespace>::all(client.clone()).delete(namespace, &dp).await.map(|_| ()))?;
    }
    emitln!(
        "sympozium uninstalled from {namespace}{}",
        if crds {
            " (CRDs and the namespace removed)"
        } else {
            " (CRDs and your agents kept; --crds removes them)"
        }
    );
    Ok(0)
}
