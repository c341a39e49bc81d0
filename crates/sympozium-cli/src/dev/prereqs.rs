//! What this machine needs for the one-machine stack, as `scripts/prereqs.sh --check`
//! reports it: the script holds the one list (Debian packages, toolchains) that `make demo`,
//! `make test`, CI, `sympozium dev up` and `sympozium doctor` all go by.

use std::path::Path;
use std::process::Command;

/// One requirement and whether the machine meets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// Met.
    pub ok: bool,
    /// The command (`bwrap`, `go`) or `root`.
    pub command: String,
    /// The Debian package providing it, for packages apt installs.
    pub package: Option<String>,
    /// What was found, or what to do.
    pub detail: String,
}

/// The script, relative to the checkout.
pub const SCRIPT: &str = "scripts/prereqs.sh";

/// Runs `scripts/prereqs.sh --check` (with `--root` when root is required) of `repo`.
pub fn check(repo: &Path, root: bool) -> anyhow::Result<Vec<Requirement>> {
    let script = repo.join(SCRIPT);
    if !script.is_file() {
        anyhow::bail!("{} not found: pass --repo <Sympozium checkout>", script.display());
    }
    let mut cmd = Command::new("bash");
    cmd.arg(&script).arg("--check");
    if root {
        cmd.arg("--root");
    }
    let out = cmd.output().map_err(|e| anyhow::anyhow!("running {}: {e}", script.display()))?;
    let found = parse(&String::from_utf8_lossy(&out.stdout));
    if found.is_empty() {
        anyhow::bail!(
            "{} --check reported nothing: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(found)
}

/// Parses the `--check` lines: `ok <command> <detail>`, `missing <command> <package>`,
/// `needs <command> <what to do>`.
pub fn parse(text: &str) -> Vec<Requirement> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ' ');
            let (status, command, rest) = (parts.next()?, parts.next()?, parts.next().unwrap_or_default());
            let (ok, package) = match status {
                "ok" => (true, None),
                "missing" => (false, Some(rest.to_string())),
                "needs" => (false, None),
                _ => return None,
            };
            Some(Requirement { ok, command: command.into(), package, detail: rest.into() })
        })
        .collect()
}

/// The apt command installing every missing package, if any is missing.
pub fn apt_command(found: &[Requirement]) -> Option<String> {
    let mut packages: Vec<&str> =
        found.iter().filter(|r| !r.ok).filter_map(|r| r.package.as_deref()).collect();
    packages.sort_unstable();
    packages.dedup();
    (!packages.is_empty())
        .then(|| format!("sudo apt-get update && sudo apt-get install -y {}", packages.join(" ")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn check_lines_become_requirements_and_one_apt_command() {
        let found = parse(
            "ok curl curl\nmissing bwrap bubblewrap\nmissing setsid util-linux\nmissing nsenter util-linux\n\
             needs go version 1.22 is older than 1.26 (https://go.dev/doc/install)\nnoise\n",
        );
        assert_eq!(found.len(), 5);
        assert!(found[0].ok && found[0].package.is_none());
        assert_eq!(found[1].package.as_deref(), Some("bubblewrap"));
        assert_eq!(found[4].command, "go");
        assert!(found[4].detail.starts_with("version 1.22"));
        assert_eq!(
            apt_command(&found).unwrap(),
            "sudo apt-get update && sudo apt-get install -y bubblewrap util-linux"
        );
        assert_eq!(apt_command(&found[..1]), None);
    }

    #[test]
    fn the_checkouts_script_reports_every_requirement() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let found = check(&repo, false).unwrap();
        for command in ["bwrap", "busybox", "nats-server", "go", "cargo"] {
            assert!(found.iter().any(|r| r.command == command), "{command} is checked: {found:?}");
        }
    }
}
