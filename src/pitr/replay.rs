//! A restore to a point in time, inside the restore Job: the base backup and the archived
//! oplog are found in the destination, the base is restored as any backup is (its own oplog
//! replayed, consistent as of its end), then the archived entries after it are replayed by the
//! real mongorestore, `--oplogReplay --oplogLimit <target>`, from a directory holding only
//! `oplog.bson` (mongorestore's way of replaying an oplog without restoring a collection).
//!
//! The operator cannot list the stores, so the Job picks the base and says what it did in its
//! outcome (the base, the limit, the entries), which the operator shows in status. Only
//! encrypted backups are restored this way: the manifests the Job picks by itself are believed
//! because the key's MAC vouches for each (nothing in the API knows their checksums).

use std::io::Write;

use super::slicer::replay_file;
use super::store::{list, read_chunk, read_manifest};
use super::target::{Selection, Target, select};
use crate::api::{BackupLocation, Destination};
use crate::backup::RestoreError;
use crate::backup::files::{ENCRYPTION_KEY, SecretFiles};
use crate::backup::plan::{Expected, Outcome, PointInTimeOutcome, PointInTimePlan, RestorePlan};
use crate::backup::restore::{OplogReplay, restore_copy, wipe};
use crate::backup::store::{manifest_key, open};
use crate::backup::tools::{ToolProcess, Tools};

fn refused(reason: impl std::fmt::Display) -> RestoreError {
    RestoreError::PointInTime(reason.to_string())
}

/// Restores `plan`'s target to the point `pitr` names.
pub async fn restore_to(
    plan: &RestorePlan,
    pitr: &PointInTimePlan,
    password: Option<&str>,
    secrets: &SecretFiles,
    tools: &Tools,
) -> Result<Outcome, RestoreError> {
    let target = Target::parse(&pitr.target).map_err(refused)?;
    let key = secrets.optional(ENCRYPTION_KEY)?.ok_or_else(|| {
        refused("only encrypted backups are restored to a point in time: the key is what vouches for the manifests the restore picks")
    })?;
    // Each destination of the schedule holds its own copy of the bases and the archive: the
    // first that can reach the target is used, the others are tried when it cannot.
    let mut failures = Vec::new();
    let mut found = None;
    for location in std::iter::once(&plan.location).chain(&plan.fallbacks) {
        match archived(&location.destination, target, &pitr.cluster, &key, secrets).await {
            Ok(archive) => {
                found = Some((&location.destination, archive));
                break;
            }
            Err(error) => {
                tracing::warn!(destination = %location.destination.name, %error, "this destination cannot reach the target");
                failures.push((location.destination.name.clone(), error));
            }
        }
    }
    let Some((destination, (selection, oplog, entries))) = found else {
        if failures.len() == 1
            && let Some((_, error)) = failures.pop()
        {
            return Err(error);
        }
        let each: Vec<String> = failures.iter().map(|(name, error)| format!("{name}: {error}")).collect();
        return Err(refused(each.join("; ")));
    };
    let base = BackupLocation {
        destination: destination.clone(),
        path: manifest_key(destination, &pitr.cluster, &selection.base.name),
    };
    let expected = Expected { checksum: None, encrypted: true };
    let restored = restore_copy(&base, &expected, &plan.target, password, secrets, tools, OplogReplay::AsRecorded)
        .await
        .map_err(|failed| failed.error)?;

    let replayed = replay(&oplog, &selection.limit.oplog_limit(), plan, password, tools).await;
    if let Err(error) = replayed {
        // Half a replay is no point in time: the target is emptied, as after a failed copy.
        wipe(&plan.target, password).await.map_err(|reason| RestoreError::Wipe { after: error.to_string(), reason })?;
        return Err(error);
    }
    Ok(Outcome::Restored {
        manifest: restored.manifest.without_contents(),
        copy: Some(destination.name.clone()),
        point_in_time: Some(PointInTimeOutcome {
            base: selection.base.name.clone(),
            limit: selection.limit.oplog_limit(),
            resolved: selection.limit.to_time(),
            entries,
            chunks: selection.chunks.len() as u64,
        }),
    })
}

/// In one destination: the base and chunks that reach `target`, and the `oplog.bson` to replay
/// with its entry count. The archived entries are read, checked and chained before the
/// target is touched.
async fn archived(
    destination: &Destination,
    target: Target,
    cluster: &str,
    key: &str,
    secrets: &SecretFiles,
) -> Result<(Selection, Vec<u8>, u64), RestoreError> {
    let store = open(destination, &secrets.store_credentials(destination)?)?;
    let (chunks, _) = list(&store, cluster).await.map_err(refused)?;
    let bases = super::archiver::bases(&store, cluster).await;
    let selection = select(target, &bases, &chunks).map_err(refused)?;
    tracing::info!(destination = %destination.name, base = %selection.base.name, limit = %selection.limit, chunks = selection.chunks.len(), "restoring to a point in time");
    let mut raw = Vec::new();
    let mut previous = None;
    for chunk in &selection.chunks {
        let manifest = read_manifest(&store, &chunk.manifest, Some(key)).await.map_err(refused)?;
        if let Some(previous) = previous
            && manifest.after != previous
        {
            return Err(refused(format!(
                "chunk {} follows {}, not {previous}, the last entry of the chunk before it",
                chunk.manifest, manifest.after
            )));
        }
        previous = Some(manifest.last);
        raw.push(read_chunk(&store, &manifest, Some(key)).await.map_err(refused)?);
    }
    let (oplog, entries) = replay_file(raw.iter().map(Vec::as_slice), selection.base.oplog_end.ts).map_err(refused)?;
    Ok((selection, oplog, entries))
}

/// Runs mongorestore on a directory holding only `oplog.bson`.
async fn replay(
    oplog: &[u8],
    limit: &str,
    plan: &RestorePlan,
    password: Option<&str>,
    tools: &Tools,
) -> Result<(), RestoreError> {
    let dir = tempfile::Builder::new().prefix("oplog-replay-").tempdir()?;
    let mut file = std::fs::File::create(dir.path().join("oplog.bson"))?;
    file.write_all(oplog)?;
    file.sync_all()?;
    let args = vec!["--oplogReplay".to_string(), format!("--oplogLimit={limit}"), dir.path().display().to_string()];
    let mut tool = ToolProcess::spawn(&tools.mongorestore, &plan.target, password, &args, false, false)?;
    let status = tokio::task::spawn_blocking(move || {
        let status = tool.wait();
        (status, tool.stderr_tail())
    })
    .await
    .map_err(std::io::Error::other)?;
    match status {
        (Ok(status), _) if status.success() => Ok(()),
        (Ok(status), output) => Err(RestoreError::Restore { status: status.to_string(), output }),
        (Err(error), _) => Err(error.into()),
    }
}
