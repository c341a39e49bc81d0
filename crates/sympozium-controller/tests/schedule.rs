//! The SympoziumSchedule controller on the real test control plane, driven by a manual
//! clock: one run per tick, the three concurrency policies, restarts without duplicates or
//! losses, one catch-up run after downtime, and clear errors for bad expressions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sympozium_api::{AgentRun, SympoziumSchedule};
use sympozium_controller::clock::ManualClock;
use sympozium_controller::context::Context;
use sympozium_controller::schedule;
use sympozium_controller::settings::Settings;
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::{TestPlane, wait_for};

const WAIT: Duration = Duration::from_secs(30);

struct Harness {
    client: Client,
    ns: String,
    clock: Arc<ManualClock>,
    controller: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(c) = self.controller.take() {
            c.abort();
        }
    }
}

impl Harness {
    async fn new(prefix: &str) -> Self {
        let plane = TestPlane::get().unwrap();
        let client = plane.client().await.unwrap();
        let ns = plane.namespace(&client, prefix).await.unwrap().name().to_string();
        let clock = Arc::new(ManualClock::new(Timestamp::now()));
        let mut h = Harness { client, ns, clock, controller: None };
        h.start();
        h.instance().await;
        h
    }

    fn start(&mut self) {
        let ctx = Context::new(
            self.client.clone(),
            Settings::default(),
            Metrics::default(),
            Some(self.ns.clone()),
            "test",
        )
        .with_clock(self.clock.clone())
        .with_schedule_poll(Duration::from_millis(300));
        self.controller = Some(tokio::spawn(schedule::run(Arc::new(ctx))));
    }

    async fn stop(&mut self) {
        if let Some(c) = self.controller.take() {
            c.abort();
            let _ = c.await;
        }
    }

    fn schedules(&self) -> Api<SympoziumSchedule> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn runs(&self) -> Api<AgentRun> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn instance(&self) {
        let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
            "metadata": {"name": "agent"},
            "spec": {"agents": {"default": {"model": "gpt-4o"}}, "authRefs": [{"provider": "openai", "secret": "k"}],
                     "memory": {"enabled": true, "systemPrompt": "You watch the cluster."}}});
        Api::<sympozium_api::SympoziumInstance>::namespaced(self.client.clone(), &self.ns)
            .patch("agent", &PatchParams::apply("test"), &Patch::Apply(&body))
            .await
            .unwrap();
    }

    async fn schedule(&self, name: &str, spec: serde_json::Value) {
        let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumSchedule",
                          "metadata": {"name": name}, "spec": spec});
        self.schedules().patch(name, &PatchParams::apply("test"), &Patch::Apply(&body)).await.unwrap();
    }

    async fn status_where(
        &self,
        name: &str,
        what: &str,
        cond: impl Fn(&SympoziumSchedule) -> bool + Send + 'static,
    ) -> SympoziumSchedule {
        wait_for(&self.schedules(), name, what, WAIT, move |s: Option<&SympoziumSchedule>| {
            s.is_some_and(&cond)
        })
        .await
        .unwrap()
    }

    /// Moves the clock just past the schedule's next tick and returns that tick.
    async fn pass_next_tick(&self, name: &str) -> Timestamp {
        let s = self
            .status_where(name, "a next run time", |s| {
                s.status.as_ref().is_some_and(|st| st.next_run_time.is_some())
            })
            .await;
        let next = s.status.unwrap().next_run_time.unwrap().0;
        self.clock.set(next + SignedDuration::from_secs(1));
        next
    }

    async fn run_names(&self, schedule: &str) -> Vec<String> {
        let mut names: Vec<_> = self
            .runs()
            .list(&ListParams::default().labels(&format!("sympozium.ai/schedule={schedule}")))
            .await
            .unwrap()
            .iter()
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .map(|r| r.name_any())
            .collect();
        names.sort();
        names
    }

    async fn wait_runs(&self, schedule: &str, expected: &[&str]) {
        for _ in 0..100 {
            if self.run_names(schedule).await == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(self.run_names(schedule).await, expected, "runs of {schedule}");
    }

    /// Waits a few evaluation rounds and checks nothing more was created.
    async fn settle_and_expect(&self, schedule: &str, expected: &[&str]) {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(self.run_names(schedule).await, expected, "no extra runs for {schedule}");
    }

    async fn finish(&self, run: &str) {
        let status = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "status": {"phase": "Succeeded"}});
        self.runs().patch_status(run, &PatchParams::apply("test"), &Patch::Apply(&status)).await.unwrap();
    }
}

#[tokio::test]
async fn one_run_per_tick_and_none_before_the_first_tick() {
    let h = Harness::new("sched-tick").await;
    h.schedule(
        "tick",
        json!({"instanceRef": "agent", "schedule": "*/1 * * * *", "task": "check pods", "type": "heartbeat"}),
    )
    .await;
    let s = h
        .status_where("tick", "Active", |s| {
            s.status.as_ref().is_some_and(|st| st.phase.as_deref() == Some("Active"))
        })
        .await;
    assert!(s.finalizers().contains(&"sympozium.ai/schedule-finalizer".to_string()));
    h.settle_and_expect("tick", &[]).await;

    let first = h.pass_next_tick("tick").await;
    h.wait_runs("tick", &["tick-1"]).await;
    h.settle_and_expect("tick", &["tick-1"]).await;
    let run = h.runs().get("tick-1").await.unwrap();
    assert_eq!(run.spec.task, "check pods");
    assert_eq!(run.spec.agent_id, "schedule-tick");
    assert_eq!(run.spec.system_prompt.as_deref(), Some("You watch the cluster."));
    assert_eq!(run.labels()["sympozium.ai/type"], "heartbeat");
    assert_eq!(run.annotations()["sympozium.ai/scheduled-time"], first.to_string());

    h.finish("tick-1").await;
    let second = h.pass_next_tick("tick").await;
    assert_eq!(second, first + SignedDuration::from_secs(60));
    h.wait_runs("tick", &["tick-1", "tick-2"]).await;
    let s = h
        .status_where("tick", "two runs recorded", |s| s.status.as_ref().is_some_and(|st| st.total_runs == 2))
        .await;
    let st = s.status.unwrap();
    assert_eq!(st.last_run_name.as_deref(), Some("tick-2"));
    assert_eq!(st.next_run_time.unwrap().0, second + SignedDuration::from_secs(60));
}

#[tokio::test]
async fn forbid_skips_replace_stops_allow_overlaps() {
    let h = Harness::new("sched-policy").await;
    for (name, policy) in [("forbid", "Forbid"), ("replace", "Replace"), ("allow", "Allow")] {
        h.schedule(name, json!({"instanceRef": "agent", "schedule": "*/1 * * * *", "task": "t", "concurrencyPolicy": policy}))
            .await;
    }
    // All three share the same ticks; the first run of each stays active.
    let tick = h.pass_next_tick("forbid").await;
    for name in ["forbid", "replace", "allow"] {
        h.wait_runs(name, &[&format!("{name}-1")]).await;
    }
    h.clock.set(tick + SignedDuration::from_secs(61));
    h.wait_runs("allow", &["allow-1", "allow-2"]).await;
    h.wait_runs("replace", &["replace-2"]).await;
    h.settle_and_expect("forbid", &["forbid-1"]).await;
    let events: Api<Event> = Api::namespaced(h.client.clone(), &h.ns);
    let skipped = events.list(&ListParams::default()).await.unwrap().items.into_iter().any(|e| {
        e.reason.as_deref() == Some("Skipped")
            && e.message.as_deref().is_some_and(|m| m.contains("forbid-1 is still running"))
    });
    assert!(skipped, "a Skipped event explains the Forbid skip");

    // Once the active run finishes, the next tick runs again.
    h.finish("forbid-1").await;
    h.clock.set(tick + SignedDuration::from_secs(121));
    h.wait_runs("forbid", &["forbid-1", "forbid-2"]).await;
}

#[tokio::test]
async fn restarts_neither_duplicate_nor_lose_runs_and_downtime_catches_up_once() {
    let mut h = Harness::new("sched-restart").await;
    h.schedule(
        "nightly",
        json!({"instanceRef": "agent", "schedule": "*/1 * * * *", "task": "t", "concurrencyPolicy": "Allow"}),
    )
    .await;
    let tick = h.pass_next_tick("nightly").await;
    h.wait_runs("nightly", &["nightly-1"]).await;
    h.status_where("nightly", "run recorded", |s| s.status.as_ref().is_some_and(|st| st.total_runs == 1))
        .await;

    // Restart between ticks: nothing new.
    h.stop().await;
    h.start();
    h.settle_and_expect("nightly", &["nightly-1"]).await;

    // A lost status write (status still points at the old tick) must not duplicate the run.
    h.stop().await;
    let rollback = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumSchedule",
        "status": {"phase": "Active", "totalRuns": 0, "nextRunTime": tick.to_string()}});
    h.schedules()
        .patch_status("nightly", &PatchParams::apply("rollback").force(), &Patch::Apply(&rollback))
        .await
        .unwrap();
    h.start();
    h.settle_and_expect("nightly", &["nightly-1"]).await;
    h.status_where("nightly", "status repaired", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.last_run_name.as_deref() == Some("nightly-1") && st.total_runs >= 1)
    })
    .await;

    // Down for five ticks: exactly one catch-up run, and the status says so.
    h.stop().await;
    h.clock.set(tick + SignedDuration::from_secs(5 * 60 + 1));
    h.start();
    h.wait_runs("nightly", &["nightly-1", "nightly-2"]).await;
    h.settle_and_expect("nightly", &["nightly-1", "nightly-2"]).await;
    let s = h
        .status_where("nightly", "MissedTicks reported", |s| {
            s.status.as_ref().is_some_and(|st| st.conditions.iter().any(|c| c.type_ == "MissedTicks"))
        })
        .await;
    let missed = s.status.unwrap().conditions.into_iter().find(|c| c.type_ == "MissedTicks").unwrap();
    assert!(missed.message.starts_with("5 ticks passed"), "{}", missed.message);
}

#[tokio::test]
async fn invalid_expressions_and_time_zones_are_reported_and_suspend_pauses() {
    let h = Harness::new("sched-invalid").await;
    h.schedule("bad", json!({"instanceRef": "agent", "schedule": "61 * * * *", "task": "t"})).await;
    h.schedule(
        "bad-tz",
        json!({"instanceRef": "agent", "schedule": "0 9 * * *", "task": "t", "timeZone": "Mars/Olympus"}),
    )
    .await;
    for (name, needle) in [
        ("bad", "minute field \"61\": 61 is out of range 0-59"),
        ("bad-tz", "unknown time zone \"Mars/Olympus\""),
    ] {
        let s = h
            .status_where(name, "phase Error", |s| {
                s.status.as_ref().is_some_and(|st| st.phase.as_deref() == Some("Error"))
            })
            .await;
        let ready = &s.status.unwrap().conditions[0];
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidSchedule"));
        assert!(ready.message.contains(needle), "{}", ready.message);
    }
    // Fixing the expression recovers.
    h.schedule(
        "bad",
        json!({"instanceRef": "agent", "schedule": "0 9 * * *", "task": "t", "timeZone": "Europe/Warsaw"}),
    )
    .await;
    let s = h
        .status_where("bad", "Active again", |s| {
            s.status.as_ref().is_some_and(|st| st.phase.as_deref() == Some("Active"))
        })
        .await;
    let next = s.status.unwrap().next_run_time.unwrap().0;
    assert_eq!(
        next.to_zoned(jiff::tz::TimeZone::get("Europe/Warsaw").unwrap()).hour(),
        9,
        "09:00 Warsaw time"
    );

    h.schedule("bad", json!({"instanceRef": "agent", "schedule": "0 9 * * *", "task": "t", "suspend": true}))
        .await;
    h.status_where("bad", "Suspended", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.phase.as_deref() == Some("Suspended") && st.next_run_time.is_none())
    })
    .await;
    h.clock.advance(SignedDuration::from_hours(48));
    h.settle_and_expect("bad", &[]).await;
}

#[tokio::test]
async fn run_now_requests_create_exactly_one_run_each_even_when_suspended() {
    let h = Harness::new("sched-now").await;
    // Yearly and suspended: nothing would ever run by itself here.
    h.schedule(
        "weekly",
        json!({"instanceRef": "agent", "schedule": "0 9 1 1 *", "task": "cost report", "suspend": true,
               "concurrencyPolicy": "Forbid"}),
    )
    .await;
    h.status_where("weekly", "Suspended", |s| {
        s.status.as_ref().is_some_and(|st| st.phase.as_deref() == Some("Suspended"))
    })
    .await;
    let trigger = |request: &'static str| {
        let schedules = h.schedules();
        async move {
            let patch = json!({"metadata": {"annotations": {"sympozium.ai/run-now": request}}});
            schedules.patch("weekly", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        }
    };
    trigger("req-1").await;
    h.wait_runs("weekly", &["weekly-1"]).await;
    let s = h
        .status_where("weekly", "the request handled", |s| {
            !s.annotations().contains_key("sympozium.ai/run-now")
                && s.status.as_ref().is_some_and(|st| st.total_runs == 1)
        })
        .await;
    assert_eq!(s.status.unwrap().last_run_name.as_deref(), Some("weekly-1"));
    let run = h.runs().get("weekly-1").await.unwrap();
    assert_eq!(run.spec.task, "cost report");
    assert_eq!(run.annotations()["sympozium.ai/scheduled-time"], "manual:req-1");
    h.settle_and_expect("weekly", &["weekly-1"]).await;

    // A request repeated with the same value is the same request; a new one is a new run,
    // even while the first is active under Forbid (the user asked for it).
    trigger("req-1").await;
    h.status_where("weekly", "the repeated request cleared", |s| {
        !s.annotations().contains_key("sympozium.ai/run-now")
    })
    .await;
    h.settle_and_expect("weekly", &["weekly-1"]).await;
    trigger("req-2").await;
    h.wait_runs("weekly", &["weekly-1", "weekly-2"]).await;
    let events = Api::<Event>::namespaced(h.client.clone(), &h.ns);
    let mut announced = false;
    for _ in 0..50 {
        let items = events.list(&ListParams::default()).await.unwrap().items;
        announced = items.iter().any(|e| {
            e.reason.as_deref() == Some("Triggered")
                && e.message.as_deref().is_some_and(|m| m.contains("on request"))
        });
        if announced {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(announced, "a Triggered event names the run it created");
}
