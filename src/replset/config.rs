//! The replica-set config document, typed for the fields the operator decides and keeping
//! every other field as it was read, so a reconfig never drops a setting it does not know.

use std::collections::BTreeMap;

use mongodb::bson::{Bson, Document};
use serde::{Deserialize, Serialize};

/// The MongoDB port every member listens on.
pub const MONGODB_PORT: u16 = 27017;

/// The name of the split horizon the operator gives members exposed outside Kubernetes
/// (`expose.perMember`); clients inside get `__default`, the members' `host`.
pub const EXTERNAL_HORIZON: &str = "external";

/// What the spec asks of a member beyond its membership (`spec.memberRoles`).
#[derive(Clone, Debug, PartialEq)]
pub struct MemberSettings {
    /// It may vote (an Electable or Hidden member); whether it does is the planner's count
    /// (at most 7 voters, an odd number).
    pub may_vote: bool,
    /// Its priority while it votes; 0 for a member that must never become primary. A member
    /// without a vote has priority 0, as the server requires.
    pub priority: f64,
    pub hidden: bool,
    /// `secondaryDelaySecs`.
    pub delay_seconds: i64,
    pub tags: BTreeMap<String, String>,
    /// Set for the arbiter (`spec.arbiter`): the cluster-wide default write concern the set
    /// must have before the arbiter joins (an arbiter changes the server's implicit default,
    /// and the server refuses such a reconfig until one is set).
    pub arbiter: Option<DefaultWriteConcern>,
}

pub use crate::api::DefaultWriteConcern;

impl DefaultWriteConcern {
    /// The `w` as [`super::Observed::default_write_concern`] holds it.
    pub fn name(self) -> &'static str {
        match self {
            DefaultWriteConcern::Majority => "majority",
            DefaultWriteConcern::One => "1",
        }
    }
}

impl Default for MemberSettings {
    /// A plain electable member.
    fn default() -> Self {
        MemberSettings {
            may_vote: true,
            priority: 1.0,
            hidden: false,
            delay_seconds: 0,
            tags: BTreeMap::new(),
            arbiter: None,
        }
    }
}

impl MemberSettings {
    /// The arbiter: it votes, but not as a data-bearing member (the planner counts its vote
    /// apart), never becomes primary, and has no tags (the server refuses them on arbiters).
    pub fn arbiter(writes: DefaultWriteConcern) -> Self {
        MemberSettings { may_vote: false, priority: 0.0, arbiter: Some(writes), ..MemberSettings::default() }
    }

    /// Can become primary once it votes.
    pub fn electable(&self) -> bool {
        self.may_vote && self.priority > 0.0 && !self.hidden && self.delay_seconds == 0
    }

    fn priority_with(&self, voter: bool) -> f64 {
        if voter { self.priority } else { 0.0 }
    }
}

/// A replica-set config as `replSetGetConfig` returns it and `replSetReconfig` takes it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ReplSetConfig {
    /// The replica-set name.
    #[serde(rename = "_id")]
    pub set_name: String,
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<i64>,
    #[serde(rename = "protocolVersion", default = "protocol_version")]
    pub protocol_version: i64,
    pub members: Vec<MemberConfig>,
    /// Everything else (settings, writeConcernMajorityJournalDefault, ...), passed back as read.
    #[serde(flatten)]
    pub other: Document,
}

fn protocol_version() -> i64 {
    1
}

/// One member of the config.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MemberConfig {
    #[serde(rename = "_id")]
    pub id: i64,
    pub host: String,
    #[serde(default = "one")]
    pub votes: i64,
    #[serde(default = "one_f")]
    pub priority: f64,
    /// Everything else (hidden, tags, buildIndexes, ...), passed back as read.
    #[serde(flatten)]
    pub other: Document,
}

fn one() -> i64 {
    1
}

fn one_f() -> f64 {
    1.0
}

impl MemberConfig {
    /// A data-bearing member with a vote (electable) or without one (priority 0, as the server
    /// requires for non-voting members).
    pub fn new(id: i64, host: impl Into<String>, voting: bool) -> MemberConfig {
        let (votes, priority) = if voting { (1, 1.0) } else { (0, 0.0) };
        MemberConfig { id, host: host.into(), votes, priority, other: Document::new() }
    }

    pub fn is_voter(&self) -> bool {
        self.votes == 1
    }

    fn flag(&self, key: &str) -> bool {
        self.other.get_bool(key).unwrap_or(false)
    }

    pub fn is_arbiter(&self) -> bool {
        self.flag("arbiterOnly")
    }

    /// Can become primary.
    pub fn is_electable(&self) -> bool {
        self.votes == 1 && self.priority > 0.0 && !self.is_arbiter() && !self.is_hidden()
    }

    /// Hidden from clients (not in `hello`'s hosts).
    pub fn is_hidden(&self) -> bool {
        self.flag("hidden")
    }

    /// `secondaryDelaySecs` (`slaveDelay` before 5.0), 0 when unset.
    pub fn delay_seconds(&self) -> i64 {
        delay_seconds_in(&self.other)
    }

    /// The member's address in the `external` horizon, if it has one.
    pub fn external_host(&self) -> Option<&str> {
        self.other.get_document("horizons").ok()?.get_str(EXTERNAL_HORIZON).ok()
    }

    /// Whether the member has split horizons at all (any name).
    pub fn has_horizons(&self) -> bool {
        self.other.contains_key("horizons")
    }

    /// Gives the member exactly the `external` horizon at `host`, or no horizons.
    pub fn set_external_host(&mut self, host: Option<&str>) {
        match host {
            Some(h) => {
                self.other.insert("horizons", mongodb::bson::doc! { EXTERNAL_HORIZON: h });
            }
            None => {
                self.other.remove("horizons");
            }
        }
    }

    /// The member's tags (`{}` when it has none).
    pub fn tags(&self) -> BTreeMap<String, String> {
        let Ok(tags) = self.other.get_document("tags") else { return BTreeMap::new() };
        tags.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect()
    }

    /// Whether the entry already says what `settings` ask, for the priority it should have
    /// with the vote it has now.
    pub fn has_settings(&self, settings: &MemberSettings) -> bool {
        self.priority == settings.priority_with(self.is_voter())
            && self.is_hidden() == settings.hidden
            && self.delay_seconds() == settings.delay_seconds
            && self.tags() == settings.tags
    }

    /// Writes `settings` into the entry, keeping its vote: the priority that goes with that
    /// vote, `hidden`, `secondaryDelaySecs` (its name since 5.0; `slaveDelay` goes) and `tags`.
    pub fn apply_settings(&mut self, settings: &MemberSettings) {
        self.priority = settings.priority_with(self.is_voter());
        self.other.insert("hidden", settings.hidden);
        self.other.remove("slaveDelay");
        self.other.insert("secondaryDelaySecs", settings.delay_seconds);
        let tags: Document = settings.tags.iter().map(|(k, v)| (k.clone(), Bson::String(v.clone()))).collect();
        self.other.insert("tags", tags);
    }

    /// The arbiter's entry: a vote, priority 0 (the server's rule for arbiters), no data.
    pub fn arbiter(id: i64, host: impl Into<String>) -> MemberConfig {
        let other = mongodb::bson::doc! { "arbiterOnly": true };
        MemberConfig { id, host: host.into(), votes: 1, priority: 0.0, other }
    }

    /// Sets the vote, with the priority the server requires alongside it.
    pub fn set_voting(&mut self, voting: bool) {
        self.votes = i64::from(voting);
        self.priority = if voting { 1.0 } else { 0.0 };
    }
}

impl ReplSetConfig {
    pub fn member(&self, host: &str) -> Option<&MemberConfig> {
        self.members.iter().find(|m| same_host(&m.host, host))
    }

    pub fn voters(&self) -> usize {
        self.members.iter().filter(|m| m.is_voter()).count()
    }

    /// The next version of this config: version + 1, term left for the server to set.
    pub fn next(&self) -> ReplSetConfig {
        let mut next = self.clone();
        next.version += 1;
        next.term = None;
        next
    }

    pub fn to_document(&self) -> Result<Document, mongodb::bson::ser::Error> {
        mongodb::bson::to_document(self)
    }
}

/// Compares hosts the way the server does: a missing port means 27017.
pub fn same_host(a: &str, b: &str) -> bool {
    normalize(a) == normalize(b)
}

fn normalize(host: &str) -> String {
    let host = host.trim();
    if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        host.to_string()
    } else {
        format!("{host}:{MONGODB_PORT}")
    }
}

/// The stable name of a member in the config: `<pod>.<service>.<namespace>.svc.<domain>:27017`.
pub fn member_host(pod: &str, headless_service: &str, namespace: &str, cluster_domain: &str) -> String {
    format!("{pod}.{headless_service}.{namespace}.svc.{cluster_domain}:{MONGODB_PORT}")
}

/// The Pod name in a member host: the first label of `<pod>.<service>...:27017`.
pub fn member_pod(host: &str) -> &str {
    host.split(['.', ':']).next().unwrap_or(host)
}

/// `secondaryDelaySecs` (`slaveDelay` before 5.0) in a config entry or a member's own `hello`,
/// 0 when absent: the server writes it as a number whose BSON type follows its size.
pub fn delay_seconds_in(doc: &Document) -> i64 {
    match doc.get("secondaryDelaySecs").or_else(|| doc.get("slaveDelay")) {
        Some(Bson::Int32(d)) => i64::from(*d),
        Some(Bson::Int64(d)) => *d,
        Some(Bson::Double(d)) => *d as i64,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let read = doc! {
            "_id": "rs0", "version": 3, "term": 2, "protocolVersion": 1_i64,
            "writeConcernMajorityJournalDefault": true,
            "members": [{"_id": 0, "host": "a:27017", "arbiterOnly": false, "hidden": false, "priority": 1, "tags": {"zone": "a"}, "votes": 1}],
            "settings": {"chainingAllowed": true, "replicaSetId": mongodb::bson::oid::ObjectId::new()},
        };
        let cfg: ReplSetConfig = mongodb::bson::from_document(read.clone()).unwrap();
        assert_eq!(cfg.members[0].priority, 1.0);
        let back = cfg.to_document().unwrap();
        assert_eq!(back.get_document("settings").unwrap(), read.get_document("settings").unwrap());
        assert_eq!(
            back.get_array("members").unwrap()[0].as_document().unwrap().get_document("tags").unwrap(),
            &doc! {"zone": "a"}
        );
    }

    #[test]
    fn hosts_compare_with_the_default_port() {
        assert!(same_host("a", "a:27017"));
        assert!(!same_host("a:27018", "a:27017"));
        assert_eq!(
            member_host("db-0", "db-members", "prod", "cluster.local"),
            "db-0.db-members.prod.svc.cluster.local:27017"
        );
    }
}
