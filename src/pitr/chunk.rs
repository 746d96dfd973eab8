//! A chunk of the archived oplog: its objects' names and its manifest. A chunk holds the
//! oplog entries that follow `after` up to `last`, as raw BSON documents back to back (the
//! layout of mongodump's `oplog.bson`, which mongorestore replays), compressed and encrypted
//! like a backup. Its manifest is written after the chunk, in every destination: a chunk
//! without a manifest is incomplete and is never replayed.
//!
//! Every name lives under `<cluster>/_oplog/` in a destination (a Kubernetes name cannot hold
//! `_`, so no MongoBackup's directory `<cluster>/<backup>/` can be this one).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{OpTime, Ts};
use crate::api::Compression;

/// The format version of [`ChunkManifest`]; a restore refuses manifests it does not know.
pub const CHUNK_FORMAT: u32 = 1;

/// The directory of a cluster's archived oplog, under a destination's prefix.
pub fn oplog_dir(cluster: &str) -> String {
    format!("{cluster}/_oplog")
}

/// The stem of a chunk's names: the timestamps of the entry it follows and of its last entry,
/// so that names sort in oplog order and a listing alone shows how chunks chain, under the
/// day of the entry it follows (a day's listing stays short).
fn stem(cluster: &str, after: Ts, last: Ts) -> String {
    let day = after.to_time().format("%Y%m%d");
    format!(
        "{}/{day}/{:010}-{:010}.{:010}-{:010}",
        oplog_dir(cluster),
        after.time,
        after.increment,
        last.time,
        last.increment
    )
}

/// Reads a chunk's manifest name back: the timestamps of the entry it follows and of its last.
pub fn parse_manifest_name(name: &str) -> Option<ChunkRef> {
    let file = name.rsplit('/').next()?.strip_suffix(".json")?;
    let (after, last) = file.split_once('.')?;
    let ts = |part: &str| {
        let (time, increment) = part.split_once('-')?;
        Some(Ts::new(time.parse().ok()?, increment.parse().ok()?))
    };
    // Terms are in the manifest, not the name: a reference from a name chains by timestamp.
    Some(ChunkRef { after: OpTime::new(ts(after)?, -1), last: OpTime::new(ts(last)?, -1), manifest: name.to_string() })
}

/// A chunk as far as ranges and selection need it: where it sits in the oplog and where its
/// manifest is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    pub after: OpTime,
    pub last: OpTime,
    /// The manifest's name under the destination's prefix.
    pub manifest: String,
}

/// The chunk's object name: says how to read it (`.zst`, `.gz`, `.age`).
pub fn object_name(cluster: &str, after: Ts, last: Ts, compression: Compression, encrypted: bool) -> String {
    let compression = match compression {
        Compression::Zstd => ".zst",
        Compression::Gzip => ".gz",
        Compression::None => "",
    };
    let encryption = if encrypted { ".age" } else { "" };
    format!("{}.oplog.bson{compression}{encryption}", stem(cluster, after, last))
}

/// The name of the chunk's manifest.
pub fn manifest_name(cluster: &str, after: Ts, last: Ts) -> String {
    format!("{}.json", stem(cluster, after, last))
}

/// Whether a name under [`oplog_dir`] is a chunk's manifest.
pub fn is_manifest(name: &str) -> bool {
    name.ends_with(".json") && !name.contains("/gaps/")
}

/// The name of the record of a gap found after `after`.
pub fn gap_name(cluster: &str, after: Ts) -> String {
    format!("{}/gaps/{:010}-{:010}.json", oplog_dir(cluster), after.time, after.increment)
}

/// Written after the chunk's object, in every destination.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChunkManifest {
    /// [`CHUNK_FORMAT`] when written.
    pub format: u32,
    /// The cluster whose oplog this is.
    pub cluster: String,
    /// The entry just before the chunk's first: the previous chunk's last, or the oplog end of
    /// the base backup the archive started from. The archiver read it from the oplog, exactly
    /// (`ts` and term), right before the chunk's entries: chunks chain by it with no entry
    /// missing in between.
    pub after: OpTime,
    /// The chunk's first entry.
    pub first: OpTime,
    /// The chunk's last entry.
    pub last: OpTime,
    /// Entries in the chunk (no-ops included: they carry the archive's progress through idle
    /// times).
    pub entries: u64,
    /// The wall-clock time of the last entry, as the primary wrote it (`wall`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_wall: Option<DateTime<Utc>>,
    /// The chunk's object name, under the destination's prefix.
    pub object: String,
    /// Bytes of the entries, before compression and encryption.
    pub raw_bytes: u64,
    /// Size of the stored object.
    pub size_bytes: u64,
    /// SHA-256 of the stored object, as "sha256:<hex>".
    pub checksum: String,
    pub compression: Compression,
    /// "age-scrypt" when encrypted (as backups are), or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// When the chunk was complete in every destination.
    pub written_at: DateTime<Utc>,
    /// For an encrypted chunk, "hmac-sha256:<hex>" of the manifest under the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl crate::backup::seal::Sealed for ChunkManifest {
    const DOMAIN: &'static [u8] = b"mongo-operator oplog chunk v1\n";

    fn mac(&self) -> Option<&str> {
        self.mac.as_deref()
    }

    fn unsealed(&self) -> Self {
        ChunkManifest { mac: None, ..self.clone() }
    }
}

impl ChunkManifest {
    /// The chunk's reference, with the terms the manifest records.
    pub fn reference(&self) -> ChunkRef {
        ChunkRef {
            after: self.after,
            last: self.last,
            manifest: manifest_name(&self.cluster, self.after.ts, self.last.ts),
        }
    }
}

/// Written when the archiver finds that the oplog no longer holds the entry it must continue
/// after: the entries in between are lost to the archive, which never bridges the hole. A new
/// base backup starts a new range.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GapRecord {
    pub cluster: String,
    /// The last entry archived before the gap.
    pub after: OpTime,
    /// The oldest entry the member's oplog still held, when it held any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_available: Option<OpTime>,
    /// Why the range ends, when it is not the oplog rolling past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The member read.
    pub member: String,
    pub found_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_oplog_order_say_how_to_read_the_chunk_and_read_back() {
        let (a, b) = (Ts::new(1_764_936_000, 7), Ts::new(1_764_936_600, 12));
        assert_eq!(
            object_name("orders", a, b, Compression::Zstd, true),
            "orders/_oplog/20251205/1764936000-0000000007.1764936600-0000000012.oplog.bson.zst.age"
        );
        let name = manifest_name("orders", a, b);
        assert_eq!(name, "orders/_oplog/20251205/1764936000-0000000007.1764936600-0000000012.json");
        let later = manifest_name("orders", b, Ts::new(1_764_937_200, 1));
        assert!(name < later);
        assert!(is_manifest(&later) && !is_manifest(&gap_name("orders", b)));
        assert!(!is_manifest(&object_name("orders", a, b, Compression::None, false)));
        let read = parse_manifest_name(&format!("backups/eu/{name}")).expect("a chunk's name");
        assert_eq!((read.after.ts, read.last.ts), (a, b));
        assert_eq!(parse_manifest_name("orders/_oplog/20251205/nonsense.json"), None);
    }
}
