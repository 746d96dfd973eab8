//! `NetworkPolicyAttachment`: who may connect to a MongoCluster. Every cluster denies all
//! traffic by default; each attachment lets exactly the listed clients in.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Cidr, ClusterReference};

/// Lets the listed clients connect to a MongoCluster; deleting it revokes their access.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mongo.operator.rs",
    version = "v1alpha1",
    kind = "NetworkPolicyAttachment",
    plural = "networkpolicyattachments",
    singular = "networkpolicyattachment",
    shortname = "npa",
    category = "mongo",
    namespaced,
    status = "NetworkPolicyAttachmentStatus",
    derive = "PartialEq",
    doc = "Lets the listed clients connect to a MongoCluster through a NetworkPolicy.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef.name"),
    printcolumn(name = "Policy", type_ = "string", json_path = ".status.networkPolicyName"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("self.clusterRef == oldSelf.clusterRef")
    .message("clusterRef cannot be changed: create a new NetworkPolicyAttachment for another cluster")
    .reason(Reason::FieldValueForbidden))]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyAttachmentSpec {
    /// The MongoCluster clients may connect to, in this namespace.
    pub cluster_ref: ClusterReference,

    /// Who may connect. Each entry is a peer as in a NetworkPolicy: Pods by label in this
    /// namespace, Pods in other namespaces, or a private address range.
    #[schemars(length(min = 1, max = 32))]
    pub from: Vec<AttachmentPeer>,

    /// Ports the peers may reach. Only the MongoDB port (27017) when unset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub ports: Vec<AttachmentPort>,
}

/// A port of the cluster's Pods.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AttachmentPort {
    /// The MongoDB port, 27017.
    #[serde(rename = "mongodb")]
    MongoDb,
    /// The metrics port of the member Pods.
    #[serde(rename = "metrics")]
    Metrics,
}

/// One set of clients. `podSelector` alone means Pods of this namespace; with
/// `namespaceSelector`, Pods of the selected namespaces; `ipBlock` stands alone.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("has(self.podSelector) || has(self.namespaceSelector) || has(self.ipBlock)")
        .message("each entry of from needs podSelector, namespaceSelector or ipBlock")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.ipBlock) || (!has(self.podSelector) && !has(self.namespaceSelector))")
        .message("ipBlock cannot be combined with podSelector or namespaceSelector in one entry; use separate entries")
        .reason(Reason::FieldValueForbidden),
)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentPeer {
    /// Pods with these labels. In this namespace, or in the namespaces chosen by
    /// `namespaceSelector`. An empty selector selects every Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Namespaces whose Pods may connect (all their Pods, or those chosen by `podSelector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// A private address range, for clients outside the Kubernetes cluster such as a VM network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<PrivateIpBlock>,
}

/// A private address range (RFC 1918, RFC 6598 shared space, or IPv6 unique-local), with
/// exceptions.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.except) || !isCIDR(self.cidr) || self.except.all(e, !isCIDR(e) || cidr(self.cidr).containsCIDR(e))")
    .message("every entry of ipBlock.except must be a CIDR inside ipBlock.cidr")
    .reason(Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct PrivateIpBlock {
    /// The range, for example "10.20.0.0/16".
    #[x_kube(
        validation = Rule::new("!isCIDR(self) || ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7'].exists(p, cidr(p).ip().family() == cidr(self).ip().family() && cidr(p).containsCIDR(self))")
            .message("ipBlock.cidr must be a private range (inside 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10 or fc00::/7): the database is never opened to the internet")
            .reason(Reason::FieldValueForbidden),
    )]
    pub cidr: Cidr,
    /// Ranges inside `cidr` that may not connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub except: Option<Vec<Cidr>>,
}

/// Observed state of a NetworkPolicyAttachment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyAttachmentStatus {
    /// `Ready` (the NetworkPolicy is in place) and `Degraded` (for example the cluster is
    /// missing or a peer selects nothing), with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Name of the NetworkPolicy that carries this attachment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy_name: Option<String>,
    /// The peers in effect, as the NetworkPolicy states them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerStatus>,
}

/// One peer in effect.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatus {
    /// The peer in words, for example "pods app=shop in namespaces team=shop".
    pub description: String,
    /// How many Pods the peer selects now; absent for address ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matching_pods: Option<i32>,
}
