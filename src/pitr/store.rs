//! The archived oplog in the destinations: a chunk written to every one (its object, then its
//! manifest), the chunks and gaps a destination holds, and a chunk read back with its checksum
//! checked and decoded.

use std::sync::{Arc, Mutex};

use age::secrecy::SecretString;
use bytes::Bytes;
use futures::TryStreamExt;
use futures::future::join_all;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use super::chunk::{self, CHUNK_FORMAT, ChunkManifest, ChunkRef, GapRecord};
use super::slicer::Cut;
use crate::api::Compression;
use crate::backup::codec::{FinishWrite, decoder, encoder};
use crate::backup::plan::ENCRYPTION_SCHEME;
use crate::backup::seal;
use crate::backup::store::{OpenStore, summary};

/// Why the archive could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ChunkStoreError {
    #[error("destination {destination}: {what}: {reason}")]
    Store { destination: String, what: String, reason: String },
    #[error("{url}: {reason}")]
    Invalid { url: String, reason: String },
    #[error("encoding a chunk: {0}")]
    Encode(#[from] std::io::Error),
}

fn store_error(store: &OpenStore, what: impl Into<String>) -> impl FnOnce(object_store::Error) -> ChunkStoreError {
    let (destination, what) = (store.name.clone(), what.into());
    move |source| {
        tracing::warn!(%destination, %what, error = %source, "the store refused");
        ChunkStoreError::Store { destination, what, reason: summary(&source) }
    }
}

/// A writer collecting the encoder's output in memory: a chunk is a few minutes of oplog.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Collect {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl FinishWrite for Collect {
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        Ok(())
    }
}

/// Compresses and encrypts `raw` as backups are.
pub async fn encode(raw: Vec<u8>, compression: Compression, passphrase: Option<String>) -> std::io::Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        let out = Collect::default();
        let mut writer = encoder(compression, passphrase.map(SecretString::from), Box::new(out.clone()))?;
        writer.write_all(&raw)?;
        writer.finish()?;
        let bytes = std::mem::take(&mut *out.0.lock().map_err(|_| std::io::Error::other("poisoned"))?);
        Ok(bytes)
    })
    .await
    .map_err(std::io::Error::other)?
}

use std::io::Write as _;

/// Where and how chunks are written.
pub struct Archive<'a> {
    pub stores: &'a [OpenStore],
    pub cluster: &'a str,
    pub compression: Compression,
    /// The backups' passphrase, when they are encrypted.
    pub passphrase: Option<&'a str>,
}

impl Archive<'_> {
    /// Writes a cut as a chunk in every destination: the object everywhere, then the manifest
    /// everywhere. If a destination refuses either, what was written is deleted and the chunk
    /// is not archived (the next attempt cuts from the same entry).
    pub async fn write(&self, cut: &Cut) -> Result<ChunkManifest, ChunkStoreError> {
        let (Some(first), Some(last)) = (cut.first(), cut.last()) else {
            return Err(ChunkStoreError::Invalid { url: self.cluster.into(), reason: "an empty chunk".into() });
        };
        let raw = cut.bytes();
        let raw_bytes = raw.len() as u64;
        let stored = encode(raw, self.compression, self.passphrase.map(str::to_string)).await?;
        let checksum = format!("sha256:{}", hex::encode(Sha256::digest(&stored)));
        let object = chunk::object_name(
            self.cluster,
            cut.after.ts,
            last.op_time.ts,
            self.compression,
            self.passphrase.is_some(),
        );
        let mut manifest = ChunkManifest {
            format: CHUNK_FORMAT,
            cluster: self.cluster.to_string(),
            after: cut.after,
            first,
            last: last.op_time,
            entries: cut.entries.len() as u64,
            last_wall: last.wall,
            object: object.clone(),
            raw_bytes,
            size_bytes: stored.len() as u64,
            checksum,
            compression: self.compression,
            encryption: self.passphrase.map(|_| ENCRYPTION_SCHEME.to_string()),
            written_at: chrono::Utc::now(),
            mac: None,
        };
        if let Some(passphrase) = self.passphrase {
            manifest.mac = Some(seal::mac(&manifest, passphrase).map_err(|e| std::io::Error::other(e.to_string()))?);
        }
        let body = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
        let name = chunk::manifest_name(self.cluster, cut.after.ts, last.op_time.ts);
        let mut written = Vec::new();
        for (relative, bytes) in [(&object, Bytes::from(stored)), (&name, Bytes::from(body))] {
            let results = join_all(self.stores.iter().map(|store| {
                let bytes = bytes.clone();
                async move {
                    let key = store.key(relative);
                    store
                        .store
                        .put(&key, PutPayload::from_bytes(bytes))
                        .await
                        .map(|_| (store.clone(), key))
                        .map_err(store_error(store, format!("writing {relative}")))
                }
            }))
            .await;
            let mut failure = None;
            for result in results {
                match result {
                    Ok(done) => written.push(done),
                    Err(error) => failure = failure.or(Some(error)),
                }
            }
            if let Some(error) = failure {
                crate::backup::upload::delete_all(&written).await;
                return Err(error);
            }
        }
        Ok(manifest)
    }

    /// Records a gap in every destination that takes it (a destination that refuses is
    /// logged: the gap also shows in the archive's chunks).
    pub async fn record_gap(&self, gap: &GapRecord) {
        let name = chunk::gap_name(self.cluster, gap.after.ts);
        let Ok(body) = serde_json::to_vec_pretty(gap) else { return };
        let body = Bytes::from(body);
        join_all(self.stores.iter().map(|store| {
            let body = body.clone();
            let name = name.clone();
            async move {
                if let Err(error) = store.store.put(&store.key(&name), PutPayload::from_bytes(body)).await {
                    tracing::warn!(destination = %store.name, %error, "cannot record the gap");
                }
            }
        }))
        .await;
    }
}

/// The chunks (by their manifests' names) and gap records a destination holds for a cluster.
pub async fn list(store: &OpenStore, cluster: &str) -> Result<(Vec<ChunkRef>, Vec<String>), ChunkStoreError> {
    let prefix = store.key(&chunk::oplog_dir(cluster));
    let objects: Vec<object_store::ObjectMeta> =
        store.store.list(Some(&prefix)).try_collect().await.map_err(store_error(store, format!("listing {prefix}")))?;
    let under = |key: &Path| -> String {
        let key = key.as_ref();
        match store.prefix.as_str() {
            "" => key.to_string(),
            p => key.strip_prefix(p).map(|k| k.trim_start_matches('/').to_string()).unwrap_or_else(|| key.to_string()),
        }
    };
    let mut chunks = Vec::new();
    let mut gaps = Vec::new();
    for meta in objects {
        let name = under(&meta.location);
        if chunk::is_manifest(&name) {
            chunks.extend(chunk::parse_manifest_name(&name));
        } else if name.contains("/gaps/") && name.ends_with(".json") {
            gaps.push(name);
        }
    }
    chunks.sort_by_key(|c| c.last.ts);
    Ok((chunks, gaps))
}

/// One object's bytes, by its name under the destination's prefix.
pub async fn read(store: &OpenStore, name: &str) -> Result<Bytes, ChunkStoreError> {
    let object = store.store.get(&store.key(name)).await.map_err(store_error(store, format!("reading {name}")))?;
    object.bytes().await.map_err(store_error(store, format!("reading {name}")))
}

/// Reads a chunk's manifest; with a passphrase, only one whose MAC it verifies.
pub async fn read_manifest(
    store: &OpenStore,
    name: &str,
    passphrase: Option<&str>,
) -> Result<ChunkManifest, ChunkStoreError> {
    let key = store.key(name);
    let body = read(store, name).await?;
    let invalid = |reason: String| ChunkStoreError::Invalid { url: store.url(&key), reason };
    let manifest: ChunkManifest = serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
    if manifest.format != CHUNK_FORMAT {
        return Err(invalid(format!("format {} is not one this version reads ({CHUNK_FORMAT})", manifest.format)));
    }
    if let Some(passphrase) = passphrase
        && !seal::verifies(&manifest, passphrase)
    {
        return Err(invalid(
            "its MAC does not verify with the backups' key: it was not written by this archive".into(),
        ));
    }
    Ok(manifest)
}

/// Reads a chunk back: its stored bytes must have the manifest's checksum, then they are
/// decrypted and decompressed to the raw entries.
pub async fn read_chunk(
    store: &OpenStore,
    manifest: &ChunkManifest,
    passphrase: Option<&str>,
) -> Result<Vec<u8>, ChunkStoreError> {
    let key = store.key(&manifest.object);
    let stored = read(store, &manifest.object).await?;
    let checksum = format!("sha256:{}", hex::encode(Sha256::digest(&stored)));
    if checksum != manifest.checksum {
        return Err(ChunkStoreError::Invalid {
            url: store.url(&key),
            reason: format!("its checksum is {checksum}, the manifest says {}", manifest.checksum),
        });
    }
    let compression = manifest.compression;
    let passphrase = passphrase.map(|p| SecretString::from(p.to_string()));
    let url = store.url(&key);
    tokio::task::spawn_blocking(move || {
        let mut raw = Vec::new();
        decoder(compression, passphrase, Box::new(std::io::Cursor::new(stored)))
            .and_then(|mut d| std::io::copy(&mut d, &mut raw))
            .map_err(|e| ChunkStoreError::Invalid { url, reason: format!("cannot be decoded: {e}") })?;
        Ok(raw)
    })
    .await
    .map_err(|e| ChunkStoreError::Encode(std::io::Error::other(e)))?
}
