//! The oplog archive for real, as tests/pitr_archive.rs and the restore to a point in time on
//! the control plane use it: a replica set that holds data (simulated members in front of
//! FerretDB), base backups taken by the real `mongo-operator backup` (mongodump from
//! mongo-tools) and the `mongo-operator archive-oplog` binary writing to s3s-fs stores.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mongo_operator::api::{Compression, Destination};
use mongo_operator::backup::plan::{BackupPlan, Manifest, Outcome};
use mongo_operator::backup::store::{OpenStore, StoreCredentials, open};
use mongo_operator::build::backup_job::{BACKUP_USER, member_source};
use mongo_operator::pitr::archiver::ArchivePlan;
use mongo_operator::pitr::{Ts, store};
use mongodb::bson::{Document, doc};

use super::data_set::DataSet;
use super::job_files::{BACKUP_PASSWORD, destination};
use super::servers::{Ferret, S3_ACCESS_KEY, S3_SECRET_KEY, S3Server, tool_dir};

/// The backups' passphrase.
pub const KEY: &str = "the backups' passphrase";

/// The source set. The simulator's periodic no-ops are off: it writes them into FerretDB's
/// oplog with a timestamp of its own choosing, which FerretDB's next entry may precede (its
/// clock is not the simulator's), so that the oplog would not be in timestamp order, as
/// mongod's always is (docs/testing.md).
pub async fn source_set(ferret: Option<Ferret>) -> DataSet {
    let ferret = ferret.unwrap_or_else(Ferret::start);
    let set = DataSet::start_on(ferret, "orders", 3, |o| o.noop_interval = Duration::from_secs(3600)).await;
    set.create_user(BACKUP_USER, BACKUP_PASSWORD, &[("backup", "admin")]).await;
    set
}

pub fn stores(servers: &[(&str, &S3Server, &str)]) -> (Vec<Destination>, Vec<OpenStore>) {
    let credentials = StoreCredentials {
        access_key_id: Some(S3_ACCESS_KEY.into()),
        secret_access_key: Some(S3_SECRET_KEY.into()),
        ..StoreCredentials::default()
    };
    let destinations: Vec<Destination> = servers.iter().map(|(n, s, p)| destination(n, s, p)).collect();
    let opened = destinations.iter().map(|d| open(d, &credentials).expect("open")).collect();
    (destinations, opened)
}

/// Takes a base backup with the real binary and mongodump; its manifest as stored (the
/// outcome's leaves out what the archive holds).
pub async fn base_backup(
    set: &DataSet,
    name: &str,
    destinations: &[Destination],
    secrets: &Path,
    first: &OpenStore,
) -> Manifest {
    let secondary = (set.primary().await + 1) % set.hosts.len();
    let plan = serde_json::to_string(&BackupPlan {
        cluster: "orders".into(),
        backup: name.into(),
        source: member_source(&set.hosts[secondary]),
        oplog: true,
        destinations: destinations.to_vec(),
        compression: Compression::Zstd,
        encrypted: true,
    })
    .expect("json");
    let (_, outcome, stderr) = run_operator("backup", plan, secrets).await;
    match outcome {
        Some(Outcome::BackedUp { copies, .. }) => {
            let path = object_store::path::Path::from(copies[0].path.as_str());
            mongo_operator::backup::restore::read_manifest(first, &path).await.expect("the stored manifest")
        }
        other => panic!("{other:?}: {stderr}"),
    }
}

/// Runs a data-path subcommand of the operator binary with mongo-tools: its success, its
/// outcome and its error output.
pub async fn run_operator(subcommand: &str, plan: String, secrets: &Path) -> (bool, Option<Outcome>, String) {
    let tools = tool_dir("mongotools");
    let mut command = Command::new(env!("CARGO_BIN_EXE_mongo-operator"));
    command
        .arg(subcommand)
        .env("MONGO_OPERATOR_PLAN", plan)
        .env("MONGO_OPERATOR_SECRETS_DIR", secrets)
        .env("MONGODUMP", tools.join("mongodump"))
        .env("MONGORESTORE", tools.join("mongorestore"))
        .env("MONGO_OPERATOR_LOG_LEVEL", "warn");
    let output = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let outcome = serde_json::from_str::<Outcome>(stdout.lines().last().unwrap_or_default()).ok();
    (output.status.success(), outcome, String::from_utf8_lossy(&output.stderr).into_owned())
}
/// The archiver as its Deployment runs it; its log goes to a file, shown when a check fails.
pub struct Archiver {
    child: Child,
    log: std::path::PathBuf,
    /// The address its status port listens on, as a Pod's IP would be (one per archiver).
    pub ip: String,
}

/// Distinct loopback addresses for the archivers a test process starts.
static NEXT_IP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

impl Archiver {
    pub fn start(set: &DataSet, destinations: &[Destination], secrets: &Path, span_seconds: u64) -> Archiver {
        let plan = ArchivePlan {
            cluster: "orders".into(),
            members: set.hosts.iter().map(|h| member_source(h)).collect(),
            destinations: destinations.to_vec(),
            compression: Compression::Zstd,
            encrypted: true,
            span_seconds,
        };
        let n = NEXT_IP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ip = format!("127.0.{}.{}", 101 + n / 250, 1 + n % 250);
        let log = std::env::temp_dir().join(format!("archiver-{}-{n}.log", std::process::id()));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_mongo-operator"))
            .arg("archive-oplog")
            .env("MONGO_OPERATOR_PLAN", serde_json::to_string(&plan).expect("json"))
            .env("MONGO_OPERATOR_SECRETS_DIR", secrets)
            .env("MONGO_OPERATOR_LOG_LEVEL", "info")
            .env("POD_IP", &ip)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start the archiver");
        Archiver { child, log, ip }
    }

    /// Its report, as the operator reads it from the status port.
    pub async fn report(&self) -> mongo_operator::pitr::report::Report {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match mongo_operator::controller::backup::archive_report::read(&self.ip).await {
                Ok(report) => return report,
                Err(error) => {
                    assert!(Instant::now() < deadline, "no report from {}: {error}; log:\n{}", self.ip, self.log());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Killed, as a node failure kills it: nothing is flushed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Archiver {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The newest entry of the data store's oplog.
pub async fn newest_entry(set: &DataSet) -> Ts {
    let client = set.ferret.client().await;
    let newest = client
        .database("local")
        .collection::<Document>("oplog.rs")
        .find_one(doc! {})
        .sort(doc! { "$natural": -1 })
        .await
        .expect("find")
        .expect("an entry");
    newest.get_timestamp("ts").expect("ts").into()
}

/// Waits until every destination holds a chunk reaching `ts`.
pub async fn wait_archived(stores: &[OpenStore], ts: Ts, archiver: &Archiver) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut reached = true;
        for s in stores {
            let (chunks, _) = store::list(s, "orders").await.expect("list");
            reached &= chunks.iter().any(|c| c.last.ts >= ts);
        }
        if reached {
            return;
        }
        assert!(Instant::now() < deadline, "the archive did not reach {ts}; archiver log:\n{}", archiver.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn write(set: &DataSet, from: i64, n: i64) {
    let client = set.client().await;
    let orders = client.database("shop").collection::<Document>("orders");
    for i in from..from + n {
        orders.insert_one(doc! { "_id": i, "total": i * 10 }).await.expect("insert");
        if i % 3 == 0 {
            orders.update_one(doc! { "_id": i }, doc! { "$set": { "paid": true } }).await.expect("update");
        }
        if i % 7 == 0 {
            orders.delete_one(doc! { "_id": i }).await.expect("delete");
        }
    }
}

/// Every document of `shop.orders`, by `_id`.
pub async fn orders(set: &DataSet) -> Vec<Document> {
    use futures::TryStreamExt;
    let client = set.client().await;
    let cursor = client
        .database("shop")
        .collection::<Document>("orders")
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .expect("find");
    cursor.try_collect().await.expect("documents")
}
