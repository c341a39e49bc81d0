//! `doctor`: checks what Sympozium needs and says, for each problem, what to do.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use sympozium_api::{PersonaPack, SympoziumInstance};

use crate::output::emitln;

/// One finding.
struct Finding {
    ok: bool,
    /// Worth knowing but not a failure (the exit code stays 0).
    warning: bool,
    what: String,
    fix: Option<String>,
}

fn good(what: impl Into<String>) -> Finding {
    Finding { ok: true, warning: false, what: what.into(), fix: None }
}

fn bad(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding { ok: false, warning: false, what: what.into(), fix: Some(fix.into()) }
}

fn warn(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding { ok: true, warning: true, what: what.into(), fix: Some(fix.into()) }
}

/// The event bus: NATS as `sympozium install` deploys it. A controller run outside the cluster
/// may use another NATS, so a missing Deployment is a warning; one that is not ready is not.
async fn nats(client: &Client, system_ns: &str) -> anyhow::Result<Finding> {
    let deployment = Api::<Deployment>::namespaced(client.clone(), system_ns).get_opt("nats").await?;
    Ok(match deployment {
        None => warn(
            format!(
                "NATS: no nats Deployment in {system_ns}; chat channels, streaming and approvals need the event bus"
            ),
            format!(
                "sympozium install --system-namespace {system_ns}, or point the controller's --nats-url at your NATS"
            ),
        ),
        Some(d) if d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0) > 0 => {
            good(format!("NATS: running in {system_ns}"))
        }
        Some(_) => bad(
            format!("NATS: the nats Deployment in {system_ns} has no ready pod"),
            format!(
                "kubectl -n {system_ns} describe deployment nats; kubectl -n {system_ns} logs deploy/nats"
            ),
        ),
    })
}

/// The admission webhook (policy checks at admission); without it the controller still
/// enforces policies when runs start, but users learn of a refusal later.
async fn webhook(client: &Client) -> anyhow::Result<Finding> {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    let configs =
        Api::<ValidatingWebhookConfiguration>::all(client.clone()).list(&ListParams::default()).await?;
    let registered =
        configs.iter().flat_map(|c| c.webhooks.iter().flatten()).any(|w| w.name == "vagentpod.sympozium.ai");
    Ok(if registered {
        good("webhook: vagentpod.sympozium.ai registered")
    } else {
        warn(
            "webhook: not registered; policies are checked when runs start instead of at admission",
            "kubectl apply -f deploy/webhook/webhook.yaml (needs cert-manager), see crates/sympozium-webhook/README.md",
        )
    })
}

/// The expected CRDs that are not installed and established.
fn missing_crds(expected: &[String], installed: &[CustomResourceDefinition]) -> Vec<String> {
    let established = |name: &str| {
        installed.iter().any(|c| {
            c.name_any() == name
                && c.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
        })
    };
    expected.iter().filter(|n| !established(n)).cloned().collect()
}

async fn crds(client: &Client) -> anyhow::Result<Finding> {
    let expected: Vec<String> =
        sympozium_api::crds::all().into_iter().filter_map(|c| c.metadata.name).collect();
    let installed =
        Api::<CustomResourceDefinition>::all(client.clone()).list(&ListParams::default()).await?.items;
    let missing = missing_crds(&expected, &installed);
    Ok(if missing.is_empty() {
        good(format!("CRDs: all {} installed", expected.len()))
    } else {
        bad(
            format!("CRDs missing: {}", missing.join(", ")),
            "install them: sympozium crds | kubectl apply --server-side -f -",
        )
    })
}

async fn controller(client: &Client, system_ns: &str) -> anyhow::Result<Finding> {
    let lease =
        Api::<Lease>::namespaced(client.clone(), system_ns).get_opt("sympozium-controller-leader").await?;
    let fresh = lease
        .and_then(|l| l.spec)
        .and_then(|s| s.renew_time)
        .is_some_and(|t| jiff::Timestamp::now().duration_since(t.0).as_secs() < 60);
    let deployment = Api::<Deployment>::namespaced(client.clone(), system_ns)
        .get_opt("sympozium-controller-manager")
        .await?;
    let ready = deployment.and_then(|d| d.status).and_then(|s| s.ready_replicas).unwrap_or(0) > 0;
    Ok(if fresh || ready {
        good(format!("controller: running in {system_ns}"))
    } else {
        bad(
            format!(
                "controller: not running in {system_ns} (no ready sympozium-controller-manager, no fresh leader lease)"
            ),
            format!(
                "start it (sympozium-controller --leader-elect --system-namespace {system_ns}) or check its pods' logs"
            ),
        )
    })
}

async fn teams(client: &Client, ns: &str) -> anyhow::Result<Vec<Finding>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut out = Vec::new();
    for pack in Api::<PersonaPack>::namespaced(client.clone(), ns).list(&ListParams::default()).await? {
        if pack.spec.enabled != Some(true) {
            continue;
        }
        for r in pack.spec.auth_refs.iter().filter(|r| !r.secret.trim().is_empty()) {
            if secrets.get_metadata_opt(&r.secret).await?.is_none() {
                out.push(bad(
                    format!(
                        "pack {}: its provider Secret \"{}\" is missing in {ns}",
                        pack.name_any(),
                        r.secret
                    ),
                    format!(
                        "sympozium packs activate {} --provider <provider> --api-key … -n {ns}",
                        pack.name_any()
                    ),
                ));
            }
        }
    }
    for inst in Api::<SympoziumInstance>::namespaced(client.clone(), ns).list(&ListParams::default()).await? {
        for ch in inst.status.iter().flat_map(|s| s.channels.iter()).filter(|c| c.status == "Error") {
            out.push(bad(
                format!(
                    "instance {}: channel {}: {}",
                    inst.name_any(),
                    ch.type_,
                    ch.message.clone().unwrap_or_default()
                ),
                "create the channel's Secret, or fix spec.channels[].configRef.secret",
            ));
        }
    }
    if out.is_empty() {
        out.push(good(format!("teams and instances in {ns}: nothing missing")));
    }
    Ok(out)
}

/// This machine's prerequisites of the one-machine stack (`sympozium dev up`, `make demo`,
/// `make test`), as `scripts/prereqs.sh` lists them. Printed as warnings: a cluster
/// elsewhere needs none of them.
pub fn machine(repo: &std::path::Path) {
    let needed = "`sympozium dev up`, `make demo` and `make test` need";
    let findings = match crate::dev::prereqs::check(repo, true) {
        Err(e) => {
            vec![warn(format!("this machine: prerequisites not checked ({e:#})"), "pass --repo <checkout>")]
        }
        Ok(found) => {
            let mut out = Vec::new();
            let packages: Vec<_> = found.iter().filter(|r| !r.ok && r.package.is_some()).collect();
            if let Some(apt) = crate::dev::prereqs::apt_command(&found) {
                let names: Vec<_> = packages
                    .iter()
                    .map(|r| format!("{} ({})", r.command, r.package.as_deref().unwrap_or_default()))
                    .collect();
                out.push(warn(format!("this machine lacks {}: {needed} them", names.join(", ")), apt));
            }
            for r in found.iter().filter(|r| !r.ok && r.package.is_none()) {
                let what = if r.command == "root" {
                    "this machine: not running as root; the local node of `sympozium dev up` needs root for a network namespace per pod".to_string()
                } else {
                    format!("this machine: {}: {needed} it", r.command)
                };
                out.push(warn(what, r.detail.clone()));
            }
            if out.is_empty() {
                out.push(good(format!(
                    "this machine: all {} prerequisites of `sympozium dev up`, `make demo` and `make test` present",
                    found.len()
                )));
            }
            out
        }
    };
    print(&findings);
}

fn print(findings: &[Finding]) {
    for f in findings {
        emitln!(
            "{} {}",
            if f.warning {
                "!"
            } else if f.ok {
                "✓"
            } else {
                "✗"
            },
            f.what
        );
        if let Some(fix) = &f.fix {
            emitln!("    → {fix}");
        }
    }
}

/// Runs every check; exit code 1 when something needs fixing.
pub async fn doctor(client: &Client, ns: &str, system_ns: &str) -> anyhow::Result<i32> {
    let mut findings = vec![good("cluster: reachable")];
    findings.push(crds(client).await?);
    findings.push(controller(client, system_ns).await?);
    let crds_ok = findings[1].ok;
    findings.push(nats(client, system_ns).await?);
    findings.push(webhook(client).await?);
    if crds_ok {
        findings.extend(teams(client, ns).await?);
    }
    print(&findings);
    Ok(if findings.iter().all(|f| f.ok) { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn missing_or_unestablished_crds_are_named() {
        let expected = vec!["agentruns.sympozium.ai".to_string(), "skillpacks.sympozium.ai".to_string()];
        let crd = |name: &str, established: &str| -> CustomResourceDefinition {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "spec": {"group": "sympozium.ai", "names": {"kind": "K", "plural": "k"}, "scope": "Namespaced", "versions": []},
                "status": {"conditions": [{"type": "Established", "status": established}]}}))
            .unwrap()
        };
        assert_eq!(missing_crds(&expected, &[]), expected);
        assert_eq!(
            missing_crds(
                &expected,
                &[crd("agentruns.sympozium.ai", "True"), crd("skillpacks.sympozium.ai", "False")]
            ),
            ["skillpacks.sympozium.ai"]
        );
    }
}
