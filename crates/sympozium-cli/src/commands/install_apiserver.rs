//! The REST API and web dashboard (`sympozium-apiserver`) as `install` (and so `dev up`)
//! deploys it, as the chart's `apiserver.enabled` does: its own ServiceAccount and
//! ClusterRole, the token of Secret `sympozium-ui-token` (the one `sympozium serve` prints),
//! a Service on 8080 that `sympozium serve` port-forwards to.

use kube::Client;
use serde_json::{Value, json};

use super::install::Target;

/// Name of the Deployment, Service and ServiceAccount.
pub const NAME: &str = "sympozium-apiserver";

/// Port of the Service (and of the container).
pub const PORT: u16 = 8080;

/// Name of its ClusterRole and ClusterRoleBinding in namespace `ns`.
pub fn role_name(ns: &str) -> String {
    format!("{ns}-{NAME}")
}

/// Makes the token Secret when missing, then returns the API server's objects for `t`.
pub async fn objects(client: &Client, t: &Target) -> anyhow::Result<Vec<Value>> {
    let ns = t.namespace.as_str();
    crate::commands::serve::token(client, ns).await?;
    let labels = json!({"app": NAME, "app.kubernetes.io/part-of": "sympozium", "app.kubernetes.io/component": "apiserver"});
    let role = role_name(ns);
    let objects = [
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, "namespace": ns, "labels": labels}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": role, "labels": labels},
            "rules": [
                {"apiGroups": ["sympozium.ai"], "resources": ["*"],
                 "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
                {"apiGroups": [""], "resources": ["secrets"],
                 "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
                {"apiGroups": [""], "resources": ["namespaces", "nodes", "pods", "pods/log", "events", "services"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get", "create"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": role, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}]}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": NAME}},
                "template": {"metadata": {"labels": labels},
                    "spec": {"serviceAccountName": NAME,
                        "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{"name": "apiserver", "image": format!("{}/apiserver:{}", t.registry, t.tag),
                            "args": ["--addr", "0.0.0.0:8080", "--system-namespace", ns, "--token-from-secret",
                                     "--event-bus-url", format!("nats://nats.{ns}.svc:4222")],
                            "env": [{"name": "NATS_CREDS",
                                     "valueFrom": {"secretKeyRef": {"name": "sympozium-nats", "key": "operator-creds", "optional": true}}}],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}},
                            "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                                                "capabilities": {"drop": ["ALL"]}}}]}}}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels},
            "spec": {"selector": {"app": NAME}, "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}}),
    ];
    Ok(objects.into())
}
