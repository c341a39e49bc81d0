//! `make images` (scripts/images.sh) with the real buildah: one OCI archive per component,
//! each holding only its binary, the libraries it loads, the non-root user and the CA
//! bundle. Every image is opened as a runtime would (index -> manifest -> config -> layer),
//! and its entrypoint runs `--version` from the unpacked rootfs alone (chroot, as the
//! image's user), so a missing library or a wrong entrypoint fails here, not on a cluster.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Image -> the binary its entrypoint runs.
const IMAGES: &[(&str, &str)] = &[
    ("agent-runner", "sympozium-agent-runner"),
    ("apiserver", "sympozium-apiserver"),
    ("channel-discord", "sympozium-channel"),
    ("channel-slack", "sympozium-channel"),
    ("channel-telegram", "sympozium-channel"),
    ("channel-whatsapp", "sympozium-channel"),
    ("cli", "sympozium"),
    ("controller", "sympozium-controller"),
    ("ipc-bridge", "sympozium-ipc-bridge"),
    ("mcp-bridge", "sympozium-mcp-bridge"),
    ("memory-server", "sympozium-memory-server"),
    ("skill-memory", "sympozium-memory-server"),
    ("tool-executor", "tool-executor"),
    ("web-proxy", "sympozium-web-proxy"),
    ("webhook", "sympozium-webhook"),
];

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(digest.strip_prefix("sha256:").unwrap())
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn every_component_image_runs_its_binary_as_a_non_root_user_from_its_own_files() {
    assert!(
        is_root(),
        "building images with buildah (vfs storage, chroot isolation) needs root, as `make images` does"
    );
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_sympozium")).parent().unwrap().to_path_buf();
    let out = tempfile::tempdir().unwrap();
    let script = repo().join("scripts/images.sh");
    run(Command::new("bash")
        .arg(&script)
        .args(["--profile", "debug", "--no-build", "--out"])
        .arg(out.path())
        .arg("--bin-dir")
        .arg(&bin_dir));
    let version = env!("CARGO_PKG_VERSION");
    let revision = run(Command::new("git").arg("-C").arg(repo()).args(["rev-parse", "HEAD"]));
    let revision = revision.trim();

    for (image, binary) in IMAGES {
        let archive = out.path().join(format!("{image}.tar"));
        let size = std::fs::metadata(&archive).unwrap_or_else(|_| panic!("{image}.tar missing")).len();
        eprintln!("{image}: {:.1} MiB", size as f64 / 1048576.0);
        let layout = out.path().join(format!("{image}.layout"));
        std::fs::create_dir(&layout).unwrap();
        run(Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&layout));
        assert!(std::fs::read_to_string(layout.join("oci-layout")).unwrap().contains("imageLayoutVersion"));

        let index = json(&layout.join("index.json"));
        let entry = &index["manifests"][0];
        assert_eq!(
            entry["annotations"]["org.opencontainers.image.ref.name"],
            format!("{image}:{version}").as_str(),
            "{image}"
        );
        let digest = entry["digest"].as_str().unwrap();
        assert_eq!(
            std::fs::read_to_string(out.path().join(format!("{image}.digest"))).unwrap().trim(),
            digest
        );
        let manifest = json(&blob(&layout, digest));
        let annotations = &manifest["annotations"];
        assert_eq!(annotations["org.opencontainers.image.version"], version, "{image}");
        assert!(
            annotations["org.opencontainers.image.revision"].as_str().unwrap().starts_with(revision),
            "{image}: {annotations}"
        );
        assert_eq!(annotations["org.opencontainers.image.title"], format!("sympozium-{image}").as_str());
        assert!(annotations["org.opencontainers.image.source"].as_str().unwrap().starts_with("https://"));
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "{image}: one layer, built from scratch (no base image)");

        let config = json(&blob(&layout, manifest["config"]["digest"].as_str().unwrap()));
        let entrypoint = format!("/usr/local/bin/{binary}");
        assert_eq!(config["config"]["Entrypoint"], serde_json::json!([entrypoint]), "{image}");
        assert_eq!(config["config"]["User"], "65532:65532", "{image}");
        assert_eq!(config["created"], "1970-01-01T00:00:00Z", "{image}: reproducible");

        let rootfs = out.path().join(format!("{image}.rootfs"));
        std::fs::create_dir(&rootfs).unwrap();
        run(Command::new("tar")
            .arg("-xf")
            .arg(blob(&layout, layers[0]["digest"].as_str().unwrap()))
            .arg("-C")
            .arg(&rootfs));
        let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
        assert!(passwd.lines().any(|l| l.starts_with("sympozium:x:65532:65532:")), "{passwd}");
        assert!(passwd.lines().all(|l| l.ends_with(":/sbin/nologin")), "no login shell: {passwd}");
        for shell in ["bin/sh", "bin/bash", "usr/bin/sh", "bin/busybox"] {
            assert!(!rootfs.join(shell).exists(), "{image}: {shell} in the image");
        }
        assert!(rootfs.join("etc/ssl/certs/ca-certificates.crt").is_file(), "{image}: CA bundle");
        // Only the binary, libraries, and the few files above: nothing else came along.
        let files = run(Command::new("find").arg(&rootfs).args(["-type", "f"]));
        for file in files.lines() {
            let rel = file.strip_prefix(rootfs.to_str().unwrap()).unwrap();
            let expected = rel == entrypoint
                || rel.starts_with("/lib")
                || rel.starts_with("/usr/lib")
                || ["/etc/passwd", "/etc/group", "/etc/ssl/certs/ca-certificates.crt"].contains(&rel);
            assert!(expected, "{image}: unexpected file {rel}");
        }

        // The entrypoint from the image's own files, as the image's user.
        let out = run(Command::new("chroot")
            .arg("--userspec=65532:65532")
            .arg(&rootfs)
            .arg(&entrypoint)
            .arg("--version"));
        assert!(out.contains(version), "{image}: `{entrypoint} --version` printed {out:?}");
        if *image == "mcp-bridge" {
            // The path stdio MCPServer pods run the adapter by (`inject-adapter`).
            let out = run(Command::new("chroot")
                .arg("--userspec=65532:65532")
                .arg(&rootfs)
                .arg("/usr/local/bin/mcp-bridge")
                .arg("--version"));
            assert!(
                out.contains(version),
                "mcp-bridge: `/usr/local/bin/mcp-bridge --version` printed {out:?}"
            );
        }
        std::fs::remove_dir_all(&rootfs).unwrap();
        std::fs::remove_dir_all(&layout).unwrap();
    }
}

#[test]
fn an_image_build_is_reproducible() {
    assert!(is_root(), "buildah needs root here, as `make images` does");
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_sympozium")).parent().unwrap().to_path_buf();
    let script = repo().join("scripts/images.sh");
    let digests: Vec<String> = (0..2)
        .map(|_| {
            let out = tempfile::tempdir().unwrap();
            run(Command::new("bash")
                .arg(&script)
                .args(["--profile", "debug", "--no-build", "--out"])
                .arg(out.path())
                .arg("--bin-dir")
                .arg(&bin_dir)
                .arg("tool-executor"));
            let archive = std::fs::read(out.path().join("tool-executor.tar")).unwrap();
            let sum = run(Command::new("sha256sum").arg(out.path().join("tool-executor.tar")));
            assert!(!archive.is_empty());
            sum.split_whitespace().next().unwrap().to_string()
        })
        .collect();
    assert_eq!(digests[0], digests[1], "two builds of the same binary give byte-identical archives");
}
