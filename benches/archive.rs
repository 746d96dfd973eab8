//! What recording a backup's contents costs on the backup path (`make bench-backup` runs it):
//! the same in-memory mongodump archive (IoT-like documents, 256 MiB) through the backup's
//! CPU work, zstd compression and SHA-256 of the output, once without and once with the
//! archive recorder reading the bytes on the way, as `mongo-operator backup` does; and the
//! recorder alone. Prints figures, no thresholds.

use std::io::Write;
use std::time::Instant;

use mongo_operator::api::Compression;
use mongo_operator::backup::archive::Recorder;
use mongo_operator::backup::codec::{FinishWrite, encoder};
use mongodb::bson::rawdoc;
use sha2::{Digest, Sha256};

const ARCHIVE_MIB: usize = 256;
const PIECE: usize = 1024 * 1024;

/// A mongodump archive of one collection: magic, header, prelude, segments of documents.
fn archive() -> (Vec<u8>, u64) {
    let mut a = vec![0x6d, 0xe2, 0x99, 0x81];
    a.extend(
        rawdoc! { "concurrent_collections": 4, "version": "0.1", "server_version": "8.0.4", "tool_version": "bench" }
            .as_bytes(),
    );
    let metadata = r#"{"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"}],"type":"collection","options":{}}"#;
    a.extend(rawdoc! { "db": "iot", "collection": "readings", "metadata": metadata, "size": 0, "type": "" }.as_bytes());
    a.extend([0xff; 4]);
    let header = rawdoc! { "db": "iot", "collection": "readings", "EOF": false, "CRC": 0i64 };
    let mut documents = 0u64;
    while a.len() < ARCHIVE_MIB * 1024 * 1024 {
        a.extend(header.as_bytes());
        for _ in 0..1000 {
            let i = documents as i64;
            let doc = rawdoc! {
                "_id": i, "device": format!("sensor-{:05}", i % 9973), "at": mongodb::bson::DateTime::from_millis(1_763_900_000_000 + i * 1000),
                "value": (i as f64) * 0.25, "ok": i % 3 != 0, "tags": ["iot", format!("zone-{}", i % 7)],
                "nested": { "firmware": "2.4.1", "battery": { "mv": 3000 + (i % 700) } },
            };
            a.extend(doc.as_bytes());
            documents += 1;
        }
        a.extend([0xff; 4]);
    }
    a.extend(rawdoc! { "db": "iot", "collection": "readings", "EOF": true, "CRC": 0i64 }.as_bytes());
    a.extend([0xff; 4]);
    (a, documents)
}

/// Hashes what the encoder writes, as the upload's checksum does.
struct Hashed(Sha256);

impl Write for Hashed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl FinishWrite for Hashed {
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        Ok(())
    }
}

fn encode(archive: &[u8], mut recorder: Option<&mut Recorder>) -> f64 {
    let started = Instant::now();
    let mut writer = encoder(Compression::Zstd, None, Box::new(Hashed(Sha256::new()))).expect("encoder");
    for piece in archive.chunks(PIECE) {
        if let Some(r) = recorder.as_deref_mut() {
            r.feed(piece);
        }
        writer.write_all(piece).expect("write");
    }
    writer.finish().expect("finish");
    started.elapsed().as_secs_f64()
}

/// The fastest of three runs of `run`, alternated with the others by the caller.
fn best(times: &[f64]) -> f64 {
    times.iter().copied().fold(f64::INFINITY, f64::min)
}

fn main() {
    let (archive, documents) = archive();
    let mib = archive.len() as f64 / 1048576.0;
    println!("archive: {mib:.0} MiB, {documents} documents of ~{} bytes", archive.len() as u64 / documents);
    let (mut without, mut with, mut alone) = (Vec::new(), Vec::new(), Vec::new());
    // Alternated, three rounds, the fastest of each kept: the first pass over 256 MiB pays
    // for page faults the others do not.
    for _ in 0..3 {
        without.push(encode(&archive, None));
        let mut recorder = Recorder::default();
        with.push(encode(&archive, Some(&mut recorder)));
        assert_eq!(recorder.finish().expect("a valid archive").documents(), documents);
        let started = Instant::now();
        let mut recorder = Recorder::default();
        for piece in archive.chunks(PIECE) {
            recorder.feed(piece);
        }
        let _ = recorder.finish();
        alone.push(started.elapsed().as_secs_f64());
    }
    let (without, with, alone) = (best(&without), best(&with), best(&alone));
    println!("{:<40} {:>8} {:>9}", "run (fastest of 3)", "seconds", "MiB/s");
    for (label, seconds) in [
        ("zstd + sha256 (the backup's CPU work)", without),
        ("zstd + sha256 + recording", with),
        ("recording alone", alone),
    ] {
        println!("{label:<40} {seconds:>8.3} {:>9.0}", mib / seconds);
    }
    println!(
        "recording costs {:.0} % of the backup's CPU time on one core (recording alone / zstd + sha256)",
        alone / without * 100.0
    );
}
