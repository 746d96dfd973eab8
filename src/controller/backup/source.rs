//! Which member a backup dumps from. Pure.
//!
//! `mongodump --oplog` is a consistent snapshot only when every collection and the oplog come
//! from one member. It reads from that member alone (a direct connection): a healthy secondary
//! that has caught up, so the primary keeps its cache and its I/O for the application: a hidden
//! one first (`spec.memberRoles`), which no application reads from; never a delayed one, whose
//! data is hours old; the primary only when no secondary qualifies.

use crate::api::{MemberRole, MongoClusterStatus};
use crate::replset::planner::CAUGHT_UP_LAG_SECONDS;

/// The member chosen, as the cluster's status reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpFrom {
    /// The member's Pod.
    pub pod: String,
    /// Its state when it was chosen: SECONDARY or PRIMARY.
    pub state: String,
}

impl DumpFrom {
    /// The Pod's ordinal (its name's last part).
    pub fn ordinal(&self) -> Option<i32> {
        self.pod.rsplit('-').next()?.parse().ok()
    }
}

/// A healthy SECONDARY within the caught-up lag, not delayed (a hidden one first, then the
/// least behind; the highest ordinal among equals, the member a rollout restarts first, least
/// likely to be the primary next), else a healthy PRIMARY; None when the cluster has neither.
pub fn dump_member(status: &MongoClusterStatus) -> Option<DumpFrom> {
    let secondary = status
        .members
        .iter()
        .filter(|m| m.healthy && m.state == "SECONDARY" && m.role != Some(MemberRole::Delayed))
        .filter_map(|m| m.lag_seconds.filter(|lag| *lag <= CAUGHT_UP_LAG_SECONDS).map(|lag| (lag, m)))
        .min_by_key(|(lag, m)| (m.role != Some(MemberRole::Hidden), *lag, std::cmp::Reverse(ordinal(&m.name))));
    if let Some((_, m)) = secondary {
        return Some(DumpFrom { pod: m.name.clone(), state: m.state.clone() });
    }
    let primary = status.primary.as_deref()?;
    status
        .members
        .iter()
        .find(|m| m.name == primary && m.healthy && m.state == "PRIMARY")
        .map(|m| DumpFrom { pod: m.name.clone(), state: m.state.clone() })
}

fn ordinal(pod: &str) -> i32 {
    pod.rsplit('-').next().and_then(|o| o.parse().ok()).unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MemberStatus;

    fn member(name: &str, state: &str, healthy: bool, lag: Option<i64>) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            state: state.into(),
            healthy,
            lag_seconds: lag,
            voting: true,
            ..MemberStatus::default()
        }
    }

    fn status(members: Vec<MemberStatus>) -> MongoClusterStatus {
        let primary = members.iter().find(|m| m.state == "PRIMARY").map(|m| m.name.clone());
        MongoClusterStatus { members, primary, ..MongoClusterStatus::default() }
    }

    #[test]
    fn a_caught_up_secondary_first_the_least_behind_then_the_highest_ordinal() {
        let s = status(vec![
            member("db-0", "PRIMARY", true, Some(0)),
            member("db-1", "SECONDARY", true, Some(2)),
            member("db-2", "SECONDARY", true, Some(0)),
            member("db-3", "SECONDARY", true, Some(0)),
        ]);
        assert_eq!(dump_member(&s), Some(DumpFrom { pod: "db-3".into(), state: "SECONDARY".into() }));
        assert_eq!(dump_member(&s).and_then(|d| d.ordinal()), Some(3));
    }

    #[test]
    fn a_hidden_member_first_and_never_a_delayed_one() {
        let with = |name: &str, role: MemberRole, lag: i64| MemberStatus {
            role: Some(role),
            ..member(name, "SECONDARY", true, Some(lag))
        };
        let s = status(vec![
            member("db-0", "PRIMARY", true, Some(0)),
            with("db-1", MemberRole::Hidden, 2),
            with("db-2", MemberRole::Electable, 0),
            with("db-3", MemberRole::Delayed, 0),
        ]);
        assert_eq!(dump_member(&s).map(|d| d.pod), Some("db-1".to_string()), "hidden, though further behind");
        let only_delayed = status(vec![member("db-0", "PRIMARY", true, Some(0)), with("db-3", MemberRole::Delayed, 0)]);
        assert_eq!(dump_member(&only_delayed).map(|d| d.pod), Some("db-0".to_string()));
    }

    #[test]
    fn never_a_lagging_unhealthy_or_syncing_member_and_the_primary_only_last() {
        let s = status(vec![
            member("db-0", "PRIMARY", true, Some(0)),
            member("db-1", "SECONDARY", true, Some(3600)),
            member("db-2", "SECONDARY", false, Some(0)),
            member("db-3", "STARTUP2", true, Some(0)),
            member("db-4", "SECONDARY", true, None),
        ]);
        assert_eq!(dump_member(&s), Some(DumpFrom { pod: "db-0".into(), state: "PRIMARY".into() }));
        let alone = status(vec![member("db-0", "PRIMARY", true, Some(0))]);
        assert_eq!(dump_member(&alone).map(|d| d.pod), Some("db-0".to_string()));
        let none = status(vec![member("db-0", "SECONDARY", false, Some(0))]);
        assert_eq!(dump_member(&none), None);
    }
}
