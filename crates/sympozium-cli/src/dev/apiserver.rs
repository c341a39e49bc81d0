//! The REST API and web dashboard (`sympozium-apiserver`) as a pod of the stack, as the
//! chart's `apiserver.enabled` deploys it: its own ServiceAccount and ClusterRole, the token
//! of Secret `sympozium-ui-token` (the one `sympozium serve` uses too), a Service on 8080.

use kube::Client;
use serde_json::json;

use super::stack::{REGISTRY, TAG};
use crate::commands::apply_json;

/// Name of the Deployment and Service.
pub const NAME: &str = "sympozium-apiserver";

/// Applies the API server's objects into `ns` (idempotent).
pub async fn deploy(client: &Client, ns: &str) -> anyhow::Result<()> {
    crate::commands::serve::token(client, ns).await?;
    let labels = json!({"app": NAME, "app.kubernetes.io/part-of": "sympozium", "app.kubernetes.io/component": "apiserver"});
    let role = format!("{ns}-{NAME}");
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
                        "containers": [{"name": "apiserver", "image": format!("{REGISTRY}/apiserver:{TAG}"),
                            "args": ["--addr", "0.0.0.0:8080", "--system-namespace", ns, "--token-from-secret",
                                     "--event-bus-url", format!("nats://nats.{ns}.svc:4222")],
                            "env": [{"name": "NATS_OPERATOR_PASSWORD",
                                     "valueFrom": {"secretKeyRef": {"name": "sympozium-nats", "key": "operator-password", "optional": true}}}],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}},
                            "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                                                "capabilities": {"drop": ["ALL"]}}}]}}}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels},
            "spec": {"selector": {"app": NAME}, "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}}),
    ];
    for o in &objects {
        apply_json(client, o).await?;
    }
    Ok(())
}
