//! The Helm chart installed with the real `helm` on the test plane, its pods on the local
//! node running the very OCI images `make images` builds (scripts/images.sh, debug
//! binaries): the controller, admission webhook, API server, and the pods the controller
//! creates (agent-runner, ipc-bridge, the memory server's skill-memory) all start from their unpacked images.
//! An agent run Succeeds and stores a memory; `helm upgrade` to changed values (a new
//! image tag, so the memory server is replaced) keeps that memory; `helm uninstall`
//! leaves no object of the release behind, the CRDs and the user's instance kept.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use support::*;
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_testkit::fake_llm::{FakeLlm, Turn};
use sympozium_testkit::{TestPlane, wait_for};

/// Image → binary, the components this test runs from images.
const IMAGES: &[(&str, &str, &str)] = &[
    ("controller", "sympozium-controller", "sympozium-controller"),
    ("webhook", "sympozium-webhook", "sympozium-webhook"),
    ("apiserver", "sympozium-apiserver", "sympozium-apiserver"),
    ("agent-runner", "sympozium-agent-runner", "sympozium-agent-runner"),
    ("ipc-bridge", "sympozium-ipc-bridge", "sympozium-ipc-bridge"),
    ("skill-memory", "sympozium-memory", "sympozium-memory-server"),
];
const REGISTRY: &str = "sympozium.local/chart-test";
const FACT: &str = "checkout times out: the payments pool is exhausted at 20 connections";
const WAIT: Duration = Duration::from_secs(240);

fn repo() -> PathBuf {
    sympozium_testkit::repo_root()
}

/// The helm binary, built once per machine into ~/.cache (testplane/helm/build.sh).
fn helm() -> PathBuf {
    let out = Command::new("bash").arg(repo().join("testplane/helm/build.sh")).output().unwrap();
    assert!(
        out.status.success(),
        "building helm (testplane/helm/build.sh) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim())
}

fn run_helm(helm: &Path, plane: &TestPlane, args: &[&str]) -> String {
    let out = Command::new(helm)
        .args(args)
        .env("KUBECONFIG", plane.kubeconfig())
        .env("HELM_CACHE_HOME", std::env::temp_dir().join("sympozium-helm-test/cache"))
        .env("HELM_CONFIG_HOME", std::env::temp_dir().join("sympozium-helm-test/config"))
        .env("HELM_DATA_HOME", std::env::temp_dir().join("sympozium-helm-test/data"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Builds the images from this build's debug binaries into `out` (as `make images` does).
fn build_images(out: &Path) {
    assert_eq!(
        String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap().trim(),
        "0",
        "building images with buildah (vfs storage, chroot isolation) needs root, as `make images` does"
    );
    for (_, package, binary) in IMAGES {
        ensure_built(package, &[binary]);
    }
    let started = Instant::now();
    let status = Command::new("bash")
        .arg(repo().join("scripts/images.sh"))
        .args(["--profile", "debug", "--no-build", "--out"])
        .arg(out)
        .arg("--bin-dir")
        .arg(bin_dir())
        .args(IMAGES.iter().map(|(name, _, _)| *name))
        .status()
        .unwrap();
    assert!(status.success(), "scripts/images.sh failed");
    let total: u64 = IMAGES
        .iter()
        .map(|(name, _, _)| std::fs::metadata(out.join(format!("{name}.tar"))).unwrap().len())
        .sum();
    eprintln!(
        "built {} images ({:.1} MiB) in {:.1}s",
        IMAGES.len(),
        total as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );
}

async fn apply(client: &Client, ns: &str, kind: &str, plural: &str, name: &str, spec: Value) {
    let ar = ApiResource {
        group: "sympozium.ai".into(),
        version: "v1alpha1".into(),
        api_version: "sympozium.ai/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec});
    api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&body)).await.unwrap();
}

async fn agent_run(client: &Client, ns: &str, name: &str, task: &str, base_url: &str) -> AgentRun {
    apply(client, ns, "AgentRun", "agentruns", name, json!({"instanceRef": "sre", "agentId": "primary",
        "sessionKey": name, "task": task, "skills": [{"skillPackRef": "memory"}],
        "model": {"provider": "openai", "model": "gpt-4o", "baseURL": base_url, "authSecretRef": "team-openai-key"}}))
    .await;
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), ns);
    let done = wait_for(&runs, name, "finished", WAIT, |r: Option<&AgentRun>| {
        matches!(
            r.and_then(|r| r.status.as_ref()?.phase),
            Some(AgentRunPhase::Succeeded | AgentRunPhase::Failed)
        )
    })
    .await;
    let done = match done {
        Ok(d) => d,
        Err(e) => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
            let list = pods.list(&ListParams::default()).await.unwrap().items;
            let status: Vec<_> = list.iter().map(|p| (p.name_any(), p.status.clone())).collect();
            panic!("{e}; pods: {}", serde_json::to_string_pretty(&status).unwrap());
        }
    };
    assert_eq!(done.status.as_ref().unwrap().phase, Some(AgentRunPhase::Succeeded), "{:?}", done.status);
    done
}

/// The Ready memory-server pod whose image has `tag`.
async fn memory_pod(client: &Client, ns: &str, tag: &str) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let wanted = format!("{REGISTRY}/skill-memory:{tag}");
    for _ in 0..(WAIT.as_secs() * 2) {
        let list = pods.list(&ListParams::default()).await.unwrap().items;
        let found = list.into_iter().find(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.spec
                    .as_ref()
                    .is_some_and(|s| s.containers.iter().any(|c| c.image.as_deref() == Some(&wanted)))
                && ready(Some(p))
        });
        if let Some(p) = found {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let list = pods.list(&ListParams::default()).await.unwrap().items;
    let status: Vec<_> = list.iter().map(|p| (p.name_any(), p.status.clone())).collect();
    panic!("no Ready {wanted} pod: {}", serde_json::to_string_pretty(&status).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_runs_agents_from_the_real_images_keeps_memories_across_upgrades_and_uninstalls_cleanly() {
    let images = std::env::temp_dir().join(format!("sympozium-chart-images-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&images);
    build_images(&images);
    use_oci_dir(images.clone());
    let helm = helm();
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let system = namespace(&client, &plane, "chart-sys").await.name().to_string();
    let users = namespace(&client, &plane, "chart-team").await.name().to_string();
    let release = format!("img-{}", &system[system.len() - 6..]);
    // The webhook reviews only this test's team namespace on the shared plane.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let label = json!({"metadata": {"labels": {"sympozium-test-webhook": release}}});
    namespaces.patch(&users, &PatchParams::default(), &Patch::Merge(&label)).await.unwrap();

    let fake = FakeLlm::start().await.unwrap();
    host_service(&client, &users, "llm", port_of(&fake.openai_base_url())).await;
    let base_url = format!("http://llm.{users}.svc/v1");
    Api::<Secret>::namespaced(client.clone(), &users)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "team-openai-key"},
            "stringData": {"OPENAI_API_KEY": "sk-chart-key"}}))
            .unwrap(),
        )
        .await
        .unwrap();

    // A plain `helm install` needs the bus's trust Secret first, made as docs/install.md says.
    let cli = ensure_built("sympozium-cli", &["sympozium"]).join("sympozium");
    let trust = Command::new(&cli)
        .args(["nats-trust", "--system-namespace", &system])
        .env("KUBECONFIG", plane.kubeconfig())
        .output()
        .unwrap();
    assert!(trust.status.success(), "sympozium nats-trust: {}", String::from_utf8_lossy(&trust.stderr));
    let trust_file = images.join("nats-trust.json");
    std::fs::write(&trust_file, &trust.stdout).unwrap();
    plane.kubectl(&["apply", "-f", trust_file.to_str().unwrap()]).unwrap();

    let chart = repo().join("deploy/helm/sympozium");
    let chart = chart.to_str().unwrap();
    let only_team = format!("webhook.namespaceSelector.matchLabels.sympozium-test-webhook={release}");
    let watch = format!("controller.watchNamespace={users}");
    let registry = format!("image.registry={REGISTRY}");
    let started = Instant::now();
    let out = run_helm(
        &helm,
        &plane,
        &[
            "install",
            &release,
            chart,
            "--namespace",
            &system,
            "--set",
            &registry,
            "--set",
            "image.tag=t1",
            "--set",
            &only_team,
            "--set",
            &watch,
            "--set",
            "webhook.replicas=1",
            "--set",
            "apiserver.enabled=true",
            "--set",
            "builtin.personas=false",
            "--wait",
            "--timeout",
            "5m",
        ],
    );
    eprintln!("helm install --wait on the local node took {:.1}s", started.elapsed().as_secs_f64());
    assert!(out.contains("STATUS: deployed"), "{out}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &system);
    // `--wait` saw every Deployment ready; on a loaded machine a probe can still fail right
    // after and restart a pod, so each must be available again within two minutes.
    for name in ["sympozium-controller-manager", "sympozium-webhook", "sympozium-apiserver", "nats"] {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let d = deployments.get(name).await.unwrap();
            if d.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0) >= 1 {
                break;
            }
            assert!(Instant::now() < deadline, "{name} not available: {:?}", d.status);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    // The user's side: the memory SkillPack, an instance with memory, then a run.
    plane
        .kubectl(&[
            "apply",
            "-n",
            &users,
            "-f",
            repo().join("deploy/builtin/skillpack-memory.yaml").to_str().unwrap(),
        ])
        .unwrap();
    apply(
        &client,
        &users,
        "SympoziumInstance",
        "sympoziuminstances",
        "sre",
        json!({
        "agents": {"default": {"model": "gpt-4o", "baseURL": base_url}},
        "authRefs": [{"provider": "openai", "secret": "team-openai-key"}],
        "skills": [{"skillPackRef": "memory"}],
        "memory": {"enabled": true}}),
    )
    .await;
    memory_pod(&client, &users, "t1").await;
    fake.push(Turn::tool_call("memory_store", json!({"content": FACT, "tags": ["incident"]})));
    fake.push(Turn::text("Noted the pool exhaustion."));
    let done =
        agent_run(&client, &users, "store-1", "Record what you found about checkout.", &base_url).await;
    assert_eq!(done.status.unwrap().result.as_deref(), Some("Noted the pool exhaustion."));
    // The run's pod ran the images of this registry, and the node unpacked each image
    // (its cache is keyed by the manifest digest `make images` wrote).
    let pods: Api<Pod> = Api::namespaced(client.clone(), &users);
    let run_pod = pods.list(&ListParams::default().labels("job-name=store-1")).await.unwrap().items.remove(0);
    let run_images: Vec<String> =
        run_pod.spec.unwrap().containers.iter().filter_map(|c| c.image.clone()).collect();
    assert!(run_images.contains(&format!("{REGISTRY}/agent-runner:t1")), "{run_images:?}");
    assert!(run_images.contains(&format!("{REGISTRY}/ipc-bridge:t1")), "{run_images:?}");
    for (name, _, _) in IMAGES {
        let digest = std::fs::read_to_string(images.join(format!("{name}.digest"))).unwrap();
        let unpacked = state_dir().join("oci").join(digest.trim().replace(':', "-"));
        assert!(unpacked.join("rootfs").is_dir(), "{name}: the node ran its image ({})", unpacked.display());
    }

    // An upgrade to changed values: a new tag rolls every component, the memory server too.
    let out = run_helm(
        &helm,
        &plane,
        &[
            "upgrade",
            &release,
            chart,
            "--namespace",
            &system,
            "--reuse-values",
            "--set",
            "image.tag=t2",
            "--set",
            "controller.maxRunHistory=20",
            "--wait",
            "--timeout",
            "5m",
        ],
    );
    assert!(out.contains("REVISION: 2"), "{out}");
    let manager = deployments.get("sympozium-controller-manager").await.unwrap();
    let c = &manager.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some(format!("{REGISTRY}/controller:t2").as_str()));
    assert!(c.args.as_ref().unwrap().windows(2).any(|w| w == ["--max-run-history", "20"]));
    memory_pod(&client, &users, "t2").await;
    let before = fake.requests().len();
    fake.push(Turn::tool_call("memory_search", json!({"query": "checkout"})));
    fake.push(Turn::text("The payments pool ran out before."));
    agent_run(&client, &users, "find-1", "What do we know about checkout?", &base_url).await;
    assert!(
        fake.requests().iter().skip(before).any(|r| r.body.to_string().contains(FACT)),
        "the memory stored before the upgrade was found after it"
    );

    let out = run_helm(&helm, &plane, &["uninstall", &release, "--namespace", &system, "--wait"]);
    assert!(out.contains("uninstalled"), "{out}");
    for kind in [
        "deployments",
        "secrets",
        "services",
        "serviceaccounts",
        "sympoziumpolicies",
        "skillpacks",
        "networkpolicies",
    ] {
        let left = plane
            .kubectl(&["get", kind, "-n", &system, "-o", "name", "-l", "app.kubernetes.io/part-of=sympozium"])
            .unwrap();
        // The trust Secret was made before the install, not by the release: it stays, so
        // a reinstall keeps the bus identities the controller minted (docs/install.md).
        let left: Vec<&str> = left.lines().filter(|l| *l != "secret/sympozium-nats").collect();
        assert!(left.is_empty(), "{kind} left: {left:?}");
    }
    let left = plane
        .kubectl(&["get", "sympoziumpolicies,skillpacks,personapacks", "-n", &system, "-o", "name"])
        .unwrap();
    assert!(left.trim().is_empty(), "built-ins left: {left}");
    for (kind, name) in [
        ("clusterrole", format!("{release}-controller")),
        ("clusterrole", format!("{release}-apiserver")),
        ("clusterrolebinding", format!("{release}-webhook")),
        ("validatingwebhookconfiguration", format!("{release}-webhook")),
    ] {
        let err = plane.kubectl(&["get", kind, &name]).unwrap_err().to_string();
        assert!(err.contains("NotFound"), "{kind}/{name}: {err}");
    }
    // CRDs are kept, as Helm does, and with them the user's instance.
    plane.kubectl(&["get", "crd", "sympoziuminstances.sympozium.ai"]).unwrap();
    plane.kubectl(&["get", "sympoziuminstance", "sre", "-n", &users]).unwrap();

    // The memory Deployment would otherwise come back on every later node of this plane.
    for ns in [&users, &system] {
        namespaces.delete(ns, &DeleteParams::default()).await.unwrap();
    }
    let _ = std::fs::remove_dir_all(&images);
}
