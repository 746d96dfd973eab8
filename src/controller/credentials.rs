//! The operator's own view of the Secret keys a backup reads: whether they exist (before a Job
//! is started) and their values (for pruning stored copies). The same keys the backup Job
//! mounts as files, read from the Secrets instead, each Secret once.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;

use crate::api::Destination;
use crate::backup::files::destination_file;
use crate::backup::store::StoreCredentials;
use crate::build::backup_job::{SecretFile, destination_files};
use crate::build::secrets::text;
use crate::controller::error::{Error, KubeContext};

/// Each distinct Secret `files` name, read once; None for those that do not exist.
async fn read(
    client: &Client,
    namespace: &str,
    files: &[SecretFile],
) -> Result<BTreeMap<String, Option<Secret>>, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut secrets = BTreeMap::new();
    for file in files {
        if !secrets.contains_key(&file.secret) {
            let secret = api.get_opt(&file.secret).await.doing(|| format!("reading Secret {}", file.secret))?;
            secrets.insert(file.secret.clone(), secret);
        }
    }
    Ok(secrets)
}

/// The value of one file's key, without the trailing newline editors add (as the backup
/// process reads its files).
fn value(secrets: &BTreeMap<String, Option<Secret>>, file: &SecretFile) -> Option<String> {
    let secret = secrets.get(&file.secret)?.as_ref()?;
    text(secret, &file.key).map(|v| v.trim_end_matches(['\n', '\r']).to_string())
}

/// The credentials of `destination`, read from its Secrets in `namespace`.
pub async fn from_secrets(
    client: &Client,
    namespace: &str,
    destination: &Destination,
) -> Result<StoreCredentials, Error> {
    let files = destination_files(destination);
    let secrets = read(client, namespace, &files).await?;
    let read = SecretsRead(secrets);
    if let Some(problem) = crate::controller::backup::trust::unlabelled_credentials(&read, [destination]) {
        return Err(Error::Secret { secret: destination.name.clone(), problem });
    }
    let secrets = read.0;
    let mut credentials = StoreCredentials::default();
    for file in &files {
        let value = value(&secrets, file).ok_or_else(|| Error::Secret {
            secret: file.secret.clone(),
            problem: format!("has no key {}", file.key),
        })?;
        match file.path.rsplit('/').next() {
            Some(destination_file::ACCESS_KEY_ID) => credentials.access_key_id = Some(value),
            Some(destination_file::SECRET_ACCESS_KEY) => credentials.secret_access_key = Some(value),
            Some(destination_file::SERVICE_ACCOUNT_KEY) => credentials.service_account_key = Some(value),
            Some(destination_file::AZURE_ACCESS_KEY) => credentials.azure_access_key = Some(value),
            Some(destination_file::CA) => credentials.ca_pem = Some(value.into_bytes()),
            _ => {}
        }
    }
    Ok(credentials)
}

/// The Secrets some files name, each read once, to ask which keys of several sets of those
/// files are missing.
pub struct SecretsRead(BTreeMap<String, Option<Secret>>);

impl SecretsRead {
    pub async fn of(client: &Client, namespace: &str, files: &[SecretFile]) -> Result<SecretsRead, Error> {
        Ok(SecretsRead(read(client, namespace, files).await?))
    }

    /// The text of one file's key, as the Job reads it (without a trailing line break).
    pub fn text(&self, file: &SecretFile) -> Option<String> {
        value(&self.0, file)
    }

    /// The Secrets `files` name that exist but lack the label `key=value`, sorted.
    pub fn without_label(&self, files: &[SecretFile], key: &str, value: &str) -> Vec<String> {
        let mut names: Vec<String> = files
            .iter()
            .filter(|f| {
                self.0.get(&f.secret).and_then(Option::as_ref).is_some_and(|s| {
                    s.metadata.labels.as_ref().and_then(|l| l.get(key)).map(String::as_str) != Some(value)
                })
            })
            .map(|f| f.secret.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Which of `files` are missing (no Secret, or no such key in it), as "secret/key".
    pub fn missing(&self, files: &[SecretFile]) -> Vec<String> {
        let has = |f: &SecretFile| {
            self.0
                .get(&f.secret)
                .and_then(Option::as_ref)
                .and_then(|s| s.data.as_ref())
                .is_some_and(|d| d.contains_key(&f.key))
        };
        files.iter().filter(|f| !has(f)).map(|f| format!("{}/{}", f.secret, f.key)).collect()
    }
}
