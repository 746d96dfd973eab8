//! What `/readyz` answers. A standby replica (one waiting for the leader Lease) is ready as
//! soon as it has checked the API server and the CRDs, so a rolling update of the Deployment
//! can proceed; the leader is ready once every controller's cache has been filled, so it
//! never acts on a partial view of the cluster.

use std::collections::BTreeSet;
use std::sync::Mutex;

#[derive(Debug, Default)]
enum Role {
    #[default]
    Starting,
    Standby,
    Leader,
}

#[derive(Debug, Default)]
struct State {
    role: Role,
    expected: BTreeSet<String>,
    synced: BTreeSet<String>,
}

/// Shared between the controllers (which report their caches) and the HTTP server.
#[derive(Debug, Default)]
pub struct Readiness {
    state: Mutex<State>,
}

impl Readiness {
    /// Started and checked, waiting for the Lease.
    pub fn standby(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.role = Role::Standby;
        }
    }

    /// Leading: ready once each of these caches is synced.
    pub fn leading(&self, caches: impl IntoIterator<Item = String>) {
        if let Ok(mut s) = self.state.lock() {
            s.role = Role::Leader;
            s.expected = caches.into_iter().collect();
        }
    }

    /// A controller's cache holds the full list of its objects.
    pub fn synced(&self, cache: String) {
        tracing::info!(%cache, "cache synced");
        if let Ok(mut s) = self.state.lock() {
            s.synced.insert(cache);
        }
    }

    /// `Ok(what)` when ready, `Err(why not)` otherwise.
    pub fn check(&self) -> Result<String, String> {
        let Ok(s) = self.state.lock() else { return Err("readiness state is poisoned".into()) };
        match s.role {
            Role::Starting => Err("starting: checking the API server and the CRDs".into()),
            Role::Standby => Ok("standby: another replica holds the leader Lease".into()),
            Role::Leader => {
                let waiting: Vec<&String> = s.expected.difference(&s.synced).collect();
                if waiting.is_empty() {
                    Ok(format!("leader: {} caches synced, controllers running", s.synced.len()))
                } else {
                    Err(format!("leader: waiting for caches {waiting:?}"))
                }
            }
        }
    }
}

/// The name a controller reports its cache under: its kind and where it watches.
pub fn cache_name(kind: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{kind} in {ns}"),
        None => format!("{kind} in all namespaces"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_is_ready_only_with_every_cache_synced() {
        let r = Readiness::default();
        assert!(r.check().is_err(), "not ready while starting");
        r.standby();
        assert!(r.check().is_ok(), "a standby is ready");
        r.leading([cache_name("MongoCluster", None), cache_name("MongoBackup", None)]);
        let why = r.check().unwrap_err();
        assert!(why.contains("MongoBackup in all namespaces"), "{why}");
        r.synced(cache_name("MongoCluster", None));
        assert!(r.check().is_err());
        r.synced(cache_name("MongoBackup", None));
        assert_eq!(r.check().unwrap(), "leader: 2 caches synced, controllers running");
    }
}
