//! `mongo-operator probe`: the readiness, liveness and startup checks of mongod containers.
//!
//! A static binary sending `hello` to 127.0.0.1 (allowed without credentials), never a shell
//! or mongosh: those are slow under CPU pressure and have frozen in other operators' Pods.
//! Readiness passes for PRIMARY, SECONDARY and ARBITER, and also for a mongod that has no
//! replica-set config yet: otherwise no member could become ready before `replSetInitiate`,
//! which needs every member to answer (see `mongod-pod-facts.md` §5.4).

use std::time::Duration;

use clap::ValueEnum;

use crate::mongo::{DriverAdmin, Hello, MongoAdmin, Target, Timeouts};

/// Which probe runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Probe {
    /// Initialised and PRIMARY, SECONDARY or ARBITER, or not initialised yet.
    Readiness,
    /// mongod answers `hello` (shallow: an initial sync can take hours).
    Liveness,
    /// mongod answers `hello` (covers slow journal recovery after an unclean stop).
    Startup,
}

/// The verdict on a `hello` reply.
pub fn verdict(probe: Probe, hello: &Hello) -> Result<&'static str, String> {
    match probe {
        Probe::Liveness | Probe::Startup => Ok("mongod answers hello"),
        Probe::Readiness if hello.is_writable_primary => Ok("PRIMARY"),
        Probe::Readiness if hello.secondary => Ok("SECONDARY"),
        Probe::Readiness if hello.arbiter_only => Ok("ARBITER"),
        Probe::Readiness
            if hello.is_uninitialized()
                && hello.info.as_deref().is_some_and(|i| i.contains("valid replica set config")) =>
        {
            Ok("not initialised yet: ready so the replica set can be initiated")
        }
        Probe::Readiness if hello.set_name.is_none() => Err("not a member of the replica set (removed)".into()),
        Probe::Readiness => Err("member is neither PRIMARY nor SECONDARY (starting, syncing or recovering)".into()),
    }
}

/// Runs one probe against `address` within `timeout`; Ok carries what passed.
pub async fn run(probe: Probe, address: &str, timeout: Duration) -> Result<&'static str, String> {
    // Keep well inside the kubelet's timeoutSeconds: connect and select within the budget.
    let timeouts = Timeouts { connect: timeout / 2, server_selection: timeout, command: timeout, reconfig: timeout };
    let admin = DriverAdmin::new(timeouts);
    let target = Target { address: address.to_string(), credentials: None };
    let hello = tokio::time::timeout(timeout, admin.hello(&target))
        .await
        .map_err(|_| format!("no answer from {address} within {timeout:?}"))?
        .map_err(|e| format!("{address}: {e}"))?;
    verdict(probe, &hello)
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
    fn readiness_follows_the_member_state_and_never_blocks_bootstrap() {
        let fresh = hello(|h| h.info = Some("Does not have a valid replica set config".into()));
        assert!(verdict(Probe::Readiness, &fresh).is_ok(), "an uninitialised member must be ready");
        let primary = hello(|h| {
            h.set_name = Some("rs0".into());
            h.is_writable_primary = true;
        });
        assert_eq!(verdict(Probe::Readiness, &primary), Ok("PRIMARY"));
        let secondary = hello(|h| {
            h.set_name = Some("rs0".into());
            h.secondary = true;
        });
        assert_eq!(verdict(Probe::Readiness, &secondary), Ok("SECONDARY"));
        let syncing = hello(|h| h.set_name = Some("rs0".into()));
        assert!(verdict(Probe::Readiness, &syncing).is_err(), "STARTUP2/RECOVERING are not ready");
        let removed = hello(|h| h.info = Some("removed from the replica set configuration".into()));
        assert!(verdict(Probe::Readiness, &removed).is_err());
    }

    #[test]
    fn liveness_and_startup_only_need_an_answer() {
        let syncing = hello(|h| h.set_name = Some("rs0".into()));
        assert!(verdict(Probe::Liveness, &syncing).is_ok(), "an initial sync must not kill the Pod");
        assert!(verdict(Probe::Startup, &syncing).is_ok());
    }
}
