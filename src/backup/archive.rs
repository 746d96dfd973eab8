//! What a backup holds, recorded from mongodump's archive as it streams past: for each
//! namespace its kind, options and indexes (from the archive's prelude), how many documents
//! it holds and an order-independent digest of them, and how many oplog entries the dump
//! carries. Recorded from the bytes themselves, independently of the server, so that a
//! verification can prove a restore gave back exactly what was dumped.
//!
//! The archive format is mongo-tools' (`common/archive/spec.md`): a magic number, a header
//! document, the prelude's collection-metadata documents up to a terminator, then namespace
//! segments (a header document, the namespace's documents, a terminator) interleaved in any
//! order, each namespace closed by an EOF header and a terminator. The oplog of a `--oplog`
//! dump is the namespace with the empty database name and the collection `oplog`
//! (`CreateOplogIntents`, `mongodump/prepare.go`).

use std::collections::BTreeMap;

use mongodb::bson::RawDocument;
use serde::{Deserialize, Serialize};

/// The archive's magic number, little-endian (`archive.MagicNumber`, 0x8199e26d).
const MAGIC: [u8; 4] = [0x6d, 0xe2, 0x99, 0x81];
/// Ends the prelude and every namespace segment.
const TERMINATOR: [u8; 4] = [0xff, 0xff, 0xff, 0xff];
/// How the digest is made, written before its value.
pub const DIGEST_SCHEME: &str = "sum128-xxh3";

/// What the archive holds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Contents {
    /// Every namespace in the prelude, with what its segments held.
    pub namespaces: Vec<Namespace>,
    /// Entries of the oplog a `--oplog` dump carries.
    pub oplog_entries: u64,
    /// The first of them (mongodump starts it at the newest entry when the dump begins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oplog_first: Option<crate::pitr::OpTime>,
    /// The last of them: a restore with `--oplogReplay` gives the database as of this entry,
    /// which is where point-in-time recovery continues from this backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oplog_last: Option<crate::pitr::OpTime>,
    /// mongodump's version, from the archive's header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_version: Option<String>,
}

impl Contents {
    /// Documents over all namespaces.
    pub fn documents(&self) -> u64 {
        self.namespaces.iter().map(|n| n.documents).sum()
    }
}

/// One collection, view or time-series collection of the dump.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    pub db: String,
    pub collection: String,
    /// `collection`, `view` or `timeseries` (the prelude's `type`, empty for a collection).
    pub kind: String,
    /// The collection's options, as `listCollections` gave them to mongodump (canonical
    /// Extended JSON).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub options: serde_json::Value,
    /// Its index specifications, as `listIndexes` gave them (canonical Extended JSON).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<serde_json::Value>,
    /// Documents in its segments.
    pub documents: u64,
    /// `sum128-xxh3:<hex>`: the sum modulo 2^128 of each document's XXH3-128 over its BSON
    /// bytes. A sum does not depend on the order documents come in, which differs between a
    /// dump (natural order) and a scan of the restored collection. It tells a restore that
    /// lost or changed documents from one that did not; the archive's SHA-256, not this,
    /// is what protects the backup against tampering.
    pub digest: String,
}

/// Adds documents to an order-independent digest.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DigestSum(u128);

impl DigestSum {
    pub fn add(&mut self, document: &[u8]) {
        self.0 = self.0.wrapping_add(xxhash_rust::xxh3::xxh3_128(document));
    }

    pub fn render(&self) -> String {
        format!("{DIGEST_SCHEME}:{:032x}", self.0)
    }
}

/// Why the bytes are not a mongodump archive.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArchiveError {
    #[error("not a mongodump archive (its first bytes are not the magic number)")]
    Magic,
    #[error("a document of the archive is malformed: {0}")]
    Document(String),
    #[error("the archive ends in the middle of {0}")]
    Truncated(&'static str),
    #[error("namespace {0} has documents but is not in the archive's prelude")]
    Unlisted(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Magic,
    Header,
    Prelude,
    /// A namespace header (or the end of the archive).
    SegmentHeader,
    /// Documents of the current namespace, or the terminator that ends the segment.
    SegmentData,
    /// The terminator after an EOF header.
    EofTerminator,
}

impl Expect {
    fn describe(self) -> &'static str {
        match self {
            Expect::Magic => "its magic number",
            Expect::Header => "its header",
            Expect::Prelude => "its prelude",
            Expect::SegmentHeader => "a namespace header",
            Expect::SegmentData => "a namespace's documents",
            Expect::EofTerminator => "a namespace's end",
        }
    }
}

#[derive(Default)]
struct Tally {
    documents: u64,
    digest: DigestSum,
}

/// Fed the archive's bytes in any pieces, records its [`Contents`].
pub struct Recorder {
    expect: Expect,
    pending: Vec<u8>,
    prelude: Vec<Namespace>,
    tallies: BTreeMap<(String, String), Tally>,
    current: Option<(String, String)>,
    tool_version: Option<String>,
    /// The first and last entries of the oplog segment.
    oplog_range: Option<(crate::pitr::OpTime, crate::pitr::OpTime)>,
    error: Option<ArchiveError>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            expect: Expect::Magic,
            pending: Vec::new(),
            prelude: Vec::new(),
            tallies: BTreeMap::new(),
            current: None,
            tool_version: None,
            oplog_range: None,
            error: None,
        }
    }
}

fn oplog(key: &(String, String)) -> bool {
    key.0.is_empty() && key.1 == "oplog"
}

fn string_field(doc: &RawDocument, key: &str) -> Result<String, ArchiveError> {
    doc.get_str(key).map(str::to_string).map_err(|e| ArchiveError::Document(format!("{key}: {e}")))
}

impl Recorder {
    /// Takes the next bytes of the archive. After a malformed piece, the rest is ignored and
    /// [`Recorder::finish`] reports why.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            match self.step(&pending[at..]) {
                Ok(Some(used)) => at += used,
                Ok(None) => break,
                Err(error) => {
                    self.error = Some(error);
                    break;
                }
            }
        }
        pending.drain(..at);
        self.pending = pending;
    }

    /// Reads one unit (the magic number, a document or a terminator) from the front of
    /// `bytes`: how many bytes it took, or none when `bytes` does not hold a whole one yet.
    fn step(&mut self, bytes: &[u8]) -> Result<Option<usize>, ArchiveError> {
        if bytes.len() < 4 {
            return Ok(None);
        }
        if self.expect == Expect::Magic {
            if bytes[..4] != MAGIC {
                return Err(ArchiveError::Magic);
            }
            self.expect = Expect::Header;
            return Ok(Some(4));
        }
        if bytes[..4] == TERMINATOR {
            match self.expect {
                Expect::Prelude => self.expect = Expect::SegmentHeader,
                Expect::SegmentData | Expect::EofTerminator => {
                    self.current = None;
                    self.expect = Expect::SegmentHeader;
                }
                other => {
                    return Err(ArchiveError::Document(format!("a terminator where {} was due", other.describe())));
                }
            }
            return Ok(Some(4));
        }
        let length = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let length = usize::try_from(length)
            .ok()
            .filter(|l| *l >= 5)
            .ok_or_else(|| ArchiveError::Document(format!("a document of length {length}")))?;
        if bytes.len() < length {
            return Ok(None);
        }
        let raw = &bytes[..length];
        let doc = RawDocument::from_bytes(raw).map_err(|e| ArchiveError::Document(e.to_string()))?;
        match self.expect {
            Expect::Header => {
                self.tool_version = doc.get_str("tool_version").ok().map(str::to_string);
                self.expect = Expect::Prelude;
            }
            Expect::Prelude => self.prelude.push(prelude_entry(doc)?),
            Expect::SegmentHeader => {
                let key = (string_field(doc, "db")?, string_field(doc, "collection")?);
                let eof = doc.get_bool("EOF").unwrap_or(false);
                self.tallies.entry(key.clone()).or_default();
                self.current = Some(key);
                self.expect = if eof { Expect::EofTerminator } else { Expect::SegmentData };
            }
            Expect::SegmentData => {
                if let Some(key) = &self.current
                    && let Some(tally) = self.tallies.get_mut(key)
                {
                    tally.documents += 1;
                    if oplog(key) {
                        let at = crate::pitr::slicer::read_entry(doc)
                            .map_err(|e| ArchiveError::Document(format!("an oplog entry: {e}")))?
                            .op_time;
                        self.oplog_range = Some(self.oplog_range.map_or((at, at), |(first, _)| (first, at)));
                    } else {
                        tally.digest.add(raw);
                    }
                }
            }
            Expect::EofTerminator => {
                return Err(ArchiveError::Document("a document after a namespace's end header".into()));
            }
            Expect::Magic => unreachable!("handled above"),
        }
        Ok(Some(length))
    }

    /// What the archive held, once all of it has been fed.
    pub fn finish(mut self) -> Result<Contents, ArchiveError> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        if !self.pending.is_empty() || self.expect != Expect::SegmentHeader {
            return Err(ArchiveError::Truncated(self.expect.describe()));
        }
        let mut contents = Contents {
            tool_version: self.tool_version,
            oplog_first: self.oplog_range.map(|r| r.0),
            oplog_last: self.oplog_range.map(|r| r.1),
            ..Contents::default()
        };
        for mut namespace in self.prelude {
            let key = (namespace.db.clone(), namespace.collection.clone());
            if oplog(&key) {
                continue;
            }
            let tally = self.tallies.remove(&key).unwrap_or_default();
            namespace.documents = tally.documents;
            namespace.digest = tally.digest.render();
            contents.namespaces.push(namespace);
        }
        for (key, tally) in self.tallies {
            if oplog(&key) {
                contents.oplog_entries = tally.documents;
            } else if tally.documents > 0 {
                return Err(ArchiveError::Unlisted(format!("{}.{}", key.0, key.1)));
            }
        }
        Ok(contents)
    }
}

/// A prelude entry: `{db, collection, metadata, size, type}`, `metadata` being the
/// collection's `metadata.json` in canonical Extended JSON (`options`, `indexes`, ...).
fn prelude_entry(doc: &RawDocument) -> Result<Namespace, ArchiveError> {
    let metadata = string_field(doc, "metadata")?;
    let mut metadata: serde_json::Value = if metadata.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&metadata).map_err(|e| ArchiveError::Document(format!("metadata: {e}")))?
    };
    let kind = match doc.get_str("type").unwrap_or_default() {
        "" => "collection".to_string(),
        other => other.to_string(),
    };
    let indexes = match metadata.get_mut("indexes").map(serde_json::Value::take) {
        Some(serde_json::Value::Array(list)) => list,
        _ => Vec::new(),
    };
    Ok(Namespace {
        db: string_field(doc, "db")?,
        collection: string_field(doc, "collection")?,
        kind,
        options: metadata.get_mut("options").map(serde_json::Value::take).unwrap_or_default(),
        indexes,
        documents: 0,
        digest: DigestSum::default().render(),
    })
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{RawDocumentBuf, doc, rawdoc};

    use super::*;

    fn bytes(doc: &RawDocumentBuf) -> Vec<u8> {
        doc.as_bytes().to_vec()
    }

    /// An archive as mongodump writes one: two collections interleaved, a view, an oplog.
    fn archive() -> (Vec<u8>, Vec<RawDocumentBuf>) {
        let metadata = |options: &str| {
            format!(
                r#"{{"indexes":[{{"v":{{"$numberInt":"2"}},"key":{{"_id":{{"$numberInt":"1"}}}},"name":"_id_"}}],"uuid":"00","collectionName":"c","type":"collection","options":{options}}}"#
            )
        };
        let orders: Vec<RawDocumentBuf> = (0..5).map(|i| rawdoc! { "_id": i, "total": i * 10 }).collect();
        let mut a = MAGIC.to_vec();
        a.extend(bytes(&rawdoc! { "concurrent_collections": 4, "version": "0.1", "server_version": "8.0.4", "tool_version": "100.12.2" }));
        a.extend(bytes(
            &rawdoc! { "db": "shop", "collection": "orders", "metadata": metadata("{}"), "size": 100, "type": "" },
        ));
        a.extend(bytes(&rawdoc! { "db": "shop", "collection": "logs", "metadata": metadata(r#"{"capped":true,"size":{"$numberInt":"4096"}}"#), "size": 10, "type": "" }));
        a.extend(bytes(&rawdoc! { "db": "shop", "collection": "big_orders", "metadata": r#"{"options":{"viewOn":"orders","pipeline":[]},"indexes":[],"type":"view"}"#, "size": 0, "type": "view" }));
        a.extend(TERMINATOR);
        let header =
            |db: &str, c: &str, eof: bool| bytes(&rawdoc! { "db": db, "collection": c, "EOF": eof, "CRC": 0i64 });
        a.extend(header("shop", "orders", false));
        a.extend(bytes(&orders[0]));
        a.extend(bytes(&orders[1]));
        a.extend(TERMINATOR);
        a.extend(header("shop", "logs", false));
        a.extend(bytes(&rawdoc! { "msg": "x" }));
        a.extend(TERMINATOR);
        a.extend(header("shop", "orders", false));
        for o in &orders[2..] {
            a.extend(bytes(o));
        }
        a.extend(TERMINATOR);
        for (db, c) in [("shop", "orders"), ("shop", "logs"), ("shop", "big_orders")] {
            a.extend(header(db, c, true));
            a.extend(TERMINATOR);
        }
        a.extend(header("", "oplog", false));
        let ts = |increment| mongodb::bson::Timestamp { time: 1_796_000_000, increment };
        a.extend(bytes(&rawdoc! { "op": "n", "ts": ts(4), "t": 7_i64 }));
        a.extend(bytes(&rawdoc! { "op": "i", "ts": ts(9), "t": 7_i64 }));
        a.extend(TERMINATOR);
        a.extend(header("", "oplog", true));
        a.extend(TERMINATOR);
        (a, orders)
    }

    fn record(archive: &[u8], piece: usize) -> Result<Contents, ArchiveError> {
        let mut recorder = Recorder::default();
        for chunk in archive.chunks(piece) {
            recorder.feed(chunk);
        }
        recorder.finish()
    }

    #[test]
    fn every_namespace_is_counted_and_digested_whatever_pieces_the_bytes_come_in() {
        let (archive, orders) = archive();
        let whole = record(&archive, archive.len()).expect("a whole archive");
        for piece in [1, 3, 7, 64] {
            assert_eq!(record(&archive, piece).as_ref(), Ok(&whole), "fed {piece} bytes at a time");
        }
        assert_eq!(whole.tool_version.as_deref(), Some("100.12.2"));
        assert_eq!(whole.oplog_entries, 2);
        let op = |increment| crate::pitr::OpTime::new(crate::pitr::Ts::new(1_796_000_000, increment), 7);
        assert_eq!((whole.oplog_first, whole.oplog_last), (Some(op(4)), Some(op(9))), "the dump's oplog range");
        let names: Vec<(&str, &str, u64)> =
            whole.namespaces.iter().map(|n| (n.collection.as_str(), n.kind.as_str(), n.documents)).collect();
        assert_eq!(names, [("orders", "collection", 5), ("logs", "collection", 1), ("big_orders", "view", 0)]);
        assert_eq!(whole.documents(), 6);
        // The digest does not depend on the order of the documents.
        let mut reversed = DigestSum::default();
        for o in orders.iter().rev() {
            reversed.add(o.as_bytes());
        }
        assert_eq!(whole.namespaces[0].digest, reversed.render());
        // ...but on each one's bytes.
        let mut changed = DigestSum::default();
        for (i, o) in orders.iter().enumerate() {
            let doc = if i == 3 {
                rawdoc! { "_id": 3, "total": 31 }
            } else {
                o.clone()
            };
            changed.add(doc.as_bytes());
        }
        assert_ne!(whole.namespaces[0].digest, changed.render());
        assert_eq!(whole.namespaces[1].options, serde_json::json!({"capped": true, "size": {"$numberInt": "4096"}}));
        assert_eq!(whole.namespaces[0].indexes[0]["name"], "_id_");
        assert_eq!(whole.namespaces[2].options["viewOn"], "orders");
        let _ = doc! {};
    }

    #[test]
    fn a_truncated_or_foreign_stream_is_refused() {
        let (archive, _) = archive();
        assert_eq!(record(&archive[..archive.len() - 2], 1000), Err(ArchiveError::Truncated("a namespace's end")));
        assert!(matches!(record(&archive[..archive.len() - 30], 1000), Err(ArchiveError::Truncated(_))));
        assert_eq!(record(b"{\"not\": \"an archive\"}", 4), Err(ArchiveError::Magic));
    }
}
