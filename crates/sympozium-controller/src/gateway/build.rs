//! Pure builders of Gateway API objects (`gateway.networking.k8s.io/v1`): the shared
//! GatewayClass and Gateway of a SympoziumConfig, and the HTTPRoute of a web endpoint.
//! They are dynamic objects: the Gateway API is a set of CRDs the cluster may not serve.

use std::collections::BTreeMap;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ObjectMeta};
use kube::core::ObjectList;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use sympozium_api::config::{GatewaySpec, GatewayStatus};
use sympozium_api::{AgentRun, SympoziumConfig};

/// Group of the Gateway API.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// Label on the GatewayClass and Gateway the controller manages.
pub const MANAGED_BY: &str = "sympozium.ai/managed-by";
/// Its value.
pub const MANAGED_BY_VALUE: &str = "sympoziumconfig";
/// Controller named by the GatewayClass (Envoy Gateway).
pub const GATEWAY_CONTROLLER: &str = "gateway.envoyproxy.io/gatewayclass-controller";
/// Annotation on a serving run: the public URL of its web endpoint.
pub const WEB_URL_ANNOTATION: &str = "sympozium.ai/web-endpoint-url";
/// Annotation on a serving run: the Secret holding its API key.
pub const WEB_KEY_SECRET_ANNOTATION: &str = "sympozium.ai/web-endpoint-key-secret";
/// Port of the web proxy behind every route.
pub const BACKEND_PORT: i32 = 8080;

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", kind), plural)
}

/// The GatewayClass API resource.
pub fn gateway_class_resource() -> ApiResource {
    resource("GatewayClass", "gatewayclasses")
}
/// The Gateway API resource.
pub fn gateway_resource() -> ApiResource {
    resource("Gateway", "gateways")
}
/// The HTTPRoute API resource.
pub fn http_route_resource() -> ApiResource {
    resource("HTTPRoute", "httproutes")
}

fn object(ar: &ApiResource, meta: ObjectMeta, spec: Value) -> DynamicObject {
    let mut o = DynamicObject::new(meta.name.as_deref().unwrap_or_default(), ar);
    o.metadata = meta;
    o.data = json!({ "spec": spec });
    o
}

fn managed() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY.to_string(), MANAGED_BY_VALUE.to_string())])
}

/// The GatewayClass the config asks for.
pub fn gateway_class(gw: &GatewaySpec) -> DynamicObject {
    let meta = ObjectMeta {
        name: Some(gw.gateway_class_name.clone()),
        labels: Some(managed()),
        ..Default::default()
    };
    object(&gateway_class_resource(), meta, json!({ "controllerName": GATEWAY_CONTROLLER }))
}

/// Whether TLS listeners are made: TLS enabled and a base domain to cover.
pub fn tls_enabled(gw: &GatewaySpec) -> bool {
    gw.tls.as_ref().is_some_and(|t| t.enabled)
        && gw.base_domain.as_deref().is_some_and(|d| !d.trim().is_empty())
}

/// The shared Gateway in the config's namespace. Listeners accept routes from every
/// namespace (the original allowed only the Gateway's own, so no web endpoint of a user
/// namespace ever attached); the hostnames they carry are the controller's to choose, and
/// it never routes a hostname another instance's route already serves ([`hostname_holder`]).
pub fn gateway(config: &SympoziumConfig, gw: &GatewaySpec) -> DynamicObject {
    let all = json!({ "namespaces": { "from": "All" } });
    let mut listeners = vec![json!({ "name": "http", "protocol": "HTTP", "port": 80, "allowedRoutes": all })];
    let mut annotations = BTreeMap::new();
    if tls_enabled(gw) {
        let tls = gw.tls.clone().unwrap_or_default();
        let domain = gw.base_domain.clone().unwrap_or_default();
        listeners.push(json!({
            "name": "https", "protocol": "HTTPS", "port": 443, "hostname": format!("*.{}", domain.trim()),
            "tls": { "mode": "Terminate", "certificateRefs": [{ "kind": "Secret", "name": tls.secret_name }] },
            "allowedRoutes": all,
        }));
        if let Some(issuer) = tls.cert_manager_cluster_issuer.filter(|i| !i.is_empty()) {
            annotations.insert("cert-manager.io/cluster-issuer".to_string(), issuer);
        }
    }
    let meta = ObjectMeta {
        name: Some(gw.name.clone()),
        namespace: config.namespace(),
        labels: Some(managed()),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: config.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    };
    object(
        &gateway_resource(),
        meta,
        json!({ "gatewayClassName": gw.gateway_class_name, "listeners": listeners }),
    )
}

/// What the Gateway's status says: Programmed, its first address, its listeners.
pub fn gateway_status(gateway: &DynamicObject) -> GatewayStatus {
    let status = &gateway.data["status"];
    let programmed = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Programmed" && c["status"] == "True");
    let listeners = gateway.data["spec"]["listeners"].as_array().map(|l| l.len()).unwrap_or(0);
    GatewayStatus {
        ready: programmed,
        address: status["addresses"][0]["value"].as_str().map(str::to_string),
        listener_count: Some(i32::try_from(listeners).unwrap_or(i32::MAX)),
    }
}

/// Names of the managed objects in `list` (for cleanup).
pub fn managed_names(list: &ObjectList<DynamicObject>) -> Vec<String> {
    list.items
        .iter()
        .filter(|o| o.labels().get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE))
        .map(|o| o.name_any())
        .collect()
}

/// The hostname of a serving run's route: the skill's `hostname` param, else
/// `<instance>.<baseDomain>`, else none.
pub fn route_hostname(run: &AgentRun, param: Option<&str>, gw: &GatewaySpec) -> Option<String> {
    if let Some(h) = param.map(str::trim).filter(|h| !h.is_empty()) {
        return Some(h.to_ascii_lowercase());
    }
    let domain = gw.base_domain.as_deref().map(str::trim).filter(|d| !d.is_empty())?;
    Some(format!("{}.{domain}", run.spec.instance_ref))
}

/// Whether a route's `hostnames` entry covers `hostname` (exactly, or as a `*.` wildcard
/// one label deep or more, as the Gateway API matches them), ignoring case.
fn covers(entry: &str, hostname: &str) -> bool {
    let (entry, hostname) = (entry.to_ascii_lowercase(), hostname.to_ascii_lowercase());
    match entry.strip_prefix("*.") {
        Some(suffix) => {
            hostname.strip_suffix(&suffix).is_some_and(|head| head.len() > 1 && head.ends_with('.'))
        }
        None => entry == hostname,
    }
}

/// The first HTTPRoute in `routes` (any namespace) that already serves `hostname` for
/// someone other than instance `instance` of namespace `ns`, as `(namespace, name)`.
/// Listeners accept routes from every namespace, so the hostname, not the namespace,
/// is what keeps one tenant's endpoint from being taken over by another's: the first
/// route to claim a hostname keeps it (as the Gateway API resolves conflicts by age).
pub fn hostname_holder(
    routes: &[DynamicObject],
    hostname: &str,
    ns: &str,
    instance: &str,
) -> Option<(String, String)> {
    routes
        .iter()
        .find(|r| {
            let ours = r.namespace().as_deref() == Some(ns)
                && r.labels().get(sympozium_api::labels::INSTANCE).map(String::as_str) == Some(instance);
            !ours
                && r.data["spec"]["hostnames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .any(|h| covers(h, hostname))
        })
        .map(|r| (r.namespace().unwrap_or_default(), r.name_any()))
}

/// The public URL of a route on this gateway.
pub fn route_url(hostname: &str, gw: &GatewaySpec) -> String {
    let scheme = if tls_enabled(gw) { "https" } else { "http" };
    format!("{scheme}://{hostname}")
}

/// The HTTPRoute `<run>-web`: `hostname` on the shared Gateway, everything to the run's
/// server Service.
pub fn http_route(
    run: &AgentRun,
    labels: BTreeMap<String, String>,
    hostname: &str,
    service: &str,
    gw: &GatewaySpec,
    gateway_namespace: &str,
) -> DynamicObject {
    let meta = ObjectMeta {
        name: Some(format!("{}-web", run.name_any())),
        namespace: run.namespace(),
        labels: Some(labels),
        owner_references: run.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    };
    object(
        &http_route_resource(),
        meta,
        json!({
            "parentRefs": [{ "group": GROUP, "kind": "Gateway", "name": gw.name, "namespace": gateway_namespace }],
            "hostnames": [hostname],
            "rules": [{
                "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }],
                "backendRefs": [{ "group": "", "kind": "Service", "name": service, "port": BACKEND_PORT }],
            }],
        }),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use sympozium_api::config::GatewayTls;

    use super::*;

    fn spec(tls: bool) -> GatewaySpec {
        GatewaySpec {
            enabled: true,
            base_domain: Some("agents.example.com".into()),
            tls: Some(GatewayTls {
                enabled: tls,
                cert_manager_cluster_issuer: Some("le".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn config() -> SympoziumConfig {
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumConfig",
            "metadata": {"name": "default", "namespace": "sympozium-system", "uid": "u1"}, "spec": {}}))
        .unwrap()
    }

    fn route(ns: &str, instance: &str, hostnames: Value) -> DynamicObject {
        let mut r = DynamicObject::new("r", &http_route_resource()).within(ns);
        r.metadata.labels =
            Some(BTreeMap::from([(sympozium_api::labels::INSTANCE.to_string(), instance.to_string())]));
        r.data = json!({"spec": {"hostnames": hostnames}});
        r
    }

    #[test]
    fn a_hostname_another_tenant_serves_is_taken_and_ours_is_not() {
        let routes = [
            route("team-a", "agent", json!(["agent.agents.example.com"])),
            route("team-c", "other", json!(["*.wild.example.com"])),
        ];
        // The same instance name in another namespace collides on the default hostname.
        assert_eq!(
            hostname_holder(&routes, "Agent.agents.example.com", "team-b", "agent"),
            Some(("team-a".to_string(), "r".to_string()))
        );
        // An earlier run of the same instance holds it for the instance itself.
        assert_eq!(hostname_holder(&routes, "agent.agents.example.com", "team-a", "agent"), None);
        // A wildcard covers names below it, not the bare domain.
        assert!(hostname_holder(&routes, "x.wild.example.com", "team-a", "agent").is_some());
        assert!(hostname_holder(&routes, "a.b.wild.example.com", "team-a", "agent").is_some());
        assert_eq!(hostname_holder(&routes, "wild.example.com", "team-a", "agent"), None);
        assert_eq!(hostname_holder(&routes, "xwild.example.com", "team-a", "agent"), None);
        assert_eq!(hostname_holder(&routes, "free.agents.example.com", "team-b", "agent"), None);
    }

    #[test]
    fn the_gateway_has_an_https_listener_only_with_tls_and_accepts_routes_from_all_namespaces() {
        let g = gateway(&config(), &spec(true));
        let listeners = g.data["spec"]["listeners"].as_array().unwrap();
        assert_eq!(listeners.len(), 2);
        assert_eq!(listeners[1]["hostname"], "*.agents.example.com");
        assert_eq!(listeners[1]["tls"]["certificateRefs"][0]["name"], "sympozium-wildcard-cert");
        assert!(listeners.iter().all(|l| l["allowedRoutes"]["namespaces"]["from"] == "All"));
        assert_eq!(g.annotations()["cert-manager.io/cluster-issuer"], "le");
        assert_eq!(g.metadata.owner_references.as_ref().unwrap()[0].name, "default");
        let plain = gateway(&config(), &spec(false));
        assert_eq!(plain.data["spec"]["listeners"].as_array().unwrap().len(), 1);
        assert!(plain.metadata.annotations.is_none());
        assert_eq!(route_url("a.agents.example.com", &spec(true)), "https://a.agents.example.com");
        assert_eq!(route_url("a.agents.example.com", &spec(false)), "http://a.agents.example.com");
    }

    #[test]
    fn status_from_the_gateway() {
        let mut g = gateway(&config(), &spec(true));
        assert!(!gateway_status(&g).ready);
        g.data["status"] = json!({"conditions": [{"type": "Programmed", "status": "True"}],
            "addresses": [{"type": "IPAddress", "value": "10.0.0.7"}]});
        assert_eq!(
            gateway_status(&g),
            GatewayStatus { ready: true, address: Some("10.0.0.7".into()), listener_count: Some(2) }
        );
    }
}
