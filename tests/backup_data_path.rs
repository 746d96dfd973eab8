//! The backup data path for real: the `mongo-operator backup` and `restore` binaries, with
//! mongodump and mongorestore built from mongo-tools, run with exactly the plans the operator
//! writes (`mongodump --oplog` from one member as the backup user, `mongorestore --oplogReplay`
//! into the set as `__system`), against replica sets that hold data (simulated members in
//! front of FerretDB: `support::data_set`), and two s3s-fs instances as two destinations, all
//! on loopback.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::TryStreamExt;
use mongo_operator::api::{BackupLocation, Compression, Destination};
use mongo_operator::backup::archive::DigestSum;
use mongo_operator::backup::plan::{
    BackupPlan, CopyVerification, Expected, Manifest, Outcome, RestorePlan, VerifyPlan,
};
use mongo_operator::build::backup_job::{BACKUP_USER, member_source, set_target};
use mongo_operator::build::verify_job::{THROWAWAY_SET, throwaway_source};
use mongodb::bson::{Bson, DateTime, Document, RawDocumentBuf, doc, spec::BinarySubtype};
use support::data_set::{DataSet, Throwaway};
use support::job_files::{BACKUP_PASSWORD, BUCKET, Secrets, destination};
use support::servers::{S3Server, tool_dir};

/// How to run the operator binary for one job.
struct Run<'a> {
    subcommand: &'a str,
    plan: String,
    secrets: &'a Path,
    mongodump: Option<PathBuf>,
    env: Vec<(&'a str, String)>,
}

fn command(run: &Run) -> Command {
    let tools = tool_dir("mongotools");
    let mut command = Command::new(env!("CARGO_BIN_EXE_mongo-operator"));
    command
        .arg(run.subcommand)
        .env("MONGO_OPERATOR_PLAN", &run.plan)
        .env("MONGO_OPERATOR_SECRETS_DIR", run.secrets)
        .env("MONGODUMP", run.mongodump.clone().unwrap_or_else(|| tools.join("mongodump")))
        .env("MONGORESTORE", tools.join("mongorestore"))
        .env("MONGO_OPERATOR_LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in &run.env {
        command.env(key, value);
    }
    command
}

fn outcome_of(output: std::process::Output) -> (bool, Outcome) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let outcome: Outcome = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!("no outcome ({e}) in stdout {stdout:?}; stderr: {}", String::from_utf8_lossy(&output.stderr))
    });
    (output.status.success(), outcome)
}

async fn run(run: Run<'_>) -> (bool, Outcome) {
    let (ok, outcome, _) = run_logged(run).await;
    (ok, outcome)
}

/// Runs the binary; its success, its outcome and what it (and its tools) wrote to stderr.
async fn run_logged(run: Run<'_>) -> (bool, Outcome, String) {
    let mut command = command(&run);
    let output = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run the binary");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let (ok, outcome) = outcome_of(output);
    (ok, outcome, stderr)
}

/// The set a backup is taken from: three members, with the backup user (role `backup`) and a
/// user of the application's own, as any production set has.
async fn source_set() -> DataSet {
    let set = DataSet::start("orders", 3).await;
    set.create_user(BACKUP_USER, BACKUP_PASSWORD, &[("backup", "admin")]).await;
    set.create_user("reporting", "reporting's password", &[("readAnyDatabase", "admin")]).await;
    set
}

/// A seeded source set, an empty one-member target and one store.
async fn seeded_with_one_store() -> (DataSet, DataSet, S3Server) {
    let source = source_set().await;
    seed(&source).await;
    (source, DataSet::start("clone", 1).await, S3Server::start(&[BUCKET]))
}

/// The plan the operator writes for a backup: one secondary alone, the backup user, `--oplog`.
async fn backup_plan(
    source: &DataSet,
    name: &str,
    destinations: Vec<Destination>,
    compression: Compression,
    encrypted: bool,
) -> String {
    let secondary = (source.primary().await + 1) % source.hosts.len();
    serde_json::to_string(&BackupPlan {
        cluster: "orders".into(),
        backup: name.into(),
        source: member_source(&source.hosts[secondary]),
        oplog: true,
        destinations,
        compression,
        encrypted,
    })
    .expect("json")
}

/// The plan the operator writes for a restore: the whole set, as `__system`, and what the
/// API or the spec vouches for.
fn restore_plan(target: &DataSet, destination: Destination, path: &str, expected: &Expected) -> String {
    restore_plan_with_fallbacks(target, BackupLocation { destination, path: path.into() }, vec![], expected)
}

fn restore_plan_with_fallbacks(
    target: &DataSet,
    location: BackupLocation,
    fallbacks: Vec<BackupLocation>,
    expected: &Expected,
) -> String {
    let target = set_target(&target.hosts, &target.name);
    serde_json::to_string(&RestorePlan { location, fallbacks, target, expected: expected.clone(), point_in_time: None })
        .expect("json")
}

/// What a restore by name knows from the MongoBackup's status: the checksum and whether the
/// backup was encrypted.
fn recorded(manifest: &Manifest) -> Expected {
    Expected { checksum: Some(manifest.checksum.clone()), encrypted: manifest.encryption.is_some() }
}

/// Documents of several BSON types in two databases.
async fn seed(set: &DataSet) {
    let client = set.client().await;
    let readings: Vec<Document> = (0..3000i64)
        .map(|i| {
            doc! {
                "_id": i,
                "device": format!("sensor-{:04}", i % 97),
                "at": DateTime::from_millis(1_763_900_000_000 + i * 7_200_000),
                "value": (i as f64) * 0.25 - 40.0,
                "ok": i % 3 != 0,
                "tags": ["iot", format!("zone-{}", i % 5)],
                "raw": Bson::Binary(mongodb::bson::Binary { subtype: BinarySubtype::Generic, bytes: (i as u32).to_le_bytes().to_vec() }),
                "nested": { "firmware": "2.4.1", "battery": { "mv": 3000 + (i % 700) } },
            }
        })
        .collect();
    client.database("iot").collection::<Document>("readings").insert_many(readings).await.expect("insert readings");
    let customers: Vec<Document> = (0..400i32)
        .map(|i| doc! { "_id": format!("c{i}"), "name": format!("Client {i} — Zoë Ünal"), "plan": if i % 2 == 0 { Bson::String("pro".into()) } else { Bson::Null } })
        .collect();
    client.database("crm").collection::<Document>("customers").insert_many(customers).await.expect("insert customers");
}

/// Every document of a collection, sorted by `_id`.
async fn documents(client: &mongodb::Client, db: &str, collection: &str) -> Vec<Document> {
    client
        .database(db)
        .collection::<Document>(collection)
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("documents")
}

/// Every document of every user database, sorted by database, collection and _id.
async fn contents(set: &DataSet) -> Vec<(String, String, Vec<Document>)> {
    let client = set.client().await;
    let mut out = Vec::new();
    let mut names = client.list_database_names().await.expect("databases");
    names.retain(|n| !["admin", "config", "local"].contains(&n.as_str()));
    names.sort();
    for db in names {
        let mut collections = client.database(&db).list_collection_names().await.expect("collections");
        collections.sort();
        for collection in collections {
            let docs = documents(&client, &db, &collection).await;
            out.push((db.clone(), collection, docs));
        }
    }
    out
}

async fn drop_all(set: &DataSet) {
    let client = set.client().await;
    for db in client.list_database_names().await.expect("databases") {
        if !["admin", "config", "local"].contains(&db.as_str()) {
            client.database(&db).drop().await.expect("drop");
        }
    }
}

fn backed_up(
    result: (bool, Outcome),
) -> (mongo_operator::backup::plan::Manifest, Vec<mongo_operator::backup::plan::Copy>) {
    match result {
        (true, Outcome::BackedUp { manifest, copies }) => (manifest, copies),
        other => panic!("the backup did not succeed: {other:?}"),
    }
}

/// The manifest's recorded contents are the source's: each user collection with its count,
/// and its digest as a scan of the server's documents gives it.
async fn assert_recorded(manifest: &Manifest, source: &DataSet, case: &str) {
    let contents = manifest.contents.as_ref().unwrap_or_else(|| panic!("{case}: no contents recorded"));
    let client = source.client().await;
    for (db, collection, count) in [("iot", "readings", 3000), ("crm", "customers", 400)] {
        let recorded = contents
            .namespaces
            .iter()
            .find(|n| n.db == db && n.collection == collection)
            .unwrap_or_else(|| panic!("{case}: {db}.{collection} not recorded in {contents:?}"));
        assert_eq!(recorded.documents, count, "{case}: {db}.{collection}");
        assert_eq!(recorded.kind, "collection");
        assert!(recorded.indexes.iter().any(|i| i["name"] == "_id_"), "{case}: {:?}", recorded.indexes);
        let mut digest = DigestSum::default();
        let mut cursor =
            client.database(db).collection::<RawDocumentBuf>(collection).find(doc! {}).await.expect("find");
        while let Some(document) = cursor.try_next().await.expect("scan") {
            digest.add(document.as_bytes());
        }
        assert_eq!(recorded.digest, digest.render(), "{case}: {db}.{collection}'s digest");
    }
    // The users' and the server's own collections are recorded too; the oplog by its entries.
    assert!(contents.namespaces.iter().any(|n| n.db == "admin" && n.collection == "system.users"), "{case}");
    assert!(contents.oplog_entries >= 1, "{case}: an --oplog dump carries at least one entry");
}

fn failed(result: (bool, Outcome)) -> String {
    match result {
        (false, Outcome::Failed { error }) => error,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs FerretDB, s3s-fs and mongo-tools built by e2e/tools.sh: run `make test`"]
async fn backup_to_two_stores_and_restore_every_document_for_each_encoding() {
    let source = source_set().await;
    let target = DataSet::start("clone", 3).await;
    let (store_a, store_b) = (S3Server::start(&[BUCKET]), S3Server::start(&[BUCKET]));
    seed(&source).await;
    let expected = contents(&source).await;
    assert_eq!(expected.iter().map(|(_, _, d)| d.len()).sum::<usize>(), 3400);
    let source_users = source.users().await;

    let key = "a long passphrase from a Secret, not typed by people";
    let cases = [
        (Compression::Zstd, false),
        (Compression::Zstd, true),
        (Compression::Gzip, false),
        (Compression::Gzip, true),
        (Compression::None, false),
        (Compression::None, true),
    ];
    for (i, (compression, encrypted)) in cases.into_iter().enumerate() {
        let name = format!("orders-{i}");
        let secrets = Secrets::backup(&["ovh", "scaleway"], encrypted.then_some(key));
        let destinations = vec![destination("ovh", &store_a, "prod"), destination("scaleway", &store_b, "eu/prod")];
        let plan = backup_plan(&source, &name, destinations, compression, encrypted).await;
        let (manifest, copies) =
            backed_up(run(Run { subcommand: "backup", plan, secrets: &secrets.0, mongodump: None, env: vec![] }).await);

        let case = format!("{compression:?}, encrypted: {encrypted}");
        assert!(manifest.oplog, "{case}: an --oplog archive");
        assert!(manifest.checksum.starts_with("sha256:") && manifest.checksum.len() == 71, "{case}");
        assert!(manifest.dump_bytes > 100_000, "{case}: mongodump wrote {} bytes", manifest.dump_bytes);
        assert_eq!(manifest.encryption.is_some(), encrypted, "{case}");
        assert!(manifest.mongodb_version.is_some(), "{case}: the version is recorded");
        if compression != Compression::None {
            assert!(
                manifest.size_bytes * 3 < manifest.dump_bytes,
                "{case}: {} of {} bytes",
                manifest.size_bytes,
                manifest.dump_bytes
            );
        }
        // Both stores hold the same two objects, and the stored bytes hash to the checksum.
        let archive = format!("orders/{name}/{}", manifest.archive);
        assert_eq!(copies.len(), 2, "{case}");
        for (store, prefix) in [(&store_a, "prod"), (&store_b, "eu/prod")] {
            let keys = store.keys(BUCKET);
            assert!(keys.contains(&format!("{prefix}/{archive}")), "{case}: {keys:?}");
            assert!(keys.contains(&format!("{prefix}/orders/{name}/manifest.json")), "{case}: {keys:?}");
            let bytes =
                std::fs::read(store.object_file(BUCKET, &format!("{prefix}/{archive}"))).expect("stored archive");
            use sha2::Digest;
            assert_eq!(format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes))), manifest.checksum, "{case}");
            assert_eq!(bytes.len() as u64, manifest.size_bytes, "{case}");
        }

        // The stored manifest records what the archive holds: every namespace with its
        // documents and a digest equal to one computed from the server's own bytes.
        let stored: Manifest = serde_json::from_slice(
            &std::fs::read(store_a.object_file(BUCKET, &format!("prod/orders/{name}/manifest.json")))
                .expect("manifest"),
        )
        .expect("manifest JSON");
        assert_recorded(&stored, &source, &case).await;

        // Restore from the second provider into an emptied set with --oplogReplay; every
        // document comes back, and so do the source's users (mongorestore replaces the set's
        // users with the backup's; the operator settles them afterwards).
        drop_all(&target).await;
        let path = copies.iter().find(|c| c.destination == "scaleway").expect("copy").path.clone();
        // Encrypted copies are restored as by location with only the key (the manifest's MAC
        // vouches for it), plain ones with the checksum the MongoBackup recorded.
        let vouching = match encrypted {
            true => Expected { checksum: None, encrypted: true },
            false => recorded(&manifest),
        };
        let plan = restore_plan(&target, destination("scaleway", &store_b, "eu/prod"), &path, &vouching);
        let restore_secrets = Secrets::restore(&["scaleway"], encrypted.then_some(key));
        let restored =
            run(Run { subcommand: "restore", plan, secrets: &restore_secrets.0, mongodump: None, env: vec![] }).await;
        assert!(
            matches!(&restored, (true, Outcome::Restored { copy, .. }) if copy.as_deref() == Some("scaleway")),
            "{case}: {restored:?}"
        );
        assert!(contents(&target).await == expected, "{case}: the restored documents differ from the source's");
        assert_eq!(target.users().await, source_users, "{case}: the backup's users");
    }
}

#[tokio::test]
#[ignore = "needs FerretDB, s3s-fs and mongo-tools built by e2e/tools.sh: run `make test`"]
async fn writes_during_the_dump_are_replayed_from_the_archive_oplog() {
    let (source, target, store) = seeded_with_one_store().await;
    // An application keeps writing while the backup runs: inserts, updates and deletes.
    let writer = {
        let client = source.client().await;
        tokio::spawn(async move {
            let live = client.database("iot").collection::<Document>("live");
            for op in writes() {
                match op {
                    Write::Insert(i) => live.insert_one(doc! { "_id": i, "n": 0 }).await.map(|_| ()),
                    Write::Update(i) => {
                        live.update_one(doc! { "_id": i }, doc! { "$set": { "n": 1 } }).await.map(|_| ())
                    }
                    Write::Delete(i) => live.delete_one(doc! { "_id": i }).await.map(|_| ()),
                }
                .expect("a write");
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let secrets = Secrets::backup(&["a"], None);
    let plan = backup_plan(&source, "live", vec![destination("a", &store, "p")], Compression::Zstd, false).await;
    let (manifest, copies) =
        backed_up(run(Run { subcommand: "backup", plan, secrets: &secrets.0, mongodump: None, env: vec![] }).await);
    writer.abort();
    let plan = restore_plan(&target, destination("a", &store, "p"), &copies[0].path, &recorded(&manifest));
    let restore_secrets = Secrets::restore(&["a"], None);
    let (ok, outcome, stderr) =
        run_logged(Run { subcommand: "restore", plan, secrets: &restore_secrets.0, mongodump: None, env: vec![] })
            .await;
    assert!(ok, "{outcome:?}\n{stderr}");
    let applied: u64 = stderr
        .lines()
        .filter_map(|l| l.split("applied ").nth(1)?.split(" oplog entries").next()?.trim().parse::<u64>().ok())
        .sum();
    assert!(applied > 0, "the archive's oplog was replayed: {stderr}");
    // What was restored is one moment of the application's writes: the state after some prefix
    // of its operations, not a mix of before and after.
    let live = documents(&target.client().await, "iot", "live").await;
    let last = live.last().and_then(|d| d.get_i64("_id").ok()).expect("some documents");
    let ops = writes();
    let consistent = (0..=ops.len()).any(|n| state_after(&ops[..n]) == live);
    assert!(consistent, "the restored documents (up to _id {last}) are no moment of the writes");
}

/// One write of the application in `writes_during_the_dump_are_replayed_from_the_archive_oplog`.
#[derive(Clone, Copy)]
enum Write {
    Insert(i64),
    Update(i64),
    Delete(i64),
}

/// The writes, in order: each insert, an update of every third, and a delete of the one
/// before every fifth.
fn writes() -> Vec<Write> {
    let mut ops = Vec::new();
    for i in 0..4000i64 {
        ops.push(Write::Insert(i));
        if i % 3 == 0 {
            ops.push(Write::Update(i));
        }
        if i % 5 == 0 && i > 0 {
            ops.push(Write::Delete(i - 1));
        }
    }
    ops
}

/// The collection after `ops`, sorted by `_id`.
fn state_after(ops: &[Write]) -> Vec<Document> {
    let mut docs = std::collections::BTreeMap::new();
    for op in ops {
        match *op {
            Write::Insert(i) => {
                docs.insert(i, 0);
            }
            Write::Update(i) => {
                docs.insert(i, 1);
            }
            Write::Delete(i) => {
                docs.remove(&i);
            }
        }
    }
    docs.into_iter().map(|(id, n)| doc! { "_id": id, "n": n }).collect()
}

/// A stand-in for mongodump that writes `FAKE_DUMP_MIB` MiB of incompressible bytes, one MiB
/// every `FAKE_DUMP_PAUSE` seconds, then exits with `FAKE_DUMP_EXIT`.
fn fake_mongodump(dir: &Path) -> PathBuf {
    let path = dir.join("fake-mongodump");
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(
        &path,
        "#!/bin/sh\ni=0\nwhile [ $i -lt \"$FAKE_DUMP_MIB\" ]; do head -c 1048576 /dev/urandom; sleep \"$FAKE_DUMP_PAUSE\"; i=$((i+1)); done\nexit \"$FAKE_DUMP_EXIT\"\n",
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn fake_env(mib: u32, pause: &str, exit: i32) -> Vec<(&'static str, String)> {
    vec![
        ("FAKE_DUMP_MIB", mib.to_string()),
        ("FAKE_DUMP_PAUSE", pause.to_string()),
        ("FAKE_DUMP_EXIT", exit.to_string()),
    ]
}

#[tokio::test]
#[ignore = "needs FerretDB, s3s-fs and mongo-tools built by e2e/tools.sh: run `make test`"]
async fn faults_never_leave_a_backup_that_looks_complete() {
    let source = source_set().await;
    let (store_a, mut store_b) = (S3Server::start(&[BUCKET]), S3Server::start(&[BUCKET]));
    let secrets = Secrets::backup(&["a", "b"], None);
    let fake = fake_mongodump(&secrets.0.join("bin"));
    let both = |a: &S3Server, b: &S3Server| vec![destination("a", a, "p"), destination("b", b, "p")];
    // A backup with the slow stand-in for mongodump, left running for two seconds.
    let start_slow = async |plan: String, mib: u32, pause: &str| {
        let run = Run {
            subcommand: "backup",
            plan,
            secrets: &secrets.0,
            mongodump: Some(fake.clone()),
            env: fake_env(mib, pause, 0),
        };
        let child = command(&run).spawn().expect("spawn");
        tokio::time::sleep(Duration::from_secs(2)).await;
        child
    };
    let error_of = async |child: std::process::Child| {
        let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("join").expect("wait");
        failed(outcome_of(output))
    };

    // mongodump exits non-zero after writing 20 MiB (parts already uploaded): nothing is left.
    let plan = backup_plan(&source, "dump-fails", both(&store_a, &store_b), Compression::None, false).await;
    let error = failed(
        run(Run {
            subcommand: "backup",
            plan,
            secrets: &secrets.0,
            mongodump: Some(fake.clone()),
            env: fake_env(20, "0", 3),
        })
        .await,
    );
    assert!(error.contains("mongodump exited with exit status: 3"), "{error}");
    assert_eq!(store_a.keys(BUCKET), Vec::<String>::new());
    assert_eq!(store_b.keys(BUCKET), Vec::<String>::new());

    // The backup process is killed (SIGKILL) mid-upload: no manifest and no archive anywhere.
    let plan = backup_plan(&source, "killed", both(&store_a, &store_b), Compression::None, false).await;
    let mut child = start_slow(plan.clone(), 40, "0.1").await;
    child.kill().expect("kill");
    let _ = child.wait();
    assert_eq!(store_a.keys(BUCKET), Vec::<String>::new());
    assert_eq!(store_b.keys(BUCKET), Vec::<String>::new());

    // SIGTERM (a deleted Job) mid-upload: the uploads are aborted and the outcome says so.
    let child = start_slow(plan, 40, "0.1").await;
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill -TERM");
    let error = error_of(child).await;
    assert!(error.contains("cancelled"), "{error}");
    assert_eq!(store_a.keys(BUCKET), Vec::<String>::new());

    // A store dies mid-upload: the backup fails and the other store keeps nothing either.
    let plan = backup_plan(&source, "store-dies", both(&store_a, &store_b), Compression::None, false).await;
    let child = start_slow(plan, 60, "0.05").await;
    store_b.kill();
    let error = error_of(child).await;
    assert!(error.contains("destination b"), "{error}");
    assert_eq!(store_a.keys(BUCKET), Vec::<String>::new());
}

#[tokio::test]
#[ignore = "needs FerretDB, s3s-fs and mongo-tools built by e2e/tools.sh: run `make test`"]
async fn restore_refuses_a_wrong_key_a_damaged_archive_and_a_missing_manifest_and_touches_nothing() {
    let (source, target, store) = seeded_with_one_store().await;
    let secrets = Secrets::backup(&["a"], Some("the right key"));
    let plan = backup_plan(&source, "keyed", vec![destination("a", &store, "p")], Compression::Zstd, true).await;
    let (manifest, copies) =
        backed_up(run(Run { subcommand: "backup", plan, secrets: &secrets.0, mongodump: None, env: vec![] }).await);
    let path = copies[0].path.clone();
    let secrets = Secrets::restore(&["a"], Some("the right key"));
    let restore = |secrets: &Path, path: &str| {
        let plan = restore_plan(&target, destination("a", &store, "p"), path, &recorded(&manifest));
        let secrets = secrets.to_path_buf();
        async move { run(Run { subcommand: "restore", plan, secrets: &secrets, mongodump: None, env: vec![] }).await }
    };

    // A wrong key does not verify the manifest's MAC, so nothing is read.
    let wrong = Secrets::restore(&["a"], Some("a wrong key"));
    let error = failed(restore(&wrong.0, &path).await);
    assert!(error.contains("does not verify with the encryption key: the key is not the backup's"), "{error}");
    assert!(contents(&target).await.is_empty(), "nothing was restored");
    assert_eq!(target.users().await, Vec::<(String, String)>::new(), "the users were not touched either");

    let missing = failed(restore(&secrets.0, "p/orders/never-finished/manifest.json").await);
    assert!(missing.contains("no usable manifest"), "{missing}");

    // One flipped byte in the stored encrypted archive: its chunk does not authenticate, so
    // mongorestore never sees it; what came before is removed and the target is empty again.
    let file = store.object_file(BUCKET, &format!("p/orders/keyed/{}", manifest.archive));
    let mut bytes = std::fs::read(&file).expect("archive");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&file, bytes).expect("damage");
    let error = failed(restore(&secrets.0, &path).await);
    assert!(error.contains("does not match its manifest"), "{error}");
    assert!(contents(&target).await.is_empty(), "what the damaged archive restored was removed");
}

#[tokio::test]
#[ignore = "needs FerretDB, s3s-fs and mongo-tools built by e2e/tools.sh: run `make test`"]
async fn restore_believes_a_manifest_only_as_far_as_the_api_or_the_key_vouches_for_it() {
    let (source, target, store) = seeded_with_one_store().await;
    let key = "the production backup key, 32 characters or more";
    let secrets = Secrets::backup(&["a"], Some(key));
    let plan = backup_plan(&source, "real", vec![destination("a", &store, "p")], Compression::Zstd, true).await;
    let (real, copies) =
        backed_up(run(Run { subcommand: "backup", plan, secrets: &secrets.0, mongodump: None, env: vec![] }).await);
    assert!(real.mac.as_deref().is_some_and(|m| m.starts_with("hmac-sha256:")), "{real:?}");
    let real_path = copies[0].path.clone();

    // Somebody who can write to the bucket, but has no key, puts a plaintext archive of their
    // own, with a manifest that matches it, where the real backup was.
    let forged = source_set().await;
    forged
        .client()
        .await
        .database("iot")
        .collection::<Document>("planted")
        .insert_one(doc! { "x": 1 })
        .await
        .expect("insert");
    let plain = Secrets::backup(&["a"], None);
    let plan = backup_plan(&forged, "forged", vec![destination("a", &store, "p")], Compression::Zstd, false).await;
    let (forged_manifest, _) =
        backed_up(run(Run { subcommand: "backup", plan, secrets: &plain.0, mongodump: None, env: vec![] }).await);
    let object = |name: &str| store.object_file(BUCKET, &format!("p/orders/{name}"));
    let replace_real_with_forged = || {
        std::fs::copy(
            object(&format!("forged/{}", forged_manifest.archive)),
            object(&format!("real/{}", forged_manifest.archive)),
        )
        .expect("plant the archive");
        std::fs::copy(object("forged/manifest.json"), object("real/manifest.json")).expect("plant the manifest");
    };
    let secrets = Secrets::restore(&["a"], Some(key));
    let restore = |expected: Expected| {
        let plan = restore_plan(&target, destination("a", &store, "p"), &real_path, &expected);
        let secrets = secrets.0.clone();
        async move { run(Run { subcommand: "restore", plan, secrets: &secrets, mongodump: None, env: vec![] }).await }
    };

    // A manifest changed by somebody without the key: its MAC no longer verifies (here it
    // stops the oplog being replayed), and with the MAC taken off there is nothing to check.
    let manifest_file = object("real/manifest.json");
    let original = std::fs::read(&manifest_file).expect("manifest");
    let mut changed: serde_json::Value = serde_json::from_slice(&original).expect("json");
    changed["oplog"] = false.into();
    std::fs::write(&manifest_file, serde_json::to_vec(&changed).expect("json")).expect("tamper");
    let by_key = Expected { checksum: None, encrypted: true };
    let error = failed(restore(by_key.clone()).await);
    assert!(error.contains("is refused: its MAC does not verify with the encryption key"), "{error}");
    changed.as_object_mut().expect("object").remove("mac");
    std::fs::write(&manifest_file, serde_json::to_vec(&changed).expect("json")).expect("tamper");
    let error = failed(restore(by_key.clone()).await);
    assert!(error.contains("is refused: it carries no MAC"), "{error}");
    std::fs::write(&manifest_file, &original).expect("put back");

    replace_real_with_forged();
    // By location with the key: the plaintext archive is refused before anything is read.
    let error = failed(restore(by_key).await);
    assert!(error.contains("is refused: it says the archive is not encrypted"), "{error}");
    // By name: the MongoBackup's status says encrypted, with the real checksum.
    let error = failed(restore(recorded(&real)).await);
    assert!(error.contains("is refused: it says the archive is not encrypted"), "{error}");
    // By location with the checksum the MongoBackup showed: the forged manifest's differs.
    let error = failed(restore(Expected { checksum: Some(real.checksum.clone()), encrypted: false }).await);
    assert!(error.contains(&format!("is not the backup's, {}", real.checksum)), "{error}");
    assert!(contents(&target).await.is_empty(), "nothing of the forged backup was restored");
    assert_eq!(target.users().await, Vec::<(String, String)>::new(), "the users were not touched either");
}

#[tokio::test]
#[ignore = "needs FerretDB, s3s-fs and mongo-tools built by e2e/tools.sh: run `make test`"]
async fn restore_falls_back_to_the_next_copy_when_one_is_damaged_or_its_store_is_down() {
    let source = source_set().await;
    let (first_target, second_target) = (DataSet::start("first", 1).await, DataSet::start("second", 1).await);
    let (mut store_a, store_b) = (S3Server::start(&[BUCKET]), S3Server::start(&[BUCKET]));
    seed(&source).await;
    let expected = contents(&source).await;
    let secrets = Secrets::backup(&["ovh", "scaleway"], None);
    // No compression and no encryption: a flipped byte reaches mongorestore, and only the
    // checksum at the end finds it.
    let destinations = vec![destination("ovh", &store_a, "prod"), destination("scaleway", &store_b, "eu/prod")];
    let plan = backup_plan(&source, "twice", destinations, Compression::None, false).await;
    let (manifest, copies) =
        backed_up(run(Run { subcommand: "backup", plan, secrets: &secrets.0, mongodump: None, env: vec![] }).await);
    let secrets = Secrets::restore(&["ovh", "scaleway"], None);
    let location = |name: &str, store: &S3Server, prefix: &str| BackupLocation {
        destination: destination(name, store, prefix),
        path: copies.iter().find(|c| c.destination == name).expect("copy").path.clone(),
    };
    let (ovh, scaleway) = (location("ovh", &store_a, "prod"), location("scaleway", &store_b, "eu/prod"));
    let flip = |store: &S3Server, prefix: &str| {
        let file = store.object_file(BUCKET, &format!("{prefix}/orders/twice/{}", manifest.archive));
        let mut bytes = std::fs::read(&file).expect("archive");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&file, bytes).expect("damage");
    };
    let restore = |target: &DataSet| {
        let plan = restore_plan_with_fallbacks(target, ovh.clone(), vec![scaleway.clone()], &recorded(&manifest));
        let secrets = secrets.0.clone();
        async move { run(Run { subcommand: "restore", plan, secrets: &secrets, mongodump: None, env: vec![] }).await }
    };

    // The first copy is damaged: its checksum fails at the end of the one read, what it put in
    // is removed, and the second copy is restored.
    flip(&store_a, "prod");
    let restored = restore(&first_target).await;
    assert!(
        matches!(&restored, (true, Outcome::Restored { copy, .. }) if copy.as_deref() == Some("scaleway")),
        "{restored:?}"
    );
    assert!(contents(&first_target).await == expected, "every document, from the second copy");

    // The first store is down: the same.
    store_a.kill();
    let restored = restore(&second_target).await;
    assert!(
        matches!(&restored, (true, Outcome::Restored { copy, .. }) if copy.as_deref() == Some("scaleway")),
        "{restored:?}"
    );
    assert!(contents(&second_target).await == expected, "every document, from the second copy");

    // No copy is usable: the error names each one and why, and the target is left empty.
    flip(&store_b, "eu/prod");
    drop_all(&second_target).await;
    let error = failed(restore(&second_target).await);
    assert!(error.contains("copy ovh:") && error.contains("copy scaleway:"), "{error}");
    assert!(error.contains("does not match its manifest"), "the second copy's own reason: {error}");
    assert!(contents(&second_target).await.is_empty(), "nothing was restored");
}

/// A stopped mongorestore's last writes can still be running on the server when the wipe
/// starts, and a write re-creates the database the wipe dropped: the wipe is done only when
/// the target stays empty. A writer that keeps inserting for a second after the wipe starts
/// stands in for those last writes (a single drop-and-return left its later documents in).
#[tokio::test]
#[ignore = "needs FerretDB built by e2e/tools.sh: run `make test`"]
async fn a_wipe_is_done_only_when_late_writes_have_stopped_landing() {
    let target = DataSet::start("late", 1).await;
    let client = target.client().await;
    let writing = std::time::Instant::now();
    let writer = tokio::spawn(async move {
        let collection = client.database("late").collection::<Document>("writes");
        let mut written = 0u64;
        while writing.elapsed() < Duration::from_secs(1) {
            collection.insert_one(doc! { "n": written as i64 }).await.expect("insert");
            written += 1;
        }
        written
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let source = set_target(&target.hosts, &target.name);
    mongo_operator::backup::restore::wipe(&source, Some(support::data_set::KEY_FILE)).await.expect("wipe");
    let written = writer.await.expect("writer");
    assert!(written > 10, "the writer wrote during the wipe: {written}");
    assert!(contents(&target).await.is_empty(), "nothing the late writes put in is left");
}

fn verified(result: (bool, Outcome)) -> (bool, Vec<CopyVerification>) {
    match result {
        (ok, Outcome::Verified { copies }) => (ok, copies),
        other => panic!("expected a verification, got {other:?}"),
    }
}

fn verify_plan(throwaway: &Throwaway, copies: Vec<BackupLocation>, expected: &Expected) -> String {
    serde_json::to_string(&VerifyPlan {
        copies,
        throwaway: throwaway_source(&throwaway.host),
        set_name: THROWAWAY_SET.into(),
        expected: expected.clone(),
    })
    .expect("json")
}

/// Rewrites a stored manifest's recorded contents, as if the restore had come back different
/// from what was dumped (a lost namespace, a changed document): whoever can write to the
/// bucket can do this to an unencrypted backup's manifest, which only its checksum vouches
/// for, and the comparison must then name what differs.
fn rewrite_contents(store: &S3Server, key: &str, change: impl FnOnce(&mut serde_json::Value)) {
    let file = store.object_file(BUCKET, key);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("manifest")).expect("JSON");
    change(&mut manifest["contents"]);
    std::fs::write(&file, serde_json::to_vec(&manifest).expect("JSON")).expect("write");
}

#[tokio::test]
#[ignore = "needs FerretDB, s3s-fs and mongo-tools built by e2e/tools.sh: run `make test`"]
async fn verification_restores_every_copy_and_names_whatever_differs() {
    let source = source_set().await;
    seed(&source).await;
    let (store_a, store_b) = (S3Server::start(&[BUCKET]), S3Server::start(&[BUCKET]));
    let key = "the verification's encryption key";
    let destinations = || vec![destination("ovh", &store_a, "prod"), destination("scaleway", &store_b, "eu/prod")];
    let locations = |name: &str| {
        vec![
            BackupLocation {
                destination: destination("ovh", &store_a, "prod"),
                path: format!("prod/orders/{name}/manifest.json"),
            },
            BackupLocation {
                destination: destination("scaleway", &store_b, "eu/prod"),
                path: format!("eu/prod/orders/{name}/manifest.json"),
            },
        ]
    };

    // An encrypted backup in two stores: both copies restore and match what was recorded.
    let secrets = Secrets::backup(&["ovh", "scaleway"], Some(key));
    let plan = backup_plan(&source, "sealed", destinations(), Compression::Zstd, true).await;
    let (manifest, _) =
        backed_up(run(Run { subcommand: "backup", plan, secrets: &secrets.0, mongodump: None, env: vec![] }).await);
    let throwaway = Throwaway::start(THROWAWAY_SET).await;
    let verify_secrets = Secrets::new(&["ovh", "scaleway"], Some(key), "");
    let plan = verify_plan(&throwaway, locations("sealed"), &recorded(&manifest));
    let (ok, copies) = verified(
        run(Run { subcommand: "verify", plan, secrets: &verify_secrets.0, mongodump: None, env: vec![] }).await,
    );
    assert!(ok, "{copies:#?}");
    assert_eq!(copies.iter().map(|c| c.destination.as_str()).collect::<Vec<_>>(), ["ovh", "scaleway"]);
    for copy in &copies {
        assert!(copy.passed && copy.mismatches.is_empty(), "{copy:#?}");
        // 3,400 documents of the seed, and the backup's two users.
        assert_eq!((copy.documents_expected, copy.documents_restored), (3402, 3402), "{copy:#?}");
        assert!(copy.restore_seconds > 0.0 && copy.restored_bytes == manifest.dump_bytes, "{copy:#?}");
    }
    // The throwaway is left empty.
    let names = throwaway.client().await.list_database_names().await.expect("databases");
    assert!(names.iter().all(|n| ["admin", "config", "local"].contains(&n.as_str())), "{names:?}");

    // The wrong key: neither copy decrypts, and the verification fails naming both.
    let wrong = Secrets::new(&["ovh", "scaleway"], Some("not the key"), "");
    let plan = verify_plan(&throwaway, locations("sealed"), &recorded(&manifest));
    let (ok, copies) =
        verified(run(Run { subcommand: "verify", plan, secrets: &wrong.0, mongodump: None, env: vec![] }).await);
    assert!(!ok);
    for copy in &copies {
        assert!(!copy.passed && copy.mismatches[0].check == "restore", "{copy:#?}");
        assert!(copy.mismatches[0].found.contains("MAC"), "{copy:#?}");
    }

    // An unencrypted backup: one copy's archive damaged in its store after the upload, and
    // the other's manifest saying something the restore does not give back.
    let secrets = Secrets::backup(&["ovh", "scaleway"], None);
    let plan = backup_plan(&source, "plain", destinations(), Compression::Zstd, false).await;
    let (manifest, _) =
        backed_up(run(Run { subcommand: "backup", plan, secrets: &secrets.0, mongodump: None, env: vec![] }).await);
    let archive = store_a.object_file(BUCKET, &format!("prod/orders/plain/{}", manifest.archive));
    let mut bytes = std::fs::read(&archive).expect("archive");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&archive, bytes).expect("damage");
    rewrite_contents(&store_b, "eu/prod/orders/plain/manifest.json", |contents| {
        let namespaces = contents["namespaces"].as_array_mut().expect("namespaces");
        for n in namespaces.iter_mut() {
            if n["collection"] == "readings" {
                n["digest"] = serde_json::json!("sum128-xxh3:00000000000000000000000000000001");
            }
            if n["collection"] == "customers" {
                n["documents"] = serde_json::json!(401);
            }
        }
        namespaces.push(serde_json::json!({"db": "crm", "collection": "invoices", "kind": "collection", "documents": 7, "digest": "sum128-xxh3:0"}));
    });
    let plain_secrets = Secrets::new(&["ovh", "scaleway"], None, "");
    let plan = verify_plan(&throwaway, locations("plain"), &recorded(&manifest));
    let (ok, copies) = verified(
        run(Run { subcommand: "verify", plan, secrets: &plain_secrets.0, mongodump: None, env: vec![] }).await,
    );
    assert!(!ok);
    let damaged = &copies[0];
    assert!(!damaged.passed && damaged.mismatches[0].check == "restore", "{damaged:#?}");
    assert!(damaged.mismatches[0].found.contains("does not match its manifest"), "{damaged:#?}");
    let differing = &copies[1];
    let mut found: Vec<(&str, &str)> =
        differing.mismatches.iter().map(|m| (m.namespace.as_str(), m.check.as_str())).collect();
    found.sort();
    assert_eq!(
        found,
        [("crm.customers", "documents"), ("crm.invoices", "missing"), ("iot.readings", "digest")],
        "{differing:#?}"
    );
    assert_eq!(differing.mismatch_count, 3);
}
