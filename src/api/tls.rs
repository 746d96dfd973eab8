//! `spec.tls` and `status.tls` of a MongoCluster: encrypted traffic to and between members.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An annotation of a MongoCluster whose new value asks the operator to renew the cluster's CA
/// now (after a key was exposed, or by policy), through the same bundle a scheduled renewal
/// goes through. Any value; each new value renews once.
pub const RENEW_CA_ANNOTATION: &str = "mongo.operator.rs/renew-ca";

/// mongod's `net.tls.mode`, in the order a running cluster moves through them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub enum TlsMode {
    /// No TLS at all.
    Disabled,
    /// Members accept TLS and plain connections, and talk to each other in plain text.
    Allow,
    /// Members accept both, and talk to each other over TLS.
    Prefer,
    /// Members accept TLS connections only (the default).
    #[default]
    Require,
}

impl TlsMode {
    /// The value of mongod's `net.tls.mode` and of its `tlsMode` server parameter.
    pub fn mongod(self) -> &'static str {
        match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Allow => "allowTLS",
            TlsMode::Prefer => "preferTLS",
            TlsMode::Require => "requireTLS",
        }
    }

    /// The mode a `tlsMode` parameter value names (mongod also answers the older `sslMode`
    /// spellings to `getParameter sslMode`, never to `tlsMode`).
    pub fn from_mongod(value: &str) -> Option<TlsMode> {
        [TlsMode::Disabled, TlsMode::Allow, TlsMode::Prefer, TlsMode::Require].into_iter().find(|m| m.mongod() == value)
    }

    /// Whether members with this mode accept TLS connections.
    pub fn on(self) -> bool {
        self != TlsMode::Disabled
    }
}

/// How members prove to each other that they belong to the set. Only the keyFile today; x509
/// membership certificates would be a second value.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MemberAuthentication {
    /// The shared keyFile in the cluster's internal Secret.
    #[default]
    KeyFile,
}

/// Encrypted traffic: clients, members, the operator, probes and backup Jobs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.mode != 'Disabled' || !has(self.certificateSecretRef)")
        .message("tls.certificateSecretRef is only used when tls.mode is not Disabled")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("self.mode != 'Disabled' || !has(self.issuerRef)")
        .message("tls.issuerRef is only used when tls.mode is not Disabled")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.issuerRef) || !has(self.certificateSecretRef)")
        .message("tls.issuerRef and tls.certificateSecretRef are two sources of one certificate: give one")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.issuerRef) || self.certificateLifetime.matches('^[1-9][0-9]*[hd]$')")
        .message("with tls.issuerRef, tls.certificateLifetime is in hours or days: cert-manager refuses lives under an hour")
        .reason(Reason::FieldValueInvalid),
)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// `Require` (the default): TLS only. `Prefer` and `Allow` also accept plain connections
    /// (members talk to each other over TLS with `Prefer`, in plain text with `Allow`).
    /// `Disabled`: no TLS. A running cluster moves one mode at a time without downtime: up
    /// from Allow at run time, the other moves by rolling restarts.
    #[serde(default)]
    pub mode: TlsMode,
    /// A `kubernetes.io/tls` Secret with `tls.crt`, `tls.key` and `ca.crt` (what cert-manager
    /// writes) for the members, instead of certificates the operator issues. It must be valid
    /// for every member's DNS name; a renewed Secret is followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_secret_ref: Option<LocalObjectReference>,
    /// A cert-manager issuer for the members' certificate: the operator writes a cert-manager
    /// `Certificate` for the cluster (every member's name, `localhost`, `127.0.0.1`, the
    /// lifetime and renewal point below) and uses the Secret cert-manager writes, following
    /// each renewal. Needs cert-manager installed; a condition says so when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
    /// The life of certificates the operator issues: a number followed by s, m, h or d, "90d"
    /// by default (the cluster's CA lives ten times as long). Lives of minutes are for seeing
    /// renewal happen, not for production.
    #[serde(default = "default_lifetime")]
    #[schemars(regex(pattern = r"^[0-9]{1,5}[smhd]$"))]
    pub certificate_lifetime: String,
    /// How far into its life an operator-issued certificate is renewed, in percent (66 by
    /// default: a 90-day certificate is renewed after about 60 days). The cluster's CA is
    /// renewed as far into its own life. A certificate from `certificateSecretRef` that is
    /// this far into its life and not renewed raises the `TlsCertificateExpiring` condition.
    #[serde(default = "default_renew_at")]
    #[schemars(range(min = 10, max = 90))]
    pub renew_at_percent: i32,
    /// How members authenticate to each other.
    #[serde(default)]
    pub member_authentication: MemberAuthentication,
}

fn default_lifetime() -> String {
    "90d".to_string()
}

fn default_renew_at() -> i32 {
    66
}

impl Default for TlsSpec {
    fn default() -> Self {
        TlsSpec {
            mode: TlsMode::default(),
            certificate_secret_ref: None,
            issuer_ref: None,
            certificate_lifetime: default_lifetime(),
            renew_at_percent: default_renew_at(),
            member_authentication: MemberAuthentication::default(),
        }
    }
}

/// A cert-manager issuer, as a cert-manager `Certificate` names it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// The issuer's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `Issuer` (in the cluster's namespace, the default) or `ClusterIssuer`, or the kind of an
    /// external issuer.
    #[serde(default = "default_issuer_kind")]
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// The issuer's API group: `cert-manager.io` by default.
    #[serde(default = "default_issuer_group")]
    #[schemars(length(min = 1, max = 253))]
    pub group: String,
}

fn default_issuer_kind() -> String {
    "Issuer".to_string()
}

fn default_issuer_group() -> String {
    "cert-manager.io".to_string()
}

/// TLS as it is on the members.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsStatus {
    /// The mode every member runs with.
    pub mode: TlsMode,
    /// The move toward `spec.tls.mode` under way, if any. Written as null when there is none,
    /// so that the status's merge patch clears the last one.
    #[serde(default)]
    pub step: Option<String>,
    /// When the members' certificate expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_not_after: Option<Time>,
    /// When the CA that signed it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_not_after: Option<Time>,
    /// The SHA-256 fingerprint of the certificate every member was last seen presenting (null
    /// while some present another).
    #[serde(default)]
    pub served_certificate: Option<String>,
}
