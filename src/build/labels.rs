//! The recommended `app.kubernetes.io/*` labels on everything the operator creates.

use std::collections::BTreeMap;

pub const MANAGED_BY: &str = "mongo-operator";
/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "mongo-operator";

/// Labels that select a cluster's member Pods (stable: they are part of the StatefulSet's
/// immutable selector).
pub fn selector(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "mongodb".to_string()),
        ("app.kubernetes.io/instance".to_string(), cluster.to_string()),
        ("app.kubernetes.io/component".to_string(), "database".to_string()),
    ])
}

/// Label the operator puts on each member Pod: "true" when clients are sent to it through the
/// client Service, "false" for a hidden or delayed member (`spec.memberRoles`), which no
/// application should read from. Not in the Pod template: a role change must not restart
/// anything.
pub const SERVES_CLIENTS_LABEL: &str = "mongo.operator.rs/serves-clients";

/// Label of the arbiter's Pod (`spec.arbiter`), which also carries [`selector`]'s labels, so
/// that the headless Service names it, the NetworkPolicies and the PodDisruptionBudget count it
/// with the members, and the members' anti-affinity keeps it off their nodes. The arbiter's
/// StatefulSet selects on this label as well; the members' StatefulSet, whose selector cannot
/// change, matches the arbiter's Pod too but never claims it (it is owned by its own).
pub const ARBITER_LABEL: &str = "mongo.operator.rs/arbiter";

/// The labels that select the arbiter's Pod.
pub fn arbiter_selector(cluster: &str) -> BTreeMap<String, String> {
    let mut labels = selector(cluster);
    labels.insert(ARBITER_LABEL.to_string(), "true".to_string());
    labels
}

/// [`selector`] as a list query (`k=v,k=v`).
pub fn selector_query(cluster: &str) -> String {
    query(&selector(cluster))
}

/// Labels as a list query (`k=v,k=v`).
pub fn query(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// Every label of an object belonging to `cluster`, for a `component`.
pub fn labels(cluster: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "mongodb".to_string()),
        ("app.kubernetes.io/instance".to_string(), cluster.to_string()),
        ("app.kubernetes.io/component".to_string(), component.to_string()),
        ("app.kubernetes.io/part-of".to_string(), "mongo-operator".to_string()),
        ("app.kubernetes.io/managed-by".to_string(), MANAGED_BY.to_string()),
    ])
}
