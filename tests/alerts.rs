//! The alert rules (charts/mongo-operator/files/alerts.yaml): promtool checks them and runs
//! their unit tests (tests/alerts/), every alert is shown firing by at least one test, and
//! every metric a rule reads is one that is really exported: the exporter's, by the pinned
//! `percona/mongodb_exporter` (built from its Go module) run with the arguments production
//! gives it against simulated members, and the operator's, by its own encoder.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::runtime::{reflector, watcher};
use mongo_operator::api::MongoClusterSpec;
use mongo_operator::build::exporter::{MONITOR_USER, container};
use mongo_operator::build::names::ClusterNames;
use support::data_set::DataSet;
use support::servers::tool_dir;

fn rules_file() -> PathBuf {
    support::repo_root().join("charts/mongo-operator/files/alerts.yaml")
}

fn rule_tests() -> Vec<PathBuf> {
    let dir = support::repo_root().join("tests/alerts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/alerts")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new(tool_dir("promtool").join("promtool"))
        .args(args)
        .current_dir(support::repo_root())
        .output()
        .expect("run promtool");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// Each rule's alert name and expression.
fn rules() -> Vec<(String, String)> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(rules_file()).expect("rules")).expect("rules YAML");
    let mut out = Vec::new();
    for group in doc["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("alert").to_string();
            out.push((name, rule["expr"].as_str().expect("expr").to_string()));
        }
    }
    out
}

/// The metric names an expression reads (`mongodb_*`, `mongo_operator_*`, `kubelet_*`, `up`).
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    for ch in expr.chars().chain(std::iter::once(' ')) {
        if ch.is_ascii_alphanumeric() || ch == '_' || ch == ':' {
            word.push(ch);
            continue;
        }
        let known = ["mongodb_", "mongo_operator_", "kubelet_"].iter().any(|p| word.starts_with(p)) || word == "up";
        if known && ch != '"' && ch != '=' {
            names.insert(std::mem::take(&mut word));
        }
        word.clear();
    }
    names
}

#[test]
fn every_rule_passes_promtool_and_every_alert_fires_in_a_unit_test() {
    promtool(&["check", "rules", rules_file().to_str().expect("path")]);
    let tests = rule_tests();
    let names: Vec<String> = tests.iter().map(|p| p.display().to_string()).collect();
    let mut args = vec!["test", "rules"];
    args.extend(names.iter().map(String::as_str));
    promtool(&args);
    // An alert no test expects to fire could be one that never fires.
    let mut firing = BTreeSet::new();
    for file in &tests {
        let doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(file).expect("test")).expect("YAML");
        for test in doc["tests"].as_sequence().expect("tests") {
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                if case["exp_alerts"].as_sequence().is_some_and(|a| !a.is_empty()) {
                    firing.insert(case["alertname"].as_str().expect("alertname").to_string());
                }
            }
        }
    }
    let never: Vec<String> = rules().into_iter().map(|(n, _)| n).filter(|n| !firing.contains(n)).collect();
    assert!(never.is_empty(), "alerts no unit test shows firing: {never:?}");
}

/// An exporter for one simulated member, with the production arguments: the URI's host is the
/// member's (production dials localhost in the member's own Pod), and it listens on loopback.
struct Exporter {
    child: Child,
    address: String,
}

impl Exporter {
    fn start(member: &str, password: &str) -> Exporter {
        let spec: MongoClusterSpec = serde_json::from_value(serde_json::json!({"version": "8.0.4"})).expect("spec");
        let built =
            container(&ClusterNames::new("orders", "shop"), &spec, false).expect("the exporter is on by default");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let address = format!("127.0.0.1:{port}");
        let args: Vec<String> = built
            .args
            .expect("args")
            .into_iter()
            .map(|a| {
                if a.starts_with("--mongodb.uri=") {
                    a.replace("localhost:27017", member)
                } else if a.starts_with("--web.listen-address=") {
                    format!("--web.listen-address={address}")
                } else {
                    a
                }
            })
            .collect();
        let child = Command::new(tool_dir("mongodb-exporter").join("mongodb_exporter"))
            .args(&args)
            .env("MONGODB_USER", MONITOR_USER)
            .env("MONGODB_PASSWORD", password)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mongodb_exporter");
        Exporter { child, address }
    }

    async fn scrape(&self) -> Option<String> {
        let mut stream = tokio::net::TcpStream::connect(&self.address).await.ok()?;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = format!("GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n", self.address);
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await.ok()?;
        Some(body)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn families(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(String::from))
        .collect()
}

/// The operator's metric families, as its encoder writes them with a cluster and a backup
/// schedule in its caches.
fn operator_families() -> BTreeSet<String> {
    let m = mongo_operator::telemetry::Metrics::new();
    let (clusters, mut cluster_writer) = reflector::store();
    let (backups, mut backup_writer) = reflector::store();
    m.count_clusters_of(clusters);
    m.watch_backups_of(backups);
    let cluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoCluster",
        "metadata": {"name": "orders", "namespace": "shop"},
        "spec": {"version": "8.0.4"},
        "status": {"phase": "Ready", "readyMembers": 1, "members": [{"name": "orders-0", "state": "PRIMARY", "healthy": true}],
            "tls": {"mode": "Require", "certificateNotAfter": "2027-03-04T00:00:00Z", "caNotAfter": "2029-06-01T00:00:00Z"}},
    }))
    .expect("cluster");
    cluster_writer.apply_watcher_event(&watcher::Event::Apply(cluster));
    let schedule = serde_json::from_value(serde_json::json!({
        "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoBackup",
        "metadata": {"name": "nightly", "namespace": "shop"},
        "spec": {"clusterRef": {"name": "orders"}, "schedule": {"cron": "0 2 * * *"}, "unencrypted": true,
            "destinations": [{"name": "s3", "s3": {"bucket": "b", "credentialsSecretRef": {"name": "k"}}}]},
        "status": {"phase": "Scheduled", "lastSuccessfulTime": "2026-12-04T02:03:20Z"},
    }))
    .expect("schedule");
    backup_writer.apply_watcher_event(&watcher::Event::Apply(schedule));
    m.reconcile("cluster").finish(Some("Mongo"));
    families(&m.encode().expect("encode"))
}

#[tokio::test]
async fn every_metric_a_rule_reads_is_exported_by_the_pinned_exporter_or_the_operator() {
    let set = DataSet::start("orders", 3).await;
    let password = "monitor password for the test";
    set.create_user(MONITOR_USER, password, &[("clusterMonitor", "admin"), ("read", "local")]).await;
    let primary = set.primary().await;
    let exporters: Vec<Exporter> =
        [primary, (primary + 1) % 3].iter().map(|i| Exporter::start(&set.hosts[*i], password)).collect();
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // The exporter reads the set once per scrape; a member's view needs a heartbeat or two.
    while Instant::now() < deadline {
        seen.clear();
        for e in &exporters {
            if let Some(body) = e.scrape().await {
                seen.extend(families(&body));
            }
        }
        if seen.contains("mongodb_rs_myState") && seen.contains("mongodb_mongod_replset_oplog_head_timestamp") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let exporter_families: Vec<&String> = seen.iter().filter(|f| f.starts_with("mongodb_")).collect();
    println!("metric families of the real exporter against simulated members ({}):", exporter_families.len());
    for f in &exporter_families {
        println!("  {f}");
    }
    let operator = operator_families();
    // Series no scrape here can produce: Prometheus's own `up`, and the kubelet's volume
    // statistics (kwok runs no kubelet); their names are Prometheus's and the kubelet's.
    let elsewhere = ["up", "kubelet_volume_stats_available_bytes", "kubelet_volume_stats_capacity_bytes"];
    let mut missing = Vec::new();
    for (alert, expr) in rules() {
        for metric in metrics_in(&expr) {
            let found = seen.contains(&metric) || operator.contains(&metric) || elsewhere.contains(&metric.as_str());
            if !found {
                missing.push(format!("{alert}: {metric}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "rules read metrics nothing exports: {missing:#?}\nexporter: {seen:?}\noperator: {operator:?}"
    );
}
