//! `mongo-operator probe` as the kubelet runs it (a process, an exit code), against simulated
//! members in every state a Pod goes through.

use std::process::Command;
use std::time::{Duration, Instant};

use mongo_operator::mongo::{Credentials, DriverAdmin, MongoAdmin, Target, Timeouts};
use mongo_operator::replset::{MemberConfig, ReplSetConfig};
use mongo_replset_sim::{Options, Sim};

const KEY: &str = "cHJvYmUta2V5ZmlsZQ==";

/// Runs the probe binary; returns whether it passed and how long it took.
fn probe(kind: &str, address: &str) -> (bool, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_mongo-operator"))
        .args(["probe", kind, "--address", address, "--timeout-ms", "1500"])
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
    let system = Target { address: addrs[0].clone(), credentials: Some(Credentials::from_key_file(KEY)) };
    admin.initiate(&system, &config).await.expect("initiate");

    // db-1 is in initial sync (STARTUP2) for 3 s: alive but not ready; then SECONDARY: ready.
    wait_probe("readiness", &addrs[1], false).await;
    assert!(probe("liveness", &addrs[1]).0, "an initial sync must not fail liveness");
    wait_probe("readiness", &addrs[1], true).await;
    wait_probe("readiness", &addrs[0], true).await;

    // A stopped mongod fails every probe, quickly.
    sim.stop_member("db-1");
    let (alive, took) = probe("liveness", &addrs[1]);
    assert!(!alive);
    assert!(took < Duration::from_secs(3), "a failing probe took {took:?}");
    assert!(!probe("readiness", &addrs[1]).0);
}
