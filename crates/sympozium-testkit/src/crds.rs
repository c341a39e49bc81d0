//! Installs the generated CRDs from `deploy/crds`, and the vendored Gateway API CRDs from
//! `deploy/gateway-api` (web endpoints route through it), by server-side apply, once per
//! process.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::conditions;
use kube::{Api, Client};
use serde::Deserialize;

use crate::{Error, Result, repo_root, wait_for};

/// Reads every CRD from the repository's `deploy/crds` folder.
pub fn committed_crds() -> Result<Vec<CustomResourceDefinition>> {
    crds_in("deploy/crds")
}

/// The Gateway API CRDs (standard channel) vendored in `deploy/gateway-api`.
pub fn gateway_api_crds() -> Result<Vec<CustomResourceDefinition>> {
    crds_in("deploy/gateway-api")
}

fn crds_in(folder: &str) -> Result<Vec<CustomResourceDefinition>> {
    let dir = repo_root().join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| Error::Manifest { path: dir.display().to_string(), reason: e.to_string() })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut crds = Vec::new();
    for path in files {
        let bad = |reason: String| Error::Manifest { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            crds.push(CustomResourceDefinition::deserialize(doc).map_err(|e| bad(e.to_string()))?);
        }
    }
    Ok(crds)
}

/// Server-side applies every committed CRD and waits until each is established.
pub async fn install_crds(client: &Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("sympozium-testkit").force();
    let mut crds = committed_crds()?;
    crds.extend(gateway_api_crds()?);
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(crd)).await?;
    }
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        wait_for(
            &api,
            &name,
            "CRD to be established",
            Duration::from_secs(30),
            conditions::is_crd_established(),
        )
        .await?;
    }
    Ok(())
}
