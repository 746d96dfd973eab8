//! The validate stage: what CEL cannot check at admission because it needs the world (a Secret
//! that does not exist, a version the running one cannot reach). Pure.

use crate::api::PRIVATE_RANGES;
use crate::api::{MongoClusterSpec, MongoClusterStatus, UserSpec};
use crate::build::names::ClusterNames;
use crate::controller::AdminPolicy;

use super::world::World;

/// Something in the spec the operator refuses to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase, for the condition and the Event.
    pub reason: &'static str,
    pub message: String,
    /// True when the whole cluster must wait (nothing is changed); false when only the part
    /// concerned waits (for example one user whose Secret is missing).
    pub blocks_all: bool,
    /// The Secret the problem is about, when it is about one: its Event names it, so that two
    /// users' problems of the same kind are two Events, not one folded into the other.
    pub secret: Option<String>,
}

/// A `major.minor.patch` version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let mut parts = s.trim().split('.').map(|p| p.split(|c: char| !c.is_ascii_digit()).next().unwrap_or(""));
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(Version { major, minor, patch })
    }

    /// `major.minor`, the form of a featureCompatibilityVersion.
    pub fn feature_level(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

/// Whether the running `current` version (with its featureCompatibilityVersion) can move to
/// `target` by restarting members on the new binary: patch releases either way, and one major
/// release up from a set whose featureCompatibilityVersion is the current release. Downgrades
/// across releases need the featureCompatibilityVersion lowered by hand first.
pub fn version_path(current: &str, fcv: Option<&str>, target: &str) -> Result<(), String> {
    let (Some(cur), Some(tgt)) = (Version::parse(current), Version::parse(target)) else {
        return Err(format!("cannot compare versions {current:?} and {target:?}"));
    };
    if (cur.major, cur.minor) == (tgt.major, tgt.minor) {
        return Ok(());
    }
    if tgt > cur {
        if tgt.major > cur.major + 1 {
            return Err(format!(
                "version {target} cannot be reached from {current}: MongoDB upgrades one major release at a time \
                 ({}.0 first)",
                cur.major + 1
            ));
        }
        if let Some(f) = fcv
            && f != cur.feature_level()
        {
            return Err(format!(
                "version {target} cannot be reached from {current} while featureCompatibilityVersion is {f}; \
                 it must be {} first",
                cur.feature_level()
            ));
        }
        return Ok(());
    }
    match fcv {
        Some(f) if f == tgt.feature_level() && cur.major <= tgt.major + 1 => Ok(()),
        _ => Err(format!(
            "version {target} is older than the running {current}: a downgrade needs featureCompatibilityVersion \
             set to {level} first: set spec.featureCompatibility to {{policy: Manual, version: \"{level}\"}} and \
             wait for status.featureCompatibilityVersion {level}",
            level = tgt.feature_level()
        )),
    }
}

/// A load balancer open to ranges outside private space, which only the administrator may
/// allow: nothing changes until the range is narrowed, so an exposed database is never made.
fn public_load_balancer(policy: &AdminPolicy, spec: &MongoClusterSpec) -> Option<Problem> {
    let expose = &spec.expose;
    let per_member_field = match expose.per_member.as_ref().map(|p| p.node_port.is_some()) {
        Some(true) => "expose.perMember.nodePort",
        _ => "expose.perMember.loadBalancer",
    };
    let (field, public) = [
        ("expose.loadBalancer", expose.load_balancer.as_ref().map(|lb| lb.source_ranges.as_slice())),
        (per_member_field, expose.per_member.as_ref().map(|p| p.source_ranges())),
    ]
    .into_iter()
    .filter_map(|(field, ranges)| {
        let public: Vec<&str> = ranges?.iter().filter(|r| !r.is_private()).map(|r| r.0.as_str()).collect();
        (!public.is_empty()).then_some((field, public))
    })
    .next()?;
    if policy.allow_public_load_balancers {
        return None;
    }
    Some(Problem {
        reason: "PublicLoadBalancerRefused",
        message: format!(
            "{field}.sourceRanges {} reach outside private address space ({}); the operator's administrator has not \
             allowed public load balancers (--allow-public-load-balancers)",
            public.join(", "),
            PRIVATE_RANGES.join(", ")
        ),
        blocks_all: true,
        secret: None,
    })
}

/// Roles that leave no member able to become primary: the server refuses such a config
/// ("at least one non-arbiter member with priority > 0", `ReplSetConfig::_validate`), and a
/// set without one could never take a write.
fn no_electable_member(spec: &MongoClusterSpec) -> Option<Problem> {
    let electable =
        (0..spec.members).any(|ordinal| super::replica_set::member_settings(&spec.member_roles, ordinal).electable());
    (!electable).then(|| Problem {
        reason: "NoElectableMember",
        message: format!(
            "spec.memberRoles leaves none of the {} members Electable: at least one must be able to become primary",
            spec.members
        ),
        blocks_all: true,
        secret: None,
    })
}

/// A `podDisruptionBudget.maxUnavailable` more than the voting members can lose (non-voting
/// and delayed members do not vote): the budget is held to what keeps a majority, and the
/// cluster says so.
fn disruption_budget_held(spec: &MongoClusterSpec) -> Option<Problem> {
    let budget = &spec.pod_disruption_budget;
    let voters = super::replica_set::votes_wanted(spec);
    let held = crate::build::pdb::max_unavailable(budget, voters);
    (budget.enabled && held < budget.max_unavailable).then(|| Problem {
        reason: "DisruptionBudgetHeld",
        message: format!(
            "podDisruptionBudget.maxUnavailable is {}, but the set has only {voters} votes (spec.memberRoles, \
             spec.arbiter): the PodDisruptionBudget allows {held}, so that a majority of the voters stays up",
            budget.max_unavailable
        ),
        blocks_all: false,
        secret: None,
    })
}

/// An arbiter beside an odd number of members that may vote by their role (admission checks
/// the count only without `memberRoles`): its vote would take a data-bearing member's, so
/// that member is kept without one, and the cluster says so. Nothing is held up: the set
/// stays safe, it is only not what the user meant.
fn arbiter_takes_a_vote(spec: &MongoClusterSpec) -> Option<Problem> {
    if !spec.arbiter.enabled {
        return None;
    }
    let may_vote = super::replica_set::may_vote(spec);
    let voting = crate::replset::data_voters(may_vote, true);
    (voting != may_vote).then(|| Problem {
        reason: "ArbiterTakesAVote",
        message: format!(
            "spec.arbiter needs 2, 4 or 6 members that vote by their role, and {may_vote} do (spec.memberRoles): \
             with the arbiter's vote only {voting} of them vote; change the roles or the member count, or turn \
             the arbiter off"
        ),
        blocks_all: false,
        secret: None,
    })
}

/// Members exposed one by one whose load balancer has no host name yet (no `hostPattern`):
/// no member is announced outside Kubernetes until every one has one, and the rest goes on.
fn external_address_pending(names: &ClusterNames, spec: &MongoClusterSpec, world: &World) -> Option<Problem> {
    let per_member = spec.expose.per_member.as_ref()?;
    let pending: Vec<String> = (0..spec.members)
        .filter(|&i| {
            super::external::external(Some(per_member), names, i, &world.member_services)
                == crate::replset::External::Pending
        })
        .map(|i| names.member_service(i))
        .collect();
    (!pending.is_empty()).then(|| Problem {
        reason: "ExternalAddressPending",
        message: format!(
            "waiting for the load balancers of {} to get a host name (status.loadBalancer.ingress): the members \
             are announced to clients outside Kubernetes once every one has one; a load balancer that only gets \
             an IP address needs expose.perMember.hostPattern, as clients send no TLS SNI name for an address",
            pending.join(", ")
        ),
        blocks_all: false,
        secret: None,
    })
}

/// A connection Secret name that points at a Secret the operator did not create for this
/// cluster: the user is left alone rather than that Secret overwritten.
fn connection_secret_problem(names: &ClusterNames, user: &UserSpec, world: &World) -> Option<Problem> {
    let name = super::users::secret_name(names, user);
    let whose = world.foreign_secrets.get(&name)?;
    Some(Problem {
        reason: "ConnectionSecretNotOwned",
        message: format!(
            "user {}@{}: Secret {name} exists and is not one of this cluster's connection Secrets ({whose}); the \
             operator never writes to or deletes it: choose another connectionSecretName",
            user.name, user.db
        ),
        blocks_all: false,
        secret: Some(name),
    })
}

fn user_problem(user: &UserSpec, world: &World) -> Option<Problem> {
    let r = user.password_secret_ref.as_ref()?;
    let message = match world.password_secrets.get(&r.name) {
        Some(Some(secret)) => {
            let value = secret.data.as_ref().and_then(|d| d.get(&r.key));
            match value {
                Some(v) if !v.0.is_empty() && std::str::from_utf8(&v.0).is_ok() => return None,
                Some(_) => format!("key {:?} of Secret {} is empty or not UTF-8", r.key, r.name),
                None => format!("Secret {} has no key {:?}", r.name, r.key),
            }
        }
        _ => format!("Secret {} does not exist", r.name),
    };
    Some(Problem {
        reason: "PasswordSecretMissing",
        message: format!("user {}@{}: {message}; the user is left as it is until it can be read", user.name, user.db),
        blocks_all: false,
        secret: Some(r.name.clone()),
    })
}

/// Every problem, the blocking ones first.
pub fn validate(
    names: &ClusterNames,
    policy: &AdminPolicy,
    spec: &MongoClusterSpec,
    status: Option<&MongoClusterStatus>,
    world: &World,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    // What admission cannot see (dotted keys, paths): refused before any member restarts on it.
    if let Some(config) = spec.mongod.as_ref().and_then(|m| m.config.as_ref()) {
        problems.extend(config.refusals().into_iter().map(|message| Problem {
            reason: "InvalidMongodConfig",
            message,
            blocks_all: true,
            secret: None,
        }));
    }
    if let Some(current) = status.and_then(|s| s.version.as_deref())
        && let Err(message) =
            version_path(current, status.and_then(|s| s.feature_compatibility_version.as_deref()), &spec.version)
    {
        problems.push(Problem { reason: "VersionUnreachable", message, blocks_all: true, secret: None });
    }
    if let Some(problem) = public_load_balancer(policy, spec) {
        problems.push(problem);
    }
    if let Some(problem) = no_electable_member(spec) {
        problems.push(problem);
    }
    if let Some(problem) = external_address_pending(names, spec, world) {
        problems.push(problem);
    }
    if let Some(problem) = disruption_budget_held(spec) {
        problems.push(problem);
    }
    if let Some(problem) = arbiter_takes_a_vote(spec) {
        problems.push(problem);
    }
    problems.extend(spec.users.iter().filter_map(|u| connection_secret_problem(names, u, world)));
    problems.extend(spec.users.iter().filter_map(|u| user_problem(u, world)));
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_balancer_open_beyond_private_space_waits_for_the_administrator() {
        let spec = |ranges: &[&str]| -> MongoClusterSpec {
            serde_json::from_value(serde_json::json!({
                "version": "8.0.4",
                "expose": {"type": "LoadBalancer", "loadBalancer": {"sourceRanges": ranges}},
            }))
            .expect("spec")
        };
        let names = ClusterNames::new("orders", "shop");
        let strict = AdminPolicy::default();
        let problems = validate(&names, &strict, &spec(&["10.0.0.0/8", "0.0.0.0/0"]), None, &World::default());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].reason, "PublicLoadBalancerRefused");
        assert!(problems[0].blocks_all);
        assert!(problems[0].message.contains("sourceRanges 0.0.0.0/0 reach outside"), "{}", problems[0].message);
        assert!(validate(&names, &strict, &spec(&["10.20.0.0/16", "fd00::/8"]), None, &World::default()).is_empty());
        let open = AdminPolicy { allow_public_load_balancers: true, ..AdminPolicy::default() };
        assert!(validate(&names, &open, &spec(&["0.0.0.0/0"]), None, &World::default()).is_empty());

        // The members' own load balancers are held to the same rule.
        let per_member: MongoClusterSpec = serde_json::from_value(serde_json::json!({
            "version": "8.0.4",
            "expose": {"perMember": {"hostPattern": "db-{ordinal}.example.internal",
                                     "loadBalancer": {"sourceRanges": ["10.0.0.0/8", "203.0.113.0/24"]}}},
        }))
        .expect("spec");
        let problems = validate(&names, &strict, &per_member, None, &World::default());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].message.contains("expose.perMember.loadBalancer.sourceRanges 203.0.113.0/24 reach outside"),
            "{}",
            problems[0].message
        );
        assert!(validate(&names, &open, &per_member, None, &World::default()).is_empty());

        // And so are their node ports.
        let node_ports: MongoClusterSpec = serde_json::from_value(serde_json::json!({
            "version": "8.0.4",
            "expose": {"perMember": {"hostPattern": "db-{ordinal}.example.internal",
                                     "nodePort": {"basePort": 31017, "sourceRanges": ["0.0.0.0/0"]}}},
        }))
        .expect("spec");
        let problems = validate(&names, &strict, &node_ports, None, &World::default());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].message.contains("expose.perMember.nodePort.sourceRanges 0.0.0.0/0 reach outside"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn roles_that_leave_no_member_electable_block_every_change() {
        let spec = |roles: serde_json::Value| -> MongoClusterSpec {
            serde_json::from_value(serde_json::json!({"version": "8.0.4", "members": 3, "memberRoles": roles}))
                .expect("spec")
        };
        let names = ClusterNames::new("orders", "shop");
        let policy = AdminPolicy::default();
        let none = spec(serde_json::json!([
            {"ordinals": [0, 1], "role": "Hidden"},
            {"ordinals": [2], "role": "Delayed", "delaySeconds": 3600},
        ]));
        let problems = validate(&names, &policy, &none, None, &World::default());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].reason, "NoElectableMember");
        assert!(problems[0].blocks_all);
        let one_left = spec(serde_json::json!([{"ordinals": [0, 2], "role": "NonVoting"}]));
        assert!(validate(&names, &policy, &one_left, None, &World::default()).is_empty());
    }

    #[test]
    fn a_budget_beyond_what_the_voters_can_lose_is_held_and_reported() {
        let spec: MongoClusterSpec = serde_json::from_value(serde_json::json!({
            "version": "8.0.4", "members": 5,
            "podDisruptionBudget": {"maxUnavailable": 2},
            "memberRoles": [{"ordinals": [3, 4], "role": "NonVoting"}],
        }))
        .expect("spec");
        let problems = validate(&ClusterNames::new("o", "s"), &AdminPolicy::default(), &spec, None, &World::default());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].reason, "DisruptionBudgetHeld");
        assert!(!problems[0].blocks_all);
        assert!(problems[0].message.contains("only 3 votes"), "{}", problems[0].message);
    }

    #[test]
    fn a_dotted_owned_key_blocks_every_change() {
        let spec: MongoClusterSpec = serde_json::from_value(serde_json::json!({
            "version": "8.0.4",
            "mongod": {"config": {"net.port": 27018, "operationProfiling": {"mode": "slowOp"}}},
        }))
        .expect("spec");
        let problems =
            validate(&ClusterNames::new("orders", "shop"), &AdminPolicy::default(), &spec, None, &World::default());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].reason, "InvalidMongodConfig");
        assert!(problems[0].blocks_all);
        assert!(problems[0].message.contains("net.port"), "{}", problems[0].message);
    }

    #[test]
    fn version_paths() {
        assert!(version_path("8.0.4", Some("8.0"), "8.0.9").is_ok());
        assert!(version_path("8.0.9", Some("8.0"), "8.0.4").is_ok(), "patch downgrades are fine");
        assert!(version_path("7.0.12", Some("7.0"), "8.0.4").is_ok());
        let jump = version_path("6.0.15", Some("6.0"), "8.0.4").unwrap_err();
        assert!(jump.contains("one major release at a time (7.0 first)"), "{jump}");
        let lagging_fcv = version_path("7.0.12", Some("6.0"), "8.0.4").unwrap_err();
        assert!(lagging_fcv.contains("featureCompatibilityVersion is 6.0"), "{lagging_fcv}");
        let down = version_path("8.0.4", Some("8.0"), "7.0.12").unwrap_err();
        assert!(down.contains("downgrade"), "{down}");
        assert!(version_path("8.0.4", Some("7.0"), "7.0.12").is_ok(), "downgrade after lowering the FCV");
        assert_eq!(Version::parse("8.0.4-rc1").map(|v| v.patch), Some(4));
    }

    #[test]
    fn an_arbiter_beside_an_odd_number_of_voting_roles_is_reported() {
        let names = ClusterNames::new("orders", "shop");
        let spec = |json: serde_json::Value| -> MongoClusterSpec { serde_json::from_value(json).expect("spec") };
        let odd = spec(serde_json::json!({
            "version": "8.0.4", "members": 4, "arbiter": {"enabled": true},
            "memberRoles": [{"ordinals": [3], "role": "NonVoting"}],
        }));
        let problems = validate(&names, &AdminPolicy::default(), &odd, None, &World::default());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].reason, "ArbiterTakesAVote");
        assert!(!problems[0].blocks_all);
        assert!(problems[0].message.contains("3 do"), "{}", problems[0].message);
        let even = spec(serde_json::json!({
            "version": "8.0.4", "members": 3, "arbiter": {"enabled": true},
            "memberRoles": [{"ordinals": [2], "role": "Delayed", "delaySeconds": 60}],
        }));
        assert!(validate(&names, &AdminPolicy::default(), &even, None, &World::default()).is_empty());
    }
}
