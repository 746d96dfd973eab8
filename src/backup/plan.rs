//! What a backup or restore process is asked to do (the plan, written by the operator into the
//! Job), what it leaves next to the archive (the manifest), and what it reports back (the
//! outcome, in the container's termination message).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::archive::Contents;
use crate::api::{BackupLocation, Compression, Destination};

/// How to reach the MongoDB deployment. The password is read from the secrets directory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Connection string without credentials: one member, `mongodb://a:27017/?directConnection=true`
    /// (a backup), or the set, `mongodb://a:27017,b:27017/?replicaSet=rs` (a restore).
    pub uri: String,
    /// The user, with SCRAM-SHA-256; none for a server without authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The database the user authenticates against: `admin`, or `local` for `__system`.
    #[serde(default = "admin_db")]
    pub auth_source: String,
    /// Over TLS, verified with the CAs in the secret file [`super::files::MONGODB_CA`] (and
    /// the member names in `uri`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
}

impl Source {
    /// This source with TLS on.
    pub fn over_tls(self, tls: bool) -> Source {
        Source { tls, ..self }
    }

    /// The source as the tools get it: with TLS, the URI asks for it and names the CA file
    /// where this process finds it (`tls=true&tlsCAFile=...`, which mongodump and
    /// mongorestore read from the URI as from their `--ssl` flags).
    pub fn resolved(&self, secrets: &super::files::SecretFiles) -> Source {
        if !self.tls {
            return self.clone();
        }
        let ca = secrets.path(super::files::MONGODB_CA);
        let separator = if self.uri.contains('?') { '&' } else { '?' };
        Source { uri: format!("{}{separator}tls=true&tlsCAFile={}", self.uri, ca.display()), ..self.clone() }
    }
}

fn admin_db() -> String {
    "admin".to_string()
}

impl Source {
    /// A user of `admin`.
    pub fn user(uri: String, username: &str) -> Source {
        Source { uri, username: Some(username.to_string()), auth_source: admin_db(), tls: false }
    }
}

/// One backup: from where, to where, and how it is encoded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupPlan {
    /// The MongoCluster's name; the first part of the objects' keys.
    pub cluster: String,
    /// The MongoBackup's name; the second part of the objects' keys.
    pub backup: String,
    /// The deployment to dump.
    pub source: Source,
    /// Dump with `--oplog`, for a point-in-time-consistent archive of a replica set.
    pub oplog: bool,
    /// Every store that receives a full copy.
    pub destinations: Vec<Destination>,
    /// Compression of the archive.
    pub compression: Compression,
    /// Encrypt with the passphrase in the secrets directory.
    pub encrypted: bool,
}

/// One restore: which stored backup into which deployment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestorePlan {
    /// Where the backup's manifest is.
    pub location: BackupLocation,
    /// Other copies of the same backup, tried in order when `location` cannot be read or its
    /// archive does not match its manifest (a provider down, a damaged object).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<BackupLocation>,
    /// The deployment to restore into.
    pub target: Source,
    /// What is known of the backup from somewhere its buckets cannot change.
    pub expected: Expected,
    /// A restore to a point in time: the base backup is the newest one in `location`'s
    /// destination whose oplog ends before the target (`location.path` is not read), and the
    /// archived oplog after it is replayed up to the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<PointInTimePlan>,
}

/// What a restore to a point in time is asked for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PointInTimePlan {
    /// The cluster whose backups and archived oplog are read.
    pub cluster: String,
    /// `latest`, or an RFC 3339 time: every write before it is restored, none at or after it.
    pub target: String,
}

/// What a restore to a point in time did.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PointInTimeOutcome {
    /// The base backup restored first.
    pub base: String,
    /// The replay's exclusive limit, as `mongorestore --oplogLimit` took it (`<seconds>:<increment>`).
    pub limit: String,
    /// The target as resolved: the second the limit falls in.
    pub resolved: DateTime<Utc>,
    /// Archived entries replayed (no-ops included), from how many chunks.
    pub entries: u64,
    pub chunks: u64,
}

/// One verification: every copy of a backup restored in turn into a throwaway mongod, and
/// compared with what its manifest recorded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VerifyPlan {
    /// Every copy to verify, one per destination.
    pub copies: Vec<BackupLocation>,
    /// The throwaway mongod: on the Pod's loopback, without access control, started by the
    /// Pod with `--replSet` [`VerifyPlan::set_name`] and initiated by the verification.
    pub throwaway: Source,
    /// The throwaway's replica-set name.
    pub set_name: String,
    /// What is known of the backup from the API.
    pub expected: Expected,
}

/// What a verification found in one copy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CopyVerification {
    /// The copy's destination.
    pub destination: String,
    /// Every check passed.
    pub passed: bool,
    /// Seconds from the first byte read from the store to mongorestore's exit.
    pub restore_seconds: f64,
    /// Bytes mongodump had written, as the manifest says: what mongorestore read.
    pub restored_bytes: u64,
    /// Namespaces the manifest recorded.
    pub namespaces: u32,
    /// Documents the manifest recorded, and documents found after the restore.
    pub documents_expected: u64,
    pub documents_restored: u64,
    /// The first differences, at most [`MISMATCHES_REPORTED`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<Mismatch>,
    /// How many there were in all.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mismatch_count: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How many differences a verification reports per copy (the count says how many in all):
/// the outcome must fit a termination message.
pub const MISMATCHES_REPORTED: usize = 3;

/// One difference between a restored copy and its manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    /// `db.collection`, or empty for the copy as a whole (it did not restore).
    pub namespace: String,
    /// What differs: `restore`, `missing`, `unexpected`, `kind`, `options`, `indexes`,
    /// `documents`, `digest` or `validate`.
    pub check: String,
    /// What the manifest says, and what was found (or why the check failed).
    pub expected: String,
    pub found: String,
}

/// What a restore knows of a backup without reading its bucket: from the MongoBackup's status
/// in the API (a restore by name), or from the MongoCluster's spec (a restore by location).
/// Whoever can write to a bucket can replace both the archive and the manifest next to it, so
/// a manifest is believed only as far as one of these vouches for it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Expected {
    /// The stored archive's SHA-256, as "sha256:<hex>": the manifest must say the same, and
    /// the bytes read must have it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// The backup was encrypted: a manifest that says it is not is refused, and without a
    /// checksum the manifest must carry a MAC made with the key ([`super::seal`]).
    pub encrypted: bool,
}

impl Expected {
    /// Whether anything vouches for the backup at all.
    pub fn vouches(&self) -> bool {
        self.checksum.is_some() || self.encrypted
    }
}

/// Stored backups to delete, run as a Job in the backups' namespace: retention's deletions
/// reach the stores from there, with the network and the Secrets the backups themselves had,
/// not from the operator's Pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrunePlan {
    /// What to delete, one entry per copy of a backup.
    pub targets: Vec<PruneTarget>,
}

/// One copy of one backup: its objects in one store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PruneTarget {
    /// The MongoBackup whose copy this is.
    pub backup: String,
    /// The store.
    pub destination: Destination,
    /// The objects' keys below the destination's prefix, the manifest first: a copy that
    /// cannot be wholly deleted is then visibly incomplete, and never restored.
    pub keys: Vec<String>,
}

/// A backup whose copies could not all be deleted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PruneFailure {
    /// The MongoBackup.
    pub backup: String,
    /// Why, without what the store's server wrote.
    pub error: String,
}

/// The format version of [`Manifest`]; a restore refuses manifests it does not know.
pub const MANIFEST_FORMAT: u32 = 1;
/// Name of the manifest object, next to the archive.
pub const MANIFEST_NAME: &str = "manifest.json";

/// Written next to the archive once every copy of it is complete, in every destination. A
/// backup directory without a manifest is incomplete and is never restored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`] when written.
    pub format: u32,
    /// The cluster backed up.
    pub cluster: String,
    /// The backup's name.
    pub backup: String,
    /// When mongodump started.
    pub started_at: DateTime<Utc>,
    /// When every copy of the archive was complete.
    pub completed_at: DateTime<Utc>,
    /// The server's version, from `buildInfo`.
    pub mongodb_version: Option<String>,
    /// The archive holds the oplog written during the dump (`--oplog`).
    pub oplog: bool,
    /// Name of the archive object, in the manifest's directory.
    pub archive: String,
    /// Size of the stored archive in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the stored archive, as "sha256:<hex>".
    pub checksum: String,
    /// Bytes mongodump wrote, before compression and encryption.
    pub dump_bytes: u64,
    /// Compression applied first.
    pub compression: Compression,
    /// Encryption applied after compression: "age-scrypt" (the age format with a passphrase,
    /// readable by the `age` tool), or none.
    pub encryption: Option<String>,
    /// What the archive holds, recorded from it while it was written; none in manifests of
    /// earlier versions, or when the archive could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<Contents>,
    /// For an encrypted backup, "hmac-sha256:<hex>": the manifest's MAC under the backup's key,
    /// which proves that it was written by whoever holds the key ([`super::seal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// The encryption scheme name written into manifests.
pub const ENCRYPTION_SCHEME: &str = "age-scrypt";

impl Manifest {
    /// The manifest as an outcome reports it: without its contents, which may be far longer
    /// than a termination message holds (they stay in the stored manifest). Its MAC is for
    /// the stored manifest, and does not verify this one.
    pub fn without_contents(&self) -> Manifest {
        Manifest { contents: None, ..self.clone() }
    }

    /// The archive's object name for a compression and encryption: a name that says how to
    /// read it, for example `archive.mongodump.zst.age`.
    pub fn archive_name(compression: Compression, encrypted: bool) -> String {
        let compression = match compression {
            Compression::Zstd => ".zst",
            Compression::Gzip => ".gz",
            Compression::None => "",
        };
        let encryption = if encrypted { ".age" } else { "" };
        format!("archive.mongodump{compression}{encryption}")
    }
}

/// One stored copy, as reported.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Copy {
    /// Destination name.
    pub destination: String,
    /// URL of the manifest.
    pub url: String,
    /// Key of the manifest in the store, for `bootstrap.fromBackup.location.path`.
    pub path: String,
}

/// What a backup or restore process reports: printed on stdout and written to the result file
/// (the container's termination message), so the operator reads it without object-store access.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum Outcome {
    /// A complete backup, in every destination.
    #[serde(rename_all = "camelCase")]
    BackedUp {
        /// The manifest written.
        manifest: Manifest,
        /// Where each copy's manifest is.
        copies: Vec<Copy>,
    },
    /// A restore that mongorestore finished.
    #[serde(rename_all = "camelCase")]
    Restored {
        /// The manifest of the backup restored.
        manifest: Manifest,
        /// The destination whose copy was restored.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        copy: Option<String>,
        /// For a restore to a point in time, the base and the replay.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        point_in_time: Option<PointInTimeOutcome>,
    },
    /// What a verification found, copy by copy.
    #[serde(rename_all = "camelCase")]
    Verified {
        /// One per copy, in the plan's order.
        copies: Vec<CopyVerification>,
    },
    /// What a prune deleted.
    #[serde(rename_all = "camelCase")]
    Pruned {
        /// The backups none of whose objects is left.
        deleted: Vec<String>,
        /// The backups some of whose objects are left.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failed: Vec<PruneFailure>,
    },
    /// Nothing usable was produced; the message says why.
    Failed {
        /// Why.
        error: String,
    },
}

/// Kubernetes keeps at most this many bytes of a termination message.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

impl Outcome {
    /// The outcome as one JSON line that fits a termination message: a long error is cut.
    pub fn to_message(&self) -> String {
        let text = serde_json::to_string(self)
            .unwrap_or_else(|error| format!(r#"{{"result":"failed","error":"cannot encode the outcome: {error}"}}"#));
        if text.len() <= TERMINATION_MESSAGE_LIMIT {
            return text;
        }
        let error = match self {
            Outcome::Failed { error } => error.as_str(),
            _ => "the outcome does not fit a termination message",
        };
        let mut cut = error.len().min(TERMINATION_MESSAGE_LIMIT - 200);
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        serde_json::to_string(&Outcome::Failed { error: format!("{}…", &error[..cut]) }).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_say_how_to_read_them() {
        assert_eq!(Manifest::archive_name(Compression::Zstd, true), "archive.mongodump.zst.age");
        assert_eq!(Manifest::archive_name(Compression::Gzip, false), "archive.mongodump.gz");
        assert_eq!(Manifest::archive_name(Compression::None, false), "archive.mongodump");
    }

    #[test]
    fn a_long_error_still_fits_a_termination_message() {
        let outcome = Outcome::Failed { error: "é".repeat(10_000) };
        let message = outcome.to_message();
        assert!(message.len() <= TERMINATION_MESSAGE_LIMIT);
        match serde_json::from_str::<Outcome>(&message).expect("still JSON") {
            Outcome::Failed { error } => assert!(error.ends_with('…')),
            other => panic!("unexpected {other:?}"),
        }
    }
}
