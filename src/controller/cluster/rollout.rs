//! The rollout order: which member restarts next after a change to the Pod template (the
//! StatefulSet uses `OnDelete`, so nothing restarts until the operator deletes a Pod). Pure.
//!
//! One member at a time, secondaries first (highest ordinal first, like a StatefulSet's own
//! rolling update), each only when every other member is a healthy, caught-up PRIMARY or
//! SECONDARY and every Pod is ready; the primary last, after it has stepped down.

use crate::replset::{Observed, same_host};

use super::world::MemberPod;

/// What the rollout wants now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// Every member runs the latest revision.
    Done,
    /// A restart is due but not safe yet.
    Wait(String),
    /// Delete this Pod (a secondary) so it comes back on the latest revision.
    Restart { pod: String, uid: Option<String> },
    /// Only the primary is left: it must step down first (the planner decides when).
    StepDownPrimary { host: String },
}

/// A member's host, as in the replica-set config, for a Pod.
pub type HostOf<'a> = &'a dyn Fn(i32) -> String;

pub fn next(pods: &[MemberPod], update_revision: Option<&str>, observed: &Observed, host_of: HostOf<'_>) -> Rollout {
    let Some(update) = update_revision else {
        return Rollout::Wait("the StatefulSet controller has not yet seen the latest template".into());
    };
    let stale: Vec<&MemberPod> = pods.iter().filter(|p| p.revision.as_deref() != Some(update)).collect();
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
    let is_primary = |p: &MemberPod| observed.primary.as_deref().is_some_and(|h| same_host(h, &host_of(p.ordinal)));
    if let Some(p) = stale.iter().filter(|p| !is_primary(p)).max_by_key(|p| p.ordinal) {
        return Rollout::Restart { pod: p.name.clone(), uid: p.uid.clone() };
    }
    match &observed.primary {
        Some(h) => Rollout::StepDownPrimary { host: h.clone() },
        None => Rollout::Wait("no primary".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replset::{MemberConfig, MemberState, ObservedMember, ReplSetConfig};

    fn host(i: i32) -> String {
        format!("db-{i}.db-members.ns.svc.cluster.local:27017")
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
        }
    }

    fn observed(primary: i32, lag: i64) -> Observed {
        let config = ReplSetConfig {
            set_name: "db".into(),
            version: 3,
            term: Some(1),
            protocol_version: 1,
            members: (0..3).map(|i| MemberConfig::new(i64::from(i), host(i), true)).collect(),
            other: Default::default(),
        };
        Observed {
            config,
            committed: true,
            primary: Some(host(primary)),
            members: (0..3)
                .map(|i| ObservedMember {
                    host: host(i),
                    state: if i == primary { MemberState::Primary } else { MemberState::Secondary },
                    healthy: true,
                    lag_seconds: Some(if i == primary { 0 } else { lag }),
                })
                .collect(),
        }
    }

    #[test]
    fn secondaries_first_highest_ordinal_first_then_the_primary() {
        let obs = observed(2, 0);
        let h: HostOf<'_> = &host;
        let all_old = [pod(0, "old"), pod(1, "old"), pod(2, "old")];
        assert_eq!(
            next(&all_old, Some("new"), &obs, h),
            Rollout::Restart { pod: "db-1".into(), uid: Some("uid-1".into()) }
        );
        let one_done = [pod(0, "old"), pod(1, "new"), pod(2, "old")];
        assert_eq!(
            next(&one_done, Some("new"), &obs, h),
            Rollout::Restart { pod: "db-0".into(), uid: Some("uid-0".into()) }
        );
        let primary_left = [pod(0, "new"), pod(1, "new"), pod(2, "old")];
        assert_eq!(next(&primary_left, Some("new"), &obs, h), Rollout::StepDownPrimary { host: host(2) });
        let done = [pod(0, "new"), pod(1, "new"), pod(2, "new")];
        assert_eq!(next(&done, Some("new"), &obs, h), Rollout::Done);
    }

    #[test]
    fn waits_for_every_member_to_be_healthy_and_caught_up() {
        let h: HostOf<'_> = &host;
        let all_old = [pod(0, "old"), pod(1, "old"), pod(2, "old")];
        assert!(matches!(next(&all_old, Some("new"), &observed(2, 60), h), Rollout::Wait(_)));
        let mut restarting = all_old.clone();
        restarting[0].ready = false;
        assert!(matches!(next(&restarting, Some("new"), &observed(2, 0), h), Rollout::Wait(_)));
        let mut down = observed(2, 0);
        down.members[0].healthy = false;
        assert!(matches!(next(&all_old, Some("new"), &down, h), Rollout::Wait(_)));
        assert!(matches!(next(&all_old, None, &observed(2, 0), h), Rollout::Wait(_)));
    }
}
