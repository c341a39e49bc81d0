//! Whether a run can take a pooled sandbox: a `SandboxClaim` can only inject plain
//! environment values into a pod that already exists, so everything else the run's own pod
//! would have (skill sidecars, Secret volumes and mounts, Secret-backed environment, the
//! token of its own ServiceAccount and the RBAC bound to it) must already be in the pool's
//! pod, identically. When it is not, the run gets its own Sandbox and the reasons go into an
//! Event, so nobody believes a run holds what it does not.

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, Volume};
use serde_json::{Value, json};

use super::pod::API_TOKEN_VOLUME;

fn same<T: serde::Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

fn describe_volume(v: &Volume) -> String {
    if let Some(s) = &v.secret {
        return format!("{} (Secret {})", v.name, s.secret_name.as_deref().unwrap_or_default());
    }
    let secrets: Vec<&str> = v
        .projected
        .iter()
        .flat_map(|p| p.sources.iter().flatten())
        .filter_map(|s| s.secret.as_ref().map(|s| s.name.as_str()))
        .collect();
    if secrets.is_empty() { v.name.clone() } else { format!("{} (Secrets {})", v.name, secrets.join(", ")) }
}

fn describe_source(e: &EnvVar) -> String {
    let from = e.value_from.as_ref();
    if let Some(k) = from.and_then(|f| f.secret_key_ref.as_ref()) {
        return format!("Secret {} key {}", k.name, k.key);
    }
    if let Some(k) = from.and_then(|f| f.config_map_key_ref.as_ref()) {
        return format!("ConfigMap {} key {}", k.name, k.key);
    }
    "a field reference".into()
}

fn check_container(run: &Container, pooled: &Container, reasons: &mut Vec<String>, env: &mut Vec<Value>) {
    let name = &run.name;
    if run.image != pooled.image {
        reasons
            .push(format!("container {name} runs image {:?}, the pooled one {:?}", run.image, pooled.image));
    }
    if !same(&run.env_from, &pooled.env_from) {
        let sources: Vec<String> = run
            .env_from
            .iter()
            .flatten()
            .map(|f| match (&f.secret_ref, &f.config_map_ref) {
                (Some(s), _) => format!("Secret {}", s.name),
                (_, Some(c)) => format!("ConfigMap {}", c.name),
                _ => "?".into(),
            })
            .collect();
        reasons.push(format!("container {name} takes its environment from [{}]", sources.join(", ")));
    }
    let pooled_mounts = pooled.volume_mounts.clone().unwrap_or_default();
    for m in run.volume_mounts.iter().flatten() {
        if !pooled_mounts.iter().any(|p| same(p, m)) {
            reasons.push(format!("container {name} mounts {} at {}", m.name, m.mount_path));
        }
    }
    let pooled_env = pooled.env.clone().unwrap_or_default();
    for e in run.env.iter().flatten() {
        match (&e.value_from, pooled_env.iter().find(|p| p.name == e.name)) {
            (None, _) => env.push(
                json!({"name": e.name, "value": e.value.clone().unwrap_or_default(), "containerName": name}),
            ),
            (Some(_), Some(p)) if same(p, e) => {}
            (Some(_), _) => {
                reasons.push(format!("env {} of container {name} comes from {}", e.name, describe_source(e)))
            }
        }
    }
    // What the pooled pod sets and the run does not is cleared, so no value of the
    // template run leaks into this one.
    for p in pooled_env.iter().filter(|p| p.value_from.is_none()) {
        if !run.env.iter().flatten().any(|e| e.name == p.name) {
            env.push(json!({"name": p.name, "value": "", "containerName": name}));
        }
    }
}

/// The environment to inject into the pooled pod (plain values, per container) when it can
/// run `run_pod`; otherwise every reason it cannot.
pub fn fit(run_pod: &PodSpec, pooled: &PodSpec) -> Result<Vec<Value>, Vec<String>> {
    let mut reasons = Vec::new();
    let mut env = Vec::new();
    let run_volumes = run_pod.volumes.clone().unwrap_or_default();
    if run_volumes.iter().any(|v| v.name == API_TOKEN_VOLUME) {
        reasons.push(format!(
            "its skills' RBAC is bound to its own ServiceAccount {}, and the pooled pod runs as {} without grants",
            run_pod.service_account_name.as_deref().unwrap_or_default(),
            pooled.service_account_name.as_deref().unwrap_or_default()
        ));
    }
    let pooled_inits = pooled.init_containers.clone().unwrap_or_default();
    for c in run_pod.init_containers.iter().flatten() {
        match pooled_inits.iter().find(|p| p.name == c.name) {
            Some(p) => check_container(c, p, &mut reasons, &mut env),
            None => reasons.push(format!("the pooled pod has no init container {}", c.name)),
        }
    }
    let mut missing = Vec::new();
    for c in &run_pod.containers {
        match pooled.containers.iter().find(|p| p.name == c.name) {
            Some(p) => check_container(c, p, &mut reasons, &mut env),
            None => missing.push(c.name.clone()),
        }
    }
    if !missing.is_empty() {
        reasons.push(format!("the pooled pod has no container {} (skill sidecars)", missing.join(", ")));
    }
    let pooled_volumes = pooled.volumes.clone().unwrap_or_default();
    let differing: Vec<String> = run_volumes
        .iter()
        .filter(|v| v.name != API_TOKEN_VOLUME && !pooled_volumes.iter().any(|p| same(p, *v)))
        .map(describe_volume)
        .collect();
    if !differing.is_empty() {
        reasons.push(format!("volumes differ: {}", differing.join(", ")));
    }
    if reasons.is_empty() { Ok(env) } else { Err(reasons) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pod(v: Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_pod_like_the_pools_takes_its_plain_env_by_injection() {
        let pooled = pod(json!({"serviceAccountName": "sympozium-run-wp-a", "containers": [
            {"name": "agent", "image": "runner", "env": [{"name": "TASK", "value": ""}, {"name": "OLD", "value": "x"}]},
            {"name": "ipc-bridge", "image": "bridge", "env": [{"name": "AGENT_RUN_ID", "value": "wp-a"}]}],
            "volumes": [{"name": "ipc", "emptyDir": {}}]}));
        let run = pod(json!({"serviceAccountName": "sympozium-run-r1", "containers": [
            {"name": "agent", "image": "runner", "env": [{"name": "TASK", "value": "do it"}]},
            {"name": "ipc-bridge", "image": "bridge", "env": [{"name": "AGENT_RUN_ID", "value": "r1"}]}],
            "volumes": [{"name": "ipc", "emptyDir": {}}]}));
        let env = fit(&run, &pooled).unwrap();
        assert!(env.contains(&json!({"name": "TASK", "value": "do it", "containerName": "agent"})));
        assert!(env.contains(&json!({"name": "OLD", "value": "", "containerName": "agent"})));
        assert!(env.contains(&json!({"name": "AGENT_RUN_ID", "value": "r1", "containerName": "ipc-bridge"})));
    }

    #[test]
    fn what_a_claim_cannot_carry_is_named() {
        let pooled = pod(json!({"serviceAccountName": "sympozium-run-wp-a",
            "containers": [{"name": "agent", "image": "runner"}], "volumes": []}));
        let run = pod(json!({"serviceAccountName": "sympozium-run-r1", "containers": [
            {"name": "agent", "image": "runner", "envFrom": [{"secretRef": {"name": "team-key"}}],
             "env": [{"name": "NATS_CREDS", "valueFrom": {"secretKeyRef": {"name": "r1-bus", "key": "creds"}}}],
             "volumeMounts": [{"name": "creds", "mountPath": "/secrets/creds"}]},
            {"name": "skill-k8s-ops", "image": "k8s-ops"}],
            "volumes": [{"name": "creds", "secret": {"secretName": "db-creds"}},
                        {"name": "kube-api-access", "projected": {"sources": []}}]}));
        let reasons = fit(&run, &pooled).unwrap_err().join("; ");
        for part in [
            "RBAC is bound to its own ServiceAccount sympozium-run-r1",
            "takes its environment from [Secret team-key]",
            "env NATS_CREDS of container agent comes from Secret r1-bus key creds",
            "mounts creds at /secrets/creds",
            "no container skill-k8s-ops (skill sidecars)",
            "volumes differ: creds (Secret db-creds)",
        ] {
            assert!(reasons.contains(part), "{part}: {reasons}");
        }
    }
}
