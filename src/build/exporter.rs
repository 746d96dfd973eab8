//! The metrics exporter next to each member: `percona/mongodb_exporter`, reading its own
//! mongod over localhost as the cluster's monitoring user, serving port 9216 named `metrics`
//! (the port a `NetworkPolicyAttachment` opens with `ports: [metrics]`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, Probe, ResourceRequirements,
    SecretKeySelector, SecretVolumeSource, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::ClusterNames;
use super::network_policy::METRICS_PORT_NAME;
use super::statefulset::{mount, restricted};
use super::tls_secrets::CA_CRT;
use crate::api::{DEFAULT_EXPORTER_IMAGE, MongoClusterSpec};
use crate::replset::config::MONGODB_PORT;

/// The exporter's port.
pub const METRICS_PORT: u16 = 9216;
/// The monitoring user: `clusterMonitor` on admin and `read` on local, nothing else.
pub const MONITOR_USER: &str = "mongo-operator-monitor";
/// The key of the internal Secret holding its password.
pub const MONITOR_PASSWORD_KEY: &str = "monitor-password";
/// Where the exporter finds the cluster's CA bundle: the members' Secret's `ca.crt` alone (the
/// exporter never sees the members' key), as a whole volume so a CA renewal reaches it.
pub const CA_DIR: &str = "/etc/mongo-exporter-ca";
/// The volume of that.
pub const CA_VOLUME: &str = "exporter-ca";

/// The collectors that matter, named explicitly (the exporter serves almost nothing without
/// them): replica-set status and its members, the server's diagnostic data (serverStatus,
/// replSetGetStatus and oplog statistics), the featureCompatibilityVersion, and the older
/// metric names (`--compatible-mode`), which carry the oplog window. Collection discovery
/// (`--collect-all`, `--discovering-mode`, collstats, indexstats) stays off unless asked for:
/// it lists every collection at each scrape.
pub const COLLECTORS: &[&str] =
    &["--collector.diagnosticdata", "--collector.replicasetstatus", "--collector.fcv", "--compatible-mode"];

/// The exporter container, when `spec.monitoring.exporter.enabled`.
pub fn container(names: &ClusterNames, spec: &MongoClusterSpec, tls_on: bool) -> Option<Container> {
    let exporter = &spec.monitoring.exporter;
    if !exporter.enabled {
        return None;
    }
    // The credentials come from the environment (MONGODB_USER, MONGODB_PASSWORD), never the
    // command line, where `ps` shows them. The database in the path is the auth source.
    let mut uri = format!("mongodb://localhost:{MONGODB_PORT}/admin?directConnection=true");
    if tls_on {
        // `localhost` is one of the names every members' certificate covers.
        uri.push_str(&format!("&tls=true&tlsCAFile={CA_DIR}/{CA_CRT}"));
    }
    let mut args = vec![format!("--mongodb.uri={uri}"), format!("--web.listen-address=:{METRICS_PORT}")];
    args.extend(COLLECTORS.iter().map(|c| c.to_string()));
    args.extend(exporter.extra_args.iter().cloned());
    let env = vec![
        EnvVar { name: "MONGODB_USER".into(), value: Some(MONITOR_USER.into()), value_from: None },
        EnvVar {
            name: "MONGODB_PASSWORD".into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: names.internal_secret(),
                    key: MONITOR_PASSWORD_KEY.into(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
        },
    ];
    let port = IntOrString::String(METRICS_PORT_NAME.into());
    Some(Container {
        name: "exporter".into(),
        image: Some(exporter.image.clone().unwrap_or_else(|| DEFAULT_EXPORTER_IMAGE.to_string())),
        args: Some(args),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some(METRICS_PORT_NAME.into()),
            container_port: i32::from(METRICS_PORT),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        resources: Some(exporter.resources.clone().unwrap_or_else(default_resources)),
        // Restarted when its HTTP server stops answering. No readiness probe: the Pod's
        // readiness is mongod's alone, and an exporter that cannot reach mongod still answers
        // (with `mongodb_up 0`, which is what the alerts look at).
        liveness_probe: Some(Probe {
            http_get: Some(HTTPGetAction { path: Some("/".into()), port, ..HTTPGetAction::default() }),
            period_seconds: Some(30),
            timeout_seconds: Some(5),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        volume_mounts: tls_on.then(|| vec![mount(CA_VOLUME, CA_DIR, true)]),
        security_context: Some(restricted()),
        ..Container::default()
    })
}

/// The volume with the CA bundle alone, when the exporter runs with TLS on.
pub fn ca_volume(names: &ClusterNames) -> Volume {
    Volume {
        name: CA_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(names.tls_secret()),
            items: Some(vec![KeyToPath { key: CA_CRT.into(), path: CA_CRT.into(), mode: None }]),
            default_mode: Some(0o444),
            optional: Some(false),
        }),
        ..Volume::default()
    }
}

fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity("20m".into())),
            ("memory".into(), Quantity("32Mi".into())),
        ])),
        limits: Some(BTreeMap::from([("memory".into(), Quantity("128Mi".into()))])),
        ..ResourceRequirements::default()
    }
}

/// The Pod template annotations for Prometheus without the Prometheus Operator.
pub fn scrape_annotations(spec: &MongoClusterSpec) -> BTreeMap<String, String> {
    if !spec.monitoring.exporter.enabled {
        return BTreeMap::new();
    }
    BTreeMap::from([
        ("prometheus.io/scrape".to_string(), "true".to_string()),
        ("prometheus.io/port".to_string(), METRICS_PORT.to_string()),
        ("prometheus.io/path".to_string(), "/metrics".to_string()),
    ])
}
