//! `spec.monitoring` of a MongoCluster: the metrics exporter next to every member, and how
//! Prometheus finds it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The exporter image when `spec.monitoring.exporter.image` names none: the version the
/// tests build and scrape (`e2e/tools.sh mongodb-exporter`), whose metric names the alert
/// rules and the dashboard use.
pub const DEFAULT_EXPORTER_IMAGE: &str = "percona/mongodb_exporter:0.51.0";

/// Metrics of the members, for Prometheus.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(
    validation = Rule::new("!has(self.podMonitor) || !has(self.podMonitor.enabled) || !self.podMonitor.enabled || !has(self.exporter) || !has(self.exporter.enabled) || self.exporter.enabled")
        .message("monitoring.podMonitor needs monitoring.exporter: without it there is nothing to scrape")
        .reason(Reason::FieldValueForbidden),
)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// The metrics exporter that runs next to every member (on by default).
    #[serde(default)]
    pub exporter: ExporterSpec,
    /// A Prometheus Operator `PodMonitor` for the cluster's members (off by default).
    #[serde(default)]
    pub pod_monitor: PodMonitorSpec,
}

/// `percona/mongodb_exporter` as a sidecar of each member: it reads its own mongod over
/// localhost as the cluster's monitoring user, and serves port 9216, named `metrics`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("!has(self.extraArgs) || self.extraArgs.all(a, !a.startsWith('--mongodb.uri') && !a.startsWith('--web.listen-address') && !a.startsWith('--mongodb.user') && !a.startsWith('--mongodb.password'))")
        .message("monitoring.exporter.extraArgs must not set --mongodb.uri, --mongodb.user, --mongodb.password or --web.listen-address: the operator sets them (the credentials stay out of the command line)")
        .reason(Reason::FieldValueForbidden),
)]
#[serde(rename_all = "camelCase")]
pub struct ExporterSpec {
    /// Whether the exporter runs. Turning it off or on restarts the members one at a time.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The exporter's image (a mirror, or another version): `percona/mongodb_exporter:0.51.0`
    /// by default. The alert rules and the dashboard use that version's metric names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// CPU and memory for the exporter: 20m and 32Mi requested, 128Mi limit by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// More arguments, for example `--collector.dbstats` or `--collect-all` with
    /// `--collector.collstats-limit=200` (collection discovery is costly with many collections,
    /// so it is off by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub extra_args: Vec<String>,
}

impl Default for ExporterSpec {
    fn default() -> Self {
        ExporterSpec { enabled: true, image: None, resources: None, extra_args: Vec::new() }
    }
}

fn default_true() -> bool {
    true
}

/// The `PodMonitor` (`monitoring.coreos.com/v1`) the operator keeps for the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitorSpec {
    /// Whether the operator keeps one. It needs the Prometheus Operator's CRDs; a condition
    /// says so when they are missing. The Helm chart can instead install one `PodMonitor` for
    /// every cluster.
    #[serde(default)]
    pub enabled: bool,
    /// Labels of the PodMonitor, for a Prometheus that selects monitors by label (for example
    /// `release: kube-prometheus-stack`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// How often Prometheus scrapes the members (its own default when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub interval: Option<String>,
}
