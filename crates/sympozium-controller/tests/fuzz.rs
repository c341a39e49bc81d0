//! Fuzz targets for what the controller takes from users and the bus: CRD specs (AgentRun,
//! SympoziumInstance, SympoziumPolicy) through its validation and its pure builders (the
//! run's Job, the channel router's AgentRun, a channel's Deployment), `schedule.upsert`
//! requests and cron expressions with time zones.
//!
//! Under `cargo test` each target runs for about a second on random input plus its
//! committed corpus (`tests/__fuzz__/<test name>/corpus`); `make fuzz` runs them under
//! libFuzzer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use sympozium_api::{AgentRun, SympoziumInstance, SympoziumPolicy};
use sympozium_bus::payloads::InboundMessage;
use sympozium_controller::agentrun::build::{RunInputs, job};
use sympozium_controller::channelrouter::{access, build as router};
use sympozium_controller::instance::build::channel_deployment;
use sympozium_controller::schedule::cron::{CronSchedule, MAX_COUNTED_TICKS};
use sympozium_controller::schedule::router::{ScheduleRequest, plan};
use sympozium_controller::settings::Settings;
use sympozium_testkit::fuzz::{self, Choices};

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/__fuzz__").join(target).join("corpus")
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn objects(doc: &Value) {
    let settings = Settings::default();
    let run: Option<AgentRun> = serde_json::from_value(doc["run"].clone()).ok();
    let instance: Option<SympoziumInstance> = serde_json::from_value(doc["instance"].clone()).ok();
    let policy: Option<SympoziumPolicy> = serde_json::from_value(doc["policy"].clone()).ok();
    if let Some(run) = &run {
        let _ = sympozium_controller::agentrun::policy::validate(run, instance.as_ref(), policy.as_ref());
        let inputs = RunInputs {
            run,
            instance: instance.as_ref(),
            settings: &settings,
            skills: run.spec.skills.clone(),
            sidecars: Vec::new(),
            timeout: Duration::from_secs(900),
            tool_policy: run.spec.tool_policy.as_ref().map(|p| serde_json::to_string(p).unwrap()),
            traceparent: None,
        };
        let job = job(&inputs);
        // Whatever the spec says, the agent pod never gets the namespace's token and never restarts.
        let pod = job.spec.and_then(|s| s.template.spec).expect("a pod template");
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        // Stored runs always have a name (the API server sets or refuses it).
        if run.metadata.name.is_some() {
            assert_eq!(job.metadata.name, run.metadata.name);
        }
    }
    if let Some(instance) = &instance {
        for channel in &instance.spec.channels {
            let d = channel_deployment(instance, channel, Some("1"), &settings);
            assert!(d.metadata.name.is_some());
        }
        if let Ok(msg) = serde_json::from_value::<InboundMessage>(doc["message"].clone()) {
            let _ = access::check(&instance.spec, &msg);
            let id = router::platform_id(&msg, &BTreeMap::new());
            let key = router::message_key("team", &msg, id.as_deref(), 7);
            let run = router::agent_run(instance, &msg, &key, id.as_deref(), None, 1);
            let name = run.metadata.name.clone().unwrap_or_default();
            // Names come from the instance (a valid object name): the run's must be one too.
            if dns_label(&instance.metadata.name.clone().unwrap_or_default()) {
                assert!(dns_label(&name), "run name {name:?}");
            }
            let _ = router::reply(&run, "done".into());
        }
    }
}

#[test]
fn crd_specs() {
    let seeds = fuzz::seeds(&corpus("crd_specs"));
    assert!(seeds.len() >= 2, "the committed seed specs are there");
    for seed in &seeds {
        assert!(serde_json::from_value::<AgentRun>(seed["run"].clone()).is_ok(), "seed run parses");
        assert!(
            serde_json::from_value::<SympoziumInstance>(seed["instance"].clone()).is_ok(),
            "seed instance"
        );
        assert!(serde_json::from_value::<SympoziumPolicy>(seed["policy"].clone()).is_ok(), "seed policy");
    }
    bolero::check!().for_each(|bytes: &[u8]| {
        if let Ok(raw) = serde_json::from_slice::<Value>(bytes) {
            objects(&raw);
        }
        objects(&fuzz::document(&seeds, bytes));
    });
}

#[test]
fn schedule_requests() {
    let seeds = fuzz::seeds(&corpus("schedule_requests"));
    assert!(seeds.len() >= 3, "the committed seed requests are there");
    bolero::check!().for_each(|bytes: &[u8]| {
        let doc = fuzz::document(&seeds, bytes);
        let Ok(req) = serde_json::from_value::<ScheduleRequest>(doc) else { return };
        if let Ok((target, _)) = plan(&req, "agent") {
            assert!(dns_label(&target), "{target:?}");
            if let Some(expr) = &req.schedule {
                // Anything the router accepts, the schedule controller can run.
                if req.action.trim() == "create" {
                    CronSchedule::parse(expr.trim(), None).unwrap();
                }
            }
        }
    });
}

#[test]
fn cron_expressions() {
    const ZONES: &[&str] =
        &["", "UTC", "Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe", "Nowhere/Else"];
    bolero::check!().for_each(|bytes: &[u8]| {
        let mut c = Choices::new(bytes);
        let fields = ["*", "*/5", "0", "1-5", "MON-FRI", "JAN,JUL", "L", "59", "0/30", "7", "31", "2/0"];
        let expr: String = if c.byte() & 1 == 0 {
            (0..5).map(|_| fields[c.below(fields.len())]).collect::<Vec<_>>().join(" ")
        } else {
            c.string()
        };
        let tz = ZONES[c.below(ZONES.len())];
        let Ok(schedule) = CronSchedule::parse(&expr, Some(tz)) else { return };
        let start = Timestamp::from_second(1_700_000_000 + c.below(60 * 60 * 24 * 366) as i64).unwrap();
        if let Ok(next) = schedule.next_after(start) {
            assert!(next > start, "{expr} in {tz}: {next} not after {start}");
        }
        let end = start + jiff::SignedDuration::from_hours(24 * 40);
        assert!(schedule.ticks_between(start, end) <= MAX_COUNTED_TICKS);
    });
}
