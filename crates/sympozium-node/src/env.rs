//! A container's environment as Kubernetes builds it: Service variables for the API
//! server, `envFrom` (ConfigMaps and Secrets, with prefixes), then `env` in order with
//! `valueFrom` (secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef) and `$(VAR)`
//! references to variables defined before; `command`/`args` expand against the result.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{Api, Client};

/// Values only known on the node.
#[derive(Clone, Debug, Default)]
pub struct NodeValues {
    /// The pod IP.
    pub pod_ip: String,
    /// The node IP.
    pub host_ip: String,
    /// The `default/kubernetes` Service address (host, port).
    pub apiserver: Option<(String, u16)>,
    /// Node allocatable CPU cores and memory bytes (limits of containers without limits).
    pub cpu_cores: u64,
    /// Memory bytes.
    pub memory_bytes: u64,
}

/// Expands `$(VAR)` with `vars`; `$$(VAR)` stays literally `$(VAR)`; unknown stay as is.
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

async fn configmap(client: &Client, ns: &str, name: &str) -> Result<Option<ConfigMap>, kube::Error> {
    Api::<ConfigMap>::namespaced(client.clone(), ns).get_opt(name).await
}

async fn secret(client: &Client, ns: &str, name: &str) -> Result<Option<Secret>, kube::Error> {
    Api::<Secret>::namespaced(client.clone(), ns).get_opt(name).await
}

fn secret_value(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .or_else(|| s.string_data.as_ref().and_then(|d| d.get(key).cloned()))
}

fn field(pod: &Pod, path: &str, node: &NodeValues) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let keyed = |prefix: &str, map: Option<&BTreeMap<String, String>>| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" | "status.podIPs" => Some(node.pod_ip.clone()),
        "status.hostIP" | "status.hostIPs" => Some(node.host_ip.clone()),
        _ => keyed("metadata.labels['", meta.labels.as_ref())
            .or_else(|| keyed("metadata.annotations['", meta.annotations.as_ref())),
    }
}

/// A quantity as a number (`64Mi`, `500m`, `1.5`); unparsable ones are 0.
pub(crate) fn quantity_value(q: &Quantity) -> f64 {
    let s = q.0.trim();
    let units: [(&str, f64); 10] = [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0_f64.powi(4)),
        ("m", 0.001),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("", 1.0),
    ];
    let (num, mult) = units.iter().find_map(|(u, m)| s.strip_suffix(u).map(|n| (n, *m))).unwrap_or((s, 1.0));
    num.parse::<f64>().unwrap_or(0.0) * mult
}

fn resource_field(c: &Container, resource: &str, divisor: Option<&Quantity>, node: &NodeValues) -> String {
    let (kind, name) = resource.split_once('.').unwrap_or(("limits", resource));
    let res = c.resources.as_ref();
    let map = if kind == "requests" {
        res.and_then(|r| r.requests.as_ref())
    } else {
        res.and_then(|r| r.limits.as_ref())
    };
    let cpu = name == "cpu";
    let value = map.and_then(|m| m.get(name)).map(quantity_value).unwrap_or(if cpu {
        node.cpu_cores as f64
    } else {
        node.memory_bytes as f64
    });
    let div = divisor.map(quantity_value).filter(|d| *d > 0.0).unwrap_or(1.0);
    format!("{}", (value / div).ceil() as u64)
}

/// Why a container's environment could not be built (`CreateContainerConfigError`).
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// Reading a ConfigMap or Secret failed.
    #[error("reading {kind}: {source}")]
    Read {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A referenced ConfigMap or Secret does not exist.
    #[error("{kind} \"{name}\" not found")]
    NotFound {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A referenced key is not in the object.
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    MissingKey {
        /// The key.
        key: String,
        /// `ConfigMap` or `Secret`.
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// The object.
        name: String,
    },
}

/// Builds the environment (ordered; later entries win) of `c` in `pod`.
pub async fn build(
    client: &Client,
    pod: &Pod,
    c: &Container,
    node: &NodeValues,
) -> Result<Vec<(String, String)>, EnvError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut set = |vars: &mut BTreeMap<String, String>, k: String, v: String| {
        if !vars.contains_key(&k) {
            order.push(k.clone());
        }
        vars.insert(k, v);
    };
    if let Some((host, port)) = &node.apiserver {
        for (k, v) in [
            ("KUBERNETES_SERVICE_HOST", host.clone()),
            ("KUBERNETES_SERVICE_PORT", port.to_string()),
            ("KUBERNETES_SERVICE_PORT_HTTPS", port.to_string()),
            ("KUBERNETES_PORT", format!("tcp://{host}:{port}")),
        ] {
            set(&mut vars, k.into(), v);
        }
    }
    let fetch_err = |kind: &'static str, source: kube::Error| EnvError::Read { kind, source };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match configmap(client, &ns, &r.name).await.map_err(|e| fetch_err("configmap", e))? {
                Some(cm) => {
                    for (k, v) in cm.data.unwrap_or_default() {
                        set(&mut vars, format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError::NotFound { kind: "configmap", name: r.name.clone() }),
            }
        }
        if let Some(r) = &from.secret_ref {
            match secret(client, &ns, &r.name).await.map_err(|e| fetch_err("secret", e))? {
                Some(s) => {
                    for (k, v) in s.data.unwrap_or_default() {
                        set(&mut vars, format!("{prefix}{k}"), String::from_utf8_lossy(&v.0).into_owned());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError::NotFound { kind: "secret", name: r.name.clone() }),
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            None => Some(expand(e.value.as_deref().unwrap_or(""), &vars)),
            Some(from) => {
                if let Some(r) = &from.secret_key_ref {
                    match secret(client, &ns, &r.name).await.map_err(|e| fetch_err("secret", e))? {
                        Some(s) => match secret_value(&s, &r.key) {
                            Some(v) => Some(v),
                            None if r.optional == Some(true) => None,
                            None => {
                                return Err(EnvError::MissingKey {
                                    key: r.key.clone(),
                                    kind: "Secret",
                                    namespace: ns.clone(),
                                    name: r.name.clone(),
                                });
                            }
                        },
                        None if r.optional == Some(true) => None,
                        None => return Err(EnvError::NotFound { kind: "secret", name: r.name.clone() }),
                    }
                } else if let Some(r) = &from.config_map_key_ref {
                    match configmap(client, &ns, &r.name).await.map_err(|e| fetch_err("configmap", e))? {
                        Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                            Some(v) => Some(v.clone()),
                            None if r.optional == Some(true) => None,
                            None => {
                                return Err(EnvError::MissingKey {
                                    key: r.key.clone(),
                                    kind: "ConfigMap",
                                    namespace: ns.clone(),
                                    name: r.name.clone(),
                                });
                            }
                        },
                        None if r.optional == Some(true) => None,
                        None => return Err(EnvError::NotFound { kind: "configmap", name: r.name.clone() }),
                    }
                } else if let Some(f) = &from.field_ref {
                    Some(field(pod, &f.field_path, node).unwrap_or_default())
                } else {
                    from.resource_field_ref
                        .as_ref()
                        .map(|r| resource_field(c, &r.resource, r.divisor.as_ref(), node))
                }
            }
        };
        if let Some(v) = value {
            set(&mut vars, e.name.clone(), v);
        }
    }
    Ok(order.into_iter().filter_map(|k| vars.get(&k).map(|v| (k, v.clone()))).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn references_expand_and_escapes_stay_literal() {
        let vars: BTreeMap<String, String> = [("A".to_string(), "x".to_string())].into();
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &vars), "x-$(B)-$(A)-$");
        assert_eq!(expand("echo $(A", &vars), "echo $(A");
    }

    #[test]
    fn quantities_convert() {
        assert_eq!(quantity_value(&Quantity("500m".into())), 0.5);
        assert_eq!(quantity_value(&Quantity("64Mi".into())), 64.0 * 1024.0 * 1024.0);
    }
}
