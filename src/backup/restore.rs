//! `mongo-operator restore`: reads a backup's manifest, checks the whole archive (checksum,
//! key, compression) before the target is touched, then streams it into mongorestore.

use age::secrecy::SecretString;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use sha2::{Digest, Sha256};
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::RestoreError;
use super::codec::decoder;
use super::files::{ENCRYPTION_KEY, MONGODB_PASSWORD, SecretFiles};
use super::plan::{MANIFEST_FORMAT, Manifest, Outcome, RestorePlan};
use super::store::{OpenStore, open};
use super::tools::{ToolProcess, Tools};
use crate::api::BackupLocation;

/// Collections a clone never takes from the backup: the users and roles of the source. The
/// new cluster's users are those of its own spec, with its own passwords; restoring the
/// source's would also replace the operator's own user and lock it out.
const EXCLUDED_NAMESPACES: [&str; 3] = ["admin.system.users", "admin.system.roles", "admin.system.version"];

/// Restores the backup `plan` names into its target, from the first of its copies that is
/// whole.
pub async fn restore(plan: &RestorePlan, secrets: &SecretFiles, tools: &Tools) -> Result<Outcome, RestoreError> {
    let Verified { store, manifest, archive_key, passphrase, destination } = first_whole_copy(plan, secrets).await?;
    tracing::info!(copy = %destination, checksum = %manifest.checksum, bytes = manifest.size_bytes, "archive verified");

    let password = match plan.target.username {
        Some(_) => Some(secrets.required(MONGODB_PASSWORD)?),
        None => None,
    };
    let mut args = vec!["--archive".to_string(), "--drop".to_string()];
    if manifest.oplog {
        args.push("--oplogReplay".into());
    }
    args.extend(EXCLUDED_NAMESPACES.iter().map(|ns| format!("--nsExclude={ns}")));
    let mut tool = ToolProcess::spawn(&tools.mongorestore, &plan.target, password.as_deref(), &args, true, false)?;
    let stdin = tool
        .child
        .stdin
        .take()
        .ok_or_else(|| RestoreError::Io(std::io::Error::other("mongorestore has no input pipe")))?;
    // Second pass: the same bytes into mongorestore. Their checksum is compared again, in case
    // the object changed in between; mongorestore then reports failure through its exit.
    let fed = read_archive(&store, &archive_key, &manifest, passphrase, stdin).await;
    let status = tool.wait()?;
    let fed = fed?;
    if fed.checksum != manifest.checksum {
        return Err(RestoreError::Checksum { expected: manifest.checksum.clone(), actual: fed.checksum });
    }
    if let Some(reason) = fed.decode_error {
        return Err(RestoreError::Archive { url: store.url(&archive_key), reason });
    }
    if !status.success() {
        return Err(RestoreError::Restore { status: status.to_string(), output: tool.stderr_tail() });
    }
    Ok(Outcome::Restored { manifest, copy: Some(destination) })
}

/// A copy whose whole archive matched its manifest and decoded to its end.
struct Verified {
    store: OpenStore,
    manifest: Manifest,
    archive_key: Path,
    passphrase: Option<String>,
    /// The destination's name.
    destination: String,
}

/// The first copy, in the plan's order, that is whole. A copy that cannot be read (its store
/// down, its manifest missing) or does not match its manifest is skipped for the next one:
/// that is what a second provider is for. Nothing has touched the target yet.
async fn first_whole_copy(plan: &RestorePlan, secrets: &SecretFiles) -> Result<Verified, RestoreError> {
    let mut failures: Vec<(String, RestoreError)> = Vec::new();
    for location in std::iter::once(&plan.location).chain(&plan.fallbacks) {
        match verify(location, secrets).await {
            Ok(verified) => return Ok(verified),
            Err(error) => {
                tracing::warn!(copy = %location.destination.name, %error, "this copy cannot be restored");
                failures.push((location.destination.name.clone(), error));
            }
        }
    }
    if failures.len() == 1
        && let Some((_, error)) = failures.pop()
    {
        // One copy: its own error, unwrapped.
        return Err(error);
    }
    let copies: Vec<String> = failures.iter().map(|(name, error)| format!("copy {name}: {error}")).collect();
    Err(RestoreError::NoUsableCopy { copies: copies.join("; ") })
}

/// Reads one copy's manifest, then its whole archive: it must match the manifest's checksum
/// and size, and decrypt and decompress to the end, before mongorestore sees a byte of it.
async fn verify(location: &BackupLocation, secrets: &SecretFiles) -> Result<Verified, RestoreError> {
    let destination = &location.destination;
    let store = open(destination, &secrets.store_credentials(destination)?)?;
    let manifest = read_manifest(&store, &Path::from(location.path.as_str())).await?;
    let archive_key = archive_key(&location.path, &manifest.archive);
    let passphrase = match manifest.encryption {
        Some(_) => Some(secrets.required(ENCRYPTION_KEY)?),
        None => None,
    };
    // A damaged archive usually also fails to decrypt or decompress; the checksum is compared
    // first because it names the cause.
    let checked = read_archive(&store, &archive_key, &manifest, passphrase.clone(), std::io::sink()).await?;
    if checked.checksum != manifest.checksum || checked.size != manifest.size_bytes {
        return Err(RestoreError::Checksum {
            expected: format!("{} ({} bytes)", manifest.checksum, manifest.size_bytes),
            actual: format!("{} ({} bytes)", checked.checksum, checked.size),
        });
    }
    if let Some(reason) = checked.decode_error {
        return Err(RestoreError::Archive { url: store.url(&archive_key), reason });
    }
    Ok(Verified { store, manifest, archive_key, passphrase, destination: destination.name.clone() })
}

/// Reads and checks a manifest.
pub async fn read_manifest(store: &OpenStore, key: &Path) -> Result<Manifest, RestoreError> {
    let body = store
        .store
        .get(key)
        .await
        .map_err(|source| RestoreError::Manifest { url: store.url(key), reason: source.to_string() })?
        .bytes()
        .await
        .map_err(|source| RestoreError::Manifest { url: store.url(key), reason: source.to_string() })?;
    let manifest: Manifest = serde_json::from_slice(&body)
        .map_err(|error| RestoreError::Manifest { url: store.url(key), reason: error.to_string() })?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(RestoreError::Manifest {
            url: store.url(key),
            reason: format!("format {} is not one this version reads ({MANIFEST_FORMAT})", manifest.format),
        });
    }
    Ok(manifest)
}

/// The archive's key: the manifest's directory and the archive's name.
fn archive_key(manifest_path: &str, archive: &str) -> Path {
    match manifest_path.rsplit_once('/') {
        Some((dir, _)) => Path::from(format!("{dir}/{archive}")),
        None => Path::from(archive),
    }
}

/// What one read of the stored archive saw.
struct Read {
    size: u64,
    checksum: String,
    /// Why the archive could not be decrypted or decompressed to its end, if it could not.
    decode_error: Option<String>,
}

/// Streams the stored archive, hashing the stored bytes, through the decoder into `output`.
async fn read_archive<W: std::io::Write + Send + 'static>(
    store: &OpenStore,
    key: &Path,
    manifest: &Manifest,
    passphrase: Option<String>,
    mut output: W,
) -> Result<Read, RestoreError> {
    let stream = store
        .store
        .get(key)
        .await
        .map_err(|source| RestoreError::Archive { url: store.url(key), reason: source.to_string() })?
        .into_stream()
        .map_err(std::io::Error::other);
    let bridge = SyncIoBridge::new(StreamReader::new(stream));
    let compression = manifest.compression;
    let url = store.url(key);
    tokio::task::spawn_blocking(move || {
        let mut hashing = Hashing { inner: bridge, hasher: Sha256::new(), size: 0 };
        let copied = decoder(
            compression,
            passphrase.map(SecretString::from),
            Box::new(&mut hashing as &mut (dyn std::io::Read + Send)),
        )
        .and_then(|mut decoded| std::io::copy(&mut decoded, &mut output));
        drop(output);
        // Drain what the decoder did not read (a trailer, or everything after a decoding
        // error), so the checksum always covers every stored byte.
        std::io::copy(&mut hashing, &mut std::io::sink())
            .map_err(|error| RestoreError::Archive { url, reason: error.to_string() })?;
        Ok(Read {
            size: hashing.size,
            checksum: format!("sha256:{}", hex::encode(hashing.hasher.finalize())),
            decode_error: copied.err().map(|error| error.to_string()),
        })
    })
    .await
    .map_err(|error| RestoreError::Io(std::io::Error::other(error)))?
}

/// Hashes and counts the bytes read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: std::io::Read> std::io::Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_sits_next_to_its_manifest() {
        assert_eq!(archive_key("p/c/b/manifest.json", "archive.mongodump.zst").as_ref(), "p/c/b/archive.mongodump.zst");
        assert_eq!(archive_key("manifest.json", "archive.mongodump").as_ref(), "archive.mongodump");
    }
}
