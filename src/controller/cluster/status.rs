//! The status stage: conditions, phase, per-member state, from what the reconcile saw and did.
//! Pure; the reconcile writes the result only when it differs from what is stored.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::api::{
    ClusterPhase, ConnectionStatus, MemberRole, MemberStatus, MongoClusterSpec, MongoClusterStatus, RestoreStatus,
    Standing, condition, condition_type, kstatus_conditions,
};
use crate::build::names::ClusterNames;
use crate::build::network_policy;
use crate::replset::{MemberConfig, MemberState, Observed, member_pod, same_host};

use super::validate::{Problem, Version};
use super::world::MemberPod;

/// The versions a reconcile read.
#[derive(Clone, Debug, PartialEq)]
pub struct SeenVersions {
    /// The version every member runs, when they all run the same one.
    pub common: Option<String>,
    /// The featureCompatibilityVersion, from the primary.
    pub fcv: Option<String>,
}

/// Where the reconcile got to.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// `spec.paused`: nothing was changed.
    Paused,
    /// A blocking problem: nothing was changed.
    Blocked,
    /// A step was taken (reason, message).
    Acting(&'static str, String),
    /// Waiting for the world before the next step (reason, message).
    Waiting(&'static str, String),
    /// Waiting for something only the user can change (reason, message): not Ready, Degraded,
    /// and Stalled for kstatus and Flux.
    Stuck(&'static str, String),
    /// Everything matches the spec.
    InSync,
}

/// What the status is made from.
pub struct Inputs<'a> {
    pub names: &'a ClusterNames,
    pub domain: &'a str,
    pub spec: &'a MongoClusterSpec,
    pub generation: Option<i64>,
    pub previous: Option<&'a MongoClusterStatus>,
    pub pods: &'a [MemberPod],
    pub observed: Option<&'a Observed>,
    pub progress: &'a Progress,
    pub problems: &'a [Problem],
    /// What the members run and the FCV, when this reconcile read them.
    pub versions: Option<SeenVersions>,
    /// What happens to the featureCompatibilityVersion next, when this reconcile decided it.
    pub feature_compatibility_message: Option<String>,
    /// The restore's status when this reconcile changed it; otherwise the previous one stays.
    pub restore: Option<RestoreStatus>,
    /// TLS as the members run it, when this reconcile read it; otherwise the previous stays.
    pub tls: Option<crate::api::TlsStatus>,
    /// The PodMonitor kept, when this reconcile looked at it; otherwise the previous stays.
    pub pod_monitor: Option<Option<String>>,
    /// The answer to a step-down request given by this reconcile; otherwise the previous stays.
    pub step_down: Option<crate::api::StepDownStatus>,
    pub now: Timestamp,
}

fn state_name(s: MemberState) -> &'static str {
    match s {
        MemberState::Startup => "STARTUP",
        MemberState::Primary => "PRIMARY",
        MemberState::Secondary => "SECONDARY",
        MemberState::Recovering => "RECOVERING",
        MemberState::Startup2 => "STARTUP2",
        MemberState::Unknown => "UNKNOWN",
        MemberState::Arbiter => "ARBITER",
        MemberState::Down => "DOWN",
        MemberState::Rollback => "ROLLBACK",
        MemberState::Removed => "REMOVED",
    }
}

/// What a member's config entry makes of it. A delay is named before hiding: the server
/// requires priority 0 of a delayed member (`MemberConfig::MemberConfig` in
/// src/mongo/db/repl/member_config.cpp), and the delay is what a reader needs to know.
fn role(m: &MemberConfig) -> MemberRole {
    if m.is_arbiter() {
        MemberRole::Arbiter
    } else if m.delay_seconds() > 0 {
        MemberRole::Delayed
    } else if m.is_hidden() {
        MemberRole::Hidden
    } else if !m.is_voter() {
        MemberRole::NonVoting
    } else if m.priority <= 0.0 {
        MemberRole::Passive
    } else {
        MemberRole::Electable
    }
}

fn members(i: &Inputs<'_>) -> Vec<MemberStatus> {
    let mut out: Vec<MemberStatus> = Vec::new();
    if let Some(obs) = i.observed {
        for m in &obs.config.members {
            let seen = obs.members.iter().find(|o| same_host(&o.host, &m.host));
            out.push(MemberStatus {
                name: member_pod(&m.host).to_string(),
                state: seen.map_or("UNKNOWN", |o| state_name(o.state)).to_string(),
                healthy: seen.is_some_and(|o| o.healthy),
                lag_seconds: seen.and_then(|o| o.lag_seconds),
                voting: m.is_voter(),
                priority: Some(m.priority),
                role: Some(role(m)),
            });
        }
    }
    for p in i.pods {
        if !out.iter().any(|m| m.name == p.name) {
            out.push(MemberStatus { name: p.name.clone(), state: "(not in set)".into(), ..MemberStatus::default() });
        }
    }
    // By ordinal, the arbiter last.
    out.sort_by_key(|m| {
        let ordinal = m.name.rsplit('-').next().and_then(|o| o.parse::<i32>().ok()).unwrap_or(i32::MAX);
        (is_arbiter(i.names, m), ordinal)
    });
    out
}

/// The arbiter, as the config has it or, before it is in the set, by its Pod's name.
fn is_arbiter(names: &ClusterNames, m: &MemberStatus) -> bool {
    m.role == Some(MemberRole::Arbiter) || m.name == names.arbiter_pod()
}

fn ready_members(i: &Inputs<'_>, members: &[MemberStatus]) -> i32 {
    let count = members
        .iter()
        .filter(|m| m.healthy && (m.state == "PRIMARY" || m.state == "SECONDARY"))
        .filter(|m| i.pods.iter().any(|p| p.name == m.name && p.ready && !p.terminating))
        .count();
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// Whether NetworkPolicies fence the Pods, so that `kubectl get` shows an unfenced cluster.
fn isolation(i: &Inputs<'_>, previous: &[Condition]) -> Condition {
    let (on, reason, message) = if i.spec.network_isolation.enabled {
        (
            true,
            "PoliciesApplied",
            format!(
                "NetworkPolicies {} and {} refuse every connection that no rule or NetworkPolicyAttachment admits",
                network_policy::members_policy_name(i.names),
                network_policy::jobs_policy_name(i.names)
            ),
        )
    } else {
        (
            false,
            "Disabled",
            "spec.networkIsolation.enabled is false: any Pod that can reach the members can connect".to_string(),
        )
    };
    condition(previous, condition_type::NETWORK_ISOLATED, on, reason, message, i.generation, i.now)
}

/// The status to write.
pub fn build(i: &Inputs<'_>) -> MongoClusterStatus {
    let previous = i.previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let members = members(i);
    let ready_members = ready_members(i, &members);
    let primary = i.observed.and_then(|o| o.primary.as_deref()).map(|h| member_pod(h).to_string());
    // Every data-bearing member ready, and the arbiter, when the spec has one, in the set and
    // healthy; an arbiter that is leaving is not waited for.
    let arbiter = |m: &&MemberStatus| is_arbiter(i.names, m);
    let data_members = members.iter().filter(|m| !arbiter(m)).count();
    let arbiter_ready = !i.spec.arbiter.enabled
        || members.iter().filter(arbiter).any(|m| m.healthy && m.state == state_name(MemberState::Arbiter));
    let all_ready = ready_members >= i.spec.members
        && data_members == usize::try_from(i.spec.members).unwrap_or(0)
        && arbiter_ready;
    let blocking = i.problems.iter().find(|p| p.blocks_all);
    let serving = primary.is_some();

    let (ready, ready_reason, ready_message): (bool, &str, String) = match (i.progress, blocking) {
        (_, Some(p)) => (false, p.reason, p.message.clone()),
        (Progress::Paused, _) => (false, "Paused", "spec.paused is true: the operator changes nothing".into()),
        (Progress::InSync, _) if all_ready => (
            true,
            "Ready",
            format!(
                "{ready_members} of {} members ready; primary {}",
                i.spec.members,
                primary.clone().unwrap_or_default()
            ),
        ),
        (Progress::InSync, _) if !arbiter_ready && ready_members >= i.spec.members => {
            (false, "ArbiterNotReady", format!("{} is not a healthy arbiter of the set yet", i.names.arbiter_pod()))
        }
        (Progress::InSync, _) => {
            (false, "MembersNotReady", format!("{ready_members} of {} members ready", i.spec.members))
        }
        (Progress::Acting(r, m) | Progress::Waiting(r, m) | Progress::Stuck(r, m), _) => (false, r, m.clone()),
        (Progress::Blocked, None) => (false, "Blocked", "a problem blocks every change".into()),
    };
    let progressing = matches!(i.progress, Progress::Acting(..) | Progress::Waiting(..));
    let (progress_reason, progress_message) = match i.progress {
        Progress::Acting(r, m) | Progress::Waiting(r, m) | Progress::Stuck(r, m) => (*r, m.clone()),
        Progress::Paused => ("Paused", "spec.paused is true".to_string()),
        Progress::Blocked => ("Blocked", blocking.map(|p| p.message.clone()).unwrap_or_default()),
        Progress::InSync => ("InSync", "the replica set matches the spec".to_string()),
    };
    let degraded_by: Option<(&str, String)> = match (i.problems.first(), serving, i.observed) {
        (Some(p), _, _) => Some((p.reason, p.message.clone())),
        (None, _, _) if matches!(i.progress, Progress::Stuck(..)) => Some((ready_reason, ready_message.clone())),
        (None, false, Some(_)) => Some(("NoPrimary", "the replica set has no primary".into())),
        (None, _, Some(_)) if !progressing && !all_ready => {
            Some(("MembersUnhealthy", format!("{ready_members} of {} members are healthy", i.spec.members)))
        }
        _ => None,
    };
    let g = i.generation;
    let conditions = vec![
        condition(previous, condition_type::READY, ready, ready_reason, ready_message.clone(), g, i.now),
        condition(previous, condition_type::PROGRESSING, progressing, progress_reason, progress_message, g, i.now),
        match &degraded_by {
            Some((r, m)) => condition(previous, condition_type::DEGRADED, true, r, m.clone(), g, i.now),
            None => {
                condition(previous, condition_type::DEGRADED, false, "Healthy", "nothing needs attention", g, i.now)
            }
        },
        isolation(i, previous),
    ];
    // A spec the operator refuses, or a failed restore, waits for the user; a paused cluster
    // stands still on purpose; anything else not Ready is still on its way.
    let stuck = matches!(i.progress, Progress::Stuck(..));
    let standing = if blocking.is_some() || stuck || ready_reason == super::restore::RESTORE_FAILED {
        Standing::Stalled(ready_reason, &ready_message)
    } else if ready || matches!(i.progress, Progress::Paused) {
        Standing::Current
    } else {
        Standing::Reconciling(ready_reason, &ready_message)
    };
    let conditions: Vec<_> = conditions.into_iter().chain(kstatus_conditions(previous, standing, g, i.now)).collect();
    let phase = if matches!(i.progress, Progress::Paused) {
        ClusterPhase::Paused
    } else if blocking.is_some() && i.observed.is_none() {
        ClusterPhase::Failed
    } else if i.observed.is_none() {
        ClusterPhase::Creating
    } else if ready {
        ClusterPhase::Ready
    } else if degraded_by.is_some() && !progressing {
        ClusterPhase::Degraded
    } else {
        ClusterPhase::Updating
    };
    let connection = ConnectionStatus {
        host: format!("{}.{}.svc.{}", i.names.client_service(), i.names.namespace, i.domain),
        port: i32::from(crate::replset::config::MONGODB_PORT),
        secret_name: None,
        // What the replica set announces (its horizons), not what the spec asks for: a client
        // gets these names back only once the reconfig that sets them is in.
        external_hosts: match i.observed {
            Some(obs) => obs.config.members.iter().filter_map(|m| m.external_host().map(str::to_string)).collect(),
            None => {
                i.previous.and_then(|p| p.connection.as_ref()).map(|c| c.external_hosts.clone()).unwrap_or_default()
            }
        },
        updated: None,
    };
    let connection = match i.previous.and_then(|p| p.connection.clone()) {
        Some(prev)
            if prev.host == connection.host
                && prev.port == connection.port
                && prev.external_hosts == connection.external_hosts =>
        {
            prev
        }
        _ => ConnectionStatus { updated: Some(Time(i.now)), ..connection },
    };
    // The version every member runs, kept from before while they differ (a rollout), and when
    // its release began: the featureCompatibilityVersion's soak time counts from there.
    let previous_version = i.previous.and_then(|p| p.version.clone());
    let version = i.versions.as_ref().and_then(|v| v.common.clone()).or_else(|| previous_version.clone());
    let version_since = version.as_deref().and_then(Version::parse).map(|release| {
        Time(super::upgrade::release_since(
            previous_version.as_deref(),
            i.previous.and_then(|p| p.version_since.as_ref()).map(|t| t.0),
            &release,
            i.now,
        ))
    });
    MongoClusterStatus {
        phase: Some(phase),
        conditions,
        observed_generation: g,
        members,
        primary,
        ready_members,
        version: version.clone(),
        version_since,
        feature_compatibility_version: i
            .versions
            .as_ref()
            .and_then(|v| v.fcv.clone())
            .or_else(|| i.previous.and_then(|p| p.feature_compatibility_version.clone())),
        feature_compatibility_message: i
            .feature_compatibility_message
            .clone()
            .or_else(|| i.previous.and_then(|p| p.feature_compatibility_message.clone())),
        connection: Some(connection),
        restore: i.restore.clone().or_else(|| i.previous.and_then(|p| p.restore.clone())),
        tls: i.tls.clone().or_else(|| i.previous.and_then(|p| p.tls.clone())),
        pod_monitor: i.pod_monitor.clone().unwrap_or_else(|| i.previous.and_then(|p| p.pod_monitor.clone())),
        step_down: i.step_down.clone().or_else(|| i.previous.and_then(|p| p.step_down.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_member_gets_the_role_its_config_entry_gives_it() {
        let entry = |extra: mongodb::bson::Document| -> MemberConfig {
            let mut d = mongodb::bson::doc! { "_id": 0, "host": "orders-0:27017" };
            d.extend(extra);
            mongodb::bson::from_document(d).expect("member")
        };
        use mongodb::bson::doc;
        let cases = [
            (doc! {}, MemberRole::Electable),
            (doc! { "priority": 0.5 }, MemberRole::Electable),
            (doc! { "priority": 0 }, MemberRole::Passive),
            (doc! { "votes": 0, "priority": 0 }, MemberRole::NonVoting),
            (doc! { "priority": 0, "hidden": true }, MemberRole::Hidden),
            (doc! { "priority": 0, "hidden": true, "secondaryDelaySecs": 3600_i64 }, MemberRole::Delayed),
            (doc! { "priority": 0, "secondaryDelaySecs": 60 }, MemberRole::Delayed),
            (doc! { "priority": 0, "hidden": true, "secondaryDelaySecs": 0 }, MemberRole::Hidden),
            (doc! { "arbiterOnly": true, "priority": 0 }, MemberRole::Arbiter),
        ];
        for (extra, expected) in cases {
            let shown = format!("{extra}");
            assert_eq!(role(&entry(extra)), expected, "{shown}");
        }
    }

    fn inputs<'a>(
        names: &'a ClusterNames,
        spec: &'a MongoClusterSpec,
        progress: &'a Progress,
        previous: Option<&'a MongoClusterStatus>,
    ) -> Inputs<'a> {
        Inputs {
            names,
            domain: "cluster.local",
            spec,
            generation: Some(4),
            previous,
            pods: &[],
            observed: None,
            progress,
            problems: &[],
            versions: None,
            feature_compatibility_message: None,
            restore: None,
            tls: None,
            pod_monitor: None,
            step_down: None,
            now: "2026-12-04T12:00:00Z".parse().unwrap(),
        }
    }

    fn condition<'a>(status: &'a MongoClusterStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).expect("condition")
    }

    #[test]
    fn a_wait_only_the_user_can_end_is_stalled_not_progressing() {
        let names = ClusterNames::new("orders", "shop");
        let spec: MongoClusterSpec = serde_json::from_value(serde_json::json!({"version": "8.0.4"})).unwrap();
        let stuck = Progress::Stuck("RolloutStuck", "member orders-2 has not become ready".into());
        let status = build(&inputs(&names, &spec, &stuck, None));
        assert_eq!(condition(&status, "Ready").status, "False");
        assert_eq!(condition(&status, "Progressing").status, "False");
        assert_eq!(condition(&status, "Stalled").status, "True");
        assert_eq!(condition(&status, "Stalled").reason, "RolloutStuck");
        assert_eq!(condition(&status, "Reconciling").status, "False");
        assert_eq!(condition(&status, "Degraded").status, "True");
        let waiting = Progress::Waiting("RollingOut", "member orders-2 is restarting".into());
        let status = build(&inputs(&names, &spec, &waiting, None));
        assert_eq!(condition(&status, "Reconciling").status, "True");
        assert_eq!(condition(&status, "Stalled").status, "False");
    }

    #[test]
    fn the_version_and_its_start_are_kept_while_members_differ() {
        let names = ClusterNames::new("orders", "shop");
        let spec: MongoClusterSpec = serde_json::from_value(serde_json::json!({"version": "8.0.4"})).unwrap();
        let then: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let previous = MongoClusterStatus {
            version: Some("7.0.12".into()),
            version_since: Some(Time(then)),
            ..MongoClusterStatus::default()
        };
        let progress = Progress::InSync;
        let mut i = inputs(&names, &spec, &progress, Some(&previous));
        i.versions = Some(SeenVersions { common: None, fcv: Some("7.0".into()) });
        let status = build(&i);
        assert_eq!(status.version.as_deref(), Some("7.0.12"), "mixed binaries keep the last common version");
        assert_eq!(status.version_since, Some(Time(then)));
        i.versions = Some(SeenVersions { common: Some("8.0.4".into()), fcv: Some("7.0".into()) });
        let status = build(&i);
        assert_eq!(status.version.as_deref(), Some("8.0.4"));
        assert_eq!(status.version_since, Some(Time(i.now)), "a new release starts its soak now");
        assert_eq!(status.feature_compatibility_version.as_deref(), Some("7.0"));
    }

    #[test]
    fn a_cluster_with_an_arbiter_is_ready_once_its_members_are_and_the_arbiter_answers_as_one() {
        use crate::replset::{ObservedMember, ReplSetConfig};
        let names = ClusterNames::new("orders", "shop");
        let spec: MongoClusterSpec =
            serde_json::from_value(serde_json::json!({"version": "8.0.4", "members": 2, "arbiter": {"enabled": true}}))
                .unwrap();
        let host = |pod: &str| format!("{pod}.orders-members.shop.svc.cluster.local:27017");
        let config = ReplSetConfig {
            set_name: "orders".into(),
            version: 5,
            term: Some(1),
            protocol_version: 1,
            members: vec![
                MemberConfig::new(0, host("orders-0"), true),
                MemberConfig::new(1, host("orders-1"), true),
                MemberConfig::arbiter(2, host("orders-arbiter-0")),
            ],
            other: Default::default(),
        };
        let seen = |pod: &str, state: MemberState, healthy: bool| ObservedMember {
            host: host(pod),
            state,
            healthy,
            lag_seconds: Some(0),
        };
        let observed = Observed {
            config,
            committed: true,
            primary: Some(host("orders-0")),
            members: vec![
                seen("orders-0", MemberState::Primary, true),
                seen("orders-1", MemberState::Secondary, true),
                seen("orders-arbiter-0", MemberState::Arbiter, true),
            ],
            default_write_concern: Some("majority".into()),
        };
        let pod = |name: &str, ordinal: i32, arbiter: bool| MemberPod {
            name: name.into(),
            ordinal,
            ip: Some("10.0.0.1".into()),
            revision: None,
            ready: true,
            terminating: false,
            uid: None,
            created: None,
            tls_started: true,
            ca_file: None,
            restart_requested: false,
            serves_clients: None,
            arbiter,
        };
        let pods = [pod("orders-0", 0, false), pod("orders-1", 1, false), pod("orders-arbiter-0", 0, true)];
        let progress = Progress::InSync;
        let mut i = inputs(&names, &spec, &progress, None);
        i.pods = &pods;
        i.observed = Some(&observed);
        let status = build(&i);
        assert_eq!(condition(&status, "Ready").status, "True", "{:?}", condition(&status, "Ready"));
        assert_eq!(status.ready_members, 2, "data-bearing members only");
        let names_in_order: Vec<&str> = status.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names_in_order, ["orders-0", "orders-1", "orders-arbiter-0"], "the arbiter last");
        assert_eq!(status.members[2].role, Some(MemberRole::Arbiter));
        // The arbiter down: not Ready, and the condition says which.
        let mut down = observed.clone();
        down.members[2] = seen("orders-arbiter-0", MemberState::Down, false);
        i.observed = Some(&down);
        let status = build(&i);
        assert_eq!(condition(&status, "Ready").status, "False");
        assert_eq!(condition(&status, "Ready").reason, "ArbiterNotReady");
    }
}
