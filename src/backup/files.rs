//! Where a backup or restore process finds its secrets: one directory, laid out the same way
//! by the Job builder (which mounts Secrets there) and by the process (which reads them).
//! Files rather than environment variables, so secrets stay out of `kubectl describe`, of
//! child processes' environments and of crash dumps.

use std::path::{Path, PathBuf};

use crate::api::Destination;

use super::store::StoreCredentials;

/// Default directory of the secret files inside a backup or restore Pod.
pub const DEFAULT_SECRETS_DIR: &str = "/var/run/mongo-operator/secrets";

/// File of the MongoDB user's password.
pub const MONGODB_PASSWORD: &str = "mongodb/password";
/// File of the encryption passphrase.
pub const ENCRYPTION_KEY: &str = "encryption/key";
/// The CAs that sign the members' certificate, when the cluster speaks TLS.
pub const MONGODB_CA: &str = "mongodb/ca.crt";

/// File names inside a destination's directory.
pub mod destination_file {
    /// S3 access key ID.
    pub const ACCESS_KEY_ID: &str = "access-key-id";
    /// S3 secret access key.
    pub const SECRET_ACCESS_KEY: &str = "secret-access-key";
    /// PEM CA bundle.
    pub const CA: &str = "ca.pem";
    /// GCS service-account JSON key.
    pub const SERVICE_ACCOUNT_KEY: &str = "service-account.json";
    /// Azure access key.
    pub const AZURE_ACCESS_KEY: &str = "access-key";
}

/// The directory, relative to the secrets directory, of one destination's files.
pub fn destination_dir(destination: &str) -> String {
    format!("destinations/{destination}")
}

/// Reads secret files under one directory.
#[derive(Debug, Clone)]
pub struct SecretFiles {
    dir: PathBuf,
}

/// A secret file that should be there and is not readable.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the secret file {path}: {source}")]
pub struct SecretFileError {
    path: PathBuf,
    source: std::io::Error,
}

impl SecretFiles {
    /// Secret files under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Where a file is (it may not exist).
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// The text of a required file, without a trailing newline (editors and `echo` add one).
    pub fn required(&self, relative: &str) -> Result<String, SecretFileError> {
        let path = self.dir.join(relative);
        std::fs::read_to_string(&path)
            .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|source| SecretFileError { path, source })
    }

    /// The text of an optional file: `None` when it does not exist.
    pub fn optional(&self, relative: &str) -> Result<Option<String>, SecretFileError> {
        let path = self.dir.join(relative);
        if !exists(&path) {
            return Ok(None);
        }
        self.required(relative).map(Some)
    }

    /// Whatever credentials for `destination` are present.
    pub fn store_credentials(&self, destination: &Destination) -> Result<StoreCredentials, SecretFileError> {
        let dir = destination_dir(&destination.name);
        let file = |name: &str| self.optional(&format!("{dir}/{name}"));
        Ok(StoreCredentials {
            access_key_id: file(destination_file::ACCESS_KEY_ID)?,
            secret_access_key: file(destination_file::SECRET_ACCESS_KEY)?,
            ca_pem: file(destination_file::CA)?.map(String::into_bytes),
            service_account_key: file(destination_file::SERVICE_ACCOUNT_KEY)?,
            azure_access_key: file(destination_file::AZURE_ACCESS_KEY)?,
        })
    }
}

fn exists(path: &Path) -> bool {
    path.try_exists().unwrap_or(false)
}
