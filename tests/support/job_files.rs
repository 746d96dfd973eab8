//! What a data-path process (backup, restore, verify, archive-oplog) is given, laid out as
//! the operator's Jobs and Deployments lay it out: a destination on an s3s-fs server, and the
//! secrets directory (stores' keys, the MongoDB password, the encryption key).

use std::path::PathBuf;

use mongo_operator::api::{Destination, S3CredentialsReference, S3Destination};
use mongo_operator::backup::files::{self, destination_file};

use super::data_set::KEY_FILE;
use super::servers::{S3_ACCESS_KEY, S3_SECRET_KEY, S3Server};

pub const BUCKET: &str = "backups";
pub const BACKUP_PASSWORD: &str = "the backup user's password";

pub fn destination(name: &str, server: &S3Server, prefix: &str) -> Destination {
    Destination {
        name: name.into(),
        s3: Some(S3Destination {
            bucket: BUCKET.into(),
            prefix: Some(prefix.into()),
            endpoint: Some(server.endpoint()),
            region: "us-east-1".into(),
            force_path_style: true,
            credentials_secret_ref: S3CredentialsReference {
                name: "unused-here".into(),
                access_key_id_key: "AWS_ACCESS_KEY_ID".into(),
                secret_access_key_key: "AWS_SECRET_ACCESS_KEY".into(),
            },
            ca_secret_ref: None,
        }),
        gcs: None,
        azure: None,
    }
}

/// A secrets directory laid out as the Job mounts it: the stores' keys, the MongoDB password
/// (the backup user's, or the keyFile for a restore), the encryption key.
pub struct Secrets(pub PathBuf);

impl Secrets {
    pub fn new(destinations: &[&str], key: Option<&str>, password: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mongo-operator-secrets-{}-{}", std::process::id(), rand_suffix()));
        for name in destinations {
            let d = dir.join(files::destination_dir(name));
            std::fs::create_dir_all(&d).expect("dir");
            std::fs::write(d.join(destination_file::ACCESS_KEY_ID), format!("{S3_ACCESS_KEY}\n")).expect("write");
            std::fs::write(d.join(destination_file::SECRET_ACCESS_KEY), S3_SECRET_KEY).expect("write");
        }
        let write = |file: &str, value: &str| {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            std::fs::write(path, value).expect("write");
        };
        if let Some(key) = key {
            write(files::ENCRYPTION_KEY, key);
        }
        write(files::MONGODB_PASSWORD, password);
        Secrets(dir)
    }

    /// For a backup: the backup user's password.
    pub fn backup(destinations: &[&str], key: Option<&str>) -> Self {
        Secrets::new(destinations, key, BACKUP_PASSWORD)
    }

    /// For a restore: the target's keyFile (with its line break, as in the Secret).
    pub fn restore(destinations: &[&str], key: Option<&str>) -> Self {
        Secrets::new(destinations, key, &format!("{KEY_FILE}\n"))
    }
}

impl Drop for Secrets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
