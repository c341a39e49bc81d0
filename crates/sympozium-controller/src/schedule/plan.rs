//! The pure decision of a schedule reconcile: is a tick due, which one, and how many were
//! missed. Rules:
//! * `status.nextRunTime` is the tick that is due next; it survives controller restarts, so
//!   a restart neither loses nor repeats a tick.
//! * First fire: a new schedule first fires at its first tick *after* creation (a weekly
//!   report created on Tuesday does not run on the spot).
//! * Missed ticks (the controller was down): one catch-up run, and the count is reported.
//! * A spec edit or a resume starts counting from now: no catch-up for edited or suspended
//!   time.

use jiff::Timestamp;
use sympozium_api::{SympoziumScheduleSpec, SympoziumScheduleStatus};

use super::cron::CronSchedule;

/// What a reconcile should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// `spec.suspend` is set.
    Suspended,
    /// The expression or time zone is invalid.
    Invalid(String),
    /// Nothing due before `next`.
    Wait {
        /// The tick to wait for.
        next: Timestamp,
    },
    /// `tick` is due (`missed` ticks have passed, counting `tick` itself); `next` follows now.
    Due {
        /// The tick being run.
        tick: Timestamp,
        /// Ticks that passed up to now, `tick` included.
        missed: usize,
        /// The tick after this one.
        next: Timestamp,
    },
}

/// Inputs of [`plan`].
#[derive(Debug)]
pub struct Inputs<'a> {
    /// Current time.
    pub now: Timestamp,
    /// When the schedule was created.
    pub created: Timestamp,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The schedule's spec.
    pub spec: &'a SympoziumScheduleSpec,
    /// The schedule's current status.
    pub status: &'a SympoziumScheduleStatus,
}

/// Decides what to do now.
pub fn plan(i: &Inputs<'_>) -> Plan {
    if i.spec.suspend == Some(true) {
        return Plan::Suspended;
    }
    let cron = match CronSchedule::parse(&i.spec.schedule, i.spec.time_zone.as_deref()) {
        Ok(c) => c,
        Err(e) => return Plan::Invalid(e.to_string()),
    };
    let observed =
        i.status.conditions.iter().find(|c| c.type_ == "Ready").and_then(|c| c.observed_generation);
    let spec_changed = observed.is_some() && observed != i.generation;
    let resumed = i.status.phase.as_deref() == Some("Suspended");
    let stored = i.status.next_run_time.as_ref().map(|t| t.0);
    let due = match stored {
        Some(t) if !spec_changed && !resumed => Ok(t),
        // Edited or resumed: the next tick from now. Never seen: the first tick after creation.
        Some(_) => cron.next_after(i.now),
        None if spec_changed || resumed => cron.next_after(i.now),
        None => cron.next_after(i.created),
    };
    let due = match due {
        Ok(t) => t,
        Err(e) => return Plan::Invalid(e.to_string()),
    };
    if i.now < due {
        return Plan::Wait { next: due };
    }
    match cron.next_after(i.now) {
        Ok(next) => Plan::Due { tick: due, missed: cron.ticks_between(due, i.now).max(1), next },
        Err(e) => Plan::Invalid(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn spec(cron: &str) -> SympoziumScheduleSpec {
        SympoziumScheduleSpec {
            instance_ref: "i".into(),
            schedule: cron.into(),
            task: "t".into(),
            ..Default::default()
        }
    }

    fn status(next: Option<&str>, generation: Option<i64>, phase: &str) -> SympoziumScheduleStatus {
        SympoziumScheduleStatus {
            phase: Some(phase.into()),
            next_run_time: next.map(|n| Time(ts(n))),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: "Active".into(),
                message: String::new(),
                last_transition_time: Time(ts("2026-11-23T00:00:00Z")),
                observed_generation: generation,
            }],
            ..Default::default()
        }
    }

    fn run(now: &str, created: &str, spec: &SympoziumScheduleSpec, status: &SympoziumScheduleStatus) -> Plan {
        plan(&Inputs { now: ts(now), created: ts(created), generation: Some(1), spec, status })
    }

    #[test]
    fn a_new_weekly_schedule_waits_for_its_first_tick() {
        // Created on Tuesday; Monday 08:00 ticked the day before but does not fire now.
        let p = run("2026-11-24T10:00:00Z", "2026-11-24T10:00:00Z", &spec("0 8 * * 1"), &Default::default());
        assert_eq!(p, Plan::Wait { next: ts("2026-11-30T08:00:00Z") });
    }

    #[test]
    fn the_stored_tick_fires_once_due() {
        let s = status(Some("2026-11-23T10:15:00Z"), Some(1), "Active");
        assert_eq!(
            run("2026-11-23T10:14:59Z", "2026-11-23T09:00:00Z", &spec("*/15 * * * *"), &s),
            Plan::Wait { next: ts("2026-11-23T10:15:00Z") }
        );
        assert_eq!(
            run("2026-11-23T10:15:01Z", "2026-11-23T09:00:00Z", &spec("*/15 * * * *"), &s),
            Plan::Due { tick: ts("2026-11-23T10:15:00Z"), missed: 1, next: ts("2026-11-23T10:30:00Z") }
        );
    }

    #[test]
    fn ticks_missed_while_down_give_one_catch_up_with_a_count() {
        let s = status(Some("2026-11-23T10:15:00Z"), Some(1), "Active");
        let p = run("2026-11-23T11:20:00Z", "2026-11-23T09:00:00Z", &spec("*/15 * * * *"), &s);
        assert_eq!(
            p,
            Plan::Due { tick: ts("2026-11-23T10:15:00Z"), missed: 5, next: ts("2026-11-23T11:30:00Z") }
        );
    }

    #[test]
    fn edits_and_resumes_count_from_now() {
        let edited = status(Some("2026-11-23T08:00:00Z"), Some(0), "Active");
        assert_eq!(
            run("2026-11-23T10:07:00Z", "2026-11-20T00:00:00Z", &spec("*/15 * * * *"), &edited),
            Plan::Wait { next: ts("2026-11-23T10:15:00Z") }
        );
        let resumed = status(None, Some(1), "Suspended");
        assert_eq!(
            run("2026-11-23T10:07:00Z", "2026-11-20T00:00:00Z", &spec("*/15 * * * *"), &resumed),
            Plan::Wait { next: ts("2026-11-23T10:15:00Z") }
        );
    }

    #[test]
    fn suspended_and_invalid() {
        let mut s = spec("*/15 * * * *");
        s.suspend = Some(true);
        assert_eq!(
            run("2026-11-23T10:00:00Z", "2026-11-23T09:00:00Z", &s, &Default::default()),
            Plan::Suspended
        );
        let bad = run("2026-11-23T10:00:00Z", "2026-11-23T09:00:00Z", &spec("* * *"), &Default::default());
        assert!(matches!(bad, Plan::Invalid(m) if m.contains("has 3 fields")));
    }
}
