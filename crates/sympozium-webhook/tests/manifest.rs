//! The shipped manifest registers exactly the endpoints the server serves, runs more than
//! one replica and mounts the certificate where the server looks for it; the webhook may
//! ask SubjectAccessReviews, and the built-in skills role names exactly the built-in packs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use serde::Deserialize;
use sympozium_webhook::server;

fn documents() -> Vec<serde_yaml::Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/webhook/webhook.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| serde_yaml::Value::deserialize(d).unwrap()).collect()
}

fn of_kind<T: serde::de::DeserializeOwned>(kind: &str) -> T {
    let doc = documents().into_iter().find(|d| d["kind"] == kind).unwrap();
    serde_yaml::from_value(doc).unwrap()
}

#[test]
fn the_manifest_matches_the_server() {
    let config: ValidatingWebhookConfiguration = of_kind("ValidatingWebhookConfiguration");
    let paths: Vec<_> = config
        .webhooks
        .unwrap()
        .into_iter()
        .map(|w| {
            assert_eq!(w.admission_review_versions, ["v1"]);
            assert_eq!(w.side_effects, "None");
            w.client_config.service.unwrap().path.unwrap()
        })
        .collect();
    assert_eq!(
        paths,
        [
            server::VALIDATE_PATH,
            server::VALIDATE_INSTANCES_PATH,
            server::VALIDATE_PERSONA_PACKS_PATH,
            server::VALIDATE_SKILL_PACKS_PATH,
            server::VALIDATE_MCP_SERVERS_PATH
        ]
    );
    let deployment: Deployment = of_kind("Deployment");
    let spec = deployment.spec.unwrap();
    assert!(spec.replicas.unwrap() >= 2, "every replica serves; run at least two");
    let pod = spec.template.spec.unwrap();
    let args = pod.containers[0].args.clone().unwrap();
    assert!(args.contains(&"--cert-file=/tmp/k8s-webhook-server/serving-certs/tls.crt".to_string()));
    let mount = &pod.containers[0].volume_mounts.as_ref().unwrap()[0];
    assert_eq!(mount.mount_path, "/tmp/k8s-webhook-server/serving-certs");
}

#[test]
fn every_review_fails_closed_and_the_webhook_may_ask_for_access_reviews() {
    let config: ValidatingWebhookConfiguration = of_kind("ValidatingWebhookConfiguration");
    for hook in config.webhooks.unwrap() {
        // Each review refuses escalation: a webhook that cannot answer must not mean "allowed".
        assert_eq!(hook.failure_policy.as_deref(), Some("Fail"), "{}", hook.name);
    }
    let role = documents()
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "sympozium-webhook")
        .unwrap();
    let rules: Vec<ClusterRoleRule> = serde_yaml::from_value(role["rules"].clone()).unwrap();
    assert!(rules.iter().any(|r| r.resources == ["subjectaccessreviews"] && r.verbs == ["create"]));
}

#[derive(serde::Deserialize)]
struct ClusterRoleRule {
    resources: Vec<String>,
    verbs: Vec<String>,
}

#[test]
fn the_builtin_skills_role_names_exactly_the_builtin_skill_packs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/builtin");
    let mut builtin = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let doc = serde_yaml::Value::deserialize(doc).unwrap();
            if doc["kind"] == "SkillPack" {
                builtin.push(doc["metadata"]["name"].as_str().unwrap().to_string());
            }
        }
    }
    builtin.sort();
    let role = documents()
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "sympozium-builtin-skills")
        .unwrap();
    assert_eq!(role["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"], "true");
    let rule = &role["rules"][0];
    assert_eq!(rule["verbs"][0], "bind");
    let mut named: Vec<String> = serde_yaml::from_value(rule["resourceNames"].clone()).unwrap();
    named.sort();
    assert_eq!(named, builtin, "add new built-in SkillPacks to sympozium-builtin-skills (or say why not)");
}
