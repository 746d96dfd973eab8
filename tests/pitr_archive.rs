//! The oplog archiver for real: the `mongo-operator archive-oplog` binary with the plan the
//! operator writes, tailing a replica set that holds data (simulated members in front of
//! FerretDB, whose oplog the members serve) and writing to two s3s-fs stores, from a base
//! backup taken by the real `mongo-operator backup` (mongodump built from mongo-tools). What
//! the archive holds is compared with the oplog itself, entry by entry, byte for byte.

mod support;

use std::time::{Duration, Instant};

use mongo_operator::api::{BackupLocation, Destination};
use mongo_operator::backup::plan::{Expected, Outcome, PointInTimePlan, RestorePlan};
use mongo_operator::backup::store::OpenStore;
use mongo_operator::build::backup_job::set_target;
use mongo_operator::pitr::slicer::{documents, replay_file};
use mongo_operator::pitr::timeline::timelines;
use mongo_operator::pitr::{OpTime, Ts, store};
use mongodb::bson::{Document, RawDocumentBuf, Timestamp, doc};
use support::data_set::DataSet;
use support::job_files::{BUCKET, Secrets};
use support::pitr::{
    Archiver, KEY, base_backup, newest_entry, orders, run_operator, source_set, stores, wait_archived, write,
};
use support::servers::S3Server;

/// What a destination archived: its one range, and the raw entries after `base_end`.
async fn archived(s: &OpenStore, base_end: OpTime) -> (OpTime, Vec<Vec<u8>>) {
    let (chunks, _) = store::list(s, "orders").await.expect("list");
    let lines = timelines(&chunks);
    assert_eq!(lines.len(), 1, "one unbroken range in {}: {chunks:?}", s.name);
    assert_eq!(lines[0].after.ts, base_end.ts, "the range starts at the base backup's oplog end");
    let mut raw = Vec::new();
    let mut previous = base_end;
    for chunk in &lines[0].chunks {
        let manifest =
            store::read_manifest(s, &chunk.manifest, Some(KEY)).await.expect("a manifest the key vouches for");
        assert_eq!(manifest.after, previous, "each chunk follows the last, term included");
        previous = manifest.last;
        raw.push(store::read_chunk(s, &manifest, Some(KEY)).await.expect("a chunk with its checksum"));
    }
    let (file, _) = replay_file(raw.iter().map(Vec::as_slice), base_end.ts).expect("entries");
    let entries = documents(&file).map(|d| d.expect("document").as_bytes().to_vec()).collect();
    (previous, entries)
}

/// The data store's oplog entries after `after` up to `last`, as they are stored.
async fn oplog_between(set: &DataSet, after: Ts, last: Ts) -> Vec<Vec<u8>> {
    let client = set.ferret.client().await;
    let ts = |t: Ts| Timestamp { time: t.time, increment: t.increment };
    let mut cursor = client
        .database("local")
        .collection::<RawDocumentBuf>("oplog.rs")
        .find(doc! { "ts": { "$gt": ts(after), "$lte": ts(last) } })
        .sort(doc! { "$natural": 1 })
        .await
        .expect("find");
    let mut out = Vec::new();
    while cursor.advance().await.expect("next") {
        out.push(cursor.current().as_bytes().to_vec());
    }
    out
}

#[tokio::test]
#[ignore = "needs FerretDB, s3s-fs and mongo-tools: run `make test`"]
async fn the_archive_continues_a_base_backup_through_a_kill_and_a_failover_with_no_entry_lost_or_doubled() {
    let set = source_set(None).await;
    write(&set, 0, 20).await;
    let (a, b) = (S3Server::start(&[BUCKET]), S3Server::start(&[BUCKET]));
    let (destinations, opened) = stores(&[("ovh", &a, "eu/prod"), ("scaleway", &b, "fr")]);
    let secrets = Secrets::backup(&["ovh", "scaleway"], Some(KEY));
    let base = base_backup(&set, "orders-base", &destinations, &secrets.0, &opened[0]).await;
    let base_end = base.contents.as_ref().and_then(|c| c.oplog_last).expect("the base records its oplog end");

    let mut archiver = Archiver::start(&set, &destinations, &secrets.0, 1);
    write(&set, 100, 30).await;
    wait_archived(&opened, newest_entry(&set).await, &archiver).await;

    // Killed with entries read but not archived; what is written meanwhile is read on restart.
    write(&set, 200, 30).await;
    archiver.kill();
    write(&set, 300, 30).await;
    let mut archiver = Archiver::start(&set, &destinations, &secrets.0, 1);
    wait_archived(&opened, newest_entry(&set).await, &archiver).await;

    // The member it reads goes down: it goes on from another.
    let log = archiver.log();
    let reading = log.lines().rev().find(|l| l.contains("reading the oplog")).expect("the member it reads");
    let member = set.hosts.iter().position(|h| reading.contains(h.as_str())).expect("one of the members");
    assert_ne!(member, set.primary().await, "a secondary is read when one answers: {reading}");
    assert!(set.sim.stop_member(&format!("m{member}")));
    write(&set, 400, 30).await;
    wait_archived(&opened, newest_entry(&set).await, &archiver).await;

    // What the operator shows of the archive, from the archiver's report: the one range a
    // restore accepts (from the second after the base's end to the last archived entry's),
    // read back from the first store as a restore reads it.
    let (chunks, _) = store::list(&opened[0], "orders").await.expect("list");
    let bases = mongo_operator::pitr::archiver::bases(&opened[0], "orders").await;
    let newest = chunks.iter().map(|c| c.last.ts).max().expect("chunks");
    // The report follows each chunk once the archiver has read the store back.
    let deadline = Instant::now() + Duration::from_secs(10);
    let report = loop {
        let report = archiver.report().await;
        if report.last_archived == Some(newest.to_time()) || Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(report.ranges, mongo_operator::pitr::target::ranges(&bases, &chunks), "{report:?}");
    assert_eq!(report.ranges.len(), 1, "{report:?}");
    assert_eq!(report.ranges[0].earliest.timestamp(), i64::from(base_end.ts.time) + 1);
    assert_eq!((report.ranges[0].latest, report.last_archived), (newest.to_time(), Some(newest.to_time())));
    assert!(report.gaps.is_empty() && report.activity == mongo_operator::pitr::report::Activity::Archiving);
    assert!(report.last_written.is_some() && report.member.is_some(), "{report:?}");
    let first = oplog_between(&set, Ts::new(0, 0), newest).await;
    let first_time = first
        .first()
        .map(|e| mongodb::bson::RawDocument::from_bytes(e).expect("entry").get_timestamp("ts").expect("ts").time);
    assert!(
        report.oplog_window_seconds.is_some_and(|w| w <= i64::from(newest.time - first_time.unwrap_or(0)) + 1),
        "{report:?}"
    );
    archiver.kill();

    for s in &opened {
        let (last, entries) = archived(s, base_end).await;
        let expected = oplog_between(&set, base_end.ts, last.ts).await;
        assert!(expected.len() > 150, "{} entries", expected.len());
        assert_eq!(entries.len(), expected.len(), "{}: as many entries as the oplog holds", s.name);
        assert!(entries == expected, "{}: the same entries, byte for byte, in order", s.name);
    }
}

#[tokio::test]
#[ignore = "needs FerretDB: run `make test`"]
async fn a_member_that_is_down_holds_up_the_choice_of_the_member_to_read_no_longer_than_it_must() {
    let set = source_set(None).await;
    let password = Some(support::job_files::BACKUP_PASSWORD);
    // Listed first: an address where nothing listens, which fails only when the archiver's
    // 10 s member timeout runs out. Asked one after the other, it held the choice up that
    // long (30 s with the driver's default); asked at once, the others answer meanwhile.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let down = mongo_operator::build::backup_job::member_source(&closed.to_string());
    let mut members = vec![down];
    members.extend(set.hosts.iter().map(|h| mongo_operator::build::backup_job::member_source(h)));
    let started = Instant::now();
    let (_, chosen) = mongo_operator::pitr::archiver::choose(&members, password).await.expect("a member to read");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "took {took:?}: waited for the member that is down");
    let primary = set.primary().await;
    assert!(!chosen.contains(set.hosts[primary].as_str()), "a secondary, not the primary: {chosen}");
    assert!(set.hosts.iter().any(|h| chosen.contains(h.as_str())), "{chosen}");
}

#[tokio::test]
#[ignore = "needs FerretDB, s3s-fs and mongo-tools: run `make test`"]
async fn an_oplog_that_rolled_past_the_archive_is_a_recorded_gap_and_a_new_base_backup_starts_a_new_range() {
    // A small oplog: at most 80 entries, FerretDB's capped-collection cleanup every second.
    let ferret = support::servers::Ferret::start_with(&[
        "--test-capped-cleanup-interval=1s",
        "--test-capped-cleanup-percentage=50",
    ]);
    ferret
        .client()
        .await
        .database("local")
        .run_command(doc! { "create": "oplog.rs", "capped": true, "size": 1_000_000_i64, "max": 80_i64 })
        .await
        .expect("a small oplog");
    let set = source_set(Some(ferret)).await;
    let store_server = S3Server::start(&[BUCKET]);
    let (destinations, opened) = stores(&[("ovh", &store_server, "eu")]);
    let secrets = Secrets::backup(&["ovh"], Some(KEY));
    let first = base_backup(&set, "orders-first", &destinations, &secrets.0, &opened[0]).await;
    let first_end = first.contents.as_ref().and_then(|c| c.oplog_last).expect("oplog end");

    // Before the archiver starts, the oplog rolls past the first base's end.
    write(&set, 0, 120).await;
    let client = set.ferret.client().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let oldest = client
            .database("local")
            .collection::<Document>("oplog.rs")
            .find_one(doc! {})
            .sort(doc! { "$natural": 1 })
            .await
            .expect("find")
            .and_then(|d| d.get_timestamp("ts").ok())
            .map(Ts::from);
        if oldest.is_some_and(|o| o > first_end.ts) {
            break;
        }
        assert!(Instant::now() < deadline, "the oplog never rolled over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let archiver = Archiver::start(&set, &destinations, &secrets.0, 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while store::list(&opened[0], "orders").await.expect("list").1.is_empty() {
        assert!(Instant::now() < deadline, "no gap recorded; archiver log:\n{}", archiver.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (chunks, gaps) = store::list(&opened[0], "orders").await.expect("list");
    assert!(chunks.is_empty(), "nothing is archived across the hole: {chunks:?}");
    let gap: mongo_operator::pitr::chunk::GapRecord = {
        let body = mongo_operator::backup::store::OpenStore::key(&opened[0], &gaps[0]);
        let bytes = object_store::ObjectStoreExt::get(&opened[0].store, &body)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        serde_json::from_slice(&bytes).expect("a gap record")
    };
    assert_eq!(gap.after, first_end, "the gap follows the base's end");
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let report = archiver.report().await;
        if report.activity == mongo_operator::pitr::report::Activity::Waiting {
            break report;
        }
        assert!(Instant::now() < deadline, "the archiver does not say it waits: {report:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(report.message.contains("rolled past") && report.ranges.is_empty(), "{report:?}");
    assert_eq!(report.gaps.len(), 1, "the open gap: {report:?}");
    assert_eq!((report.gaps[0].after, report.gaps[0].resumed_after), (first_end.ts.to_time(), None));
    assert!(gap.oldest_available.is_some_and(|o| o.ts > first_end.ts));

    // A new base backup: the archive starts again from its end.
    let second = base_backup(&set, "orders-second", &destinations, &secrets.0, &opened[0]).await;
    let second_end = second.contents.as_ref().and_then(|c| c.oplog_last).expect("oplog end");
    write(&set, 500, 10).await;
    wait_archived(&opened, newest_entry(&set).await, &archiver).await;
    let (last, entries) = archived(&opened[0], second_end).await;
    assert_eq!(entries, oplog_between(&set, second_end.ts, last.ts).await);
    assert!(archiver.log().contains("rolled past"), "{}", archiver.log());
}

/// Restores into `into` as the operator's restore Job would, to `target`.
async fn restore_to(into: &DataSet, destination: &Destination, target: &str) -> (bool, Option<Outcome>, String) {
    let plan = RestorePlan {
        location: BackupLocation { destination: destination.clone(), path: String::new() },
        fallbacks: vec![],
        target: set_target(&into.hosts, &into.name),
        expected: Expected { checksum: None, encrypted: true },
        point_in_time: Some(PointInTimePlan { cluster: "orders".into(), target: target.into() }),
    };
    let secrets = Secrets::restore(&[destination.name.as_str()], Some(KEY));
    run_operator("restore", serde_json::to_string(&plan).expect("json"), &secrets.0).await
}

#[tokio::test]
#[ignore = "needs FerretDB, s3s-fs and mongo-tools: run `make test`"]
async fn a_restore_to_a_second_replays_the_archive_up_to_it_with_the_real_mongorestore() {
    let set = source_set(None).await;
    write(&set, 0, 20).await;
    let server = S3Server::start(&[BUCKET]);
    let (destinations, opened) = stores(&[("ovh", &server, "eu")]);
    let secrets = Secrets::backup(&["ovh"], Some(KEY));
    base_backup(&set, "orders-base", &destinations, &secrets.0, &opened[0]).await;
    let archiver = Archiver::start(&set, &destinations, &secrets.0, 1);
    write(&set, 100, 20).await;
    // A second boundary: every write above comes before it, every write below at or after.
    let now = chrono::Utc::now();
    let target = chrono::DateTime::from_timestamp(now.timestamp() + 1, 0).expect("time");
    tokio::time::sleep((target - now).to_std().unwrap_or_default() + Duration::from_millis(300)).await;
    let at_target = orders(&set).await;
    write(&set, 200, 20).await;
    wait_archived(&opened, newest_entry(&set).await, &archiver).await;
    let latest = orders(&set).await;
    assert_ne!(at_target, latest);

    let clone = DataSet::start("clone", 1).await;
    let (ok, outcome, stderr) = restore_to(&clone, &destinations[0], &target.to_rfc3339()).await;
    assert!(ok, "{outcome:?}: {stderr}");
    let Some(Outcome::Restored { point_in_time: Some(p), .. }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(
        (p.base.as_str(), p.limit.clone(), p.resolved),
        ("orders-base", format!("{}:0", target.timestamp()), target)
    );
    assert!(p.entries > 20, "{p:?}");
    assert_eq!(orders(&clone).await, at_target, "the writes before the second, none after");

    let newest = DataSet::start("newest", 1).await;
    let (ok, outcome, stderr) = restore_to(&newest, &destinations[0], "latest").await;
    assert!(ok, "{outcome:?}: {stderr}");
    assert_eq!(orders(&newest).await, latest, "every archived write");

    // Before the base backup: refused with the range there is, and nothing restored.
    let early = DataSet::start("early", 1).await;
    let (ok, outcome, _) = restore_to(&early, &destinations[0], "2020-01-01T00:00:00Z").await;
    let Some(Outcome::Failed { error }) = outcome else { panic!("{outcome:?}") };
    assert!(!ok && error.contains("outside every restorable range") && error.contains(" to "), "{error}");
    assert!(orders(&early).await.is_empty());
}
