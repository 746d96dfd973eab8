//! The real server's replica-set configuration rules, with the error codes it returns.
//!
//! This is the simulator's specification (from `mongodb-replset-rules.md`, which cites the
//! server sources) and the oracle the operator's planner is tested against. It is written
//! from the server's rules, not from the planner, so the two can disagree and a test can fail.

use std::collections::{BTreeMap, BTreeSet};

use bson::{Bson, Document, oid::ObjectId};

/// Server error codes used by replica-set commands.
pub mod code {
    pub const BAD_VALUE: i32 = 2;
    pub const UNAUTHORIZED: i32 = 13;
    pub const AUTHENTICATION_FAILED: i32 = 18;
    pub const ALREADY_INITIALIZED: i32 = 23;
    pub const USER_NOT_FOUND: i32 = 11;
    pub const MAX_TIME_MS_EXPIRED: i32 = 50;
    pub const COMMAND_NOT_FOUND: i32 = 59;
    pub const NODE_NOT_FOUND: i32 = 74;
    pub const NO_REPLICATION_ENABLED: i32 = 76;
    pub const INVALID_REPLICA_SET_CONFIG: i32 = 93;
    pub const NOT_YET_INITIALIZED: i32 = 94;
    pub const NEW_REPLICA_SET_CONFIGURATION_INCOMPATIBLE: i32 = 103;
    pub const NODE_NOT_ELECTABLE: i32 = 104;
    pub const CONFIGURATION_IN_PROGRESS: i32 = 109;
    pub const UNKNOWN_FEATURE_COMPATIBILITY_VERSION: i32 = 258;
    pub const EXCEEDED_TIME_LIMIT: i32 = 262;
    pub const CURRENT_CONFIG_NOT_COMMITTED_YET: i32 = 308;
    pub const NOT_WRITABLE_PRIMARY: i32 = 10107;
    pub const DUPLICATE_USER: i32 = 51003;
}

/// The name the server gives each code, as it appears in `codeName`.
/// Codes from `error_codes.yml` have names; a numbered `uassert` (7369100, 5147403, 51003) is
/// named `Location<code>`.
pub fn code_name(code: i32) -> std::borrow::Cow<'static, str> {
    std::borrow::Cow::Borrowed(match code {
        code::BAD_VALUE => "BadValue",
        code::UNAUTHORIZED => "Unauthorized",
        code::AUTHENTICATION_FAILED => "AuthenticationFailed",
        code::ALREADY_INITIALIZED => "AlreadyInitialized",
        code::USER_NOT_FOUND => "UserNotFound",
        code::MAX_TIME_MS_EXPIRED => "MaxTimeMSExpired",
        code::COMMAND_NOT_FOUND => "CommandNotFound",
        code::NODE_NOT_FOUND => "NodeNotFound",
        code::NO_REPLICATION_ENABLED => "NoReplicationEnabled",
        code::INVALID_REPLICA_SET_CONFIG => "InvalidReplicaSetConfig",
        code::NOT_YET_INITIALIZED => "NotYetInitialized",
        code::NEW_REPLICA_SET_CONFIGURATION_INCOMPATIBLE => "NewReplicaSetConfigurationIncompatible",
        code::NODE_NOT_ELECTABLE => "NodeNotElectable",
        code::CONFIGURATION_IN_PROGRESS => "ConfigurationInProgress",
        code::UNKNOWN_FEATURE_COMPATIBILITY_VERSION => "UnknownFeatureCompatibilityVersion",
        code::EXCEEDED_TIME_LIMIT => "ExceededTimeLimit",
        code::CURRENT_CONFIG_NOT_COMMITTED_YET => "CurrentConfigNotCommittedYet",
        code::NOT_WRITABLE_PRIMARY => "NotWritablePrimary",
        _ => return std::borrow::Cow::Owned(format!("Location{code}")),
    })
}

/// A refusal: the code and a message close to the server's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct Refusal {
    pub code: i32,
    pub message: String,
}

fn refuse<T>(code: i32, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal { code, message: message.into() })
}

/// Most members a set may have (`kMaxMembers`).
pub const MAX_MEMBERS: usize = 50;
/// Most voting members.
pub const MAX_VOTERS: usize = 7;
/// Largest `secondaryDelaySecs`.
pub const MAX_SECONDARY_DELAY_SECS: i64 = 31_622_400;

/// One member entry of a parsed config.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: i64,
    /// Normalised `host:port` (a missing port is 27017).
    pub host: String,
    pub votes: i64,
    pub priority: f64,
    pub arbiter_only: bool,
    pub hidden: bool,
    pub build_indexes: bool,
    pub secondary_delay_secs: i64,
    pub tags: BTreeMap<String, String>,
    pub newly_added: bool,
    /// Split horizons: name to normalised `host:port`, without `__default` (which is `host`).
    pub horizons: BTreeMap<String, String>,
}

impl Member {
    /// Counts towards voters: votes 1 and not marked newlyAdded.
    pub fn is_voter(&self) -> bool {
        self.votes == 1 && !self.newly_added
    }

    /// Can become primary.
    pub fn is_electable(&self) -> bool {
        !self.arbiter_only && self.priority > 0.0 && !self.newly_added
    }

    /// The horizon a client gets, by the name it sent in TLS SNI, as
    /// `SplitHorizon::determineHorizon` (src/mongo/db/repl/split_horizon.cpp) picks it: the
    /// horizon one of whose host names (the port aside) is the SNI name, else `__default`.
    /// Without SNI (no TLS, or a client that sent none) it is `__default` too.
    pub fn horizon_for(&self, sni: Option<&str>) -> Option<&str> {
        let sni = sni?;
        self.horizons.iter().find(|(_, host)| host_only(host) == sni).map(|(name, _)| name.as_str())
    }

    /// This member's address in `horizon` (`None`: `__default`, its `host`).
    pub fn host_in(&self, horizon: Option<&str>) -> &str {
        horizon.and_then(|h| self.horizons.get(h)).map_or(self.host.as_str(), String::as_str)
    }
}

/// `host:port` without the port, as `HostAndPort::host` gives it.
fn host_only(host: &str) -> &str {
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// The name split_horizon.cpp reserves for a member's own `host`.
const DEFAULT_HORIZON: &str = "__default";

/// `horizons` of one member entry, by `computeForwardMappings` and `computeReverseMappings`
/// (src/mongo/db/repl/split_horizon.cpp): an object of string values, not empty, without the
/// reserved or an empty name, and no host name (the port aside) twice within the member,
/// `host` included. Value errors get the code the other member rules get here; a wrong type,
/// TypeMismatch (14), as for `tags`.
fn horizons(m: &Document, host: &str) -> Result<BTreeMap<String, String>, Refusal> {
    const BAD_VALUE: i32 = code::INVALID_REPLICA_SET_CONFIG;
    const TYPE_MISMATCH: i32 = 14;
    let Some(value) = m.get("horizons") else { return Ok(BTreeMap::new()) };
    let Bson::Document(value) = value else { return refuse(TYPE_MISMATCH, "The horizons field must be an object") };
    if value.is_empty() {
        return refuse(BAD_VALUE, "The horizons field cannot be empty, if present.");
    }
    let mut out = BTreeMap::new();
    for (name, h) in value {
        let Bson::String(h) = h else {
            return refuse(
                TYPE_MISMATCH,
                format!("horizons.{name} field has non-string value of type {:?}", h.element_type()),
            );
        };
        if name == DEFAULT_HORIZON {
            return refuse(
                BAD_VALUE,
                format!("Horizon name \"{DEFAULT_HORIZON}\" is reserved for internal mongodb usage"),
            );
        }
        if name.is_empty() {
            return refuse(BAD_VALUE, "Horizons cannot have empty names");
        }
        if out.insert(name.clone(), normalize_host(h)).is_some() {
            return refuse(BAD_VALUE, format!("Duplicate horizon name found \"{name}\"."));
        }
    }
    let mut seen = BTreeSet::from([host_only(host).to_string()]);
    for h in out.values() {
        if !seen.insert(host_only(h).to_string()) {
            return refuse(BAD_VALUE, format!("Duplicate horizon member found \"{}\".", host_only(h)));
        }
    }
    Ok(out)
}

/// A parsed replica-set config document.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub set_name: String,
    pub version: i64,
    pub term: i64,
    pub members: Vec<Member>,
    pub settings: Document,
    pub replica_set_id: Option<ObjectId>,
    pub write_concern_majority_journal_default: bool,
}

const TOP_LEVEL_FIELDS: &[&str] = &[
    "_id",
    "version",
    "term",
    "protocolVersion",
    "members",
    "settings",
    "writeConcernMajorityJournalDefault",
    "configsvr",
];
const MEMBER_FIELDS: &[&str] = &[
    "_id",
    "host",
    "votes",
    "priority",
    "arbiterOnly",
    "hidden",
    "buildIndexes",
    "secondaryDelaySecs",
    "tags",
    "newlyAdded",
    "horizons",
];

fn int(doc: &Document, key: &str) -> Result<Option<i64>, Refusal> {
    match doc.get(key) {
        None => Ok(None),
        Some(Bson::Int32(v)) => Ok(Some(i64::from(*v))),
        Some(Bson::Int64(v)) => Ok(Some(*v)),
        Some(Bson::Double(v)) if v.fract() == 0.0 => Ok(Some(*v as i64)),
        Some(other) => refuse(code::INVALID_REPLICA_SET_CONFIG, format!("'{key}' must be a whole number, not {other}")),
    }
}

fn number(doc: &Document, key: &str) -> Result<Option<f64>, Refusal> {
    match doc.get(key) {
        None => Ok(None),
        Some(Bson::Int32(v)) => Ok(Some(f64::from(*v))),
        Some(Bson::Int64(v)) => Ok(Some(*v as f64)),
        Some(Bson::Double(v)) => Ok(Some(*v)),
        Some(other) => refuse(code::INVALID_REPLICA_SET_CONFIG, format!("'{key}' must be a number, not {other}")),
    }
}

fn boolean(doc: &Document, key: &str, default: bool) -> Result<bool, Refusal> {
    match doc.get(key) {
        None => Ok(default),
        Some(Bson::Boolean(b)) => Ok(*b),
        Some(other) => refuse(code::INVALID_REPLICA_SET_CONFIG, format!("'{key}' must be a boolean, not {other}")),
    }
}

impl Config {
    /// Voting members, `newlyAdded` ones not counted (as the server counts them).
    pub fn voters(&self) -> usize {
        self.members.iter().filter(|m| m.is_voter()).count()
    }
}

/// `host` with the default port filled in, as the server compares hosts.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim();
    if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        host.to_string()
    } else {
        format!("{host}:27017")
    }
}

fn is_localhost(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    name == "localhost" || name.starts_with("127.") || name == "::1" || name == "[::1]"
}

/// Parses a config document as the server's IDL does; every parse error is 93.
pub fn parse(doc: &Document) -> Result<Config, Refusal> {
    const BAD: i32 = code::INVALID_REPLICA_SET_CONFIG;
    for key in doc.keys() {
        if !TOP_LEVEL_FIELDS.contains(&key.as_str()) && key != "replicaSetId" {
            return refuse(BAD, format!("BSON field 'ReplSetConfig.{key}' is an unknown field."));
        }
    }
    let set_name = match doc.get("_id") {
        Some(Bson::String(s)) if !s.is_empty() => s.clone(),
        _ => return refuse(BAD, "Missing expected field \"_id\""),
    };
    let version = int(doc, "version")?.unwrap_or(1);
    if !(1..i64::from(i32::MAX)).contains(&version) {
        return refuse(BAD, format!("version field value of {version} is out of range"));
    }
    let term = int(doc, "term")?.unwrap_or(-1);
    if !(-1..i64::from(i32::MAX)).contains(&term) {
        return refuse(BAD, format!("term field value of {term} is out of range"));
    }
    if let Some(pv) = int(doc, "protocolVersion")?
        && pv != 1
    {
        return refuse(BAD, format!("protocolVersion field value of {pv} is not 1"));
    }
    if boolean(doc, "configsvr", false)? {
        return refuse(BAD, "Nodes being used for config servers must be started with the --configsvr flag");
    }
    let members_raw = match doc.get("members") {
        Some(Bson::Array(a)) => a,
        _ => return refuse(BAD, "Missing expected field \"members\""),
    };
    let mut members = Vec::with_capacity(members_raw.len());
    for m in members_raw {
        let Bson::Document(m) = m else { return refuse(BAD, "Expected type object for member config") };
        members.push(parse_member(m)?);
    }
    let settings = match doc.get("settings") {
        None => Document::new(),
        Some(Bson::Document(s)) => s.clone(),
        Some(_) => return refuse(BAD, "'settings' must be an object"),
    };
    for (key, min) in [
        ("heartbeatIntervalMillis", 1),
        ("heartbeatTimeoutSecs", 1),
        ("electionTimeoutMillis", 1),
        ("catchUpTimeoutMillis", -1),
        ("catchUpTakeoverDelayMillis", -1),
    ] {
        if let Some(v) = int(&settings, key)?
            && v < min
        {
            return refuse(BAD, format!("settings.{key} must be at least {min}"));
        }
    }
    if let Some(Bson::Document(d)) = settings.get("getLastErrorDefaults") {
        let w_ok = matches!(d.get("w"), None | Some(Bson::Int32(1)) | Some(Bson::Int64(1)));
        let t_ok = matches!(d.get("wtimeout"), None | Some(Bson::Int32(0)) | Some(Bson::Int64(0)));
        if !w_ok || !t_ok {
            return refuse(BAD, "getLastErrorDefaults must be {w: 1, wtimeout: 0}");
        }
    }
    let replica_set_id = match settings.get("replicaSetId") {
        Some(Bson::ObjectId(id)) => Some(*id),
        _ => None,
    };
    Ok(Config {
        set_name,
        version,
        term,
        members,
        settings,
        replica_set_id,
        write_concern_majority_journal_default: boolean(doc, "writeConcernMajorityJournalDefault", true)?,
    })
}

fn parse_member(m: &Document) -> Result<Member, Refusal> {
    const BAD: i32 = code::INVALID_REPLICA_SET_CONFIG;
    for key in m.keys() {
        if !MEMBER_FIELDS.contains(&key.as_str()) {
            return refuse(BAD, format!("BSON field 'MemberConfig.{key}' is an unknown field."));
        }
    }
    let id = int(m, "_id")?.ok_or_else(|| Refusal { code: BAD, message: "Missing expected field \"_id\"".into() })?;
    if !(0..=255).contains(&id) {
        return refuse(BAD, format!("_id field value of {id} is out of range"));
    }
    let host = match m.get("host") {
        Some(Bson::String(h)) if !h.trim().is_empty() => normalize_host(h),
        _ => return refuse(BAD, "Missing expected field \"host\""),
    };
    let votes = int(m, "votes")?.unwrap_or(1);
    if !(0..=1).contains(&votes) {
        return refuse(BAD, format!("votes field value is {votes} but must be 0 or 1"));
    }
    let arbiter_only = boolean(m, "arbiterOnly", false)?;
    let mut priority = number(m, "priority")?.unwrap_or(1.0);
    if !(0.0..=1000.0).contains(&priority) {
        return refuse(BAD, format!("priority field value {priority} is out of range"));
    }
    if arbiter_only {
        if priority == 1.0 {
            priority = 0.0;
        } else if priority != 0.0 {
            return refuse(BAD, "Arbiter priority must be 0");
        }
    }
    let secondary_delay_secs = int(m, "secondaryDelaySecs")?.unwrap_or(0);
    if !(0..=MAX_SECONDARY_DELAY_SECS).contains(&secondary_delay_secs) {
        return refuse(BAD, format!("secondaryDelaySecs field value of {secondary_delay_secs} is out of range"));
    }
    let mut tags = BTreeMap::new();
    if let Some(t) = m.get("tags") {
        let Bson::Document(t) = t else { return refuse(BAD, "tags must be an object") };
        for (k, v) in t {
            let Bson::String(v) = v else { return refuse(14, format!("tags.{k} field has non-string value")) };
            tags.insert(k.clone(), v.clone());
        }
    }
    let newly_added = match m.get("newlyAdded") {
        None => false,
        Some(Bson::Boolean(true)) => true,
        Some(_) => return refuse(BAD, "newlyAdded field must be true when present"),
    };
    let horizons = horizons(m, &host)?;
    let member = Member {
        id,
        horizons,
        host,
        votes,
        priority,
        arbiter_only,
        hidden: boolean(m, "hidden", false)?,
        build_indexes: boolean(m, "buildIndexes", true)?,
        secondary_delay_secs,
        tags,
        newly_added,
    };
    check_member(&member)?;
    Ok(member)
}

/// The per-member rules of `member_config.cpp`.
fn check_member(m: &Member) -> Result<(), Refusal> {
    const BAD: i32 = code::INVALID_REPLICA_SET_CONFIG;
    if m.arbiter_only {
        if m.votes != 1 {
            return refuse(BAD, "Arbiter must vote (cannot have 0 votes)");
        }
        if !m.tags.is_empty() {
            return refuse(BAD, "Cannot set tags on arbiters.");
        }
        if m.newly_added {
            return refuse(BAD, "Arbiter cannot have newlyAdded field set");
        }
        return Ok(());
    }
    if m.priority != 0.0 {
        if m.votes == 0 {
            return refuse(BAD, "priority must be 0 when non-voting (votes:0)");
        }
        if m.secondary_delay_secs > 0 {
            return refuse(BAD, "priority must be 0 when secondaryDelaySecs is used");
        }
        if m.hidden {
            return refuse(BAD, "priority must be 0 when hidden=true");
        }
        if !m.build_indexes {
            return refuse(BAD, "priority must be 0 when buildIndexes=false");
        }
    }
    Ok(())
}

/// The whole-set rules of `ReplSetConfig::_validate`, returning `code` on failure (93 for
/// initiate and parse paths, 103 for reconfig).
pub fn check_set(cfg: &Config, code: i32) -> Result<(), Refusal> {
    if cfg.members.is_empty() || cfg.members.len() > MAX_MEMBERS {
        return refuse(code, format!("Replica set configuration must have between 1 and {MAX_MEMBERS} members"));
    }
    let mut ids = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for m in &cfg.members {
        if !ids.insert(m.id) {
            return refuse(
                code,
                format!("Found two member configurations with same _id field, members._id == {}", m.id),
            );
        }
        if !hosts.insert(m.host.clone()) {
            return refuse(
                code,
                format!("Found two member configurations with same host field, members.host == {}", m.host),
            );
        }
    }
    // Horizons, by `ReplSetConfig::_validate` (src/mongo/db/repl/repl_set_config.cpp): every
    // member has the same horizon names, and no host:port is used twice across every horizon
    // and host of the set.
    let names = |m: &Member| m.horizons.keys().cloned().collect::<BTreeSet<String>>();
    let expected = names(&cfg.members[0]);
    let mut non_universal = BTreeSet::new();
    for m in &cfg.members {
        non_universal.extend(expected.symmetric_difference(&names(m)).cloned());
    }
    if !non_universal.is_empty() {
        let list: Vec<String> = non_universal.into_iter().collect();
        return refuse(
            code,
            format!(
                "Saw a replica set member with a different horizon mapping than the others.  The following horizons were not universally present: {}",
                list.join(", ")
            ),
        );
    }
    let mut endpoints: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &cfg.members {
        for h in std::iter::once(&m.host).chain(m.horizons.values()) {
            *endpoints.entry(h.as_str()).or_default() += 1;
        }
    }
    let repeated: Vec<&str> = endpoints.into_iter().filter(|(_, n)| *n > 1).map(|(h, _)| h).collect();
    if !repeated.is_empty() {
        return refuse(
            code,
            format!(
                "The following hostnames are not unique across all horizons and host specifications in the replica set: {}",
                repeated.join(", ")
            ),
        );
    }
    let voters = cfg.voters();
    if voters > MAX_VOTERS {
        return refuse(
            code,
            format!("Replica set configuration contains {voters} voting members, but must be at most {MAX_VOTERS}"),
        );
    }
    if voters == 0 {
        return refuse(code, "Replica set configuration must contain at least one voting member");
    }
    if !cfg.members.iter().any(Member::is_electable) {
        return refuse(
            code,
            "Replica set configuration must contain at least one non-arbiter member with priority > 0",
        );
    }
    let local = cfg.members.iter().filter(|m| is_localhost(&m.host)).count();
    if local != 0 && local != cfg.members.len() {
        return refuse(
            code,
            "Either all host names in a replica set configuration must be localhost references, or none must be",
        );
    }
    if cfg.members.iter().filter(|m| m.arbiter_only).count() > 1 {
        return refuse(
            code::NEW_REPLICA_SET_CONFIGURATION_INCOMPATIBLE,
            "Multiple arbiters are not allowed unless all nodes were started with --setParameter 'allowMultipleArbiters=true'",
        );
    }
    Ok(())
}

/// Everything `replSetInitiate` checks before its quorum check: parse, set rules (all 93),
/// version 1, no newlyAdded, the receiving node exactly once and electable.
pub fn validate_initiate(doc: &Document, set_name: &str, self_host: &str) -> Result<Config, Refusal> {
    const BAD: i32 = code::INVALID_REPLICA_SET_CONFIG;
    if doc.contains_key("replicaSetId") || doc.get_document("settings").is_ok_and(|s| s.contains_key("replicaSetId")) {
        return refuse(BAD, "replicaSetId cannot be set by replSetInitiate");
    }
    let mut cfg = parse(doc)?;
    if cfg.set_name != set_name {
        return refuse(
            BAD,
            format!(
                "Attempting to initiate a replica set with name {}, but command line reports {set_name}; rejecting",
                cfg.set_name
            ),
        );
    }
    if cfg.version != 1 {
        return refuse(
            BAD,
            format!("Attempting to initiate a replica set with version {} but the version must be 1", cfg.version),
        );
    }
    if cfg.members.iter().any(|m| m.newly_added) {
        return refuse(BAD, "newlyAdded field is not allowed in replSetInitiate");
    }
    check_set(&cfg, BAD)?;
    let me = normalize_host(self_host);
    let mine: Vec<&Member> = cfg.members.iter().filter(|m| m.host == me).collect();
    match mine.as_slice() {
        [] => {
            return refuse(
                BAD,
                format!(
                    "No host described in new configuration with version 1 for replica set {} maps to this node",
                    cfg.set_name
                ),
            );
        }
        [m] if !m.is_electable() => {
            return refuse(
                BAD,
                format!(
                    "This node, {me}, with _id {} is not electable under the new configuration with version 1",
                    m.id
                ),
            );
        }
        [_] => {}
        _ => return refuse(BAD, format!("Found multiple member configurations for this node, {me}")),
    }
    cfg.term = 0;
    Ok(cfg)
}

/// Which voting change a reconfig makes: the voting `_id`s added and removed.
pub fn voting_changes(old: &Config, new: &Config) -> (Vec<i64>, Vec<i64>) {
    let voters = |c: &Config| c.members.iter().filter(|m| m.is_voter()).map(|m| m.id).collect::<BTreeSet<_>>();
    let (a, b) = (voters(old), voters(new));
    (b.difference(&a).copied().collect(), a.difference(&b).copied().collect())
}

/// Marks new voting non-arbiter members `newlyAdded` (5.0+ safe reconfig), keeping the mark on
/// members that still have it in the current config. Returns the config as installed.
pub fn mark_newly_added(old: &Config, mut new: Config) -> Config {
    for m in &mut new.members {
        let before = old.members.iter().find(|o| o.id == m.id);
        m.newly_added = match before {
            None => m.votes == 1 && !m.arbiter_only,
            Some(o) => o.newly_added && m.votes == 1,
        };
    }
    new
}

/// Whether the set's implicit default write concern is `w: "majority"`, as
/// `ReplSetConfig::isImplicitDefaultWriteConcernMajority` (repl_set_config.cpp) computes it:
/// with no voting arbiter, or with more writable (data-bearing) voters than the majority vote
/// count; otherwise `w: 1`, so that an arbiter does not keep a primary elected while no
/// majority write can be acknowledged. Voters are counted as the config counts them, members
/// marked `newlyAdded` left out.
pub fn implicit_default_is_majority(cfg: &Config) -> bool {
    let voters = cfg.voters();
    let writable = cfg.members.iter().filter(|m| m.is_voter() && !m.arbiter_only).count();
    voters == writable || writable > crate::world::majority(voters)
}

/// The reconfig rule of 5.0 and later (`ReplicationCoordinatorImpl::_doReplSetReconfig`,
/// shown by `jstests/replsets/reconfig_fails_no_cwwc_set.js`): a config that would change the
/// implicit default write concern is refused with 103 unless a cluster-wide write concern was
/// set with `setDefaultRWConcern`, for a force reconfig too. Adding or removing an arbiter
/// usually changes it.
pub fn check_implicit_write_concern(old: &Config, new: &Config, cluster_wide_set: bool) -> Result<(), Refusal> {
    if cluster_wide_set || implicit_default_is_majority(old) == implicit_default_is_majority(new) {
        return Ok(());
    }
    refuse(
        code::NEW_REPLICA_SET_CONFIGURATION_INCOMPATIBLE,
        "Reconfig attempted to install a config that would change the implicit default write concern. Use the setDefaultRWConcern command to set a cluster-wide write concern and try the reconfig again.",
    )
}

/// The PSA rule of `validateOldAndNewConfigsCompatible` (repl_set_config_checks.cpp), checked
/// for force reconfigs too: when the old config's writable voters are fewer than its majority
/// vote count (one data-bearing voter and an arbiter), the new config may not be a PSA set (3
/// members, 2 of them data-bearing) with both data-bearing members electable: the secondary
/// could be elected with the arbiter's vote without the writes the primary committed. Votes
/// and priorities are counted without the `newlyAdded` adjustment (`getBaseNumVotes`,
/// `getBasePriority`). The way through is two reconfigs: the secondary's vote with priority 0
/// first, then its priority (`rs.reconfigForPSASet`).
pub fn check_psa_reconfig(old: &Config, new: &Config) -> Result<(), Refusal> {
    let old_voters = old.members.iter().filter(|m| m.votes > 0).count();
    let old_arbiters = old.members.iter().filter(|m| m.arbiter_only).count();
    let majority = crate::world::majority(old_voters);
    let overlap = majority <= old_voters.saturating_sub(old_arbiters);
    let psa = new.members.len() == 3 && new.members.iter().filter(|m| !m.arbiter_only).count() == 2;
    let electable = new.members.iter().filter(|m| m.priority > 0.0).count();
    if !overlap && psa && electable > 1 {
        return refuse(
            code::NEW_REPLICA_SET_CONFIGURATION_INCOMPATIBLE,
            "Rejecting reconfig where the new config has a PSA topology and the secondary is electable, but the old config contains only one writable node. Refer to https://docs.mongodb.com/manual/reference/method/rs.reconfigForPSASet/ for next steps on reconfiguring a PSA set.",
        );
    }
    Ok(())
}

/// Everything a safe `replSetReconfig` checks against the current config, with the codes the
/// server returns. `self_host` is the primary that receives the command.
pub fn validate_reconfig(old: &Config, doc: &Document, self_host: &str) -> Result<Config, Refusal> {
    const BAD: i32 = code::INVALID_REPLICA_SET_CONFIG;
    const INCOMPATIBLE: i32 = code::NEW_REPLICA_SET_CONFIGURATION_INCOMPATIBLE;
    let parsed = parse(doc)?;
    if parsed.members.iter().any(|m| m.newly_added) {
        return refuse(BAD, "newlyAdded field cannot be set by the user");
    }
    if parsed.set_name != old.set_name {
        return refuse(
            BAD,
            format!(
                "New and old configurations differ in replica set name; old was {}, and new is {}",
                old.set_name, parsed.set_name
            ),
        );
    }
    let new = mark_newly_added(old, parsed);
    check_set(&new, INCOMPATIBLE)?;
    if new.version <= old.version {
        return refuse(
            INCOMPATIBLE,
            format!("New config version {} must be greater than old config version {}", new.version, old.version),
        );
    }
    if new.replica_set_id.is_some() && old.replica_set_id.is_some() && new.replica_set_id != old.replica_set_id {
        return refuse(INCOMPATIBLE, "New and old configurations differ in replica set ID");
    }
    for m in &new.members {
        if let Some(o) = old.members.iter().find(|o| o.host == m.host)
            && o.id != m.id
        {
            return refuse(
                INCOMPATIBLE,
                format!(
                    "New and old configurations both have members with host of {} but in the new configuration the _id field is {} and in the old configuration it is {} for replica set {}",
                    m.host, m.id, o.id, new.set_name
                ),
            );
        }
        if let Some(o) = old.members.iter().find(|o| o.id == m.id) {
            if o.arbiter_only != m.arbiter_only {
                return refuse(
                    INCOMPATIBLE,
                    format!(
                        "New and old configurations differ in the setting of the arbiterOnly field for member {}; to make this change, remove then re-add the member",
                        m.host
                    ),
                );
            }
            if o.build_indexes != m.build_indexes {
                return refuse(
                    INCOMPATIBLE,
                    format!(
                        "New and old configurations differ in the setting of the buildIndexes field for member {}; to make this change, remove then re-add the member",
                        m.host
                    ),
                );
            }
        }
    }
    check_psa_reconfig(old, &new)?;
    let (added, removed) = voting_changes(old, &new);
    if added.len() + removed.len() > 1 {
        return refuse(
            INCOMPATIBLE,
            format!(
                "Non-force replica set reconfig can only add or remove at most 1 voting member (added {added:?}, removed {removed:?})"
            ),
        );
    }
    let me = normalize_host(self_host);
    match new.members.iter().find(|m| m.host == me) {
        None => refuse(
            code::NODE_NOT_FOUND,
            format!(
                "No host described in new configuration with version {} for replica set {} maps to this node",
                new.version, new.set_name
            ),
        ),
        Some(m) if !m.is_electable() => refuse(
            code::NODE_NOT_ELECTABLE,
            format!(
                "This node, {me}, with _id {} is not electable under the new configuration with version {} for replica set {}",
                m.id, new.version, new.set_name
            ),
        ),
        Some(_) => Ok(new),
    }
}

/// Serialises a config as `replSetGetConfig` shows it (without `newlyAdded`).
pub fn to_document(cfg: &Config, include_newly_added: bool) -> Document {
    let members: Vec<Bson> = cfg
        .members
        .iter()
        .map(|m| {
            let mut d = bson::doc! {
                "_id": m.id as i32,
                "host": m.host.clone(),
                "arbiterOnly": m.arbiter_only,
                "buildIndexes": m.build_indexes,
                "hidden": m.hidden,
                "priority": m.priority,
                "tags": m.tags.iter().map(|(k, v)| (k.clone(), Bson::String(v.clone()))).collect::<Document>(),
                "secondaryDelaySecs": m.secondary_delay_secs,
                "votes": m.votes as i32,
            };
            if !m.horizons.is_empty() {
                let horizons: Document = m.horizons.iter().map(|(k, v)| (k.clone(), Bson::String(v.clone()))).collect();
                d.insert("horizons", horizons);
            }
            if include_newly_added && m.newly_added {
                d.insert("newlyAdded", true);
            }
            Bson::Document(d)
        })
        .collect();
    let mut settings = cfg.settings.clone();
    if let Some(id) = cfg.replica_set_id {
        settings.insert("replicaSetId", id);
    }
    bson::doc! {
        "_id": cfg.set_name.clone(),
        "version": cfg.version as i32,
        "term": cfg.term as i32,
        "protocolVersion": 1_i64,
        "writeConcernMajorityJournalDefault": cfg.write_concern_majority_journal_default,
        "members": members,
        "settings": settings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn horizons_are_checked_as_the_server_does_and_sni_picks_one() {
        let member = |id: i32, host: &str, horizons: Bson| {
            let mut d = doc! { "_id": id, "host": host };
            if horizons != Bson::Null {
                d.insert("horizons", horizons);
            }
            d
        };
        let set = |members: Vec<Document>| doc! { "_id": "rs0", "version": 1, "members": members };
        let external = |n: i32| Bson::Document(doc! { "vpn": format!("db-{n}.example.internal:27017") });
        let good = set((0..3).map(|n| member(n, &format!("m{n}:27017"), external(n))).collect());
        let cfg = validate_initiate(&good, "rs0", "m0:27017").expect("valid horizons");
        let m1 = &cfg.members[1];
        assert_eq!(m1.horizon_for(Some("db-1.example.internal")), Some("vpn"));
        assert_eq!(m1.horizon_for(Some("m1")), None, "its own host name: __default");
        assert_eq!(m1.horizon_for(Some("elsewhere")), None);
        assert_eq!(m1.horizon_for(None), None, "no SNI: __default");
        assert_eq!(m1.host_in(Some("vpn")), "db-1.example.internal:27017");
        assert_eq!(m1.host_in(None), "m1:27017");
        let shown = to_document(&cfg, false);
        let first = shown.get_array("members").expect("members")[0].as_document().expect("member").clone();
        assert_eq!(first.get_document("horizons").expect("horizons"), &doc! {"vpn": "db-0.example.internal:27017"});

        let refused =
            |members: Vec<Document>| validate_initiate(&set(members), "rs0", "m0:27017").expect_err("refused");
        let cases: Vec<(&str, Vec<Document>, i32, &str)> = vec![
            ("not an object", vec![member(0, "m0", Bson::String("x".into()))], 14, "must be an object"),
            ("empty", vec![member(0, "m0", Bson::Document(doc! {}))], 93, "cannot be empty"),
            ("reserved", vec![member(0, "m0", Bson::Document(doc! {"__default": "x:1"}))], 93, "reserved"),
            ("not a string", vec![member(0, "m0", Bson::Document(doc! {"vpn": 1}))], 14, "non-string"),
            (
                "the same host twice in one member, the port aside",
                vec![member(0, "m0", Bson::Document(doc! {"a": "x:1", "b": "x:2"}))],
                93,
                "Duplicate horizon member found \"x\"",
            ),
            (
                "a horizon not on every member",
                vec![member(0, "m0", external(0)), member(1, "m1", Bson::Null)],
                93,
                "not universally present: vpn",
            ),
            (
                "one endpoint for two members",
                vec![
                    member(0, "m0", Bson::Document(doc! {"vpn": "db:27017"})),
                    member(1, "m1", Bson::Document(doc! {"vpn": "db:27017"})),
                ],
                93,
                "not unique across all horizons",
            ),
        ];
        for (what, members, code, message) in cases {
            let r = refused(members);
            assert_eq!(r.code, code, "{what}: {r:?}");
            assert!(r.message.contains(message), "{what}: {r:?}");
        }
    }

    fn base() -> Document {
        doc! { "_id": "rs0", "version": 1, "members": [
            { "_id": 0, "host": "a:27017" }, { "_id": 1, "host": "b:27017" }, { "_id": 2, "host": "c:27017" },
        ]}
    }

    fn with(f: impl FnOnce(&mut Document)) -> Document {
        let mut d = base();
        f(&mut d);
        d
    }

    fn members(list: Vec<Document>) -> Document {
        with(|d| {
            d.insert("members", list);
        })
    }

    #[test]
    fn initiate_rules_and_their_codes() {
        let table: Vec<(&str, Document, &str, Option<i32>)> = vec![
            ("valid", base(), "a", None),
            ("unknown top-level field", with(|d| { d.insert("bogus", 1); }), "a", Some(93)),
            ("version must be 1", with(|d| { d.insert("version", 2); }), "a", Some(93)),
            ("set name must match --replSet", with(|d| { d.insert("_id", "other"); }), "a", Some(93)),
            ("self not in config", base(), "z", Some(93)),
            ("self not electable", members(vec![doc! {"_id": 0, "host": "a", "priority": 0}, doc! {"_id": 1, "host": "b"}]), "a", Some(93)),
            ("duplicate _id", members(vec![doc! {"_id": 0, "host": "a"}, doc! {"_id": 0, "host": "b"}]), "a", Some(93)),
            ("duplicate host (default port)", members(vec![doc! {"_id": 0, "host": "a"}, doc! {"_id": 1, "host": "a:27017"}]), "a", Some(93)),
            ("votes must be 0 or 1", members(vec![doc! {"_id": 0, "host": "a", "votes": 2}]), "a", Some(93)),
            ("priority needs a vote", members(vec![doc! {"_id": 0, "host": "a"}, doc! {"_id": 1, "host": "b", "votes": 0}]), "a", Some(93)),
            ("hidden needs priority 0", members(vec![doc! {"_id": 0, "host": "a"}, doc! {"_id": 1, "host": "b", "hidden": true}]), "a", Some(93)),
            ("arbiter priority must be 0", members(vec![doc! {"_id": 0, "host": "a"}, doc! {"_id": 1, "host": "b", "arbiterOnly": true, "priority": 2}]), "a", Some(93)),
            ("arbiter must vote", members(vec![doc! {"_id": 0, "host": "a"}, doc! {"_id": 1, "host": "b", "arbiterOnly": true, "votes": 0}]), "a", Some(93)),
            ("slaveDelay is gone since 5.0", members(vec![doc! {"_id": 0, "host": "a", "slaveDelay": 1}]), "a", Some(93)),
            ("newlyAdded is the server's", members(vec![doc! {"_id": 0, "host": "a", "newlyAdded": true}]), "a", Some(93)),
            ("at most 7 voters", members((0..8).map(|i| doc! {"_id": i, "host": format!("h{i}")}).collect()), "h0", Some(93)),
            ("at most 50 members", members((0..51).map(|i| doc! {"_id": i, "host": format!("h{i}"), "votes": i32::from(i < 1), "priority": i32::from(i < 1)}).collect()), "h0", Some(93)),
            ("localhost mixed with other hosts", members(vec![doc! {"_id": 0, "host": "127.0.0.1:1"}, doc! {"_id": 1, "host": "b"}]), "127.0.0.1:1", Some(93)),
            ("_id above 255", members(vec![doc! {"_id": 256, "host": "a"}]), "a", Some(93)),
            ("getLastErrorDefaults must stay default", with(|d| { d.insert("settings", doc! {"getLastErrorDefaults": {"w": "majority"}}); }), "a", Some(93)),
        ];
        for (what, d, me, code) in table {
            let got = validate_initiate(&d, "rs0", me).err().map(|r| r.code);
            assert_eq!(got, code, "{what}");
        }
    }

    #[test]
    fn arbiters_change_the_implicit_write_concern_and_a_psa_set_gets_its_secondary_electable_in_two_steps() {
        let config =
            |members: Vec<Document>| parse(&doc! { "_id": "rs0", "version": 1, "members": members }).expect("a config");
        // Implicit default: majority without arbiters (PSS), w:1 for PSA, majority again with
        // enough data-bearing voters (PSSSA: 4 writable > majority 3).
        let pss =
            config(vec![doc! {"_id": 0, "host": "a"}, doc! {"_id": 1, "host": "b"}, doc! {"_id": 2, "host": "c"}]);
        let ps = config(vec![doc! {"_id": 0, "host": "a"}, doc! {"_id": 1, "host": "b"}]);
        let psa = config(vec![
            doc! {"_id": 0, "host": "a"},
            doc! {"_id": 1, "host": "b"},
            doc! {"_id": 2, "host": "z", "arbiterOnly": true},
        ]);
        let pssa = config(vec![
            doc! {"_id": 0, "host": "a"},
            doc! {"_id": 1, "host": "b"},
            doc! {"_id": 2, "host": "c"},
            doc! {"_id": 3, "host": "d"},
            doc! {"_id": 4, "host": "z", "arbiterOnly": true},
        ]);
        assert!(implicit_default_is_majority(&pss) && implicit_default_is_majority(&ps));
        assert!(!implicit_default_is_majority(&psa));
        assert!(implicit_default_is_majority(&pssa));
        // Adding the arbiter to PS changes it: refused with 103 until a cluster-wide write
        // concern is set; removing it again is the same change back.
        let refused = check_implicit_write_concern(&ps, &psa, false).expect_err("refused");
        assert_eq!(refused.code, 103);
        assert!(refused.message.starts_with(
            "Reconfig attempted to install a config that would change the implicit default write concern"
        ));
        assert!(check_implicit_write_concern(&ps, &psa, true).is_ok());
        assert_eq!(check_implicit_write_concern(&psa, &ps, false).map_err(|r| r.code), Err(103));
        assert!(check_implicit_write_concern(&pss, &pssa, false).is_ok(), "majority before and after");

        // PA (one writable voter) to PSA with an electable secondary: refused; with the
        // secondary's vote at priority 0 first, then its priority, accepted.
        let pa = config(vec![
            doc! {"_id": 0, "host": "a"},
            doc! {"_id": 1, "host": "b", "votes": 0, "priority": 0},
            doc! {"_id": 2, "host": "z", "arbiterOnly": true},
        ]);
        let voting_passive = config(vec![
            doc! {"_id": 0, "host": "a"},
            doc! {"_id": 1, "host": "b", "priority": 0},
            doc! {"_id": 2, "host": "z", "arbiterOnly": true},
        ]);
        let refused = check_psa_reconfig(&pa, &psa).expect_err("refused");
        assert_eq!(refused.code, 103);
        assert!(refused.message.starts_with("Rejecting reconfig where the new config has a PSA topology"));
        assert!(check_psa_reconfig(&pa, &voting_passive).is_ok());
        assert!(check_psa_reconfig(&voting_passive, &psa).is_ok());
        // Not a PSA set, or an old config with enough writable voters: no such rule.
        assert!(check_psa_reconfig(&pss, &pssa).is_ok());
        assert!(check_psa_reconfig(&ps, &psa).is_ok(), "PS has two writable voters of two");
    }

    #[test]
    fn reconfig_rules_and_their_codes() {
        let old = validate_initiate(&base(), "rs0", "a").expect("valid base");
        let next = |f: &dyn Fn(&mut Document)| {
            let mut d = to_document(&old, false);
            d.insert("version", 2);
            f(&mut d);
            d
        };
        let member_list = |list: Vec<Document>| {
            move |d: &mut Document| {
                d.insert("members", list.clone());
            }
        };
        let table: Vec<(&str, Document, Option<i32>)> = vec![
            (
                "add one non-voter",
                next(&member_list(vec![
                    doc! {"_id": 0, "host": "a"},
                    doc! {"_id": 1, "host": "b"},
                    doc! {"_id": 2, "host": "c"},
                    doc! {"_id": 3, "host": "d", "votes": 0, "priority": 0},
                ])),
                None,
            ),
            (
                "version must grow",
                next(&|d| {
                    d.insert("version", 1);
                }),
                Some(103),
            ),
            ("two voters removed at once", next(&member_list(vec![doc! {"_id": 0, "host": "a"}])), Some(103)),
            (
                "one voter removed",
                next(&member_list(vec![doc! {"_id": 0, "host": "a"}, doc! {"_id": 1, "host": "b"}])),
                None,
            ),
            (
                "host keeps its _id",
                next(&member_list(vec![
                    doc! {"_id": 0, "host": "a"},
                    doc! {"_id": 1, "host": "b"},
                    doc! {"_id": 5, "host": "c"},
                ])),
                Some(103),
            ),
            (
                "arbiterOnly cannot change",
                next(&member_list(vec![
                    doc! {"_id": 0, "host": "a"},
                    doc! {"_id": 1, "host": "b"},
                    doc! {"_id": 2, "host": "c", "arbiterOnly": true},
                ])),
                Some(103),
            ),
            (
                "buildIndexes cannot change",
                next(&member_list(vec![
                    doc! {"_id": 0, "host": "a"},
                    doc! {"_id": 1, "host": "b"},
                    doc! {"_id": 2, "host": "c", "buildIndexes": false, "priority": 0},
                ])),
                Some(103),
            ),
            (
                "set name cannot change",
                next(&|d| {
                    d.insert("_id", "rs1");
                }),
                Some(93),
            ),
            (
                "user-supplied newlyAdded",
                next(&member_list(vec![
                    doc! {"_id": 0, "host": "a"},
                    doc! {"_id": 1, "host": "b"},
                    doc! {"_id": 2, "host": "c", "newlyAdded": true},
                ])),
                Some(93),
            ),
            (
                "primary must stay",
                next(&member_list(vec![doc! {"_id": 1, "host": "b"}, doc! {"_id": 2, "host": "c"}])),
                Some(74),
            ),
            (
                "primary must stay electable",
                next(&member_list(vec![
                    doc! {"_id": 0, "host": "a", "priority": 0},
                    doc! {"_id": 1, "host": "b"},
                    doc! {"_id": 2, "host": "c"},
                ])),
                Some(104),
            ),
        ];
        for (what, d, code) in table {
            assert_eq!(validate_reconfig(&old, &d, "a").err().map(|r| r.code), code, "{what}");
        }
    }

    #[test]
    fn new_voters_are_marked_newly_added_and_do_not_count() {
        let old = validate_initiate(&members(vec![doc! {"_id": 0, "host": "a"}]), "rs0", "a").expect("valid");
        // Two new voters in one reconfig are accepted because both are marked newlyAdded.
        let d = doc! { "_id": "rs0", "version": 2, "members": [{"_id": 0, "host": "a"}, {"_id": 1, "host": "b"}, {"_id": 2, "host": "c"}] };
        let new = validate_reconfig(&old, &d, "a").expect("accepted through newlyAdded");
        assert_eq!(new.members.iter().filter(|m| m.newly_added).count(), 2);
        assert!(!to_document(&new, false).to_string().contains("newlyAdded"), "replSetGetConfig hides the flag");
    }
}
