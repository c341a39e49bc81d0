//! `scripts/prereqs.sh`, the one list of what `make demo`, `make test` and CI need, on a
//! machine that lacks some of it: a PATH holding every other tool. Without root it installs
//! nothing, stops at once and prints the exact apt command; as root it installs what is
//! missing. `sympozium doctor` names the same missing packages and the same command.
//!
//! apt-get itself is replaced by a recording script on that PATH: installing real packages
//! on a shared machine from a test is not an option, and what matters here is what the
//! script asks apt for and what it does when apt is out of reach.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Tools the script uses itself besides the ones it checks.
const SHELL_TOOLS: &[&str] = &["bash", "env", "sed", "sort", "head", "awk", "tr", "id", "cat"];
/// What the machine is made to lack.
const LACKING: &[&str] = &["bwrap", "busybox", "nats-server"];

fn repo() -> PathBuf {
    sympozium_testkit::repo_root()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A world-readable copy of the script and a PATH directory with links to every tool the
/// script checks for except [`LACKING`], plus a recording `apt-get`.
struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy(repo().join("scripts/prereqs.sh"), dir.path().join("prereqs.sh")).unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o777)).unwrap();
        // Every command the real script checks, as this machine has it.
        let check =
            Command::new("bash").arg(repo().join("scripts/prereqs.sh")).arg("--check").output().unwrap();
        let mut tools: Vec<String> = text(&check.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .filter(|c| c != "root")
            .collect();
        for lacking in LACKING {
            assert!(
                tools.iter().any(|t| t == lacking),
                "the script checks {lacking}: {}",
                text(&check.stdout)
            );
        }
        tools.retain(|t| !LACKING.contains(&t.as_str()));
        tools.extend(SHELL_TOOLS.iter().map(|s| s.to_string()));
        for tool in tools {
            if let Some(path) = which(&tool) {
                std::os::unix::fs::symlink(path, bin.join(&tool)).unwrap();
            }
        }
        // apt-get stand-in: records its arguments; `install` puts the packages' commands on
        // the PATH, as installing them would.
        let record = dir.path().join("apt-get.log");
        let fake = format!(
            "#!/bin/bash\nexport PATH=/usr/sbin:/usr/bin:/sbin:/bin\necho \"$*\" >>'{record}'\nif [[ \"$*\" == *install* ]]; then\n  for t in {tools}; do ln -sf \"$(command -v $t)\" '{bin}'/$t; done\nfi\n",
            record = record.display(),
            tools = LACKING.join(" "),
            bin = bin.display()
        );
        std::fs::write(bin.join("apt-get"), fake).unwrap();
        std::fs::set_permissions(bin.join("apt-get"), std::fs::Permissions::from_mode(0o755)).unwrap();
        Machine { dir }
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn apt_calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("apt-get.log")).unwrap_or_default()
    }

    /// Runs the script with this machine's PATH, as `prefix` (e.g. setpriv) says.
    fn run(&self, prefix: &[&str], args: &[&str]) -> Output {
        let script = self.dir.path().join("prereqs.sh");
        let mut argv: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        argv.extend(["env".into(), format!("PATH={}", self.bin().display()), "bash".into()]);
        argv.push(script.display().to_string());
        argv.extend(args.iter().map(|s| s.to_string()));
        let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
        eprintln!("$ {}\n{}{}", argv.join(" "), text(&out.stdout), text(&out.stderr));
        out
    }
}

/// Where `tool` is: the system's directories first (an unprivileged user can run those),
/// then this process's PATH (toolchains).
fn which(tool: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .map(PathBuf::from)
        .into_iter()
        .chain(
            std::env::var_os("PATH").into_iter().flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>()),
        )
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

const APT: &str = "sudo apt-get update && sudo apt-get install -y bubblewrap busybox nats-server";

#[test]
fn without_root_it_installs_nothing_and_prints_the_command_to_run() {
    let machine = Machine::new();
    // An unprivileged user, as a newcomer without sudo rights runs `make demo`.
    let nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"];
    let out = machine.run(&nobody, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("prereqs: missing busybox bwrap nats-server"), "{stderr}");
    assert!(stderr.lines().any(|l| l.trim() == APT), "the exact command: {stderr}");
    assert_eq!(machine.apt_calls(), "", "apt-get was not run");

    // The demo's variant also says that the local node needs root.
    let out = machine.run(&nobody, &["--root"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("the local node needs root"), "{}", text(&out.stderr));

    // --check only reports, one line per requirement.
    let out = machine.run(&nobody, &["--check"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    for tool in LACKING {
        assert!(stdout.lines().any(|l| l.starts_with(&format!("missing {tool} "))), "{stdout}");
    }
    assert!(stdout.contains("ok curl curl"), "{stdout}");
}

#[test]
fn as_root_it_installs_what_is_missing_and_checks_again() {
    if !is_root() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI runs the tests as root");
        eprintln!("skipped: installing needs root (run the tests as root, as CI does)");
        return;
    }
    let machine = Machine::new();
    let out = machine.run(&[], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let calls = machine.apt_calls();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        ["update -qq", "install -y -qq bubblewrap busybox nats-server"],
        "apt-get update, then one install of exactly the missing packages"
    );
    // Nothing missing any more: a second run installs nothing.
    let out = machine.run(&[], &[]);
    assert!(out.status.success());
    assert_eq!(machine.apt_calls(), calls);
}

#[test]
fn doctor_names_the_missing_packages_and_the_command() {
    let machine = Machine::new();
    let dir = tempfile::tempdir().unwrap();
    // A cluster nobody serves: doctor still checks this machine first.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sympozium"))
        .args(["--kubeconfig", kubeconfig.to_str().unwrap(), "doctor", "--repo"])
        .arg(repo())
        .env("PATH", machine.bin())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "! this machine lacks busybox (busybox), bwrap (bubblewrap), nats-server (nats-server)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("→ {APT}")), "{stdout}");
    assert!(stdout.contains("✗ cluster:"), "{stdout}");
    assert_eq!(out.status.code(), Some(1), "the unreachable cluster fails the check");

    // With everything installed the machine passes.
    let out = Command::new(env!("CARGO_BIN_EXE_sympozium"))
        .args(["--kubeconfig", kubeconfig.to_str().unwrap(), "doctor", "--repo"])
        .arg(repo())
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("✓ this machine: all"), "{}", text(&out.stdout));
}

#[test]
fn dev_up_refuses_at_once_on_a_machine_lacking_prerequisites() {
    let machine = Machine::new();
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sympozium"))
        .args(["dev", "up"])
        .env("PATH", machine.bin())
        .env("SYMPOZIUM_REPO", repo())
        .env("SYMPOZIUM_DEV_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("this machine lacks what the stack needs: busybox (busybox), bwrap (bubblewrap)"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("install them with: {APT}")), "{stderr}");
    assert!(!Path::new(&state.path().join("plane")).exists(), "no control plane was started");
}
