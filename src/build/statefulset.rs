//! The members' StatefulSet, following `mongod-pod-facts.md` point by point (the numbers in
//! comments are its §9 checklist).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, ExecAction,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext,
    TopologySpreadConstraint, Volume, VolumeMount, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube_quantity::ParsedQuantity;

use super::labels::{arbiter_selector, labels, selector};
use super::names::ClusterNames;
use crate::api::{AntiAffinity, DeletionPolicy, MongoClusterSpec};
use crate::replset::config::MONGODB_PORT;

/// uid and gid of the `mongodb` user in the official image (1).
pub const MONGODB_UID: i64 = 999;
pub const DATA_DIR: &str = "/data/db";
pub const KEY_FILE_DIR: &str = "/var/lib/mongo-auth";
pub const KEY_FILE: &str = "/var/lib/mongo-auth/keyfile";
pub const KEY_FILE_SRC_DIR: &str = "/var/run/mongo-keyfile";
/// The key holding the keyFile in the internal Secret.
pub const KEY_FILE_SECRET_KEY: &str = "keyfile";
pub const CONFIG_DIR: &str = "/etc/mongod";
pub const BIN_DIR: &str = "/opt/mongo-operator/bin";
pub const CONFIG_HASH_ANNOTATION: &str = "mongo.operator.rs/config-hash";
/// Where the members' TLS Secret is mounted (the whole Secret, no `subPath`, so a renewed
/// certificate reaches the files of a running Pod).
pub const TLS_DIR: &str = "/etc/mongod-tls";
/// The Pod template annotation with the TLS restart token: the mode members start in and the
/// generation that asked for it; a new token rolls the members.
pub const TLS_RESTART_ANNOTATION: &str = "mongo.operator.rs/tls-restart";
/// The Pod template annotation with the digest of the monitoring user's password.
pub const EXPORTER_CREDENTIALS_ANNOTATION: &str = "mongo.operator.rs/exporter-credentials";
/// Resources when the spec gives none: memory request = limit, a 2 Gi limit for a 0.5 GB cache.
pub const DEFAULT_MEMORY: &str = "2Gi";
pub const DEFAULT_CPU: &str = "500m";
/// The arbiter's resources when the spec gives none: mongod with a 0.25 GB cache and no data.
pub const ARBITER_MEMORY: &str = "512Mi";
pub const ARBITER_CPU: &str = "100m";
/// Grace for mongod's own shutdown: step-down and quiesce (15 s), closing (10 s), checkpoint (21).
pub const TERMINATION_GRACE_SECONDS: i64 = 60;

/// What the StatefulSet needs besides the spec.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    pub names: &'a ClusterNames,
    pub spec: &'a MongoClusterSpec,
    pub owner: &'a OwnerReference,
    /// The operator's own image, for the init container that copies the binary and keyFile.
    pub operator_image: &'a str,
    /// Hash of the rendered mongod.conf (25).
    pub config_hash: &'a str,
    /// Pods to run: `spec.members`, or more while members above it are still in the replica
    /// set (a member leaves the set before its Pod goes).
    pub replicas: i32,
    /// The TLS restart token of the template.
    pub tls_token: &'a str,
    /// Whether members start with TLS on (their certificate mounted, the probes speaking TLS).
    pub tls_on: bool,
    /// A digest of the monitoring user's password: the exporter reads it from its environment
    /// at start, so a new password restarts the members (one at a time).
    pub exporter_credentials: &'a str,
}

/// The image mongod runs: the user's, or the official `mongo:<version>`.
pub fn mongod_image(spec: &MongoClusterSpec) -> String {
    spec.image.clone().unwrap_or_else(|| format!("mongo:{}", spec.version))
}

/// What every Pod of a cluster shares, the members' and its backup and restore Jobs': the
/// nodes it may run on (`scheduling.nodeSelector` and `tolerations`; affinity and spread are
/// the members' own), how its images are pulled, running as the mongodb user under the
/// RuntimeDefault seccomp profile, and no API token or service links.
pub fn cluster_pod_base(spec: &MongoClusterSpec) -> PodSpec {
    PodSpec {
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(MONGODB_UID),
            run_as_group: Some(MONGODB_UID),
            fs_group: Some(MONGODB_UID),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }),
            ..PodSecurityContext::default()
        }),
        node_selector: (!spec.scheduling.node_selector.is_empty()).then(|| spec.scheduling.node_selector.clone()),
        tolerations: (!spec.scheduling.tolerations.is_empty()).then(|| spec.scheduling.tolerations.clone()),
        image_pull_secrets: (!spec.image_pull_secrets.is_empty()).then(|| spec.image_pull_secrets.clone()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        ..PodSpec::default()
    }
}

/// Resources of the mongod container, with the memory request set to the limit (8).
pub fn resources(spec: &MongoClusterSpec) -> ResourceRequirements {
    with_defaults(spec.resources.as_ref(), DEFAULT_CPU, DEFAULT_MEMORY)
}

/// Resources of the arbiter's mongod: it keeps no data, so its cache is the smallest.
pub fn arbiter_resources(spec: &MongoClusterSpec) -> ResourceRequirements {
    with_defaults(spec.arbiter.resources.as_ref(), ARBITER_CPU, ARBITER_MEMORY)
}

fn with_defaults(given: Option<&ResourceRequirements>, cpu: &str, memory: &str) -> ResourceRequirements {
    let mut r = given.cloned().unwrap_or_else(|| ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), Quantity(memory.into()))])),
        ..ResourceRequirements::default()
    });
    if let Some(limit) = r.limits.as_ref().and_then(|l| l.get("memory")).cloned() {
        r.requests.get_or_insert_with(BTreeMap::new).entry("memory".into()).or_insert(limit);
    }
    r
}

/// `max(0.25, 0.5 × (memory limit − 1 GiB))` in GB, two decimals (11); None without a limit.
pub fn wired_tiger_cache_gb(resources: &ResourceRequirements) -> Option<f64> {
    let limit = resources.limits.as_ref()?.get("memory")?;
    let bytes = ParsedQuantity::try_from(limit).ok()?.to_bytes_f64()?;
    let gib = 1024.0 * 1024.0 * 1024.0;
    let cache = (0.5 * (bytes - gib) / gib).max(0.25);
    Some((cache * 100.0).floor() / 100.0)
}

/// The container security context every container the operator builds runs with.
pub fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Capabilities::default() }),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        ..SecurityContext::default()
    }
}

/// A volume mount.
pub fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str, memory: bool) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: memory.then(|| "Memory".to_string()),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn probe(kind: &str, period: i32, failures: i32, tls_on: bool) -> Probe {
    let mut command =
        vec![format!("{BIN_DIR}/mongo-operator"), "probe".into(), kind.into(), "--timeout-ms".into(), "4000".into()];
    if tls_on {
        // Over TLS to `localhost`, a name the members' certificate is valid for, checked
        // against the cluster's CAs: a member presenting a wrong certificate is not ready.
        command.extend(["--tls-ca-file".into(), format!("{TLS_DIR}/{}", super::tls_secrets::CA_CRT)]);
    }
    Probe {
        exec: Some(ExecAction { command: Some(command) }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// mongod's command line: identity flags here, tunables in the config file (4.4, 8-11, 15).
pub fn mongod_command(names: &ClusterNames, resources: &ResourceRequirements) -> Vec<String> {
    let mut cmd = vec![
        "mongod".to_string(),
        "--config".into(),
        format!("{CONFIG_DIR}/{}", super::mongod_conf::FILE_NAME),
        "--replSet".into(),
        names.replica_set(),
        "--bind_ip_all".into(),
        "--port".into(),
        MONGODB_PORT.to_string(),
        "--dbpath".into(),
        DATA_DIR.into(),
        "--keyFile".into(),
        KEY_FILE.into(),
    ];
    if let Some(gb) = wired_tiger_cache_gb(resources) {
        cmd.push("--wiredTigerCacheSizeGB".into());
        cmd.push(format!("{gb:.2}"));
    }
    cmd
}

fn scheduling(
    names: &ClusterNames,
    spec: &MongoClusterSpec,
) -> (Option<Affinity>, Option<Vec<TopologySpreadConstraint>>) {
    let members = LabelSelector { match_labels: Some(selector(&names.cluster)), ..LabelSelector::default() };
    let affinity = spec.scheduling.affinity.clone().or_else(|| {
        let term = PodAffinityTerm {
            label_selector: Some(members.clone()),
            topology_key: "kubernetes.io/hostname".into(),
            ..PodAffinityTerm::default()
        };
        let anti = match spec.scheduling.pod_anti_affinity {
            AntiAffinity::Required => PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![term]),
                ..PodAntiAffinity::default()
            },
            AntiAffinity::Preferred => PodAntiAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: term,
                }]),
                ..PodAntiAffinity::default()
            },
        };
        Some(Affinity { pod_anti_affinity: Some(anti), ..Affinity::default() })
    });
    let spread = if spec.scheduling.topology_spread_constraints.is_empty() {
        vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "topology.kubernetes.io/zone".into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(members),
            ..TopologySpreadConstraint::default()
        }]
    } else {
        spec.scheduling.topology_spread_constraints.clone()
    };
    (affinity, Some(spread))
}

fn mongod_mounts(tls_on: bool) -> Vec<VolumeMount> {
    let mut mounts = vec![
        mount("data", DATA_DIR, false),
        mount("tmp", "/tmp", false),
        mount("keyfile", KEY_FILE_DIR, true),
        mount("config", CONFIG_DIR, true),
        mount("bin", BIN_DIR, true),
    ];
    if tls_on {
        mounts.push(mount("tls", TLS_DIR, true));
    }
    mounts
}

fn pod_volumes(names: &ClusterNames, tls_on: bool) -> Vec<Volume> {
    let mut volumes = vec![
        empty_dir("tmp", false),
        empty_dir("keyfile", true),
        empty_dir("bin", false),
        Volume {
            name: "keyfile-src".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names.internal_secret()),
                default_mode: Some(0o440),
                items: Some(vec![k8s_openapi::api::core::v1::KeyToPath {
                    key: KEY_FILE_SECRET_KEY.into(),
                    path: KEY_FILE_SECRET_KEY.into(),
                    mode: None,
                }]),
                optional: Some(false),
            }),
            ..Volume::default()
        },
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource { name: names.config_map(), ..ConfigMapVolumeSource::default() }),
            ..Volume::default()
        },
    ];
    if tls_on {
        volumes.push(Volume {
            name: "tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names.tls_secret()),
                // Readable by mongod through the Pod's fsGroup, by nobody else.
                default_mode: Some(0o440),
                optional: Some(false),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    volumes
}

/// Which of a cluster's two StatefulSets a template is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The data-bearing members, each with its volume.
    Members,
    /// The arbiter (`spec.arbiter`): no volume (its `dbpath` holds only the replica-set
    /// config, which it gets again from the members), no exporter (the members' exporters
    /// report its state from `replSetGetStatus`), its own resources.
    Arbiter,
}

fn template(i: &Inputs<'_>, role: Role) -> PodTemplateSpec {
    let (names, spec) = (i.names, i.spec);
    let install = Container {
        name: "install".into(),
        image: Some(i.operator_image.to_string()),
        command: Some(vec![
            "/mongo-operator".into(),
            "install".into(),
            "--bin-dir".into(),
            BIN_DIR.into(),
            "--key-file-src".into(),
            format!("{KEY_FILE_SRC_DIR}/{KEY_FILE_SECRET_KEY}"),
            "--key-file-dst".into(),
            KEY_FILE.into(),
        ]),
        volume_mounts: Some(vec![
            mount("bin", BIN_DIR, false),
            mount("keyfile", KEY_FILE_DIR, false),
            mount("keyfile-src", KEY_FILE_SRC_DIR, true),
        ]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), Quantity("10m".into())),
                ("memory".into(), Quantity("32Mi".into())),
            ])),
            limits: Some(BTreeMap::from([("memory".into(), Quantity("128Mi".into()))])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(restricted()),
        ..Container::default()
    };
    let resources = match role {
        Role::Members => resources(spec),
        Role::Arbiter => arbiter_resources(spec),
    };
    let mongod = Container {
        name: "mongod".into(),
        image: Some(mongod_image(spec)),
        command: Some(mongod_command(names, &resources)),
        ports: Some(vec![ContainerPort {
            name: Some("mongodb".into()),
            container_port: i32::from(MONGODB_PORT),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        resources: Some(resources),
        volume_mounts: Some(mongod_mounts(i.tls_on)),
        // The readiness probe passes for an arbiter (`arbiterOnly`) as for a secondary (18).
        readiness_probe: Some(probe("readiness", 10, 3, i.tls_on)),
        liveness_probe: Some(probe("liveness", 15, 6, i.tls_on)),
        // 10 s × 60 = 10 minutes for journal recovery after an unclean stop (20).
        startup_probe: Some(probe("startup", 10, 60, i.tls_on)),
        security_context: Some(restricted()),
        ..Container::default()
    };
    let (affinity, topology_spread_constraints) = scheduling(names, spec);
    let base = cluster_pod_base(spec);
    let exporter = match role {
        Role::Members => super::exporter::container(names, spec, i.tls_on),
        Role::Arbiter => None,
    };
    let mut volumes = pod_volumes(names, i.tls_on);
    if exporter.is_some() && i.tls_on {
        volumes.push(super::exporter::ca_volume(names));
    }
    if role == Role::Arbiter {
        volumes.push(empty_dir("data", false));
    }
    let mut annotations = BTreeMap::from([
        (CONFIG_HASH_ANNOTATION.to_string(), i.config_hash.to_string()),
        (TLS_RESTART_ANNOTATION.to_string(), i.tls_token.to_string()),
    ]);
    if exporter.is_some() {
        annotations.insert(EXPORTER_CREDENTIALS_ANNOTATION.to_string(), i.exporter_credentials.to_string());
        annotations.extend(super::exporter::scrape_annotations(spec));
    }
    let mut pod_labels = labels(&names.cluster, "database");
    if role == Role::Arbiter {
        pod_labels.extend(arbiter_selector(&names.cluster));
    }
    let pod = PodSpec {
        init_containers: Some(vec![install]),
        containers: std::iter::once(mongod).chain(exporter).collect(),
        volumes: Some(volumes),
        // Only the members have a volume to chown; skip it when its root is already theirs.
        security_context: base
            .security_context
            .clone()
            .map(|s| PodSecurityContext { fs_group_change_policy: Some("OnRootMismatch".into()), ..s }),
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
        affinity,
        topology_spread_constraints,
        priority_class_name: spec.scheduling.priority_class_name.clone(),
        ..base
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(pod),
    }
}

pub fn build(i: &Inputs<'_>) -> StatefulSet {
    let (names, spec) = (i.names, i.spec);
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(labels(&names.cluster, "database")),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), Quantity(spec.storage.size.clone()))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    };
    let on_delete = match spec.deletion_policy {
        DeletionPolicy::Retain => "Retain",
        DeletionPolicy::Delete => "Delete",
    };
    StatefulSet {
        metadata: super::owned_meta(names, names.statefulset(), i.owner),
        spec: Some(StatefulSetSpec {
            replicas: Some(i.replicas),
            service_name: Some(names.headless_service()),
            selector: LabelSelector { match_labels: Some(selector(&names.cluster)), ..LabelSelector::default() },
            // All members start together: initiation needs every one of them to answer.
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(on_delete_strategy()),
            // Scaling down keeps volumes; deleting the cluster keeps them unless the user asked.
            persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_scaled: Some("Retain".into()),
                when_deleted: Some(on_delete.into()),
            }),
            template: template(i, Role::Members),
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

/// The arbiter's StatefulSet: one Pod, `<cluster>-arbiter-0`, named by the members' headless
/// Service, restarted by the operator in the members' rolling order (`OnDelete`).
/// `i.replicas` is ignored: there is one arbiter.
/// `tls_key` ([`arbiter_tls_key`]) restarts it where the members are told at run time.
pub fn arbiter(i: &Inputs<'_>, tls_key: &str) -> StatefulSet {
    let names = i.names;
    let mut template = template(i, Role::Arbiter);
    if let Some(annotations) = template.metadata.as_mut().and_then(|m| m.annotations.as_mut()) {
        annotations.insert(ARBITER_TLS_ANNOTATION.to_string(), tls_key.to_string());
    }
    StatefulSet {
        metadata: super::owned_meta(names, names.arbiter_statefulset(), i.owner),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(names.headless_service()),
            selector: LabelSelector {
                match_labels: Some(arbiter_selector(&names.cluster)),
                ..LabelSelector::default()
            },
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(on_delete_strategy()),
            template,
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

/// The arbiter's Pod template annotation that restarts it for TLS: the mode mongod.conf names
/// and a digest of the certificate and CAs the members' Secret holds. The members move to the
/// next TLS mode and load a renewed certificate at run time (`setParameter tlsMode`,
/// `rotateCertificates`), commands that need a login, which no client gets on an arbiter (it
/// holds no users, and drivers do not try); the arbiter restarts instead, first in the rolling
/// order, and starts with mongod.conf's mode and the Secret's files.
pub const ARBITER_TLS_ANNOTATION: &str = "mongo.operator.rs/arbiter-tls";

/// The value of [`ARBITER_TLS_ANNOTATION`].
pub fn arbiter_tls_key(conf: crate::api::TlsMode, certificate: Option<&str>, ca_bundle: Option<&str>) -> String {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    digest.update(certificate.unwrap_or_default().as_bytes());
    digest.update(b"\n");
    digest.update(ca_bundle.unwrap_or_default().as_bytes());
    let digest: String = digest.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{}/{digest}", conf.mongod())
}

/// The operator restarts members itself, the arbiter and the secondaries first and the
/// primary last.
fn on_delete_strategy() -> StatefulSetUpdateStrategy {
    StatefulSetUpdateStrategy { type_: Some("OnDelete".into()), ..StatefulSetUpdateStrategy::default() }
}
