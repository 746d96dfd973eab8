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
