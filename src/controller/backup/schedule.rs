//! When a scheduled MongoBackup takes its next backup: pure, with `now` passed in, so every
//! case (a missed run, a run too late, suspension, overlap) is tested without waiting.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::api::ScheduleSpec;

/// A parsed schedule: a five-field cron expression read in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: Tz,
}

/// Why a schedule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression (of the field named first) does not parse.
    #[error("{0} {1:?} is not a valid cron expression: {2}")]
    Cron(&'static str, String, String),
    /// The time zone is unknown.
    #[error("schedule.timeZone {0:?} is not an IANA time zone")]
    Zone(String),
}

impl Schedule {
    /// Parses a schedule from the spec.
    pub fn parse(spec: &ScheduleSpec) -> Result<Schedule, ScheduleError> {
        Schedule::of("schedule.cron", &spec.cron, spec.time_zone.as_deref())
    }

    /// Parses the cron expression `cron` of the field `field`, read in `time_zone`.
    pub fn of(field: &'static str, cron: &str, time_zone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let cron =
            Cron::from_str(cron.trim()).map_err(|e| ScheduleError::Cron(field, cron.to_string(), e.to_string()))?;
        let zone = match time_zone {
            None => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| ScheduleError::Zone(name.to_string()))?,
        };
        Ok(Schedule { cron, zone })
    }

    /// The first scheduled time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&t.with_timezone(&self.zone), false).ok().map(|d| d.with_timezone(&Utc))
    }

    /// The latest scheduled time at or before `t`.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_previous_occurrence(&t.with_timezone(&self.zone), true).ok().map(|d| d.with_timezone(&Utc))
    }
}

/// What a schedule should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Take the backup scheduled for `at` now.
    Start { at: DateTime<Utc> },
    /// The run scheduled for `at` is past its starting deadline: record it as missed.
    Missed { at: DateTime<Utc> },
    /// The run scheduled for `at` is due, but the previous backup of this schedule is still
    /// going: it is skipped (runs never overlap).
    Overlap { at: DateTime<Utc> },
    /// Nothing is due.
    Idle,
}

/// What a schedule knows of itself.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleState {
    /// The latest scheduled time already handled (started, missed or skipped), or the
    /// schedule's creation time when it has none yet.
    pub handled_until: DateTime<Utc>,
    /// A backup of this schedule is still pending or running.
    pub busy: bool,
    /// `spec.suspend`.
    pub suspended: bool,
    /// `spec.schedule.startingDeadlineSeconds`.
    pub deadline: Duration,
}

/// Decides what to do at `now`. Only the latest due time counts: after a long outage one
/// backup is taken, not one per missed time.
pub fn decide(schedule: &Schedule, state: &ScheduleState, now: DateTime<Utc>) -> Decision {
    if state.suspended {
        return Decision::Idle;
    }
    let Some(due) = schedule.latest_at_or_before(now) else { return Decision::Idle };
    if due <= state.handled_until {
        return Decision::Idle;
    }
    if now - due > state.deadline {
        Decision::Missed { at: due }
    } else if state.busy {
        Decision::Overlap { at: due }
    } else {
        Decision::Start { at: due }
    }
}

/// The name of the backup a schedule takes at `at`: `<schedule>-<yyyymmddhhmm>` in UTC. The
/// same time always gives the same name, so a run is created once even if the operator
/// restarts half-way.
pub fn backup_name(schedule: &str, at: DateTime<Utc>) -> String {
    format!("{schedule}-{}", at.format("%Y%m%d%H%M"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    fn every_two_hours() -> Schedule {
        Schedule::parse(&ScheduleSpec { cron: "0 */2 * * *".into(), time_zone: None, starting_deadline_seconds: 3600 })
            .expect("parses")
    }

    fn state(handled_until: &str) -> ScheduleState {
        ScheduleState { handled_until: at(handled_until), busy: false, suspended: false, deadline: Duration::hours(1) }
    }

    #[test]
    fn a_due_run_starts_once() {
        let s = every_two_hours();
        let decision = decide(&s, &state("2026-11-23T09:00:00Z"), at("2026-11-23T10:00:05Z"));
        assert_eq!(decision, Decision::Start { at: at("2026-11-23T10:00:00Z") });
        // Once recorded as handled, the same time is not started again.
        assert_eq!(decide(&s, &state("2026-11-23T10:00:00Z"), at("2026-11-23T10:00:30Z")), Decision::Idle);
        assert_eq!(s.next_after(at("2026-11-23T10:00:00Z")), Some(at("2026-11-23T12:00:00Z")));
    }

    #[test]
    fn after_an_outage_only_the_latest_missed_run_starts_within_the_deadline() {
        let s = every_two_hours();
        // Down from 03:00 to 10:20: 04:00, 06:00, 08:00 and 10:00 were missed; 10:00 is 20 min late.
        let decision = decide(&s, &state("2026-11-23T03:00:00Z"), at("2026-11-23T10:20:00Z"));
        assert_eq!(decision, Decision::Start { at: at("2026-11-23T10:00:00Z") });
        // At 11:30 the 10:00 run is 90 min late, past the one-hour deadline.
        let decision = decide(&s, &state("2026-11-23T03:00:00Z"), at("2026-11-23T11:30:00Z"));
        assert_eq!(decision, Decision::Missed { at: at("2026-11-23T10:00:00Z") });
    }

    #[test]
    fn suspended_and_overlapping_runs_do_not_start() {
        let s = every_two_hours();
        let suspended = ScheduleState { suspended: true, ..state("2026-11-23T09:00:00Z") };
        assert_eq!(decide(&s, &suspended, at("2026-11-23T10:00:05Z")), Decision::Idle);
        let busy = ScheduleState { busy: true, ..state("2026-11-23T09:00:00Z") };
        assert_eq!(decide(&s, &busy, at("2026-11-23T10:00:05Z")), Decision::Overlap { at: at("2026-11-23T10:00:00Z") });
    }

    #[test]
    fn a_time_zone_moves_the_runs() {
        let s = Schedule::parse(&ScheduleSpec {
            cron: "30 2 * * *".into(),
            time_zone: Some("Europe/Paris".into()),
            starting_deadline_seconds: 3600,
        })
        .expect("parses");
        // 02:30 in Paris in November (UTC+1) is 01:30 UTC.
        assert_eq!(s.next_after(at("2026-11-23T00:00:00Z")), Some(at("2026-11-23T01:30:00Z")));
    }

    #[test]
    fn bad_schedules_are_named() {
        let bad = ScheduleSpec { cron: "61 * * * *".into(), time_zone: None, starting_deadline_seconds: 60 };
        assert!(matches!(Schedule::parse(&bad), Err(ScheduleError::Cron(..))));
        let zone = ScheduleSpec {
            cron: "0 * * * *".into(),
            time_zone: Some("Mars/Olympus".into()),
            starting_deadline_seconds: 60,
        };
        assert_eq!(Schedule::parse(&zone).err(), Some(ScheduleError::Zone("Mars/Olympus".into())));
    }

    #[test]
    fn names_are_stable_per_time() {
        assert_eq!(backup_name("orders", at("2026-11-23T10:00:59Z")), "orders-202611231000");
    }
}
