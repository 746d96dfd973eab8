//! What verifying a backup costs (`make bench-backup` runs it): the real `mongo-operator
//! verify` binary with the real mongorestore, on an encrypted, compressed backup taken by the
//! real `mongo-operator backup` (mongodump) into two s3s-fs stores, restoring both copies
//! into a throwaway. Prints, per copy, the restore time and throughput the status would show,
//! and the whole verification's wall time (read back, checksum, decrypt, restore, compare
//! counts and digests, `validate`, empty the throwaway).
//!
//! The source and the throwaway are simulated members in front of FerretDB (SQLite), as in the
//! tests: FerretDB stores documents far slower than WiredTiger, so these figures are a floor
//! for this machine, not a real mongod's. What is the operator's own (the data path and the
//! comparison) is the difference between the wall time and the restores. Prints figures, no
//! thresholds.
//!
//!   cargo bench --bench verification [-- DOCUMENTS]     (default 20000)

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use mongo_operator::api::BackupLocation;
use mongo_operator::backup::plan::{Expected, Outcome, VerifyPlan};
use mongo_operator::build::verify_job::{THROWAWAY_SET, throwaway_source};
use mongodb::bson::doc;
use support::data_set::Throwaway;
use support::job_files::{BUCKET, Secrets};
use support::pitr::{KEY, base_backup, run_operator, source_set, stores};
use support::servers::S3Server;

const DEFAULT_DOCUMENTS: u64 = 20_000;
const BATCH: u64 = 1000;

#[tokio::main]
async fn main() {
    let documents: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(DEFAULT_DOCUMENTS);
    let set = source_set(None).await;
    let client = set.client().await;
    let readings = client.database("iot").collection::<mongodb::bson::Document>("readings");
    let seeding = Instant::now();
    for start in (0..documents).step_by(BATCH as usize) {
        let batch: Vec<_> = (start..(start + BATCH).min(documents))
            .map(|i| {
                let i = i as i64;
                doc! {
                    "_id": i, "device": format!("sensor-{:05}", i % 9973),
                    "at": mongodb::bson::DateTime::from_millis(1_763_900_000_000 + i * 1000),
                    "value": (i as f64) * 0.25, "ok": i % 3 != 0, "tags": ["iot", format!("zone-{}", i % 7)],
                    "nested": { "firmware": "2.4.1", "battery": { "mv": 3000 + (i % 700) } },
                }
            })
            .collect();
        readings.insert_many(batch).await.expect("seed");
    }
    eprintln!("seeded {documents} documents in {:.1} s", seeding.elapsed().as_secs_f64());

    let (a, b) = (S3Server::start(&[BUCKET]), S3Server::start(&[BUCKET]));
    let (destinations, opened) = stores(&[("ovh", &a, "prod"), ("scaleway", &b, "eu/prod")]);
    let secrets = Secrets::backup(&["ovh", "scaleway"], Some(KEY));
    let backing_up = Instant::now();
    let manifest = base_backup(&set, "bench", &destinations, &secrets.0, &opened[0]).await;
    let backup_seconds = backing_up.elapsed().as_secs_f64();

    let throwaway = Throwaway::start(THROWAWAY_SET).await;
    let copies = destinations
        .iter()
        .map(|d| BackupLocation {
            destination: d.clone(),
            path: format!(
                "{}/orders/bench/manifest.json",
                d.s3.as_ref().and_then(|s| s.prefix.clone()).unwrap_or_default()
            ),
        })
        .collect();
    let plan = serde_json::to_string(&VerifyPlan {
        copies,
        throwaway: throwaway_source(&throwaway.host),
        set_name: THROWAWAY_SET.into(),
        expected: Expected { checksum: Some(manifest.checksum.clone()), encrypted: true },
    })
    .expect("json");
    let verify_secrets = Secrets::new(&["ovh", "scaleway"], Some(KEY), "");
    let verifying = Instant::now();
    let (ok, outcome, stderr) = run_operator("verify", plan, &verify_secrets.0).await;
    let wall = verifying.elapsed().as_secs_f64();
    let Some(Outcome::Verified { copies }) = outcome else { panic!("no verification outcome: {stderr}") };
    assert!(ok, "the verification failed: {copies:#?}\n{stderr}");

    let mib = |bytes: u64| bytes as f64 / 1_048_576.0;
    println!("verification of one backup, two copies ({documents} documents)");
    println!(
        "  dump {:.1} MiB, stored {:.1} MiB (zstd + age); backup took {backup_seconds:.1} s",
        mib(manifest.dump_bytes),
        mib(manifest.size_bytes)
    );
    println!("  {:<10} {:>10} {:>12} {:>12} {:>10}", "copy", "restore s", "MiB/s", "documents", "passed");
    let mut restoring = 0.0;
    for copy in &copies {
        restoring += copy.restore_seconds;
        let throughput = if copy.restore_seconds > 0.0 { mib(copy.restored_bytes) / copy.restore_seconds } else { 0.0 };
        println!(
            "  {:<10} {:>10.2} {:>12.2} {:>12} {:>10}",
            copy.destination, copy.restore_seconds, throughput, copy.documents_restored, copy.passed
        );
    }
    println!(
        "  whole verification {wall:.2} s: restores {restoring:.2} s, the rest (start, read back, compare, validate, empty) {:.2} s",
        wall - restoring
    );
}
