//! What each member is for: electable (the default), a non-voting copy, a hidden member for
//! backups and analytics, a delayed member against mistakes, with tags for read preferences.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Settings of the members with these ordinals.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("(self.role == 'Delayed') == has(self.delaySeconds)")
        .message("memberRoles[].delaySeconds is required for a Delayed member and only allowed for one")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(self.priority) || self.role == 'Electable'")
        .message("memberRoles[].priority is only for Electable members: the others never become primary (priority 0)")
        .reason(Reason::FieldValueForbidden),
)]
#[serde(rename_all = "camelCase")]
pub struct MemberRoleSpec {
    /// The ordinals of the members (Pod `<cluster>-<ordinal>`) these settings are for.
    #[schemars(length(min = 1, max = 50))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub ordinals: Vec<i32>,
    /// `Electable` (the default): votes and can become primary. `NonVoting`: a copy that
    /// neither votes nor becomes primary; clients see it. `Hidden`: votes, never becomes
    /// primary, and clients do not see it; backups read from it. `Delayed`: hidden, without a
    /// vote, and `delaySeconds` behind the primary, a copy to recover from a mistaken `drop`.
    #[serde(default)]
    pub role: MemberRoleKind,
    /// Election priority of an Electable member, 1 to 1000 (1 by default): the highest caught
    /// up one is preferred as primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub priority: Option<i32>,
    /// How far a Delayed member stays behind the primary, in seconds: at most 366 days, the
    /// server's limit (`MemberConfig`'s `kMaxSecondaryDelay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 31_622_400))]
    pub delay_seconds: Option<i64>,
    /// Replica-set tags (`members[].tags`), for read preferences and write concerns such as
    /// `{use: analytics}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 16))]
    pub tags: BTreeMap<String, String>,
}

/// What a member is for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MemberRoleKind {
    #[default]
    Electable,
    NonVoting,
    Hidden,
    Delayed,
}

/// An arbiter: a member that votes and holds no data, so that two data-bearing members (or
/// four, or six) have an odd number of votes. MongoDB allows one per replica set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArbiterSpec {
    /// Runs the arbiter, in a Pod of its own (`<cluster>-arbiter-0`, StatefulSet
    /// `<cluster>-arbiter`) without a volume. Only with an even number of voting members (2,
    /// 4 or 6): the arbiter's vote makes the count odd. Turning it off takes it out of the
    /// replica set before its Pod goes.
    #[serde(default)]
    pub enabled: bool,
    /// The write concern the replica set applies to writes that name none, which the operator
    /// sets (`setDefaultRWConcern`) before the arbiter joins, because an arbiter changes the
    /// server's own default. `Majority` (the default): a write is acknowledged once both
    /// data-bearing members of a primary-secondary-arbiter set have it, so no failover loses
    /// it; while one of them is down, such writes wait. `One`: acknowledged by the primary
    /// alone, so writes go on with a data-bearing member down, and a failover can roll back
    /// the last ones (MongoDB's own default for such a set).
    #[serde(default)]
    pub default_write_concern: DefaultWriteConcern,
    /// CPU and memory of the arbiter's mongod (100m CPU and 512Mi by default: it keeps no data
    /// and runs the smallest WiredTiger cache, 0.25 GB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::common::resources_schema")]
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
}

/// The cluster-wide default write concern a set with an arbiter runs with.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DefaultWriteConcern {
    /// `{w: "majority"}`.
    #[default]
    Majority,
    /// `{w: 1}`.
    One,
}

impl DefaultWriteConcern {
    /// The `w` of `setDefaultRWConcern`'s `defaultWriteConcern`, as `getDefaultRWConcern`
    /// reports it back (a string or a number).
    pub fn w(self) -> mongodb::bson::Bson {
        match self {
            DefaultWriteConcern::Majority => mongodb::bson::Bson::String("majority".into()),
            DefaultWriteConcern::One => mongodb::bson::Bson::Int32(1),
        }
    }
}
