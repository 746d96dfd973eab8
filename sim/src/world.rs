//! The simulated replica set: members, their installed configs, replication, elections and
//! config commitment. Time advances through `tick`, run every heartbeat interval.
//!
//! Simplifications (the operator cannot observe them through the commands it uses):
//! - one oplog for the whole set; a secondary's position is how much of the primary's oplog it
//!   has applied, `lag` behind the primary;
//! - users are stored once for the set (they replicate instantly once written on the primary);
//! - a partitioned member cannot reach any other member, but clients can still reach it;
//! - no chaining, no priority takeover, no catch-up phase, no rollback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bson::oid::ObjectId;
use rand::Rng;

use crate::rules::{self, Config, Refusal, code};
use crate::scram::Credentials;

/// How the simulator behaves; defaults are close to a real server's.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--replSet` of every member.
    pub set_name: String,
    /// keyFile contents; the `__system@local` user authenticates with them.
    pub key_file: String,
    /// `buildInfo.version` of new members, for example "8.0.4".
    pub server_version: String,
    /// Election timeout when the config does not set `settings.electionTimeoutMillis`.
    pub election_timeout: Duration,
    /// How often members exchange heartbeats (and the simulation advances).
    pub heartbeat_interval: Duration,
    /// How long a new member stays in STARTUP2 (initial sync) or a restarted one recovers.
    pub initial_sync: Duration,
    /// How often the primary writes a no-op to the oplog (10 s on a real server).
    pub noop_interval: Duration,
    /// Delay before a caught-up secondary stands for election after a step-down.
    pub stepdown_handoff: Duration,
    /// The address of a FerretDB holding the set's data, for a set that holds data (see
    /// `data.rs`); none for a set that only answers replica-set commands.
    pub data: Option<String>,
    /// Access control, as a member started with `--keyFile` (or `--auth`) has it. Without
    /// it, as mongod without either, no command needs a user: `AuthorizationManager::
    /// isAuthEnabled` is false and `AuthorizationSession` grants every privilege
    /// (`src/mongo/db/auth/authorization_session_impl.cpp`, `_isAuthorizedForPrivilege`).
    pub access_control: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            set_name: "rs0".into(),
            key_file: String::new(),
            server_version: "8.0.4".into(),
            election_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_millis(500),
            initial_sync: Duration::from_secs(2),
            noop_interval: Duration::from_secs(10),
            stepdown_handoff: Duration::from_millis(500),
            data: None,
            access_control: true,
        }
    }
}

/// Replica-set member states (`member_state.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum State {
    Startup = 0,
    Primary = 1,
    Secondary = 2,
    Startup2 = 5,
    Arbiter = 7,
    Down = 8,
    Removed = 10,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Startup => "STARTUP",
            State::Primary => "PRIMARY",
            State::Secondary => "SECONDARY",
            State::Startup2 => "STARTUP2",
            State::Arbiter => "ARBITER",
            State::Down => "(not reachable/healthy)",
            State::Removed => "REMOVED",
        }
    }
}

/// One simulated mongod.
#[derive(Debug, Clone)]
pub struct SimMember {
    pub name: String,
    /// `host:port` as it appears in the replica-set config.
    pub host: String,
    pub listen: SocketAddr,
    pub version: String,
    pub up: bool,
    pub partitioned: bool,
    /// Replication delay behind the primary.
    pub lag: Duration,
    /// Extra delay before answering each client command.
    pub slow: Duration,
    pub config: Option<Config>,
    pub primary_term: Option<i64>,
    /// How many oplog entries this member has applied.
    pub applied: usize,
    /// How many entries of the data store's oplog ([`World::data_oplog`]) it has applied.
    pub data_applied: usize,
    pub busy_until: Instant,
    pub stepdown_until: Option<Instant>,
    pub election_at: Option<Instant>,
    pub lost_majority_since: Option<Instant>,
    pub started: Instant,
    /// Bumped on every stop, so connections opened before it are closed.
    pub generation: u64,
    /// TLS as the member was started with it (and moved at run time).
    pub tls: crate::tls::MemberTls,
    /// Connections open to it now, and opened since it started (serverStatus `connections`).
    pub connections: Connections,
    /// What it has served since it started (serverStatus `opcounters`, `opLatencies`).
    pub ops: crate::op_stats::OpStats,
}

/// `serverStatus.connections` counts: in memory only, so they start again at a restart.
#[derive(Debug, Clone, Copy, Default)]
pub struct Connections {
    pub current: i64,
    pub total_created: i64,
}

/// A database user.
#[derive(Debug, Clone)]
pub struct User {
    pub db: String,
    pub name: String,
    pub roles: Vec<(String, String)>,
    pub credentials: Credentials,
    /// `userId`, a UUID mongod gives every user.
    pub id: [u8; 16],
}

/// An entry of the data store's oplog (the writes clients made, the no-ops), as the
/// simulated members fetch it from the primary: its position and when it was fetched.
#[derive(Debug, Clone)]
pub struct DataOplogEntry {
    pub ts: bson::Timestamp,
    pub t: i64,
    pub wall: SystemTime,
    pub at: Instant,
}

#[derive(Debug, Clone)]
pub struct OplogEntry {
    pub at: Instant,
    pub wall: SystemTime,
    pub term: i64,
}

/// The whole simulated set.
#[derive(Debug)]
pub struct World {
    pub opts: Options,
    pub members: BTreeMap<String, SimMember>,
    pub users: BTreeMap<(String, String), User>,
    pub oplog: Vec<OplogEntry>,
    /// The data store's oplog, for a set that holds data: what `hello`'s `lastWrite` reports.
    pub data_oplog: Vec<DataOplogEntry>,
    pub term: i64,
    /// The featureCompatibilityVersion document, once the set was initiated: it is written at
    /// `replSetInitiate` with the initiator's release, and replicated to every member.
    pub fcv: Option<String>,
    /// The cluster-wide default write concern set with `setDefaultRWConcern`: mongod keeps it
    /// in `config.settings`, replicated to every member, so it outlives restarts.
    pub cluster_wide_write_concern: Option<bson::Document>,
    /// Oplog position at which each config version was written on the primary.
    pub config_optime: BTreeMap<i64, usize>,
    pub last_noop: Instant,
}

pub fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

pub fn major_minor(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The featureCompatibilityVersions a binary of `release` ("8.0") accepts: its own and the
/// last LTS release before it ("7.0"; for a rapid release such as 7.3, 7.0 too). These are the
/// values `FeatureCompatibilityVersionParser::parseVersion` (`feature_compatibility_version_
/// parser.cpp`) accepts (lastLTS, lastContinuous, latest); the simulator has no rapid
/// releases, so lastContinuous is left out.
pub fn accepted_fcvs(release: &str) -> Vec<String> {
    let mut parts = release.split('.').filter_map(|p| p.parse::<u32>().ok());
    let (Some(major), Some(minor)) = (parts.next(), parts.next()) else { return Vec::new() };
    let last_lts = if minor == 0 { format!("{}.0", major.saturating_sub(1)) } else { format!("{major}.0") };
    vec![last_lts, format!("{major}.{minor}")]
}

impl World {
    pub fn new(opts: Options) -> World {
        World {
            opts,
            members: BTreeMap::new(),
            users: BTreeMap::new(),
            oplog: Vec::new(),
            data_oplog: Vec::new(),
            term: 0,
            fcv: None,
            cluster_wide_write_concern: None,
            config_optime: BTreeMap::new(),
            last_noop: Instant::now(),
        }
    }

    pub fn add_member(&mut self, name: &str, host: &str, listen: SocketAddr) {
        let now = Instant::now();
        self.members.insert(
            name.to_string(),
            SimMember {
                name: name.to_string(),
                host: rules::normalize_host(host),
                listen,
                version: self.opts.server_version.clone(),
                up: true,
                partitioned: false,
                lag: Duration::ZERO,
                slow: Duration::ZERO,
                config: None,
                primary_term: None,
                applied: 0,
                data_applied: 0,
                busy_until: now,
                stepdown_until: None,
                election_at: None,
                lost_majority_since: None,
                started: now,
                generation: 0,
                tls: crate::tls::MemberTls::default(),
                connections: Connections::default(),
                ops: crate::op_stats::OpStats::default(),
            },
        );
    }

    pub fn member(&self, name: &str) -> Option<&SimMember> {
        self.members.get(name)
    }

    fn by_host(&self, host: &str) -> Option<&SimMember> {
        self.members.values().find(|m| m.host == host)
    }

    /// Whether `a` and `b` can exchange heartbeats.
    pub fn reachable(&self, a: &str, b: &str) -> bool {
        match (self.members.get(a), self.members.get(b)) {
            (Some(x), Some(y)) if a == b => x.up && y.up,
            (Some(x), Some(y)) => x.up && y.up && !x.partitioned && !y.partitioned,
            _ => false,
        }
    }

    pub fn state(&self, m: &SimMember, now: Instant) -> State {
        if !m.up {
            return State::Down;
        }
        let Some(cfg) = &m.config else { return State::Startup };
        let Some(entry) = cfg.members.iter().find(|e| e.host == m.host) else { return State::Removed };
        if m.primary_term.is_some() {
            State::Primary
        } else if now < m.busy_until {
            State::Startup2
        } else if entry.arbiter_only {
            State::Arbiter
        } else {
            State::Secondary
        }
    }

    /// The primary with the highest term among members that are up.
    pub fn primary(&self) -> Option<&SimMember> {
        self.members.values().filter(|m| m.up && m.primary_term.is_some()).max_by_key(|m| m.primary_term)
    }

    fn election_timeout(&self, cfg: &Config) -> Duration {
        cfg.settings
            .get("electionTimeoutMillis")
            .and_then(|v| v.as_i64().or_else(|| v.as_i32().map(i64::from)))
            .and_then(|ms| u64::try_from(ms).ok())
            .map_or(self.opts.election_timeout, Duration::from_millis)
    }

    /// Entries the primary's data store logged since the last fetch: the primary has them
    /// applied at once, the secondaries as [`World::tick`] replicates them.
    pub fn fetched_data_oplog(&mut self, entries: Vec<(bson::Timestamp, i64, SystemTime)>) {
        let now = Instant::now();
        for (ts, t, wall) in entries {
            if self.data_oplog.last().is_some_and(|last| last.ts >= ts) {
                continue;
            }
            self.data_oplog.push(DataOplogEntry { ts, t, wall, at: now });
        }
        let len = self.data_oplog.len();
        if let Some(p) = self.primary().map(|p| p.name.clone())
            && let Some(p) = self.members.get_mut(&p)
        {
            p.data_applied = len;
        }
    }

    /// The set's commit point as `member` knows it, by `position` (applied entries of one
    /// oplog): the highest position a majority of the voters of the primary's config have
    /// reached (`TopologyCoordinator::updateLastCommittedOpTimeAndWallTime`, which takes the
    /// majority-th highest optime of the voters), and never past what `member` has applied
    /// itself (its committed snapshot is of its own data). None without a primary.
    pub fn commit_point(&self, member: &SimMember, position: fn(&SimMember) -> usize) -> Option<usize> {
        let primary = self.primary()?;
        let cfg = primary.config.as_ref()?;
        let mut reached: Vec<usize> = self
            .reachable_hosts(&primary.name, cfg)
            .filter(|m| cfg.members.iter().any(|e| e.host == m.host && e.is_voter()))
            .map(position)
            .collect();
        reached.sort_unstable_by(|a, b| b.cmp(a));
        let committed = *reached.get(majority(cfg.voters()).checked_sub(1)?)?;
        Some(committed.min(position(member)))
    }

    pub fn append_oplog(&mut self) -> usize {
        self.oplog.push(OplogEntry { at: Instant::now(), wall: SystemTime::now(), term: self.term });
        let pos = self.oplog.len();
        if let Some(p) = self.primary().map(|p| p.name.clone())
            && let Some(p) = self.members.get_mut(&p)
        {
            p.applied = pos;
        }
        pos
    }

    /// Members of `cfg` (by host) that `from` can reach, including itself.
    fn reachable_hosts<'a>(&'a self, from: &'a str, cfg: &'a Config) -> impl Iterator<Item = &'a SimMember> + 'a {
        cfg.members.iter().filter_map(move |e| self.by_host(&e.host)).filter(move |m| self.reachable(from, &m.name))
    }

    /// Whether the primary's current config is committed: a majority of voters have installed
    /// it and (after version 1) applied the oplog up to where it was written.
    pub fn config_committed(&self, primary: &SimMember) -> bool {
        let Some(cfg) = &primary.config else { return false };
        let needed_op = if cfg.version == 1 { 0 } else { self.config_optime.get(&cfg.version).copied().unwrap_or(0) };
        let have = self
            .reachable_hosts(&primary.name, cfg)
            .filter(|m| {
                let voter = cfg.members.iter().any(|e| e.host == m.host && e.is_voter());
                voter && m.config.as_ref().is_some_and(|c| c.version == cfg.version) && m.applied >= needed_op
            })
            .count();
        have >= majority(cfg.voters())
    }

    /// Advances the simulation by one heartbeat round.
    pub fn tick(&mut self, now: Instant) {
        self.propagate_configs(now);
        self.replicate(now);
        if let Some(p) = self.primary().map(|p| p.name.clone()) {
            if now.duration_since(self.last_noop) >= self.opts.noop_interval {
                self.last_noop = now;
                self.append_oplog();
            }
            self.clear_newly_added(&p, now);
            self.check_primary_majority(&p, now);
        }
        self.resolve_dual_primaries();
        self.run_elections(now);
    }

    fn propagate_configs(&mut self, now: Instant) {
        let names: Vec<String> = self.members.keys().cloned().collect();
        for _ in 0..names.len() {
            let mut changed = false;
            for from in &names {
                let Some(cfg) = self.members[from].config.clone() else { continue };
                for to in &names {
                    if from == to || !self.reachable(from, to) {
                        continue;
                    }
                    let target = &self.members[to];
                    let newer = target.config.as_ref().is_none_or(|c| c.version < cfg.version);
                    let related = cfg.members.iter().any(|e| e.host == target.host)
                        || target
                            .config
                            .as_ref()
                            .is_some_and(|c| c.members.iter().any(|e| e.host == self.members[from].host));
                    if newer && related {
                        let first = target.config.is_none();
                        let m = self.members.get_mut(to).expect("member exists");
                        m.config = Some(cfg.clone());
                        if first {
                            m.busy_until = now + self.opts.initial_sync;
                        }
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }

    fn replicate(&mut self, now: Instant) {
        let Some(p) = self.primary().map(|p| p.name.clone()) else { return };
        let len = self.oplog.len();
        let names: Vec<String> = self.members.keys().filter(|n| **n != p).cloned().collect();
        for n in names {
            if !self.reachable(&p, &n) {
                continue;
            }
            let m = &self.members[&n];
            let in_config = m.config.as_ref().is_some_and(|c| c.members.iter().any(|e| e.host == m.host));
            if !in_config || now < m.busy_until {
                continue;
            }
            // A delayed member applies an entry only once it is `secondaryDelaySecs` old
            // (`OplogBatcher`, oplog_batcher.cpp, holds a batch back until then), so its
            // applied optime, the one `replSetGetStatus` shows, runs its delay behind.
            let delay = m
                .config
                .as_ref()
                .and_then(|c| c.members.iter().find(|e| e.host == m.host))
                .map_or(0, |e| e.secondary_delay_secs);
            let held_back = m.lag + Duration::from_secs(u64::try_from(delay).unwrap_or(0));
            // A cutoff before the clock's start (a delay longer than the machine's uptime)
            // lets nothing new through.
            let cutoff = now.checked_sub(held_back);
            let target = self.oplog.partition_point(|e| cutoff.is_some_and(|c| e.at <= c)).min(len);
            let data_target = self.data_oplog.partition_point(|e| cutoff.is_some_and(|c| e.at <= c));
            let m = self.members.get_mut(&n).expect("member exists");
            m.applied = m.applied.max(target);
            m.data_applied = m.data_applied.max(data_target);
        }
    }

    /// The primary removes `newlyAdded` from one member that reached SECONDARY, by itself.
    fn clear_newly_added(&mut self, p: &str, now: Instant) {
        let primary = &self.members[p];
        let Some(cfg) = primary.config.clone() else { return };
        if !self.config_committed(primary) {
            return;
        }
        let ready = cfg.members.iter().find(|e| {
            e.newly_added
                && self
                    .by_host(&e.host)
                    .is_some_and(|m| self.reachable(p, &m.name) && self.state(m, now) == State::Secondary)
        });
        if let Some(entry) = ready {
            let mut next = cfg.clone();
            let id = entry.id;
            for m in &mut next.members {
                if m.id == id {
                    m.newly_added = false;
                }
            }
            next.version += 1;
            next.term = self.term;
            self.install_on_primary(p, next);
        }
    }

    /// Installs a config on the primary and records where it was written in the oplog.
    pub fn install_on_primary(&mut self, p: &str, cfg: Config) {
        let version = cfg.version;
        if let Some(m) = self.members.get_mut(p) {
            m.config = Some(cfg);
        }
        let pos = self.append_oplog();
        self.config_optime.insert(version, pos);
    }

    fn check_primary_majority(&mut self, p: &str, now: Instant) {
        let primary = &self.members[p];
        let Some(cfg) = &primary.config else { return };
        let timeout = self.election_timeout(cfg);
        let voters_seen = self
            .reachable_hosts(p, cfg)
            .filter(|m| cfg.members.iter().any(|e| e.host == m.host && e.is_voter()))
            .count();
        let in_config = cfg.members.iter().any(|e| e.host == primary.host);
        let has_majority = in_config && voters_seen >= majority(cfg.voters());
        let m = self.members.get_mut(p).expect("primary exists");
        if has_majority {
            m.lost_majority_since = None;
        } else {
            let since = *m.lost_majority_since.get_or_insert(now);
            if now.duration_since(since) >= timeout || !in_config {
                m.primary_term = None;
                m.lost_majority_since = None;
            }
        }
    }

    /// When a partition heals, the primary of the older term steps down.
    fn resolve_dual_primaries(&mut self) {
        let primaries: Vec<(String, i64)> = self
            .members
            .values()
            .filter(|m| m.up)
            .filter_map(|m| m.primary_term.map(|t| (m.name.clone(), t)))
            .collect();
        for (a, ta) in &primaries {
            for (b, tb) in &primaries {
                if a != b
                    && ta < tb
                    && self.reachable(a, b)
                    && let Some(m) = self.members.get_mut(a)
                {
                    m.primary_term = None;
                }
            }
        }
    }

    fn run_elections(&mut self, now: Instant) {
        let names: Vec<String> = self.members.keys().cloned().collect();
        for c in names {
            let cand = &self.members[&c];
            let Some(cfg) = cand.config.clone() else { continue };
            let sees_primary = self.members.values().any(|m| m.primary_term.is_some() && self.reachable(&c, &m.name));
            let electable = cfg.members.iter().any(|e| e.host == cand.host && e.is_electable() && e.votes == 1);
            let eligible = !sees_primary
                && electable
                && self.state(cand, now) == State::Secondary
                && cand.stepdown_until.is_none_or(|t| now >= t);
            if !eligible {
                if let Some(m) = self.members.get_mut(&c) {
                    m.election_at = None;
                }
                continue;
            }
            let Some(at) = cand.election_at else {
                let timeout = self.election_timeout(&cfg);
                let jitter = rand::thread_rng().gen_range(0.0..0.15);
                let single = cfg.voters() == 1;
                let delay = if single { Duration::ZERO } else { timeout.mul_f64(1.0 + jitter) };
                if let Some(m) = self.members.get_mut(&c) {
                    m.election_at = Some(now + delay);
                }
                continue;
            };
            if now < at {
                continue;
            }
            let applied = cand.applied;
            let votes = self
                .reachable_hosts(&c, &cfg)
                .filter(|m| cfg.members.iter().any(|e| e.host == m.host && e.is_voter()) && m.applied <= applied)
                .count();
            if votes >= majority(cfg.voters()) {
                self.term += 1;
                let term = self.term;
                for m in self.members.values_mut() {
                    m.election_at = None;
                }
                if let Some(m) = self.members.get_mut(&c) {
                    m.primary_term = Some(term);
                    m.stepdown_until = None;
                }
                self.append_oplog();
                tracing::info!(member = %c, term, "elected primary");
                return;
            } else if let Some(m) = self.members.get_mut(&c) {
                m.election_at = None;
            }
        }
    }

    // ---- operations behind commands -------------------------------------------------------

    /// `replSetInitiate` on `name`.
    pub fn initiate(&mut self, name: &str, doc: Option<&bson::Document>) -> Result<(), Refusal> {
        let me = self
            .members
            .get(name)
            .ok_or_else(|| Refusal { code: code::NODE_NOT_FOUND, message: "unknown member".into() })?;
        if me.config.is_some() {
            return Err(Refusal { code: code::ALREADY_INITIALIZED, message: "already initialized".into() });
        }
        let default_doc;
        let doc = match doc {
            Some(d) if !d.is_empty() => d,
            _ => {
                default_doc = bson::doc! { "_id": self.opts.set_name.clone(), "version": 1, "members": [{ "_id": 0, "host": me.host.clone() }] };
                &default_doc
            }
        };
        let mut doc = doc.clone();
        if !doc.contains_key("version") {
            doc.insert("version", 1);
        }
        let mut cfg = rules::validate_initiate(&doc, &self.opts.set_name, &me.host)?;
        // Quorum for version 1: every listed member must answer, and none may have a config.
        for entry in &cfg.members {
            let Some(other) = self.by_host(&entry.host) else {
                return Err(Refusal {
                    code: code::NODE_NOT_FOUND,
                    message: format!(
                        "replSetInitiate quorum check failed because not all proposed set members responded affirmatively: {} failed with Couldn't get a connection within the time limit",
                        entry.host
                    ),
                });
            };
            if !self.reachable(name, &other.name) {
                return Err(Refusal {
                    code: code::NODE_NOT_FOUND,
                    message: format!(
                        "replSetInitiate quorum check failed because not all proposed set members responded affirmatively: {} failed with Connection refused",
                        entry.host
                    ),
                });
            }
            if other.name != name && other.config.is_some() {
                return Err(Refusal {
                    code: code::NEW_REPLICA_SET_CONFIGURATION_INCOMPATIBLE,
                    message: format!(
                        "Our replica set config is invalid or we are not a member of it; {} already has a replica set configuration",
                        entry.host
                    ),
                });
            }
        }
        cfg.replica_set_id = Some(ObjectId::new());
        cfg.term = 0;
        // The featureCompatibilityVersion document is created with the set, at the
        // initiator's release (`FeatureCompatibilityVersion::setIfCleanStartup`).
        let initiator_release = major_minor(&me.version);
        self.fcv = Some(initiator_release);
        self.oplog.clear();
        self.config_optime.clear();
        let pos = self.append_oplog();
        let m = self.members.get_mut(name).expect("checked above");
        m.config = Some(cfg);
        m.applied = pos;
        m.busy_until = Instant::now();
        Ok(())
    }

    pub fn stop(&mut self, name: &str) -> bool {
        let Some(m) = self.members.get_mut(name) else { return false };
        m.up = false;
        m.primary_term = None;
        m.election_at = None;
        m.generation += 1;
        true
    }

    /// Starts a stopped member. Its binary must accept the set's featureCompatibilityVersion:
    /// one that does not (an 8.0 binary on FCV 6.0 data, a 7.0 binary on FCV 8.0 data) exits
    /// at startup with "UPGRADE PROBLEM ... Invalid featureCompatibilityVersion" and exit code
    /// 62 (`FeatureCompatibilityVersion::initializeForStartup`, caught as MustDowngrade in
    /// `mongod_main.cpp`), so it stays down. Returns whether the member exists.
    pub fn start(&mut self, name: &str) -> bool {
        let now = Instant::now();
        let recover = self.opts.initial_sync;
        let fcv = self.fcv.clone();
        let Some(m) = self.members.get_mut(name) else { return false };
        let in_set = m.config.is_some();
        if let Some(fcv) = fcv.filter(|_| in_set)
            && !accepted_fcvs(&major_minor(&m.version)).contains(&fcv)
        {
            tracing::warn!(member = %name, binary = %m.version, %fcv, "UPGRADE PROBLEM: the binary does not accept the featureCompatibilityVersion; exit code 62");
            m.up = false;
            return true;
        }
        if !m.up {
            m.up = true;
            m.started = now;
            m.busy_until = now + recover;
            // The step-down period is in memory only (`TopologyCoordinator::_stepDownUntil`,
            // `src/mongo/db/repl/topology_coordinator.h`): a restarted member may stand for
            // election again at once.
            m.stepdown_until = None;
            m.election_at = None;
            m.connections = Connections::default();
            m.ops = crate::op_stats::OpStats::default();
        }
        true
    }

    /// Installs a new featureCompatibilityVersion on the set. A member whose binary cannot read
    /// it stops: the replicated FCV document fails to parse on it
    /// (`FeatureCompatibilityVersionParser::parseVersion`, uassert 4926900, in
    /// `FcvOpObserver::_setVersion`), and an operation a secondary cannot apply is fatal.
    pub fn set_fcv(&mut self, fcv: &str) {
        self.fcv = Some(fcv.to_string());
        let unable: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.up && m.config.is_some() && !accepted_fcvs(&major_minor(&m.version)).contains(&fcv.to_string())
            })
            .map(|m| m.name.clone())
            .collect();
        for name in unable {
            tracing::warn!(member = %name, %fcv, "cannot apply the featureCompatibilityVersion document; stopping");
            self.stop(&name);
        }
        self.append_oplog();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_point_is_the_majority_th_highest_voter_and_no_member_s_is_past_its_own_data() {
        let mut world = World::new(Options::default());
        let hosts = ["a:1", "b:1", "c:1"];
        for (i, h) in hosts.iter().enumerate() {
            world.add_member(&format!("m{i}"), h, "127.0.0.1:1".parse().expect("address"));
        }
        let members: Vec<bson::Document> =
            hosts.iter().enumerate().map(|(i, h)| bson::doc! { "_id": i as i32, "host": *h }).collect();
        world.initiate("m0", Some(&bson::doc! { "_id": "rs0", "members": members })).expect("initiate");
        let config = world.members["m0"].config.clone();
        for (name, applied) in [("m0", 10), ("m1", 8), ("m2", 5)] {
            let m = world.members.get_mut(name).expect("member");
            m.config = config.clone();
            m.data_applied = applied;
        }
        world.members.get_mut("m0").expect("m0").primary_term = Some(1);
        let at = |w: &World, name: &str| w.commit_point(&w.members[name], |m| m.data_applied);
        assert_eq!(at(&world, "m0"), Some(8), "two of three voters have 8");
        assert_eq!(at(&world, "m2"), Some(5), "m2 has applied only 5");
        // A voter down: the two left must both have it.
        world.members.get_mut("m1").expect("m1").up = false;
        assert_eq!(at(&world, "m0"), Some(5));
    }

    #[test]
    fn a_delayed_member_applies_only_what_is_older_than_its_delay() {
        let mut world = World::new(Options::default());
        let hosts = ["a:1", "b:1", "c:1"];
        for (i, h) in hosts.iter().enumerate() {
            world.add_member(&format!("m{i}"), h, "127.0.0.1:1".parse().expect("address"));
        }
        let members = vec![
            bson::doc! { "_id": 0, "host": "a:1" },
            bson::doc! { "_id": 1, "host": "b:1" },
            bson::doc! { "_id": 2, "host": "c:1", "priority": 0, "hidden": true, "votes": 0, "secondaryDelaySecs": 60 },
        ];
        world.initiate("m0", Some(&bson::doc! { "_id": "rs0", "members": members })).expect("initiate");
        let config = world.members["m0"].config.clone();
        for m in world.members.values_mut() {
            m.config = config.clone();
        }
        world.members.get_mut("m0").expect("m0").primary_term = Some(1);
        let start = Instant::now();
        let entry = |at: Instant| OplogEntry { at, wall: SystemTime::now(), term: 1 };
        world.oplog = vec![entry(start), entry(start + Duration::from_secs(30))];
        world.replicate(start + Duration::from_secs(45));
        assert_eq!((world.members["m1"].applied, world.members["m2"].applied), (2, 0), "m2 holds both back");
        world.replicate(start + Duration::from_secs(75));
        assert_eq!(world.members["m2"].applied, 1, "the first entry is 75 s old, the second 45 s");
        world.replicate(start + Duration::from_secs(91));
        assert_eq!(world.members["m2"].applied, 2);
    }

    #[test]
    fn a_restart_forgets_the_step_down_period_as_mongod_keeps_it_in_memory_only() {
        let mut world = World::new(Options::default());
        let listen: SocketAddr = "127.0.0.1:1".parse().expect("address");
        world.add_member("db-0", "db-0.db:27017", listen);
        let later = Instant::now() + Duration::from_secs(60);
        if let Some(m) = world.members.get_mut("db-0") {
            m.stepdown_until = Some(later);
        }
        // Still in force while it runs.
        assert!(world.start("db-0"));
        assert_eq!(world.member("db-0").and_then(|m| m.stepdown_until), Some(later));
        world.stop("db-0");
        world.start("db-0");
        assert_eq!(world.member("db-0").and_then(|m| m.stepdown_until), None);
    }
}
