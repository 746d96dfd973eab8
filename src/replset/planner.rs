//! The replica-set planner: from the members the spec wants and what the replica set reports,
//! the single next safe step. Pure: no I/O, no clock.
//!
//! The rules it keeps (see `reference/mongodb-replset-rules.md`):
//! - one voting change per reconfig: members join with votes 0 / priority 0 and are promoted
//!   one at a time once they are healthy, caught-up secondaries, so the server's `newlyAdded`
//!   handling is never needed;
//! - no reconfig until the previous config is committed, and none without a primary;
//! - the primary is never removed or demoted: it is stepped down first, and only when an
//!   electable secondary has caught up;
//! - at most 7 voters, and an odd number of them;
//! - a host keeps its `_id`; new members get their ordinal as `_id` when it is free;
//! - roles (`spec.memberRoles`): only members that may vote get votes, electable ones first;
//!   a voter that may no longer vote is demoted like any other (one at a time), the primary
//!   after stepping down; priority, `hidden`, delay and tags change in one reconfig with no
//!   vote change, and never on the primary in a way that would make it unelectable (the
//!   server refuses that with 104 NodeNotElectable): it steps down first;
//! - split horizons are the same names on every member (`ReplSetConfig::_validate`), so they
//!   are set or cleared on all members in one reconfig, and a member joins with the horizons
//!   the others have;
//! - an arbiter (`spec.arbiter`) votes beside the data-bearing voters, which are then one fewer
//!   (an odd count with its vote). Adding or removing it changes the server's implicit default
//!   write concern, which the server refuses (103) until a cluster-wide one is set, so
//!   `setDefaultRWConcern` comes first. With an arbiter in the set, a data-bearing member gets
//!   its vote at priority 0 and its priority in a second reconfig: the server refuses a
//!   primary-secondary-arbiter config whose secondary becomes electable in the same reconfig
//!   that gives it its vote (`validateOldAndNewConfigsCompatible`, `rs.reconfigForPSASet`).

use super::config::{DefaultWriteConcern, MemberConfig, MemberSettings, ReplSetConfig, same_host};

/// Most voting members a replica set may have.
pub const MAX_VOTERS: usize = 7;
/// Largest member `_id` accepted by every supported server version.
pub const MAX_MEMBER_ID: i64 = 255;
/// A secondary this far behind the primary (or closer) counts as caught up.
pub const CAUGHT_UP_LAG_SECONDS: i64 = 10;

/// A member the spec wants, in ordinal order.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredMember {
    /// `<pod>.<service>.<namespace>.svc.<domain>:27017`.
    pub host: String,
    /// The Pod's ordinal: the preferred `_id`.
    pub ordinal: i64,
    /// The Pod runs and its mongod answers `hello`.
    pub ready: bool,
    /// Its mongod is REMOVED: it holds a config that does not list it, so the set exists.
    pub removed: bool,
    /// Its address outside Kubernetes, announced as the `external` split horizon.
    pub external: External,
    /// What it is for (`spec.memberRoles`): a plain electable member by default.
    pub settings: MemberSettings,
}

/// A member's address outside Kubernetes (`expose.perMember`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum External {
    /// The cluster is not exposed per member.
    #[default]
    NotExposed,
    /// Exposed, but its load balancer has no host name yet.
    Pending,
    /// `host:port`.
    At(String),
}

impl External {
    fn host(&self) -> Option<&str> {
        match self {
            External::At(host) => Some(host),
            External::NotExposed | External::Pending => None,
        }
    }
}

/// Member states as `replSetGetStatus` reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    Startup,
    Primary,
    Secondary,
    Recovering,
    Startup2,
    Unknown,
    Arbiter,
    Down,
    Rollback,
    Removed,
}

impl MemberState {
    pub fn from_code(code: i64) -> MemberState {
        match code {
            0 => MemberState::Startup,
            1 => MemberState::Primary,
            2 => MemberState::Secondary,
            3 => MemberState::Recovering,
            5 => MemberState::Startup2,
            7 => MemberState::Arbiter,
            8 => MemberState::Down,
            9 => MemberState::Rollback,
            10 => MemberState::Removed,
            _ => MemberState::Unknown,
        }
    }
}

/// One member as the primary's `replSetGetStatus` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedMember {
    pub host: String,
    pub state: MemberState,
    pub healthy: bool,
    /// Seconds behind the primary's last applied operation; None when unknown.
    pub lag_seconds: Option<i64>,
}

/// What an initiated replica set reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The config, read from the primary (or, without one, the newest a member has).
    pub config: ReplSetConfig,
    /// The primary's `commitmentStatus`; false when there is no primary.
    pub committed: bool,
    /// Host of the primary, if there is one.
    pub primary: Option<String>,
    pub members: Vec<ObservedMember>,
    /// The `w` of the cluster-wide default write concern (`getDefaultRWConcern` with
    /// `defaultWriteConcernSource: global`): "majority", a number, or a tag set's name. None
    /// when none is set, or when it was not read: it is read whenever the spec or the config
    /// has an arbiter, the only time the planner looks at it.
    pub default_write_concern: Option<String>,
}

impl Observed {
    fn member(&self, host: &str) -> Option<&ObservedMember> {
        self.members.iter().find(|m| same_host(&m.host, host))
    }

    /// Healthy SECONDARY (or the PRIMARY) within the caught-up lag. A delayed member applies
    /// what it receives `secondaryDelaySecs` late by design, so its lag counts from its delay:
    /// otherwise it would never be caught up, and every rollout and every step that waits for
    /// a healthy set would wait for ever.
    /// An arbiter has nothing to catch up with: it is in step once it answers as one.
    pub fn caught_up(&self, host: &str) -> bool {
        let entry = self.config.members.iter().find(|c| same_host(&c.host, host));
        let delay = entry.map_or(0, MemberConfig::delay_seconds);
        if entry.is_some_and(MemberConfig::is_arbiter) {
            return self.member(host).is_some_and(|m| m.healthy && m.state == MemberState::Arbiter);
        }
        self.member(host).is_some_and(|m| {
            m.healthy
                && (m.state == MemberState::Primary
                    || (m.state == MemberState::Secondary
                        && m.lag_seconds.is_some_and(|l| l <= CAUGHT_UP_LAG_SECONDS.saturating_add(delay))))
        })
    }
}

/// What a reconfig changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new member joins without a vote.
    Add { host: String },
    /// A member leaves the set.
    Remove { host: String },
    /// A caught-up member gets a vote.
    Promote { host: String },
    /// A member gives up its vote.
    Demote { host: String },
    /// Every member's split horizons are set to its external address, or cleared.
    Horizons { external: bool },
    /// These members' priority, `hidden`, delay or tags change (no vote does).
    Settings { hosts: Vec<String> },
}

/// Why the planner waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// Initiation needs every member to answer.
    MembersNotReady { hosts: Vec<String> },
    /// No member that answered is in the set, but some hold its config (REMOVED): the set
    /// exists, so it is never initiated again; a person must look (see the message).
    MembersRemoved { hosts: Vec<String> },
    /// No primary: elections are MongoDB's business; reconfigs need a primary.
    NoPrimary,
    /// The previous reconfig is not yet committed by a majority.
    ConfigNotCommitted,
    /// A member must become a healthy, caught-up secondary before it can vote.
    MemberCatchingUp { host: String },
    /// The primary must step down, but no electable secondary has caught up.
    NoCaughtUpSecondary { primary: String },
    /// Taking this member's vote away would leave fewer healthy voters than a majority.
    WouldLoseMajority { host: String },
    /// These members cannot join before their load balancer has a host name: the others
    /// have horizons, and the server wants the same horizon names on every member.
    ExternalAddressPending { hosts: Vec<String> },
}

/// The single next step.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Run `replSetInitiate` with this config on the first member.
    Initiate(ReplSetConfig),
    /// Run `replSetReconfig` with this config on the primary.
    Reconfig { config: ReplSetConfig, change: Change },
    /// Run `replSetStepDown` on this primary.
    StepDown { primary: String, reason: StepDownReason },
    /// Run `setDefaultRWConcern` on the primary with this default write concern: before an
    /// arbiter joins or leaves.
    SetDefaultWriteConcern(DefaultWriteConcern),
    /// Nothing to do until the world changes.
    Wait(WaitReason),
    /// The replica set matches the spec.
    InSync,
}

/// Why the primary is asked to step down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepDownReason {
    /// It is being removed from the set.
    Removal,
    /// It is about to be restarted (rollout).
    Restart,
    /// A person asked for it (`kubectl mongo stepdown`, the step-down annotation).
    Requested,
    /// Its role changes to one that never becomes primary.
    RoleChange,
}

/// How many voters `n` data-bearing members should have: all, up to 7, and odd.
pub fn target_voters(n: usize) -> usize {
    let capped = n.min(MAX_VOTERS);
    if capped > 1 && capped.is_multiple_of(2) { capped - 1 } else { capped }
}

/// How many data-bearing members of `may_vote` that may vote should vote, beside an arbiter's
/// vote when there is one: together an odd number, at most 7; and never none, as a set needs
/// a member that can become primary (one data-bearing member and an arbiter, which admission
/// refuses, make an even two).
pub fn data_voters(may_vote: usize, arbiter: bool) -> usize {
    if arbiter { target_voters(may_vote + 1).saturating_sub(1).max(may_vote.min(1)) } else { target_voters(may_vote) }
}

fn is_arbiter(d: &DesiredMember) -> bool {
    d.settings.arbiter.is_some()
}

/// The config that initiates a set of these members.
fn initial_config(set_name: &str, desired: &[DesiredMember]) -> ReplSetConfig {
    // The votes go to members that may vote, electable ones first, so that a set whose first
    // ordinals are hidden still has a member that can become primary.
    let mut eligible: Vec<&DesiredMember> = desired.iter().filter(|d| d.settings.may_vote).collect();
    eligible.sort_by_key(|d| (!d.settings.electable(), d.ordinal));
    eligible.truncate(data_voters(eligible.len(), desired.iter().any(is_arbiter)));
    // The member that receives `replSetInitiate` must be electable in it
    // (`validateConfigForInitiate`, src/mongo/db/repl/repl_set_config_checks.cpp): the first
    // one listed, which the operator initiates on, is an electable voter.
    let mut ordered: Vec<&DesiredMember> = desired.iter().collect();
    ordered.sort_by_key(|d| (eligible.first().is_none_or(|e| e.ordinal != d.ordinal), d.ordinal));
    let members = ordered
        .into_iter()
        .map(|d| {
            if is_arbiter(d) {
                return MemberConfig::arbiter(d.ordinal, &d.host);
            }
            let voting = eligible.iter().any(|e| e.ordinal == d.ordinal);
            let mut m = MemberConfig::new(d.ordinal, &d.host, voting);
            m.apply_settings(&d.settings);
            m.set_external_host(horizons_at_once(desired).then(|| d.external.host()).flatten());
            m
        })
        .collect();
    ReplSetConfig {
        set_name: set_name.to_string(),
        version: 1,
        term: None,
        protocol_version: 1,
        members,
        other: mongodb::bson::Document::new(),
    }
}

/// Whether every member has its external address, so that horizons can be given to all (the
/// server wants the same horizon names on every member).
fn horizons_at_once(desired: &[DesiredMember]) -> bool {
    !desired.is_empty() && desired.iter().all(|d| d.external.host().is_some())
}

fn free_id(config: &ReplSetConfig, preferred: i64) -> Option<i64> {
    let used = |id: i64| config.members.iter().any(|m| m.id == id);
    if (0..=MAX_MEMBER_ID).contains(&preferred) && !used(preferred) {
        return Some(preferred);
    }
    (0..=MAX_MEMBER_ID).find(|id| !used(*id))
}

/// The next safe step, or why there is none.
///
/// `observed` is None when no reachable member has a config (the set was never initiated).
/// `stepping_down` names a member that should stop being primary, and why: the member a rollout
/// wants to restart next, or one a person asked to step down. If it is the primary, the
/// planner steps it down (once the membership itself is in sync and a successor has caught up).
pub fn plan(
    set_name: &str,
    desired: &[DesiredMember],
    observed: Option<&Observed>,
    stepping_down: Option<(&str, StepDownReason)>,
) -> Step {
    let Some(obs) = observed else {
        // A REMOVED member answers `hello` like a new one; initiating would only meet 23
        // AlreadyInitialized (`processReplSetInitiate`), and the set it left must be found.
        let removed: Vec<String> = desired.iter().filter(|d| d.removed).map(|d| d.host.clone()).collect();
        if !removed.is_empty() {
            return Step::Wait(WaitReason::MembersRemoved { hosts: removed });
        }
        let missing: Vec<String> = desired.iter().filter(|d| !d.ready).map(|d| d.host.clone()).collect();
        if desired.is_empty() || !missing.is_empty() {
            return Step::Wait(WaitReason::MembersNotReady { hosts: missing });
        }
        return Step::Initiate(initial_config(set_name, desired));
    };
    let Some(primary) = obs.primary.clone() else { return Step::Wait(WaitReason::NoPrimary) };
    if !obs.committed {
        return Step::Wait(WaitReason::ConfigNotCommitted);
    }
    let cfg = &obs.config;
    let wanted = |host: &str| desired.iter().any(|d| same_host(&d.host, host));

    // 0. Horizons no member should have any more go first, from every member at once: a member
    //    joining meanwhile would need one to match the others.
    let exposed = desired.iter().any(|d| d.external != External::NotExposed);
    if !exposed && cfg.members.iter().any(MemberConfig::has_horizons) {
        let mut next = cfg.next();
        next.members.iter_mut().for_each(|m| m.set_external_host(None));
        return Step::Reconfig { config: next, change: Change::Horizons { external: false } };
    }

    // 0b. A cluster-wide default write concern before an arbiter joins or leaves: the one the
    //     spec asks for while it wants an arbiter; `majority` (what the set's implicit default
    //     becomes without the arbiter) when one that is leaving finds none set. The server
    //     cannot unset it again, so it stays once the arbiter is gone.
    let wanted_writes = desired.iter().find_map(|d| d.settings.arbiter);
    let leaving_arbiter =
        cfg.members.iter().any(|m| m.is_arbiter() && !desired.iter().any(|d| same_host(&d.host, &m.host)));
    let writes = match wanted_writes {
        Some(w) => Some(w).filter(|w| obs.default_write_concern.as_deref() != Some(w.name())),
        None if leaving_arbiter && obs.default_write_concern.is_none() => Some(DefaultWriteConcern::Majority),
        None => None,
    };
    if let Some(w) = writes {
        return Step::SetDefaultWriteConcern(w);
    }

    // 1. New members join without a vote, as soon as their mongod answers, with horizons when
    //    the others have them (a member whose load balancer has no host name yet waits). The
    //    arbiter joins with its vote (it has no other way), while there is room for one.
    let with_horizons = cfg.members.iter().any(MemberConfig::has_horizons);
    let joining_without_address: Vec<String> = desired
        .iter()
        .filter(|d| with_horizons && d.ready && cfg.member(&d.host).is_none() && d.external.host().is_none())
        .map(|d| d.host.clone())
        .collect();
    for d in desired.iter().filter(|d| d.ready && cfg.member(&d.host).is_none()) {
        if with_horizons && d.external.host().is_none() {
            continue;
        }
        if is_arbiter(d) && cfg.voters() >= MAX_VOTERS {
            continue;
        }
        if let Some(id) = free_id(cfg, d.ordinal) {
            let mut next = cfg.next();
            if is_arbiter(d) {
                next.members.push(MemberConfig::arbiter(id, &d.host));
                return Step::Reconfig { config: next, change: Change::Add { host: d.host.clone() } };
            }
            let mut joining = MemberConfig::new(id, &d.host, false);
            joining.apply_settings(&d.settings);
            if with_horizons {
                joining.set_external_host(d.external.host());
            }
            next.members.push(joining);
            return Step::Reconfig { config: next, change: Change::Add { host: d.host.clone() } };
        }
    }

    let settings_of = |host: &str| desired.iter().find(|d| same_host(&d.host, host)).map(|d| &d.settings);
    let may_vote = |m: &MemberConfig| !m.is_arbiter() && settings_of(&m.host).is_some_and(|s| s.may_vote);
    let electable_role = |m: &MemberConfig| settings_of(&m.host).is_some_and(MemberSettings::electable);
    // The data-bearing members that stay (the arbiter's vote is counted apart).
    let staying: Vec<&MemberConfig> = cfg.members.iter().filter(|m| wanted(&m.host) && !m.is_arbiter()).collect();
    let target = data_voters(staying.iter().filter(|m| may_vote(m)).count(), wanted_writes.is_some());
    let with_arbiter = cfg.members.iter().any(MemberConfig::is_arbiter);
    let staying_voters = staying.iter().filter(|m| m.is_voter() && may_vote(m)).count();
    let mut candidates: Vec<&MemberConfig> = staying.iter().copied().filter(|m| !m.is_voter() && may_vote(m)).collect();
    candidates.sort_by_key(|m| (!electable_role(m), m.id));

    // 1b. Priority, `hidden`, delay and tags follow the roles on every member but the primary,
    //     all in one reconfig (no vote changes). They come before any step-down (3., 4., 5.),
    //     so that a member about to become electable can take over, and the election after a
    //     step-down can only pick a member that keeps its place.
    let differing: Vec<&MemberConfig> = cfg
        .members
        .iter()
        .filter(|m| {
            !same_host(&m.host, &primary) && !m.is_arbiter() && settings_of(&m.host).is_some_and(|s| !m.has_settings(s))
        })
        .collect();
    if !differing.is_empty() {
        let mut next = cfg.next();
        for x in next.members.iter_mut().filter(|x| !same_host(&x.host, &primary) && !x.is_arbiter()) {
            if let Some(settings) = settings_of(&x.host) {
                x.apply_settings(settings);
            }
        }
        let hosts = differing.iter().map(|m| m.host.clone()).collect();
        return Step::Reconfig { config: next, change: Change::Settings { hosts } };
    }

    // 2. Staying members get votes up to the target, one at a time, once caught up, electable
    //    ones first. An electable member also gets one while a voter's role is not electable
    //    (hidden): that voter then gives its vote up as the one too many (4.), so the votes end
    //    with members that can become primary. This comes before removals so that a primary
    //    that must leave always has a successor.
    let swap_in = candidates.iter().find(|m| electable_role(m) && obs.caught_up(&m.host));
    let swap_out = staying
        .iter()
        .filter(|m| m.is_voter() && may_vote(m) && !electable_role(m))
        .max_by_key(|m| (!same_host(&m.host, &primary), m.id))
        .filter(|_| swap_in.is_some());
    let promote = match staying_voters < target {
        true => candidates.iter().find(|m| obs.caught_up(&m.host)),
        false => swap_in.filter(|_| swap_out.is_some()),
    };
    if cfg.voters() < MAX_VOTERS
        && let Some(m) = promote
    {
        let mut next = cfg.next();
        if let Some(x) = next.members.iter_mut().find(|x| x.id == m.id) {
            x.set_voting(true);
            // The role's priority: its `hidden` and delay are in already (1b.), so a hidden
            // member's is 0 as the server wants. Beside an arbiter the vote comes at priority
            // 0, and the priority follows (1b.) once the vote is in.
            if let Some(settings) = settings_of(&m.host) {
                x.priority = if with_arbiter { 0.0 } else { settings.priority };
            }
        }
        return Step::Reconfig { config: next, change: Change::Promote { host: m.host.clone() } };
    }

    // 3. Members the spec no longer wants leave: non-voters first, then voters, the primary
    //    last and only after stepping down.
    let mut leaving: Vec<&MemberConfig> = cfg.members.iter().filter(|m| !wanted(&m.host)).collect();
    leaving.sort_by_key(|m| (m.is_voter(), same_host(&m.host, &primary), std::cmp::Reverse(m.id)));
    if let Some(m) = leaving.first() {
        if same_host(&m.host, &primary) {
            return step_down(obs, desired, &primary, StepDownReason::Removal);
        }
        let mut next = cfg.next();
        next.members.retain(|x| x.id != m.id);
        if m.is_voter() && !keeps_healthy_majority(obs, &next) {
            return Step::Wait(WaitReason::WouldLoseMajority { host: m.host.clone() });
        }
        return Step::Reconfig { config: next, change: Change::Remove { host: m.host.clone() } };
    }

    // 4. A voter whose role no longer votes gives up its vote, the primary after stepping
    //    down; then, with too many voters among the staying members (an even count, or more
    //    than 7), the one least caught up, not electable first, highest _id first.
    let unwanted_voter = staying
        .iter()
        .filter(|m| m.is_voter() && !m.is_arbiter() && !may_vote(m))
        .min_by_key(|m| (same_host(&m.host, &primary), m.id))
        // With 7 voters already, a swap (2.) starts with the vote given up.
        .or(swap_out.filter(|_| cfg.voters() >= MAX_VOTERS));
    if unwanted_voter.is_some_and(|m| same_host(&m.host, &primary)) {
        return step_down(obs, desired, &primary, StepDownReason::RoleChange);
    }
    if unwanted_voter.is_some() || staying_voters > target {
        // The primary is never demoted for the count alone; one whose role is not electable
        // (it is to be hidden) is stepped down first.
        let demote = match unwanted_voter {
            Some(m) => Some(m),
            None => staying
                .iter()
                .filter(|m| m.is_voter() && (!same_host(&m.host, &primary) || !electable_role(m)))
                .max_by_key(|m| (!electable_role(m), !obs.caught_up(&m.host), m.id)),
        };
        if demote.is_some_and(|m| same_host(&m.host, &primary)) {
            return step_down(obs, desired, &primary, StepDownReason::RoleChange);
        }
        if let Some(m) = demote {
            let mut next = cfg.next();
            if let Some(x) = next.members.iter_mut().find(|x| x.id == m.id) {
                x.set_voting(false);
            }
            if !keeps_healthy_majority(obs, &next) {
                return Step::Wait(WaitReason::WouldLoseMajority { host: m.host.clone() });
            }
            return Step::Reconfig { config: next, change: Change::Demote { host: m.host.clone() } };
        }
    }
    if staying_voters < target
        && let Some(m) = candidates.first()
    {
        return Step::Wait(WaitReason::MemberCatchingUp { host: m.host.clone() });
    }

    // 5. The primary's own priority, `hidden`, delay and tags, last: when they would make it
    //    unelectable it steps down, to a successor that keeps its place (the others' settings
    //    are in by now, 1b), so the primary never goes back and forth between members that
    //    are both on their way out of elections.
    if let Some(settings) = cfg
        .members
        .iter()
        .find(|m| same_host(&m.host, &primary))
        .and_then(|m| settings_of(&m.host).filter(|s| !m.has_settings(s)))
    {
        if !settings.electable() {
            return step_down(obs, desired, &primary, StepDownReason::RoleChange);
        }
        let mut next = cfg.next();
        for x in next.members.iter_mut().filter(|x| same_host(&x.host, &primary)) {
            x.apply_settings(settings);
        }
        return Step::Reconfig { config: next, change: Change::Settings { hosts: vec![primary.clone()] } };
    }

    // 6. Membership is in sync: every member gets its external address as its horizon, all in
    //    one reconfig (no vote changes, so one step is safe).
    let external_of = |m: &MemberConfig| {
        desired.iter().find(|d| same_host(&d.host, &m.host)).and_then(|d| d.external.host().map(str::to_string))
    };
    if exposed
        && cfg.members.iter().all(|m| external_of(m).is_some())
        && cfg.members.iter().any(|m| external_of(m).as_deref() != m.external_host())
    {
        let mut next = cfg.next();
        for m in &mut next.members {
            let external = external_of(m);
            m.set_external_host(external.as_deref());
        }
        return Step::Reconfig { config: next, change: Change::Horizons { external: true } };
    }

    // 7. The primary steps down before a rollout restarts it, or when
    //    a person asked for it.
    if let Some((host, reason)) = stepping_down
        && same_host(host, &primary)
    {
        return step_down(obs, desired, &primary, reason);
    }
    let not_ready: Vec<String> =
        desired.iter().filter(|d| !d.ready && cfg.member(&d.host).is_none()).map(|d| d.host.clone()).collect();
    if !not_ready.is_empty() {
        return Step::Wait(WaitReason::MembersNotReady { hosts: not_ready });
    }
    // Last, as nothing else waits for them: members that cannot join before their load
    // balancer has a host name. (Members already in the set without one are only reported:
    // horizons wait for every member, and the rest goes on.)
    if !joining_without_address.is_empty() {
        return Step::Wait(WaitReason::ExternalAddressPending { hosts: joining_without_address });
    }
    Step::InSync
}

/// Whether the voters of `next` that are healthy now form a majority of them, so the set keeps
/// a primary (and the server's quorum check passes) after the change.
fn keeps_healthy_majority(obs: &Observed, next: &ReplSetConfig) -> bool {
    let voters: Vec<&MemberConfig> = next.members.iter().filter(|m| m.is_voter()).collect();
    let healthy = voters.iter().filter(|m| obs.member(&m.host).is_some_and(|o| o.healthy)).count();
    healthy > voters.len() / 2
}

/// Steps the primary down when an electable, caught-up secondary the spec keeps can take over.
fn step_down(obs: &Observed, desired: &[DesiredMember], primary: &str, reason: StepDownReason) -> Step {
    let successor = obs.config.members.iter().any(|m| {
        !same_host(&m.host, primary)
            && m.is_electable()
            && desired.iter().any(|d| same_host(&d.host, &m.host))
            && obs.caught_up(&m.host)
    });
    if successor {
        Step::StepDown { primary: primary.to_string(), reason }
    } else {
        Step::Wait(WaitReason::NoCaughtUpSecondary { primary: primary.to_string() })
    }
}
