//! The rollout order: which member restarts next after a change to the Pod template (the
//! StatefulSet uses `OnDelete`, so nothing restarts until the operator deletes a Pod). Pure.
//!
//! One member at a time, the arbiter first (it holds no data and is back in seconds), then the
//! secondaries (highest ordinal first, like a StatefulSet's own rolling update), each only when
//! every other member is a healthy, caught-up PRIMARY or SECONDARY (or ARBITER) and every Pod is
//! ready; the primary last, after it has stepped down. Two
//! exceptions, both of which lose no availability:
//! - a Pod on an old template that is not ready and whose member is not healthy in the set
//!   serves nothing, so it is replaced at once. This is how a broken template (a bad image, a
//!   memory limit that kills mongod, an option mongod refuses) is rolled back: the user
//!   reverts the spec and the crash-looping Pod, now on an old template, is replaced;
//! - a primary that no other member could take over from (one member, or one voter and
//!   non-voting copies) cannot step down; the user asked for the change, so it restarts
//!   without a failover and the database is unavailable until it is back.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::replset::{Observed, same_host};

use super::world::MemberPod;

/// How long a member on the new template may stay unready (and unhealthy in the set) before
/// the rollout is reported as stuck: the same ten minutes as a Deployment's default
/// `progressDeadlineSeconds`.
pub const PROGRESS_DEADLINE: SignedDuration = SignedDuration::from_mins(10);

/// What the rollout wants now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// Every member runs the latest revision.
    Done,
    /// A restart is due but not safe yet.
    Wait(String),
    /// A member on the new template has been unready for longer than [`PROGRESS_DEADLINE`]:
    /// the template itself is likely broken. Nothing more restarts until the spec changes.
    Stuck { pod: String, message: String },
    /// Delete this Pod so it comes back on the latest revision.
    Restart { pod: String, uid: Option<String>, why: RestartReason },
    /// Only the primary is left: it must step down first (the planner decides when).
    StepDownPrimary { host: String },
}

/// Why a Pod is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartReason {
    /// A secondary, its turn in the rolling order.
    Secondary,
    /// An old-template Pod that serves nothing (not ready, not healthy in the set).
    NotServing,
    /// The primary, which no other member can take over from.
    WithoutFailover,
    /// A secondary on the current template that a person asked to restart.
    Requested,
}

/// A member's host, as in the replica-set config, for a Pod.
pub type HostOf<'a> = &'a dyn Fn(&MemberPod) -> String;

/// The revisions new Pods are created from: the members' StatefulSet's and the arbiter's
/// (each None until its StatefulSet controller has seen the latest template).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Revisions<'a> {
    pub members: Option<&'a str>,
    pub arbiter: Option<&'a str>,
}

impl Revisions<'_> {
    fn of(&self, p: &MemberPod) -> Option<&str> {
        if p.arbiter { self.arbiter } else { self.members }
    }
}

/// Whether `pod`'s member answers heartbeats in the set (it may still be syncing).
fn healthy_in_set(observed: &Observed, host: &str) -> bool {
    observed.members.iter().any(|m| same_host(&m.host, host) && m.healthy)
}

/// Whether a Pod is due for a restart: it runs an old template, or a person asked for it. A
/// Pod whose StatefulSet's revision is not known yet is not (it is looked at again once known).
fn due(p: &MemberPod, update: &Revisions<'_>) -> bool {
    update.of(p).is_some_and(|u| p.revision.as_deref() != Some(u)) || p.restart_requested
}

/// Whether a Pod runs its StatefulSet's latest template.
fn current(p: &MemberPod, update: &Revisions<'_>) -> bool {
    update.of(p).is_some_and(|u| p.revision.as_deref() == Some(u))
}

/// A Pod due for a restart (an old template, or asked for) that is not ready and whose member
/// is not `serving` (healthy in the set): it serves nothing, so replacing it loses nothing. The
/// highest ordinal first.
pub fn not_serving<'a>(
    pods: &'a [MemberPod],
    update: &Revisions<'_>,
    serving: &dyn Fn(&MemberPod) -> bool,
) -> Option<&'a MemberPod> {
    pods.iter()
        .filter(|p| due(p, update) && !p.terminating && !p.ready && !serving(p))
        .max_by_key(|p| (p.arbiter, p.ordinal))
}

/// A Pod on the current template that has not served for [`PROGRESS_DEADLINE`] since it was
/// created: the template is likely broken.
pub fn stuck(
    pods: &[MemberPod],
    update: &Revisions<'_>,
    serving: &dyn Fn(&MemberPod) -> bool,
    now: Timestamp,
) -> Option<Rollout> {
    let p = pods.iter().find(|p| {
        current(p, update)
            && !p.terminating
            && !p.ready
            && !serving(p)
            && p.created.is_some_and(|c| now.duration_since(c) >= PROGRESS_DEADLINE)
    })?;
    Some(Rollout::Stuck {
        pod: p.name.clone(),
        message: format!(
            "member {} runs the current Pod template but has not become ready in {} minutes, and its mongod does not \
             answer the replica set: the last change may be broken (image, resources, mongod.config). See \
             `kubectl describe pod {}` and its logs; reverting the change rolls it back",
            p.name,
            PROGRESS_DEADLINE.as_mins(),
            p.name
        ),
    })
}

pub fn next(
    pods: &[MemberPod],
    update: &Revisions<'_>,
    observed: &Observed,
    host_of: HostOf<'_>,
    now: Timestamp,
) -> Rollout {
    if let Some(p) = pods.iter().find(|p| update.of(p).is_none()) {
        return Rollout::Wait(format!(
            "the StatefulSet controller has not yet seen the latest template of {}",
            if p.arbiter { "the arbiter" } else { "the members" }
        ));
    }
    let serving = |p: &MemberPod| healthy_in_set(observed, &host_of(p));
    if let Some(p) = not_serving(pods, update, &serving) {
        return Rollout::Restart { pod: p.name.clone(), uid: p.uid.clone(), why: RestartReason::NotServing };
    }
    if let Some(stuck) = stuck(pods, update, &serving, now) {
        return stuck;
    }
    let stale: Vec<&MemberPod> = pods.iter().filter(|p| due(p, update)).collect();
    if stale.is_empty() {
        return Rollout::Done;
    }
    if let Some(p) = pods.iter().find(|p| p.terminating || !p.ready) {
        return Rollout::Wait(format!("member {} is restarting or not ready", p.name));
    }
    for m in &observed.config.members {
        if !observed.caught_up(&m.host) {
            return Rollout::Wait(format!("member {} is not a healthy, caught-up secondary yet", m.host));
        }
    }
    let is_primary = |p: &MemberPod| observed.primary.as_deref().is_some_and(|h| same_host(h, &host_of(p)));
    if let Some(p) = stale.iter().filter(|p| !is_primary(p)).max_by_key(|p| (p.arbiter, p.ordinal)) {
        let why = if current(p, update) { RestartReason::Requested } else { RestartReason::Secondary };
        return Rollout::Restart { pod: p.name.clone(), uid: p.uid.clone(), why };
    }
    let Some(primary) = &observed.primary else { return Rollout::Wait("no primary".into()) };
    let successor_possible = observed.config.members.iter().any(|m| !same_host(&m.host, primary) && m.is_electable());
    if successor_possible {
        return Rollout::StepDownPrimary { host: primary.clone() };
    }
    match stale.iter().find(|p| is_primary(p)) {
        Some(p) => Rollout::Restart { pod: p.name.clone(), uid: p.uid.clone(), why: RestartReason::WithoutFailover },
        None => Rollout::Wait("the primary's Pod is not among the members' Pods".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replset::planner::CAUGHT_UP_LAG_SECONDS;
    use crate::replset::{MemberConfig, MemberState, ObservedMember, ReplSetConfig};

    fn host(i: i32) -> String {
        format!("db-{i}.db-members.ns.svc.cluster.local:27017")
    }

    fn now() -> Timestamp {
        "2026-12-04T12:00:00Z".parse().unwrap()
    }

    fn pod(i: i32, rev: &str) -> MemberPod {
        MemberPod {
            name: format!("db-{i}"),
            ordinal: i,
            ip: Some(format!("127.100.0.{i}")),
            revision: Some(rev.into()),
            ready: true,
            terminating: false,
            uid: Some(format!("uid-{i}")),
            created: Some(now() - SignedDuration::from_hours(1)),
            tls_started: true,
            ca_file: None,
            restart_requested: false,
            serves_clients: Some(true),
            arbiter: false,
        }
    }

    fn pod_host(p: &MemberPod) -> String {
        host(p.ordinal)
    }

    fn rev(members: &str) -> Revisions<'_> {
        Revisions { members: Some(members), arbiter: None }
    }

    /// `voters` members vote (and are electable); the rest are non-voting copies.
    fn observed_with(n: i32, voters: i32, primary: i32, lag: i64) -> Observed {
        let config = ReplSetConfig {
            set_name: "db".into(),
            version: 3,
            term: Some(1),
            protocol_version: 1,
            members: (0..n).map(|i| MemberConfig::new(i64::from(i), host(i), i < voters)).collect(),
            other: Default::default(),
        };
        Observed {
            config,
            committed: true,
            primary: Some(host(primary)),
            members: (0..n)
                .map(|i| ObservedMember {
                    host: host(i),
                    state: if i == primary { MemberState::Primary } else { MemberState::Secondary },
                    healthy: true,
                    lag_seconds: Some(if i == primary { 0 } else { lag }),
                })
                .collect(),
            default_write_concern: None,
        }
    }

    fn observed(primary: i32, lag: i64) -> Observed {
        observed_with(3, 3, primary, lag)
    }

    fn restart(i: i32, why: RestartReason) -> Rollout {
        Rollout::Restart { pod: format!("db-{i}"), uid: Some(format!("uid-{i}")), why }
    }

    #[test]
    fn secondaries_first_highest_ordinal_first_then_the_primary() {
        let obs = observed(2, 0);
        let h: HostOf<'_> = &pod_host;
        let all_old = [pod(0, "old"), pod(1, "old"), pod(2, "old")];
        assert_eq!(next(&all_old, &rev("new"), &obs, h, now()), restart(1, RestartReason::Secondary));
        let one_done = [pod(0, "old"), pod(1, "new"), pod(2, "old")];
        assert_eq!(next(&one_done, &rev("new"), &obs, h, now()), restart(0, RestartReason::Secondary));
        let primary_left = [pod(0, "new"), pod(1, "new"), pod(2, "old")];
        assert_eq!(next(&primary_left, &rev("new"), &obs, h, now()), Rollout::StepDownPrimary { host: host(2) });
        let done = [pod(0, "new"), pod(1, "new"), pod(2, "new")];
        assert_eq!(next(&done, &rev("new"), &obs, h, now()), Rollout::Done);
    }

    #[test]
    fn a_requested_restart_follows_the_rollout_order_and_ends_with_the_pods_it_named() {
        let obs = observed(0, 0);
        let h: HostOf<'_> = &pod_host;
        let asked = |pods: &mut [MemberPod], which: &[i32]| {
            for p in pods.iter_mut() {
                p.restart_requested = which.contains(&p.ordinal);
            }
        };
        let mut pods = [pod(0, "cur"), pod(1, "cur"), pod(2, "cur")];
        asked(&mut pods, &[0, 1, 2]);
        assert_eq!(next(&pods, &rev("cur"), &obs, h, now()), restart(2, RestartReason::Requested));
        // db-2 came back (a new Pod, not named by the request).
        asked(&mut pods, &[0, 1]);
        assert_eq!(next(&pods, &rev("cur"), &obs, h, now()), restart(1, RestartReason::Requested));
        asked(&mut pods, &[0]);
        assert_eq!(next(&pods, &rev("cur"), &obs, h, now()), Rollout::StepDownPrimary { host: host(0) });
        asked(&mut pods, &[]);
        assert_eq!(next(&pods, &rev("cur"), &obs, h, now()), Rollout::Done);
        // One member asked for waits, like a rollout, for the others to be healthy.
        asked(&mut pods, &[1]);
        assert!(matches!(next(&pods, &rev("cur"), &observed(0, 60), h, now()), Rollout::Wait(_)));
        // A Pod on an old template is restarted for that reason, not as asked.
        let mut mixed = [pod(0, "cur"), pod(1, "old"), pod(2, "cur")];
        asked(&mut mixed, &[1]);
        assert_eq!(next(&mixed, &rev("cur"), &obs, h, now()), restart(1, RestartReason::Secondary));
    }

    #[test]
    fn waits_for_every_member_to_be_healthy_and_caught_up() {
        let h: HostOf<'_> = &pod_host;
        let all_old = [pod(0, "old"), pod(1, "old"), pod(2, "old")];
        assert!(matches!(next(&all_old, &rev("new"), &observed(2, 60), h, now()), Rollout::Wait(_)));
        let mut restarting = all_old.clone();
        restarting[0].ready = false;
        // Not ready but healthy in the set (recovering): it is waited for, not replaced.
        assert!(matches!(next(&restarting, &rev("new"), &observed(2, 0), h, now()), Rollout::Wait(_)));
        let mut down = observed(2, 0);
        down.members[0].healthy = false;
        assert!(matches!(next(&all_old, &rev("new"), &down, h, now()), Rollout::Wait(_)));
        assert!(matches!(next(&all_old, &Revisions::default(), &observed(2, 0), h, now()), Rollout::Wait(_)));
    }

    #[test]
    fn a_delayed_member_is_caught_up_within_its_delay_and_holds_up_no_rollout() {
        let h: HostOf<'_> = &pod_host;
        let all_old = [pod(0, "old"), pod(1, "old"), pod(2, "old")];
        // db-1 is delayed by an hour: it is an hour behind by design.
        let mut obs = observed(2, 0);
        obs.config.members[1].priority = 0.0;
        obs.config.members[1].other.insert("hidden", true);
        obs.config.members[1].other.insert("secondaryDelaySecs", 3600_i64);
        obs.members[1].lag_seconds = Some(3605);
        assert!(obs.caught_up(&host(1)));
        assert_eq!(next(&all_old, &rev("new"), &obs, h, now()), restart(1, RestartReason::Secondary));
        // Further behind than its delay allows: waited for like any other.
        obs.members[1].lag_seconds = Some(3600 + CAUGHT_UP_LAG_SECONDS + 1);
        assert!(!obs.caught_up(&host(1)));
        assert!(matches!(next(&all_old, &rev("new"), &obs, h, now()), Rollout::Wait(_)));
        // An hour behind without a delay is not caught up.
        let mut plain = observed(2, 0);
        plain.members[1].lag_seconds = Some(3605);
        assert!(!plain.caught_up(&host(1)));
    }

    #[test]
    fn a_lone_primary_or_one_voter_restarts_without_a_failover() {
        let h: HostOf<'_> = &pod_host;
        let one = observed_with(1, 1, 0, 0);
        assert_eq!(next(&[pod(0, "old")], &rev("new"), &one, h, now()), restart(0, RestartReason::WithoutFailover));
        // Two members, one voter: the non-voting copy first, then the primary directly.
        let two = observed_with(2, 1, 0, 0);
        let both_old = [pod(0, "old"), pod(1, "old")];
        assert_eq!(next(&both_old, &rev("new"), &two, h, now()), restart(1, RestartReason::Secondary));
        let primary_left = [pod(0, "old"), pod(1, "new")];
        assert_eq!(next(&primary_left, &rev("new"), &two, h, now()), restart(0, RestartReason::WithoutFailover));
        // Three voters: never without a failover.
        let three = [pod(0, "old"), pod(1, "new"), pod(2, "new")];
        assert_eq!(next(&three, &rev("new"), &observed(0, 0), h, now()), Rollout::StepDownPrimary { host: host(0) });
    }

    #[test]
    fn an_old_pod_that_serves_nothing_is_replaced_at_once_and_a_broken_new_one_is_stuck() {
        let h: HostOf<'_> = &pod_host;
        // db-1 runs a broken template (it was "new"); the user reverted, so "good" is current.
        let mut broken = [pod(0, "good"), pod(1, "bad"), pod(2, "good")];
        broken[1].ready = false;
        let mut obs = observed(0, 0);
        obs.members[1].healthy = false;
        assert_eq!(next(&broken, &rev("good"), &obs, h, now()), restart(1, RestartReason::NotServing));
        // Before the revert, the broken Pod is on the current template: wait, then stuck.
        let fresh = {
            broken[1].created = Some(now() - SignedDuration::from_mins(2));
            broken.clone()
        };
        assert!(matches!(next(&fresh, &rev("bad"), &obs, h, now()), Rollout::Wait(_)));
        broken[1].created = Some(now() - SignedDuration::from_mins(11));
        match next(&broken, &rev("bad"), &obs, h, now()) {
            Rollout::Stuck { pod, message } => {
                assert_eq!(pod, "db-1");
                assert!(message.contains("reverting the change rolls it back"), "{message}");
            }
            other => panic!("expected Stuck, got {other:?}"),
        }
        // Syncing (healthy in the set) for ten minutes on the new template is not stuck.
        obs.members[1].healthy = true;
        assert!(matches!(next(&broken, &rev("bad"), &obs, h, now()), Rollout::Wait(_)));
    }

    #[test]
    fn the_arbiter_restarts_first_on_its_own_revision_and_a_restart_waits_for_it() {
        let arbiter_host = "db-arbiter-0.db-members.ns.svc.cluster.local:27017".to_string();
        let mut obs = observed_with(2, 2, 0, 0);
        obs.config.members.push(MemberConfig::arbiter(2, arbiter_host.clone()));
        obs.members.push(ObservedMember {
            host: arbiter_host.clone(),
            state: MemberState::Arbiter,
            healthy: true,
            lag_seconds: None,
        });
        let arbiter = |rev: &str| MemberPod { name: "db-arbiter-0".into(), arbiter: true, ..pod(0, rev) };
        let host_of = |p: &MemberPod| if p.arbiter { arbiter_host.clone() } else { host(p.ordinal) };
        let h: HostOf<'_> = &host_of;
        let both = Revisions { members: Some("new"), arbiter: Some("new-a") };
        let all_old = [pod(0, "old"), pod(1, "old"), arbiter("old-a")];
        let first = next(&all_old, &both, &obs, h, now());
        assert_eq!(
            first,
            Rollout::Restart { pod: "db-arbiter-0".into(), uid: Some("uid-0".into()), why: RestartReason::Secondary }
        );
        // The arbiter compares with its own StatefulSet's revision, the members with theirs.
        let arbiter_done = [pod(0, "old"), pod(1, "old"), arbiter("new-a")];
        assert_eq!(next(&arbiter_done, &both, &obs, h, now()), restart(1, RestartReason::Secondary));
        // While it is back but not ready, nothing else restarts.
        let mut restarting = arbiter("new-a");
        restarting.ready = false;
        let waiting = [pod(0, "old"), pod(1, "old"), restarting];
        assert!(matches!(next(&waiting, &both, &obs, h, now()), Rollout::Wait(_)));
        // Its StatefulSet's revision not known yet: wait rather than call the rollout done.
        let unknown = Revisions { members: Some("new"), arbiter: None };
        let members_done = [pod(0, "new"), pod(1, "new"), arbiter("old-a")];
        assert!(matches!(next(&members_done, &unknown, &obs, h, now()), Rollout::Wait(_)));
        let done = [pod(0, "new"), pod(1, "new"), arbiter("new-a")];
        assert_eq!(next(&done, &both, &obs, h, now()), Rollout::Done);
    }
}
