//! The real admin layer (`DriverAdmin`, on the `mongodb` driver) against the replica-set
//! simulator over loopback: initiation, elections, membership changes driven by the planner,
//! every typed error where the server would return it, authentication and users.

use std::sync::Arc;
use std::time::Duration;

use mongo_operator::mongo::{
    AdminError, Credentials, DriverAdmin, MongoAdmin, Observation, Reachable, Role, Target, Timeouts, UserRequest,
    observe,
};
use mongo_operator::replset::config::DefaultWriteConcern;
use mongo_operator::replset::{
    DesiredMember, External, MemberConfig, MemberSettings, ReplSetConfig, Step, WaitReason, plan,
};
use mongo_replset_sim::{Options, Sim};

const SET: &str = "rs0";
const KEY: &str = "c2VjcmV0LWtleWZpbGUtZm9yLXRlc3Rz\n";

fn host(i: usize) -> String {
    format!("db-{i}.db-members.test.svc.cluster.local:27017")
}

struct Set {
    sim: Arc<Sim>,
    addrs: Vec<String>,
    admin: DriverAdmin,
}

impl Set {
    async fn start(n: usize) -> Set {
        let opts = Options {
            set_name: SET.into(),
            key_file: KEY.into(),
            election_timeout: Duration::from_millis(800),
            heartbeat_interval: Duration::from_millis(50),
            initial_sync: Duration::from_millis(200),
            noop_interval: Duration::from_millis(200),
            stepdown_handoff: Duration::from_millis(100),
            ..Options::default()
        };
        let sim = Sim::start(opts, None);
        let mut set = Set {
            sim,
            addrs: Vec::new(),
            admin: DriverAdmin::new(Timeouts { reconfig: Duration::from_millis(800), ..Timeouts::default() }),
        };
        for _ in 0..n {
            set.add().await;
        }
        set
    }

    async fn add(&mut self) -> usize {
        let i = self.addrs.len();
        let addr =
            self.sim.add_member(&format!("db-{i}"), &host(i), "127.0.0.1:0".parse().unwrap()).await.expect("bind");
        self.addrs.push(addr.to_string());
        i
    }

    fn system(&self, i: usize) -> Target {
        Target { address: self.addrs[i].clone(), credentials: Some(Credentials::from_key_file(KEY)), tls: None }
    }

    fn as_user(&self, i: usize, user: &str, password: &str) -> Target {
        Target {
            address: self.addrs[i].clone(),
            credentials: Some(Credentials::scram(user, "admin", password)),
            tls: None,
        }
    }

    fn reachable(&self, members: &[usize]) -> Vec<Reachable> {
        members.iter().map(|&i| Reachable { host: host(i), target: self.system(i) }).collect()
    }

    fn config(&self, members: &[(usize, bool)]) -> ReplSetConfig {
        ReplSetConfig {
            set_name: SET.into(),
            version: 1,
            term: None,
            protocol_version: 1,
            members: members.iter().map(|&(i, v)| MemberConfig::new(i as i64, host(i), v)).collect(),
            other: Default::default(),
        }
    }

    async fn primary(&self) -> usize {
        for _ in 0..300 {
            for i in 0..self.addrs.len() {
                if self.admin.hello(&self.system(i)).await.is_ok_and(|h| h.is_writable_primary) {
                    return i;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no primary within 15s: {}", self.sim.snapshot());
    }

    async fn committed(&self) {
        for _ in 0..300 {
            let p = self.primary().await;
            if self.admin.config(&self.system(p), true).await.is_ok_and(|(_, c)| c == Some(true)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("config never committed: {}", self.sim.snapshot());
    }

    /// Observes and executes planned steps until the planner is satisfied.
    async fn converge(&self, wanted: &[usize]) -> Vec<String> {
        self.converge_exposed(wanted, false).await
    }

    /// [`Set::converge`], with every member given an external address (`expose.perMember`)
    /// when `exposed`.
    async fn converge_exposed(&self, wanted: &[usize], exposed: bool) -> Vec<String> {
        self.converge_with(wanted, exposed, None).await
    }

    /// [`Set::converge_exposed`], with member `arbiter` wanted as the arbiter and the
    /// cluster-wide default write concern read as the reconcile reads it.
    async fn converge_with(&self, wanted: &[usize], exposed: bool, arbiter: Option<usize>) -> Vec<String> {
        let mut desired: Vec<DesiredMember> = wanted
            .iter()
            .map(|&i| DesiredMember {
                host: host(i),
                ordinal: i as i64,
                ready: true,
                removed: false,
                external: if exposed { External::At(external(i)) } else { External::NotExposed },
                settings: Default::default(),
            })
            .collect();
        desired.extend(arbiter.map(|i| DesiredMember {
            host: host(i),
            ordinal: i as i64,
            ready: true,
            removed: false,
            external: External::NotExposed,
            settings: MemberSettings::arbiter(DefaultWriteConcern::Majority),
        }));
        let all: Vec<usize> = (0..self.addrs.len()).collect();
        let mut log = Vec::new();
        for _ in 0..400 {
            let mut obs = match observe(&self.admin, &self.reachable(&all), &Credentials::from_key_file(KEY)).await {
                Ok(Observation { set: Some(o), .. }) => Some(*o),
                Ok(Observation { set: None, .. }) => None,
                Err(e) => panic!("observe: {e}"),
            };
            if let Some(o) = obs.as_mut()
                && let Some(p) = o.primary.clone()
            {
                let p = (0..self.addrs.len()).find(|&i| host(i) == p).expect("known host");
                o.default_write_concern =
                    self.admin.default_write_concern(&self.system(p)).await.expect("getDefaultRWConcern");
            }
            let step = plan(SET, &desired, obs.as_ref(), None);
            let primary = obs.as_ref().and_then(|o| o.primary.clone());
            let index = |h: &str| (0..self.addrs.len()).find(|&i| host(i) == h).expect("known host");
            match &step {
                Step::InSync => return log,
                Step::Initiate(cfg) => {
                    self.admin.initiate(&self.system(index(&cfg.members[0].host)), cfg).await.expect("initiate")
                }
                Step::Reconfig { config, change } => {
                    let p = index(&primary.clone().expect("reconfig needs a primary"));
                    match self.admin.reconfig(&self.system(p), config).await {
                        Ok(()) => log.push(format!("{change:?}")),
                        Err(e) if e.is_transient() => eprintln!("{change:?}: {e}"),
                        Err(e) => panic!("{change:?} refused: {e}"),
                    }
                }
                Step::StepDown { primary, .. } => {
                    match self.admin.step_down(&self.system(index(primary)), 60, 5).await {
                        Ok(()) => log.push(format!("StepDown {primary}")),
                        Err(e) if e.is_transient() => {}
                        Err(e) => panic!("step down refused: {e}"),
                    }
                }
                Step::SetDefaultWriteConcern(w) => {
                    let p = index(&primary.clone().expect("setDefaultRWConcern needs a primary"));
                    self.admin.set_default_write_concern(&self.system(p), *w).await.expect("setDefaultRWConcern");
                    log.push(format!("SetDefaultWriteConcern {}", w.name()));
                }
                Step::Wait(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("did not converge to {wanted:?}: {}", self.sim.snapshot());
    }
}

#[tokio::test]
async fn initiate_a_three_member_set_and_see_a_primary() {
    let set = Set::start(3).await;
    let hello = set.admin.hello(&set.system(0)).await.expect("hello before initiate");
    assert!(hello.has_no_config());
    assert_eq!(set.admin.status(&set.system(0)).await, Err(AdminError::NotYetInitialized));

    let cfg = set.config(&[(0, true), (1, true), (2, true)]);
    set.admin.initiate(&set.system(0), &cfg).await.expect("initiate");
    assert_eq!(set.admin.initiate(&set.system(0), &cfg).await, Err(AdminError::AlreadyInitialized));
    let p = set.primary().await;
    let status = set.admin.status(&set.system(p)).await.expect("status");
    assert_eq!(status.members.len(), 3);
    set.committed().await;
    let (read, _) = set.admin.config(&set.system(p), false).await.expect("config");
    assert_eq!(read.members.iter().map(|m| m.host.clone()).collect::<Vec<_>>(), [host(0), host(1), host(2)]);
    assert_eq!(set.admin.server_version(&set.system(p)).await.as_deref(), Ok("8.0.4"));
    assert_eq!(set.admin.feature_compatibility_version(&set.system(p)).await.map(|f| f.version), Ok("8.0".into()));
}

#[tokio::test]
async fn the_planner_grows_and_shrinks_the_set_through_the_admin_layer() {
    let mut set = Set::start(1).await;
    set.converge(&[0]).await;
    for _ in 0..4 {
        set.add().await;
    }
    let grew = set.converge(&[0, 1, 2, 3, 4]).await;
    assert_eq!(grew.iter().filter(|s| s.starts_with("Add")).count(), 4, "{grew:?}");
    assert_eq!(grew.iter().filter(|s| s.starts_with("Promote")).count(), 4, "{grew:?}");
    set.committed().await;
    // Make db-4 the primary, so that shrinking must step it down before removing it.
    let p = set.primary().await;
    if p != 4 {
        for i in (0..5).filter(|&i| i != 4) {
            set.sim.set_lag(&format!("db-{i}"), Duration::from_secs(3600));
        }
        // Lag only shows once the primary writes again (a no-op every 200 ms).
        tokio::time::sleep(Duration::from_millis(500)).await;
        set.admin.step_down(&set.system(p), 60, 5).await.expect("hand over to db-4");
        for i in 0..5 {
            set.sim.set_lag(&format!("db-{i}"), Duration::ZERO);
        }
        assert_eq!(set.primary().await, 4);
    }
    let shrank = set.converge(&[0, 1, 2]).await;
    assert!(shrank.iter().any(|s| s.starts_with("StepDown")), "{shrank:?}");
    assert_eq!(shrank.iter().filter(|s| s.starts_with("Remove")).count(), 2, "{shrank:?}");
    let (cfg, _) = set.admin.config(&set.system(set.primary().await), false).await.expect("config");
    assert_eq!(cfg.members.len(), 3);
    assert_eq!(cfg.voters(), 3);
}

fn external(i: usize) -> String {
    format!("db-{i}.mongo.example.internal:27017")
}

/// Horizons as the planner sets them pass the server's rules (the same names on every member,
/// `ReplSetConfig::_validate`) at each step: set on every member at once, carried by a member
/// that joins, and cleared from every member at once, while the set grows and shrinks.
#[tokio::test]
async fn horizons_are_set_carried_by_joining_members_and_cleared_in_steps_the_server_accepts() {
    let mut set = Set::start(3).await;
    set.converge(&[0, 1, 2]).await;
    let exposed = set.converge_exposed(&[0, 1, 2], true).await;
    assert_eq!(exposed, vec!["Horizons { external: true }"], "one reconfig for every member");
    let externals = |cfg: &mongo_operator::replset::ReplSetConfig| {
        cfg.members.iter().map(|m| m.external_host().map(str::to_string)).collect::<Vec<_>>()
    };
    let (cfg, _) = set.admin.config(&set.system(set.primary().await), false).await.expect("config");
    assert_eq!(externals(&cfg), (0..3).map(|i| Some(external(i))).collect::<Vec<_>>());

    set.add().await;
    set.add().await;
    let grew = set.converge_exposed(&[0, 1, 2, 3, 4], true).await;
    assert_eq!(grew.iter().filter(|s| s.starts_with("Add")).count(), 2, "{grew:?}");
    assert!(!grew.iter().any(|s| s.starts_with("Horizons")), "joining members carry theirs: {grew:?}");
    set.committed().await;
    let (cfg, _) = set.admin.config(&set.system(set.primary().await), false).await.expect("config");
    assert_eq!(externals(&cfg), (0..5).map(|i| Some(external(i))).collect::<Vec<_>>());

    // Shrinking and ending the exposure at once: the horizons go first, from every member.
    let shrank = set.converge_exposed(&[0, 1, 2], false).await;
    assert_eq!(shrank.first().map(String::as_str), Some("Horizons { external: false }"), "{shrank:?}");
    set.committed().await;
    let (cfg, _) = set.admin.config(&set.system(set.primary().await), false).await.expect("config");
    assert_eq!(externals(&cfg), vec![None, None, None]);
    assert!(cfg.members.iter().all(|m| !m.has_horizons()));
}

#[tokio::test]
async fn a_removed_member_is_told_from_a_new_one_and_never_initiated() {
    let mut set = Set::start(3).await;
    set.converge(&[0, 1, 2]).await;
    set.committed().await;
    // Remove db-2 (the planner steps it down first if it is the primary).
    set.converge(&[0, 1]).await;
    let fresh = set.add().await;
    let removed_hello = loop {
        let h = set.admin.hello(&set.system(2)).await.expect("hello");
        if h.has_no_config() {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let new_hello = set.admin.hello(&set.system(fresh)).await.expect("hello");
    // What hello shows cannot tell them apart (`_makeHelloResponse` answers both as no config).
    assert_eq!(removed_hello.info, new_hello.info);
    assert_eq!((removed_hello.set_name.clone(), new_hello.set_name.clone()), (None, None));
    // replSetGetStatus can: 93 once removed, 94 before initiation.
    assert!(matches!(set.admin.status(&set.system(2)).await, Err(AdminError::InvalidConfig(_))));
    assert_eq!(set.admin.status(&set.system(fresh)).await, Err(AdminError::NotYetInitialized));

    let system = Credentials::from_key_file(KEY);
    let obs = observe(&set.admin, &set.reachable(&[0, 1, 2, fresh]), &system).await.expect("observe");
    assert_eq!(obs.removed, vec![host(2)], "only db-2 is REMOVED");
    assert!(obs.answered.contains(&host(fresh)));

    // The members of the set are gone; the removed one and the new one answer. The set exists,
    // so it is never initiated again (it would meet 23 on db-2).
    set.sim.stop_member("db-0");
    set.sim.stop_member("db-1");
    let obs = observe(&set.admin, &set.reachable(&[2, fresh]), &system).await.expect("observe");
    assert!(obs.set.is_none());
    let desired: Vec<DesiredMember> = [2, fresh]
        .iter()
        .map(|&i| DesiredMember {
            host: host(i),
            ordinal: i as i64,
            ready: obs.answered.contains(&host(i)),
            removed: obs.removed.contains(&host(i)),
            external: External::NotExposed,
            settings: Default::default(),
        })
        .collect();
    match plan(SET, &desired, None, None) {
        Step::Wait(WaitReason::MembersRemoved { hosts }) => assert_eq!(hosts, vec![host(2)]),
        other => panic!("expected a wait for the removed member, got {other:?}"),
    }
    let config = set.config(&[(2, true), (fresh, true)]);
    assert_eq!(set.admin.initiate(&set.system(2), &config).await, Err(AdminError::AlreadyInitialized));
}

#[tokio::test]
async fn each_typed_error_comes_where_the_server_returns_it() {
    let set = Set::start(4).await;
    set.sim.stop_member("db-3");
    // 74: initiate names a member that does not answer.
    let with_dead = set.config(&[(0, true), (1, true), (2, true), (3, false)]);
    assert!(matches!(set.admin.initiate(&set.system(0), &with_dead).await, Err(AdminError::NodeNotFound(_))));
    // 93: the document itself is invalid.
    let mut bad = set.config(&[(0, true)]);
    bad.members[0].votes = 2;
    assert!(matches!(set.admin.initiate(&set.system(0), &bad).await, Err(AdminError::InvalidConfig(_))));

    set.admin.initiate(&set.system(0), &set.config(&[(0, true), (1, true), (2, true)])).await.expect("initiate");
    let p = set.primary().await;
    set.committed().await;
    let (cfg, _) = set.admin.config(&set.system(p), false).await.expect("config");
    let secondary = (0..3).find(|&i| i != p).expect("a secondary");

    // 10107: reconfig sent to a secondary.
    assert_eq!(set.admin.reconfig(&set.system(secondary), &cfg.next()).await, Err(AdminError::NotWritablePrimary));
    // 103: two voting changes at once.
    let mut two = cfg.next();
    for m in two.members.iter_mut().filter(|m| m.id as usize != p) {
        m.set_voting(false);
    }
    assert!(matches!(set.admin.reconfig(&set.system(p), &two).await, Err(AdminError::IncompatibleConfig(_))));
    // 104: the primary would not be electable.
    let mut demoted = cfg.next();
    if let Some(m) = demoted.members.iter_mut().find(|m| m.id as usize == p) {
        m.set_voting(false);
    }
    assert!(matches!(set.admin.reconfig(&set.system(p), &demoted).await, Err(AdminError::NodeNotElectable(_))));
    // 308: the previous config is installed but not committed (secondaries far behind).
    for i in (0..3).filter(|&i| i != p) {
        set.sim.set_lag(&format!("db-{i}"), Duration::from_secs(3600));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut first = cfg.next();
    first.members[0].other.insert("tags", mongodb::bson::doc! { "zone": "a" });
    set.admin.reconfig(&set.system(p), &first).await.expect("first reconfig installs");
    assert_eq!(set.admin.reconfig(&set.system(p), &first.next()).await, Err(AdminError::ConfigNotCommitted));
    // 262: no electable secondary has caught up.
    assert!(matches!(set.admin.step_down(&set.system(p), 60, 1).await, Err(AdminError::NoCaughtUpSecondary(_))));
    // Unreachable: a stopped member.
    assert!(matches!(set.admin.hello(&set.system(3)).await, Err(AdminError::Unreachable(_))));
}

#[tokio::test]
async fn step_down_hands_over_to_a_caught_up_secondary() {
    let set = Set::start(3).await;
    set.admin.initiate(&set.system(0), &set.config(&[(0, true), (1, true), (2, true)])).await.expect("initiate");
    let first = set.primary().await;
    set.committed().await;
    set.admin.step_down(&set.system(first), 60, 5).await.expect("step down");
    let second = set.primary().await;
    assert_ne!(first, second, "a different member must be primary after the step-down");
    // The stopped primary is replaced by MongoDB's own election.
    set.sim.stop_member(&format!("db-{second}"));
    let third = set.primary().await;
    assert_ne!(third, second);
}

#[tokio::test]
async fn authentication_and_user_management() {
    let set = Set::start(1).await;
    set.admin.initiate(&set.system(0), &set.config(&[(0, true)])).await.expect("initiate");
    set.primary().await;
    let wrong = Target {
        address: set.addrs[0].clone(),
        credentials: Some(Credentials::from_key_file("not-the-key")),
        tls: None,
    };
    assert!(matches!(set.admin.status(&wrong).await, Err(AdminError::AuthenticationFailed(_))));
    let anonymous = Target { address: set.addrs[0].clone(), credentials: None, tls: None };
    assert!(matches!(set.admin.status(&anonymous).await, Err(AdminError::Unauthorized(_))));

    let role = |r: &str| Role { role: r.into(), db: "admin".into() };
    let user = UserRequest {
        db: "admin".into(),
        name: "monitor".into(),
        password: Some("first-pass".into()),
        roles: Some(vec![role("readAnyDatabase")]),
    };
    set.admin.create_user(&set.system(0), &user).await.expect("create user");
    assert!(matches!(set.admin.create_user(&set.system(0), &user).await, Err(AdminError::UserExists(_))));
    let users = set.admin.users(&set.system(0), "admin").await.expect("usersInfo");
    assert_eq!(users.iter().map(|u| (u.user.as_str(), u.roles.len())).collect::<Vec<_>>(), [("monitor", 1)]);

    // Logged in as the user: allowed only what its roles allow.
    assert!(matches!(
        set.admin.status(&set.as_user(0, "monitor", "first-pass")).await,
        Err(AdminError::Unauthorized(_))
    ));
    let grant = UserRequest { roles: Some(vec![role("clusterMonitor")]), password: None, ..user.clone() };
    set.admin.update_user(&set.system(0), &grant).await.expect("update roles");
    set.admin.status(&set.as_user(0, "monitor", "first-pass")).await.expect("clusterMonitor may read status");

    // Rotation: the old password stops working, the new one works.
    let rotate = UserRequest { password: Some("second-pass".into()), roles: None, ..user.clone() };
    set.admin.update_user(&set.system(0), &rotate).await.expect("rotate password");
    // Connections authenticated before the rotation stay logged in (as on a real server), so
    // a new client checks the passwords.
    let fresh = DriverAdmin::new(Timeouts::default());
    assert!(matches!(
        fresh.status(&set.as_user(0, "monitor", "first-pass")).await,
        Err(AdminError::AuthenticationFailed(_))
    ));
    fresh.status(&set.as_user(0, "monitor", "second-pass")).await.expect("new password");

    set.admin.drop_user(&set.system(0), "admin", "monitor").await.expect("drop");
    assert!(matches!(set.admin.drop_user(&set.system(0), "admin", "monitor").await, Err(AdminError::UserNotFound(_))));
    let fresh = DriverAdmin::new(Timeouts::default());
    assert!(matches!(
        fresh.status(&set.as_user(0, "monitor", "second-pass")).await,
        Err(AdminError::AuthenticationFailed(_))
    ));
}

#[tokio::test]
async fn feature_compatibility_version_needs_confirm_from_7_0() {
    let set = Set::start(1).await;
    set.admin.initiate(&set.system(0), &set.config(&[(0, true)])).await.expect("initiate");
    set.primary().await;
    let err = set.admin.set_feature_compatibility_version(&set.system(0), "8.0", false).await;
    assert!(matches!(err, Err(AdminError::Server { code: 7369100, .. })), "{err:?}");
    set.admin.set_feature_compatibility_version(&set.system(0), "8.0", true).await.expect("with confirm");
}

#[tokio::test]
async fn the_feature_compatibility_version_moves_only_as_mongod_allows() {
    // Three voters, so that one member down keeps a primary.
    let set = Set::start(3).await;
    for i in 0..3 {
        set.sim.set_version(&format!("db-{i}"), "7.0.12");
    }
    set.admin.initiate(&set.system(0), &set.config(&[(0, true), (1, true), (2, true)])).await.expect("initiate");
    let p = set.primary().await;
    let set = &set;
    let fcv =
        |i: usize| async move { set.admin.feature_compatibility_version(&set.system(i)).await.map(|f| f.version) };
    assert_eq!(fcv(p).await, Ok("7.0".into()), "a new set takes its initiator's release");
    let code = |r: Result<(), AdminError>| match r {
        Err(AdminError::Server { code, .. }) => code,
        other => panic!("expected a server error, got {other:?}"),
    };
    assert_eq!(code(set.admin.set_feature_compatibility_version(&set.system(p), "8.0", true).await), 5147403);

    // Every member on 8.0 binaries (each restarted), then the FCV can go up.
    for i in 0..3 {
        let name = format!("db-{i}");
        set.sim.stop_member(&name);
        set.sim.set_version(&name, "8.0.4");
        set.sim.start_member(&name).await.expect("restart");
    }
    // Connections opened before the restarts are gone: a fresh client, as after a real restart;
    // and the election the restarts caused settles first.
    let admin = DriverAdmin::new(Timeouts::default());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let p = set.primary().await;
    assert_eq!(code(admin.set_feature_compatibility_version(&set.system(p), "8.0", false).await), 7369100);
    admin.set_feature_compatibility_version(&set.system(p), "8.0", true).await.expect("raise");
    assert_eq!(admin.feature_compatibility_version(&set.system(p)).await.map(|f| f.version), Ok("8.0".into()));

    // A 7.0 binary cannot start on FCV 8.0 data (exit code 62); after lowering the FCV it can.
    let s = (p + 1) % 3;
    let other = format!("db-{s}");
    set.sim.stop_member(&other);
    set.sim.set_version(&other, "7.0.12");
    set.sim.start_member(&other).await.expect("restart");
    assert!(admin.hello(&set.system(s)).await.is_err(), "a 7.0 binary refuses FCV 8.0 data");
    assert_eq!(code(admin.set_feature_compatibility_version(&set.system(p), "6.0", true).await), 5147403);
    admin.set_feature_compatibility_version(&set.system(p), "7.0", true).await.expect("lower");
    set.sim.stop_member(&other);
    set.sim.start_member(&other).await.expect("restart");
    DriverAdmin::new(Timeouts::default()).hello(&set.system(s)).await.expect("the 7.0 binary runs on FCV 7.0");
}

/// The votes and priorities of the set's config, by member index: `(votes, priority, arbiter)`.
async fn votes(set: &Set) -> Vec<(usize, i64, f64, bool)> {
    set.committed().await;
    let p = set.primary().await;
    let (cfg, _) = set.admin.config(&set.system(p), false).await.expect("config");
    let index = |h: &str| (0..set.addrs.len()).find(|&i| host(i) == h).expect("known host");
    let mut out: Vec<_> = cfg.members.iter().map(|m| (index(&m.host), m.votes, m.priority, m.is_arbiter())).collect();
    out.sort_by_key(|v| v.0);
    out
}

#[tokio::test]
async fn an_arbiter_joins_a_two_member_set_after_the_default_write_concern_and_leaves_it_again() {
    let set = Set::start(3).await;
    // Two data-bearing members: one votes (an even count would tie).
    set.converge(&[0, 1]).await;
    assert_eq!(votes(&set).await.iter().filter(|v| v.1 == 1).count(), 1);

    // The arbiter: the simulator refuses to add it (103) until a cluster-wide default write
    // concern is set, and refuses a secondary made electable in the reconfig that gives it its
    // vote beside the arbiter (the PSA rule); every step below was accepted.
    let joined = set.converge_with(&[0, 1], false, Some(2)).await;
    let kinds: Vec<&str> = joined.iter().map(|s| s.split([' ', '{']).next().unwrap_or_default()).collect();
    assert_eq!(kinds, ["SetDefaultWriteConcern", "Add", "Promote", "Settings"], "{joined:?}");
    assert_eq!(votes(&set).await, [(0, 1, 1.0, false), (1, 1, 1.0, false), (2, 1, 0.0, true)]);
    let p = set.primary().await;
    assert_eq!(
        set.admin.default_write_concern(&set.system(p)).await.expect("getDefaultRWConcern").as_deref(),
        Some("majority")
    );
    let hello = set.admin.hello(&set.system(2)).await.expect("the arbiter's hello");
    assert!(hello.arbiter_only, "{hello:?}");

    // Off again: it leaves (the default write concern stays set, as the server keeps it), and
    // the two data-bearing members are back to one vote.
    let left = set.converge(&[0, 1]).await;
    let kinds: Vec<&str> = left.iter().map(|s| s.split([' ', '{']).next().unwrap_or_default()).collect();
    assert_eq!(kinds, ["Remove", "Demote"], "{left:?}");
    let after = votes(&set).await;
    assert_eq!(after.len(), 2);
    assert_eq!(after.iter().filter(|v| v.1 == 1).count(), 1, "{after:?}");
}

#[tokio::test]
async fn a_new_set_with_an_arbiter_is_initiated_with_it_and_then_gets_its_default_write_concern() {
    let set = Set::start(3).await;
    let steps = set.converge_with(&[0, 1], false, Some(2)).await;
    assert_eq!(steps, ["SetDefaultWriteConcern majority"], "{steps:?}");
    assert_eq!(votes(&set).await, [(0, 1, 1.0, false), (1, 1, 1.0, false), (2, 1, 0.0, true)]);
}

#[tokio::test]
async fn the_driver_never_logs_in_to_an_arbiter_so_it_is_asked_nothing_that_needs_a_login() {
    let set = Set::start(3).await;
    set.converge_with(&[0, 1], false, Some(2)).await;
    // The driver skips authentication on a server whose `hello` says `arbiterOnly` (the
    // drivers' rule, DRIVERS-753; `ServerType::can_auth` in the Rust driver), even with
    // `__system`'s credentials: `hello` and `buildInfo` answer, anything that needs a login
    // is refused. So the operator reads the arbiter's version and state (the primary's
    // `replSetGetStatus` reports it), and restarts it where the members get a run-time
    // command (a TLS mode, a renewed certificate). A connection that logged in before the
    // member became the arbiter stays logged in, so a fresh client shows what a new one gets.
    let fresh = DriverAdmin::new(Timeouts::default());
    assert!(fresh.hello(&set.system(2)).await.is_ok_and(|h| h.arbiter_only));
    assert_eq!(fresh.server_version(&set.system(2)).await.as_deref(), Ok("8.0.4"));
    let refused = fresh.status(&set.system(2)).await;
    assert!(matches!(refused, Err(AdminError::Unauthorized(_))), "{refused:?}");
    let refused = fresh.tls_mode(&set.system(2)).await;
    assert!(matches!(refused, Err(AdminError::Unauthorized(_))), "{refused:?}");
    // The set itself is observed through the primary, the arbiter included.
    let all: Vec<usize> = (0..3).collect();
    let seen = observe(&fresh, &set.reachable(&all), &Credentials::from_key_file(KEY)).await.expect("observe");
    let obs = seen.set.expect("the set");
    assert!(obs.caught_up(&host(2)), "the arbiter counts as in step: {obs:?}");
}
