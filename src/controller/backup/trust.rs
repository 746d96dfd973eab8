//! What the editor of a MongoBackup (or of a MongoCluster restored from one) may point the
//! operator's Jobs at. Whoever writes `destinations` chooses where store credentials are sent
//! (S3 signing sends the access key ID in clear to the endpoint) and which Secrets are mounted
//! into a Job that talks to that endpoint. So an administrator can limit the endpoints (the
//! operator's `--allowed-endpoint`), and a Secret is used as store credentials only when its
//! owner labelled it for that.

use crate::api::{Destination, SecretKeyReference};
use crate::build::backup_job::{SecretFile, destination_files};
use crate::controller::AdminPolicy;
use crate::controller::credentials::SecretsRead;

/// The label a Secret needs, with the value "true", to be used as an object store's
/// credentials (or CA): naming a Secret in a MongoBackup is not enough to send it anywhere.
pub const CREDENTIALS_LABEL: &str = "mongo.operator.rs/backup-credentials";

/// The shortest passphrase a backup is encrypted with. Whoever can read a bucket can try
/// passphrases offline against the archive's header for as long as they like; scrypt slows
/// each try, length is what makes the tries hopeless. `openssl rand -base64 32` gives 44.
pub const MIN_KEY_CHARS: usize = 32;

/// Why the backup's passphrase is too weak, if it is.
pub fn weak_key(secrets: &SecretsRead, key: &SecretKeyReference) -> Option<String> {
    let file = SecretFile { secret: key.name.clone(), key: key.key.clone(), path: String::new() };
    let length = secrets.text(&file)?.chars().count();
    (length < MIN_KEY_CHARS).then(|| {
        format!(
            "the encryption key in Secret {} (key {}) has {length} characters; at least {MIN_KEY_CHARS} are needed \
             (for example the output of: openssl rand -base64 32)",
            key.name, key.key
        )
    })
}

/// The URL a destination's requests go to.
pub fn endpoint(destination: &Destination) -> Option<String> {
    if let Some(s3) = &destination.s3 {
        return Some(match &s3.endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_string(),
            None => format!("https://s3.{}.amazonaws.com", s3.region),
        });
    }
    if destination.gcs.is_some() {
        return Some("https://storage.googleapis.com".into());
    }
    destination.azure.as_ref().map(|a| format!("https://{}.blob.core.windows.net", a.account))
}

/// Whether `endpoint` is `allowed` or below it: the same scheme and host (and port), and a
/// path under the allowed one. `https://s3.example.com` allows `https://s3.example.com/x`, not
/// `https://s3.example.com.evil.net`.
fn under(endpoint: &str, allowed: &str) -> bool {
    let allowed = allowed.trim().trim_end_matches('/');
    endpoint.eq_ignore_ascii_case(allowed)
        || (endpoint.len() > allowed.len()
            && endpoint[..allowed.len()].eq_ignore_ascii_case(allowed)
            && endpoint[allowed.len()..].starts_with('/'))
}

/// Why these destinations may not be used, if the administrator's allowlist refuses one.
pub fn endpoint_refusal<'a>(
    policy: &AdminPolicy,
    destinations: impl IntoIterator<Item = &'a Destination>,
) -> Option<String> {
    if policy.allowed_endpoints.is_empty() {
        return None;
    }
    let refused: Vec<String> = destinations
        .into_iter()
        .filter_map(|d| endpoint(d).map(|e| (d, e)))
        .filter(|(_, e)| !policy.allowed_endpoints.iter().any(|a| under(e, a)))
        .map(|(d, e)| format!("destination {} ({e})", d.name))
        .collect();
    (!refused.is_empty()).then(|| {
        format!(
            "{} is not among the object-store endpoints the operator's administrator allows ({})",
            refused.join(", "),
            policy.allowed_endpoints.join(", ")
        )
    })
}

/// The destinations' Secrets that exist but lack [`CREDENTIALS_LABEL`], as a message.
pub fn unlabelled_credentials<'a>(
    secrets: &SecretsRead,
    destinations: impl IntoIterator<Item = &'a Destination>,
) -> Option<String> {
    let files: Vec<SecretFile> = destinations.into_iter().flat_map(destination_files).collect();
    let names = secrets.without_label(&files, CREDENTIALS_LABEL, "true");
    (!names.is_empty()).then(|| {
        format!(
            "Secret(s) {} are named as object-store credentials but lack the label {CREDENTIALS_LABEL}=true, which \
             says that their owner lets backups send them to a store",
            names.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(name: &str, endpoint: Option<&str>) -> Destination {
        serde_json::from_value(serde_json::json!({
            "name": name,
            "s3": {"bucket": "b", "region": "fr-par", "endpoint": endpoint, "credentialsSecretRef": {"name": "keys"}},
        }))
        .expect("destination")
    }

    #[test]
    fn only_allowed_endpoints_and_paths_below_them_pass() {
        let policy = AdminPolicy {
            allowed_endpoints: vec!["https://s3.fr-par.scw.cloud/".into(), "https://s3.fr-par.amazonaws.com".into()],
            ..AdminPolicy::default()
        };
        let ok = [
            s3("scw", Some("https://s3.fr-par.scw.cloud")),
            s3("aws", None),
            s3("path", Some("https://S3.fr-par.scw.cloud/tenant")),
        ];
        assert_eq!(endpoint_refusal(&policy, &ok), None);
        for bad in ["https://s3.fr-par.scw.cloud.evil.net", "http://s3.fr-par.scw.cloud", "https://169.254.169.254"] {
            let refusal = endpoint_refusal(&policy, &[s3("x", Some(bad))]).expect("refused");
            assert!(refusal.contains(&format!("destination x ({bad})")), "{refusal}");
        }
        assert_eq!(endpoint_refusal(&AdminPolicy::default(), &[s3("any", Some("http://10.0.0.1:9000"))]), None);
    }
}
