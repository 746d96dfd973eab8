//! The process behind `mongo-operator run`: connects to the API server, checks that the CRDs
//! are installed, serves its HTTP endpoints, waits for the leader Lease, runs the controllers
//! until SIGTERM or SIGINT (or until it loses the Lease), and shuts down cleanly.

pub mod http;
pub mod leader;

use std::future::Future;

use futures::FutureExt;

use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use thiserror::Error;
use tracing::info;

use std::sync::Arc;

use crate::api::{MongoBackup, MongoCluster, NetworkPolicyAttachment};
use crate::build::network_policy::{DnsPeer, OperatorPeer};
use crate::controller::cluster::{self, Scope};
use crate::controller::{AdminPolicy, Context, Settings};
use crate::mongo::{DriverAdmin, Timeouts};
use crate::telemetry::readiness::cache_name;
use crate::telemetry::{LogLevel, Metrics, Readiness};

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
    /// The leader Lease could not be set up.
    #[error(
        "cannot use the leader Lease {lease}: {message}; check that its namespace exists and RBAC lets the operator get, create and patch Leases there"
    )]
    Lease {
        /// `namespace/name` of the Lease.
        lease: String,
        /// What went wrong.
        message: String,
    },
    /// This replica stopped leading while its controllers ran; it stops at once so that
    /// two replicas never act together, and its Pod restarts as a standby.
    #[error("lost leadership: {0}")]
    LostLease(String),
    /// The HTTP endpoints could not listen.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address asked for.
        address: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
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

/// Builds a client from the environment (in-cluster, `KUBECONFIG`, or `~/.kube/config`), and
/// returns its configuration too (the leader Lease uses its own client, with short timeouts).
pub async fn connect() -> Result<(Client, kube::Config), StartError> {
    crate::tls::install_crypto_provider();
    let config = kube::Config::infer().await.map_err(|e| StartError::Config(kube::Error::InferConfig(e)))?;
    let client = Client::try_from(config.clone()).map_err(StartError::Config)?;
    let version = client.apiserver_version().await.map_err(StartError::Unreachable)?;
    info!(server = %version.git_version, "connected to the Kubernetes API server");
    Ok((client, config))
}

/// Checks that every kind this operator serves can be listed where it watches, which proves
/// its CRD is installed and served and that RBAC lets the operator read it there.
pub async fn check_crds(client: &Client, scopes: &[Scope]) -> Result<(), StartError> {
    for scope in scopes {
        check_kind::<MongoCluster>(client, scope).await?;
        check_kind::<MongoBackup>(client, scope).await?;
        check_kind::<NetworkPolicyAttachment>(client, scope).await?;
    }
    info!("all CustomResourceDefinitions are installed");
    Ok(())
}

async fn check_kind<K>(client: &Client, scope: &Scope) -> Result<(), StartError>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let crd = format!("{}.{}", K::plural(&()), K::group(&()));
    let api: Api<K> = crate::controller::watch_api(client, scope);
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
    /// Watch only these namespaces (comma-separated or repeated); all namespaces when unset.
    #[arg(long = "namespaces", alias = "namespace", env = "MONGO_OPERATOR_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Where to serve /metrics, /healthz and /readyz (port 0: any free port).
    #[arg(long, env = "MONGO_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: std::net::SocketAddr,
    /// Where to serve the run-time controls (/log-level): a loopback address only, reached
    /// with `kubectl port-forward` (port 0: any free port).
    #[arg(long, env = "MONGO_OPERATOR_CONTROLS_LISTEN", default_value = "127.0.0.1:8081")]
    pub controls_listen: std::net::SocketAddr,
    /// Take part in leader election, so that of several replicas exactly one acts.
    #[arg(long, env = "MONGO_OPERATOR_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// The namespace of the leader Lease (default: the operator's namespace).
    #[arg(long, env = "MONGO_OPERATOR_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// The name of the leader Lease.
    #[arg(long, env = "MONGO_OPERATOR_LEADER_ELECTION_LEASE", default_value = "mongo-operator")]
    pub leader_election_lease: String,
    /// The operator's own image, which mongod Pods' init container copies the binary from.
    #[arg(long, env = "MONGO_OPERATOR_IMAGE", default_value = concat!("mongo-operator:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// The cluster's DNS domain.
    #[arg(long, env = "MONGO_OPERATOR_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// This replica of the operator, for Events and the Lease (the Pod name in a Deployment).
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
    /// The namespace of the cluster's DNS resolver Pods: isolated members and Jobs may send
    /// DNS queries there and nowhere else.
    #[arg(long, env = "MONGO_OPERATOR_DNS_NAMESPACE", default_value = "kube-system")]
    pub dns_namespace: String,
    /// A label of the DNS resolver Pods (`key=value`, repeatable).
    #[arg(long = "dns-pod-label", value_parser = parse_label, default_value = "k8s-app=kube-dns")]
    pub dns_pod_labels: Vec<(String, String)>,
    /// A DNS resolver address outside Pods (repeatable), such as NodeLocal DNSCache's
    /// 169.254.20.10/32.
    #[arg(long = "dns-cidr")]
    pub dns_cidrs: Vec<String>,
    /// Let MongoClusters open a load balancer to address ranges outside private space
    /// (RFC 1918, RFC 6598, IPv6 unique-local). Off: such `sourceRanges` are refused.
    #[arg(long, env = "MONGO_OPERATOR_ALLOW_PUBLIC_LOAD_BALANCERS", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_public_load_balancers: bool,
    /// An object-store endpoint backups may use, as a URL prefix such as
    /// `https://s3.fr-par.scw.cloud` (repeatable, or comma-separated). Unset: any endpoint.
    #[arg(long = "allowed-endpoint", env = "MONGO_OPERATOR_ALLOWED_ENDPOINTS", value_delimiter = ',')]
    pub allowed_endpoints: Vec<String>,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not key=value")),
    }
}

impl RunOptions {
    /// The namespaces to watch, one controller set each; all namespaces when none is named.
    pub fn scopes(&self) -> Vec<Scope> {
        let mut named: Vec<&String> = self.namespaces.iter().filter(|n| !n.trim().is_empty()).collect();
        named.sort();
        named.dedup();
        if named.is_empty() {
            vec![Scope::All]
        } else {
            named.into_iter().map(|n| Scope::Namespace(n.trim().to_string())).collect()
        }
    }

    /// What the controllers are told about their surroundings.
    pub fn settings(&self) -> Settings {
        Settings {
            operator_image: self.image.clone(),
            cluster_domain: self.cluster_domain.clone(),
            operator_peer: OperatorPeer {
                namespace: self.operator_namespace.clone(),
                pod_labels: self.operator_pod_labels.iter().cloned().collect(),
                cidrs: self.operator_cidrs.clone(),
            },
            cluster_dns: DnsPeer {
                namespace: self.dns_namespace.clone(),
                pod_labels: self.dns_pod_labels.iter().cloned().collect(),
                cidrs: self.dns_cidrs.clone(),
            },
            admin_policy: AdminPolicy {
                allow_public_load_balancers: self.allow_public_load_balancers,
                allowed_endpoints: self.allowed_endpoints.iter().filter(|e| !e.trim().is_empty()).cloned().collect(),
            },
        }
    }

    fn identity(&self) -> String {
        // Two operators run by hand share no Pod name; the random part keeps them apart.
        self.instance.clone().unwrap_or_else(|| format!("mongo-operator-{:08x}", rand::random::<u32>()))
    }
}

/// What the process exposes about itself, made once in `main`.
pub struct Telemetry {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub log_level: Option<Arc<LogLevel>>,
}

/// Runs the operator until `shutdown` resolves, then lets in-flight reconciles finish.
pub async fn run(
    (client, config): (Client, kube::Config),
    options: RunOptions,
    telemetry: Telemetry,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), StartError> {
    let shutdown = shutdown.shared();
    let Telemetry { metrics, readiness, log_level } = telemetry;
    let endpoints = http::Endpoints { metrics: metrics.clone(), readiness: readiness.clone(), log_level };
    let (bound, server) = http::bind(options.listen, http::Listener::Public, endpoints.clone(), shutdown.clone())
        .await
        .map_err(|source| StartError::Listen { address: options.listen, source })?;
    info!(address = %bound, "serving /metrics, /healthz and /readyz");
    let server = tokio::spawn(server);
    let (controls_bound, controls) =
        http::bind(options.controls_listen, http::Listener::Controls, endpoints, shutdown.clone())
            .await
            .map_err(|source| StartError::Listen { address: options.controls_listen, source })?;
    info!(address = %controls_bound, "serving the run-time controls (/log-level) on loopback");
    let controls = tokio::spawn(controls);

    let result = lead(client, config, options, metrics, readiness, shutdown).await;
    server.abort();
    controls.abort();
    result
}

async fn lead(
    client: Client,
    config: kube::Config,
    options: RunOptions,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: futures::future::Shared<impl Future<Output = ()> + Send + Sync + 'static>,
) -> Result<(), StartError> {
    let scopes = options.scopes();
    check_crds(&client, &scopes).await?;
    let identity = options.identity();
    let leadership = if options.leader_election {
        let namespace = options.leader_election_namespace.as_deref().unwrap_or(&options.operator_namespace);
        Some(leader::Leadership::new(&config, namespace, &options.leader_election_lease, &identity).await?)
    } else {
        None
    };
    readiness.standby();
    if let Some(leadership) = &leadership {
        tokio::select! {
            () = leadership.acquired() => {}
            () = shutdown.clone() => {
                info!("stopped while waiting for the leader Lease");
                return Ok(());
            }
        }
    }
    metrics.set_leader(true);

    let caches = scopes.iter().flat_map(|scope| {
        ["MongoCluster", "MongoBackup", "NetworkPolicyAttachment"].map(|kind| cache_name(kind, scope.namespace()))
    });
    readiness.leading(caches);
    let settings = options.settings();
    let admin = DriverAdmin::new(Timeouts::default());
    let ctx = Arc::new(
        Context::new(client, admin, settings, Some(identity)).with_telemetry(metrics.clone(), readiness.clone()),
    );
    // Clients of members the operator has not needed for a while go, and their heartbeats with
    // them: a cluster nobody changes costs no traffic to its members.
    let sweeper = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(crate::mongo::IDLE_CLIENT / 3);
            loop {
                every.tick().await;
                let dropped = ctx.admin.drop_idle(crate::mongo::IDLE_CLIENT);
                if dropped > 0 {
                    tracing::debug!(dropped, kept = ctx.admin.clients(), "closed idle member connections");
                }
            }
        })
    };
    info!(?scopes, "mongo-operator is running");
    let controllers = futures::future::join_all(scopes.into_iter().map(|scope| {
        futures::future::join3(
            cluster::run(ctx.clone(), scope.clone(), shutdown.clone()),
            crate::controller::backup::run(ctx.clone(), scope.clone(), shutdown.clone()),
            crate::controller::attachment::run(ctx.clone(), scope, shutdown.clone()),
        )
    }))
    .map(|_| ());
    // In-flight reconciles may finish after the signal, but only within a grace period: one
    // stuck on an unreachable member must not outlast the Pod's termination grace period.
    let deadline = async {
        shutdown.clone().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let lost = async {
        match &leadership {
            Some(l) => l.lost().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = controllers => info!("stopped cleanly"),
        () = deadline => tracing::warn!(grace = ?SHUTDOWN_GRACE, "reconciles still running after the grace period; stopping anyway"),
        why = lost => {
            // Dropping the controllers here cancels every reconcile at its next await: from
            // now on another replica may act, and two must never act at once.
            metrics.set_leader(false);
            return Err(StartError::LostLease(why));
        }
    }
    sweeper.abort();
    metrics.set_leader(false);
    if let Some(leadership) = &leadership {
        leadership.release().await;
    }
    Ok(())
}
