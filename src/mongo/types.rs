//! Replies of the admin commands, reduced to what the operator reads.

use mongodb::bson::DateTime;
use serde::Deserialize;

use crate::replset::MemberState;

/// `hello`: answers without credentials.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Hello {
    #[serde(rename = "isWritablePrimary", alias = "ismaster", default)]
    pub is_writable_primary: bool,
    #[serde(default)]
    pub secondary: bool,
    #[serde(rename = "arbiterOnly", default)]
    pub arbiter_only: bool,
    #[serde(rename = "setName", default)]
    pub set_name: Option<String>,
    #[serde(rename = "setVersion", default)]
    pub set_version: Option<i64>,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub passives: Vec<String>,
    #[serde(default)]
    pub primary: Option<String>,
    #[serde(default)]
    pub me: Option<String>,
    #[serde(default)]
    pub info: Option<String>,
    #[serde(rename = "maxWireVersion", default)]
    pub max_wire_version: i32,
}

impl Hello {
    /// No valid replica-set config: never initiated, or REMOVED (the server answers both the
    /// same way, without `setName`); `replSetGetStatus` tells which (94 or 93).
    pub fn has_no_config(&self) -> bool {
        self.set_name.is_none()
    }
}

/// One member of `replSetGetStatus`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct StatusMember {
    #[serde(rename = "_id")]
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub health: f64,
    pub state: i64,
    #[serde(rename = "stateStr", default)]
    pub state_str: String,
    #[serde(rename = "optimeDate", default)]
    pub optime_date: Option<DateTime>,
    #[serde(rename = "configVersion", default)]
    pub config_version: Option<i64>,
    #[serde(rename = "self", default)]
    pub is_self: bool,
}

impl StatusMember {
    pub fn state(&self) -> MemberState {
        MemberState::from_code(self.state)
    }

    pub fn healthy(&self) -> bool {
        self.health >= 1.0
    }
}

/// `replSetGetStatus`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ReplSetStatus {
    pub set: String,
    #[serde(rename = "myState")]
    pub my_state: i64,
    #[serde(default)]
    pub term: Option<i64>,
    pub members: Vec<StatusMember>,
}

impl ReplSetStatus {
    pub fn primary(&self) -> Option<&StatusMember> {
        self.members.iter().find(|m| m.state() == MemberState::Primary && m.healthy())
    }

    /// How far `member` is behind the primary, in seconds, from their last applied operations.
    pub fn lag_seconds(&self, member: &StatusMember) -> Option<i64> {
        let p = self.primary()?.optime_date?;
        let m = member.optime_date?;
        Some(((p.timestamp_millis() - m.timestamp_millis()) / 1000).max(0))
    }
}

/// A user as `usersInfo` shows it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct UserInfo {
    pub user: String,
    pub db: String,
    #[serde(default)]
    pub roles: Vec<Role>,
}

/// A role grant.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Role {
    pub role: String,
    pub db: String,
}

/// The featureCompatibilityVersion document, as `getParameter` shows it: `version`, and while a
/// change is under way `targetVersion` (and, when lowering, `previousVersion`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Fcv {
    pub version: String,
    #[serde(rename = "targetVersion", default)]
    pub target_version: Option<String>,
    #[serde(rename = "previousVersion", default)]
    pub previous_version: Option<String>,
}
