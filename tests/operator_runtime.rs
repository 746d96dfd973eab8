//! The operator's runtime on the local control plane: leader election through a Lease (one
//! replica acts, a standby takes over when the leader stops, a leader that loses its Lease
//! stops at once), and the HTTP endpoints (`/metrics`, `/healthz`, `/readyz`, `/log-level`).

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use mongo_operator::api::MongoCluster;
use support::operator::Operator;
use support::rbac;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request; returns the status code and the body.
async fn http(address: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap_or_else(|e| panic!("connect {address}: {e}"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read response");
    let status = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

async fn address_of(operator: &Operator) -> String {
    eventually("the operator to serve its endpoints", Duration::from_secs(30), || async { operator.address() }).await
}

async fn metrics(address: &str) -> String {
    let (status, body) = http(address, "GET", "/metrics", "").await;
    assert_eq!(status, 200, "/metrics answered {status}: {body}");
    body
}

fn has_reconciled(metrics: &str, controller: &str) -> bool {
    metrics.lines().any(|l| l.starts_with(&format!("mongo_operator_reconciles_total{{controller=\"{controller}\"")))
}

async fn holder(leases: &Api<Lease>, name: &str) -> Option<String> {
    leases.get(name).await.ok()?.spec?.holder_identity
}

fn cluster(name: &str) -> String {
    format!(
        "apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoCluster\nmetadata:\n  name: {name}\nspec:\n  version: \"8.0.4\"\n"
    )
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn one_replica_leads_a_standby_takes_over_and_a_lost_lease_stops_the_leader_at_once() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "leader").await;
    // The Lease lives where the chart's RBAC lets the operators' ServiceAccount use it.
    let leases: Api<Lease> = Api::namespaced(client.clone(), rbac::SA_NAMESPACE);
    let lease: &'static str = Box::leak(rbac::lease_of(&ns).into_boxed_str());
    let args = |who: &'static str| {
        let ns: &'static str = Box::leak(ns.clone().into_boxed_str());
        vec!["--namespaces", ns, "--leader-election-namespace", rbac::SA_NAMESPACE]
            .into_iter()
            .chain(["--leader-election-lease", lease, "--instance", who])
            .collect::<Vec<_>>()
    };

    let started = Instant::now();
    let a = Operator::start_with(&ns, "-a", &args("replica-a"));
    eventually("replica-a to hold the Lease", Duration::from_secs(30), || async {
        (holder(&leases, lease).await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    let a_addr = address_of(&a).await;
    eventually("replica-a to be ready", Duration::from_secs(30), || async {
        let (status, body) = http(&a_addr, "GET", "/readyz", "").await;
        (status == 200).then_some(body)
    })
    .await;
    eprintln!("replica-a: start to ready as leader in {:?}", started.elapsed());

    let b = Operator::start_with(&ns, "-b", &args("replica-b"));
    let b_addr = address_of(&b).await;
    let (status, body) = eventually("replica-b to be ready as a standby", Duration::from_secs(30), || async {
        let (status, body) = http(&b_addr, "GET", "/readyz", "").await;
        (status == 200).then_some((status, body))
    })
    .await;
    assert!(body.contains("standby"), "replica-b: {status} {body}");
    assert!(metrics(&b_addr).await.contains("mongo_operator_leader 0"));
    assert!(metrics(&a_addr).await.contains("mongo_operator_leader 1"));

    // Only the leader acts.
    create(&client, &ns, &cluster("first"), false).await.expect("create a MongoCluster");
    eventually("replica-a to reconcile it", Duration::from_secs(30), || async {
        let text = metrics(&a_addr).await;
        (has_reconciled(&text, "cluster") && text.contains("mongo_operator_clusters{phase=")).then_some(())
    })
    .await;
    let standby = metrics(&b_addr).await;
    assert!(!has_reconciled(&standby, "cluster"), "the standby reconciled:\n{standby}");
    assert_eq!(holder(&leases, lease).await.as_deref(), Some("replica-a"));

    // The leader stops (SIGTERM): it releases the Lease, and the standby takes over.
    let pid = a.child.id().expect("replica-a pid").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let stopped = Instant::now();
    let mut a = a;
    let exit =
        tokio::time::timeout(Duration::from_secs(15), a.child.wait()).await.expect("replica-a stops").expect("wait");
    assert!(exit.success(), "replica-a exited with {exit}:\n{}", a.log_text());
    assert!(a.log_text().contains("released the leader Lease"), "{}", a.log_text());
    eventually("replica-b to take over", Duration::from_secs(30), || async {
        let text = metrics(&b_addr).await;
        (text.contains("mongo_operator_leader 1") && has_reconciled(&text, "cluster")).then_some(())
    })
    .await;
    eprintln!("takeover after SIGTERM of the leader: {:?}", stopped.elapsed());
    assert_eq!(holder(&leases, lease).await.as_deref(), Some("replica-b"));

    // Someone else takes the Lease (as a replica whose clock ran ahead, or a manual edit
    // would): replica-b must stop at its next renewal, without waiting for anything else.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let steal = serde_json::json!({"spec": {"holderIdentity": "intruder", "renewTime": now, "acquireTime": now, "leaseDurationSeconds": 60}});
    leases.patch(lease, &PatchParams::default(), &Patch::Merge(&steal)).await.expect("take the Lease");
    let taken = Instant::now();
    let mut b = b;
    let exit =
        tokio::time::timeout(Duration::from_secs(30), b.child.wait()).await.expect("replica-b stops").expect("wait");
    assert!(!exit.success(), "a replica that lost its Lease must exit with an error:\n{}", b.log_text());
    assert!(b.log_text().contains("lost leadership"), "{}", b.log_text());
    eprintln!("replica-b stopped {:?} after losing the Lease", taken.elapsed());
    assert_eq!(
        holder(&leases, lease).await.as_deref(),
        Some("intruder"),
        "a stopped leader must not take the Lease back"
    );

    let clusters: Api<MongoCluster> = Api::namespaced(client.clone(), &ns);
    assert!(clusters.get("first").await.is_ok());
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn serves_health_readiness_metrics_and_a_log_level_that_changes_at_run_time() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "endpoints").await;
    let started = Instant::now();
    let operator = Operator::start(&ns);
    let address = address_of(&operator).await;
    assert_eq!(http(&address, "GET", "/healthz", "").await, (200, "ok\n".into()));
    let ready = eventually("/readyz to answer 200", Duration::from_secs(30), || async {
        let (status, body) = http(&address, "GET", "/readyz", "").await;
        (status == 200).then_some(body)
    })
    .await;
    eprintln!("start to ready: {:?}", started.elapsed());
    assert_eq!(ready, "leader: 3 caches synced, controllers running\n");

    create(&client, &ns, &cluster("counted"), false).await.expect("create a MongoCluster");
    let text = eventually("the reconcile to be counted", Duration::from_secs(30), || async {
        let text = metrics(&address).await;
        (text.contains("mongo_operator_clusters{phase=") && has_reconciled(&text, "cluster")).then_some(text)
    })
    .await;
    for family in [
        "# TYPE mongo_operator_reconciles counter",
        "# TYPE mongo_operator_reconcile_duration_seconds histogram",
        "# TYPE mongo_operator_reconciles_in_flight gauge",
        "mongo_operator_backups_total{result=\"failed\"} 0",
        "mongo_operator_build_info{version=",
        "# TYPE mongo_operator_leader gauge",
        "# TYPE mongo_operator_clusters gauge",
        "mongo_operator_leader 1",
    ] {
        assert!(text.contains(family), "missing {family:?} in /metrics:\n{text}");
    }
    assert!(has_reconciled(&text, "cluster"), "{text}");
    // Per cluster, from the controller's cache.
    let per_cluster = format!(r#"mongo_operator_cluster_phase{{namespace="{ns}",cluster="counted","#);
    assert!(text.contains(&per_cluster), "missing {per_cluster} in /metrics:\n{text}");
    assert!(text.contains("# TYPE mongo_operator_backup_last_failed gauge"), "{text}");

    // The log level: on the loopback listener only (the public one has no run-time
    // controls, whoever's connection a sidecar forwards from loopback); read, changed,
    // refused when it does not parse.
    assert_eq!(http(&address, "PUT", "/log-level", "warn").await.0, 404, "no controls on the public listener");
    let controls =
        eventually("the controls listener", Duration::from_secs(30), || async { operator.controls_address() }).await;
    assert!(controls.starts_with("127.0.0.1:"), "{controls}");
    assert_eq!(http(&controls, "GET", "/log-level", "").await, (200, "info,mongo_operator=debug\n".into()));
    // Debug lines while the filter asks for them (the log is written as reconciles happen,
    // not necessarily by the time the controls answer).
    eventually("debug lines while the filter asks for them", Duration::from_secs(30), || async {
        operator.log_text().contains("DEBUG").then_some(())
    })
    .await;
    assert_eq!(http(&controls, "PUT", "/log-level", "warn").await.0, 200);
    assert_eq!(http(&controls, "GET", "/log-level", "").await.1, "warn\n");
    let (status, body) = http(&controls, "PUT", "/log-level", "mongo_operator=[[").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(http(&controls, "GET", "/log-level", "").await.1, "warn\n");
    // At `warn`, reconciles run without a debug line; back at debug, the lines return.
    let quiet_from = operator.log_text().len();
    let before = reconciles(&metrics(&address).await);
    create(&client, &ns, &cluster("quiet"), false).await.expect("create a second MongoCluster");
    eventually("the quiet cluster's reconciles", Duration::from_secs(30), || async {
        (reconciles(&metrics(&address).await) >= before + 2).then_some(())
    })
    .await;
    let quiet = operator.log_text()[quiet_from..].to_string();
    assert!(!quiet.contains("DEBUG"), "debug lines at level warn:\n{quiet}");
    assert_eq!(http(&controls, "PUT", "/log-level", "info,mongo_operator=debug").await.0, 200);
    let loud_from = operator.log_text().len();
    create(&client, &ns, &cluster("loud"), false).await.expect("create a third MongoCluster");
    eventually("debug lines again", Duration::from_secs(30), || async {
        operator.log_text()[loud_from..].contains("DEBUG").then_some(())
    })
    .await;
    operator.kill().await;
    delete_namespace(&client, &ns).await;
}

/// The total of `mongo_operator_reconciles_total` over every label.
fn reconciles(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("mongo_operator_reconciles_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
