//! Locating the test control plane and handing tests clients and namespaces on it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::{Error, Result, install_crds, repo_root, wait_for};

/// The running test control plane: where its kubeconfig and kubectl are.
#[derive(Clone, Debug)]
pub struct TestPlane {
    kubeconfig: PathBuf,
    kubectl: PathBuf,
}

/// Why the test control plane could not be found or started.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PlaneError {
    /// `TESTPLANE_KUBECONFIG` names a missing file.
    #[error("TESTPLANE_KUBECONFIG={} does not exist", .0.display())]
    MissingKubeconfig(PathBuf),
    /// Under CI the plane must be started by `make test`.
    #[error(
        "TESTPLANE_KUBECONFIG is not set under CI=true: run the tests with `make test`, which starts the test control plane"
    )]
    NotStartedUnderCi,
    /// `testplane/up.sh` could not be run.
    #[error("running {}: {source}", script.display())]
    Spawn {
        /// The script.
        script: PathBuf,
        /// The error (shared: the result is cached for the whole test process).
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    /// `testplane/up.sh` failed.
    #[error("{} failed:\n{stderr_tail}", script.display())]
    Failed {
        /// The script.
        script: PathBuf,
        /// The last lines of its standard error.
        stderr_tail: String,
    },
    /// `testplane/up.sh` printed no kubeconfig path.
    #[error("{} printed no kubeconfig path", .0.display())]
    NoKubeconfig(PathBuf),
}

static PLANE: OnceLock<Result<TestPlane, PlaneError>> = OnceLock::new();
static CRDS: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

impl TestPlane {
    /// The plane for this test process. Uses `TESTPLANE_KUBECONFIG` when set; otherwise,
    /// outside CI, starts or reuses one with `testplane/up.sh`. Under `CI=true` a missing
    /// plane is an error, so cluster tests fail rather than skip.
    pub fn get() -> Result<TestPlane> {
        PLANE.get_or_init(locate).clone().map_err(Error::Unavailable)
    }

    /// Path of the plane's kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A new client for the calling test's runtime, with the Sympozium CRDs installed.
    pub async fn client(&self) -> Result<Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|e| Error::Kubeconfig(format!("{}: {e}", self.kubeconfig.display())))?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| Error::Kubeconfig(e.to_string()))?;
        let client = Client::try_from(config)?;
        CRDS.get_or_try_init(|| async { install_crds(&client).await }).await?;
        Ok(client)
    }

    /// Creates a fresh namespace `t-<prefix>-<unique>` for one test and waits for its
    /// `default` ServiceAccount, so pods can be created in it right away.
    pub async fn namespace(&self, client: &Client, prefix: &str) -> Result<TestNamespace> {
        self.namespace_labelled(client, prefix, &[]).await
    }

    /// Like [`TestPlane::namespace`], enforcing the `restricted` Pod Security Standard
    /// (`pod-security.kubernetes.io/enforce=restricted`): the API server refuses any pod
    /// that does not meet it. Not the default, because some tests deliberately run what
    /// `restricted` forbids (host paths, host network for host-access skills, the local
    /// node's own privileged cases).
    pub async fn restricted_namespace(&self, client: &Client, prefix: &str) -> Result<TestNamespace> {
        let labels = [
            ("pod-security.kubernetes.io/enforce", "restricted"),
            ("pod-security.kubernetes.io/enforce-version", "latest"),
        ];
        self.namespace_labelled(client, prefix, &labels).await
    }

    async fn namespace_labelled(
        &self,
        client: &Client,
        prefix: &str,
        extra: &[(&str, &str)],
    ) -> Result<TestNamespace> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let unique = format!(
            "{:x}{:x}{}",
            std::process::id() % 0xfff,
            nanos % 0xfffff,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let prefix: String =
            prefix.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(30).collect();
        let name = format!("t-{}-{unique}", prefix.to_ascii_lowercase());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(
                    [("sympozium.ai/test", "true")]
                        .iter()
                        .chain(extra)
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces.create(&PostParams::default(), &ns).await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        let exists = |sa: Option<&ServiceAccount>| sa.is_some();
        wait_for(&accounts, "default", "default ServiceAccount", Duration::from_secs(30), exists).await?;
        Ok(TestNamespace { name })
    }

    /// Runs kubectl against the plane and returns its standard output.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        let command = format!("kubectl {}", args.join(" "));
        let out = Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .map_err(|e| Error::Command { command: command.clone(), reason: e.to_string() })?;
        if !out.status.success() {
            return Err(Error::Command {
                command,
                reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A namespace created for one test.
#[derive(Clone, Debug)]
pub struct TestNamespace {
    name: String,
}

impl TestNamespace {
    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn locate() -> Result<TestPlane, PlaneError> {
    let kubectl = locate_kubectl();
    if let Some(path) = std::env::var_os("TESTPLANE_KUBECONFIG").filter(|p| !p.is_empty()) {
        let kubeconfig = PathBuf::from(path);
        if !kubeconfig.is_file() {
            return Err(PlaneError::MissingKubeconfig(kubeconfig));
        }
        return Ok(TestPlane { kubeconfig, kubectl });
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return Err(PlaneError::NotStartedUnderCi);
    }
    let up = repo_root().join("testplane/up.sh");
    eprintln!(
        "sympozium-testkit: TESTPLANE_KUBECONFIG unset; starting or reusing the plane with {}",
        up.display()
    );
    let out = Command::new("bash")
        .arg(&up)
        .output()
        .map_err(|e| PlaneError::Spawn { script: up.clone(), source: std::sync::Arc::new(e) })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<_> = stderr.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(PlaneError::Failed { script: up, stderr_tail: tail.join("\n") });
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default().trim();
    if last.is_empty() {
        return Err(PlaneError::NoKubeconfig(up));
    }
    Ok(TestPlane { kubeconfig: PathBuf::from(last), kubectl })
}

fn locate_kubectl() -> PathBuf {
    // `make test` exports the plane's own kubectl, which matches the apiserver version.
    std::env::var_os("TESTPLANE_KUBECTL")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("kubectl"))
}
