//! `install` / `upgrade` / `uninstall` through Helm: the chart (`deploy/helm/sympozium`) is
//! compiled into the CLI, written to a temporary directory and handed to the user's `helm`
//! (`upgrade --install`, `template` for `--dry-run`, `uninstall`). Helm, not a renderer of
//! our own, so a release installed by the CLI is an ordinary Helm release: `helm list`,
//! `helm rollback` and `helm upgrade` with the published chart all work on it, and Go
//! templates are rendered by the one implementation that defines them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kube::ResourceExt;

use crate::cli::{DEFAULT_REGISTRY, DEFAULT_TAG, InstallArgs};
use crate::output::{emit, emitln};
use crate::progress::Progress;

/// The chart's files, compiled in (path inside the chart, content). The CRDs are rendered
/// from the code at run time (the chart's copies are checked against the same code).
const CHART: &[(&str, &str)] = &[
    ("Chart.yaml", include_str!("../../../../deploy/helm/sympozium/Chart.yaml")),
    ("values.yaml", include_str!("../../../../deploy/helm/sympozium/values.yaml")),
    ("templates/_helpers.tpl", include_str!("../../../../deploy/helm/sympozium/templates/_helpers.tpl")),
    (
        "templates/controller.yaml",
        include_str!("../../../../deploy/helm/sympozium/templates/controller.yaml"),
    ),
    ("templates/nats.yaml", include_str!("../../../../deploy/helm/sympozium/templates/nats.yaml")),
    ("templates/webhook.yaml", include_str!("../../../../deploy/helm/sympozium/templates/webhook.yaml")),
    ("templates/apiserver.yaml", include_str!("../../../../deploy/helm/sympozium/templates/apiserver.yaml")),
    ("templates/builtin.yaml", include_str!("../../../../deploy/helm/sympozium/templates/builtin.yaml")),
    ("templates/NOTES.txt", include_str!("../../../../deploy/helm/sympozium/templates/NOTES.txt")),
    (
        "templates/grafana-dashboard.yaml",
        include_str!("../../../../deploy/helm/sympozium/templates/grafana-dashboard.yaml"),
    ),
    (
        "files/grafana/sympozium.json",
        include_str!("../../../../deploy/helm/sympozium/files/grafana/sympozium.json"),
    ),
    (
        "files/builtin/sympoziumpolicies.yaml",
        include_str!("../../../../deploy/helm/sympozium/files/builtin/sympoziumpolicies.yaml"),
    ),
    (
        "files/builtin/skillpack-code-review.yaml",
        include_str!("../../../../deploy/helm/sympozium/files/builtin/skillpack-code-review.yaml"),
    ),
    (
        "files/builtin/skillpack-github-gitops.yaml",
        include_str!("../../../../deploy/helm/sympozium/files/builtin/skillpack-github-gitops.yaml"),
    ),
    (
        "files/builtin/skillpack-incident-response.yaml",
        include_str!("../../../../deploy/helm/sympozium/files/builtin/skillpack-incident-response.yaml"),
    ),
    (
        "files/builtin/skillpack-k8s-ops.yaml",
        include_str!("../../../../deploy/helm/sympozium/files/builtin/skillpack-k8s-ops.yaml"),
    ),
    (
        "files/builtin/skillpack-llmfit.yaml",
        include_str!("../../../../deploy/helm/sympozium/files/builtin/skillpack-llmfit.yaml"),
    ),
    (
        "files/builtin/skillpack-memory.yaml",
        include_str!("../../../../deploy/helm/sympozium/files/builtin/skillpack-memory.yaml"),
    ),
    (
        "files/builtin/skillpack-software-dev.yaml",
        include_str!("../../../../deploy/helm/sympozium/files/builtin/skillpack-software-dev.yaml"),
    ),
    (
        "files/builtin/skillpack-sre-observability.yaml",
        include_str!("../../../../deploy/helm/sympozium/files/builtin/skillpack-sre-observability.yaml"),
    ),
    (
        "files/builtin/skillpack-web-endpoint.yaml",
        include_str!("../../../../deploy/helm/sympozium/files/builtin/skillpack-web-endpoint.yaml"),
    ),
    (
        "files/builtin/personapack-developer-team.yaml",
        include_str!("../../../../deploy/helm/sympozium/files/builtin/personapack-developer-team.yaml"),
    ),
    (
        "files/builtin/personapack-devops-essentials.yaml",
        include_str!("../../../../deploy/helm/sympozium/files/builtin/personapack-devops-essentials.yaml"),
    ),
    (
        "files/builtin/personapack-observability-mcp-team.yaml",
        include_str!(
            "../../../../deploy/helm/sympozium/files/builtin/personapack-observability-mcp-team.yaml"
        ),
    ),
    (
        "files/builtin/personapack-platform-team.yaml",
        include_str!("../../../../deploy/helm/sympozium/files/builtin/personapack-platform-team.yaml"),
    ),
];

/// The helm to use: `explicit` when given (it must exist), else `helm` when the system
/// finds one on PATH (it answers `helm version`), else none.
pub async fn find_helm(explicit: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(Some(p.to_path_buf()));
        }
        anyhow::bail!("--helm {}: no such file", p.display());
    }
    let found = tokio::process::Command::new("helm")
        .args(["version", "--short"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    Ok(found.then(|| PathBuf::from("helm")))
}

/// Writes the chart into `dir` (which must exist).
pub fn write_chart(dir: &Path) -> anyhow::Result<()> {
    for (path, content) in CHART {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, content).map_err(|e| anyhow::anyhow!("writing {}: {e}", target.display()))?;
    }
    let crds = dir.join("crds");
    std::fs::create_dir_all(&crds)?;
    for (name, yaml) in sympozium_api::crds::rendered()? {
        std::fs::write(crds.join(name), yaml)?;
    }
    Ok(())
}

/// Runs helm; its output is returned, its failure becomes an error carrying helm's words.
async fn helm(helm: &Path, kubeconfig: Option<&Path>, args: &[String]) -> anyhow::Result<String> {
    let mut cmd = tokio::process::Command::new(helm);
    cmd.args(args);
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd.output().await.map_err(|e| anyhow::anyhow!("running {}: {e}", helm.display()))?;
    if !out.status.success() {
        anyhow::bail!(
            "helm {} failed: {}",
            args.first().map(String::as_str).unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The chart values the CLI's own flags stand for; the user's `--set`/`--values` come after
/// and so win. A first install gets the flags' defaults; an upgrade only what was given, so
/// whatever the release has (registry, tag, webhook on or off) stays as it was.
fn flag_values(a: &InstallArgs, upgrade: bool) -> Vec<String> {
    let mut out = Vec::new();
    let registry = a.image_registry.clone().or_else(|| (!upgrade).then(|| DEFAULT_REGISTRY.to_string()));
    if let Some(r) = registry {
        out.push(format!("image.registry={r}"));
    }
    let tag = a.image_tag.clone().or_else(|| (!upgrade).then(|| DEFAULT_TAG.to_string()));
    if let Some(t) = tag {
        out.push(format!("image.tag={t}"));
    }
    if let Some(w) = a.webhook.or((!upgrade).then_some(false)) {
        out.push(format!("webhook.enabled={w}"));
    }
    out
}

/// `install`/`upgrade` (both `helm upgrade --install`) or, with `--dry-run`, the manifests.
pub async fn install(
    helm_bin: &Path,
    kubeconfig: Option<&Path>,
    a: &InstallArgs,
    wait: Duration,
) -> anyhow::Result<i32> {
    let started = Instant::now();
    let mut progress = if a.dry_run { Progress::terminal_only() } else { Progress::stderr() };
    let dir = tempfile::tempdir()?;
    let chart = dir.path().join("sympozium");
    write_chart(&chart)?;
    // An existing release keeps its values (`--reset-then-reuse-values`: the chart's new
    // defaults, then the release's values, then what this command gives).
    let upgrade = !a.dry_run && has_release(helm_bin, kubeconfig, &a.release, &a.system_namespace).await;
    let mut args: Vec<String> = if a.dry_run {
        vec!["template".into(), a.release.clone(), chart.display().to_string(), "--include-crds".into()]
    } else {
        progress.step(&format!("helm upgrade --install {} in {}", a.release, a.system_namespace));
        vec![
            "upgrade".into(),
            "--install".into(),
            a.release.clone(),
            chart.display().to_string(),
            "--create-namespace".into(),
            "--wait".into(),
            "--timeout".into(),
            format!("{}s", wait.as_secs().max(1)),
        ]
    };
    if upgrade {
        args.push("--reset-then-reuse-values".into());
    }
    args.extend(["--namespace".into(), a.system_namespace.clone()]);
    for f in &a.values {
        if !f.is_file() {
            anyhow::bail!("--values {}: no such file", f.display());
        }
        args.extend(["--values".into(), f.display().to_string()]);
    }
    for s in flag_values(a, upgrade).iter().chain(&a.set) {
        if !s.contains('=') {
            anyhow::bail!("--set {s}: expected key=value");
        }
        args.extend(["--set".into(), s.clone()]);
    }
    // The bus's trust chain cannot come from a Go template (no ed25519 signing there): the
    // CLI keeps it in the Secret the chart's NATS and controller read, before Helm runs and
    // again after (an upgrade from a chart that rendered the Secret itself deletes it).
    let trust = if a.dry_run {
        None
    } else {
        let (client, _) = crate::client_for(kubeconfig).await?;
        ensure_namespace(&client, &a.system_namespace).await?;
        let target = super::install::Target {
            namespace: a.system_namespace.clone(),
            registry: String::new(),
            tag: String::new(),
            wait,
            webhook: false,
        };
        let secret = super::install_nats::secret(
            &target,
            &super::install_nats::secrets(&client, &a.system_namespace).await?,
        );
        super::install::apply_json(&client, &secret).await?;
        Some((client, secret))
    };
    let out = helm(helm_bin, kubeconfig, &args).await.inspect_err(|_| progress.abandon())?;
    if let Some((client, secret)) = &trust {
        super::install::apply_json(client, secret).await?;
    }
    if a.dry_run {
        emit!("{out}");
        return Ok(0);
    }
    progress.done();
    let revision = out.lines().find_map(|l| l.strip_prefix("REVISION: ")).unwrap_or("?").trim().to_string();
    let images = match (&a.image_registry, &a.image_tag, upgrade) {
        (None, None, true) => "images as installed".to_string(),
        (r, t, _) => format!(
            "images {}/*:{}",
            r.as_deref().unwrap_or(if upgrade { "<installed>" } else { DEFAULT_REGISTRY }),
            t.as_deref().unwrap_or(if upgrade { "<installed>" } else { DEFAULT_TAG })
        ),
    };
    emitln!(
        "sympozium {} in namespace {} with Helm (release {}, revision {revision}, {} CRDs, {images}) in {:.1}s",
        if upgrade { "upgraded" } else { "installed" },
        a.system_namespace,
        a.release,
        sympozium_api::crds::all().len(),
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}

/// Whether `release` exists in `namespace` (so `uninstall` goes through helm).
pub async fn has_release(helm_bin: &Path, kubeconfig: Option<&Path>, release: &str, namespace: &str) -> bool {
    let args: Vec<String> =
        ["status", release, "--namespace", namespace].iter().map(|s| s.to_string()).collect();
    helm(helm_bin, kubeconfig, &args).await.is_ok()
}

/// Creates `namespace` unless it exists (the trust Secret goes there before Helm runs).
async fn ensure_namespace(client: &kube::Client, namespace: &str) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    let api: kube::Api<Namespace> = kube::Api::all(client.clone());
    if api.get_opt(namespace).await?.is_none() {
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))?;
        api.create(&kube::api::PostParams::default(), &ns).await?;
    }
    Ok(())
}

/// `helm uninstall`; CRDs (and so every Sympozium object) and the namespace only with `crds`.
pub async fn uninstall(
    client: &kube::Client,
    helm_bin: &Path,
    kubeconfig: Option<&Path>,
    release: &str,
    namespace: &str,
    crds: bool,
) -> anyhow::Result<i32> {
    let args: Vec<String> =
        ["uninstall", release, "--namespace", namespace, "--wait"].iter().map(|s| s.to_string()).collect();
    helm(helm_bin, kubeconfig, &args).await?;
    // The bus's trust chain is the CLI's, not the release's.
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), namespace);
    match secrets.delete(super::install_nats::SECRET, &Default::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    if crds {
        use k8s_openapi::api::core::v1::Namespace;
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        use kube::Api;
        use kube::api::DeleteParams;
        let dp = DeleteParams::default();
        let ignore_missing = |r: Result<(), kube::Error>| match r {
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            other => other,
        };
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in sympozium_api::crds::all() {
            ignore_missing(api.delete(&crd.name_any(), &dp).await.map(|_| ()))?;
        }
        ignore_missing(Api::<Namespace>::all(client.clone()).delete(namespace, &dp).await.map(|_| ()))?;
    }
    emitln!(
        "sympozium uninstalled from {namespace} (Helm release {release}){}",
        if crds {
            " (CRDs and the namespace removed)"
        } else {
            " (CRDs and your agents kept; --crds removes them)"
        }
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_embedded_chart_is_the_whole_chart_directory() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/sympozium");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    on_disk.push(path.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        let mut embedded: Vec<String> = CHART.iter().map(|(p, _)| p.to_string()).collect();
        embedded
            .extend(sympozium_api::crds::rendered().unwrap().into_iter().map(|(n, _)| format!("crds/{n}")));
        on_disk.retain(|p| p != ".helmignore");
        on_disk.sort();
        embedded.sort();
        assert_eq!(on_disk, embedded, "a chart file is missing from CHART (install_helm.rs)");
    }

    #[tokio::test]
    async fn a_helm_path_that_does_not_exist_is_an_error_naming_the_flag() {
        let err = find_helm(Some(Path::new("/nonexistent/helm"))).await.unwrap_err().to_string();
        assert!(err.contains("--helm /nonexistent/helm: no such file"), "{err}");
    }
}
