//! Types shared by the three kinds: references to other objects, and status conditions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every kind this operator serves.
pub const API_GROUP: &str = "mongo.operator.rs";
/// The one API version served so far.
pub const API_VERSION: &str = "v1alpha1";
/// The category that makes `kubectl get mongo` list all three kinds together.
pub const CATEGORY: &str = "mongo";

/// A reference to a MongoCluster in the same namespace as the referring object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReference {
    /// Name of the MongoCluster, in the same namespace as this object.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
}

/// A key of a Secret in the same namespace as the referring object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyReference {
    /// Name of the Secret, in the same namespace as this object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Condition types, shared by every kind so that tools read them the same way.
pub mod condition_type {
    /// The object is doing what its spec asks, and `kubectl wait --for=condition=Ready` returns.
    pub const READY: &str = "Ready";
    /// The operator is moving the object towards its spec (creating, scaling, rolling out).
    pub const PROGRESSING: &str = "Progressing";
    /// Something is wrong that the operator cannot fix by itself; the reason says what.
    pub const DEGRADED: &str = "Degraded";
    /// A MongoCluster's Pods are fenced by default-deny NetworkPolicies.
    pub const NETWORK_ISOLATED: &str = "NetworkIsolated";
    /// kstatus: the operator is still working towards the spec (Flux waits while True).
    pub const RECONCILING: &str = "Reconciling";
    /// kstatus: the spec cannot be reached without a change from the user (Flux fails).
    pub const STALLED: &str = "Stalled";
}

/// Where an object stands for kstatus (Flux's health checks, `kstatus`-based tools), which
/// read `Reconciling` and `Stalled`, not `Ready`.
pub enum Standing<'a> {
    /// Done: neither reconciling nor stalled (also a paused or suspended object, which the
    /// user asked to stand still).
    Current,
    /// Still moving towards the spec, with the reason and message of why not Ready yet.
    Reconciling(&'a str, &'a str),
    /// Cannot get there on its own; the reason and message say what the user must change.
    Stalled(&'a str, &'a str),
}

/// The `Reconciling` and `Stalled` conditions for `standing`.
pub fn kstatus_conditions(
    previous: &[Condition],
    standing: Standing<'_>,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> [Condition; 2] {
    let (reconciling, stalled) = match standing {
        Standing::Current => ((false, "Current", ""), (false, "Current", "")),
        Standing::Reconciling(r, m) => ((true, r, m), (false, "Progressing", "")),
        Standing::Stalled(r, m) => ((false, "Stalled", m), (true, r, m)),
    };
    let (on, r, m) = reconciling;
    let reconciling = condition(previous, condition_type::RECONCILING, on, r, m, observed_generation, now);
    let (on, r, m) = stalled;
    [reconciling, condition(previous, condition_type::STALLED, on, r, m, observed_generation, now)]
}

/// Builds a condition, keeping `lastTransitionTime` from the previous condition of the same
/// type when its status did not change, as the Kubernetes API conventions require.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.into(),
        observed_generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ranges_wholly_inside_private_space_are_private() {
        for private in ["10.0.0.0/8", "10.20.0.0/16", "172.16.5.0/24", "192.168.1.7/32", "100.64.0.0/10", "fd00::/8"] {
            assert!(Cidr(private.into()).is_private(), "{private}");
        }
        for public in [
            "0.0.0.0/0",
            "8.8.8.0/24",
            "10.0.0.0/7",
            "172.32.0.0/16",
            "100.128.0.0/10",
            "::/0",
            "2001:db8::/32",
            "not a range",
            "10.0.0.0/33",
        ] {
            assert!(!Cidr(public.into()).is_private(), "{public}");
        }
    }

    #[test]
    fn transition_time_is_kept_while_status_is_unchanged() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let first = condition(&[], "Ready", false, "Creating", "", Some(1), t0);
        let same = condition(std::slice::from_ref(&first), "Ready", false, "Scaling", "", Some(2), t1);
        assert_eq!(same.last_transition_time, Time(t0));
        assert_eq!(same.reason, "Scaling");
        let flipped = condition(&[same], "Ready", true, "Ready", "", Some(2), t1);
        assert_eq!(flipped.last_transition_time, Time(t1));
    }

    #[test]
    fn kstatus_reads_reconciling_and_stalled() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let state = |s: Standing<'_>| {
            let [r, st] = kstatus_conditions(&[], s, Some(3), now);
            assert_eq!((r.type_.as_str(), st.type_.as_str()), ("Reconciling", "Stalled"));
            assert_eq!((r.observed_generation, st.observed_generation), (Some(3), Some(3)));
            (r.status, r.reason, st.status, st.reason)
        };
        let t = |s: &str| s.to_string();
        assert_eq!(state(Standing::Current), (t("False"), t("Current"), t("False"), t("Current")));
        assert_eq!(
            state(Standing::Reconciling("Scaling", "adding member 4")),
            (t("True"), t("Scaling"), t("False"), t("Progressing"))
        );
        assert_eq!(
            state(Standing::Stalled("InvalidSpec", "version 9 is unknown")),
            (t("False"), t("Stalled"), t("True"), t("InvalidSpec"))
        );
    }
}

/// An IP address range in CIDR notation, such as "10.0.0.0/8" or "fd00::/8". Bounded in
/// length so that CEL rules over lists of ranges stay within the API server's cost budget.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(transparent)]
pub struct Cidr(pub String);

impl JsonSchema for Cidr {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Cidr".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "x-kubernetes-validations": [{
                "rule": "isCIDR(self)",
                "message": "must be an IP range in CIDR notation, such as 10.0.0.0/8",
                "reason": "FieldValueInvalid",
            }],
        })
    }
}

/// The private address ranges: RFC 1918, RFC 6598 shared space and IPv6 unique-local. The
/// attachment's `ipBlock` rule lists the same ranges in CEL.
pub const PRIVATE_RANGES: [&str; 5] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"];

impl Cidr {
    /// The range as an address and a prefix length; None when it is not CIDR notation.
    fn parse(&self) -> Option<(std::net::IpAddr, u8)> {
        let (address, prefix) = self.0.trim().split_once('/')?;
        let address: std::net::IpAddr = address.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        (prefix <= bits).then_some((address, prefix))
    }

    /// Whether the whole range lies inside one of [`PRIVATE_RANGES`].
    pub fn is_private(&self) -> bool {
        let Some((address, prefix)) = self.parse() else { return false };
        PRIVATE_RANGES.iter().filter_map(|p| Cidr(p.to_string()).parse()).any(|(net, net_prefix)| {
            prefix >= net_prefix
                && match (address, net) {
                    (std::net::IpAddr::V4(a), std::net::IpAddr::V4(n)) => {
                        let mask = u32::MAX.checked_shl(32 - u32::from(net_prefix)).unwrap_or(0);
                        u32::from(a) & mask == u32::from(n) & mask
                    }
                    (std::net::IpAddr::V6(a), std::net::IpAddr::V6(n)) => {
                        let mask = u128::MAX.checked_shl(128 - u32::from(net_prefix)).unwrap_or(0);
                        u128::from(a) & mask == u128::from(n) & mask
                    }
                    _ => false,
                }
        })
    }
}

/// The schema of a container's `resources` (CPU and memory): the Kubernetes type's fields the
/// operator uses, with every quantity checked at admission, as the API server would check it
/// on the Pod much later (`cpu: lots` is refused by `kubectl apply`, not by a Job that never
/// starts), and requests at most their limits.
pub fn resources_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let quantities = |what: &str| {
        serde_json::json!({
            "type": "object",
            "maxProperties": 8,
            "description": format!("{what}, by resource name (cpu, memory, ...), as quantities such as 500m or 2Gi."),
            "additionalProperties": {
                "anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 32}],
                "x-kubernetes-int-or-string": true,
            },
        })
    };
    let each_a_quantity = |field: &str| {
        serde_json::json!({
            "rule": format!("!has(self.{field}) || self.{field}.all(k, isQuantity(string(self.{field}[k])))"),
            "message": format!("resources.{field} must be quantities such as 500m, 2 or 4Gi"),
            "reason": "FieldValueInvalid",
        })
    };
    let at_most_the_limit = |resource: &str| {
        let (request, limit) = (format!("self.requests['{resource}']"), format!("self.limits['{resource}']"));
        serde_json::json!({
            "rule": format!(
                "!has(self.limits) || !has(self.requests) || !('{resource}' in self.limits) || !('{resource}' in \
                 self.requests) || !isQuantity(string({request})) || !isQuantity(string({limit})) || \
                 quantity(string({request})).compareTo(quantity(string({limit}))) <= 0"
            ),
            "message": format!("resources.requests.{resource} must not be more than resources.limits.{resource}"),
            "reason": "FieldValueInvalid",
        })
    };
    schemars::json_schema!({
        "type": "object",
        "properties": {
            "limits": quantities("The most the container may use"),
            "requests": quantities("What the container is guaranteed; at most its limit"),
        },
        "x-kubernetes-validations": [
            each_a_quantity("limits"),
            each_a_quantity("requests"),
            at_most_the_limit("cpu"),
            at_most_the_limit("memory"),
        ],
    })
}

/// A span of time written as a number and a unit: s, m, h, d or w ("30s", "24h", "14d").
pub fn span(text: &str) -> Option<k8s_openapi::jiff::SignedDuration> {
    use k8s_openapi::jiff::SignedDuration;
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: i64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    Some(SignedDuration::from_secs(n.checked_mul(seconds)?))
}

#[cfg(test)]
mod span_tests {
    use super::span;

    #[test]
    fn spans_in_every_unit() {
        assert_eq!(span("30s").map(|d| d.as_secs()), Some(30));
        assert_eq!(span("24h").map(|d| d.as_secs()), Some(86_400));
        assert_eq!(span("2w").map(|d| d.as_secs()), Some(1_209_600));
        assert_eq!(span("0s").map(|d| d.as_secs()), Some(0));
        assert_eq!(span("12"), None);
        assert_eq!(span(""), None);
        assert_eq!(span("1y"), None);
    }
}
