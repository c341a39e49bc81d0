//! The committed CRD YAML read the way users read it: `kubectl apply -f deploy/crds/` with
//! the test plane's kubectl, a YAML 1.1 reader (where a plain `off` is `false` and `1.0` a
//! number). The API server must end up with exactly the schemas and printer columns the code
//! defines, `thinking: "off"` must round-trip, and printer columns show defaults rather than
//! blanks (`ENABLED false` for a catalog pack).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, ResourceExt};
use sympozium_api::crds;
use sympozium_testkit::{TestPlane, repo_root};

#[tokio::test]
async fn kubectl_applies_the_committed_crds_as_the_code_defines_them() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let dir = repo_root().join("deploy/crds");
    // Its own field manager, forcing: whatever kubectl read from the files is what the API
    // server now holds, even where the test kit applied the same CRDs before.
    plane
        .kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            "kubectl-yaml-test",
            "-f",
            dir.to_str().unwrap(),
        ])
        .unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds::all() {
        let live = api.get(&crd.name_any()).await.unwrap();
        assert_eq!(live.spec.versions.len(), crd.spec.versions.len());
        for (want, got) in crd.spec.versions.iter().zip(&live.spec.versions) {
            let schema = |v: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionVersion| {
                serde_json::to_value(&v.schema).unwrap()
            };
            assert!(
                schema(want) == schema(got),
                "{}: the schema kubectl applied differs from the code's (a string read as a boolean or number?)",
                crd.name_any()
            );
            assert_eq!(
                serde_json::to_value(&want.additional_printer_columns).unwrap(),
                serde_json::to_value(&got.additional_printer_columns).unwrap(),
                "{} printer columns",
                crd.name_any()
            );
        }
    }
}

#[tokio::test]
async fn thinking_off_round_trips_through_kubectl() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "kubectl-yaml").await.unwrap();
    let manifest = std::env::temp_dir().join(format!("{}-instance.yaml", ns.name()));
    std::fs::write(
        &manifest,
        "apiVersion: sympozium.ai/v1alpha1\nkind: SympoziumInstance\nmetadata: {name: quiet}\n\
         spec:\n  agents:\n    default: {model: gpt-4o, thinking: \"off\"}\n",
    )
    .unwrap();
    let applied = plane.kubectl(&["apply", "-n", ns.name(), "-f", manifest.to_str().unwrap()]);
    let _ = std::fs::remove_file(&manifest);
    applied.unwrap();
    let thinking = plane
        .kubectl(&[
            "get",
            "sympoziuminstance",
            "quiet",
            "-n",
            ns.name(),
            "-o",
            "jsonpath={.spec.agents.default.thinking}",
        ])
        .unwrap();
    assert_eq!(thinking, "off");
    let typed: Api<sympozium_api::SympoziumInstance> = Api::namespaced(client, ns.name());
    let back = typed.get("quiet").await.unwrap();
    assert_eq!(
        serde_json::to_value(back.spec.agents.default.thinking).unwrap(),
        serde_json::json!("off"),
        "and the typed client reads it back"
    );
}

#[tokio::test]
async fn a_catalog_pack_shows_enabled_false_not_a_blank() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "kubectl-columns").await.unwrap();
    let pack = repo_root().join("deploy/builtin/personapack-platform-team.yaml");
    plane.kubectl(&["apply", "-n", ns.name(), "-f", pack.to_str().unwrap()]).unwrap();
    let out = plane.kubectl(&["get", "personapacks", "-n", ns.name()]).unwrap();
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&header[..2], ["NAME", "ENABLED"], "{out}");
    let row: Vec<&str> =
        lines.find(|l| l.starts_with("platform-team ")).unwrap().split_whitespace().collect();
    assert_eq!(row[1], "false", "{out}");
}
