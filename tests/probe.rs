//! `mongo-operator probe` as the kubelet runs it (a process, an exit code), against simulated
//! members in every state a Pod goes through.

use std::process::Command;
use std::time::{Duration, Instant};

use mongo_operator::mongo::{Credentials, DriverAdmin, MongoAdmin, Target, Timeouts};
use mongo_operator::replset::{MemberConfig, ReplSetConfig};
use mongo_replset_sim::{Options, Sim};

const KEY: &str = "cHJvYmUta2V5ZmlsZQ==";

/// The keyFile as the probe finds it in the mongod container.
fn key_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("mongo-operator-probe-key-{}", std::process::id()));
    std::fs::write(&path, KEY).expect("write the keyFile");
    path
}

/// Runs the probe binary; returns whether it passed and how long it took.
fn probe(kind: &str, address: &str) -> (bool, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_mongo-operator"))
        .args(["probe", kind, "--address", address, "--timeout-ms", "1500", "--key-file"])
        .arg(key_file())
        .output()
        .expect("run the probe");
    (out.status.success(), started.elapsed())
}

async fn wait_probe(kind: &str, address: &str, passes: bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while probe(kind, address).0 != passes {
        assert!(
            Instant::now() < deadline,
            "{kind} probe on {address} never {}",
            if passes { "passed" } else { "failed" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_follow_the_member_through_bootstrap_sync_and_failure() {
    let opts = Options {
        key_file: KEY.into(),
        election_timeout: Duration::from_millis(500),
        heartbeat_interval: Duration::from_millis(50),
        initial_sync: Duration::from_secs(3),
        ..Options::default()
    };
    let sim = Sim::start(opts, None);
    let mut addrs = Vec::new();
    for i in 0..2 {
        let a = sim
            .add_member(&format!("db-{i}"), &format!("db-{i}.svc:27017"), "127.0.0.1:0".parse().unwrap())
            .await
            .expect("bind");
        addrs.push(a.to_string());
    }

    // Before initiation: ready (or initiation could never happen), alive, started.
    let (ready, took) = probe("readiness", &addrs[1]);
    assert!(ready, "an uninitialised member must pass readiness");
    assert!(took < Duration::from_secs(2), "the probe took {took:?}");
    assert!(probe("liveness", &addrs[1]).0 && probe("startup", &addrs[1]).0);

    let config = ReplSetConfig {
        set_name: "rs0".into(),
        version: 1,
        term: None,
        protocol_version: 1,
        members: vec![MemberConfig::new(0, "db-0.svc:27017", true), MemberConfig::new(1, "db-1.svc:27017", true)],
        other: Default::default(),
    };
    let admin = DriverAdmin::new(Timeouts::default());
    let system = Target { address: addrs[0].clone(), credentials: Some(Credentials::from_key_file(KEY)), tls: None };
    admin.initiate(&system, &config).await.expect("initiate");

    // db-1 is in initial sync (STARTUP2) for 3 s: alive but not ready; then SECONDARY: ready.
    wait_probe("readiness", &addrs[1], false).await;
    assert!(probe("liveness", &addrs[1]).0, "an initial sync must not fail liveness");
    wait_probe("readiness", &addrs[1], true).await;
    wait_probe("readiness", &addrs[0], true).await;

    // Removed from the set, the secondary answers `hello` exactly as before initiation, but it
    // serves nothing: not ready (and still alive: it is a running mongod).
    let mut primary = None;
    while primary.is_none() {
        for (i, a) in addrs.iter().enumerate() {
            let plain = Target { address: a.clone(), credentials: None, tls: None };
            if admin.hello(&plain).await.expect("hello").is_writable_primary {
                primary = Some(i);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (p, s) = if primary == Some(0) { (0, 1) } else { (1, 0) };
    let at_primary =
        Target { address: addrs[p].clone(), credentials: Some(Credentials::from_key_file(KEY)), tls: None };
    let (current, _) = admin.config(&at_primary, false).await.expect("config");
    let mut without = current.next();
    without.members.retain(|m| m.host != format!("db-{s}.svc:27017"));
    admin.reconfig(&at_primary, &without).await.expect("remove the secondary");
    let plain = Target { address: addrs[s].clone(), credentials: None, tls: None };
    let hello = eventually_removed(&admin, &plain).await;
    assert!(hello.has_no_config(), "a REMOVED member's hello has no setName: {hello:?}");
    assert_eq!(hello.info.as_deref(), Some("Does not have a valid replica set config"));
    wait_probe("readiness", &addrs[s], false).await;
    assert!(probe("liveness", &addrs[s]).0, "a removed member is still alive");
    let addrs = [addrs[p].clone(), addrs[s].clone()];

    // A stopped mongod fails every probe, quickly.
    sim.stop_member(&format!("db-{s}"));
    let (alive, took) = probe("liveness", &addrs[1]);
    assert!(!alive);
    assert!(took < Duration::from_secs(3), "a failing probe took {took:?}");
    assert!(!probe("readiness", &addrs[1]).0);
}

/// Waits until the member's `hello` shows no config (it heard of its removal).
async fn eventually_removed(admin: &DriverAdmin, target: &Target) -> mongo_operator::mongo::Hello {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let hello = admin.hello(target).await.expect("hello");
        if hello.has_no_config() {
            return hello;
        }
        assert!(Instant::now() < deadline, "the member never learned it was removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
