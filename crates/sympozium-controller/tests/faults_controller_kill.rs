//! `kill -9` of the leading controller manager (the real `sympozium-controller` binary, two
//! replicas with leader election) in the middle of work a user started; the standby takes
//! over, and the test counts what the user sees: nothing lost, nothing doubled.
//!
//! * PersonaPack activation: every persona's instance and schedule exists, exactly once.
//! * A burst of 100 AgentRuns: every run gets exactly one Job and reaches its phase.
//! * Schedule ticks: a kill while a tick's runs are being created, and a tick that falls
//!   while no replica leads, each give exactly one run per schedule.
//!
//! Failover *time* is measured by `make bench-failover`, not asserted here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod faults_common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sympozium_api::{AgentRun, PersonaPack, SympoziumInstance, SympoziumSchedule};
use sympozium_controller::schedule::build::SCHEDULED_TIME_ANNOTATION;
use sympozium_testkit::nats::NatsServer;
use sympozium_testkit::{TestNamespace, TestPlane};

use faults_common::{Replicas, UidLedger, until};

const TAKEOVER: Duration = Duration::from_secs(60);

/// Two replicas on one namespace, and the bus when the test needs it.
struct Stack {
    client: Client,
    ns: TestNamespace,
    nats: Option<NatsServer>,
    replicas: Replicas,
}

impl Stack {
    async fn start(prefix: &str, with_bus: bool) -> Stack {
        let plane = TestPlane::get().unwrap();
        let client = plane.client().await.unwrap();
        let ns = plane.namespace(&client, prefix).await.unwrap();
        let nats = if with_bus { Some(NatsServer::start().await.unwrap()) } else { None };
        let mut replicas = Replicas::start(plane.kubeconfig(), ns.name(), nats.as_ref().map(NatsServer::url));
        replicas.leader(TAKEOVER).await;
        Stack { client, ns, nats, replicas }
    }

    fn ns(&self) -> &str {
        self.ns.name()
    }

    async fn kill_leader(&mut self) {
        self.replicas.kill_leader(TAKEOVER).await;
    }

    /// The Lease names a surviving replica and counts at least one transition per kill.
    async fn assert_lease_moved(&self) {
        let killed = &self.replicas.killed;
        let lease = Api::<Lease>::namespaced(self.client.clone(), self.ns())
            .get("sympozium-controller-leader")
            .await
            .unwrap();
        let spec = lease.spec.unwrap();
        let holder = spec.holder_identity.unwrap_or_default();
        assert!(!killed.contains(&holder), "the Lease still names a killed replica: {holder}");
        assert!(spec.lease_transitions.unwrap_or(0) >= i32::try_from(killed.len()).unwrap());
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), self.ns())
    }
}

async fn names_with_label<K>(api: &Api<K>, selector: &str) -> Result<BTreeSet<String>, String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = api.list(&ListParams::default().labels(selector)).await.map_err(|e| e.to_string())?;
    Ok(list.items.iter().map(|o| o.name_any()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_during_pack_activation_leaves_each_persona_exactly_once() {
    const PERSONAS: usize = 20;
    let mut stack = Stack::start("fault-pack", false).await;
    let instances_ledger = UidLedger::watch(stack.api::<SympoziumInstance>());
    let schedules_ledger = UidLedger::watch(stack.api::<SympoziumSchedule>());

    let personas: Vec<_> = (0..PERSONAS)
        .map(|i| {
            json!({"name": format!("p{i:02}"), "systemPrompt": format!("You are persona {i}."),
                   "model": "gpt-4o",
                   "schedule": {"type": "heartbeat", "interval": "1h", "task": format!("check {i}")},
                   "memory": {"enabled": false}})
        })
        .collect();
    faults_common::apply(
        &stack.client,
        stack.ns(),
        "PersonaPack",
        "personapacks",
        "crew",
        json!({"enabled": true, "authRefs": [{"provider": "openai", "secret": "openai-key"}],
               "personas": personas}),
    )
    .await;

    // Kill as soon as the first persona's instance exists: activation is under way.
    let selector = "sympozium.ai/persona-pack=crew";
    let instances = stack.api::<SympoziumInstance>();
    let at_kill = until("the first persona instance", TAKEOVER, || async {
        let n = names_with_label(&instances, selector).await?.len();
        if n > 0 { Ok(n) } else { Err("none yet".into()) }
    })
    .await;
    stack.kill_leader().await;
    eprintln!("{at_kill} of {PERSONAS} instances existed at the kill");

    let packs = stack.api::<PersonaPack>();
    until("the pack Ready with every persona installed", Duration::from_secs(180), || async {
        let pack = packs.get("crew").await.map_err(|e| e.to_string())?;
        let status = pack.status.unwrap_or_default();
        if status.phase.as_deref() == Some("Ready") && status.installed_count == PERSONAS as i32 {
            Ok(())
        } else {
            Err(format!("phase {:?}, installed {}", status.phase, status.installed_count))
        }
    })
    .await;

    let expected_instances: Vec<String> = (0..PERSONAS).map(|i| format!("crew-p{i:02}")).collect();
    let expected_schedules: Vec<String> =
        expected_instances.iter().map(|i| format!("{i}-schedule")).collect();
    let instance_names = names_with_label(&instances, selector).await.unwrap();
    assert_eq!(instance_names, expected_instances.iter().cloned().collect::<BTreeSet<_>>());
    let schedules = stack.api::<SympoziumSchedule>();
    let schedule_names = names_with_label(&schedules, selector).await.unwrap();
    assert_eq!(schedule_names, expected_schedules.iter().cloned().collect::<BTreeSet<_>>());
    for s in schedules.list(&ListParams::default().labels(selector)).await.unwrap() {
        let persona = s.name_any().trim_end_matches("-schedule").to_string();
        assert_eq!(s.spec.instance_ref, persona, "{} runs the wrong instance", s.name_any());
    }
    // Neither deleted and re-created along the way (a persona's memory and history would go).
    instances_ledger.assert_once("instance", &expected_instances);
    schedules_ledger.assert_once("schedule", &expected_schedules);
    let pack = packs.get("crew").await.unwrap().status.unwrap();
    let listed: BTreeSet<_> = pack.installed_personas.iter().map(|p| p.instance_name.clone()).collect();
    assert_eq!(listed.len(), PERSONAS, "the pack lists each persona once");
    stack.assert_lease_moved().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_during_a_burst_of_100_runs_loses_and_doubles_nothing() {
    const RUNS: usize = 100;
    let mut stack = Stack::start("fault-burst", true).await;
    let jobs_ledger = UidLedger::watch(stack.api::<Job>());
    faults_common::instance(&stack.client, stack.ns(), "agent").await;
    let names: Vec<String> = (0..RUNS).map(|i| format!("burst-{i:03}")).collect();

    let create = {
        let (client, ns, names) = (stack.client.clone(), stack.ns().to_string(), names.clone());
        tokio::spawn(async move { faults_common::create_runs(&client, &ns, "agent", &names).await })
    };
    // Kill once a fifth of the burst has its Job: well inside the burst.
    let jobs = stack.api::<Job>();
    let at_kill = until("a fifth of the burst with Jobs", TAKEOVER * 2, || async {
        let n = jobs.list(&ListParams::default()).await.map_err(|e| e.to_string())?.items.len();
        if n >= RUNS / 5 { Ok(n) } else { Err(format!("{n} Jobs")) }
    })
    .await;
    stack.kill_leader().await;
    eprintln!("{at_kill} of {RUNS} Jobs existed at the kill");
    create.await.unwrap();

    let bus = sympozium_bus::Bus::connect(&stack.nats.as_ref().unwrap().url()).await.unwrap();
    faults_common::settle_and_count(
        &stack.client,
        stack.ns(),
        "agent",
        &bus,
        &names,
        &jobs_ledger,
        Duration::from_secs(240),
    )
    .await;
    assert_eq!(faults_common::runs_by_name(&stack.client, stack.ns()).await.unwrap().len(), RUNS);
    stack.assert_lease_moved().await;
}

/// The tick of each run of each schedule.
async fn ticks_by_schedule(runs: &Api<AgentRun>) -> Result<BTreeMap<String, Vec<String>>, String> {
    let list =
        runs.list(&ListParams::default().labels("sympozium.ai/schedule")).await.map_err(|e| e.to_string())?;
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in list.items {
        let schedule = r.labels()["sympozium.ai/schedule"].clone();
        let tick = r.annotations().get(SCHEDULED_TIME_ANNOTATION).cloned().unwrap_or_default();
        by.entry(schedule).or_default().push(tick);
    }
    for ticks in by.values_mut() {
        ticks.sort();
    }
    Ok(by)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_around_schedule_ticks_fires_each_tick_exactly_once() {
    const SCHEDULES: usize = 12;
    let mut stack = Stack::start("fault-ticks", false).await;
    faults_common::instance(&stack.client, stack.ns(), "agent").await;
    let names: Vec<String> = (0..SCHEDULES).map(|i| format!("every-minute-{i:02}")).collect();
    for name in &names {
        faults_common::apply(
            &stack.client,
            stack.ns(),
            "SympoziumSchedule",
            "sympoziumschedules",
            name,
            json!({"instanceRef": "agent", "schedule": "* * * * *", "task": "tick",
                   "concurrencyPolicy": "Allow"}),
        )
        .await;
    }
    let runs = stack.api::<AgentRun>();
    let runs_ledger = UidLedger::watch(runs.clone());

    // Fault 1: the leader dies while the first tick's runs are being created.
    let (first_tick, at_kill) = until("the first tick's first run", Duration::from_secs(90), || async {
        let by = ticks_by_schedule(&runs).await?;
        let first = by.values().flatten().min().cloned();
        match first {
            Some(t) => Ok((t, by.values().map(Vec::len).sum::<usize>())),
            None => Err("no run yet".into()),
        }
    })
    .await;
    stack.kill_leader().await;
    eprintln!("{at_kill} of {SCHEDULES} runs of the {first_tick} tick existed at the kill");

    // Fault 2: the next tick falls while no replica leads (kill a second before it).
    let t1: Timestamp = first_tick.parse().unwrap();
    let t2 = t1 + SignedDuration::from_secs(60);
    let before = t2.duration_since(Timestamp::now()) - SignedDuration::from_secs(1);
    tokio::time::sleep(before.try_into().unwrap_or(Duration::ZERO)).await;
    stack.kill_leader().await;

    let (t1s, t2s) = (t1.to_string(), t2.to_string());
    let by = until("a run for both ticks on every schedule", Duration::from_secs(90), || async {
        let by = ticks_by_schedule(&runs).await?;
        let missing: Vec<_> = names
            .iter()
            .filter(|n| by.get(*n).is_none_or(|t| !t.contains(&t1s) || !t.contains(&t2s)))
            .collect();
        if missing.is_empty() { Ok(by) } else { Err(format!("missing on {missing:?}")) }
    })
    .await;
    // Let a doubled tick show itself: every schedule has moved on to the third tick.
    let t3 = t2 + SignedDuration::from_secs(60);
    let schedules = stack.api::<SympoziumSchedule>();
    until("every schedule waiting for the third tick", Duration::from_secs(60), || async {
        let list = schedules.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        let behind: Vec<_> = list
            .items
            .iter()
            .filter(|s| s.status.as_ref().and_then(|st| st.next_run_time.as_ref()).map(|t| t.0) < Some(t3))
            .map(|s| s.name_any())
            .collect();
        if behind.is_empty() { Ok(()) } else { Err(format!("behind: {behind:?}")) }
    })
    .await;
    let by_now = ticks_by_schedule(&runs).await.unwrap();

    for name in &names {
        // Ticks after the window (the third may already have fired) are not counted.
        let in_window: Vec<_> = by_now[name].iter().filter(|t| **t <= t2s).cloned().collect();
        assert_eq!(in_window, [t1s.clone(), t2s.clone()], "{name}: one run per tick, no tick missed");
        assert!(by[name].len() >= 2);
        let s = schedules.get(name).await.unwrap();
        let status = s.status.unwrap();
        assert!(
            !status.conditions.iter().any(|c| c.type_ == "MissedTicks"),
            "{name} reports missed ticks: {:?}",
            status.conditions
        );
    }
    let run_names: Vec<String> = runs_ledger.snapshot().keys().cloned().collect();
    runs_ledger.assert_once("run", &run_names);
    stack.assert_lease_moved().await;
}
