//! Start-up plumbing every Sympozium process that talks to Kubernetes shares: where the
//! configuration comes from. When to stop is `sympozium_telemetry::shutdown`, shared by
//! processes without a Kubernetes client too.

use std::path::{Path, PathBuf};

use kube::config::{InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError};

/// Why no Kubernetes configuration could be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KubeConfigError {
    /// The kubeconfig file could not be read or parsed.
    #[error("cannot read kubeconfig {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KubeconfigError,
    },
    /// The kubeconfig was read but names no usable cluster, user or context.
    #[error("kubeconfig {}: {source}", path.display())]
    Load {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KubeconfigError,
    },
    /// No kubeconfig was given and neither `$KUBECONFIG`, `~/.kube/config` nor the
    /// in-cluster environment provides one.
    #[error("no Kubernetes configuration (in-cluster, KUBECONFIG or --kubeconfig): {0}")]
    Infer(#[source] InferConfigError),
}

/// The Kubernetes configuration of `kubeconfig` (its current context) when given, else
/// the inferred one (`$KUBECONFIG`, `~/.kube/config`, or the in-cluster environment).
pub async fn kube_config(kubeconfig: Option<&Path>) -> Result<kube::Config, KubeConfigError> {
    let Some(path) = kubeconfig else {
        return kube::Config::infer().await.map_err(KubeConfigError::Infer);
    };
    let file =
        Kubeconfig::read_from(path).map_err(|source| KubeConfigError::Read { path: path.into(), source })?;
    kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(|source| KubeConfigError::Load { path: path.into(), source })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_missing_kubeconfig_is_named_in_the_error() {
        let path = Path::new("/nonexistent/sympozium/kubeconfig");
        let error = kube_config(Some(path)).await.unwrap_err();
        assert!(matches!(error, KubeConfigError::Read { .. }), "{error:?}");
        assert!(error.to_string().starts_with("cannot read kubeconfig /nonexistent/sympozium/kubeconfig: "));
    }
}
