//! Leader election through a `coordination.k8s.io/v1` Lease, so two or more replicas of the
//! operator can run and exactly one acts.
//!
//! The Lease lasts [`LEASE_DURATION`] and is renewed [`RENEW_BEFORE`] before it expires. The
//! leader stops acting as soon as it learns it is no longer the holder, and also when a
//! renewal fails: it cannot know whether another replica took over, so it assumes so. Its
//! requests to the Lease time out well inside the renew margin, so a hung API connection
//! turns into a failed renewal before the Lease can expire under a leader that still acts.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tracing::{info, warn};

use super::StartError;

/// How long a Lease stays valid without renewal: the longest a crashed leader blocks the
/// next one.
pub const LEASE_DURATION: u64 = 15;
/// How long before expiry the leader renews.
pub const RENEW_BEFORE: u64 = 5;
/// Timeout of each request about the Lease, shorter than [`RENEW_BEFORE`].
pub const LEASE_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// This replica's stake in the Lease.
pub struct Leadership {
    manager: LeaseManager,
    identity: String,
    lease: String,
    namespace: String,
}

impl Leadership {
    /// Prepares the Lease `namespace/lease` (creating it when missing) for `identity`.
    pub async fn new(
        config: &kube::Config,
        namespace: &str,
        lease: &str,
        identity: &str,
    ) -> Result<Leadership, StartError> {
        let mut config = config.clone();
        config.read_timeout = Some(LEASE_REQUEST_TIMEOUT);
        config.write_timeout = Some(LEASE_REQUEST_TIMEOUT);
        config.connect_timeout = Some(LEASE_REQUEST_TIMEOUT);
        let client = Client::try_from(config).map_err(StartError::Config)?;
        let manager = LeaseManagerBuilder::new(client, lease)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_DURATION)
            .with_grace(RENEW_BEFORE)
            .with_field_manager(format!("mongo-operator/{identity}"))
            .build()
            .await
            .map_err(|e| StartError::Lease { lease: format!("{namespace}/{lease}"), message: e.to_string() })?;
        Ok(Leadership {
            manager,
            identity: identity.to_string(),
            lease: lease.to_string(),
            namespace: namespace.to_string(),
        })
    }

    /// Resolves once this replica holds the Lease. Errors while waiting (the API server away)
    /// are logged and retried: a standby has nothing to protect.
    pub async fn acquired(&self) {
        info!(lease = %self.name(), identity = %self.identity, "waiting for the leader Lease");
        loop {
            match self.manager.changed().await {
                Ok(true) => {
                    info!(lease = %self.name(), identity = %self.identity, "acquired the leader Lease");
                    return;
                }
                Ok(false) => {}
                Err(error) => {
                    warn!(lease = %self.name(), %error, "cannot read the leader Lease; trying again");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }

    /// Resolves, with the reason, when this replica must stop acting: another replica holds
    /// the Lease, or a renewal failed.
    pub async fn lost(&self) -> String {
        loop {
            match self.manager.changed().await {
                Ok(true) => {}
                Ok(false) => return format!("another replica holds the Lease {}", self.name()),
                Err(error) => return format!("cannot renew the Lease {}: {error}", self.name()),
            }
        }
    }

    /// Gives the Lease up at shutdown, so a standby takes over at once instead of after
    /// [`LEASE_DURATION`].
    pub async fn release(&self) {
        match self.manager.release().await {
            Ok(()) => info!(lease = %self.name(), "released the leader Lease"),
            Err(error) => warn!(lease = %self.name(), %error, "cannot release the leader Lease; it expires by itself"),
        }
    }

    fn name(&self) -> String {
        format!("{}/{}", self.namespace, self.lease)
    }
}
