//! Leader failover time of the controller manager (`make bench-failover`): two replicas of
//! the real `sympozium-controller` binary elect a leader on the test plane; the leader is
//! killed with SIGKILL ten times, and each time the benchmark measures
//!
//! * lease: from the kill until the Lease names the standby, and
//! * acting: from the kill until the new leader has acted on work created right after the
//!   kill (an AgentRun got its Job).
//!
//! Prints p50 and max of both. Lease timings default to the shipped ones (15 s / 2 s); pass
//! `--lease-secs N --retry-ms M` to measure others. Needs the test plane (TESTPLANE_KUBECONFIG,
//! or one started with testplane/up.sh) and the controller built beside this example.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark driver

#[path = "../tests/faults_common/mod.rs"]
mod faults_common;

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;
use sympozium_api::AgentRun;
use sympozium_testkit::TestPlane;

use faults_common::Replica;

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (lease_secs, retry_ms, kills) =
        (arg(&args, "--lease-secs", 15), arg(&args, "--retry-ms", 2000), arg(&args, "--kills", 10));
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "bench-failover").await.unwrap().name().to_string();
    faults_common::instance(&client, &ns, "agent").await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);

    let mut started = 0;
    let mut spawn = |replicas: &mut Vec<Replica>| {
        started += 1;
        let identity = format!("bench-{started}");
        replicas.push(Replica::start_with(plane.kubeconfig(), &ns, &identity, None, lease_secs, retry_ms));
    };
    let mut replicas = Vec::new();
    spawn(&mut replicas);
    spawn(&mut replicas);
    println!("failover: {kills} kills, lease {lease_secs}s, retry {retry_ms}ms, namespace {ns}");
    let (mut to_lease, mut to_act) = (Vec::new(), Vec::new());
    for k in 0..kills {
        // Wait for a leader, and for the standby to be up and contending.
        let leader = loop {
            let mut leading = None;
            for (i, r) in replicas.iter().enumerate() {
                if r.leading().await {
                    leading = Some(i);
                }
            }
            if let Some(i) = leading {
                break i;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        tokio::time::sleep(Duration::from_millis(2 * retry_ms)).await;
        let mut dead = replicas.remove(leader);
        dead.kill9();
        let killed_at = Instant::now();
        let run = format!("probe-{k}");
        runs.create(&PostParams::default(), &faults_common::run_body(&run, "agent")).await.unwrap();
        let mut lease_at = None;
        let acted_at = loop {
            if lease_at.is_none() {
                let holder = leases
                    .get("sympozium-controller-leader")
                    .await
                    .ok()
                    .and_then(|l| l.spec?.holder_identity);
                if holder.is_some_and(|h| h != dead.identity) {
                    lease_at = Some(killed_at.elapsed());
                }
            }
            if jobs.get_opt(&run).await.unwrap().is_some() {
                break killed_at.elapsed();
            }
            assert!(
                killed_at.elapsed() < Duration::from_secs(lease_secs * 4 + 60),
                "no takeover after kill {k}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let lease_at = lease_at.unwrap_or(acted_at);
        println!(
            "kill {:>2}: lease {:>6.2}s  acting {:>6.2}s",
            k + 1,
            lease_at.as_secs_f64(),
            acted_at.as_secs_f64()
        );
        to_lease.push(lease_at);
        to_act.push(acted_at);
        drop(dead);
        spawn(&mut replicas);
    }
    to_lease.sort();
    to_act.sort();
    println!(
        "failover over {kills} kills: lease p50 {:.2}s max {:.2}s | acting p50 {:.2}s max {:.2}s",
        percentile(&to_lease, 0.5).as_secs_f64(),
        to_lease.last().unwrap().as_secs_f64(),
        percentile(&to_act, 0.5).as_secs_f64(),
        to_act.last().unwrap().as_secs_f64()
    );
}
