//! The soak (`make soak`) in small: 30 chat messages to 3 instances (Telegram, Slack,
//! Discord), the real controller binary (two replicas) and channel binaries, one NATS
//! restart, one channel pod kill -9 and one controller kill -9 on the way. Every message
//! gets exactly one reply on its own platform, makes exactly one AgentRun, and every run
//! ends Succeeded or Failed.
//!
//! The instances share one namespace, the only one the controller watches, so what other
//! tests left on the plane is not reconciled alongside. Runs the debug binaries `sympozium-controller` and `sympozium-channel`, which
//! `make test` builds first (`cargo build --workspace --bins`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

#[path = "../examples/soak/engine.rs"]
mod engine;

use std::path::PathBuf;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_soak_with_one_fault_of_each_kind_loses_and_doubles_nothing() {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| sympozium_testkit::repo_root().join("target"));
    let bin_dir = target.join("debug");
    for bin in ["sympozium-controller", "sympozium-channel"] {
        assert!(
            bin_dir.join(bin).is_file(),
            "{} missing: run `cargo build --workspace --bins` first",
            bin_dir.join(bin).display()
        );
    }
    let logs = tempfile_dir();
    let report = engine::run(engine::Options {
        messages: 30,
        instances: 3,
        faults: 3,
        rate: 1.0,
        seed: 7,
        settle: Duration::from_secs(120),
        bin_dir,
        log_dir: logs.clone(),
        shared_namespace: true,
    })
    .await
    .unwrap();
    println!("{}", report.table());
    assert_eq!(report.faults.values().sum::<usize>(), 3, "every fault was injected");
    assert_eq!((report.lost, report.duplicates, report.misrouted), (0, 0, 0), "logs in {}", logs.display());
    assert_eq!(report.replies, 30);
    assert_eq!((report.runs, report.duplicate_runs), (30, 0), "one run per message");
    assert_eq!(report.terminal_runs, 30, "every run finished");
    assert!(report.clean());
    let _ = std::fs::remove_dir_all(logs);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sympozium-soak-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
