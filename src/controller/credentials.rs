//! The operator's own view of the Secret keys a backup, restore or prune Job reads: whether
//! they exist and may be used (before a Job is started). The same keys the Job mounts as
//! files, read from the Secrets instead, each Secret once.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;

use crate::build::backup_job::SecretFile;
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
