//! What archiving the oplog costs (`make bench-backup` runs it): oplog entries like an IoT
//! platform's writes (inserts of ~200-byte readings, some updates and deletes) through the
//! archiver's CPU work: reading each entry's position (the slicer), cutting a chunk, and
//! encoding it as the archiver stores it (zstd, then age encryption with the backups'
//! passphrase). Per thousand entries, and the fixed cost of one encrypted chunk (age's scrypt
//! key derivation, once per chunk whatever its size). Prints figures, no thresholds.

use std::time::Instant;

use mongo_operator::api::Compression;
use mongo_operator::pitr::Ts;
use mongo_operator::pitr::slicer::{Slicer, read_entry};
use mongo_operator::pitr::store::encode;
use mongodb::bson::{Timestamp, rawdoc};

const ENTRIES: u32 = 100_000;

fn entry(i: u32) -> mongodb::bson::RawDocumentBuf {
    let ts = Timestamp { time: 1_796_000_000 + i / 1000, increment: i % 1000 + 1 };
    let wall = mongodb::bson::DateTime::from_millis(1_796_000_000_000 + i64::from(i));
    match i % 10 {
        0 => rawdoc! { "op": "u", "ns": "iot.readings", "ts": ts, "t": 3_i64, "v": 2_i64, "wall": wall,
        "o": { "$v": 2, "diff": { "u": { "ok": false } } }, "o2": { "_id": i64::from(i) - 1 } },
        1 => {
            rawdoc! { "op": "d", "ns": "iot.readings", "ts": ts, "t": 3_i64, "v": 2_i64, "wall": wall, "o": { "_id": i64::from(i) - 2 } }
        }
        _ => rawdoc! { "op": "i", "ns": "iot.readings", "ts": ts, "t": 3_i64, "v": 2_i64, "wall": wall,
        "o": { "_id": i64::from(i), "device": format!("sensor-{:05}", i % 9973), "value": f64::from(i) * 0.25,
            "ok": true, "tags": ["iot", format!("zone-{}", i % 7)], "nested": { "firmware": "2.4.1", "mv": 3000 + i64::from(i % 700) } } },
    }
}

fn main() {
    let entries: Vec<_> = (0..ENTRIES).map(entry).collect();
    let bytes: usize = entries.iter().map(|e| e.as_bytes().len()).sum();
    println!("{ENTRIES} oplog entries, ~{} bytes each", bytes / ENTRIES as usize);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");

    let started = Instant::now();
    let first = read_entry(&entries[0]).expect("entry").op_time;
    let mut slicer = Slicer::new(first);
    for e in &entries {
        slicer.push(read_entry(e).expect("entry")).expect("in order");
    }
    let cut = slicer.cut(Ts::new(u32::MAX, 0)).expect("a chunk");
    let raw = cut.bytes();
    let slicing = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let compressed = runtime.block_on(encode(raw.clone(), Compression::Zstd, None)).expect("encode");
    let compressing = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let sealed =
        runtime.block_on(encode(raw.clone(), Compression::Zstd, Some("the backups' key".into()))).expect("encode");
    let sealing = started.elapsed().as_secs_f64();
    let started = Instant::now();
    runtime.block_on(encode(Vec::new(), Compression::Zstd, Some("the backups' key".into()))).expect("encode");
    let per_chunk = started.elapsed().as_secs_f64();

    let per_k = |seconds: f64| seconds / f64::from(ENTRIES) * 1000.0 * 1000.0;
    println!("{:<52} {:>12}", "work", "ms / 1,000");
    println!("{:<52} {:>12.3}", "reading positions, slicing and cutting", per_k(slicing));
    println!("{:<52} {:>12.3}", "zstd", per_k(compressing));
    println!("{:<52} {:>12.3}", "zstd + age, less the per-chunk key derivation", per_k((sealing - per_chunk).max(0.0)));
    println!("fixed cost of one encrypted chunk (age scrypt, 2^18): {:.0} ms", per_chunk * 1000.0);
    println!(
        "stored: {:.1} MiB of entries -> {:.1} MiB zstd, {:.1} MiB zstd + age ({:.0} bytes per 1,000 entries)",
        raw.len() as f64 / 1048576.0,
        compressed.len() as f64 / 1048576.0,
        sealed.len() as f64 / 1048576.0,
        sealed.len() as f64 / f64::from(ENTRIES) * 1000.0
    );
}
