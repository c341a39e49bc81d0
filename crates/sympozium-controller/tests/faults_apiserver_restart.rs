//! kube-apiserver, then etcd, killed with SIGKILL and started again in the middle of a burst
//! of AgentRuns, with the real `sympozium-controller` binary (leader election on) working
//! the burst. The plane is the test's own (`PrivatePlane`): restarting the shared plane's
//! API server would break every other test running beside it.
//!
//! What a user would notice is counted, as in `faults_controller_kill.rs`: every run
//! Succeeded and names its Job; each run had exactly one Job over its whole life (one UID);
//! no Job exists that no run asked for. On top: the controller process is the one started at
//! the beginning — it rode out both outages without exiting and without anyone restarting
//! it — and it still holds its Lease (no leadership transition). That is the expected
//! behaviour while an outage is shorter than the lease: a leader that cannot renew for a
//! whole lease duration steps down and exits (another replica may have taken over), and its
//! Deployment starts it again; the replicas here get a lease longer than any outage a loaded
//! machine produces, so a restart would be a failure, not noise.
//!
//! Time to recover (kill → API server ready, ready → a new run has its Job, ready → the
//! whole burst settled) is printed, not asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod faults_common;

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use sympozium_testkit::nats::NatsServer;
use sympozium_testkit::private_plane::{Component, PrivatePlane};

use faults_common::{Replica, UidLedger, until};

/// Runs per burst: enough that the restart lands while Jobs are still being created, few
/// enough that a burst settles within a couple of minutes on a loaded two-core machine.
const RUNS: usize = 60;
/// Longer than the worst outage seen here (a restarted kube-apiserver on a loaded machine
/// took over a minute to become ready), so the leader never has to step down.
const LEASE_SECS: u64 = 180;
const RETRY_MS: u64 = 2000;
/// How long the component stays down before it is started again.
const DOWN_FOR: Duration = Duration::from_secs(3);
const IDENTITY: &str = "solo";

async fn namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta { name: Some(name.to_string()), ..Default::default() },
        ..Default::default()
    };
    namespaces.create(&PostParams::default(), &ns).await.unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    until("the namespace's default ServiceAccount", Duration::from_secs(120), || async {
        accounts.get_opt("default").await.map_err(|e| e.to_string())?.ok_or_else(|| "not yet".to_string())
    })
    .await;
}

/// What one restart cost, for the printed table.
struct Recovery {
    component: Component,
    jobs_at_kill: usize,
    down: Duration,
    probe_job: Duration,
    settled: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_api_server_and_etcd_mid_burst_loses_and_doubles_nothing() {
    let plane = PrivatePlane::start("faults-restart").unwrap();
    let client = plane.client().await.unwrap();
    let ns = "faults";
    namespace(&client, ns).await;
    let nats = NatsServer::start().await.unwrap();
    let mut controller =
        Replica::start_with(plane.kubeconfig(), ns, IDENTITY, Some(&nats.url()), LEASE_SECS, RETRY_MS);
    until("the controller leading", Duration::from_secs(180), || async {
        if controller.leading().await { Ok(()) } else { Err("not yet".to_string()) }
    })
    .await;
    faults_common::instance(&client, ns, "agent").await;
    let bus = sympozium_bus::Bus::connect(&nats.url()).await.unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    // Watched for the whole test, across both restarts (the watch restarts with them).
    let jobs_ledger = UidLedger::watch(jobs.clone());

    let mut figures = Vec::new();
    for (component, prefix) in [(Component::ApiServer, "api"), (Component::Etcd, "etcd")] {
        let mut names: Vec<String> = (0..RUNS).map(|i| format!("{prefix}-{i:03}")).collect();
        let create = {
            let (client, names) = (client.clone(), names.clone());
            tokio::spawn(async move { faults_common::create_runs(&client, ns, "agent", &names).await })
        };
        // Restart once a quarter of the burst has its Job: well inside the burst.
        let jobs_at_kill = until("a quarter of the burst with Jobs", Duration::from_secs(240), || async {
            let n = jobs_ledger.snapshot().keys().filter(|n| n.starts_with(prefix)).count();
            if n >= RUNS / 4 { Ok(n) } else { Err(format!("{n} Jobs")) }
        })
        .await;
        let killed = Instant::now();
        eprintln!("{component:?}: kill -9 with {jobs_at_kill} of {RUNS} Jobs created");
        plane.restart(component, DOWN_FOR).await.unwrap();
        let ready = Instant::now();
        eprintln!("{component:?}: back and ready after {:.1} s", (ready - killed).as_secs_f64());

        // A run created once the API server is ready again: how long until the controller
        // (its watches restarted, its backoffs running out) gives it a Job.
        let probe = format!("{prefix}-probe");
        faults_common::create_runs(&client, ns, "agent", std::slice::from_ref(&probe)).await;
        until("the probe run's Job", Duration::from_secs(300), || async {
            jobs.get_opt(&probe).await.map_err(|e| e.to_string())?.ok_or_else(|| "no Job yet".to_string())
        })
        .await;
        let probe_job = ready.elapsed();
        create.await.unwrap();
        names.push(probe);

        faults_common::settle_and_count(
            &client,
            ns,
            "agent",
            &bus,
            &names,
            &jobs_ledger,
            Duration::from_secs(420),
        )
        .await;
        figures.push(Recovery {
            component,
            jobs_at_kill,
            down: ready - killed,
            probe_job,
            settled: ready.elapsed(),
        });
        assert!(controller.alive(), "the controller exited during the {component:?} restart");
    }

    let all = faults_common::runs_by_name(&client, ns).await.unwrap();
    assert_eq!(all.len(), 2 * (RUNS + 1), "no run more, none less");
    let lease =
        Api::<Lease>::namespaced(client.clone(), ns).get("sympozium-controller-leader").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(IDENTITY));
    assert_eq!(spec.lease_transitions, Some(0), "the leader kept its lease through both outages");
    assert!(controller.alive(), "the controller process is the one started at the beginning");

    eprintln!("| restarted | Jobs at kill | kill → ready | ready → new run's Job | ready → burst settled |");
    eprintln!("|---|---|---|---|---|");
    for f in &figures {
        eprintln!(
            "| {:?} | {}/{RUNS} | {:.1} s | {:.1} s | {:.1} s |",
            f.component,
            f.jobs_at_kill,
            f.down.as_secs_f64(),
            f.probe_job.as_secs_f64(),
            f.settled.as_secs_f64()
        );
    }
}
