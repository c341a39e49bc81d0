//! How a container runs from an image: its argv, environment and user, Kubernetes-style
//! (the container's settings override the image's defaults).

use std::path::Path;

use k8s_openapi::api::core::v1::{PodSecurityContext, SecurityContext};

use super::{Image, RunConfig};

/// The argv of a container, Kubernetes-style: `command` replaces the entrypoint (and the
/// image's Cmd goes with it), `args` replace the Cmd.
pub fn argv(config: &RunConfig, command: &[String], args: &[String]) -> Vec<String> {
    if !command.is_empty() {
        return command.iter().chain(args).cloned().collect();
    }
    let entry = config.entrypoint.clone().unwrap_or_default();
    let rest = if args.is_empty() { config.cmd.clone().unwrap_or_default() } else { args.to_vec() };
    entry.into_iter().chain(rest).collect()
}

/// The environment: the image's, overridden by the container's (Kubernetes order).
pub fn env(config: &RunConfig, container: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = config
        .env
        .iter()
        .flatten()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .filter(|(k, _)| !container.iter().any(|(ck, _)| ck == k))
        .collect();
    out.extend(container);
    out
}

/// Why a container cannot run as the user its image or security context asks for.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    /// `runAsNonRoot` and the container would run as root.
    #[error(
        "container has runAsNonRoot and the image will run as root (set runAsUser or use a non-root image)"
    )]
    RootRefused,
    /// The image's user name is not in its /etc/passwd.
    #[error("image user {0:?} is not in the image's /etc/passwd")]
    UnknownUser(String),
    /// The image's group name is not in its /etc/group.
    #[error("image group {0:?} is not in the image's /etc/group")]
    UnknownGroup(String),
}

/// The user and group the container runs as: the security context's, else the image's
/// `User` (names looked up in the image's /etc/passwd and /etc/group). `runAsNonRoot` with
/// an image that would run as root is refused, as the kubelet does. None: root.
pub fn user(
    image: &Image,
    c: Option<&SecurityContext>,
    pod: Option<&PodSecurityContext>,
) -> Result<Option<(i64, i64)>, UserError> {
    let (image_uid, image_gid) = image_user(&image.rootfs.dir, image.config.user.as_deref().unwrap_or(""))?;
    let uid = c.and_then(|s| s.run_as_user).or(pod.and_then(|p| p.run_as_user));
    let gid = c.and_then(|s| s.run_as_group).or(pod.and_then(|p| p.run_as_group));
    let non_root = c.and_then(|s| s.run_as_non_root).or(pod.and_then(|p| p.run_as_non_root)) == Some(true);
    let uid = uid.unwrap_or(image_uid);
    let gid = gid.unwrap_or(if uid == image_uid { image_gid } else { uid });
    if non_root && uid == 0 {
        return Err(UserError::RootRefused);
    }
    Ok(if uid == 0 && gid == 0 { None } else { Some((uid, gid)) })
}

fn image_user(rootfs: &Path, user: &str) -> Result<(i64, i64), UserError> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let entry = |name: &str| {
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && (f[0] == name || f[2] == name))
                .then(|| (f[2].parse::<i64>().ok(), f[3].parse::<i64>().ok()))
        })
    };
    let uid = match u.parse::<i64>() {
        Ok(n) => n,
        Err(_) => entry(u).and_then(|(uid, _)| uid).ok_or_else(|| UserError::UnknownUser(u.to_string()))?,
    };
    let gid = match g {
        Some(g) => match g.parse::<i64>() {
            Ok(n) => n,
            Err(_) => {
                let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
                group
                    .lines()
                    .find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() > 2 && f[0] == g).then(|| f[2].parse::<i64>().ok()).flatten()
                    })
                    .ok_or_else(|| UserError::UnknownGroup(g.to_string()))?
            }
        },
        None => entry(u).and_then(|(_, gid)| gid).unwrap_or(uid),
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::oci::tests::tempfile_dir;
    use crate::sandbox::Rootfs;

    fn config() -> RunConfig {
        RunConfig {
            entrypoint: Some(vec!["/usr/local/bin/app".into()]),
            cmd: Some(vec!["serve".into()]),
            env: Some(vec!["PATH=/usr/local/bin".into(), "HOME=/home/app".into()]),
            working_dir: Some("/home/app".into()),
            user: Some("app".into()),
        }
    }

    #[test]
    fn command_replaces_the_entrypoint_and_args_replace_the_cmd() {
        let c = config();
        assert_eq!(argv(&c, &[], &[]), ["/usr/local/bin/app", "serve"]);
        assert_eq!(argv(&c, &[], &["--version".into()]), ["/usr/local/bin/app", "--version"]);
        assert_eq!(argv(&c, &["/other".into()], &[]), ["/other"]);
        assert_eq!(argv(&c, &["/other".into()], &["x".into()]), ["/other", "x"]);
    }

    #[test]
    fn the_containers_environment_overrides_the_images() {
        let out = env(&config(), vec![("HOME".into(), "/data".into()), ("A".into(), "b".into())]);
        assert_eq!(
            out,
            [
                ("PATH".to_string(), "/usr/local/bin".to_string()),
                ("HOME".into(), "/data".into()),
                ("A".into(), "b".into())
            ]
        );
    }

    #[test]
    fn image_users_resolve_by_name_and_run_as_non_root_refuses_root_images() {
        let dir = tempfile_dir();
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0::/root:/sbin/nologin\napp:x:65532:65533::/home/app:/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(dir.join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let image = |user: &str| Image {
            digest: "sha256:x".into(),
            rootfs: Rootfs { dir: dir.clone(), entries: vec![] },
            config: RunConfig { user: Some(user.into()), ..Default::default() },
        };
        assert_eq!(user(&image("app"), None, None), Ok(Some((65532, 65533))));
        assert_eq!(user(&image("65532:65532"), None, None), Ok(Some((65532, 65532))));
        assert_eq!(user(&image("app:staff"), None, None), Ok(Some((65532, 50))));
        assert_eq!(user(&image(""), None, None), Ok(None));
        let pod = PodSecurityContext { run_as_user: Some(1000), ..Default::default() };
        assert_eq!(user(&image("app"), None, Some(&pod)), Ok(Some((1000, 1000))));
        let non_root = SecurityContext { run_as_non_root: Some(true), ..Default::default() };
        assert!(user(&image(""), Some(&non_root), None).unwrap_err().to_string().contains("runAsNonRoot"));
        assert!(user(&image("ghost"), None, None).unwrap_err().to_string().contains("ghost"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
