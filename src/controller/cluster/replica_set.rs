//! The replica-set stage: observe the members, then carry out the planner's one step.

#[cfg(test)]
use crate::api::DefaultWriteConcern;
use crate::api::{MemberRoleKind, MemberRoleSpec};
use crate::build::backup_job::LEGACY_RESTORE_USER;
use crate::build::names::ClusterNames;
use crate::controller::error::{Error, KubeContext};
use crate::mongo::{
    AdminError, Credentials, MongoAdmin, OPERATOR_USER, Observation, Reachable, Role, Target, UserRequest, observe,
};
use crate::replset::{DesiredMember, MemberSettings, Observed, Step, member_pod, same_host};

use super::objects::InternalCredentials;
use super::world::MemberPod;

/// The roles of the operator's own user: replica-set administration and user administration,
/// and nothing that reads application data.
pub fn operator_roles() -> Vec<Role> {
    vec![
        Role { role: "clusterAdmin".into(), db: "admin".into() },
        Role { role: "userAdminAnyDatabase".into(), db: "admin".into() },
    ]
}

/// The members the operator can talk to: Pods with an IP that are not being deleted. Each is
/// dialled by its DNS name (the headless Service publishes not-ready Pods too), the name the
/// member's certificate is issued for, so that the operator checks a member's certificate
/// against the name it meant to reach and not only against the cluster's CA.
///
/// The arbiter is always dialled as `__system` (`system`): it holds no data, so no user of
/// the set exists on it and any other login fails; the keyFile's internal user is not stored
/// data (`AuthorizationManager` answers it from `internalSecurity`), which is how the members
/// themselves log in to it.
pub fn reachable(
    names: &ClusterNames,
    domain: &str,
    pods: &[MemberPod],
    creds: &Credentials,
    system: &Credentials,
) -> Vec<Reachable> {
    pods.iter()
        .filter(|p| !p.terminating && p.ip.is_some())
        .map(|p| {
            let host = p.host(names, domain);
            let tls = p.tls_started.then(|| p.ca_file.clone()).flatten();
            let credentials = Some(if p.arbiter { system.clone() } else { creds.clone() });
            Reachable { target: Target { address: host.clone(), credentials, tls }, host }
        })
        .collect()
}

/// The members the spec wants: ordinals `0..members`, ready once their mongod answered, with
/// their external address when the cluster is exposed per member.
pub fn desired(
    names: &ClusterNames,
    domain: &str,
    spec: &crate::api::MongoClusterSpec,
    seen: &Observation,
    member_services: &super::external::MemberServices,
) -> Vec<DesiredMember> {
    let seen_as = |host: &str| {
        let ready = seen.answered.iter().any(|a| same_host(a, host));
        let removed = seen.removed.iter().any(|a| same_host(a, host));
        (ready, removed)
    };
    let (members, per_member, roles) = (spec.members, spec.expose.per_member.as_ref(), &spec.member_roles);
    let mut desired: Vec<DesiredMember> = (0..members)
        .map(|i| {
            let host = names.member_host(i, domain);
            let (ready, removed) = seen_as(&host);
            let external = super::external::external(per_member, names, i, member_services);
            let settings = member_settings(roles, i);
            DesiredMember { host, ordinal: i64::from(i), ready, removed, external, settings }
        })
        .collect();
    if spec.arbiter.enabled {
        let writes = spec.arbiter.default_write_concern;
        let host = names.arbiter_host(domain);
        let (ready, removed) = seen_as(&host);
        // Its preferred `_id` follows the data members' ordinals, clear of theirs.
        let ordinal = i64::from(members.max(0));
        let (external, settings) = (crate::replset::External::NotExposed, MemberSettings::arbiter(writes));
        desired.push(DesiredMember { host, ordinal, ready, removed, external, settings });
    }
    desired
}

/// What `spec.memberRoles` makes of the member with `ordinal` (the first entry that lists it;
/// validation refuses an ordinal listed twice).
pub fn member_settings(roles: &[MemberRoleSpec], ordinal: i32) -> MemberSettings {
    let Some(role) = roles.iter().find(|r| r.ordinals.contains(&ordinal)) else { return MemberSettings::default() };
    let tags = role.tags.clone();
    match role.role {
        MemberRoleKind::Electable => {
            MemberSettings { priority: f64::from(role.priority.unwrap_or(1)), tags, ..MemberSettings::default() }
        }
        MemberRoleKind::NonVoting => {
            MemberSettings { may_vote: false, priority: 0.0, tags, ..MemberSettings::default() }
        }
        MemberRoleKind::Hidden => MemberSettings { priority: 0.0, hidden: true, tags, ..MemberSettings::default() },
        // Without a vote: a delayed voter's acknowledgement of `w: majority` writes would come
        // `delaySeconds` late whenever it is needed for the majority.
        MemberRoleKind::Delayed => MemberSettings {
            may_vote: false,
            priority: 0.0,
            hidden: true,
            delay_seconds: role.delay_seconds.unwrap_or(0),
            tags,
            ..MemberSettings::default()
        },
    }
}

/// How many of the spec's data-bearing members may vote by their role (`spec.memberRoles`).
pub fn may_vote(spec: &crate::api::MongoClusterSpec) -> usize {
    (0..spec.members).filter(|&i| member_settings(&spec.member_roles, i).may_vote).count()
}

/// How many votes the set has once the spec is in place: the data-bearing members that may
/// vote by their role, at most seven and an odd number with the arbiter's (the planner's
/// count), and the arbiter's.
pub fn votes_wanted(spec: &crate::api::MongoClusterSpec) -> usize {
    let may_vote = may_vote(spec);
    let arbiter = spec.arbiter.enabled;
    crate::replset::data_voters(may_vote, arbiter) + usize::from(arbiter)
}

/// What observing found, and with which credentials.
pub struct Seen {
    pub observation: Observation,
    /// The operator's own user could not log in (a set that was just initiated, or a lost
    /// password), so `__system` was used.
    pub as_system: bool,
}

/// Observes with the operator's user, falling back to `__system` when that user cannot log in.
/// Until the internal Secret records that MongoDB has the operator's user (a new set, or one
/// whose Secret was replaced), `__system` is used straight away: a login that is known to fail
/// costs a round trip and, in the driver, a server marked unusable until its next heartbeat.
pub async fn observe_set<A: MongoAdmin>(
    admin: &A,
    names: &ClusterNames,
    domain: &str,
    pods: &[MemberPod],
    creds: &InternalCredentials,
) -> Result<Seen, Error> {
    let as_system = || async {
        let as_system = reachable(names, domain, pods, &creds.system, &creds.system);
        let observation =
            observe(admin, &as_system, &creds.system).await.doing(|| "observing the replica set".into())?;
        Ok(Seen { observation, as_system: true })
    };
    if creds.operator_applied.as_deref() != Some(creds.operator_digest.as_str()) {
        return as_system().await;
    }
    let as_operator = reachable(names, domain, pods, &creds.operator, &creds.system);
    match observe(admin, &as_operator, &creds.system).await {
        Ok(observation) => Ok(Seen { observation, as_system: false }),
        // The user is gone or has another password (a restore replaced the users). A
        // connection that logged in before the user was dropped is answered Unauthorized, not
        // AuthenticationFailed: mongod takes a user that no longer exists out of the sessions
        // it authenticated (`AuthorizationSessionImpl::_refreshUserInfoAsNeeded`).
        Err(AdminError::AuthenticationFailed(_) | AdminError::UserNotFound(_) | AdminError::Unauthorized(_)) => {
            as_system().await
        }
        Err(source) => Err(Error::Mongo { action: "observing the replica set".into(), source }),
    }
}

/// The target of a member host (the arbiter's as `__system`, see [`reachable`]).
pub fn target_of(
    names: &ClusterNames,
    domain: &str,
    pods: &[MemberPod],
    host: &str,
    creds: &InternalCredentials,
    as_system: bool,
) -> Option<Target> {
    let user = if as_system { &creds.system } else { &creds.operator };
    reachable(names, domain, pods, user, &creds.system).into_iter().find(|r| same_host(&r.host, host)).map(|r| r.target)
}

/// Creates the operator's user as `__system` on the primary, or resets its password and roles
/// when it exists (the internal Secret was replaced). Idempotent.
pub async fn ensure_operator_user<A: MongoAdmin>(
    admin: &A,
    primary: &Target,
    creds: &InternalCredentials,
) -> Result<(), Error> {
    let system = Target { credentials: Some(creds.system.clone()), ..primary.clone() };
    let request = UserRequest {
        db: "admin".into(),
        name: OPERATOR_USER.into(),
        password: Some(creds.operator.password.clone()),
        roles: Some(operator_roles()),
    };
    match admin.create_user(&system, &request).await {
        Ok(()) => Ok(()),
        Err(AdminError::UserExists(_)) => {
            admin.update_user(&system, &request).await.doing(|| "resetting the operator's own user".into())
        }
        Err(source) => Err(Error::Mongo { action: "creating the operator's own user".into(), source }),
    }
}

/// Creates (or resets) the users the operator's agents log in as, each with the least it
/// needs: backup Jobs with `backup`; the metrics exporter with `clusterMonitor` and `read` on
/// `local` (the oplog window), as its documentation asks. Drops the restore user older
/// operators created (restores log in as `__system` now).
pub async fn ensure_agent_users<A: MongoAdmin>(
    admin: &A,
    primary: &Target,
    creds: &InternalCredentials,
) -> Result<(), Error> {
    let role = |role: &str, db: &str| Role { role: role.into(), db: db.into() };
    let agents = [
        (&creds.backup, vec![role("backup", "admin")]),
        (&creds.monitor, vec![role("clusterMonitor", "admin"), role("read", "local")]),
    ];
    for (user, roles) in agents {
        let request = UserRequest {
            db: "admin".into(),
            name: user.username.clone(),
            password: Some(user.password.clone()),
            roles: Some(roles),
        };
        match admin.create_user(primary, &request).await {
            Ok(()) => {}
            Err(AdminError::UserExists(_)) => {
                admin.update_user(primary, &request).await.doing(|| format!("resetting user {}", user.username))?
            }
            Err(source) => return Err(Error::Mongo { action: format!("creating user {}", user.username), source }),
        }
    }
    let users = admin.users(primary, "admin").await.doing(|| "listing the users of admin".into())?;
    if !users.iter().any(|u| u.user == LEGACY_RESTORE_USER) {
        return Ok(());
    }
    match admin.drop_user(primary, "admin", LEGACY_RESTORE_USER).await {
        Ok(()) | Err(AdminError::UserNotFound(_)) => Ok(()),
        Err(source) => Err(Error::Mongo { action: format!("dropping user {LEGACY_RESTORE_USER}"), source }),
    }
}

/// A step that was carried out, for the Event and the status.
pub struct Done {
    pub reason: &'static str,
    pub message: String,
    /// The member concerned, for the Event's related object.
    pub member: Option<String>,
}

/// Carries out an `Initiate`, `Reconfig` or `StepDown`. Initiation runs on the lowest ordinal
/// as `__system` (no user exists yet); the rest on the primary.
pub async fn execute<A: MongoAdmin>(
    admin: &A,
    step: &Step,
    first: &Target,
    primary: Option<&Target>,
    creds: &InternalCredentials,
) -> Result<Option<Done>, Error> {
    match step {
        Step::Initiate(config) => {
            let target = Target { credentials: Some(creds.system.clone()), ..first.clone() };
            match admin.initiate(&target, config).await {
                // Initiated by an earlier life of the operator whose reply was lost.
                Ok(()) | Err(AdminError::AlreadyInitialized) => {}
                Err(source) => return Err(Error::Mongo { action: "initiating the replica set".into(), source }),
            }
            let hosts: Vec<&str> = config.members.iter().map(|m| m.host.as_str()).collect();
            Ok(Some(Done {
                reason: "Initiated",
                message: format!("initiated the replica set with {}", hosts.join(", ")),
                member: None,
            }))
        }
        Step::Reconfig { config, change } => {
            let Some(p) = primary else { return Ok(None) };
            admin.reconfig(p, config).await.doing(|| format!("reconfig to version {} ({change:?})", config.version))?;
            let (reason, message, host) = match change {
                crate::replset::Change::Add { host } => ("MemberAdded", format!("added {host} without a vote"), host),
                crate::replset::Change::Remove { host } => ("MemberRemoved", format!("removed {host}"), host),
                crate::replset::Change::Promote { host } => ("MemberPromoted", format!("{host} now votes"), host),
                crate::replset::Change::Demote { host } => ("MemberDemoted", format!("{host} no longer votes"), host),
                crate::replset::Change::Settings { hosts } => {
                    let pods: Vec<&str> = hosts.iter().map(|h| member_pod(h)).collect();
                    let message = format!(
                        "{} now {} as spec.memberRoles says (config version {})",
                        pods.join(", "),
                        if pods.len() == 1 {
                            "has the priority, visibility, delay and tags"
                        } else {
                            "have the priorities, visibility, delays and tags"
                        },
                        config.version
                    );
                    return Ok(Some(Done { reason: "MemberRolesChanged", message, member: None }));
                }
                crate::replset::Change::Horizons { external } => {
                    let message: String = match external {
                        true => "every member announces its external address to clients that name it".into(),
                        false => "no member announces an external address any more".into(),
                    };
                    let message = format!("{message} (config version {})", config.version);
                    return Ok(Some(Done { reason: "HorizonsChanged", message, member: None }));
                }
            };
            let message = format!("{message} (config version {})", config.version);
            Ok(Some(Done { reason, message, member: Some(member_pod(host).to_string()) }))
        }
        Step::StepDown { primary: host, reason } => {
            let Some(p) = primary else { return Ok(None) };
            admin.step_down(p, 60, 10).await.doing(|| format!("stepping down {host}"))?;
            Ok(Some(Done {
                reason: "PrimarySteppedDown",
                message: format!(
                    "{host} stepped down {}",
                    match reason {
                        crate::replset::StepDownReason::Removal => "before leaving the set",
                        crate::replset::StepDownReason::Restart => "before its restart",
                        crate::replset::StepDownReason::Requested => "as requested",
                        crate::replset::StepDownReason::RoleChange => "before its role takes it out of elections",
                    }
                ),
                member: Some(member_pod(host).to_string()),
            }))
        }
        Step::SetDefaultWriteConcern(writes) => {
            let Some(p) = primary else { return Ok(None) };
            admin
                .set_default_write_concern(p, *writes)
                .await
                .doing(|| format!("setting the cluster-wide default write concern to w: {}", writes.name()))?;
            Ok(Some(Done {
                reason: "DefaultWriteConcernSet",
                message: format!(
                    "set the cluster-wide default write concern to w: {} (spec.arbiter.defaultWriteConcern), as the \
                     server requires before an arbiter joins or leaves",
                    writes.name()
                ),
                member: None,
            }))
        }
        Step::Wait(_) | Step::InSync => Ok(None),
    }
}

/// The highest ordinal still in the replica set, so that the StatefulSet keeps its Pod until
/// the member has left.
pub fn highest_member_ordinal(names: &ClusterNames, observed: &Observed) -> Option<i32> {
    let prefix = format!("{}-", names.statefulset());
    observed.config.members.iter().filter_map(|m| member_pod(&m.host).strip_prefix(&prefix)?.parse().ok()).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> crate::api::MongoClusterSpec {
        serde_json::from_value(json).expect("spec")
    }

    #[test]
    fn the_arbiters_vote_counts_with_the_data_bearing_voters() {
        let votes = |json| votes_wanted(&spec(json));
        assert_eq!(votes(serde_json::json!({"version": "8.0.4", "members": 2, "arbiter": {"enabled": true}})), 3);
        assert_eq!(votes(serde_json::json!({"version": "8.0.4", "members": 4, "arbiter": {"enabled": true}})), 5);
        assert_eq!(votes(serde_json::json!({"version": "8.0.4", "members": 6, "arbiter": {"enabled": true}})), 7);
        assert_eq!(votes(serde_json::json!({"version": "8.0.4", "members": 2})), 1);
        // Three members, one of them delayed (no vote): two voters and the arbiter.
        let delayed = serde_json::json!({
            "version": "8.0.4", "members": 3, "arbiter": {"enabled": true},
            "memberRoles": [{"ordinals": [2], "role": "Delayed", "delaySeconds": 3600}],
        });
        assert_eq!(votes(delayed), 3);
    }

    #[test]
    fn the_arbiter_is_wanted_after_the_members_with_its_write_concern() {
        let names = ClusterNames::new("ledger", "bank");
        let seen = Observation { answered: Vec::new(), removed: Vec::new(), set: None };
        let services = super::super::external::MemberServices::new();
        let psa = spec(serde_json::json!({
            "version": "8.0.4", "members": 2, "arbiter": {"enabled": true, "defaultWriteConcern": "One"},
        }));
        let wanted = desired(&names, "cluster.local", &psa, &seen, &services);
        assert_eq!(wanted.len(), 3);
        let arbiter = &wanted[2];
        assert_eq!(arbiter.host, "ledger-arbiter-0.ledger-members.bank.svc.cluster.local:27017");
        assert_eq!(arbiter.ordinal, 2, "its preferred _id follows the members'");
        assert_eq!(arbiter.settings, MemberSettings::arbiter(DefaultWriteConcern::One));
        assert!(!arbiter.settings.electable());
    }
}
