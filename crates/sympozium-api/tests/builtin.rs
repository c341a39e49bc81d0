//! The built-in content in `deploy/builtin`: every document parses into the typed API
//! without losing a field, carries no namespace (it installs wherever it is applied), and
//! the catalog is complete and self-consistent — every persona has a prompt, a schedule
//! and a tool policy, and every skill it names ships as a SkillPack.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sympozium_api::{PersonaPack, SkillPack, SympoziumPolicy};

/// All YAML documents of deploy/builtin, with their file names.
fn documents() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/builtin");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/builtin exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if !value.is_null() {
                docs.push((file.file_name().unwrap().to_string_lossy().into_owned(), value));
            }
        }
    }
    docs
}

/// Every field of `input` is present in `output` with the same value.
fn assert_preserved(input: &Value, output: &Value, path: &str) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                let ov = o.get(k).unwrap_or_else(|| panic!("{path}.{k} is not a field of the typed API"));
                assert_preserved(v, ov, &format!("{path}.{k}"));
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            assert_eq!(i.len(), o.len(), "list {path} changed length");
            for (n, (a, b)) in i.iter().zip(o).enumerate() {
                assert_preserved(a, b, &format!("{path}[{n}]"));
            }
        }
        (i, o) => assert_eq!(i, o, "{path} changed in the round trip"),
    }
}

fn typed<K: DeserializeOwned + serde::Serialize>(file: &str, doc: &Value) -> K {
    let obj: K = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_preserved(doc, &serde_json::to_value(&obj).unwrap(), file);
    obj
}

struct Catalog {
    packs: Vec<PersonaPack>,
    skills: Vec<SkillPack>,
    policies: Vec<SympoziumPolicy>,
}

fn catalog() -> Catalog {
    let mut c = Catalog { packs: Vec::new(), skills: Vec::new(), policies: Vec::new() };
    for (file, doc) in documents() {
        assert_eq!(doc["apiVersion"], "sympozium.ai/v1alpha1", "{file}");
        assert!(
            doc["metadata"].get("namespace").is_none(),
            "{file}: built-ins install into the namespace applied with -n"
        );
        match doc["kind"].as_str().unwrap() {
            "PersonaPack" => c.packs.push(typed(&file, &doc)),
            "SkillPack" => c.skills.push(typed(&file, &doc)),
            "SympoziumPolicy" => c.policies.push(typed(&file, &doc)),
            other => panic!("{file}: unexpected kind {other}"),
        }
    }
    c
}

fn names<K: kube::ResourceExt>(objs: &[K]) -> Vec<String> {
    let mut n: Vec<_> = objs.iter().map(|o| o.name_any()).collect();
    n.sort();
    n
}

#[test]
fn every_builtin_document_parses_into_the_typed_api() {
    let c = catalog();
    assert_eq!(names(&c.policies), ["network-isolated", "permissive", "restrictive"]);
    assert_eq!(
        names(&c.skills),
        [
            "code-review",
            "github-gitops",
            "incident-response",
            "k8s-ops",
            "llmfit",
            "memory",
            "software-dev",
            "sre-observability",
            "web-endpoint"
        ]
    );
    assert_eq!(
        names(&c.packs),
        ["developer-team", "devops-essentials", "observability-mcp-team", "platform-team"]
    );
}

#[test]
fn packs_are_catalog_entries_with_complete_personas() {
    let c = catalog();
    let skill_packs: BTreeSet<_> = c.skills.iter().map(|s| s.metadata.name.clone().unwrap()).collect();
    let personas = |pack: &str| -> Vec<String> {
        let p = c.packs.iter().find(|p| p.metadata.name.as_deref() == Some(pack)).unwrap();
        p.spec.personas.iter().map(|p| p.name.clone()).collect()
    };
    assert_eq!(personas("platform-team"), ["security-guardian", "sre-watchdog", "platform-engineer"]);
    assert_eq!(personas("devops-essentials"), ["incident-responder", "cost-analyzer"]);
    assert_eq!(
        personas("developer-team"),
        [
            "tech-lead",
            "backend-dev",
            "frontend-dev",
            "qa-engineer",
            "code-reviewer",
            "devops-engineer",
            "docs-writer"
        ]
    );
    assert_eq!(personas("observability-mcp-team"), ["sre-investigator", "incident-responder"]);

    for pack in &c.packs {
        let name = pack.metadata.name.clone().unwrap();
        assert_eq!(pack.spec.enabled, None, "{name} ships disabled (catalog)");
        assert!(pack.spec.description.as_deref().is_some_and(|d| !d.is_empty()), "{name}");
        assert_eq!(pack.spec.version.as_deref(), Some("1.0.0"), "{name}");
        for p in &pack.spec.personas {
            let who = format!("{name}/{}", p.name);
            assert!(p.system_prompt.len() > 400, "{who}: a genuinely useful system prompt");
            assert!(p.display_name.is_some(), "{who}");
            let schedule = p.schedule.as_ref().unwrap_or_else(|| panic!("{who} has recurring work"));
            assert!(schedule.task.len() > 100, "{who}: a concrete task");
            let policy = p.tool_policy.as_ref().unwrap_or_else(|| panic!("{who} has a tool policy"));
            assert!(!policy.allow.is_empty(), "{who}");
            assert!(
                policy.allow.iter().any(|t| t == "memory_search"),
                "{who}: memory tools allowed with the memory skill"
            );
            assert!(p.skills.iter().any(|s| s == "memory"), "{who}");
            for skill in p.skills.iter().filter(|s| *s != "mcp-bridge") {
                assert!(skill_packs.contains(skill), "{who}: skill {skill} ships as a SkillPack");
            }
            assert!(p.memory.as_ref().is_some_and(|m| !m.seeds.is_empty()), "{who}: seeded memory");
            assert!(p.channels.is_empty() && p.web_endpoint.is_none() && p.lifecycle.is_none(), "{who}");
        }
    }
}

#[test]
fn skills_have_real_content_and_the_listed_sidecars() {
    let c = catalog();
    for pack in &c.skills {
        for skill in &pack.spec.skills {
            assert!(skill.content.trim_start().starts_with('#'), "{}: Markdown", skill.name);
            assert!(
                skill.content.len() > 500,
                "{}/{}: real instructions",
                pack.metadata.name.as_deref().unwrap(),
                skill.name
            );
        }
    }
    let sidecar = |name: &str| {
        c.skills.iter().find(|s| s.metadata.name.as_deref() == Some(name)).unwrap().spec.sidecar.clone()
    };
    for none in ["incident-response", "code-review", "memory"] {
        assert!(sidecar(none).is_none(), "{none} is instructions only");
    }
    let k8s = sidecar("k8s-ops").unwrap();
    assert!(k8s.image.ends_with("/skill-k8s-ops:latest"));
    assert!(k8s.rbac.iter().any(|r| r.api_groups == ["metrics.k8s.io"]), "the metrics rules of the superset");
    assert!(k8s.cluster_rbac.iter().any(|r| r.resources.contains(&"nodes".to_string())));
    let gitops = sidecar("github-gitops").unwrap();
    assert_eq!(gitops.secret_ref.as_deref(), Some("github-gitops-token"));
    assert_eq!(gitops.secret_mount_path.as_deref(), Some("/secrets/github-token"));
    assert_eq!(gitops.command, ["/usr/local/bin/tool-executor.sh"]);
    let llmfit = sidecar("llmfit").unwrap();
    let host = llmfit.host_access.unwrap();
    assert_eq!((host.enabled, host.host_pid, host.run_as_root), (Some(true), Some(true), Some(true)));
    assert!(host.mounts.iter().all(|m| m.read_only));
    let web = sidecar("web-endpoint").unwrap();
    assert_eq!(web.requires_server, Some(true));
    assert_eq!(web.mount_workspace, Some(false));
    assert_eq!(web.ports[0].container_port, 8080);
}
