//! `MongoBackup`: one backup, or (with `schedule`) a policy that takes backups on a schedule
//! and keeps them for a set time.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ClusterReference, SecretKeyReference};

/// How long after a missed scheduled time a run may still start, by default.
pub const DEFAULT_STARTING_DEADLINE_SECONDS: i64 = 3600;

/// A backup of a MongoCluster to one or more object stores, once or on a schedule.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mongo.operator.rs",
    version = "v1alpha1",
    kind = "MongoBackup",
    plural = "mongobackups",
    singular = "mongobackup",
    shortname = "mgb",
    category = "mongo",
    namespaced,
    status = "MongoBackupStatus",
    derive = "PartialEq",
    doc = "A backup of a MongoCluster to object storage, taken once or on a schedule.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef.name"),
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule.cron"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Size", type_ = "string", json_path = ".status.sizeHuman"),
    printcolumn(name = "Last Success", type_ = "date", json_path = ".status.lastSuccessfulTime"),
    printcolumn(name = "Verified", type_ = "string", json_path = ".status.verification.phase"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("!has(self.spec.schedule) || size(self.metadata.name) <= 40")
        .message("a scheduled MongoBackup's name must be at most 40 characters: each backup it takes is named <name>-<yyyymmddhhmm>")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("has(self.spec.schedule) || !has(oldSelf.spec) || self.spec == oldSelf.spec")
        .message("a one-off backup cannot be changed once created; create a new MongoBackup instead")
        .reason(Reason::FieldValueForbidden),
)]
#[x_kube(
    validation = Rule::new("self.clusterRef == oldSelf.clusterRef")
        .message("clusterRef cannot be changed: create a new MongoBackup for another cluster")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("has(self.schedule) == has(oldSelf.schedule)")
        .message("a MongoBackup cannot switch between one-off and scheduled; create a new one")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("has(self.schedule) || !has(self.retention)")
        .message("retention applies only to scheduled backups (spec.schedule)")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("has(self.schedule) || !self.suspend")
        .message("suspend applies only to scheduled backups (spec.schedule)")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.schedule) || has(self.encryption) || (has(self.unencrypted) && self.unencrypted)")
        .message("a schedule needs encryption.keySecretRef, or unencrypted: true to store its backups (every user's SCRAM keys included) as plaintext")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.encryption) || !has(self.unencrypted) || !self.unencrypted")
        .message("encryption and unencrypted: true contradict each other")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.pitr) || has(self.schedule)")
        .message("pitr applies only to a schedule (spec.schedule): the oplog is archived between the backups it takes")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.verification) || !has(self.verification.cron) || has(self.schedule)")
        .message("verification.cron applies only to a schedule (spec.schedule): a one-off backup is verified once it succeeds")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.pitr) || has(self.encryption)")
        .message("pitr needs encryption.keySecretRef: a restore to a point in time picks the base backup and the oplog chunks itself, and the key's MAC is what vouches for them")
        .reason(Reason::FieldValueRequired),
)]
#[serde(rename_all = "camelCase")]
pub struct MongoBackupSpec {
    /// The MongoCluster to back up, in this namespace.
    pub cluster_ref: ClusterReference,

    /// When to take backups. Absent: one backup, now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,

    /// Object stores that each receive a full copy of every backup. Two providers protect
    /// against losing one.
    #[schemars(length(min = 1, max = 8))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub destinations: Vec<Destination>,

    /// Compression of the archive.
    #[serde(default)]
    pub compression: Compression,

    /// Client-side encryption of the archive before it leaves the cluster. A schedule needs
    /// it, or `unencrypted: true`: a dump holds `admin.system.users`, every user's SCRAM keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,

    /// Store the backups as plaintext, on purpose. A schedule needs this or `encryption`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unencrypted: bool,

    /// How long scheduled backups are kept. Older ones are deleted with their stored copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,

    /// Stops new scheduled runs while true; running backups finish.
    #[serde(default)]
    pub suspend: bool,

    /// Prove that backups restore: after a backup succeeds, a Job restores every copy in
    /// turn into a throwaway mongod of the cluster's image, inside the Job's own Pod, and
    /// compares it with what the backup recorded (namespaces, options, indexes, document
    /// counts and digests, `validate`). On a schedule, every `every`th backup it takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationSpec>,

    /// CPU and memory of the backup Job's container. Unset: requests 250m CPU and 256Mi,
    /// memory limit 1Gi. The data path's memory does not grow with the database; more CPU
    /// makes compression and encryption of a large database faster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::common::resources_schema")]
    pub resources: Option<ResourceRequirements>,

    /// Point-in-time recovery: archive the cluster's oplog between the schedule's backups, to
    /// every destination, compressed and encrypted like them. Needs a schedule and encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitr: Option<PitrSpec>,
}

impl MongoBackupSpec {
    /// The spec of one backup taken with this schedule's settings: without what only a
    /// schedule has (its times, retention, suspension, oplog archiving).
    pub fn one_backup(&self) -> MongoBackupSpec {
        MongoBackupSpec { schedule: None, retention: None, suspend: false, pitr: None, ..self.clone() }
    }
}

/// How the oplog is archived.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PitrSpec {
    /// Minutes between two chunks of the archive: how far behind the latest restorable time
    /// may be. The oplog must hold at least twice this (the status warns when it does not).
    #[serde(default = "default_span_minutes")]
    #[schemars(range(min = 1, max = 60))]
    pub span_minutes: i32,
    /// CPU and memory of the archiver's container. Unset: requests 50m CPU and 128Mi, memory
    /// limit 512Mi (a chunk is held in memory while it is written: 10 minutes of writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::common::resources_schema")]
    pub resources: Option<ResourceRequirements>,
}

fn default_span_minutes() -> i32 {
    10
}

/// How backups are verified.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.cron) || self.every == 1")
    .message("verification.every and verification.cron are two ways to choose what is verified: set one")
    .reason(Reason::FieldValueForbidden))]
#[serde(rename_all = "camelCase")]
pub struct VerificationSpec {
    /// On a schedule, verify one backup in this many (1: every backup). Ignored by a one-off
    /// backup, which is verified.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1000))]
    pub every: u32,
    /// On a schedule, verify on a cron of its own instead of as backups are taken: at each
    /// time, the newest backup that succeeded and was not verified yet is verified (for
    /// example "30 4 * * 0" for Sunday mornings, after the night's backups). Read in
    /// `schedule.timeZone`. The backups are then taken without verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^\\\\s*\\\\S+(\\\\s+\\\\S+){4}\\\\s*$')")
        .message("verification.cron must be a five-field cron expression such as '30 4 * * 0' (minute hour day-of-month month day-of-week)")
        .reason(Reason::FieldValueInvalid))]
    #[schemars(length(min = 9, max = 128))]
    pub cron: Option<String>,
    /// How long the verification Job may run before it is stopped and counted as failed.
    #[serde(default = "default_verification_deadline")]
    #[schemars(range(min = 60, max = 604800))]
    pub deadline_seconds: i64,
    /// CPU and memory of the throwaway mongod. Unset: 500m CPU, 1Gi of memory (its
    /// WiredTiger cache then gets 0.25 GB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::common::resources_schema")]
    pub resources: Option<ResourceRequirements>,
}

fn one() -> u32 {
    1
}

impl Default for VerificationSpec {
    /// What `verification: {}` means.
    fn default() -> Self {
        VerificationSpec {
            every: one(),
            cron: None,
            deadline_seconds: DEFAULT_VERIFICATION_DEADLINE_SECONDS,
            resources: None,
        }
    }
}

/// How long a verification may take, by default.
pub const DEFAULT_VERIFICATION_DEADLINE_SECONDS: i64 = 3600;

fn default_verification_deadline() -> i64 {
    DEFAULT_VERIFICATION_DEADLINE_SECONDS
}

/// When scheduled backups run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// Standard five-field cron expression, for example "0 */2 * * *" for every two hours.
    #[x_kube(validation = Rule::new("self.matches('^\\\\s*\\\\S+(\\\\s+\\\\S+){4}\\\\s*$')")
        .message("schedule.cron must be a five-field cron expression such as '0 */2 * * *' (minute hour day-of-month month day-of-week)")
        .reason(Reason::FieldValueInvalid))]
    #[schemars(length(min = 9, max = 128))]
    pub cron: String,

    /// IANA time zone the cron expression is read in, for example "Europe/Paris". UTC when
    /// unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$"))]
    pub time_zone: Option<String>,

    /// A run missed (for example while the operator was down) still starts if it is at most
    /// this many seconds late; later than that it is skipped and recorded.
    #[serde(default = "default_starting_deadline")]
    #[schemars(range(min = 60, max = 604800))]
    pub starting_deadline_seconds: i64,
}

fn default_starting_deadline() -> i64 {
    DEFAULT_STARTING_DEADLINE_SECONDS
}

/// A named object store that receives a copy of each backup.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("(has(self.s3) ? 1 : 0) + (has(self.gcs) ? 1 : 0) + (has(self.azure) ? 1 : 0) == 1")
    .message("each destination needs exactly one of s3, gcs or azure")
    .reason(Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// Name of this destination, unique within the MongoBackup; used in status and events.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// An S3-compatible store: AWS, OVHcloud, Scaleway, MinIO and others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Destination>,
    /// A Google Cloud Storage bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsDestination>,
    /// An Azure Blob Storage container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureDestination>,
}

/// An S3-compatible bucket.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct S3Destination {
    /// Bucket name.
    #[schemars(length(min = 3, max = 63), regex(pattern = r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$"))]
    pub bucket: String,
    /// Key prefix under which backups are stored, for example "prod/orders".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub prefix: Option<String>,
    /// Endpoint URL for S3-compatible services other than AWS, for example
    /// "https://s3.gra.io.cloud.ovh.net".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isURL(self) && (self.startsWith('https://') || self.startsWith('http://'))")
        .message("s3.endpoint must be an http:// or https:// URL")
        .reason(Reason::FieldValueInvalid))]
    #[schemars(length(min = 1, max = 512))]
    pub endpoint: Option<String>,
    /// Region of the bucket.
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 64))]
    pub region: String,
    /// Address buckets as `<endpoint>/<bucket>` instead of `<bucket>.<endpoint>`; most
    /// self-hosted stores need this.
    #[serde(default)]
    pub force_path_style: bool,
    /// Secret holding the access key and secret key.
    pub credentials_secret_ref: S3CredentialsReference,
    /// Secret key holding a PEM CA bundle, for endpoints with a private certificate authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyReference>,
}

fn default_region() -> String {
    "us-east-1".to_string()
}

/// The Secret holding S3 credentials.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3CredentialsReference {
    /// Name of the Secret, in this namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key of the access key ID.
    #[serde(default = "default_access_key_key")]
    pub access_key_id_key: String,
    /// Key of the secret access key.
    #[serde(default = "default_secret_key_key")]
    pub secret_access_key_key: String,
}

fn default_access_key_key() -> String {
    "AWS_ACCESS_KEY_ID".to_string()
}

fn default_secret_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".to_string()
}

/// A Google Cloud Storage bucket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcsDestination {
    /// Bucket name.
    #[schemars(length(min = 3, max = 222))]
    pub bucket: String,
    /// Key prefix under which backups are stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub prefix: Option<String>,
    /// Secret key holding a service-account JSON key.
    pub service_account_key_secret_ref: SecretKeyReference,
}

/// An Azure Blob Storage container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureDestination {
    /// Storage account name.
    #[schemars(length(min = 3, max = 24), regex(pattern = r"^[a-z0-9]+$"))]
    pub account: String,
    /// Container name.
    #[schemars(length(min = 3, max = 63))]
    pub container: String,
    /// Key prefix under which backups are stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub prefix: Option<String>,
    /// Secret key holding the storage account access key.
    pub access_key_secret_ref: SecretKeyReference,
}

/// Compression of the backup archive.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Zstandard: fast and compact.
    #[default]
    Zstd,
    /// gzip, for tools that only read gzip.
    Gzip,
    /// No compression.
    None,
}

/// Client-side encryption of the archive.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionSpec {
    /// Secret key holding the passphrase: at least 32 characters (`openssl rand -base64 32`
    /// gives 44), from which age derives the key with scrypt. Keep a copy outside the cluster:
    /// without it the backups cannot be restored.
    pub key_secret_ref: SecretKeyReference,
}

/// How long scheduled backups are kept. A backup is deleted when either limit says so; the
/// newest successful backup is never deleted.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.keepLast) || has(self.maxAge)")
    .message("retention needs keepLast, maxAge or both")
    .reason(Reason::FieldValueRequired))]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Keep at most this many successful backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub keep_last: Option<i32>,
    /// Delete backups older than this: a number followed by h (hours), d (days) or w (weeks),
    /// for example "30d".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[1-9][0-9]{0,4}[hdw]$"))]
    pub max_age: Option<String>,
}

/// Where one stored backup lives, for restoring when its MongoBackup object is gone.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupLocation {
    /// The object store holding the backup.
    pub destination: Destination,
    /// Key of the backup's manifest in that store, as shown in the MongoBackup's status. For a
    /// restore to a point in time (`pointInTime`), the source cluster's directory instead:
    /// `<prefix>/<cluster>`, where its schedule's base backups and oplog archive are.
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
}

/// Observed state of a MongoBackup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MongoBackupStatus {
    /// Pending, Running, Succeeded or Failed for a backup; Scheduled or Suspended for a policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupPhase>,
    /// `Ready`, `Progressing` and `Degraded`, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the backup started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the backup finished, successfully or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Size of the stored archive, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// Size of the stored archive, for people (for example "1.2 GiB").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_human: Option<String>,
    /// Bytes mongodump wrote (before compression and encryption): what a restore reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump_bytes: Option<i64>,
    /// SHA-256 of the stored archive, as "sha256:<hex>".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// How the archive was encrypted ("age-scrypt"), or unset for a plaintext archive. A
    /// restore refuses a manifest that says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// Where each copy lives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<BackupCopy>,
    /// The member mongodump read from, with its state when the backup started: a healthy,
    /// caught-up secondary, or the primary when no secondary was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_member: Option<String>,
    /// MongoDB version of the cluster when the backup was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mongodb_version: Option<String>,
    /// Why the backup failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a schedule: when the last run was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// For a schedule: when the next run is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// For a schedule: the newest backup that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_backup: Option<String>,
    /// For a schedule: when the newest successful backup finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// For a backup with `verification`: whether, and how fast, each copy restored and
    /// matched what was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationStatus>,
    /// For a schedule: the newest backup whose verification passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_backup: Option<String>,
    /// For a schedule: when that verification finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_time: Option<Time>,
    /// For a schedule with `verification.cron`: the last verification time handled (a backup
    /// chosen, or none left to verify).
    #[serde(default)]
    pub last_verification_schedule_time: Option<Time>,
    /// For a schedule with `verification.cron`: when the next one is due.
    #[serde(default)]
    pub next_verification_time: Option<Time>,
    /// A schedule's oplog archiver (`spec.pitr`). Written as null when there is none, so that
    /// the status's merge patch clears it.
    #[serde(default)]
    pub pitr: Option<PitrStatus>,
}

/// Where a schedule's oplog archiver is.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PitrStatus {
    /// Waiting (for the cluster or an input), Starting (its Pod is not ready yet) or Running.
    pub phase: PitrPhase,
    /// The archiver's Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// What it waits for, or what it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The first second a restore to a point in time can reach: the start of the oldest
    /// restorable range. Null until a chunk follows a base backup.
    #[serde(default)]
    pub earliest_restorable_time: Option<Time>,
    /// The last second a restore can reach: the end of the newest range (its last archived
    /// entry's second; `pointInTime: latest` restores up to there).
    #[serde(default)]
    pub latest_restorable_time: Option<Time>,
    /// Every restorable range, oldest first: a target inside one is accepted.
    #[serde(default)]
    pub restorable_ranges: Vec<PitrRange>,
    /// Holes in the archive (the oplog rolled past it): nothing between `after` and
    /// `resumedAfter` can be restored. One without `resumedAfter` waits for a new base backup.
    #[serde(default)]
    pub gaps: Vec<PitrGap>,
    /// How far the archive was behind when its newest chunk was written: seconds from the
    /// chunk's last entry to the write (about a span while all is well). How far it is behind
    /// now is `now - latestRestorableTime` (the metric `mongo_operator_pitr_latest_restorable_timestamp_seconds`).
    #[serde(default)]
    pub lag_seconds: Option<i64>,
    /// When the newest chunk was written.
    #[serde(default)]
    pub last_chunk_time: Option<Time>,
    /// How much time the oplog of the member read holds, first entry to last, in seconds.
    /// Under twice the span, an archiver stopped for a span or two finds the oplog rolled past
    /// it (a Warning `OplogWindowShort` says so): make the oplog larger (`mongod.config`
    /// `replication.oplogSizeMB`) or the span shorter.
    #[serde(default)]
    pub oplog_window_seconds: Option<i64>,
}

impl PitrStatus {
    /// A status without a report from the archiver.
    pub fn new(phase: PitrPhase, deployment: Option<String>, message: Option<String>) -> PitrStatus {
        PitrStatus {
            phase,
            deployment,
            message,
            earliest_restorable_time: None,
            latest_restorable_time: None,
            restorable_ranges: Vec::new(),
            gaps: Vec::new(),
            lag_seconds: None,
            last_chunk_time: None,
            oplog_window_seconds: None,
        }
    }
}

/// A range of restorable seconds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PitrRange {
    pub earliest: Time,
    pub latest: Time,
}

/// A hole in the archived oplog.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PitrGap {
    /// The last second archived before the hole.
    pub after: Time,
    /// Where archiving resumed, after a new base backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_after: Option<Time>,
}

/// Phase of a schedule's oplog archiver.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PitrPhase {
    /// Waiting for the cluster, a Secret, or a route to the stores; no archiver runs.
    Waiting,
    /// Its Deployment exists and its Pod is not ready yet.
    Starting,
    /// Its Pod runs.
    Running,
}

/// A backup's verification.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationStatus {
    /// Pending, Running, Passed or Failed.
    pub phase: VerificationPhase,
    /// When the verification Job started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// One per copy, each restored and checked on its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<VerifiedCopy>,
    /// What is happening, or the first thing that differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Phase of a verification.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum VerificationPhase {
    /// Waiting (for another verification of the same cluster, or a Secret).
    #[default]
    Pending,
    /// The verification Job is running.
    Running,
    /// Every copy restored and matched.
    Passed,
    /// A copy did not restore or did not match; the backup is kept.
    Failed,
}

/// What the verification found in one copy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedCopy {
    /// The destination whose copy this is.
    pub destination: String,
    /// It restored, and matched what was recorded.
    pub passed: bool,
    /// Measured restore time of this copy, in seconds (store to mongorestore's end): the
    /// recovery time this backup's size gives.
    pub restore_seconds: f64,
    /// Bytes restored per second (mongodump's bytes over the restore time).
    pub throughput_bytes_per_second: i64,
    /// Documents the backup recorded, in the collections verified and its users and roles.
    pub documents_expected: i64,
    /// Documents found there after the restore.
    pub documents_restored: i64,
    /// The first differences, by namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<VerificationMismatch>,
    /// How many differences in all.
    #[serde(default)]
    pub mismatch_count: i32,
}

/// One difference between a restored copy and what the backup recorded.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMismatch {
    /// `db.collection`; empty for the copy as a whole.
    pub namespace: String,
    /// restore, contents, missing, unexpected, kind, options, indexes, documents, digest or
    /// validate.
    pub check: String,
    /// What the backup recorded.
    pub expected: String,
    /// What the restore gave, or why the check failed.
    pub found: String,
}

/// Phase of a backup or a backup schedule.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackupPhase {
    /// Waiting to start (for example for another backup of the same cluster to finish).
    Pending,
    /// Being taken.
    Running,
    /// Stored completely in every destination and verified.
    Succeeded,
    /// Not usable; `error` says why.
    Failed,
    /// A schedule that is taking backups.
    Scheduled,
    /// A schedule that is suspended.
    Suspended,
}

/// One stored copy of a backup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupCopy {
    /// Name of the destination holding this copy.
    pub destination: String,
    /// URL of the copy's manifest, for example "s3://bucket/prefix/cluster/20261123T120000Z/manifest.json".
    pub url: String,
    /// Key of the manifest inside the store, for `bootstrap.fromBackup.location.path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}
