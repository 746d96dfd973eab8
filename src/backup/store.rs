//! Opening a destination's object store, with credentials that either the backup Job reads
//! from mounted files or the operator reads from Secrets.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path;
use object_store::{Certificate, ClientOptions, ObjectStore};

use crate::api::Destination;

/// The secret material a destination needs, whichever kind it is.
#[derive(Clone, Default)]
pub struct StoreCredentials {
    /// S3 access key ID.
    pub access_key_id: Option<String>,
    /// S3 secret access key.
    pub secret_access_key: Option<String>,
    /// PEM CA bundle for an S3 endpoint with a private certificate authority.
    pub ca_pem: Option<Vec<u8>>,
    /// GCS service-account JSON key.
    pub service_account_key: Option<String>,
    /// Azure storage account access key.
    pub azure_access_key: Option<String>,
}

impl std::fmt::Debug for StoreCredentials {
    // Never print secret material, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCredentials").finish_non_exhaustive()
    }
}

/// A destination opened for use: the store, the key prefix inside it, and how to name it.
#[derive(Debug, Clone)]
pub struct OpenStore {
    /// The destination's name from the spec.
    pub name: String,
    /// The store itself.
    pub store: Arc<dyn ObjectStore>,
    /// Key prefix from the spec, without leading or trailing slashes ("" when unset).
    pub prefix: String,
    /// `s3://bucket`, `gs://bucket` or `az://account/container`, for URLs in status.
    pub url_base: String,
}

impl OpenStore {
    /// The full key of `relative` under this destination's prefix.
    pub fn key(&self, relative: &str) -> Path {
        Path::from(join_key(&self.prefix, relative))
    }

    /// A URL naming an object of this store, for status and the manifest.
    pub fn url(&self, key: &Path) -> String {
        format!("{}/{}", self.url_base, key)
    }
}

/// Why a destination cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A credential the destination needs is missing.
    #[error("destination {destination}: {what} is missing")]
    Missing {
        /// The destination's name.
        destination: String,
        /// The credential.
        what: &'static str,
    },
    /// The object_store client refused the configuration.
    #[error("destination {destination}: {}", summary(source))]
    Config {
        /// The destination's name.
        destination: String,
        /// The client's error.
        source: object_store::Error,
    },
    /// The destination names no kind of store.
    #[error("destination {0} names none of s3, gcs or azure")]
    NoKind(String),
}

/// What a store's error says, without anything the remote server wrote: the kind of failure
/// and, for an HTTP error, its status. A response body is text whoever runs the endpoint
/// chose; the caller logs the full error, and only this goes into a status, a termination
/// message or an Event that every reader of the namespace sees.
pub fn summary(error: &object_store::Error) -> String {
    use object_store::Error as E;
    let text = error.to_string();
    let kind = match error {
        E::NotFound { .. } => "not found",
        E::PermissionDenied { .. } => "permission denied",
        E::Unauthenticated { .. } => "the credentials were refused",
        E::AlreadyExists { .. } => "the object already exists",
        E::Precondition { .. } => "a precondition failed",
        E::NotModified { .. } => "not modified",
        E::NotSupported { .. } | E::NotImplemented { .. } => "not supported by the store",
        E::InvalidPath { .. } => "an invalid object path",
        E::UnknownConfigurationKey { .. } => "an unknown configuration key",
        _ if text.contains("error sending request") || text.contains("onnection refused") => {
            "the store could not be reached"
        }
        _ => "the request failed",
    };
    match http_status(&text) {
        Some(status) => format!("{kind} (HTTP {status})"),
        None => kind.to_string(),
    }
}

/// The status ("403 Forbidden") of object_store's "Server returned non-2xx status code: 403
/// Forbidden: <body>", without the body.
fn http_status(text: &str) -> Option<String> {
    let rest = text.split_once("status code: ")?.1;
    let status = rest.split(':').next()?.trim();
    let well_formed = status.len() <= 40
        && status
            .split_whitespace()
            .next()
            .is_some_and(|code| code.len() == 3 && code.chars().all(|c| c.is_ascii_digit()))
        && status.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-');
    well_formed.then(|| status.to_string())
}

/// Opens `destination` with `credentials`.
pub fn open(destination: &Destination, credentials: &StoreCredentials) -> Result<OpenStore, StoreError> {
    let name = destination.name.clone();
    let config = |source| StoreError::Config { destination: name.clone(), source };
    let missing = |what| StoreError::Missing { destination: name.clone(), what };
    let mut options = ClientOptions::new();
    if let Some(pem) = &credentials.ca_pem {
        for certificate in Certificate::from_pem_bundle(pem).map_err(config)? {
            options = options.with_root_certificate(certificate);
        }
    }
    if let Some(s3) = &destination.s3 {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&s3.bucket)
            .with_region(&s3.region)
            .with_virtual_hosted_style_request(!s3.force_path_style)
            .with_access_key_id(credentials.access_key_id.clone().ok_or_else(|| missing("the access key ID"))?)
            .with_secret_access_key(
                credentials.secret_access_key.clone().ok_or_else(|| missing("the secret access key"))?,
            );
        if let Some(endpoint) = &s3.endpoint {
            // Plain HTTP only when the user wrote an http:// endpoint (a store on a private
            // network); AWS itself is always HTTPS.
            options = options.with_allow_http(endpoint.starts_with("http://"));
            builder = builder.with_endpoint(endpoint);
        }
        let store = builder.with_client_options(options).build().map_err(config)?;
        return Ok(opened(&name, Arc::new(store), s3.prefix.as_deref(), format!("s3://{}", s3.bucket)));
    }
    if let Some(gcs) = &destination.gcs {
        let key = credentials.service_account_key.clone().ok_or_else(|| missing("the service-account key"))?;
        let store = GoogleCloudStorageBuilder::new()
            .with_bucket_name(&gcs.bucket)
            .with_service_account_key(key)
            .with_client_options(options)
            .build()
            .map_err(config)?;
        return Ok(opened(&name, Arc::new(store), gcs.prefix.as_deref(), format!("gs://{}", gcs.bucket)));
    }
    if let Some(azure) = &destination.azure {
        let key = credentials.azure_access_key.clone().ok_or_else(|| missing("the access key"))?;
        let store = MicrosoftAzureBuilder::new()
            .with_account(&azure.account)
            .with_container_name(&azure.container)
            .with_access_key(key)
            .with_client_options(options)
            .build()
            .map_err(config)?;
        let url_base = format!("az://{}/{}", azure.account, azure.container);
        return Ok(opened(&name, Arc::new(store), azure.prefix.as_deref(), url_base));
    }
    Err(StoreError::NoKind(name))
}

fn opened(name: &str, store: Arc<dyn ObjectStore>, prefix: Option<&str>, url_base: String) -> OpenStore {
    OpenStore { name: name.to_string(), store, prefix: trim(prefix), url_base }
}

/// Where one backup's objects live under a destination's prefix: `<cluster>/<backup>/`.
pub fn backup_dir(cluster: &str, backup: &str) -> String {
    format!("{cluster}/{backup}")
}

/// The key of one backup's manifest in `destination`, exactly where a backup writes it, for
/// finding a backup whose MongoBackup recorded no path.
pub fn manifest_key(destination: &Destination, cluster: &str, backup: &str) -> String {
    join_key(
        &destination_prefix(destination),
        &format!("{}/{}", backup_dir(cluster, backup), crate::backup::plan::MANIFEST_NAME),
    )
}

/// The destination's prefix, without leading or trailing slashes ("" when it has none).
pub fn destination_prefix(destination: &Destination) -> String {
    let prefix = destination
        .s3
        .as_ref()
        .and_then(|d| d.prefix.as_deref())
        .or_else(|| destination.gcs.as_ref().and_then(|d| d.prefix.as_deref()))
        .or_else(|| destination.azure.as_ref().and_then(|d| d.prefix.as_deref()));
    trim(prefix)
}

fn trim(prefix: Option<&str>) -> String {
    prefix.unwrap_or_default().trim_matches('/').to_string()
}

fn join_key(prefix: &str, relative: &str) -> String {
    let relative = relative.trim_matches('/');
    if prefix.is_empty() { relative.to_string() } else { format!("{prefix}/{relative}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_keeps_the_status_and_drops_the_body() {
        let error = object_store::Error::Generic {
            store: "S3",
            source: "Error performing PUT http://127.0.0.1:9000/b/k in 3ms - Server returned non-2xx status code: 403 Forbidden: <Error><Code>SignatureDoesNotMatch</Code><Message>secret detail</Message></Error>".into(),
        };
        assert_eq!(summary(&error), "the request failed (HTTP 403 Forbidden)");
        let refused =
            object_store::Error::Generic { store: "S3", source: "error sending request: Connection refused".into() };
        assert_eq!(summary(&refused), "the store could not be reached");
    }
    use crate::api::{S3CredentialsReference, S3Destination};

    fn s3(prefix: Option<&str>) -> Destination {
        Destination {
            name: "ovh".into(),
            s3: Some(S3Destination {
                bucket: "backups".into(),
                prefix: prefix.map(str::to_string),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: "gra".into(),
                force_path_style: true,
                credentials_secret_ref: S3CredentialsReference {
                    name: "s3".into(),
                    access_key_id_key: "a".into(),
                    secret_access_key_key: "s".into(),
                },
                ca_secret_ref: None,
            }),
            gcs: None,
            azure: None,
        }
    }

    fn keys() -> StoreCredentials {
        StoreCredentials {
            access_key_id: Some("AK".into()),
            secret_access_key: Some("SK".into()),
            ..Default::default()
        }
    }

    #[test]
    fn keys_sit_under_the_prefix_without_doubled_slashes() {
        let store = open(&s3(Some("/prod/orders/")), &keys()).expect("opens");
        let key = store.key(&format!("{}/manifest.json", backup_dir("orders", "orders-202611231200")));
        assert_eq!(key.as_ref(), "prod/orders/orders/orders-202611231200/manifest.json");
        assert_eq!(store.url(&key), "s3://backups/prod/orders/orders/orders-202611231200/manifest.json");
        assert_eq!(manifest_key(&s3(Some("/prod/orders/")), "orders", "orders-202611231200"), key.as_ref());
        let bare = open(&s3(None), &keys()).expect("opens");
        assert_eq!(bare.key("a/b").as_ref(), "a/b");
    }

    #[test]
    fn a_missing_secret_key_is_named() {
        let credentials = StoreCredentials { access_key_id: Some("AK".into()), ..Default::default() };
        let error = open(&s3(None), &credentials).expect_err("refused");
        assert_eq!(error.to_string(), "destination ovh: the secret access key is missing");
    }

    #[test]
    fn a_bad_ca_bundle_is_refused() {
        let credentials = StoreCredentials {
            ca_pem: Some(b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".to_vec()),
            ..keys()
        };
        assert!(open(&s3(None), &credentials).is_err());
    }
}
