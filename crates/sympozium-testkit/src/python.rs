//! Python virtual environments with the official client SDKs the tests call our endpoints
//! with (e.g. `openai`, `mcp`), installed from PyPI with pip, once, under the build's target
//! directory.

use std::path::PathBuf;
use std::process::Command;

use crate::{Error, Result, repo_root};

fn run(cmd: &mut Command) -> Result<()> {
    let what = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| Error::Command { command: what.clone(), reason: e.to_string() })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Command {
        command: what,
        reason: format!(
            "{}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

/// The `python` of the venv `name` holding `packages` (pip requirement strings), created
/// on first use in `<target>/python/<name>`. A venv is made in a temporary folder and moved
/// into place when complete, so an interrupted install is never reused.
pub fn python_venv(name: &str, packages: &[&str]) -> Result<PathBuf> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    let dir = target.join("python").join(name);
    let python = dir.join("bin").join("python");
    if python.is_file() {
        return Ok(python);
    }
    let staging = target.join("python").join(format!(".{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(staging.parent().unwrap_or(&target))
        .map_err(|e| Error::Command { command: "mkdir".into(), reason: e.to_string() })?;
    run(Command::new("python3").args(["-m", "venv"]).arg(&staging))?;
    run(Command::new(staging.join("bin").join("pip")).args(["install", "--quiet"]).args(packages))?;
    // Another test process may have won the race: its venv is as good as ours.
    if std::fs::rename(&staging, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    if python.is_file() {
        Ok(python)
    } else {
        Err(Error::Command {
            command: format!("python venv {name}"),
            reason: "no python after install".into(),
        })
    }
}
