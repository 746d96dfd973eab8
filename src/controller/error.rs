//! Why a reconcile failed. Every variant says what was being done, and `reason` gives the
//! CamelCase word used in conditions, Events and metrics.

use thiserror::Error;

use crate::mongo::AdminError;

#[derive(Debug, Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// A command to mongod failed.
    #[error("{action}: {source}")]
    Mongo {
        action: String,
        #[source]
        source: AdminError,
    },
    /// The user's mongod settings could not be rendered.
    #[error("rendering mongod.conf: {0}")]
    Render(#[from] serde_yaml::Error),
    /// An object the API server returned lacks a field it always sets.
    #[error("{0} has no {1}")]
    Incomplete(&'static str, &'static str),
    /// A Secret the operator relies on is missing a key or holds something unusable.
    #[error("Secret {secret}: {problem}")]
    Secret { secret: String, problem: String },
    /// A certificate could not be issued or read, or the operator's CA file written.
    #[error("certificates: {0}")]
    Certificate(String),
    /// An object the operator built could not be encoded (a bug, not bad input).
    #[error("encoding {what}: {source}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// A CamelCase reason for conditions, Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "KubernetesApiError",
            Error::Mongo { source, .. } => source.reason(),
            Error::Render(_) => "InvalidMongodConfig",
            Error::Incomplete(..) => "IncompleteObject",
            Error::Secret { .. } => "InvalidSecret",
            Error::Certificate(_) => "CertificateError",
            Error::Encode { .. } => "EncodingError",
        }
    }

    /// Whether retrying soon may help (the API server or a member was briefly away).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kube { .. } => true,
            Error::Mongo { source, .. } => source.is_transient(),
            _ => false,
        }
    }
}

/// Adds what was being done to a Kubernetes error.
pub trait KubeContext<T> {
    fn doing(self, action: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> KubeContext<T> for Result<T, kube::Error> {
    fn doing(self, action: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Kube { action: action(), source })
    }
}

impl<T> KubeContext<T> for Result<T, AdminError> {
    fn doing(self, action: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Mongo { action: action(), source })
    }
}
