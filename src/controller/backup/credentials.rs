//! The operator's own access to a destination, for pruning: the same secret keys the backup
//! Job mounts, read from the Secrets instead of files.

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;

use crate::api::Destination;
use crate::backup::files::destination_file;
use crate::backup::store::StoreCredentials;
use crate::build::backup_job::destination_files;
use crate::controller::error::{Error, KubeContext};

/// The credentials of `destination`, read from its Secrets in `namespace`.
pub async fn from_secrets(
    client: &Client,
    namespace: &str,
    destination: &Destination,
) -> Result<StoreCredentials, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut credentials = StoreCredentials::default();
    for file in destination_files(destination) {
        let secret = api.get(&file.secret).await.doing(|| format!("reading Secret {}", file.secret))?;
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&file.key))
            .map(|v| String::from_utf8_lossy(&v.0).trim_end_matches(['\n', '\r']).to_string())
            .ok_or_else(|| Error::Secret {
                secret: file.secret.clone(),
                problem: format!("has no key {}", file.key),
            })?;
        let slot = match file.path.rsplit('/').next() {
            Some(destination_file::ACCESS_KEY_ID) => &mut credentials.access_key_id,
            Some(destination_file::SECRET_ACCESS_KEY) => &mut credentials.secret_access_key,
            Some(destination_file::SERVICE_ACCOUNT_KEY) => &mut credentials.service_account_key,
            Some(destination_file::AZURE_ACCESS_KEY) => &mut credentials.azure_access_key,
            Some(destination_file::CA) => {
                credentials.ca_pem = Some(value.into_bytes());
                continue;
            }
            _ => continue,
        };
        *slot = Some(value);
    }
    Ok(credentials)
}

/// Which of `files` are missing (no Secret, or no such key in it), as "secret/key".
pub async fn missing(
    client: &Client,
    namespace: &str,
    files: &[crate::build::backup_job::SecretFile],
) -> Result<Vec<String>, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut out = Vec::new();
    for file in files {
        let secret = api.get_opt(&file.secret).await.doing(|| format!("reading Secret {}", file.secret))?;
        let has = secret.as_ref().and_then(|s| s.data.as_ref()).is_some_and(|d| d.contains_key(&file.key));
        if !has {
            out.push(format!("{}/{}", file.secret, file.key));
        }
    }
    Ok(out)
}
