//! The backup data path, run inside backup and restore Jobs as `mongo-operator backup` and
//! `mongo-operator restore`:
//!
//! ```text
//! mongodump --archive --oplog ─▶ zstd/gzip ─▶ age (optional) ─▶ chunks ─┬▶ multipart upload, store A
//!                                                          sha-256 ◀─────┴▶ multipart upload, store B
//! ```
//! then `manifest.json` next to the archive in every store, last. Restore reads the manifest,
//! streams the archive into `mongorestore --archive --oplogReplay`, checking it on the way.

pub mod archive;
pub mod codec;
pub mod command;
pub mod files;
pub mod plan;
pub mod prune;
pub mod restore;
pub mod seal;
pub mod server;
pub mod store;
pub mod take;
pub mod tools;
pub mod upload;
pub mod verify;

use files::SecretFileError;
use store::StoreError;
use upload::UploadError;

/// Why a backup produced nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A secret file is missing or unreadable.
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    /// A destination cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source cannot be reached or refused the credentials.
    #[error("cannot ask the source for its version and size: {0}")]
    Source(#[from] mongodb::error::Error),
    /// mongodump failed.
    #[error("mongodump exited with {status}: {output}")]
    Dump {
        /// Its exit status.
        status: String,
        /// Its last lines of error output.
        output: String,
    },
    /// A destination failed.
    #[error("upload failed: {0}")]
    Upload(#[from] UploadError),
    /// Reading, encoding or handing over the stream failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The process was asked to stop.
    #[error("the backup was cancelled (SIGTERM); its uploads were aborted")]
    Cancelled,
}

/// Why a restore did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A secret file is missing or unreadable.
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    /// The destination cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest is missing (an incomplete backup) or unreadable.
    #[error("no usable manifest at {url}: {reason}")]
    Manifest {
        /// Where it was looked for.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The manifest disagrees with what the API or the spec says of the backup, or nothing
    /// vouches for it: whoever wrote it may not be whoever took the backup.
    #[error("the manifest at {url} is refused: {reason}; nothing was restored from it")]
    Untrusted {
        /// Where it was read.
        url: String,
        /// What disagrees.
        reason: String,
    },
    /// The archive cannot be read, decrypted or decompressed.
    #[error("cannot read the archive {url}: {reason}")]
    Archive {
        /// Its URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The stored archive is not the one the manifest describes.
    #[error(
        "the archive does not match its manifest: expected {expected}, found {actual}; what it restored was removed"
    )]
    Checksum {
        /// What the manifest says.
        expected: String,
        /// What was read.
        actual: String,
    },
    /// No copy of the backup could be used; each one's reason, in the order tried.
    #[error("no copy of the backup can be restored ({copies}); the target holds none of it")]
    NoUsableCopy {
        /// "copy <destination>: <reason>", joined by "; ".
        copies: String,
    },
    /// What a failed copy put into the target could not be removed.
    #[error("the target could not be emptied after {after}: {reason}; it may hold part of the backup")]
    Wipe {
        /// The copy that failed, and why.
        after: String,
        /// Why the target could not be emptied.
        reason: String,
    },
    /// mongorestore failed.
    #[error("mongorestore exited with {status}: {output}")]
    Restore {
        /// Its exit status.
        status: String,
        /// Its last lines of error output.
        output: String,
    },
    /// Starting or feeding mongorestore failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A restore to a point in time cannot reach its target, or the archived oplog it needs
    /// cannot be read or does not chain.
    #[error("point-in-time restore: {0}")]
    PointInTime(String),
}
