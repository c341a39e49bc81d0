//! Host access for skill sidecars: host-path mounts, privileged or root sidecars,
//! host network and PID namespace. Honoured only when the run's policy sets
//! `sandboxPolicy.allowHostMounts: true`; otherwise [`withhold`] strips it before the Job
//! is built. Pure functions, no client.

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use sympozium_api::skillpack::HostAccess;

use super::pod::ResolvedSidecar;

/// The sidecar's host access when it is turned on.
pub fn enabled(s: &ResolvedSidecar) -> Option<&HostAccess> {
    s.sidecar.host_access.as_ref().filter(|h| h.enabled == Some(true))
}

/// Drops host access from every sidecar unless `allowed`; returns the packs that asked for
/// it and were refused.
pub fn withhold(sidecars: &mut [ResolvedSidecar], allowed: bool) -> Vec<String> {
    if allowed {
        return Vec::new();
    }
    let mut refused = Vec::new();
    for s in sidecars.iter_mut() {
        if enabled(s).is_some() {
            refused.push(s.pack.clone());
        }
        s.sidecar.host_access = None;
    }
    refused
}

/// Volume name of the `index`th host mount of `pack`: lower-case, every character outside
/// `[a-z0-9]` replaced by `-`, trimmed of `-`, at most 63 characters, `host-mount` if empty.
pub fn volume_name(pack: &str, index: usize) -> String {
    let raw = format!("host-{pack}-{index}").to_ascii_lowercase();
    let replaced: String =
        raw.chars().map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' }).collect();
    let trimmed: String = replaced.trim_matches('-').chars().take(63).collect();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    if trimmed.is_empty() { "host-mount".into() } else { trimmed }
}

fn usable_mounts(s: &ResolvedSidecar) -> impl Iterator<Item = (usize, &sympozium_api::skillpack::HostMount)> {
    enabled(s)
        .into_iter()
        .flat_map(|h| h.mounts.iter().enumerate())
        .filter(|(_, m)| !m.host_path.trim().is_empty() && !m.mount_path.trim().is_empty())
}

/// The sidecar's host-path mounts.
pub fn mounts(s: &ResolvedSidecar) -> Vec<VolumeMount> {
    usable_mounts(s)
        .map(|(i, m)| VolumeMount {
            name: volume_name(&s.pack, i),
            mount_path: m.mount_path.clone(),
            read_only: Some(m.read_only),
            ..Default::default()
        })
        .collect()
}

/// The pod's host-path volumes for every sidecar.
pub fn volumes(sidecars: &[ResolvedSidecar]) -> Vec<Volume> {
    sidecars
        .iter()
        .flat_map(|s| {
            usable_mounts(s).map(|(i, m)| Volume {
                name: volume_name(&s.pack, i),
                host_path: Some(HostPathVolumeSource { path: m.host_path.clone(), type_: None }),
                ..Default::default()
            })
        })
        .collect()
}

/// The sidecar's security context when host access asks for privileges or root; `None`
/// keeps the hardened default.
pub fn security_context(s: &ResolvedSidecar) -> Option<SecurityContext> {
    let h = enabled(s)?;
    let privileged = h.privileged == Some(true);
    let root = h.run_as_root == Some(true);
    if !privileged && !root {
        return None;
    }
    let mut ctx = SecurityContext::default();
    if privileged {
        ctx.privileged = Some(true);
        ctx.allow_privilege_escalation = Some(true);
        ctx.seccomp_profile = Some(SeccompProfile { type_: "Unconfined".into(), ..Default::default() });
    }
    if root {
        ctx.run_as_user = Some(0);
        ctx.run_as_non_root = Some(false);
    }
    Some(ctx)
}

/// Whether the pod joins the host network.
pub fn host_network(sidecars: &[ResolvedSidecar]) -> bool {
    sidecars.iter().filter_map(enabled).any(|h| h.host_network == Some(true))
}

/// Whether the pod joins the host PID namespace.
pub fn host_pid(sidecars: &[ResolvedSidecar]) -> bool {
    sidecars.iter().filter_map(enabled).any(|h| h.host_pid == Some(true))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn node_debugger() -> ResolvedSidecar {
        ResolvedSidecar {
            pack: "Node_Debug".into(),
            sidecar: serde_json::from_value(json!({"image": "x", "hostAccess": {"enabled": true,
                "hostNetwork": true, "hostPID": true, "privileged": true, "runAsRoot": true,
                "mounts": [{"hostPath": "/var/log", "mountPath": "/host/log"},
                           {"hostPath": "/run", "mountPath": "/host/run", "readOnly": false}]}}))
            .unwrap(),
            params: Default::default(),
        }
    }

    #[test]
    fn allowed_host_access_becomes_mounts_volumes_and_privileges() {
        let s = node_debugger();
        let m = mounts(&s);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].name.as_str(), m[0].read_only), ("host-node-debug-0", Some(true)));
        assert_eq!((m[1].mount_path.as_str(), m[1].read_only), ("/host/run", Some(false)));
        let v = volumes(std::slice::from_ref(&s));
        assert_eq!(v[1].host_path.as_ref().unwrap().path, "/run");
        let ctx = security_context(&s).unwrap();
        assert_eq!(
            (ctx.privileged, ctx.run_as_user, ctx.run_as_non_root),
            (Some(true), Some(0), Some(false))
        );
        assert_eq!(ctx.seccomp_profile.unwrap().type_, "Unconfined");
        assert!(host_network(std::slice::from_ref(&s)) && host_pid(std::slice::from_ref(&s)));
    }

    #[test]
    fn without_the_policy_host_access_is_withheld_and_reported() {
        let mut sidecars = vec![node_debugger()];
        assert!(withhold(&mut sidecars, true).is_empty());
        assert!(enabled(&sidecars[0]).is_some(), "allowed: kept");
        assert_eq!(withhold(&mut sidecars, false), ["Node_Debug"]);
        assert!(mounts(&sidecars[0]).is_empty() && security_context(&sidecars[0]).is_none());
        assert!(!host_network(&sidecars) && !host_pid(&sidecars));
    }

    #[test]
    fn volume_names_are_sanitised() {
        assert_eq!(volume_name("k8s.ops", 1), "host-k8s-ops-1");
        assert_eq!(volume_name(&"x".repeat(80), 0).len(), 63);
    }
}
