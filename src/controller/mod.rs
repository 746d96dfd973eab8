//! Controllers, one module per kind. A reconcile reads the world, calls the pure layers
//! (`build`, `replset`), applies with server-side apply, writes status, and returns when it
//! next needs to look. It never sleeps and never polls on a fixed interval: watches wake it,
//! and so does the time a step asked for.

pub mod attachment;
pub mod backup;
pub mod cluster;
mod credentials;
mod error;
mod events;
mod job_outcome;
pub mod ssa;
mod watch;

use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

pub use error::Error;
pub use events::Events;
pub use watch::api as watch_api;

use crate::mongo::MongoAdmin;
use crate::telemetry::{Metrics, Readiness};

/// What the controllers need to know about their surroundings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The operator's own image: the init container of mongod Pods copies the binary from it.
    pub operator_image: String,
    /// The cluster's DNS domain, for member host names and connection strings.
    pub cluster_domain: String,
    /// Where the operator's own Pods are, for the members' NetworkPolicy.
    pub operator_peer: crate::build::network_policy::OperatorPeer,
    /// Where the cluster's DNS resolver is, the only DNS members and Jobs may reach.
    pub cluster_dns: crate::build::network_policy::DnsPeer,
    /// What the administrator who installed the operator lets the editors of its resources do
    /// beyond the safe defaults.
    pub admin_policy: AdminPolicy,
}

/// Choices only the administrator who installs the operator makes (its flags): whoever can
/// edit a MongoCluster or a MongoBackup in a namespace cannot widen them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdminPolicy {
    /// Load balancers may admit address ranges outside private space (`sourceRanges`).
    pub allow_public_load_balancers: bool,
    /// The object-store endpoints backups may use, as URL prefixes (scheme and host at least);
    /// empty: any endpoint.
    pub allowed_endpoints: Vec<String>,
}

/// Shared by every reconcile.
pub struct Context<A: MongoAdmin> {
    pub client: Client,
    pub admin: A,
    pub settings: Settings,
    pub recorder: Recorder,
    /// Counted by every reconcile, served on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Told when each controller's cache is synced, served on `/readyz`.
    pub readiness: Arc<Readiness>,
}

impl<A: MongoAdmin> Context<A> {
    pub fn new(client: Client, admin: A, settings: Settings, instance: Option<String>) -> Context<A> {
        let reporter = Reporter { controller: "mongo-operator".into(), instance };
        let recorder = Recorder::new(client.clone(), reporter);
        let (metrics, readiness) = (Arc::default(), Arc::default());
        Context { client, admin, settings, recorder, metrics, readiness }
    }

    /// The same, reporting to the process's metrics and readiness.
    pub fn with_telemetry(mut self, metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Context<A> {
        self.metrics = metrics;
        self.readiness = readiness;
        self
    }
}

/// A time as status and Events write it, to the second (none outside what the API can hold).
pub(crate) fn to_time(
    t: chrono::DateTime<chrono::Utc>,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> {
    k8s_openapi::jiff::Timestamp::from_second(t.timestamp())
        .ok()
        .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time)
}

/// The sooner of two times to look again.
pub fn sooner(a: Option<std::time::Duration>, b: Option<std::time::Duration>) -> Option<std::time::Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
