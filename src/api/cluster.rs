//! `MongoCluster`: a MongoDB replica set, as a user of a managed database describes it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SecretKeyReference;
use super::backup::BackupLocation;
use super::mongod_config::MongodConfig;

/// The default number of replica-set members: the smallest set that survives losing one.
pub const DEFAULT_MEMBERS: i32 = 3;
/// The default volume size per member.
pub const DEFAULT_STORAGE_SIZE: &str = "10Gi";
/// The longest MongoCluster name, so that every derived name (`<name>-<ordinal>` Pods, the
/// StatefulSet's `controller-revision-hash` label, `<name>-<suffix>` Services and Secrets) stays
/// within Kubernetes' 63-character limits.
pub const MAX_NAME_LENGTH: usize = 40;

/// A MongoDB replica set: highly available by default, scaled and upgraded by changing one
/// field, with authentication on from the first start.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mongo.operator.rs",
    version = "v1alpha1",
    kind = "MongoCluster",
    plural = "mongoclusters",
    singular = "mongocluster",
    shortname = "mgc",
    category = "mongo",
    namespaced,
    status = "MongoClusterStatus",
    derive = "PartialEq",
    doc = "A MongoDB replica set managed by mongo-operator.",
    scale(spec_replicas_path = ".spec.members", status_replicas_path = ".status.readyMembers"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(name = "Members", type_ = "integer", json_path = ".spec.members"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyMembers"),
    printcolumn(name = "Primary", type_ = "string", json_path = ".status.primary"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 40 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must start with a letter, contain only lowercase letters, digits and '-', and be at most 40 characters, so that the Pods, Services and Secrets named after it fit Kubernetes' limits")
        .reason(Reason::FieldValueInvalid),
)]
#[x_kube(
    validation = Rule::new("has(self.bootstrap) == has(oldSelf.bootstrap) && (!has(self.bootstrap) || self.bootstrap == oldSelf.bootstrap)")
        .message("bootstrap is only read when the cluster is created and cannot be added, changed or removed afterwards")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.expose) || !has(self.expose.perMember) || !has(self.tls) || !has(self.tls.mode) || self.tls.mode != 'Disabled'")
        .message("expose.perMember needs TLS: a client outside Kubernetes is given the members' external names only when it names one in TLS (SNI), so tls.mode may not be Disabled")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.expose) || !has(self.expose.perMember) || !has(self.expose.perMember.nodePort) || self.expose.perMember.nodePort.basePort + self.members - 1 <= 65535")
        .message("expose.perMember.nodePort.basePort + members - 1 must be a port (at most 65535): member i listens on basePort + i")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(self.arbiter) || !self.arbiter.enabled || !has(self.expose) || !has(self.expose.perMember)")
        .message("arbiter.enabled cannot be combined with expose.perMember: the server wants the same split-horizon names on every member, the arbiter included, and the arbiter has no address outside Kubernetes")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.arbiter) || !self.arbiter.enabled || (has(self.memberRoles) && size(self.memberRoles) > 0) || self.members in [2, 4, 6]")
        .message("arbiter.enabled needs 2, 4 or 6 voting members: the arbiter's vote makes their count odd; with an odd count it would take a data-bearing member's vote instead, and a set has at most 7 votes")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!self.podDisruptionBudget.enabled || self.members < 3 || self.podDisruptionBudget.maxUnavailable <= ((self.members > 7 ? 7 : self.members) - 1) / 2")
        .message("podDisruptionBudget.maxUnavailable must leave a majority of the voting members running: at most (voters - 1) / 2, where voters is members capped at 7")
        .reason(Reason::FieldValueForbidden),
)]
#[serde(rename_all = "camelCase")]
pub struct MongoClusterSpec {
    /// MongoDB server version, for example "8.0.4". Upgrades go one major version at a time
    /// (6.0 to 7.0 to 8.0); the operator refuses a jump it cannot make safely and says why in
    /// status.
    #[x_kube(
        validation = Rule::new("int(self.split('.')[0]) >= 6")
            .message("version must be 6.0.0 or later: older MongoDB releases are past end of life")
            .reason(Reason::FieldValueInvalid),
        validation = Rule::new("int(self.split('.')[0]) <= int(oldSelf.split('.')[0]) + 1")
            .message(Message::Expression("'version ' + self + ' cannot be reached from ' + oldSelf + ': MongoDB upgrades one major release at a time (6.0, 7.0, 8.0)'".into()))
            .reason(Reason::FieldValueForbidden),
        validation = Rule::new("int(self.split('.')[0]) >= int(oldSelf.split('.')[0]) - 1")
            .message(Message::Expression("'version ' + self + ' cannot be reached from ' + oldSelf + ': MongoDB downgrades one major release at a time, each after lowering featureCompatibilityVersion'".into()))
            .reason(Reason::FieldValueForbidden),
    )]
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+\.[0-9]+$"), length(max = 32))]
    pub version: String,

    /// Container image for mongod. Defaults to the official `mongo:<version>` image; set it to
    /// use a mirror or a hardened build of the same version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Secrets in this namespace holding registry credentials, for when the mongod image or the
    /// operator's own image (which each member's and each backup's Pod copies its binary
    /// from) is in a private registry. Given to the members' Pods and to backup and restore
    /// Jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// When the featureCompatibilityVersion follows a new MongoDB release, and how to lower it
    /// for a downgrade. Until it is raised, the binary can go back to the previous release.
    #[serde(default)]
    pub feature_compatibility: FeatureCompatibilitySpec,

    /// Number of replica-set members, one Pod each. Three members survive the loss of one.
    /// At most 7 members vote; further members are non-voting copies.
    #[serde(default = "default_members")]
    #[schemars(range(min = 1, max = 50))]
    pub members: i32,

    /// Members that are not plain electable ones, by ordinal: non-voting copies, hidden members
    /// (backups read from one), delayed members, and each member's priority and tags. Every
    /// change is made one safe reconfig at a time; a primary that is to lose its place steps
    /// down first. At least one member must stay Electable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(
        validation = Rule::new("self.all(a, self.exists_one(b, b.ordinals.exists(o, o in a.ordinals)))")
            .message("memberRoles lists an ordinal in two entries: each member has one role")
            .reason(Reason::FieldValueInvalid),
    )]
    pub member_roles: Vec<super::MemberRoleSpec>,

    /// An arbiter: a vote without data, for an odd number of votes with 2, 4 or 6 voting
    /// members. MongoDB advises against arbiters where a third data-bearing member is
    /// possible: with one data-bearing member of a primary-secondary-arbiter set down, writes
    /// that need a majority wait (see `defaultWriteConcern`).
    #[serde(default)]
    pub arbiter: super::ArbiterSpec,

    /// Persistent storage of each member.
    #[serde(default)]
    pub storage: StorageSpec,

    /// CPU and memory for each mongod container. Setting the memory limit equal to the request
    /// is recommended; the WiredTiger cache is sized from the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::common::resources_schema")]
    pub resources: Option<ResourceRequirements>,

    /// Settings passed to mongod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mongod: Option<MongodSpec>,

    /// Database users the operator creates and keeps as declared here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name", "db"]))]
    pub users: Vec<UserSpec>,

    /// Where the members' Pods may run.
    #[serde(default)]
    pub scheduling: SchedulingSpec,

    /// The PodDisruptionBudget that keeps a majority running during node drains.
    #[serde(default)]
    pub pod_disruption_budget: PodDisruptionBudgetSpec,

    /// How clients reach the cluster. Private (ClusterIP) by default.
    #[serde(default)]
    pub expose: ExposeSpec,

    /// Default-deny NetworkPolicies around the cluster's Pods. Clients are let in by
    /// NetworkPolicyAttachments.
    #[serde(default)]
    pub network_isolation: NetworkIsolationSpec,

    /// Encrypted traffic: TLS is required unless this says otherwise, with certificates the
    /// operator issues and renews.
    #[serde(default)]
    pub tls: super::TlsSpec,

    /// Metrics: an exporter next to every member (on by default), and optionally a
    /// `PodMonitor` for the Prometheus Operator.
    #[serde(default)]
    pub monitoring: super::MonitoringSpec,

    /// What happens to volumes and Secrets when the MongoCluster is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Stops every change to the cluster's objects and replica set while true; status is still
    /// reported.
    #[serde(default)]
    pub paused: bool,

    /// How the cluster's data is created. Read only when the cluster is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<BootstrapSpec>,
}

fn default_members() -> i32 {
    DEFAULT_MEMBERS
}

/// When the featureCompatibilityVersion (FCV) follows a new MongoDB release. While the FCV is
/// the previous release's, new features that change the data format stay off and the binary
/// can be rolled back; once it is raised (from 7.0 on), going back needs MongoDB support.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.policy == 'Manual' || !has(self.version)")
        .message("featureCompatibility.version is only set with policy: Manual (Automatic raises it by itself)")
        .reason(Reason::FieldValueForbidden),
)]
#[serde(rename_all = "camelCase")]
pub struct FeatureCompatibilitySpec {
    /// `Automatic` (the default) raises the FCV to the running release once every member runs it
    /// and the set has been healthy on it for `soakTime`. `Manual` keeps the FCV where it is,
    /// or at `version`.
    #[serde(default)]
    pub policy: FeatureCompatibilityPolicy,
    /// With `Automatic`: how long every member must have run the new release, healthy, before
    /// the FCV is raised: a number followed by s, m, h or d, for example "24h" (the default) or
    /// "0s" to raise at once.
    #[serde(default = "default_soak_time")]
    #[schemars(regex(pattern = r"^[0-9]{1,5}[smhd]$"))]
    pub soak_time: String,
    /// With `Manual`: the FCV to keep, for example "7.0". Set it to the running release to
    /// raise it, or to the previous release (from 8.0 to 7.0) to lower it, which is the first
    /// step of a downgrade; set `version` second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+$"), length(max = 8))]
    pub version: Option<String>,
}

fn default_soak_time() -> String {
    "24h".to_string()
}

impl Default for FeatureCompatibilitySpec {
    fn default() -> Self {
        FeatureCompatibilitySpec {
            policy: FeatureCompatibilityPolicy::default(),
            soak_time: default_soak_time(),
            version: None,
        }
    }
}

/// Who moves the featureCompatibilityVersion.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FeatureCompatibilityPolicy {
    /// Raised to the running release after `soakTime` of health on it.
    #[default]
    Automatic,
    /// Only ever set to `version`, by the user.
    Manual,
}

/// Persistent storage of each member.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0")
        .message("storage.size can grow but never shrink: MongoDB data cannot be moved to a smaller volume in place")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)")
        .message("storage.storageClassName cannot be changed after creation")
        .reason(Reason::FieldValueForbidden),
)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each member's volume, for example "10Gi". It can grow (when the StorageClass
    /// allows volume expansion) but never shrink.
    #[serde(default = "default_storage_size")]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))")
        .message("storage.size must be a positive quantity such as 10Gi")
        .reason(Reason::FieldValueInvalid))]
    #[schemars(length(min = 1, max = 32))]
    pub size: String,

    /// StorageClass of the members' volumes; the cluster's default class when unset. Cannot be
    /// changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
}

fn default_storage_size() -> String {
    DEFAULT_STORAGE_SIZE.to_string()
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self { size: default_storage_size(), storage_class_name: None }
    }
}

/// Settings passed to mongod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MongodSpec {
    /// Extra mongod.conf settings, in mongod.conf's own nested form (for example
    /// `operationProfiling: {mode: slowOp}`). The keys the operator owns are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<MongodConfig>,
}

/// A database user the operator creates and keeps as declared.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    /// User name.
    #[x_kube(validation = Rule::new("!self.startsWith('mongo-operator')")
        .message("user names starting with 'mongo-operator' are reserved for the operator's own users")
        .reason(Reason::FieldValueForbidden))]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"))]
    pub name: String,

    /// Authentication database of the user.
    #[serde(default = "default_admin_db")]
    #[schemars(length(min = 1, max = 64))]
    pub db: String,

    /// Roles granted to the user; the list replaces the user's roles on every change.
    #[schemars(length(min = 1, max = 64))]
    pub roles: Vec<RoleReference>,

    /// Secret key holding the user's password. When unset the operator generates a password
    /// and keeps it in the connection Secret. Changing the Secret rotates the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<super::SecretKeyReference>,

    /// Name of the Secret the operator writes with this user's connection details
    /// (`connectionString.standard`, `connectionString.standardSrv`, `username`, `password`).
    /// Defaults to `<cluster>-<db>-<user>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub connection_secret_name: Option<String>,
}

fn default_admin_db() -> String {
    "admin".to_string()
}

/// A MongoDB role granted on a database.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleReference {
    /// Role name, for example `readWrite` or `clusterMonitor`.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// Database the role applies to.
    #[schemars(length(min = 1, max = 64))]
    pub db: String,
}

/// Where the members' Pods may run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingSpec {
    /// How strictly members are kept on different nodes. `Required` (the default) never puts two
    /// members on one node; `Preferred` allows it when there are too few nodes; ignored when
    /// `affinity` is set.
    #[serde(default)]
    pub pod_anti_affinity: AntiAffinity,
    /// Node labels a member's node must have. The cluster's backup and restore Jobs use them
    /// too, so they run where the members may.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the members tolerate; the cluster's backup and restore Jobs tolerate them too,
    /// or on nodes reserved for databases they would never be scheduled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Full affinity rules; replaces the anti-affinity the operator would set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Topology spread constraints; replaces the default spread across zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// PriorityClass of the members' Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// How strictly members are kept on different nodes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AntiAffinity {
    /// Never two members on one node: a node failure costs at most one member.
    #[default]
    Required,
    /// Spread members over nodes when possible, but run them anyway when nodes are short.
    Preferred,
}

/// The PodDisruptionBudget that keeps a majority running during voluntary disruptions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodDisruptionBudgetSpec {
    /// Whether the operator keeps a PodDisruptionBudget for the members.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How many members may be down at once for voluntary disruptions such as node drains.
    #[serde(default = "default_max_unavailable")]
    #[schemars(range(min = 1, max = 25))]
    pub max_unavailable: i32,
}

impl Default for PodDisruptionBudgetSpec {
    fn default() -> Self {
        Self { enabled: true, max_unavailable: default_max_unavailable() }
    }
}

fn default_true() -> bool {
    true
}

fn default_max_unavailable() -> i32 {
    1
}

/// Network isolation of the cluster's Pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkIsolationSpec {
    /// Keep NetworkPolicies that refuse every connection to the members except from the other
    /// members, the operator, the cluster's backup and restore Jobs, NetworkPolicyAttachments
    /// and the load balancer's source ranges. Turn off only where the network plugin does not
    /// enforce NetworkPolicies; status then says the cluster is not isolated.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Where the cluster's backup and restore Jobs may connect to reach their object stores.
    /// Nothing by default: an isolated cluster's backups wait until this names the stores.
    #[serde(default)]
    pub object_stores: ObjectStoreEgress,
}

impl Default for NetworkIsolationSpec {
    fn default() -> Self {
        NetworkIsolationSpec { enabled: true, object_stores: ObjectStoreEgress::default() }
    }
}

impl MongoCluster {
    /// TLS as the members were last seen running it.
    pub fn reported_tls(&self) -> Option<&super::TlsStatus> {
        self.status.as_ref()?.tls.as_ref()
    }

    /// Whether Jobs reach the members over TLS: when they all run with TLS on, as the status
    /// last said, or (before the status says) as the spec asks.
    pub fn members_speak_tls(&self) -> bool {
        self.reported_tls().map_or(self.spec.tls.mode, |t| t.mode).on()
    }
}

impl NetworkIsolationSpec {
    /// Whether backup and restore Jobs have somewhere to connect to.
    pub fn stores_reachable(&self) -> bool {
        !self.enabled || self.object_stores.any_address || !self.object_stores.cidrs.is_empty()
    }
}

/// The object stores' addresses, as the NetworkPolicy of backup and restore Jobs admits them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!(self.anyAddress && size(self.cidrs) > 0)")
    .message("objectStores takes cidrs or anyAddress: true, not both")
    .reason(Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct ObjectStoreEgress {
    /// Address ranges of the stores' endpoints: a provider's published ranges, or the network
    /// of a self-hosted store.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub cidrs: Vec<super::Cidr>,
    /// Any address (on `ports` only), for stores whose addresses cannot be known in advance.
    /// Off by default.
    #[serde(default)]
    pub any_address: bool,
    /// TCP ports of the stores' endpoints; an empty list allows every port.
    #[serde(default = "default_store_ports")]
    #[schemars(length(max = 8))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub ports: Vec<u16>,
}

impl Default for ObjectStoreEgress {
    fn default() -> Self {
        ObjectStoreEgress { cidrs: Vec::new(), any_address: false, ports: default_store_ports() }
    }
}

fn default_store_ports() -> Vec<u16> {
    vec![443]
}

/// How clients reach the cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(
    validation = Rule::new("self.type != 'LoadBalancer' || (has(self.loadBalancer) && has(self.loadBalancer.sourceRanges) && size(self.loadBalancer.sourceRanges) > 0)")
        .message("expose.loadBalancer.sourceRanges must list at least one CIDR when expose.type is LoadBalancer: a database is never opened to every address")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("self.type == 'LoadBalancer' || !has(self.loadBalancer)")
        .message("expose.loadBalancer is only allowed when expose.type is LoadBalancer")
        .reason(Reason::FieldValueForbidden),
)]
#[serde(rename_all = "camelCase")]
pub struct ExposeSpec {
    /// `ClusterIP` (the default) keeps the database inside the Kubernetes network;
    /// `LoadBalancer` adds a load balancer, internal by default.
    #[serde(default, rename = "type")]
    pub type_: ExposeType,
    /// Settings of the load balancer when `type` is `LoadBalancer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSpec>,
    /// Each member on a load balancer or a node port of its own, for replica-set clients
    /// outside Kubernetes (VMs and bare metal on the private network). Those clients connect with the external
    /// names and get them back from `hello` (split horizons, chosen by the TLS SNI name), so
    /// this needs TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_member: Option<MemberExposeSpec>,
}

/// Every member reachable on its own address outside Kubernetes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("!has(self.hostPattern) || self.hostPattern.matches('^[a-z0-9-]*[{]ordinal[}][a-z0-9-]*([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)+$')")
        .message("expose.perMember.hostPattern must be a DNS name with {ordinal} in its first label, such as db-{ordinal}.mongo.example.internal: the members' certificate covers every ordinal with one wildcard name")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("has(self.loadBalancer) != has(self.nodePort)")
        .message("expose.perMember needs exactly one of loadBalancer and nodePort")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.loadBalancer) || (has(self.loadBalancer.sourceRanges) && size(self.loadBalancer.sourceRanges) > 0)")
        .message("expose.perMember.loadBalancer.sourceRanges must list at least one CIDR: a database is never opened to every address")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.nodePort) || has(self.hostPattern)")
        .message("expose.perMember.nodePort needs hostPattern: a node port has no name of its own, and clients outside Kubernetes are told the members' names (chosen by TLS SNI, which clients send for names only)")
        .reason(Reason::FieldValueRequired),
)]
#[serde(rename_all = "camelCase")]
pub struct MemberExposeSpec {
    /// The DNS name each member is reached by, with `{ordinal}` in its first label, such as
    /// `db-{ordinal}.mongo.example.internal`. Point each name at its member's load balancer
    /// (the address in the status of the Service `<cluster>-<ordinal>-external`), or with
    /// `nodePort` at the node its member runs on. Without it, each member is announced by its
    /// load balancer's host name, once the cloud gives one (AWS does); a load balancer that
    /// only has an IP address needs `hostPattern`, because the address a client gets back is
    /// chosen by the TLS SNI name, which clients send for names only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub host_pattern: Option<String>,
    /// Each member on a load balancer of its own (internal by default); `sourceRanges` is
    /// required and is also what the members' NetworkPolicy admits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSpec>,
    /// Each member on a port of the node it runs on, for networks without load balancers (bare
    /// metal). Only that node answers (`externalTrafficPolicy: Local`, which also keeps the
    /// client's address for the NetworkPolicy), so each `hostPattern` name must point at its
    /// member's node: members pinned to nodes by local volumes, or DNS that follows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<NodePortSpec>,
}

/// Members on node ports.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePortSpec {
    /// The node port of the member with ordinal 0; member `i` listens on `basePort + i`, so
    /// firewalls can be written ahead. It must lie in the cluster's node port range
    /// (30000-32767 unless the API server was told otherwise) and be free: the API server
    /// refuses a port another Service holds.
    #[schemars(range(min = 1, max = 65535))]
    pub base_port: i32,
    /// Address ranges allowed to connect; required. Ranges outside private space are refused
    /// unless the operator was installed with `--allow-public-load-balancers`.
    #[schemars(length(min = 1, max = 64))]
    pub source_ranges: Vec<super::Cidr>,
}

impl MemberExposeSpec {
    /// The external name of the member with this ordinal, when `hostPattern` gives it.
    pub fn host(&self, ordinal: i32) -> Option<String> {
        self.host_pattern.as_ref().map(|p| p.replace("{ordinal}", &ordinal.to_string()))
    }

    /// The port clients outside Kubernetes reach the member with this ordinal on.
    pub fn port(&self, ordinal: i32) -> i32 {
        match &self.node_port {
            Some(node_port) => node_port.base_port.saturating_add(ordinal),
            None => i32::from(crate::replset::config::MONGODB_PORT),
        }
    }

    /// The ranges admitted to the members on this path.
    pub fn source_ranges(&self) -> &[super::Cidr] {
        match (&self.load_balancer, &self.node_port) {
            (Some(lb), _) => &lb.source_ranges,
            (None, Some(node_port)) => &node_port.source_ranges,
            (None, None) => &[],
        }
    }
}

/// How clients reach the cluster.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ExposeType {
    /// Reachable only from inside the Kubernetes cluster.
    #[default]
    ClusterIP,
    /// Reachable through a load balancer from the listed source ranges.
    LoadBalancer,
}

/// A load balancer in front of the cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!self.internal || !has(self.annotations) || !self.annotations.exists(k, k in ['service.beta.kubernetes.io/aws-load-balancer-internal', 'service.beta.kubernetes.io/aws-load-balancer-scheme', 'networking.gke.io/load-balancer-type', 'service.beta.kubernetes.io/azure-load-balancer-internal', 'service.beta.kubernetes.io/openstack-internal-load-balancer', 'service.beta.kubernetes.io/oci-load-balancer-internal'])")
    .message("expose.loadBalancer.annotations may not set the annotations that keep an internal load balancer internal")
    .reason(Reason::FieldValueForbidden))]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSpec {
    /// Ask the cloud for an internal (private-network) load balancer. True by default.
    #[serde(default = "default_true")]
    pub internal: bool,
    /// Address ranges allowed to connect through the load balancer; required. Ranges outside
    /// private space (RFC 1918, RFC 6598, IPv6 unique-local) are refused unless the operator
    /// was installed with `--allow-public-load-balancers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub source_ranges: Vec<super::Cidr>,
    /// Extra annotations for the load balancer Service, for clouds the operator does not know.
    /// Those that make a load balancer internal are the operator's while `internal` is true.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What happens to data when the MongoCluster is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the volumes and Secrets; a new cluster of the same name picks them up again.
    #[default]
    Retain,
    /// Delete the volumes and Secrets with the cluster. The data is gone.
    Delete,
}

/// How the cluster's data is created.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapSpec {
    /// Create the cluster from a backup instead of empty.
    pub from_backup: FromBackupSpec,
}

/// The backup a new cluster is created from: a MongoBackup by name, or a stored backup by its
/// location when the MongoBackup object is gone (for example in another Kubernetes cluster).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.backupName) != has(self.location)")
    .message("bootstrap.fromBackup needs exactly one of backupName or location")
    .reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("!has(self.location) || has(self.encryptionKeySecretRef) || has(self.checksum)")
    .message("bootstrap.fromBackup.location needs encryptionKeySecretRef or checksum: whoever can write to the bucket could otherwise put any archive there")
    .reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.pointInTime) || has(self.backupName) || has(self.encryptionKeySecretRef)")
    .message("bootstrap.fromBackup.pointInTime needs backupName (the MongoBackup schedule whose spec.pitr archives the oplog), or location with encryptionKeySecretRef: the key is what vouches for the base and the oplog the restore picks")
    .reason(Reason::FieldValueRequired))]
#[serde(rename_all = "camelCase")]
pub struct FromBackupSpec {
    /// Name of a succeeded MongoBackup in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub backup_name: Option<String>,
    /// Where a backup is stored, when there is no MongoBackup object for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<BackupLocation>,
    /// Secret key holding the passphrase of an encrypted backup. Needed with `location`; with
    /// `backupName` the MongoBackup's own `encryption.keySecretRef` is used when this is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key_secret_ref: Option<SecretKeyReference>,
    /// The stored archive's checksum, "sha256:<hex>", as the backup's MongoBackup showed it
    /// (`status.checksum`). A restore by `location` needs this or `encryptionKeySecretRef`:
    /// the manifest in the bucket is believed only as far as one of them vouches for it.
    /// With `backupName` the MongoBackup's own status is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^sha256:[0-9a-f]{64}$"))]
    pub checksum: Option<String>,
    /// Keep the users and passwords the backup holds. By default the restored cluster has
    /// only its own users (those of `spec.users` and the operator's): every other user the
    /// backup brings is dropped once the restore is done, so that a copy of production does
    /// not keep production's credentials. User-defined roles are always kept.
    #[serde(default)]
    pub keep_source_users: bool,
    /// Restore to a point in time: `latest` (every archived write), or an RFC 3339 time to the
    /// second, such as `2026-12-05T10:15:00Z`. Every write made before that second is restored
    /// and none made at or after it (exclusive, as `mongorestore --oplogLimit` applies it).
    /// `backupName` then names the MongoBackup schedule whose `spec.pitr` archives the oplog;
    /// or, when that object is gone (another Kubernetes cluster), `location` names the source
    /// cluster's directory in one destination (`path: <prefix>/<cluster>`), with
    /// `encryptionKeySecretRef`. The restore takes the newest base backup there that ends
    /// before the target and replays the archived oplog up to it. A target outside every
    /// restorable range is refused with the ranges there are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(latest|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2}))$"
    ))]
    pub point_in_time: Option<String>,
    /// CPU and memory of the restore Job's container. Unset: requests 250m CPU and 256Mi,
    /// memory limit 1Gi. More CPU makes decryption, decompression and mongorestore faster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::common::resources_schema")]
    pub resources: Option<ResourceRequirements>,
}

/// Observed state of a MongoCluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MongoClusterStatus {
    /// One-word summary for people; tools should read `conditions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ClusterPhase>,
    /// `Ready`, `Progressing` and `Degraded`, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Every member as the replica set reports it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberStatus>,
    /// The member that is primary now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// Members that are PRIMARY or SECONDARY and whose Pods are ready.
    #[serde(default)]
    pub ready_members: i32,
    /// The MongoDB version every member runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The replica set's featureCompatibilityVersion, read from the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_compatibility_version: Option<String>,
    /// When every member started running `version`'s release: the soak time before the
    /// featureCompatibilityVersion is raised counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_since: Option<Time>,
    /// What happens to the featureCompatibilityVersion next, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_compatibility_message: Option<String>,
    /// How applications connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionStatus>,
    /// TLS as the members run it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<super::TlsStatus>,
    /// The PodMonitor the operator keeps for the members (`spec.monitoring.podMonitor`).
    /// Written as null when there is none, so that the status's merge patch clears it.
    #[serde(default)]
    pub pod_monitor: Option<String>,
    /// The restore of `spec.bootstrap.fromBackup`, for a cluster created from a backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreStatus>,
    /// The answer to the last step-down request (the `mongo.operator.rs/step-down` annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_down: Option<StepDownStatus>,
}

/// What the operator did with a step-down request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepDownStatus {
    /// The request answered: the annotation's value.
    pub request: String,
    /// What came of it.
    pub result: StepDownResult,
    /// What was done, or why not.
    pub message: String,
    /// When it was answered.
    pub time: Time,
}

/// What came of a step-down request.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum StepDownResult {
    /// The member stepped down; another member is elected.
    SteppedDown,
    /// The member named was not the primary (any more): nothing was done.
    NotPrimary,
    /// No other member can become primary (a single member, or no other electable member).
    Refused,
}

/// Where the restore of a cluster created from a backup is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// Pending (waiting for the members or for an input), Running, Succeeded or Failed.
    pub phase: RestorePhase,
    /// The backup restored: the MongoBackup's name, or the manifest's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The Job that restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// When the Job was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the restore finished, successfully or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// SHA-256 of the archive, verified before anything was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// What is happening, or why it failed. To retry a failed restore, fix the cause and delete
    /// the restore Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For a restore to a point in time: the target as resolved, the base backup and the
    /// archived oplog replayed on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<RestoredPointInTime>,
}

/// What a restore to a point in time did.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoredPointInTime {
    /// `spec.bootstrap.fromBackup.pointInTime` as asked.
    pub target: String,
    /// The second before which every write was restored and none after: for `latest`, the
    /// second of the last archived entry's limit.
    pub resolved: Time,
    /// The exclusive limit given to `mongorestore --oplogLimit`, `<seconds>:<increment>`.
    pub oplog_limit: String,
    /// The base backup restored first.
    pub base_backup: String,
    /// Archived oplog entries replayed after the base (no-ops included).
    pub entries_replayed: u64,
    /// How many archived chunks they came from.
    pub chunks: u64,
}

/// Phase of a restore.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RestorePhase {
    /// Waiting for the replica set or for an input (the MongoBackup, a Secret).
    #[default]
    Pending,
    /// The restore Job runs.
    Running,
    /// The backup was verified and applied.
    Succeeded,
    /// The restore failed; `message` says why.
    Failed,
}

/// One-word summary of a cluster's state.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ClusterPhase {
    /// Objects are being created; the replica set does not exist yet.
    Creating,
    /// Every member is healthy and the spec is fully applied.
    Ready,
    /// A change is being rolled out (scale, restart, upgrade).
    Updating,
    /// Serving, but something needs attention; see the Degraded condition.
    Degraded,
    /// `spec.paused` is true: nothing is changed.
    Paused,
    /// The spec cannot be applied; see the Degraded condition.
    Failed,
}

/// One replica-set member as observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// The member's Pod name.
    pub name: String,
    /// Replica-set state, for example PRIMARY, SECONDARY, STARTUP2 or (not in set).
    pub state: String,
    /// Whether the member answers heartbeats.
    pub healthy: bool,
    /// How far the member's last applied operation is behind the primary's, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<i64>,
    /// Whether the member votes in elections.
    #[serde(default)]
    pub voting: bool,
    /// Its priority in the replica-set config: the higher, the likelier it is elected; 0 never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<f64>,
    /// What the replica-set config makes of it. Unset for a Pod not in the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<MemberRole>,
}

/// What a member is for, as its replica-set config entry says.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MemberRole {
    /// Votes and can become primary.
    Electable,
    /// Votes, holds data, never becomes primary (priority 0); clients see it.
    Passive,
    /// Holds data, does not vote, never becomes primary.
    NonVoting,
    /// Holds data, never becomes primary, and clients do not see it (`hidden`).
    Hidden,
    /// Hidden and applies the oplog a set time late (`secondaryDelaySecs`).
    Delayed,
    /// Votes and holds no data.
    Arbiter,
}

/// How applications connect.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    /// Host name of the client Service.
    pub host: String,
    /// MongoDB port.
    pub port: i32,
    /// Secret with the administrative connection string (`connectionString.standard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// The members' external `host:port` as the replica set announces them to clients outside
    /// Kubernetes (`expose.perMember`), in member order; empty when none is announced.
    #[serde(default)]
    pub external_hosts: Vec<String>,
    /// The last time this block changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<Time>,
}
