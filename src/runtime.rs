//! The process behind `mongo-operator run`: connects to the API server, checks that the CRDs
//! are installed, runs until SIGTERM or SIGINT, and shuts down cleanly.

use std::future::Future;

use futures::FutureExt;

use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use thiserror::Error;
use tracing::info;

use std::sync::Arc;

use crate::api::{MongoBackup, MongoCluster, NetworkPolicyAttachment};
use crate::build::network_policy::OperatorPeer;
use crate::controller::cluster::{self, Scope};
use crate::controller::{Context, Settings};
use crate::mongo::{DriverAdmin, Timeouts};

/// Why the operator could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// No kubeconfig or in-cluster configuration could be loaded.
    #[error("cannot load a Kubernetes configuration (in-cluster, KUBECONFIG or ~/.kube/config): {0}")]
    Config(#[source] kube::Error),
    /// The API server did not answer.
    #[error("cannot reach the Kubernetes API server: {0}")]
    Unreachable(#[source] kube::Error),
    /// A CRD is missing.
    #[error(
        "the CustomResourceDefinition {crd} is not installed in this cluster; install the CRDs first: \
         `mongo-operator crd | kubectl apply --server-side -f -` (or install the Helm chart)"
    )]
    CrdMissing {
        /// Full name of the missing CRD, `<plural>.<group>`.
        crd: String,
    },
    /// The operator may not read one of its own kinds.
    #[error("the operator may not list {crd}: {message}; check its ServiceAccount's RBAC")]
    Forbidden {
        /// Full name of the CRD.
        crd: String,
        /// The API server's message.
        message: String,
    },
    /// Any other API error while checking a CRD.
    #[error("checking {crd} failed: {source}")]
    Check {
        /// Full name of the CRD.
        crd: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// Builds a client from the environment (in-cluster, `KUBECONFIG`, or `~/.kube/config`).
pub async fn connect() -> Result<Client, StartError> {
    crate::tls::install_crypto_provider();
    let client = Client::try_default().await.map_err(StartError::Config)?;
    let version = client.apiserver_version().await.map_err(StartError::Unreachable)?;
    info!(server = %version.git_version, "connected to the Kubernetes API server");
    Ok(client)
}

/// Checks that every kind this operator serves can be listed, which proves its CRD is
/// installed and served and that RBAC lets the operator read it.
pub async fn check_crds(client: &Client) -> Result<(), StartError> {
    check_kind::<MongoCluster>(client).await?;
    check_kind::<MongoBackup>(client).await?;
    check_kind::<NetworkPolicyAttachment>(client).await?;
    info!("all CustomResourceDefinitions are installed");
    Ok(())
}

async fn check_kind<K>(client: &Client) -> Result<(), StartError>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let crd = format!("{}.{}", K::plural(&()), K::group(&()));
    let api: Api<K> = Api::all(client.clone());
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        // An unserved resource answers a bare "404 page not found" with no Status body, so
        // match the code rather than the reason.
        Err(kube::Error::Api(status)) if status.code == 404 => Err(StartError::CrdMissing { crd }),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            Err(StartError::Forbidden { crd, message: status.message })
        }
        Err(source) => Err(StartError::Check { crd, source }),
    }
}

/// Resolves when the process receives SIGTERM (Kubernetes stopping the Pod) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => info!("received SIGTERM, shutting down"),
                    _ = tokio::signal::ctrl_c() => info!("received SIGINT, shutting down"),
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the operator");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// How long in-flight reconciles may run after SIGTERM, well inside Kubernetes' default
/// 30-second termination grace period.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Options of `mongo-operator run`.
#[derive(Clone, Debug, clap::Args)]
pub struct RunOptions {
    /// Watch only this namespace (all namespaces when unset).
    #[arg(long, env = "MONGO_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// The operator's own image, which mongod Pods' init container copies the binary from.
    #[arg(long, env = "MONGO_OPERATOR_IMAGE", default_value = concat!("mongo-operator:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// The cluster's DNS domain.
    #[arg(long, env = "MONGO_OPERATOR_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// This replica of the operator, for Events (the Pod name in a Deployment).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
    /// The namespace the operator's Pods run in: isolated members let its connections in.
    #[arg(long, env = "POD_NAMESPACE", default_value = "mongo-operator")]
    pub operator_namespace: String,
    /// A label of the operator's Pods (`key=value`, repeatable): isolated members let Pods
    /// with all of them, in the operator's namespace, connect.
    #[arg(long = "operator-pod-label", value_parser = parse_label, default_value = "app.kubernetes.io/name=mongo-operator")]
    pub operator_pod_labels: Vec<(String, String)>,
    /// An address range the operator connects from when it runs outside the Kubernetes
    /// cluster (repeatable), admitted by isolated members.
    #[arg(long = "operator-cidr")]
    pub operator_cidrs: Vec<String>,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not key=value")),
    }
}

/// Runs the controllers until `shutdown` resolves, then lets in-flight reconciles finish.
pub async fn run(
    client: Client,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), StartError> {
    check_crds(&client).await?;
    let settings = Settings {
        operator_image: options.image,
        cluster_domain: options.cluster_domain,
        operator_peer: OperatorPeer {
            namespace: options.operator_namespace,
            pod_labels: options.operator_pod_labels.into_iter().collect(),
            cidrs: options.operator_cidrs,
        },
    };
    let admin = DriverAdmin::new(Timeouts::default());
    let ctx = Arc::new(Context::new(client, admin, settings, options.instance));
    let scope = match options.namespace {
        Some(ns) => Scope::Namespace(ns),
        None => Scope::All,
    };
    info!(?scope, "mongo-operator is running");
    let shutdown = shutdown.shared();
    let controllers = futures::future::join(
        cluster::run(ctx.clone(), scope.clone(), shutdown.clone()),
        futures::future::join(
            crate::controller::backup::run(ctx.clone(), scope.clone(), shutdown.clone()),
            crate::controller::attachment::run(ctx, scope, shutdown.clone()),
        ),
    )
    .map(|_| ());
    // In-flight reconciles may finish after the signal, but only within a grace period: one
    // stuck on an unreachable member must not outlast the Pod's termination grace period.
    let deadline = async {
        shutdown.await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = controllers => info!("stopped cleanly"),
        () = deadline => tracing::warn!(grace = ?SHUTDOWN_GRACE, "reconciles still running after the grace period; stopping anyway"),
    }
    Ok(())
}
