//! The replica-set planner, checked against the real server's rules as the simulator's `rules`
//! module encodes them (written from the server sources, independently of the planner).
//!
//! Table tests pin the decisions a person would check by hand; property tests drive random
//! starting sets to random target memberships and require that every planned step is legal and
//! that the set always gets there.

use std::collections::BTreeMap;

use mongo_operator::replset::config::DefaultWriteConcern;
use mongo_operator::replset::planner::CAUGHT_UP_LAG_SECONDS;
use mongo_operator::replset::{
    Change, DesiredMember, External, MemberConfig, MemberSettings, MemberState, Observed, ObservedMember,
    ReplSetConfig, Step, StepDownReason, WaitReason, data_voters, plan, target_voters,
};
use mongo_replset_sim::rules;
use proptest::prelude::*;

const SET: &str = "rs0";

fn host(i: i64) -> String {
    format!("db-{i}.db-members.ns.svc.cluster.local:27017")
}

fn desired(ordinals: &[i64]) -> Vec<DesiredMember> {
    ordinals
        .iter()
        .map(|&i| DesiredMember {
            host: host(i),
            ordinal: i,
            ready: true,
            removed: false,
            external: External::NotExposed,
            settings: Default::default(),
        })
        .collect()
}

fn config(members: &[(i64, bool)], version: i64) -> ReplSetConfig {
    ReplSetConfig {
        set_name: SET.into(),
        version,
        term: Some(1),
        protocol_version: 1,
        members: members.iter().map(|&(i, v)| MemberConfig::new(i, host(i), v)).collect(),
        other: mongodb::bson::doc! { "settings": { "replicaSetId": mongodb::bson::oid::ObjectId::new() } },
    }
}

fn observed(cfg: ReplSetConfig, primary: i64, syncing: &[i64]) -> Observed {
    let members = cfg
        .members
        .iter()
        .map(|m| ObservedMember {
            host: m.host.clone(),
            state: if m.host == host(primary) {
                MemberState::Primary
            } else if syncing.contains(&m.id) {
                MemberState::Startup2
            } else {
                MemberState::Secondary
            },
            healthy: true,
            lag_seconds: Some(if syncing.contains(&m.id) { 3600 } else { 0 }),
        })
        .collect();
    Observed { config: cfg, committed: true, primary: Some(host(primary)), members, default_write_concern: None }
}

fn change(step: &Step) -> Option<&Change> {
    match step {
        Step::Reconfig { change, .. } => Some(change),
        _ => None,
    }
}

// ---- tables -------------------------------------------------------------------------------

#[test]
fn voter_targets_are_odd_and_capped_at_seven() {
    let table = [(1, 1), (2, 1), (3, 3), (4, 3), (5, 5), (6, 5), (7, 7), (8, 7), (9, 7), (50, 7)];
    for (members, voters) in table {
        assert_eq!(target_voters(members), voters, "{members} members");
    }
}

#[test]
fn initiation_waits_for_every_member_then_lists_all_with_odd_voters() {
    let mut want = desired(&[0, 1, 2, 3]);
    want[2].ready = false;
    assert_eq!(plan(SET, &want, None, None), Step::Wait(WaitReason::MembersNotReady { hosts: vec![host(2)] }));
    want[2].ready = true;
    let Step::Initiate(cfg) = plan(SET, &want, None, None) else { panic!("expected initiate") };
    assert_eq!(cfg.version, 1);
    assert_eq!(cfg.members.iter().map(|m| (m.id, m.votes)).collect::<Vec<_>>(), [(0, 1), (1, 1), (2, 1), (3, 0)]);
    let doc = cfg.to_document().unwrap();
    rules::validate_initiate(&doc, SET, &host(0)).expect("the server accepts the initial config");
}

#[test]
fn a_set_whose_answering_members_are_removed_is_never_initiated_again() {
    // Every member answers, none is in a set, but one holds a config that does not list it:
    // the set exists (a REMOVED member's hello looks like a new one's).
    let mut want = desired(&[0, 1, 2]);
    want[1].removed = true;
    assert_eq!(plan(SET, &want, None, None), Step::Wait(WaitReason::MembersRemoved { hosts: vec![host(1)] }));
}

#[test]
fn no_reconfig_without_a_primary_or_before_the_last_one_commits() {
    let mut obs = observed(config(&[(0, true)], 1), 0, &[]);
    obs.committed = false;
    assert_eq!(plan(SET, &desired(&[0, 1]), Some(&obs), None), Step::Wait(WaitReason::ConfigNotCommitted));
    obs.primary = None;
    assert_eq!(plan(SET, &desired(&[0, 1]), Some(&obs), None), Step::Wait(WaitReason::NoPrimary));
}

#[test]
fn new_members_join_without_a_vote_and_are_promoted_once_caught_up() {
    let obs = observed(config(&[(0, true)], 1), 0, &[]);
    let step = plan(SET, &desired(&[0, 1, 2]), Some(&obs), None);
    assert_eq!(change(&step), Some(&Change::Add { host: host(1) }));
    let Step::Reconfig { config: cfg, .. } = step else { unreachable!() };
    assert_eq!((cfg.version, cfg.member(&host(1)).map(|m| (m.votes, m.priority))), (2, Some((0, 0.0))));

    let syncing = observed(config(&[(0, true), (1, false), (2, false)], 3), 0, &[1, 2]);
    assert_eq!(
        plan(SET, &desired(&[0, 1, 2]), Some(&syncing), None),
        Step::Wait(WaitReason::MemberCatchingUp { host: host(1) })
    );
    let synced = observed(config(&[(0, true), (1, false), (2, false)], 3), 0, &[2]);
    assert_eq!(change(&plan(SET, &desired(&[0, 1, 2]), Some(&synced), None)), Some(&Change::Promote { host: host(1) }));
}

#[test]
fn a_leaving_primary_is_stepped_down_first_and_only_with_a_caught_up_successor() {
    let obs = observed(config(&[(0, true), (1, true), (2, true)], 5), 2, &[]);
    // db-2 leaves; it is the primary, and db-0/db-1 are caught up: step down first.
    assert_eq!(
        plan(SET, &desired(&[0, 1]), Some(&obs), None),
        Step::StepDown { primary: host(2), reason: StepDownReason::Removal }
    );
    assert_eq!(
        plan(SET, &desired(&[0]), Some(&observed(config(&[(0, true), (2, true)], 6), 2, &[])), None),
        Step::StepDown { primary: host(2), reason: StepDownReason::Removal }
    );
    let lagging = observed(config(&[(0, true), (2, true)], 6), 2, &[0]);
    assert_eq!(
        plan(SET, &desired(&[0]), Some(&lagging), None),
        Step::Wait(WaitReason::NoCaughtUpSecondary { primary: host(2) })
    );
}

#[test]
fn removals_take_non_voters_first_and_keep_a_healthy_majority() {
    let obs = observed(config(&[(0, true), (1, true), (2, true), (3, true), (4, true), (5, false)], 9), 0, &[]);
    assert_eq!(change(&plan(SET, &desired(&[0, 1, 2]), Some(&obs), None)), Some(&Change::Remove { host: host(5) }));
    // Removing healthy db-1 would leave {db-0, db-2} with db-2 down: no majority.
    let mut obs = observed(config(&[(0, true), (1, true), (2, true)], 4), 0, &[]);
    obs.members[2].healthy = false;
    assert_eq!(
        plan(SET, &desired(&[0, 2]), Some(&obs), None),
        Step::Wait(WaitReason::WouldLoseMajority { host: host(1) })
    );
}

#[test]
fn an_even_number_of_voters_is_reduced_by_demoting_a_secondary() {
    let obs = observed(config(&[(0, true), (1, true), (2, true), (3, true)], 7), 3, &[]);
    assert_eq!(change(&plan(SET, &desired(&[0, 1, 2, 3]), Some(&obs), None)), Some(&Change::Demote { host: host(2) }));
}

#[test]
fn members_keep_their_id_and_new_ones_prefer_their_ordinal() {
    let mut cfg = config(&[(0, true)], 2);
    cfg.members[0].id = 1; // db-0 was given _id 1 once; it keeps it
    let obs = observed(cfg, 0, &[]);
    let Step::Reconfig { config: next, .. } = plan(SET, &desired(&[0, 1]), Some(&obs), None) else { panic!() };
    assert_eq!(next.member(&host(0)).map(|m| m.id), Some(1));
    assert_eq!(next.member(&host(1)).map(|m| m.id), Some(0), "ordinal 1 is taken, so the lowest free _id");
}

#[test]
fn a_rollout_restarts_the_primary_only_after_stepping_it_down() {
    let obs = observed(config(&[(0, true), (1, true), (2, true)], 3), 1, &[]);
    assert_eq!(
        plan(SET, &desired(&[0, 1, 2]), Some(&obs), Some((&host(1), StepDownReason::Restart))),
        Step::StepDown { primary: host(1), reason: StepDownReason::Restart }
    );
    assert_eq!(plan(SET, &desired(&[0, 1, 2]), Some(&obs), Some((&host(2), StepDownReason::Restart))), Step::InSync);
    assert_eq!(plan(SET, &desired(&[0, 1, 2]), Some(&obs), None), Step::InSync);
}

#[test]
fn caught_up_means_within_the_lag_threshold() {
    let mut obs = observed(config(&[(0, true), (1, false), (2, false)], 3), 0, &[]);
    obs.members[1].lag_seconds = Some(CAUGHT_UP_LAG_SECONDS + 1);
    assert_eq!(change(&plan(SET, &desired(&[0, 1, 2]), Some(&obs), None)), Some(&Change::Promote { host: host(2) }));
}

/// `data` as members and the arbiter at ordinal 9, with this default write concern.
fn desired_with_arbiter(data: &[i64], writes: DefaultWriteConcern) -> Vec<DesiredMember> {
    let mut want = desired(data);
    want.push(DesiredMember {
        host: host(9),
        ordinal: 9,
        ready: true,
        removed: false,
        external: External::NotExposed,
        settings: MemberSettings::arbiter(writes),
    });
    want
}

/// `observed`, with member 9 (when in `cfg`) the arbiter, answering as one.
fn with_arbiter(mut cfg: ReplSetConfig, primary: i64, writes: Option<&str>) -> Observed {
    cfg.members.push(MemberConfig::arbiter(9, host(9)));
    let mut obs = observed(cfg, primary, &[]);
    if let Some(m) = obs.members.iter_mut().find(|m| m.host == host(9)) {
        m.state = MemberState::Arbiter;
        m.lag_seconds = None;
    }
    obs.default_write_concern = writes.map(str::to_string);
    obs
}

#[test]
fn an_arbiter_joins_after_the_default_write_concern_and_its_neighbour_votes_in_two_steps() {
    let majority = DefaultWriteConcern::Majority;
    let want = desired_with_arbiter(&[0, 1], majority);
    // Two members, one voting: the default write concern first (none is set)...
    let mut ps = observed(config(&[(0, true), (1, false)], 3), 0, &[]);
    assert_eq!(plan(SET, &want, Some(&ps), None), Step::SetDefaultWriteConcern(majority));
    // ... or when another one is set.
    ps.default_write_concern = Some("1".into());
    assert_eq!(plan(SET, &want, Some(&ps), None), Step::SetDefaultWriteConcern(majority));
    ps.default_write_concern = Some("majority".into());
    let Step::Reconfig { config: next, change: added } = plan(SET, &want, Some(&ps), None) else {
        panic!("a reconfig")
    };
    assert_eq!(added, Change::Add { host: host(9) });
    let arbiter = next.member(&host(9)).expect("the arbiter");
    assert_eq!((arbiter.votes, arbiter.priority, arbiter.is_arbiter()), (1, 0.0, true));
    rules::validate_reconfig(&parsed(&ps.config), &next.to_document().unwrap(), &host(0)).expect("accepted");

    // With the arbiter in: db-1 votes at priority 0 first (the server's PSA rule), then gets
    // its priority.
    let psa = with_arbiter(config(&[(0, true), (1, false)], 4), 0, Some("majority"));
    let Step::Reconfig { config: next, change: promoted } = plan(SET, &want, Some(&psa), None) else {
        panic!("a reconfig")
    };
    assert_eq!(promoted, Change::Promote { host: host(1) });
    assert_eq!(next.member(&host(1)).map(|m| (m.votes, m.priority)), Some((1, 0.0)));
    let mut electable_at_once = next.clone();
    if let Some(m) = electable_at_once.members.iter_mut().find(|m| m.host == host(1)) {
        m.priority = 1.0;
    }
    let refused = rules::validate_reconfig(&parsed(&psa.config), &electable_at_once.to_document().unwrap(), &host(0));
    assert!(refused.is_err_and(|r| r.code == 103), "one step is what the server refuses");
    let mut voting = with_arbiter(config(&[(0, true), (1, true)], 5), 0, Some("majority"));
    if let Some(m) = voting.config.members.iter_mut().find(|m| m.host == host(1)) {
        m.priority = 0.0;
    }
    let step = plan(SET, &want, Some(&voting), None);
    assert_eq!(change(&step), Some(&Change::Settings { hosts: vec![host(1)] }));
    let done = with_arbiter(config(&[(0, true), (1, true)], 6), 0, Some("majority"));
    assert_eq!(plan(SET, &want, Some(&done), None), Step::InSync);
    assert!(done.caught_up(&host(9)), "an arbiter in its state is in step");
}

#[test]
fn an_arbiter_leaves_with_a_default_write_concern_in_place_and_is_never_demoted() {
    let psa = with_arbiter(config(&[(0, true), (1, true)], 6), 0, None);
    // Leaving changes the implicit default too: with none set, `majority` first.
    assert_eq!(
        plan(SET, &desired(&[0, 1]), Some(&psa), None),
        Step::SetDefaultWriteConcern(DefaultWriteConcern::Majority)
    );
    let psa = with_arbiter(config(&[(0, true), (1, true)], 6), 0, Some("1"));
    assert_eq!(change(&plan(SET, &desired(&[0, 1]), Some(&psa), None)), Some(&Change::Remove { host: host(9) }));
    // Three data-bearing voters and the arbiter wanted: one of the data-bearing members gives
    // its vote up, never the arbiter.
    let four = with_arbiter(config(&[(0, true), (1, true), (2, true)], 6), 0, Some("majority"));
    let want = desired_with_arbiter(&[0, 1, 2], DefaultWriteConcern::Majority);
    assert_eq!(change(&plan(SET, &want, Some(&four), None)), Some(&Change::Demote { host: host(2) }));
}

/// The simulator's reading of a typed config.
fn parsed(cfg: &ReplSetConfig) -> rules::Config {
    rules::parse(&cfg.to_document().expect("document")).expect("parses")
}

// ---- properties ---------------------------------------------------------------------------

/// A model of the replica set that applies the planner's steps the way the server would,
/// refusing anything the server's rules refuse.
struct Model {
    config: Option<rules::Config>,
    primary: Option<i64>,
    committed: bool,
    /// Heartbeats until the last reconfig is committed.
    commit_in: u32,
    /// Member `_id` -> heartbeats until it is a caught-up secondary.
    syncing: BTreeMap<i64, u32>,
    /// Ordinals whose Pods are not ready yet -> heartbeats until they are.
    not_ready: BTreeMap<i64, u32>,
    sync_time: u32,
    /// The `w` of the cluster-wide default write concern, once `setDefaultRWConcern` ran.
    default_write_concern: Option<String>,
}

impl Model {
    fn id_of(&self, h: &str) -> Option<i64> {
        self.config.as_ref()?.members.iter().find(|m| m.host == h).map(|m| m.id)
    }

    fn observed(&self) -> Option<Observed> {
        let cfg = self.config.as_ref()?;
        let doc = rules::to_document(cfg, false);
        let typed: ReplSetConfig = mongodb::bson::from_document(doc).expect("server config parses");
        let members = cfg
            .members
            .iter()
            .map(|m| {
                let syncing = self.syncing.contains_key(&m.id);
                ObservedMember {
                    host: m.host.clone(),
                    state: if Some(m.id) == self.primary {
                        MemberState::Primary
                    } else if m.arbiter_only {
                        MemberState::Arbiter
                    } else if syncing {
                        MemberState::Startup2
                    } else {
                        MemberState::Secondary
                    },
                    healthy: true,
                    lag_seconds: Some(if syncing { 1000 } else { 0 }),
                }
            })
            .collect();
        let primary = self.primary.and_then(|p| cfg.members.iter().find(|m| m.id == p)).map(|m| m.host.clone());
        let default_write_concern = self.default_write_concern.clone();
        Some(Observed { config: typed, committed: self.committed, primary, members, default_write_concern })
    }

    /// One heartbeat: the config commits, syncing members progress, Pods become ready.
    fn tick(&mut self) {
        self.commit_in = self.commit_in.saturating_sub(1);
        self.committed = self.commit_in == 0;
        self.syncing.retain(|_, left| {
            *left = left.saturating_sub(1);
            *left > 0
        });
        self.not_ready.retain(|_, left| {
            *left = left.saturating_sub(1);
            *left > 0
        });
        if self.primary.is_none()
            && let Some(cfg) = &self.config
        {
            self.primary =
                cfg.members.iter().find(|m| m.is_electable() && !self.syncing.contains_key(&m.id)).map(|m| m.id);
        }
    }

    fn apply(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Initiate(cfg) => {
                let doc = cfg.to_document().map_err(|e| e.to_string())?;
                let first = &cfg.members[0].host;
                let installed =
                    rules::validate_initiate(&doc, SET, first).map_err(|r| format!("initiate refused: {r}"))?;
                self.primary = None;
                // An arbiter has no data to sync.
                self.syncing = installed
                    .members
                    .iter()
                    .skip(1)
                    .filter(|m| !m.arbiter_only)
                    .map(|m| (m.id, self.sync_time))
                    .collect();
                self.config = Some(installed);
                self.committed = true;
            }
            Step::Reconfig { config, change } => {
                let old = self.config.as_ref().ok_or("reconfig before initiate")?;
                let p = self.primary.ok_or("reconfig without a primary")?;
                if !self.committed {
                    return Err("reconfig before the previous config committed".into());
                }
                let primary_host =
                    old.members.iter().find(|m| m.id == p).map(|m| m.host.clone()).ok_or("primary not in config")?;
                let doc = config.to_document().map_err(|e| e.to_string())?;
                let installed = rules::validate_reconfig(old, &doc, &primary_host)
                    .map_err(|r| format!("{change:?} refused: {r}"))?;
                rules::check_implicit_write_concern(old, &installed, self.default_write_concern.is_some())
                    .map_err(|r| format!("{change:?} refused: {r}"))?;
                if installed.members.iter().any(|m| m.newly_added) {
                    return Err(format!("{change:?} relied on newlyAdded"));
                }
                if let Change::Promote { host } = change
                    && self.id_of(host).is_some_and(|id| self.syncing.contains_key(&id))
                {
                    return Err(format!("promoted {host} before it caught up"));
                }
                for m in installed.members.iter().filter(|m| !m.arbiter_only) {
                    if !old.members.iter().any(|o| o.id == m.id) {
                        self.syncing.insert(m.id, self.sync_time);
                    }
                }
                self.config = Some(installed);
                self.committed = false;
                // Commitment takes one or two heartbeats, so the planner sees uncommitted configs.
                self.commit_in = 1 + self.sync_time % 2;
            }
            Step::StepDown { primary, .. } => {
                let cfg = self.config.as_ref().ok_or("step down before initiate")?;
                if self.primary.and_then(|p| cfg.members.iter().find(|m| m.id == p)).map(|m| &m.host) != Some(primary) {
                    return Err(format!("stepped down {primary}, which is not the primary"));
                }
                let successor = cfg
                    .members
                    .iter()
                    .find(|m| Some(m.id) != self.primary && m.is_electable() && !self.syncing.contains_key(&m.id))
                    .map(|m| m.id);
                // The server refuses (262) without a caught-up electable secondary.
                self.primary = Some(successor.ok_or("step down without a caught-up electable secondary")?);
            }
            Step::SetDefaultWriteConcern(w) => {
                self.config.as_ref().ok_or("setDefaultRWConcern before initiate")?;
                self.primary.ok_or("setDefaultRWConcern without a primary")?;
                self.default_write_concern = Some(w.name().to_string());
            }
            Step::Wait(_) | Step::InSync => {}
        }
        Ok(())
    }
}

/// A starting set: members `(ordinal, voting)`, the primary's index, the wanted ordinals, the
/// sync time of new members, and how long each wanted Pod takes to become ready.
type Start = (Vec<(i64, bool)>, usize, Vec<i64>, u32, Vec<(i64, u32)>);

fn arb_start() -> impl Strategy<Value = Start> {
    (proptest::collection::btree_set(0i64..12, 1..10), proptest::collection::btree_set(0i64..12, 1..10), 0u32..4)
        .prop_flat_map(|(initial, wanted, sync)| {
            let initial: Vec<i64> = initial.into_iter().collect();
            let wanted: Vec<i64> = wanted.into_iter().collect();
            let n = initial.len();
            let w = wanted.len();
            (
                proptest::collection::vec(any::<bool>(), n),
                0..n,
                Just(initial),
                Just(wanted),
                Just(sync),
                proptest::collection::vec(0u32..4, w),
            )
        })
        .prop_map(|(votes, primary_index, initial, wanted, sync, delays)| {
            // A valid starting config: 1 to 7 voters, the primary among them.
            let mut members: Vec<(i64, bool)> = initial.iter().zip(votes).map(|(i, v)| (*i, v)).collect();
            members[primary_index].1 = true;
            let mut voters = 0;
            for (i, m) in members.iter_mut().enumerate() {
                if m.1 {
                    voters += 1;
                    if voters > 7 && i != primary_index {
                        m.1 = false;
                    }
                }
            }
            while members.iter().filter(|m| m.1).count() > 7 {
                if let Some(m) = members.iter_mut().rev().find(|m| m.1 && m.0 != initial[primary_index]) {
                    m.1 = false;
                }
            }
            let not_ready = wanted.iter().zip(delays).map(|(w, d)| (*w, d)).collect();
            (members, primary_index, wanted, sync, not_ready)
        })
}

fn run(model: Model, wanted: &[i64]) -> Result<Vec<Step>, String> {
    run_with_roles(model, wanted, &BTreeMap::new(), None)
}

/// The arbiter's ordinal in the property tests: clear of the data-bearing members' 0 to 11.
const ARBITER: i64 = 20;

/// Runs the planner until it is in sync, every step applied as the server would, with each
/// wanted ordinal's settings from `roles` (a plain electable member when absent); then checks
/// the config says what was asked.
fn run_with_roles(
    mut model: Model,
    wanted: &[i64],
    roles: &BTreeMap<i64, MemberSettings>,
    arbiter: Option<DefaultWriteConcern>,
) -> Result<Vec<Step>, String> {
    run_with_roles_on(&mut model, wanted, roles, arbiter)
}

/// [`run_with_roles`] on a model that lives on, to be taken further.
/// With `arbiter`, an arbiter at ordinal [`ARBITER`] is wanted too, with that default write
/// concern; without, any arbiter the set has must go.
fn run_with_roles_on(
    model: &mut Model,
    data: &[i64],
    roles: &BTreeMap<i64, MemberSettings>,
    arbiter: Option<DefaultWriteConcern>,
) -> Result<Vec<Step>, String> {
    let settings = |i: i64| match (i, arbiter) {
        (ARBITER, Some(w)) => MemberSettings::arbiter(w),
        _ => roles.get(&i).cloned().unwrap_or_default(),
    };
    let wanted: Vec<i64> = data.iter().copied().chain(arbiter.map(|_| ARBITER)).collect();
    let wanted = wanted.as_slice();
    let mut steps = Vec::new();
    for _ in 0..400 {
        let want: Vec<DesiredMember> = wanted
            .iter()
            .map(|&i| DesiredMember {
                host: host(i),
                ordinal: i,
                ready: !model.not_ready.contains_key(&i) || model.id_of(&host(i)).is_some(),
                removed: false,
                external: External::NotExposed,
                settings: settings(i),
            })
            .collect();
        let obs = model.observed();
        let step = plan(SET, &want, obs.as_ref(), None);
        model.apply(&step).map_err(|e| format!("{e}\nafter steps: {steps:#?}"))?;
        let done = step == Step::InSync;
        steps.push(step);
        if done {
            let cfg = model.config.as_ref().ok_or("in sync without a config")?;
            let mut hosts: Vec<String> = cfg.members.iter().map(|m| m.host.clone()).collect();
            hosts.sort();
            let mut expected: Vec<String> = wanted.iter().map(|&i| host(i)).collect();
            expected.sort();
            if hosts != expected {
                return Err(format!("in sync with members {hosts:?}, wanted {expected:?}"));
            }
            let may_vote = wanted.iter().filter(|&&i| settings(i).may_vote).count();
            let voters = cfg.members.iter().filter(|m| m.votes == 1 && !m.arbiter_only).count();
            if voters != data_voters(may_vote, arbiter.is_some()) {
                return Err(format!("in sync with {voters} voters for {may_vote} members that may vote"));
            }
            let arbiters: Vec<&str> = cfg.members.iter().filter(|m| m.arbiter_only).map(|m| m.host.as_str()).collect();
            if arbiters != arbiter.map(|_| host(ARBITER)).iter().map(String::as_str).collect::<Vec<_>>() {
                return Err(format!("in sync with arbiters {arbiters:?}, wanted {arbiter:?}"));
            }
            if let Some(w) = arbiter
                && model.default_write_concern.as_deref() != Some(w.name())
            {
                return Err(format!(
                    "in sync with the default write concern {:?}, wanted {w:?}",
                    model.default_write_concern
                ));
            }
            for m in cfg.members.iter().filter(|m| !m.arbiter_only) {
                let ordinal = wanted.iter().copied().find(|&i| host(i) == m.host).ok_or("a member not wanted")?;
                let want = settings(ordinal);
                let priority = if m.votes == 1 { want.priority } else { 0.0 };
                if m.votes == 1 && !want.may_vote {
                    return Err(format!("{} votes, but its role does not", m.host));
                }
                if (m.priority, m.hidden, m.secondary_delay_secs, &m.tags)
                    != (priority, want.hidden, want.delay_seconds, &want.tags)
                {
                    return Err(format!("{} is {m:?}, wanted {want:?}", m.host));
                }
            }
            if let Some(p) = model.primary.and_then(|p| cfg.members.iter().find(|m| m.id == p))
                && !p.is_electable()
            {
                return Err(format!("in sync with an unelectable primary {}", p.host));
            }
            return Ok(steps);
        }
        model.tick();
    }
    let last: Vec<String> = steps.iter().rev().take(6).map(|s| format!("{s:?}")).collect();
    Err(format!("no convergence after 400 steps; the last ones, newest first: {last:#?}"))
}

/// The model of a running set with these members, `members[primary]` its primary.
fn running(members: &[(i64, bool)], primary: usize, sync: u32, not_ready: Vec<(i64, u32)>) -> Model {
    let start = config(members, 1 + members.len() as i64);
    let parsed = rules::parse(&start.to_document().expect("document")).expect("start config parses");
    rules::check_set(&parsed, 93).expect("start config is valid");
    Model {
        primary: Some(members[primary].0),
        config: Some(parsed),
        committed: true,
        commit_in: 0,
        syncing: BTreeMap::new(),
        not_ready: not_ready.into_iter().filter(|(_, d)| *d > 0).collect(),
        sync_time: sync,
        default_write_concern: None,
    }
}

/// Random roles for `wanted`: mostly electable (with a priority of 1 to 3), some non-voting,
/// hidden or delayed, tagged or not; at least one stays electable, as validation requires.
fn arb_roles(wanted: Vec<i64>) -> impl Strategy<Value = BTreeMap<i64, MemberSettings>> {
    let n = wanted.len();
    proptest::collection::vec((0u8..7, 1i32..4, any::<bool>()), n).prop_map(move |picks| {
        let mut roles: BTreeMap<i64, MemberSettings> = wanted
            .iter()
            .zip(picks)
            .map(|(&i, (kind, priority, tagged))| {
                let tags = if tagged {
                    BTreeMap::from([("zone".to_string(), format!("z{}", i % 3))])
                } else {
                    BTreeMap::new()
                };
                let base = MemberSettings { tags, ..MemberSettings::default() };
                let settings = match kind {
                    0 => MemberSettings { may_vote: false, priority: 0.0, ..base },
                    1 => MemberSettings { priority: 0.0, hidden: true, ..base },
                    2 => MemberSettings { may_vote: false, priority: 0.0, hidden: true, delay_seconds: 3600, ..base },
                    _ => MemberSettings { priority: f64::from(priority), ..base },
                };
                (i, settings)
            })
            .collect();
        if !roles.values().any(MemberSettings::electable)
            && let Some(first) = roles.values_mut().next()
        {
            *first = MemberSettings { tags: first.tags.clone(), ..MemberSettings::default() };
        }
        roles
    })
}

/// No arbiter (half the cases), or one with either default write concern.
fn arb_arbiter() -> impl Strategy<Value = Option<DefaultWriteConcern>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(DefaultWriteConcern::Majority)),
        1 => Just(Some(DefaultWriteConcern::One)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn any_running_set_reaches_any_membership_and_roles_through_legal_steps(
        arbiters in (arb_arbiter(), arb_arbiter()),
        ((members, primary, wanted, sync, not_ready), roles, (next_wanted, next_roles)) in arb_start().prop_flat_map(|start| {
            let wanted = start.2.clone();
            let next = proptest::collection::btree_set(0i64..12, 1..10).prop_flat_map(|w| {
                let w: Vec<i64> = w.into_iter().collect();
                (Just(w.clone()), arb_roles(w))
            });
            (Just(start), arb_roles(wanted), next)
        })
    ) {
        let mut model = running(&members, primary, sync, not_ready);
        if let Err(e) = run_with_roles_on(&mut model, &wanted, &roles, arbiters.0) {
            prop_assert!(false, "roles {:?}, arbiter {:?}: {}", roles, arbiters.0, e);
        }
        // Then from those roles to others, with another membership and the arbiter added,
        // kept or taken away: every role to every role.
        if let Err(e) = run_with_roles_on(&mut model, &next_wanted, &next_roles, arbiters.1) {
            prop_assert!(false, "roles {:?} then {:?}, arbiter {:?}: {}", roles, next_roles, arbiters, e);
        }
    }

    #[test]
    fn any_new_set_is_initiated_with_its_roles_through_legal_steps(
        arbiter in arb_arbiter(),
        (wanted, roles) in proptest::collection::btree_set(0i64..12, 1..10).prop_flat_map(|w| {
            let w: Vec<i64> = w.into_iter().collect();
            (Just(w.clone()), arb_roles(w))
        }),
        sync in 0u32..4,
    ) {
        let model = Model { config: None, primary: None, committed: false, commit_in: 0, syncing: BTreeMap::new(), not_ready: BTreeMap::new(), sync_time: sync, default_write_concern: None };
        if let Err(e) = run_with_roles(model, &wanted, &roles, arbiter) { prop_assert!(false, "roles {:?}, arbiter {:?}: {}", roles, arbiter, e); }
    }

    #[test]
    fn any_running_set_reaches_any_membership_through_legal_steps((members, primary, wanted, sync, not_ready) in arb_start()) {
        if let Err(e) = run(running(&members, primary, sync, not_ready), &wanted) { prop_assert!(false, "{}", e); }
    }

    #[test]
    fn any_new_set_is_initiated_and_completed_through_legal_steps(wanted in proptest::collection::btree_set(0i64..12, 1..10), sync in 0u32..4) {
        let wanted: Vec<i64> = wanted.into_iter().collect();
        let model = Model { config: None, primary: None, committed: false, commit_in: 0, syncing: BTreeMap::new(), not_ready: BTreeMap::new(), sync_time: sync, default_write_concern: None };
        if let Err(e) = run(model, &wanted) { prop_assert!(false, "{}", e); }
    }
}
