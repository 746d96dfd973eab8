//! `mongo-operator probe`: the readiness, liveness and startup checks of mongod containers.
//!
//! A static binary sending `hello` to 127.0.0.1 (allowed without credentials), never a shell
//! or mongosh: those are slow under CPU pressure and have frozen in other operators' Pods.
//! Readiness passes for PRIMARY, SECONDARY and ARBITER, and also for a mongod that has never
//! been initiated: otherwise no member could become ready before `replSetInitiate`, which
//! needs every member to answer (see `mongod-pod-facts.md` §5.4).
//!
//! A REMOVED member answers `hello` exactly as a never-initiated one (no `setName`, `info:
//! "Does not have a valid replica set config"`; `_makeHelloResponse` in the server's
//! `replication_coordinator_impl.cpp`), but it must not be ready: it serves nothing, yet would
//! take client Service traffic and count as available for the PodDisruptionBudget. Only
//! `replSetGetStatus` tells them apart (94 NotYetInitialized before initiation, 93
//! InvalidReplicaSetConfig once removed), and it needs a login: the probe logs in as
//! `__system` with the keyFile mounted in the container, and only in that case.

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

use crate::mongo::{AdminError, Credentials, DriverAdmin, Hello, MongoAdmin, ReplSetStatus, Target, Timeouts};

/// Which probe runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Probe {
    /// PRIMARY, SECONDARY or ARBITER, or never initiated.
    Readiness,
    /// mongod answers `hello` (shallow: an initial sync can take hours).
    Liveness,
    /// mongod answers `hello` (covers slow journal recovery after an unclean stop).
    Startup,
}

/// What `hello` alone decides.
#[derive(Debug, PartialEq, Eq)]
pub enum HelloVerdict {
    Pass(&'static str),
    Fail(String),
    /// No valid replica-set config: never initiated, or REMOVED; `replSetGetStatus` decides.
    AskStatus,
}

/// The verdict on a `hello` reply.
pub fn verdict(probe: Probe, hello: &Hello) -> HelloVerdict {
    match probe {
        Probe::Liveness | Probe::Startup => HelloVerdict::Pass("mongod answers hello"),
        Probe::Readiness if hello.is_writable_primary => HelloVerdict::Pass("PRIMARY"),
        Probe::Readiness if hello.secondary => HelloVerdict::Pass("SECONDARY"),
        Probe::Readiness if hello.arbiter_only => HelloVerdict::Pass("ARBITER"),
        Probe::Readiness if hello.has_no_config() => HelloVerdict::AskStatus,
        Probe::Readiness => {
            HelloVerdict::Fail("member is neither PRIMARY nor SECONDARY (starting, syncing or recovering)".into())
        }
    }
}

/// The verdict on `replSetGetStatus` of a member whose `hello` showed no valid config.
pub fn status_verdict(status: Result<ReplSetStatus, AdminError>) -> Result<&'static str, String> {
    match status {
        Err(AdminError::NotYetInitialized) => Ok("not initiated yet: ready so the replica set can be initiated"),
        Err(AdminError::InvalidConfig(_)) => {
            Err("REMOVED: this member's replica-set config does not list it; it serves nothing".into())
        }
        // It got a config between the two commands: the next probe sees its state.
        Ok(_) => Err("joining the replica set".into()),
        Err(error) => Err(format!("cannot tell whether the member was initiated or removed: {error}")),
    }
}

/// Where a probe dials, and with what.
#[derive(Clone, Debug)]
pub struct ProbeTarget {
    /// `host:port` of the member, from inside its Pod.
    pub address: String,
    /// Read only when `hello` cannot decide.
    pub key_file: PathBuf,
    /// TLS: the CAs to verify the member's certificate with (for the name dialled, which the
    /// operator's certificates cover: `127.0.0.1` and `localhost`). None: plain text.
    pub tls_ca_file: Option<PathBuf>,
}

/// Runs one probe within `timeout`; Ok carries what passed.
pub async fn run(probe: Probe, to: &ProbeTarget, timeout: Duration) -> Result<&'static str, String> {
    let (address, key_file) = (to.address.as_str(), to.key_file.as_path());
    // Keep well inside the kubelet's timeoutSeconds: connect and select within the budget.
    let timeouts = Timeouts { connect: timeout / 2, server_selection: timeout, command: timeout, reconfig: timeout };
    let admin = DriverAdmin::new(timeouts);
    let within = |what: &'static str| move |_| format!("no answer to {what} from {address} within {timeout:?}");
    let target = Target { address: address.to_string(), credentials: None, tls: to.tls_ca_file.clone() };
    let hello = tokio::time::timeout(timeout, admin.hello(&target))
        .await
        .map_err(within("hello"))?
        .map_err(|e| format!("{address}: {e}"))?;
    match verdict(probe, &hello) {
        HelloVerdict::Pass(what) => Ok(what),
        HelloVerdict::Fail(why) => Err(why),
        HelloVerdict::AskStatus => {
            let key = std::fs::read_to_string(key_file)
                .map_err(|e| format!("cannot read the keyFile {}: {e}", key_file.display()))?;
            let system = Target { credentials: Some(Credentials::from_key_file(&key)), ..target.clone() };
            let status =
                tokio::time::timeout(timeout, admin.status(&system)).await.map_err(within("replSetGetStatus"))?;
            status_verdict(status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(f: impl FnOnce(&mut Hello)) -> Hello {
        let mut h = Hello::default();
        f(&mut h);
        h
    }

    #[test]
    fn readiness_follows_the_member_state_and_asks_when_hello_cannot_tell() {
        let no_config = hello(|h| h.info = Some("Does not have a valid replica set config".into()));
        assert_eq!(verdict(Probe::Readiness, &no_config), HelloVerdict::AskStatus);
        let primary = hello(|h| {
            h.set_name = Some("rs0".into());
            h.is_writable_primary = true;
        });
        assert_eq!(verdict(Probe::Readiness, &primary), HelloVerdict::Pass("PRIMARY"));
        let secondary = hello(|h| {
            h.set_name = Some("rs0".into());
            h.secondary = true;
        });
        assert_eq!(verdict(Probe::Readiness, &secondary), HelloVerdict::Pass("SECONDARY"));
        let syncing = hello(|h| h.set_name = Some("rs0".into()));
        assert!(matches!(verdict(Probe::Readiness, &syncing), HelloVerdict::Fail(_)), "STARTUP2 is not ready");
    }

    #[test]
    fn never_initiated_is_ready_and_removed_is_not() {
        assert!(status_verdict(Err(AdminError::NotYetInitialized)).is_ok(), "bootstrap must not deadlock");
        let removed = status_verdict(Err(AdminError::InvalidConfig("not a member".into()))).unwrap_err();
        assert!(removed.contains("REMOVED"), "{removed}");
        assert!(status_verdict(Err(AdminError::AuthenticationFailed("bad key".into()))).is_err());
    }

    #[test]
    fn liveness_and_startup_only_need_an_answer() {
        let syncing = hello(|h| h.set_name = Some("rs0".into()));
        assert_eq!(verdict(Probe::Liveness, &syncing), HelloVerdict::Pass("mongod answers hello"));
        assert!(matches!(verdict(Probe::Startup, &syncing), HelloVerdict::Pass(_)));
    }
}
