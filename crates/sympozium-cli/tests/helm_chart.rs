//! The Helm chart `deploy/helm/sympozium` with the real `helm` CLI (built from its Go module
//! by testplane/helm/build.sh) against the real test control plane: the chart lints clean,
//! renders for several value sets into manifests the API server accepts (server-side dry
//! run), installs, upgrades to changed values without losing instances or the generated
//! secrets, and uninstalls leaving nothing of the release but the CRDs and users' objects.
//! Also the drift checks of the chart's generated files (NATS authorization, built-ins).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use sympozium_api::{SkillPack, SympoziumInstance, SympoziumPolicy};
use sympozium_testkit::TestPlane;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn chart() -> PathBuf {
    repo().join("deploy/helm/sympozium")
}

/// The helm binary, built once per machine into ~/.cache (keyed by its inputs).
fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let out = Command::new("bash").arg(repo().join("testplane/helm/build.sh")).output().unwrap();
        assert!(
            out.status.success(),
            "building helm (testplane/helm/build.sh) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        PathBuf::from(stdout.lines().last().unwrap().trim())
    })
}

/// Runs helm against the plane; panics with its output on failure.
fn run_helm(plane: &TestPlane, args: &[&str]) -> String {
    let out = Command::new(helm())
        .args(args)
        .env("KUBECONFIG", plane.kubeconfig())
        // Helm's own state (repositories, cache) stays out of the developer's home.
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

#[test]
fn generated_chart_files_match_the_code() {
    // The bus's users and permissions are minted per installation (operator mode): the chart
    // carries no NATS configuration of its own.
    assert!(!chart().join("files/nats-authorization.conf").exists(), "a stale NATS users file");

    // The built-in content: the same files `sympozium install` compiles in.
    let source = repo().join("deploy/builtin");
    let copy = chart().join("files/builtin");
    let names = |dir: &Path| {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&source),
        names(&copy),
        "chart files/builtin differs from deploy/builtin: run `make chart`"
    );
    for name in names(&source) {
        assert!(
            std::fs::read(source.join(&name)).unwrap() == std::fs::read(copy.join(&name)).unwrap(),
            "chart files/builtin/{name} differs from deploy/builtin: run `make chart`"
        );
    }
}

#[test]
fn the_chart_lints_clean() {
    let plane = TestPlane::get().unwrap();
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let out = run_helm(&plane, &["lint", "--strict", chart]);
    assert!(out.contains("0 chart(s) failed"), "{out}");
    // Every value set the template test uses lints too.
    for set in VALUE_SETS {
        let mut args = vec!["lint", "--strict", chart];
        for s in set.1 {
            args.extend(["--set", s]);
        }
        run_helm(&plane, &args);
    }
}

/// Value sets users pick: defaults, cert-manager, no webhook and an external NATS,
/// a private registry with scheduling constraints and persistence, everything optional off.
const VALUE_SETS: &[(&str, &[&str])] = &[
    ("defaults", &[]),
    (
        "cert-manager",
        &[
            "webhook.certManager.enabled=true",
            "webhook.replicas=1",
            "observability.enabled=true",
            "observability.endpoint=otel.monitoring.svc:4317",
            "apiserver.enabled=true",
            "controller.maxAgentSchedules=3",
            "controller.watchNamespace=team-a",
            "grafanaDashboard.enabled=true",
            "grafanaDashboard.folder=Platform",
        ],
    ),
    (
        "external-nats",
        &[
            "webhook.enabled=false",
            "nats.enabled=false",
            "nats.url=nats://bus.example.svc:4222",
            "networkPolicies.enabled=false",
        ],
    ),
    (
        "private-registry",
        &[
            "image.registry=registry.example.com/team/sym",
            "image.tag=v9.9.9",
            "image.pullPolicy=Always",
            "imagePullSecrets[0]=regcred",
            "controller.replicas=3",
            "controller.resources.limits.memory=1Gi",
            "nodeSelector.pool=system",
            "tolerations[0].key=dedicated",
            "tolerations[0].operator=Exists",
            "nats.persistence.size=2Gi",
        ],
    ),
    (
        "minimal",
        &[
            "webhook.enabled=false",
            "nats.enabled=false",
            "builtin.policies=false",
            "builtin.skills=false",
            "builtin.personas=false",
            "networkPolicies.enabled=false",
            "apiserver.enabled=false",
        ],
    ),
];

fn template(plane: &TestPlane, release: &str, ns: &str, set: &[&str]) -> String {
    let chart = chart();
    let mut args = vec!["template", release, chart.to_str().unwrap(), "--namespace", ns];
    for s in set {
        args.extend(["--set", s]);
    }
    run_helm(plane, &args)
}

fn kinds(manifest: &str) -> Vec<String> {
    manifest.lines().filter_map(|l| l.strip_prefix("kind: ")).map(|k| k.trim().to_string()).collect()
}

#[tokio::test]
async fn every_value_set_renders_manifests_the_api_server_accepts() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "helm-template").await.unwrap().name().to_string();
    let dir = tempfile::tempdir().unwrap();
    for (name, set) in VALUE_SETS {
        let manifest = template(&plane, "sympozium", &ns, set);
        // cert-manager's kinds have no CRD on the test plane: they are checked as rendered
        // and the rest goes to the API server.
        let docs: Vec<&str> =
            manifest.split("\n---").filter(|d| !d.contains("apiVersion: cert-manager.io/v1")).collect();
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, docs.join("\n---")).unwrap();
        let out = plane
            .kubectl(&["apply", "--dry-run=server", "--namespace", &ns, "-f", path.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("value set {name}: the API server refused the manifest: {e}"));
        assert!(out.contains("(server dry run)"), "{name}: {out}");

        assert!(!manifest.contains("nats.conf: |"), "{name}: the chart renders no NATS trust");
        let kinds = kinds(&manifest);
        let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
        match *name {
            "defaults" => {
                assert_eq!(count("Deployment"), 4, "controller, NATS, webhook, API server: {kinds:?}");
                assert!(manifest.contains("image: ghcr.io/sympozium-ai/sympozium/apiserver:0.1.0"));
                assert!(!manifest.contains("sympozium-grafana-dashboard"), "the dashboard is opt-in");
                assert_eq!(count("SympoziumPolicy"), 3);
                assert_eq!(count("SkillPack"), 9);
                assert_eq!(count("PersonaPack"), 4);
                assert_eq!(count("ValidatingWebhookConfiguration"), 1);
                assert!(
                    manifest.contains("image: ghcr.io/sympozium-ai/sympozium/controller:0.1.0"),
                    "{manifest}"
                );
                assert!(manifest.contains("caBundle: "), "self-signed CA in the configuration");
                assert_eq!(count("Issuer") + count("Certificate"), 0);
            }
            "cert-manager" => {
                assert_eq!(count("Issuer"), 1);
                assert_eq!(count("Certificate"), 1);
                assert!(manifest.contains("cert-manager.io/inject-ca-from: "), "{manifest}");
                assert!(!manifest.contains("caBundle: "));
                assert!(!manifest.contains("tls.key: "), "no chart-made key with cert-manager");
                assert!(manifest.contains("value: \"otel.monitoring.svc:4317\""));
                assert_eq!(count("Deployment"), 4, "controller, NATS, webhook, API server: {kinds:?}");
                assert!(manifest.contains("image: ghcr.io/sympozium-ai/sympozium/apiserver:0.1.0"));
                assert!(manifest.contains("name: sympozium-ui-token"), "a generated dashboard token");
                assert!(manifest.contains("- --max-agent-schedules\n            - \"3\""), "{manifest}");
                assert!(manifest.contains("- --watch-namespace\n            - team-a"), "{manifest}");
                assert!(manifest.contains("name: sympozium-grafana-dashboard"), "{manifest}");
                assert!(manifest.contains("grafana_dashboard: \"1\""), "the sidecar's label");
                assert!(manifest.contains("grafana_folder: \"Platform\""));
                assert!(manifest.contains("\"uid\": \"sympozium-overview\""), "the dashboard JSON");
            }
            "external-nats" => {
                assert_eq!(count("Deployment"), 2, "the controller and the API server: {kinds:?}");
                assert!(manifest.contains("- nats://bus.example.svc:4222"));
                assert!(manifest.contains("name: sympozium-nats"), "the bus users' Secret still");
            }
            "private-registry" => {
                assert!(manifest.contains("image: registry.example.com/team/sym/controller:v9.9.9"));
                assert!(manifest.contains("image: registry.example.com/team/sym/webhook:v9.9.9"));
                assert!(
                    manifest.contains("- registry.example.com/team/sym\n"),
                    "registry for the pods it creates"
                );
                assert!(manifest.contains("replicas: 3"));
                assert!(manifest.contains("imagePullPolicy: Always"));
                assert!(manifest.contains("pool: system"));
                assert!(manifest.contains("- name: regcred"));
                assert_eq!(count("PersistentVolumeClaim"), 1);
            }
            "minimal" => {
                assert_eq!(
                    kinds.iter().filter(|k| k.starts_with("Sympozium") || k.ends_with("Pack")).count(),
                    0
                );
                assert_eq!(count("Deployment"), 1);
                assert!(!manifest.contains("--nats-url"));
            }
            _ => unreachable!(),
        }
    }
}

/// The `nats.conf` of the trust Secret `sympozium nats-trust` prints passes the real
/// nats-server's configuration check: operator mode, no users, no seeds.
fn nats_accepts_the_trust_configuration(secret: &serde_json::Value, dir: &Path) {
    let conf = secret["stringData"]["nats.conf"].as_str().unwrap();
    assert!(conf.contains("resolver: MEMORY") && !conf.contains("authorization"), "{conf}");
    for key in ["operator-seed", "account-seed", "signing-seed"] {
        let seed = secret["stringData"][key].as_str().unwrap();
        assert!(seed.starts_with('S') && !conf.contains(seed), "{key} in nats.conf");
    }
    let path = dir.join("nats.conf");
    std::fs::write(&path, conf).unwrap();
    let out = Command::new("nats-server").arg("-c").arg(&path).arg("-t").output().unwrap();
    assert!(
        out.status.success(),
        "nats-server refused the configuration: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn secret_data(client: &Client, ns: &str, name: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let s = Api::<Secret>::namespaced(client.clone(), ns).get(name).await.unwrap();
    s.data.unwrap().into_iter().map(|(k, v)| (k, v.0)).collect()
}

#[tokio::test]
async fn install_upgrade_and_uninstall_keep_users_objects() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "helm-install").await.unwrap().name().to_string();
    let users = plane.namespace(&client, "helm-users").await.unwrap().name().to_string();
    // A release name of its own: cluster-wide objects are named after it.
    let release = format!("sym-{}", &ns[ns.len() - 6..]);
    let chart = chart();
    let chart = chart.to_str().unwrap();
    // The webhook cannot serve on the plane's kwok nodes: it reviews only namespaces
    // labelled for this test (none), so other tests on the shared plane are not refused.
    let only_labelled = format!("webhook.namespaceSelector.matchLabels.sympozium-test-webhook={release}");
    // The bus's trust Secret comes first (a Go template cannot make ed25519 keys).
    let trust = sympozium(&plane, &["nats-trust", "--system-namespace", &ns]);
    let trust_json = ok(&trust);
    let dir = tempfile::tempdir().unwrap();
    nats_accepts_the_trust_configuration(&serde_json::from_str(&trust_json).unwrap(), dir.path());
    let trust_file = dir.path().join("trust.json");
    std::fs::write(&trust_file, &trust_json).unwrap();
    plane.kubectl(&["apply", "-f", trust_file.to_str().unwrap()]).unwrap();
    let started = std::time::Instant::now();
    let out = run_helm(
        &plane,
        &["install", &release, chart, "--namespace", &ns, "--set", &only_labelled, "--set", "image.tag=t1"],
    );
    eprintln!("helm install took {:.1}s", started.elapsed().as_secs_f64());
    assert!(out.contains("STATUS: deployed"), "{out}");

    // The CRDs are established (installed from crds/ when missing, else already there).
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in sympozium_api::crds::all() {
        let name = kube::ResourceExt::name_any(&crd);
        let c = crds.get(&name).await.unwrap();
        let established = c.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(established.iter().any(|c| c.type_ == "Established" && c.status == "True"), "{name}");
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let manager = deployments.get("sympozium-controller-manager").await.unwrap();
    let pod = manager.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("sympozium-controller"));
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("ghcr.io/sympozium-ai/sympozium/controller:t1"));
    assert_eq!(c.security_context.as_ref().unwrap().read_only_root_filesystem, Some(true));
    for name in ["nats", "sympozium-webhook"] {
        deployments.get(name).await.unwrap();
    }
    // RBAC: the controller's ServiceAccount is bound; the webhook may only ask.
    let binding =
        Api::<ClusterRoleBinding>::all(client.clone()).get(&format!("{release}-controller")).await.unwrap();
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (subject.name.as_str(), subject.namespace.as_deref()),
        ("sympozium-controller", Some(ns.as_str()))
    );
    let webhook_role =
        Api::<ClusterRole>::all(client.clone()).get(&format!("{release}-webhook")).await.unwrap();
    let verbs: Vec<String> = webhook_role.rules.unwrap().into_iter().flat_map(|r| r.verbs).collect();
    assert!(verbs.iter().all(|v| v == "get" || v == "create"), "{verbs:?}");
    let can = plane
        .kubectl(&[
            "auth",
            "can-i",
            "create",
            "rolebindings",
            "--as",
            &format!("system:serviceaccount:{ns}:sympozium-controller"),
            "-n",
            &users,
        ])
        .unwrap();
    assert_eq!(can.trim(), "yes");
    // `kubectl auth can-i` answers "no" with exit status 1.
    let webhook_sa = format!("system:serviceaccount:{ns}:sympozium-webhook");
    let cannot = plane.kubectl(&["auth", "can-i", "delete", "pods", "--as", &webhook_sa, "-n", &users]);
    assert!(cannot.is_err(), "the webhook may not delete pods: {cannot:?}");
    let can =
        plane.kubectl(&["auth", "can-i", "create", "subjectaccessreviews", "--as", &webhook_sa]).unwrap();
    assert_eq!(can.trim(), "yes");
    // Built-ins in the release namespace.
    let policies =
        Api::<SympoziumPolicy>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.unwrap();
    assert_eq!(policies.items.len(), 3);
    let skills =
        Api::<SkillPack>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.unwrap();
    assert_eq!(skills.items.len(), 9);
    let nats_before = secret_data(&client, &ns, "sympozium-nats").await;
    assert!(nats_before["signing-seed"].starts_with(b"SA"));
    let conf = String::from_utf8(nats_before["nats.conf"].clone()).unwrap();
    assert!(conf.contains("resolver: MEMORY"), "{conf}");
    // The controller gets the signing key and the account, nothing else of the chain.
    let keys: Vec<String> = c
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
        .filter(|r| r.name == "sympozium-nats")
        .map(|r| r.key.clone())
        .collect();
    assert_eq!(keys, ["account", "signing-seed", "origin-master-key"]);
    let cert_before = secret_data(&client, &ns, "sympozium-webhook-cert").await;

    // A user's instance, then an upgrade to changed values.
    let instance: SympoziumInstance = serde_json::from_value(serde_json::json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
        "metadata": {"name": "keeper", "namespace": users},
        "spec": {"agents": {"default": {"model": "gpt-4o"}}, "memory": {"enabled": true}}
    }))
    .unwrap();
    let instances: Api<SympoziumInstance> = Api::namespaced(client.clone(), &users);
    let created = instances.create(&PostParams::default(), &instance).await.unwrap();
    let out = run_helm(
        &plane,
        &[
            "upgrade",
            &release,
            chart,
            "--namespace",
            &ns,
            "--set",
            &only_labelled,
            "--set",
            "image.tag=t2",
            "--set",
            "controller.replicas=2",
            "--set",
            "builtin.personas=false",
        ],
    );
    assert!(out.contains("STATUS: deployed") && out.contains("REVISION: 2"), "{out}");
    let manager = deployments.get("sympozium-controller-manager").await.unwrap();
    assert_eq!(manager.spec.as_ref().unwrap().replicas, Some(2));
    let c = &manager.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("ghcr.io/sympozium-ai/sympozium/controller:t2"));
    let kept = instances.get("keeper").await.unwrap();
    assert_eq!(kept.metadata.uid, created.metadata.uid, "the instance survives the upgrade");
    assert_eq!(secret_data(&client, &ns, "sympozium-nats").await, nats_before, "bus trust chain kept");
    assert_eq!(secret_data(&client, &ns, "sympozium-webhook-cert").await, cert_before, "webhook CA kept");
    let packs = plane.kubectl(&["get", "personapacks", "-n", &ns, "-o", "name"]).unwrap();
    assert!(packs.trim().is_empty(), "personas turned off are removed: {packs}");

    let out = run_helm(&plane, &["uninstall", &release, "--namespace", &ns]);
    assert!(out.contains("uninstalled"), "{out}");
    // The trust Secret is not the release's: removed by hand, as `sympozium uninstall` does.
    plane.kubectl(&["delete", "secret", "sympozium-nats", "-n", &ns]).unwrap();
    // Nothing of the release is left (deletion of namespaced objects is immediate at the
    // API; pods would follow through garbage collection).
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
            .kubectl(&["get", kind, "-n", &ns, "-o", "name", "-l", "app.kubernetes.io/part-of=sympozium"])
            .unwrap();
        assert!(left.trim().is_empty(), "{kind} left: {left}");
    }
    let left = plane
        .kubectl(&["get", "sympoziumpolicies,skillpacks,personapacks", "-n", &ns, "-o", "name"])
        .unwrap();
    assert!(left.trim().is_empty(), "built-ins left: {left}");
    for (kind, name) in [
        ("clusterrole", format!("{release}-controller")),
        ("clusterrolebinding", format!("{release}-controller")),
        ("validatingwebhookconfiguration", format!("{release}-webhook")),
    ] {
        let err = plane.kubectl(&["get", kind, &name]).unwrap_err().to_string();
        assert!(err.contains("NotFound"), "{kind}/{name}: {err}");
    }
    // CRDs are kept, as Helm does, and with them the users' instances.
    assert_eq!(instances.get("keeper").await.unwrap().metadata.uid, created.metadata.uid);
    crds.get("sympoziuminstances.sympozium.ai").await.unwrap();
}

/// Runs the CLI against the plane with the test's helm.
fn sympozium(plane: &TestPlane, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sympozium"))
        .args(["--kubeconfig", plane.kubeconfig().to_str().unwrap()])
        .args(args)
        .env("SYMPOZIUM_HELM", helm())
        .env("HELM_CACHE_HOME", std::env::temp_dir().join("sympozium-helm-test/cache"))
        .env("HELM_CONFIG_HOME", std::env::temp_dir().join("sympozium-helm-test/config"))
        .env("HELM_DATA_HOME", std::env::temp_dir().join("sympozium-helm-test/data"))
        .output()
        .unwrap()
}

fn ok(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[tokio::test]
async fn sympozium_install_and_upgrade_go_through_helm_and_keep_instances() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "cli-helm").await.unwrap().name().to_string();
    let users = plane.namespace(&client, "cli-helm-users").await.unwrap().name().to_string();
    let release = format!("cli-{}", &ns[ns.len() - 6..]);
    let only_labelled = format!("webhook.namespaceSelector.matchLabels.sympozium-test-webhook={release}");
    let common = ["--system-namespace", &ns, "--release", &release, "--image-registry", "reg.local/sym"];

    // --dry-run prints the manifests, CRDs included, and touches nothing.
    let out = sympozium(
        &plane,
        &[&["install", "--dry-run", "--image-tag", "c1", "--webhook"][..], &common].concat(),
    );
    let manifest = ok(&out);
    assert!(manifest.contains("kind: CustomResourceDefinition"), "{manifest}");
    assert!(manifest.contains("image: reg.local/sym/controller:c1"));
    assert!(manifest.contains("kind: ValidatingWebhookConfiguration"));
    assert!(
        Api::<Deployment>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Bad input is refused with the flag named.
    let out = sympozium(&plane, &[&["install", "--set", "controller.replicas"][..], &common].concat());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--set controller.replicas: expected key=value"));
    let out = sympozium(&plane, &[&["install", "--no-helm", "--set", "a=b"][..], &common].concat());
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("need helm"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = sympozium(
        &plane,
        &[
            &["install", "--image-tag", "c1", "--webhook", "--set", &only_labelled, "--wait", "90s"][..],
            &common,
        ]
        .concat(),
    );
    let stdout = ok(&out);
    assert!(
        stdout.contains(&format!(
            "sympozium installed in namespace {ns} with Helm (release {release}, revision 1"
        )),
        "{stdout}"
    );
    let listed = run_helm(&plane, &["list", "--namespace", &ns, "--short"]);
    assert_eq!(listed.trim(), release);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments.get("sympozium-webhook").await.unwrap();

    let instance: SympoziumInstance = serde_json::from_value(serde_json::json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
        "metadata": {"name": "stays", "namespace": users},
        "spec": {"agents": {"default": {"model": "gpt-4o"}}, "memory": {"enabled": true}}
    }))
    .unwrap();
    let instances: Api<SympoziumInstance> = Api::namespaced(client.clone(), &users);
    let created = instances.create(&PostParams::default(), &instance).await.unwrap();
    let nats_before = secret_data(&client, &ns, "sympozium-nats").await;

    let values = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(values.path(), "controller:\n  replicas: 2\n").unwrap();
    let out = sympozium(
        &plane,
        &[
            &["upgrade", "--image-tag", "c2", "--webhook", "--set", &only_labelled, "--values"][..],
            &[values.path().to_str().unwrap()],
            &common,
        ]
        .concat(),
    );
    let stdout = ok(&out);
    assert!(stdout.contains("revision 2"), "{stdout}");
    let manager = deployments.get("sympozium-controller-manager").await.unwrap();
    assert_eq!(manager.spec.as_ref().unwrap().replicas, Some(2), "--values applied");
    let image = manager.spec.unwrap().template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("reg.local/sym/controller:c2"));
    assert_eq!(instances.get("stays").await.unwrap().metadata.uid, created.metadata.uid);
    assert_eq!(secret_data(&client, &ns, "sympozium-nats").await, nats_before, "bus trust chain kept");

    // An upgrade that names none of the flags keeps the release's values: the webhook stays
    // on, the registry, tag and replicas stay as installed.
    let out = sympozium(
        &plane,
        &["upgrade", "--system-namespace", &ns, "--release", &release, "--set", "controller.maxRunHistory=7"],
    );
    let stdout = ok(&out);
    assert!(stdout.contains("sympozium upgraded") && stdout.contains("revision 3"), "{stdout}");
    assert!(stdout.contains("images as installed"), "{stdout}");
    deployments.get("sympozium-webhook").await.expect("the webhook is still installed");
    let manager = deployments.get("sympozium-controller-manager").await.unwrap();
    assert_eq!(manager.spec.as_ref().unwrap().replicas, Some(2), "earlier --values kept");
    let c = manager.spec.unwrap().template.spec.unwrap().containers.remove(0);
    assert_eq!(c.image.as_deref(), Some("reg.local/sym/controller:c2"));
    let args = c.args.unwrap_or_default();
    assert!(args.windows(2).any(|w| w[0] == "--max-run-history" && w[1] == "7"), "{args:?}");
    // `--webhook=false` is how it goes.
    let out =
        sympozium(&plane, &["upgrade", "--system-namespace", &ns, "--release", &release, "--webhook=false"]);
    ok(&out);
    assert!(deployments.get_opt("sympozium-webhook").await.unwrap().is_none(), "--webhook=false removes it");

    let out = sympozium(&plane, &["uninstall", "--system-namespace", &ns, "--release", &release]);
    let stdout = ok(&out);
    assert!(stdout.contains(&format!("(Helm release {release})")), "{stdout}");
    assert!(deployments.list(&ListParams::default()).await.unwrap().items.is_empty());
    assert_eq!(instances.get("stays").await.unwrap().metadata.uid, created.metadata.uid, "agents kept");
}
