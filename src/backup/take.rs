//! `mongo-operator backup`: mongodump's archive, compressed, encrypted and checksummed on the
//! way, into every destination at once; the manifest last, and only when every copy is whole.
//! What the archive holds (namespaces, counts, digests) is recorded from the same bytes.

use std::future::Future;
use std::io::{BufReader, Read};

use age::secrecy::SecretString;
use chrono::Utc;
use object_store::ObjectStoreExt;
use tokio::sync::mpsc;

use super::BackupError;
use super::archive::Recorder;
use super::codec::encoder;
use super::files::{ENCRYPTION_KEY, MONGODB_PASSWORD, SecretFiles};
use super::plan::{BackupPlan, Copy, ENCRYPTION_SCHEME, MANIFEST_FORMAT, MANIFEST_NAME, Manifest, Outcome};
use super::seal;
use super::server::server_facts;
use super::store::{OpenStore, backup_dir, open};
use super::tools::{ToolProcess, Tools};
use super::upload::{CHANNEL_CHUNKS, ChunkSink, FanOut, MIN_PART_SIZE, UploadError, delete_all, part_size};

/// Read buffer for mongodump's output.
const READ_BUFFER: usize = 1024 * 1024;

/// Takes the backup `plan` describes. Whatever fails, and also when `cancelled` resolves
/// first, nothing that looks like a complete backup is left behind: uploads are aborted,
/// finished archives are deleted, and no manifest is written.
pub async fn take(
    plan: &BackupPlan,
    secrets: &SecretFiles,
    tools: &Tools,
    cancelled: impl Future<Output = ()>,
) -> Result<Outcome, BackupError> {
    let password = match plan.source.username {
        Some(_) => Some(secrets.required(MONGODB_PASSWORD)?),
        None => None,
    };
    // Kept apart from the encoder's copy: the manifest's MAC is made with it at the end.
    let key = match plan.encrypted {
        true => Some(secrets.required(ENCRYPTION_KEY)?),
        false => None,
    };
    let passphrase = key.clone().map(SecretString::from);
    let mut stores = Vec::new();
    for destination in &plan.destinations {
        stores.push(open(destination, &secrets.store_credentials(destination)?)?);
    }
    let facts = server_facts(&plan.source, password.as_deref()).await?;
    tracing::info!(version = ?facts.version, data_bytes = facts.data_bytes, "source reachable");

    let dir = backup_dir(&plan.cluster, &plan.backup);
    let archive = Manifest::archive_name(plan.compression, plan.encrypted);
    let started_at = Utc::now();
    // A generous guess of the archive's size, only to choose the part size.
    let mut uploads =
        FanOut::start(&stores, &format!("{dir}/{archive}"), part_size(facts.data_bytes.saturating_mul(4))).await?;

    let mut args = vec!["--archive".to_string()];
    if plan.oplog {
        args.push("--oplog".into());
    }
    let mut dump = ToolProcess::spawn(&tools.mongodump, &plan.source, password.as_deref(), &args, false, true)?;
    let stdout = dump
        .child
        .stdout
        .take()
        .ok_or_else(|| BackupError::Io(std::io::Error::other("mongodump has no output pipe")))?;

    let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
    let compression = plan.compression;
    let encode = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, Recorder)> {
        let mut counted =
            Counted { inner: BufReader::with_capacity(READ_BUFFER, stdout), bytes: 0, recorder: Recorder::default() };
        let mut writer = encoder(compression, passphrase, Box::new(ChunkSink::new(sender, MIN_PART_SIZE)))?;
        std::io::copy(&mut counted, &mut writer)?;
        writer.finish()?;
        Ok((counted.bytes, counted.recorder))
    });

    let pumped = tokio::select! {
        result = async { tokio::join!(uploads.pump(receiver), encode) } => Some(result),
        () = cancelled => None,
    };
    let Some((pumped, encoded)) = pumped else {
        dump.kill();
        uploads.abort().await;
        return Err(BackupError::Cancelled);
    };
    let encoded = encoded.unwrap_or_else(|panicked| Err(std::io::Error::other(panicked)));
    let checked = match (pumped, encoded) {
        // mongodump's exit status decides, whatever the streams say: the archive of a dump
        // that failed half-way may be well-formed and still incomplete.
        (Ok(uploaded), Ok(dumped)) => match dump.wait() {
            Ok(status) if status.success() => Ok((uploaded, dumped)),
            Ok(status) => Err(BackupError::Dump { status: status.to_string(), output: dump.stderr_tail() }),
            Err(error) => Err(BackupError::Io(error)),
        },
        // A destination failed; the encoder then stopped for want of a reader.
        (Err(error), _) => {
            dump.kill();
            Err(error.into())
        }
        (Ok(_), Err(error)) => {
            dump.kill();
            Err(BackupError::Io(error))
        }
    };
    let (uploaded, (dump_bytes, recorder)) = match checked {
        Ok(done) => done,
        Err(error) => {
            uploads.abort().await;
            return Err(error);
        }
    };
    let archives = uploads.finish().await?;
    // What the archive holds, for verification. A backup whose archive this version cannot
    // read is still a backup mongorestore can restore: it is kept, without contents, and a
    // verification of it says why it cannot compare.
    let contents = match recorder.finish() {
        Ok(contents) => Some(contents),
        Err(error) => {
            tracing::warn!(%error, "the archive's contents could not be recorded");
            None
        }
    };

    let mut manifest = Manifest {
        format: MANIFEST_FORMAT,
        cluster: plan.cluster.clone(),
        backup: plan.backup.clone(),
        started_at,
        completed_at: Utc::now(),
        mongodb_version: facts.version.clone(),
        oplog: plan.oplog,
        archive,
        size_bytes: uploaded.size,
        checksum: uploaded.checksum,
        dump_bytes,
        compression: plan.compression,
        encryption: plan.encrypted.then(|| ENCRYPTION_SCHEME.to_string()),
        contents,
        mac: None,
    };
    if let Some(key) = &key {
        manifest.mac = Some(seal::mac(&manifest, key).map_err(std::io::Error::other)?);
    }
    // If a manifest cannot be written everywhere, the archives go too: nothing half-done stays.
    match write_manifests(&stores, &dir, &manifest).await {
        Ok(copies) => Ok(Outcome::BackedUp { manifest: manifest.without_contents(), copies }),
        Err(error) => {
            delete_all(&archives).await;
            Err(error.into())
        }
    }
}

/// Writes the manifest into every destination; if one write fails, the others are deleted.
async fn write_manifests(stores: &[OpenStore], dir: &str, manifest: &Manifest) -> Result<Vec<Copy>, UploadError> {
    let body = serde_json::to_vec_pretty(manifest).map_err(|error| UploadError {
        destination: "(all)".into(),
        source: object_store::Error::Generic { store: "manifest", source: Box::new(error) },
    })?;
    let relative = format!("{dir}/{MANIFEST_NAME}");
    let results = futures::future::join_all(stores.iter().map(|store| {
        let key = store.key(&relative);
        let body = body.clone();
        async move {
            let result = store.store.put(&key, body.into()).await;
            (store, key, result)
        }
    }))
    .await;
    let mut written = Vec::new();
    let mut failure = None;
    for (store, key, result) in results {
        match result {
            Ok(_) => written.push((store.clone(), key)),
            Err(source) => failure = failure.or(Some(UploadError { destination: store.name.clone(), source })),
        }
    }
    if let Some(error) = failure {
        delete_all(&written).await;
        return Err(error);
    }
    Ok(written
        .into_iter()
        .map(|(store, key)| Copy { destination: store.name.clone(), url: store.url(&key), path: key.to_string() })
        .collect())
}

/// Counts the bytes read through it, and records what the archive holds.
struct Counted<R> {
    inner: R,
    bytes: u64,
    recorder: Recorder,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        self.recorder.feed(&buf[..n]);
        Ok(n)
    }
}
