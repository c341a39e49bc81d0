//! Images → local programs. There is no container runtime: a container's image names the
//! local program that plays its entrypoint. The mapping file is YAML:
//!
//! ```yaml
//! binDir: ../../target/debug          # `{bin}` in programs; relative to this file
//! images:
//!   ghcr.io/sympozium-ai/sympozium/agent-runner: {program: "{bin}/sympozium-agent-runner"}
//!   nats: {program: /usr/sbin/nats-server}
//!   busybox: {program: /usr/bin/busybox, multicall: true}
//! ```
//!
//! A key with a `/` matches the image repository (tag and digest ignored, `docker.io/` and
//! `library/` normalised away); a key without one matches the repository's last path
//! segment, so `agent-runner` maps the runner whatever registry the controller is set to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors reading the mapping file.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    /// The file could not be read.
    #[error("reading image mapping {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid YAML of the expected shape.
    #[error("parsing image mapping {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: serde_yaml::Error,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(default)]
    bin_dir: Option<String>,
    #[serde(default)]
    images: BTreeMap<String, Entry>,
}

/// What one image repository runs.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The program (absolute, or with `{bin}`).
    pub program: String,
    /// A multi-call binary (busybox): `/bin` in the sandbox holds one link per applet and
    /// the container's command names an applet.
    #[serde(default)]
    pub multicall: bool,
    /// The image's default `PATH`.
    #[serde(default)]
    pub path: Option<String>,
    /// Arguments the image's entrypoint takes before the container's args (its CMD when
    /// the container has no args).
    #[serde(default)]
    pub default_args: Vec<String>,
}

/// A resolved image: the program on this machine and how to call it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// Absolute host path of the program.
    pub path: PathBuf,
    /// Multi-call binary (see [`Entry::multicall`]).
    pub multicall: bool,
    /// Default `PATH` in the sandbox.
    pub path_env: String,
    /// Image CMD used when the container gives neither command nor args.
    pub default_args: Vec<String>,
}

/// The loaded mapping.
#[derive(Clone, Debug, Default)]
pub struct ImageMap {
    entries: BTreeMap<String, Program>,
}

/// `PATH` of a program or image that names none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ImageMap {
    /// Reads the mapping file; `bin_dir` (when given) overrides the file's `binDir`.
    pub fn load(path: &Path, bin_dir: Option<&Path>) -> Result<Self, ImagesError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ImagesError::Read { path: path.display().to_string(), source })?;
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let base = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
        Self::parse(&text, &base, bin_dir)
            .map_err(|source| ImagesError::Parse { path: path.display().to_string(), source })
    }

    /// Parses mapping YAML; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path, bin_dir: Option<&Path>) -> Result<Self, serde_yaml::Error> {
        let file: File = serde_yaml::from_str(text)?;
        let bin = match (bin_dir, &file.bin_dir) {
            (Some(b), _) => absolute(base, b),
            (None, Some(b)) => absolute(base, Path::new(b)),
            (None, None) => base.to_path_buf(),
        };
        let entries = file
            .images
            .into_iter()
            .map(|(key, e)| {
                let program = e.program.replace("{bin}", &bin.display().to_string());
                let path_env = e.path.clone().unwrap_or_else(|| {
                    if e.multicall { "/bin:/sbin:/usr/bin:/usr/sbin".into() } else { DEFAULT_PATH.into() }
                });
                let program = Program {
                    path: absolute(base, Path::new(&program)),
                    multicall: e.multicall,
                    path_env,
                    default_args: e.default_args,
                };
                (normalise(&key), program)
            })
            .collect();
        Ok(Self { entries })
    }

    /// The program for `image`, if the mapping names one.
    pub fn resolve(&self, image: &str) -> Option<&Program> {
        let repo = normalise(repository(image));
        if let Some(p) = self.entries.get(&repo) {
            return Some(p);
        }
        let last = repo.rsplit('/').next().unwrap_or(&repo);
        self.entries.iter().find(|(k, _)| !k.contains('/') && k.as_str() == last).map(|(_, p)| p)
    }

    /// Every mapped program (for start-up checks).
    pub fn programs(&self) -> impl Iterator<Item = (&str, &Program)> {
        self.entries.iter().map(|(k, p)| (k.as_str(), p))
    }
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

/// The repository of an image reference: without digest and tag (a `:` after the last `/`).
pub fn repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match (image.rfind(':'), image.rfind('/')) {
        (Some(colon), Some(slash)) if colon > slash => &image[..colon],
        (Some(colon), None) => &image[..colon],
        _ => image,
    }
}

fn normalise(repo: &str) -> String {
    let repo = repo.strip_prefix("docker.io/").unwrap_or(repo);
    let repo = repo.strip_prefix("index.docker.io/").unwrap_or(repo);
    repo.strip_prefix("library/").unwrap_or(repo).to_string()
}

/// The argv a container runs, Kubernetes-style: `command` replaces the entrypoint, `args`
/// replace the CMD. An absolute `command[0]` naming the image's entrypoint (same file name
/// as the program, or any absolute path for a single-program image) becomes the program.
pub fn argv(program: &Program, command: &[String], args: &[String]) -> Vec<String> {
    let exe = program.path.display().to_string();
    if program.multicall {
        // The command names an applet (`sh`, `/bin/sh`); its file name finds the link in /bin.
        let mut out: Vec<String> = command.iter().chain(args.iter()).cloned().collect();
        if out.is_empty() {
            out = program.default_args.clone();
        }
        if let Some(first) = out.first_mut()
            && let Some(name) = Path::new(first.as_str()).file_name().and_then(|n| n.to_str())
        {
            if name != "busybox" {
                *first = format!("/bin/{name}");
            } else {
                *first = exe.clone();
            }
        }
        return out;
    }
    match command.first() {
        None => {
            let rest = if args.is_empty() { program.default_args.clone() } else { args.to_vec() };
            std::iter::once(exe).chain(rest).collect()
        }
        Some(first) => {
            let same_name = Path::new(first).file_name() == program.path.file_name();
            let entry = if same_name || Path::new(first).is_absolute() && !host_tool(first) {
                exe
            } else {
                first.clone()
            };
            std::iter::once(entry).chain(command[1..].iter().cloned()).chain(args.iter().cloned()).collect()
        }
    }
}

/// Absolute commands that name a shell or tool every sandbox has (the host's /usr is
/// bound), rather than the image's own entrypoint.
fn host_tool(path: &str) -> bool {
    ["/bin/", "/usr/bin/", "/sbin/", "/usr/sbin/"].iter().any(|p| path.starts_with(p))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn map() -> ImageMap {
        ImageMap::parse(
            "binDir: /opt/sym\nimages:\n  agent-runner: {program: \"{bin}/sympozium-agent-runner\"}\n  busybox: {program: /usr/bin/busybox, multicall: true}\n  docker.io/library/nats: {program: /usr/sbin/nats-server, defaultArgs: [\"-js\"]}\n",
            Path::new("/etc"),
            None,
        )
        .unwrap()
    }

    #[test]
    fn repositories_match_without_tag_or_digest_and_short_keys_match_any_registry() {
        let m = map();
        assert_eq!(repository("ghcr.io/x/agent-runner:v1"), "ghcr.io/x/agent-runner");
        assert_eq!(repository("localhost:5000/busybox"), "localhost:5000/busybox");
        assert_eq!(repository("busybox@sha256:abc"), "busybox");
        let runner = m.resolve("registry.local/sym/agent-runner:test").unwrap();
        assert_eq!(runner.path, PathBuf::from("/opt/sym/sympozium-agent-runner"));
        assert!(m.resolve("busybox:1.36").unwrap().multicall);
        assert!(m.resolve("nats:2.10").is_some());
        assert!(m.resolve("ghcr.io/x/unknown:v1").is_none());
    }

    #[test]
    fn command_and_args_follow_kubernetes_rules() {
        let m = map();
        let runner = m.resolve("agent-runner").unwrap();
        let exe = "/opt/sym/sympozium-agent-runner".to_string();
        assert_eq!(argv(runner, &[], &[]), vec![exe.clone()]);
        assert_eq!(
            argv(runner, &["/sympozium-agent-runner".into()], &["-v".into()]),
            vec![exe.clone(), "-v".into()]
        );
        assert_eq!(
            argv(runner, &["/bin/sh".into(), "-c".into()], &[]),
            vec!["/bin/sh".to_string(), "-c".into()]
        );
        let nats = m.resolve("nats").unwrap();
        assert_eq!(argv(nats, &[], &[]), vec!["/usr/sbin/nats-server".to_string(), "-js".into()]);
        let bb = m.resolve("busybox").unwrap();
        assert_eq!(argv(bb, &["sh".into(), "-c".into()], &["x".into()]), vec!["/bin/sh", "-c", "x"]);
        assert_eq!(argv(bb, &["/bin/httpd".into()], &[]), vec!["/bin/httpd"]);
    }
}
