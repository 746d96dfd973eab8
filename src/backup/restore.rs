//! `mongo-operator restore`: reads a backup's manifest, then streams the archive into
//! mongorestore once, checking it on the way (checksum, size, decryption, decompression).
//!
//! The archive is read once: a 500 GB restore takes one transfer, not two. The target is a new,
//! empty replica set (the operator checks that before it starts the Job), so a copy that turns
//! out damaged half-way (a checksum that does not match at the end, an archive that does not
//! decrypt or decompress) costs nothing but time: the databases it put in are dropped and the
//! next copy is tried. Nothing partial is ever reported as restored, and a restore that fails
//! leaves the target empty again. An encrypted archive is authenticated chunk by chunk as it
//! is read (age's STREAM construction), so mongorestore never sees a byte of one that was
//! altered.

use age::secrecy::SecretString;
use futures::TryStreamExt;
use mongodb::bson::doc;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use sha2::{Digest, Sha256};
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::RestoreError;
use super::codec::decoder;
use super::files::{ENCRYPTION_KEY, MONGODB_PASSWORD, SecretFiles};
use super::plan::{Expected, MANIFEST_FORMAT, Manifest, Outcome, RestorePlan, Source};
use super::seal;
use super::store::{OpenStore, open, summary};
use super::tools::{ToolProcess, Tools};
use crate::api::BackupLocation;
use crate::mongo::SYSTEM_USER;

/// Databases every replica set has: a failed copy leaves the others dropped, and a
/// verification checks them only as far as the backup's users go.
pub(crate) const SYSTEM_DATABASES: [&str; 3] = ["admin", "config", "local"];

/// Restores the backup `plan` names into its target, from the first of its copies that is
/// whole.
pub async fn restore(plan: &RestorePlan, secrets: &SecretFiles, tools: &Tools) -> Result<Outcome, RestoreError> {
    let password = match &plan.target.username {
        // `__system`'s password is the keyFile without its whitespace (`security_key.cpp`).
        Some(user) if user == SYSTEM_USER => {
            Some(secrets.required(MONGODB_PASSWORD)?.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        }
        Some(_) => Some(secrets.required(MONGODB_PASSWORD)?),
        None => None,
    };
    if let Some(pitr) = &plan.point_in_time {
        return crate::pitr::replay::restore_to(plan, pitr, password.as_deref(), secrets, tools).await;
    }
    if !plan.expected.vouches() {
        return Err(RestoreError::Untrusted {
            url: plan.location.path.clone(),
            reason: "the plan gives neither the backup's checksum nor its encryption".into(),
        });
    }
    let mut failures: Vec<(String, RestoreError)> = Vec::new();
    for location in std::iter::once(&plan.location).chain(&plan.fallbacks) {
        let copy = location.destination.name.clone();
        let restored = restore_copy(
            location,
            &plan.expected,
            &plan.target,
            password.as_deref(),
            secrets,
            tools,
            OplogReplay::AsRecorded,
        )
        .await;
        match restored {
            Ok(restored) => {
                return Ok(Outcome::Restored {
                    manifest: restored.manifest.without_contents(),
                    copy: Some(copy),
                    point_in_time: None,
                });
            }
            Err(Failed { error, touched, final_ }) => {
                tracing::warn!(%copy, %error, "this copy cannot be restored");
                if touched {
                    wipe(&plan.target, password.as_deref())
                        .await
                        .map_err(|reason| RestoreError::Wipe { after: format!("copy {copy}: {error}"), reason })?;
                }
                failures.push((copy, error));
                if final_ {
                    break;
                }
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

/// Why one copy did not restore, and what it left.
pub(crate) struct Failed {
    pub(crate) error: RestoreError,
    /// mongorestore ran: the target may hold part of the copy.
    pub(super) touched: bool,
    /// The archive was whole and mongorestore still failed: another copy of the same bytes
    /// would fare no better.
    pub(super) final_: bool,
}

/// What happens to the oplog an `--oplog` archive carries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum OplogReplay {
    /// Replayed to its end (`--oplogReplay`) when the manifest says the archive has one: a
    /// restore, consistent as of the dump's end.
    AsRecorded,
    /// Not replayed: the collections exactly as they were dumped, which is what a
    /// verification compares with the counts and digests recorded from the archive.
    Never,
}

/// A copy mongorestore restored.
pub(crate) struct RestoredCopy {
    pub(crate) manifest: Manifest,
    /// mongorestore's last lines of output (its summary is the last).
    pub(super) output: String,
}

impl Failed {
    fn untouched(error: RestoreError) -> Failed {
        Failed { error, touched: false, final_: false }
    }
}

/// Streams one copy into mongorestore: the manifest first (a copy without one is incomplete,
/// and never touches the target), then the archive, hashed as it passes.
pub(crate) async fn restore_copy(
    location: &BackupLocation,
    expected: &Expected,
    target: &Source,
    password: Option<&str>,
    secrets: &SecretFiles,
    tools: &Tools,
    replay: OplogReplay,
) -> Result<RestoredCopy, Failed> {
    let destination = &location.destination;
    let credentials = secrets.store_credentials(destination).map_err(|e| Failed::untouched(e.into()))?;
    let store = open(destination, &credentials).map_err(|e| Failed::untouched(e.into()))?;
    let manifest_key = Path::from(location.path.as_str());
    let manifest = read_manifest(&store, &manifest_key).await.map_err(Failed::untouched)?;
    let archive_key = archive_key(&location.path, &manifest.archive);
    let passphrase = match manifest.encryption.is_some() || expected.encrypted {
        true => Some(secrets.required(ENCRYPTION_KEY).map_err(|e| Failed::untouched(e.into()))?),
        false => None,
    };
    vouched(&manifest, expected, passphrase.as_deref())
        .map_err(|reason| Failed::untouched(RestoreError::Untrusted { url: store.url(&manifest_key), reason }))?;
    let mut args = vec!["--archive".to_string(), "--drop".to_string()];
    // An --oplog archive is replayed to its end, for a consistent copy. No namespace may be
    // excluded then: mongorestore refuses excludes, includes and renames with --oplogReplay
    // (`ParseAndValidateOptions`); the backup's users are dealt with by the operator after.
    if manifest.oplog && replay == OplogReplay::AsRecorded {
        args.push("--oplogReplay".into());
    }
    let mut tool = ToolProcess::spawn(&tools.mongorestore, target, password, &args, true, false)
        .map_err(|e| Failed::untouched(e.into()))?;
    let Some(stdin) = tool.child.stdin.take() else {
        tool.kill();
        return Err(Failed::untouched(RestoreError::Io(std::io::Error::other("mongorestore has no input pipe"))));
    };
    let touched = |error: RestoreError| Failed { error, touched: true, final_: false };
    tracing::info!(copy = %destination.name, checksum = %manifest.checksum, bytes = manifest.size_bytes, "restoring");
    let fed = read_archive(&store, &archive_key, &manifest, passphrase, stdin).await;
    let fed = match fed {
        Ok(fed) => fed,
        Err(error) => {
            tool.kill();
            return Err(touched(error));
        }
    };
    // The archive's own checks come first: they name the cause when the bytes are wrong, and
    // mongorestore is stopped rather than waited for (a damaged archive can leave it waiting
    // for an oplog stream that never ends).
    if fed.checksum != manifest.checksum || fed.size != manifest.size_bytes {
        tool.kill();
        return Err(touched(RestoreError::Checksum {
            expected: format!("{} ({} bytes)", manifest.checksum, manifest.size_bytes),
            actual: format!("{} ({} bytes)", fed.checksum, fed.size),
        }));
    }
    if let Some((kind, reason)) = &fed.decode_error
        && *kind != std::io::ErrorKind::BrokenPipe
    {
        tool.kill();
        return Err(touched(RestoreError::Archive { url: store.url(&archive_key), reason: reason.clone() }));
    }
    let status = tool.wait().map_err(|e| touched(e.into()))?;
    // A broken pipe: mongorestore stopped reading, and its own error says why.
    if !status.success() {
        let error = RestoreError::Restore { status: status.to_string(), output: tool.stderr_tail() };
        return Err(Failed { error, touched: true, final_: true });
    }
    Ok(RestoredCopy { manifest, output: tool.stderr_tail() })
}

/// Why the manifest cannot be believed, if it cannot: it must agree with what the API or the
/// spec says of the backup (`expected`), and when only the key vouches for it, carry a MAC made
/// with that key. A MAC that is there is always checked.
fn vouched(manifest: &Manifest, expected: &Expected, passphrase: Option<&str>) -> Result<(), String> {
    if expected.encrypted && manifest.encryption.is_none() {
        return Err("it says the archive is not encrypted, but the backup was encrypted".into());
    }
    if let Some(checksum) = &expected.checksum
        && *checksum != manifest.checksum
    {
        return Err(format!("its checksum {} is not the backup's, {checksum}", manifest.checksum));
    }
    match (&manifest.mac, passphrase) {
        (Some(_), Some(key)) if !seal::verifies(manifest, key) => {
            Err("its MAC does not verify with the encryption key: the key is not the backup's, or somebody without \
                 it changed the manifest"
                .into())
        }
        (None, _) if expected.checksum.is_none() => {
            Err("it carries no MAC, and no checksum was given to check it against (set bootstrap.fromBackup.checksum \
             to the checksum the backup's MongoBackup showed)"
                .into())
        }
        _ => Ok(()),
    }
}

/// How long a wipe waits before it looks at the target again. A write the stopped tool sent
/// just before it was stopped may still be running on the server, and it re-creates the
/// database it writes to: mongod ends an operation whose client went away only at the
/// operation's next interrupt check (`OperationContext::checkForInterrupt`), and a request
/// already in the socket's buffer is still read and run after the client is gone.
const WIPE_SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

/// Drops and looks again at most this many times before a target that keeps receiving writes
/// is reported (ten seconds of writes nobody should be sending).
const WIPE_ROUNDS: u32 = 20;

/// Drops every database a failed copy may have put into the target (all but admin, config
/// and local), so that the next copy, or the next attempt, starts from an empty set. A wipe
/// is done only when the target is still empty a settling time after the last drop: the
/// tool's last writes may land after the first drop.
pub async fn wipe(target: &Source, password: Option<&str>) -> Result<(), String> {
    let client = super::server::client(target, password, "mongo-operator-restore").await.map_err(|e| e.to_string())?;
    let wiped = wipe_until_empty(&client).await;
    client.shutdown().await;
    wiped
}

async fn wipe_until_empty(client: &mongodb::Client) -> Result<(), String> {
    let mut names = user_databases(client).await?;
    for _ in 0..WIPE_ROUNDS {
        for name in &names {
            client
                .database(name)
                .run_command(doc! { "dropDatabase": 1 })
                .await
                .map_err(|e| format!("dropping {name}: {e}"))?;
            tracing::info!(database = %name, "dropped what a failed copy restored");
        }
        tokio::time::sleep(WIPE_SETTLE).await;
        names = user_databases(client).await?;
        if names.is_empty() {
            return Ok(());
        }
        tracing::warn!(databases = ?names, "writes landed after the drop; dropping again");
    }
    Err(format!(
        "{} still received writes {} s after the restore tool was stopped",
        names.join(", "),
        WIPE_SETTLE.as_millis() * u128::from(WIPE_ROUNDS) / 1000
    ))
}

async fn user_databases(client: &mongodb::Client) -> Result<Vec<String>, String> {
    let mut names = client.list_database_names().await.map_err(|e| format!("listing the databases: {e}"))?;
    names.retain(|n| !SYSTEM_DATABASES.contains(&n.as_str()));
    Ok(names)
}

/// Reads and checks a manifest.
pub async fn read_manifest(store: &OpenStore, key: &Path) -> Result<Manifest, RestoreError> {
    let body = store
        .store
        .get(key)
        .await
        .map_err(|source| unreadable_manifest(store, key, &source))?
        .bytes()
        .await
        .map_err(|source| unreadable_manifest(store, key, &source))?;
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

/// A manifest the store did not hand over: logged in full, reported by [`summary`].
fn unreadable_manifest(store: &OpenStore, key: &Path, source: &object_store::Error) -> RestoreError {
    tracing::warn!(url = %store.url(key), error = %source, "the store refused the manifest");
    RestoreError::Manifest { url: store.url(key), reason: summary(source) }
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
    decode_error: Option<(std::io::ErrorKind, String)>,
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
        .map_err(|source| {
            tracing::warn!(url = %store.url(key), error = %source, "the store refused the archive");
            RestoreError::Archive { url: store.url(key), reason: summary(&source) }
        })?
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
            decode_error: copied.err().map(|error| (error.kind(), error.to_string())),
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
