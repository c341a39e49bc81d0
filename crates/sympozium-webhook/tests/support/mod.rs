//! Shared by the isolation tests: acting as a tenant through impersonation, applying
//! objects as the plane's admin, and the webhook served in-process and registered with the
//! real API server for a set of namespaces.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code; each test binary uses a subset

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::api::{ApiResource, DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde::Deserialize;
use serde_json::{Value, json};
use sympozium_testkit::TestPlane;
use sympozium_webhook::{server, tls};

pub fn resource(kind: &str) -> ApiResource {
    let plural = match kind {
        "SympoziumInstance" => "sympoziuminstances",
        "SympoziumSchedule" => "sympoziumschedules",
        "SkillPack" => "skillpacks",
        "PersonaPack" => "personapacks",
        "AgentRun" => "agentruns",
        "MCPServer" => "mcpservers",
        other => panic!("no plural for {other}"),
    };
    ApiResource {
        group: "sympozium.ai".into(),
        version: "v1alpha1".into(),
        api_version: "sympozium.ai/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Creates a Sympozium object as `client`'s user; the error is what the user reads.
pub async fn create(client: &Client, ns: &str, kind: &str, name: &str, spec: Value) -> Result<(), String> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource(kind));
    let obj: DynamicObject = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
        "kind": kind, "metadata": {"name": name}, "spec": spec}))
    .unwrap();
    api.create(&PostParams::default(), &obj).await.map(|_| ()).map_err(|e| e.to_string())
}

pub async fn patch_spec(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
    spec: Value,
) -> Result<(), String> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource(kind));
    api.patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": spec})))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

pub async fn exists(client: &Client, ns: &str, kind: &str, name: &str) -> bool {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource(kind));
    api.get_opt(name).await.unwrap().is_some()
}

/// A client that acts as `user` (impersonation by the plane's admin).
pub async fn impersonating(plane: &TestPlane, user: &str) -> Client {
    let kubeconfig = Kubeconfig::read_from(plane.kubeconfig()).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    config.auth_info.impersonate = Some(user.to_string());
    Client::try_from(config).unwrap()
}

pub async fn apply_json(client: &Client, value: Value) {
    let obj: DynamicObject = serde_json::from_value(value.clone()).unwrap();
    let api_version = value["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = value["kind"].as_str().unwrap();
    let plural = match kind {
        "ClusterRole" => "clusterroles".to_string(),
        "Role" => "roles".to_string(),
        "RoleBinding" => "rolebindings".to_string(),
        "ServiceAccount" => "serviceaccounts".to_string(),
        "Secret" => "secrets".to_string(),
        _ => resource(kind).plural,
    };
    let ar = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural,
    };
    let name = obj.metadata.name.clone().unwrap();
    let api: Api<DynamicObject> = match &obj.metadata.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.patch(&name, &PatchParams::apply("isolation-test").force(), &Patch::Apply(&obj)).await.unwrap();
}

pub fn yaml_documents(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

pub fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The tenant: `edit` in `ns` only, and the Sympozium kinds there (no `bind`/`escalate`).
pub async fn tenant(admin: &Client, ns: &str, user: &str) {
    apply_json(
        admin,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "tenant-edit", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
    )
    .await;
    apply_json(
        admin,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "tenant-sympozium", "namespace": ns},
        "rules": [{"apiGroups": ["sympozium.ai"],
                   "resources": ["agentruns", "skillpacks", "sympoziuminstances", "personapacks", "sympoziumschedules"],
                   "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]}),
    )
    .await;
    apply_json(
        admin,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "tenant-sympozium", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tenant-sympozium"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
    )
    .await;
}

pub async fn may(
    admin: &Client,
    user: &str,
    ns: &str,
    verb: &str,
    resource: &str,
    name: Option<&str>,
) -> bool {
    may_in_group(admin, user, ns, verb, "sympozium.ai", resource, name).await
}

/// Whether `user` may `verb` `resource` of API `group` (`""`: core) in `ns`, as the API
/// server answers a SubjectAccessReview.
pub async fn may_in_group(
    admin: &Client,
    user: &str,
    ns: &str,
    verb: &str,
    group: &str,
    resource: &str,
    name: Option<&str>,
) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ns.into()),
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                name: name.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(admin.clone()).create(&PostParams::default(), &review).await;
    answer.unwrap().status.is_some_and(|s| s.allowed)
}

pub fn hook(
    name: &str,
    path: &str,
    resource: &str,
    namespaces: &[&str],
    port: u16,
    ca: &str,
) -> ValidatingWebhook {
    ValidatingWebhook {
        name: name.into(),
        client_config: WebhookClientConfig {
            url: Some(format!("https://127.0.0.1:{port}{path}")),
            ca_bundle: Some(ByteString(ca.as_bytes().to_vec())),
            service: None,
        },
        rules: Some(vec![RuleWithOperations {
            api_groups: Some(vec!["sympozium.ai".into()]),
            api_versions: Some(vec!["v1alpha1".into()]),
            operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
            resources: Some(vec![resource.into()]),
            scope: Some("Namespaced".into()),
        }]),
        failure_policy: Some("Fail".into()),
        side_effects: "None".into(),
        admission_review_versions: vec!["v1".into()],
        timeout_seconds: Some(10),
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "kubernetes.io/metadata.name".into(),
                operator: "In".into(),
                values: Some(namespaces.iter().map(|n| n.to_string()).collect()),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Tallies attacks: each must be refused with a message containing what the user must read.
#[derive(Default)]
pub struct Attacks {
    pub tried: usize,
    pub refused: usize,
}

impl Attacks {
    pub fn expect_refused(&mut self, what: &str, result: Result<(), String>, message: &str) {
        self.tried += 1;
        match result {
            Err(e) if e.contains(message) => {
                self.refused += 1;
                eprintln!("refused  {what}: {e}");
            }
            Err(e) => panic!(
                "{what}: refused, but not with the expected message\n  expected: {message}\n  got: {e}"
            ),
            Ok(()) => panic!("{what}: ADMITTED — the attack worked"),
        }
    }
}

/// The webhook served in-process over TLS and registered (as a ValidatingWebhookConfiguration
/// for AgentRuns, instances, PersonaPacks, SkillPacks and MCPServers) for `namespaces`.
pub struct Webhook {
    admin: Client,
    config_name: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Webhook {
    /// Serves the webhook (system namespace `system`) and registers it for `namespaces`;
    /// returns once the API server calls it (probed with a dry-run SkillPack, created as
    /// `probe_user` in `namespaces[0]`, that the webhook must refuse).
    pub async fn start(
        plane: &TestPlane,
        admin: &Client,
        system: &str,
        namespaces: &[&str],
        probe_user: &str,
    ) -> Self {
        let generated = tls::generate(&["127.0.0.1".into()]).unwrap();
        let tls_config =
            tls::server_config(generated.cert_pem.as_bytes(), generated.key_pem.as_bytes()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server::serve_tls(
            listener,
            tls_config,
            server::router(admin.clone(), system.to_string()),
            async {
                let _ = stopped.await;
            },
        ));
        let ca = &generated.ca_pem;
        let config_name = format!("sympozium-isolation-{}", namespaces[0]);
        let configs: Api<ValidatingWebhookConfiguration> = Api::all(admin.clone());
        let hooks = [
            ("vagentpod.sympozium.ai", server::VALIDATE_PATH, "agentruns"),
            ("vinstance.sympozium.ai", server::VALIDATE_INSTANCES_PATH, "sympoziuminstances"),
            ("vpersonapack.sympozium.ai", server::VALIDATE_PERSONA_PACKS_PATH, "personapacks"),
            ("vskillpack.sympozium.ai", server::VALIDATE_SKILL_PACKS_PATH, "skillpacks"),
            ("vmcpserver.sympozium.ai", server::VALIDATE_MCP_SERVERS_PATH, "mcpservers"),
        ];
        configs
            .create(
                &PostParams::default(),
                &ValidatingWebhookConfiguration {
                    metadata: ObjectMeta { name: Some(config_name.clone()), ..Default::default() },
                    webhooks: Some(
                        hooks
                            .iter()
                            .map(|(name, path, resource)| hook(name, path, resource, namespaces, port, ca))
                            .collect(),
                    ),
                },
            )
            .await
            .unwrap();
        // The API server picks the configuration up asynchronously: probe with a dry run.
        let user = impersonating(plane, probe_user).await;
        let probe_api: Api<DynamicObject> = Api::namespaced_with(user, namespaces[0], &resource("SkillPack"));
        let probe: DynamicObject = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
            "kind": "SkillPack", "metadata": {"name": "probe"},
            "spec": {"skills": [{"name": "tool", "content": "# Tool"}],
                     "sidecar": {"image": "ghcr.io/example/skill:1",
                                 "clusterRBAC": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]}}}))
        .unwrap();
        let mut active = false;
        for _ in 0..60 {
            if let Err(e) =
                probe_api.create(&PostParams { dry_run: true, ..Default::default() }, &probe).await
                && e.to_string().contains("denied the request")
            {
                active = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(active, "the API server never called the webhook");
        Webhook { admin: admin.clone(), config_name, stop: Some(stop), server: Some(server) }
    }

    /// Unregisters and stops the webhook.
    pub async fn stop(mut self) {
        let configs: Api<ValidatingWebhookConfiguration> = Api::all(self.admin.clone());
        configs.delete(&self.config_name, &DeleteParams::default()).await.unwrap();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        }
    }
}
