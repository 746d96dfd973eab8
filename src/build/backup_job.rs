//! The Job that runs `mongo-operator backup` or `restore`: the cluster's MongoDB image (it
//! carries mongodump and mongorestore) with the operator's binary copied in by an init
//! container, the plan in an environment variable, and exactly the secret keys the plan needs
//! projected as files. The Pod has no service-account token: it never talks to Kubernetes, and
//! reports its outcome in its termination message.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, KeyToPath, PodSpec, PodTemplateSpec, ProjectedVolumeSource,
    ResourceRequirements, SecretProjection, Volume, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::labels::labels;
use super::names::ClusterNames;
use super::statefulset::{BIN_DIR, cluster_pod_base, mongod_image, mount, restricted};
use crate::api::{Destination, MongoClusterSpec, SecretKeyReference};
use crate::backup::files::{self, DEFAULT_SECRETS_DIR, destination_file};
use crate::backup::plan::Source;

/// Where the container's termination message is written.
pub const TERMINATION_LOG: &str = "/dev/termination-log";
/// The component label of backup Jobs and their Pods.
pub const BACKUP_COMPONENT: &str = "backup";
/// The component label of restore Jobs and their Pods.
pub const RESTORE_COMPONENT: &str = "restore";
/// The component label of prune Jobs (a schedule's retention deleting stored copies).
pub const PRUNE_COMPONENT: &str = "prune";
/// How long a finished prune Job is kept: a failed one stands for this long before the next
/// attempt (the Job controller then deletes it and the schedule starts another).
pub const PRUNE_JOB_TTL_SECONDS: i32 = 600;
/// The label naming the MongoBackup (or restoring MongoCluster) a Job works for.
pub const FOR_LABEL: &str = "mongo.operator.rs/for";
/// Attempts per Job: a transient network failure gets two more chances.
pub const BACKOFF_LIMIT: i32 = 2;

/// One secret key, projected as a file under the secrets directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    pub secret: String,
    pub key: String,
    /// Relative to the secrets directory.
    pub path: String,
}

/// The user backup Jobs log in as: it has only the `backup` role.
pub const BACKUP_USER: &str = "mongo-operator-backup";
/// The user restore Jobs logged in as before they used `__system`; it is dropped where an
/// older operator created it.
pub const LEGACY_RESTORE_USER: &str = "mongo-operator-restore";

/// How a backup Job reaches the member it dumps: that member alone (a direct connection), so
/// that mongodump reads every collection and the oplog from one and the same member, as the
/// backup user. A replica-set connection with a read preference may read collections from one
/// secondary and the oplog from another, which is not a consistent dump.
pub fn member_source(host: &str) -> Source {
    Source::user(format!("mongodb://{host}/?directConnection=true"), BACKUP_USER)
}

/// How a restore Job reaches the set it fills: every member and the set's name, so its writes
/// go to the primary wherever it is, as `__system` (the keyFile's internal user). No built-in
/// role can replay an oplog (`applyOps` of updates and deletes needs more than `restore`), and
/// mongorestore restores the backup's users before its oplog with `_mergeAuthzCollections`
/// and `drop: true`, which removes every user the backup does not hold, the one it logged in
/// as included; `__system` is not a stored user and cannot be removed. The operator puts its
/// own users back afterwards.
pub fn set_target(hosts: &[String], set_name: &str) -> Source {
    Source {
        uri: format!("mongodb://{}/?replicaSet={set_name}", hosts.join(",")),
        username: Some(crate::mongo::SYSTEM_USER.to_string()),
        auth_source: crate::mongo::SYSTEM_USER_DB.to_string(),
        tls: false,
    }
}

/// [`set_target`] for a cluster's members.
pub fn restore_target(names: &ClusterNames, members: i32, cluster_domain: &str) -> Source {
    set_target(&names.member_hosts(members, cluster_domain), &names.replica_set())
}

/// The secret file of the CAs a Job verifies the members' certificate with.
pub fn members_ca_file(names: &ClusterNames) -> SecretFile {
    SecretFile {
        secret: names.tls_secret(),
        key: crate::build::tls_secrets::CA_CRT.into(),
        path: crate::backup::files::MONGODB_CA.into(),
    }
}

/// The secret files a destination's credentials need.
pub fn destination_files(destination: &Destination) -> Vec<SecretFile> {
    let dir = files::destination_dir(&destination.name);
    let file = |secret: &str, key: &str, name: &str| SecretFile {
        secret: secret.to_string(),
        key: key.to_string(),
        path: format!("{dir}/{name}"),
    };
    let from_ref = |r: &SecretKeyReference, name: &str| file(&r.name, &r.key, name);
    let mut out = Vec::new();
    if let Some(s3) = &destination.s3 {
        let c = &s3.credentials_secret_ref;
        out.push(file(&c.name, &c.access_key_id_key, destination_file::ACCESS_KEY_ID));
        out.push(file(&c.name, &c.secret_access_key_key, destination_file::SECRET_ACCESS_KEY));
        if let Some(ca) = &s3.ca_secret_ref {
            out.push(from_ref(ca, destination_file::CA));
        }
    }
    if let Some(gcs) = &destination.gcs {
        out.push(from_ref(&gcs.service_account_key_secret_ref, destination_file::SERVICE_ACCOUNT_KEY));
    }
    if let Some(azure) = &destination.azure {
        out.push(from_ref(&azure.access_key_secret_ref, destination_file::AZURE_ACCESS_KEY));
    }
    out
}

/// Everything a backup or restore Job is made of.
pub struct JobInputs<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub cluster: &'a str,
    /// [`BACKUP_COMPONENT`] or [`RESTORE_COMPONENT`].
    pub component: &'a str,
    /// `backup` or `restore`.
    pub subcommand: &'a str,
    /// The MongoBackup or MongoCluster the Job works for (its name goes in [`FOR_LABEL`]).
    pub for_name: &'a str,
    /// The cluster's spec: its MongoDB image (which carries mongodump and mongorestore), and
    /// where and how its Pods run ([`cluster_pod_base`]).
    pub spec: &'a MongoClusterSpec,
    pub operator_image: &'a str,
    pub plan_json: &'a str,
    pub secret_files: &'a [SecretFile],
    pub owner: &'a OwnerReference,
    /// The main container's CPU and memory, when the user set them.
    pub resources: Option<&'a ResourceRequirements>,
    /// Delete the Job this long after it finishes; None: it goes with its owner.
    pub ttl_seconds_after_finished: Option<i32>,
}

/// A Job name for `name` (a MongoBackup's or MongoCluster's) and a suffix, within the 63
/// characters of a label value (the Job's name is one on its Pods).
pub fn job_name(name: &str, suffix: &str) -> String {
    super::names::bounded(name, suffix)
}

/// The Job.
pub fn build(i: &JobInputs<'_>) -> Job {
    let template = pod_template(i, "Never");
    Job {
        metadata: ObjectMeta {
            name: Some(i.name.to_string()),
            namespace: Some(i.namespace.to_string()),
            labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
            owner_references: Some(vec![i.owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(BACKOFF_LIMIT),
            ttl_seconds_after_finished: i.ttl_seconds_after_finished,
            template,
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// The Pod of a data-path process (a backup, restore or prune Job's, or the oplog archiver's):
/// the operator's binary copied in by an init container and run in the cluster's MongoDB image
/// (which carries mongodump and mongorestore), its plan in the environment and its secrets as
/// read-only files, with the cluster's placement and a restricted security context.
pub fn pod_template(i: &JobInputs<'_>, restart_policy: &str) -> PodTemplateSpec {
    let mut labels = labels(i.cluster, i.component);
    labels.insert(FOR_LABEL.to_string(), truncate_label(i.for_name));
    let install = Container {
        name: "install".into(),
        image: Some(i.operator_image.to_string()),
        command: Some(vec!["/mongo-operator".into(), "install".into(), "--bin-dir".into(), BIN_DIR.into()]),
        volume_mounts: Some(vec![mount("bin", BIN_DIR, false)]),
        resources: Some(resources("10m", "32Mi", "128Mi")),
        security_context: Some(restricted()),
        ..Container::default()
    };
    let main = Container {
        name: i.subcommand.to_string(),
        image: Some(mongod_image(i.spec)),
        command: Some(vec![
            format!("{BIN_DIR}/mongo-operator"),
            i.subcommand.to_string(),
            "--result-file".into(),
            TERMINATION_LOG.into(),
        ]),
        env: Some(vec![
            env("MONGO_OPERATOR_PLAN", i.plan_json),
            env("MONGO_OPERATOR_SECRETS_DIR", DEFAULT_SECRETS_DIR),
            // mongodump and mongorestore are on the image's PATH; temporary files (the tools'
            // password file) go to the writable emptyDir.
            env("TMPDIR", "/tmp"),
        ]),
        volume_mounts: Some(vec![
            mount("bin", BIN_DIR, true),
            mount("secrets", DEFAULT_SECRETS_DIR, true),
            mount("tmp", "/tmp", false),
        ]),
        // The data path holds a few 8 MiB chunks; mongodump and mongorestore hold a batch of
        // documents. Neither grows with the database's size.
        resources: Some(i.resources.cloned().unwrap_or_else(|| resources("250m", "256Mi", "1Gi"))),
        security_context: Some(restricted()),
        termination_message_path: Some(TERMINATION_LOG.into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    };
    let mut by_secret: BTreeMap<&str, Vec<KeyToPath>> = BTreeMap::new();
    for f in i.secret_files {
        by_secret.entry(f.secret.as_str()).or_default().push(KeyToPath {
            key: f.key.clone(),
            path: f.path.clone(),
            mode: Some(0o400),
        });
    }
    let sources: Vec<VolumeProjection> = by_secret
        .into_iter()
        .map(|(secret, items)| VolumeProjection {
            secret: Some(SecretProjection { name: secret.to_string(), items: Some(items), optional: Some(false) }),
            ..VolumeProjection::default()
        })
        .collect();
    let empty =
        || Some(EmptyDirVolumeSource { size_limit: Some(Quantity("64Mi".into())), ..EmptyDirVolumeSource::default() });
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
        spec: Some(PodSpec {
            restart_policy: Some(restart_policy.into()),
            init_containers: Some(vec![install]),
            containers: vec![main],
            volumes: Some(vec![
                Volume { name: "bin".into(), empty_dir: empty(), ..Volume::default() },
                Volume { name: "tmp".into(), empty_dir: empty(), ..Volume::default() },
                Volume {
                    name: "secrets".into(),
                    projected: Some(ProjectedVolumeSource { sources: Some(sources), default_mode: Some(0o400) }),
                    ..Volume::default()
                },
            ]),
            ..cluster_pod_base(i.spec)
        }),
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..EnvVar::default() }
}

/// CPU and memory requests and a memory limit (no CPU limit: a data path that may use an idle
/// core should).
pub fn resources(cpu: &str, memory: &str, memory_limit: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity(cpu.into())),
            ("memory".into(), Quantity(memory.into())),
        ])),
        limits: Some(BTreeMap::from([("memory".into(), Quantity(memory_limit.into()))])),
        ..ResourceRequirements::default()
    }
}

/// A label value from a name: at most 63 characters, not ending in a separator.
pub fn truncate_label(value: &str) -> String {
    value.chars().take(63).collect::<String>().trim_end_matches(['-', '.', '_']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{S3CredentialsReference, S3Destination};
    use k8s_openapi::api::core::v1::LocalObjectReference;

    fn s3(name: &str) -> Destination {
        Destination {
            name: name.into(),
            s3: Some(S3Destination {
                bucket: "b".into(),
                prefix: None,
                endpoint: None,
                region: "eu-west-3".into(),
                force_path_style: false,
                credentials_secret_ref: S3CredentialsReference {
                    name: format!("{name}-keys"),
                    access_key_id_key: "id".into(),
                    secret_access_key_key: "secret".into(),
                },
                ca_secret_ref: Some(SecretKeyReference { name: "private-ca".into(), key: "ca.crt".into() }),
            }),
            gcs: None,
            azure: None,
        }
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "mongo.operator.rs/v1alpha1".into(),
            kind: "MongoBackup".into(),
            name: "nightly".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn the_job_projects_exactly_the_keys_the_plan_reads_and_has_no_token() {
        let mut secret_files = destination_files(&s3("ovh"));
        secret_files.push(SecretFile {
            secret: "orders-internal".into(),
            key: "backup-password".into(),
            path: files::MONGODB_PASSWORD.into(),
        });
        let job = build(&JobInputs {
            name: "nightly-backup",
            namespace: "shop",
            cluster: "orders",
            component: BACKUP_COMPONENT,
            subcommand: "backup",
            for_name: "nightly",
            spec: &serde_json::from_value(serde_json::json!({
                "version": "8.0.4",
                "imagePullSecrets": [{"name": "regcred"}],
                "scheduling": {
                    "nodeSelector": {"pool": "databases"},
                    "tolerations": [{"key": "dedicated", "value": "mongodb", "effect": "NoSchedule"}],
                },
            }))
            .expect("spec"),
            operator_image: "mongo-operator:0.1.0",
            plan_json: "{}",
            secret_files: &secret_files,
            owner: &owner(),
            resources: None,
            ttl_seconds_after_finished: None,
        });
        let pod = job.spec.as_ref().and_then(|s| s.template.spec.clone()).expect("pod");
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let volumes = pod.volumes.expect("volumes");
        let projected =
            volumes.iter().find(|v| v.name == "secrets").and_then(|v| v.projected.clone()).expect("projected");
        let mut paths: Vec<(String, String, String)> = projected
            .sources
            .expect("sources")
            .into_iter()
            .flat_map(|s| {
                let s = s.secret.expect("secret");
                s.items.expect("items").into_iter().map(move |i| (s.name.clone(), i.key, i.path))
            })
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            vec![
                ("orders-internal".into(), "backup-password".into(), "mongodb/password".into()),
                ("ovh-keys".into(), "id".into(), "destinations/ovh/access-key-id".into()),
                ("ovh-keys".into(), "secret".into(), "destinations/ovh/secret-access-key".into()),
                ("private-ca".into(), "ca.crt".into(), "destinations/ovh/ca.pem".into()),
            ]
        );
        assert_eq!(pod.image_pull_secrets, Some(vec![LocalObjectReference { name: "regcred".into() }]));
        // It runs where the members may: their node selector and tolerations.
        assert_eq!(pod.node_selector.as_ref().and_then(|s| s.get("pool")).map(String::as_str), Some("databases"));
        assert_eq!(pod.tolerations.as_ref().map(|t| t[0].key.as_deref()), Some(Some("dedicated")));
        let main = &pod.containers[0];
        assert_eq!(main.image.as_deref(), Some("mongo:8.0.4"));
        assert_eq!(main.termination_message_path.as_deref(), Some(TERMINATION_LOG));
        assert_eq!(main.command.as_ref().map(|c| c[1].as_str()), Some("backup"));
        let labels = job.metadata.labels.expect("labels");
        assert_eq!(labels.get(FOR_LABEL).map(String::as_str), Some("nightly"));
        assert_eq!(labels.get("app.kubernetes.io/component").map(String::as_str), Some("backup"));
    }

    #[test]
    fn the_main_container_takes_the_resources_given_or_bounded_defaults() {
        let spec = serde_json::from_value(serde_json::json!({ "version": "8.0.4" })).expect("spec");
        let given = resources("4", "2Gi", "2Gi");
        let main_resources = |given: Option<&ResourceRequirements>| {
            let job = build(&JobInputs {
                name: "orders-restore",
                namespace: "shop",
                cluster: "orders",
                component: RESTORE_COMPONENT,
                subcommand: "restore",
                for_name: "orders",
                spec: &spec,
                operator_image: "mongo-operator:0.1.0",
                plan_json: "{}",
                secret_files: &[],
                owner: &owner(),
                resources: given,
                ttl_seconds_after_finished: None,
            });
            let pod = job.spec.and_then(|s| s.template.spec).expect("pod");
            pod.containers[0].resources.clone().expect("resources")
        };
        assert_eq!(main_resources(Some(&given)), given);
        let default = main_resources(None);
        let memory_limit = default.limits.as_ref().and_then(|l| l.get("memory")).map(|q| q.0.as_str());
        assert_eq!(memory_limit, Some("1Gi"), "bounded even when unset");
    }

    #[test]
    fn long_names_still_make_valid_job_names() {
        let long = "a".repeat(80);
        let name = job_name(&long, "backup");
        assert!(name.len() <= 63, "{name}");
        assert!(name.ends_with("-backup"));
        assert_ne!(job_name(&format!("{long}x"), "backup"), name);
        assert_eq!(job_name("nightly-202611231000", "backup"), "nightly-202611231000-backup");
    }
}
