//! Which metric families really exist: the pinned `percona/mongodb_exporter` (built from its
//! Go module) run with the arguments production gives it, scraped against simulated members
//! and against a real mongod's recorded answers, and the operator's own encoder. The alert
//! rules (tests/alerts.rs) and the dashboard (tests/dashboard.rs) may read nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::runtime::{reflector, watcher};
use mongo_operator::api::MongoClusterSpec;
use mongo_operator::build::exporter::{MONITOR_USER, container};
use mongo_operator::build::names::ClusterNames;

use super::data_set::DataSet;
use super::recorded_member::RecordedMember;
use super::servers::tool_dir;

/// Series no scrape here can produce: Prometheus's own `up`, and the kubelet's volume
/// statistics (kwok runs no kubelet); their names are Prometheus's and the kubelet's.
pub const ELSEWHERE: [&str; 3] = ["up", "kubelet_volume_stats_available_bytes", "kubelet_volume_stats_capacity_bytes"];

/// The metric names a PromQL expression reads (`mongodb_*`, `mongo_operator_*`, `kubelet_*`,
/// `up`); label names and values, and Grafana's `$variables`, are not metric names.
pub fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    let mut quoted = false;
    for ch in expr.chars().chain(std::iter::once(' ')) {
        if ch == '"' {
            quoted = !quoted;
            word.clear();
            continue;
        }
        if quoted {
            continue;
        }
        if ch.is_ascii_alphanumeric() || ch == '_' || ch == ':' || ch == '$' {
            word.push(ch);
            continue;
        }
        let known = ["mongodb_", "mongo_operator_", "kubelet_"].iter().any(|p| word.starts_with(p)) || word == "up";
        if known && ch != '=' && ch != '!' {
            names.insert(std::mem::take(&mut word));
        }
        word.clear();
    }
    names
}

/// An exporter for one member, with the production arguments: the URI's host is the
/// member's (production dials localhost in the member's own Pod), and it listens on loopback.
pub struct Exporter {
    child: Child,
    address: String,
}

impl Exporter {
    /// `password` is the monitoring user's; `None` leaves the exporter without credentials.
    pub fn start(member: &str, password: Option<&str>) -> Exporter {
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
        let mut command = Command::new(tool_dir("mongodb-exporter").join("mongodb_exporter"));
        command.args(&args).stdout(Stdio::null()).stderr(Stdio::null());
        if let Some(password) = password {
            command.env("MONGODB_USER", MONITOR_USER).env("MONGODB_PASSWORD", password);
        }
        let child = command.spawn().expect("start mongodb_exporter");
        Exporter { child, address }
    }

    pub async fn scrape(&self) -> Option<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&self.address).await.ok()?;
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

/// Metric families and the label names their series carry.
pub type Families = BTreeMap<String, BTreeSet<String>>;

/// The families of a scrape in Prometheus's text format, with their series' label names.
pub fn families(scrape: &str) -> Families {
    let mut out = Families::new();
    for line in scrape.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let Some(name) = line.split(['{', ' ']).next() else { continue };
        let labels = out.entry(name.to_string()).or_default();
        let Some(rest) = line.strip_prefix(name).and_then(|r| r.strip_prefix('{')) else { continue };
        // name="value",... up to the closing brace; values may hold escaped quotes.
        let mut chars = rest.chars();
        let mut label = String::new();
        while let Some(ch) = chars.next() {
            match ch {
                '}' => break,
                '=' => {
                    labels.insert(std::mem::take(&mut label));
                    let _ = chars.next(); // the opening quote
                    let mut escaped = false;
                    for v in chars.by_ref() {
                        if escaped {
                            escaped = false;
                        } else if v == '\\' {
                            escaped = true;
                        } else if v == '"' {
                            break;
                        }
                    }
                }
                ',' => {}
                other => label.push(other),
            }
        }
    }
    out
}

/// Scrapes `exporters` until `done` says the families are all there (or 30 s have passed).
async fn scrape_until(exporters: &[Exporter], done: impl Fn(&Families) -> bool) -> Families {
    let mut seen = Families::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        seen.clear();
        for e in exporters {
            if let Some(body) = e.scrape().await {
                for (name, labels) in families(&body) {
                    seen.entry(name).or_default().extend(labels);
                }
            }
        }
        if done(&seen) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    seen
}

/// The exporter's families against a simulated three-member set, scraped at its primary and
/// a secondary as the monitoring user.
pub async fn of_simulated_members() -> Families {
    let set = DataSet::start("orders", 3).await;
    let password = "monitor password for the test";
    set.create_user(MONITOR_USER, password, &[("clusterMonitor", "admin"), ("read", "local")]).await;
    let primary = set.primary().await;
    let exporters: Vec<Exporter> =
        [primary, (primary + 1) % 3].iter().map(|i| Exporter::start(&set.hosts[*i], Some(password))).collect();
    // The exporter reads the set once per scrape; a member's view needs a heartbeat or two.
    let seen = scrape_until(&exporters, |seen| {
        seen.contains_key("mongodb_rs_myState") && seen.contains_key("mongodb_mongod_replset_oplog_head_timestamp")
    })
    .await;
    print_families("the real exporter against simulated members", &seen);
    seen
}

/// The exporter's families from a real mongod's recorded `getDiagnosticData` (4.2.8),
/// without credentials: the replay authenticates nobody.
pub async fn of_a_recorded_member() -> Families {
    let member = RecordedMember::start().await;
    let exporter = Exporter::start(&member.address, None);
    let seen = scrape_until(std::slice::from_ref(&exporter), |seen| {
        seen.contains_key("mongodb_ss_wt_cache_maximum_bytes_configured")
    })
    .await;
    print_families("the real exporter against a recorded mongod 4.2.8", &seen);
    seen
}

fn print_families(what: &str, seen: &Families) {
    let exporter_families: Vec<&String> = seen.keys().filter(|f| f.starts_with("mongodb_")).collect();
    println!("metric families of {what} ({}):", exporter_families.len());
    for f in &exporter_families {
        println!("  {f}");
    }
}

/// The operator's metric families, as its encoder writes them with a cluster and a backup
/// schedule in its caches.
pub fn of_the_operator() -> Families {
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
    let destinations =
        serde_json::json!([{"name": "s3", "s3": {"bucket": "b", "credentialsSecretRef": {"name": "k"}}}]);
    // A schedule (archiving its oplog) and its newest backup, which the size and duration are
    // read from.
    for backup in [
        serde_json::json!({
            "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoBackup",
            "metadata": {"name": "nightly", "namespace": "shop"},
            "spec": {"clusterRef": {"name": "orders"}, "schedule": {"cron": "0 2 * * *"}, "unencrypted": true,
                "destinations": destinations, "verification": {}, "pitr": {}},
            "status": {"phase": "Scheduled", "lastSuccessfulBackup": "nightly-202612040200",
                "lastSuccessfulTime": "2026-12-04T02:03:20Z", "lastVerifiedTime": "2026-12-04T02:09:00Z",
                "pitr": {"phase": "Running", "latestRestorableTime": "2026-12-04T02:20:00Z"}},
        }),
        serde_json::json!({
            "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoBackup",
            "metadata": {"name": "nightly-202612040200", "namespace": "shop"},
            "spec": {"clusterRef": {"name": "orders"}, "unencrypted": true, "destinations": destinations},
            "status": {"phase": "Succeeded", "sizeBytes": 1048576,
                "startTime": "2026-12-04T02:00:00Z", "completionTime": "2026-12-04T02:03:20Z"},
        }),
    ] {
        let backup = serde_json::from_value(backup).expect("backup");
        backup_writer.apply_watcher_event(&watcher::Event::Apply(backup));
    }
    m.reconcile("cluster").finish(Some("Mongo"));
    families(&m.encode().expect("encode"))
}
