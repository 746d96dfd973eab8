//! `mongo-operator archive-oplog`: the oplog archiver, a long-running process (one per
//! cluster). It tails `local.oplog.rs` on one member (a secondary when one answers) and every
//! span cuts the majority-committed entries it read into a chunk, written to every
//! destination of the schedule. Where it starts is decided from what the destinations hold
//! ([`super::start`]), so a restarted archiver, or one on another member after a failover,
//! continues exactly after the last entry archived.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use mongodb::bson::{Document, RawDocumentBuf, Timestamp, doc};
use mongodb::options::CursorType;
use serde::{Deserialize, Serialize};

use super::chunk::GapRecord;
use super::report::{Activity, Report};
use super::slicer::{SliceError, Slicer, read_entry};
use super::start::{Start, decide};
use super::store::{Archive, ChunkStoreError, list, read_manifest};
use super::target::Base;
use super::{OpTime, Ts};
use crate::api::{Compression, Destination};
use crate::backup::files::{ENCRYPTION_KEY, MONGODB_PASSWORD, SecretFiles};
use crate::backup::plan::Source;
use crate::backup::server::client_waiting;
use crate::backup::store::{OpenStore, open};

/// How long a getMore on the tailable cursor waits for new entries.
const AWAIT: Duration = Duration::from_secs(1);
/// How long to wait before trying again after a failure (a member down, a store refusing).
const RETRY: Duration = Duration::from_secs(5);
/// How long the member read may go without answering before the archiver reads another: the
/// driver's 30 s default would leave the archive that far behind for every member down.
const MEMBER_TIMEOUT: Duration = Duration::from_secs(10);
/// How much longer the other members may take to answer once one worth reading has: a
/// preferred member slower than this is not worth the wait.
const PREFERENCE_GRACE: Duration = Duration::from_secs(1);

/// What the archiver is asked to do (set by the operator in its Deployment).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArchivePlan {
    /// The MongoCluster's name; the first part of every key.
    pub cluster: String,
    /// Each member, as a direct connection; the archiver reads a secondary when one answers.
    pub members: Vec<Source>,
    /// Every destination of the schedule: each receives every chunk.
    pub destinations: Vec<Destination>,
    pub compression: Compression,
    /// Encrypt with the passphrase in the secrets directory, as the backups are.
    pub encrypted: bool,
    /// How often a chunk is cut, in seconds.
    pub span_seconds: u64,
}

/// Why the archiver stopped tailing.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Slice(#[from] SliceError),
    #[error(
        "member {member}: the oplog no longer holds what follows {after} (its oldest entry now: {found}): the entries in between are lost to the archive"
    )]
    Gap { member: String, after: OpTime, found: OpTime },
    #[error("member {member}: oplog entry {found} appeared after {archived} was archived: the archive lacks it")]
    Late { member: String, archived: OpTime, found: OpTime },
    #[error(transparent)]
    Store(#[from] ChunkStoreError),
    #[error("member {member}: {source}")]
    Mongo {
        member: String,
        #[source]
        source: mongodb::error::Error,
    },
    #[error("{0}")]
    Setup(String),
}

/// The stores and keys the archiver writes with, and the report it keeps as it goes.
struct Context {
    stores: Vec<OpenStore>,
    password: Option<String>,
    key: Option<String>,
    report: Arc<Mutex<Report>>,
}

impl Context {
    fn report(&self, change: impl FnOnce(&mut Report)) {
        let mut report = self.report.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut report);
    }

    /// Reads what the first destination holds into the report: the ranges a restore from it
    /// accepts. After every chunk (one listing and the base manifests: a new base backup, or
    /// one retention removed, changes the ranges as well).
    async fn refresh(&self, cluster: &str) {
        let Some(store) = self.stores.first() else { return };
        let Ok((chunks, gap_names)) = list(store, cluster).await else { return };
        let gaps = recorded_gaps(store, gap_names).await;
        let bases = bases(store, cluster).await;
        self.report(|r| r.archive(&bases, &chunks, &gaps));
    }
}

/// Runs until `shutdown` resolves: the entries read and committed by then are archived first.
pub async fn run(
    plan: &ArchivePlan,
    secrets: &SecretFiles,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ArchiveError> {
    let setup = |e: &dyn std::fmt::Display| ArchiveError::Setup(e.to_string());
    let password = match plan.members.first().and_then(|m| m.username.as_ref()) {
        Some(_) => Some(secrets.required(MONGODB_PASSWORD).map_err(|e| setup(&e))?),
        None => None,
    };
    let key = match plan.encrypted {
        true => Some(secrets.required(ENCRYPTION_KEY).map_err(|e| setup(&e))?),
        false => None,
    };
    let mut stores = Vec::new();
    for destination in &plan.destinations {
        let credentials = secrets.store_credentials(destination).map_err(|e| setup(&e))?;
        stores.push(open(destination, &credentials).map_err(|e| setup(&e))?);
    }
    let ctx = Context { stores, password, key, report: Arc::new(Mutex::new(Report::default())) };
    let served = ctx.report.clone();
    tokio::spawn(super::status_server::serve(move || served.lock().unwrap_or_else(|e| e.into_inner()).clone()));
    tokio::pin!(shutdown);
    loop {
        let attempt = async {
            let after = match starting_point(plan, &ctx).await? {
                Start::After { after, why } => {
                    tracing::info!(%after, %why, "archiving the oplog");
                    ctx.report(|r| r.set(Activity::Archiving, why));
                    after
                }
                Start::Wait(why) => {
                    tracing::warn!(%why, "not archiving yet");
                    ctx.report(|r| r.set(Activity::Waiting, why));
                    return Ok(false);
                }
            };
            tail(plan, &ctx, after).await
        };
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            result = attempt => match result {
                Ok(_) => tokio::time::sleep(Duration::from_secs(plan.span_seconds.max(1))).await,
                Err(ArchiveError::Gap { member, after, found }) => {
                    tracing::error!(%member, %after, %found, "the archive has a gap");
                    record_gap(plan, &ctx, &member, after, Some(found), None).await;
                }
                Err(ArchiveError::Late { member, archived, found }) => {
                    // Going on would bridge the missing entry silently: the range is closed
                    // at the last entry archived, and a new base backup starts the next.
                    tracing::error!(%member, %archived, %found, "an entry older than the archive appeared");
                    let reason = format!("entry {found} appeared after {archived} was archived");
                    record_gap(plan, &ctx, &member, archived, None, Some(reason)).await;
                }
                Err(error) => {
                    tracing::warn!(%error, "archiving stopped; trying again");
                    ctx.report(|r| r.set(Activity::Retrying, format!("archiving stopped; trying again: {error}")));
                    tokio::time::sleep(RETRY).await;
                }
            },
        }
    }
}

/// Reads the destinations: the newest chunk every one holds, the gaps, the base backups; the
/// report shows the first destination's archive from the same reads.
async fn starting_point(plan: &ArchivePlan, ctx: &Context) -> Result<Start, ArchiveError> {
    let mut common: Option<Vec<String>> = None;
    let mut first_chunks = None;
    let mut gaps: Vec<OpTime> = Vec::new();
    for store in &ctx.stores {
        let (chunks, gap_names) = list(store, &plan.cluster).await?;
        let names: Vec<String> = chunks.iter().map(|c| c.manifest.clone()).collect();
        common = Some(match common {
            None => names,
            Some(before) => before.into_iter().filter(|n| names.contains(n)).collect(),
        });
        first_chunks.get_or_insert(chunks);
        gaps.extend(recorded_gaps(store, gap_names).await);
    }
    let newest = match common.as_ref().and_then(|names| names.last()) {
        Some(name) => {
            let store = ctx.stores.first().ok_or_else(|| ArchiveError::Setup("no destination".into()))?;
            Some(read_manifest(store, name, ctx.key.as_deref()).await?.last)
        }
        None => None,
    };
    let bases = match ctx.stores.first() {
        Some(store) => bases(store, &plan.cluster).await,
        None => Vec::new(),
    };
    ctx.report(|r| r.archive(&bases, first_chunks.as_deref().unwrap_or_default(), &gaps));
    Ok(decide(newest, &gaps, &bases))
}

/// Where the gap records `names` say the archive broke off.
async fn recorded_gaps(store: &OpenStore, names: Vec<String>) -> Vec<OpTime> {
    let mut gaps = Vec::new();
    for name in names {
        if let Ok(gap) = read_json::<GapRecord>(store, &name).await {
            gaps.push(gap.after);
        }
    }
    gaps
}

async fn read_json<T: serde::de::DeserializeOwned>(store: &OpenStore, name: &str) -> Result<T, String> {
    let body = super::store::read(store, name).await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

/// The base backups a destination holds: every backup manifest of the cluster that records
/// its dump's oplog end.
pub async fn bases(store: &OpenStore, cluster: &str) -> Vec<Base> {
    let prefix = store.key(cluster);
    let Ok(listing) = store.store.list_with_delimiter(Some(&prefix)).await else { return Vec::new() };
    let mut out = Vec::new();
    for dir in listing.common_prefixes {
        let Some(backup) = dir.filename().map(str::to_string) else { continue };
        if backup.starts_with('_') {
            continue;
        }
        let name = format!("{}/{backup}/{}", cluster, crate::backup::plan::MANIFEST_NAME);
        if let Ok(manifest) = read_json::<crate::backup::plan::Manifest>(store, &name).await
            && let Some(end) = manifest.contents.as_ref().and_then(|c| c.oplog_last)
        {
            out.push(Base { name: backup, oplog_end: end });
        }
    }
    out
}

async fn record_gap(
    plan: &ArchivePlan,
    ctx: &Context,
    member: &str,
    after: OpTime,
    oldest_available: Option<OpTime>,
    reason: Option<String>,
) {
    let gap = GapRecord {
        cluster: plan.cluster.clone(),
        after,
        oldest_available,
        reason,
        member: member.to_string(),
        found_at: chrono::Utc::now(),
    };
    let archive = Archive {
        stores: &ctx.stores,
        cluster: &plan.cluster,
        compression: plan.compression,
        passphrase: ctx.key.as_deref(),
    };
    archive.record_gap(&gap).await;
}

/// The member to read: a hidden secondary, else another secondary, else the primary; never a
/// delayed member, whose oplog runs its delay behind. Every member is asked at once, so one
/// that is down (which fails only when [`MEMBER_TIMEOUT`] runs out) holds nothing up: once a
/// member worth reading has answered, the others get [`PREFERENCE_GRACE`] more to answer
/// better.
pub async fn choose(members: &[Source], password: Option<&str>) -> Result<(mongodb::Client, String), ArchiveError> {
    let mut asked: futures::stream::FuturesUnordered<_> = members
        .iter()
        .enumerate()
        .map(|(position, member)| async move {
            let c = client_waiting(member, password, "mongo-operator-oplog-archiver", MEMBER_TIMEOUT).await.ok()?;
            let hello = c.database("admin").run_command(doc! { "hello": 1 }).await.ok()?;
            Some(((preference(&hello)?, position), c, member.uri.clone()))
        })
        .collect();
    let mut best: Option<((Preference, usize), mongodb::Client, String)> = None;
    loop {
        let answer = match &best {
            None => asked.next().await,
            Some(_) => match tokio::time::timeout(PREFERENCE_GRACE, asked.next()).await {
                Ok(answer) => answer,
                Err(_) => break,
            },
        };
        let Some(answer) = answer else { break };
        let Some((rank, c, uri)) = answer else { continue };
        if rank.0 == Preference::HiddenSecondary {
            return Ok((c, uri));
        }
        if best.as_ref().is_none_or(|b| rank < b.0) {
            best = Some((rank, c, uri));
        }
    }
    best.map(|(_, c, uri)| (c, uri))
        .ok_or_else(|| ArchiveError::Setup("no member answers as a primary or an undelayed secondary".into()))
}

/// How much the archiver would rather read a member, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Preference {
    /// Serves no client, so reading it takes nothing from the application.
    HiddenSecondary,
    Secondary,
    Primary,
}

/// What a member's `hello` says of it as an oplog source; none for a member not to read: one
/// in another state, or a delayed one (`hello` carries `secondaryDelaySecs` only for a
/// delayed member and `hidden` only for a hidden one: `TopologyCoordinator::fillHelloForReplSet`).
fn preference(hello: &Document) -> Option<Preference> {
    let delayed = crate::replset::config::delay_seconds_in(hello) > 0;
    if hello.get_bool("secondary").unwrap_or(false) && !delayed {
        return Some(match hello.get_bool("hidden").unwrap_or(false) {
            true => Preference::HiddenSecondary,
            false => Preference::Secondary,
        });
    }
    hello.get_bool("isWritablePrimary").unwrap_or(false).then_some(Preference::Primary)
}

/// The member's majority-committed position (`hello.lastWrite.majorityOpTime`), which
/// `ReplicationCoordinatorImpl::_makeHelloResponse` fills from its committed snapshot.
async fn majority(c: &mongodb::Client) -> Result<Option<Ts>, mongodb::error::Error> {
    let hello: Document = c.database("admin").run_command(doc! { "hello": 1 }).await?;
    Ok(hello
        .get_document("lastWrite")
        .ok()
        .and_then(|w| w.get_document("majorityOpTime").ok())
        .and_then(|o| o.get_timestamp("ts").ok())
        .map(Ts::from))
}

/// The time the oplog holds, from its first entry to its last, in seconds; none when it
/// cannot be read (the next chunk tries again).
async fn oplog_window(oplog: &mongodb::Collection<RawDocumentBuf>) -> Option<i64> {
    let end = |order: i32| async move {
        let entry = oplog.find_one(doc! {}).sort(doc! { "$natural": order }).await.ok()??;
        entry.get_timestamp("ts").ok().map(|ts| i64::from(ts.time))
    };
    let (first, last) = (end(1).await?, end(-1).await?);
    Some((last - first).max(0))
}

/// Tails the oplog after `after` until an error (a gap, a member gone, a store refusing),
/// cutting a chunk every span.
async fn tail(plan: &ArchivePlan, ctx: &Context, after: OpTime) -> Result<bool, ArchiveError> {
    let (c, member) = choose(&plan.members, ctx.password.as_deref()).await?;
    tracing::info!(%member, %after, "reading the oplog");
    ctx.report(|r| {
        r.member = Some(member.clone());
        r.set(Activity::Archiving, format!("reading the oplog of {member} after {after}"));
    });
    let mongo = |source| ArchiveError::Mongo { member: member.clone(), source };
    let archive = Archive {
        stores: &ctx.stores,
        cluster: &plan.cluster,
        compression: plan.compression,
        passphrase: ctx.key.as_deref(),
    };
    let oplog = c.database("local").collection::<RawDocumentBuf>("oplog.rs");
    let mut slicer = Slicer::new(after);
    let mut every = tokio::time::interval(Duration::from_secs(plan.span_seconds.max(1)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        // The cursor starts at the entry to continue after, which must still be there; a
        // cursor the server closes (an idle one, a position overwritten) is opened again at
        // the newest entry read, which the slicer checks the same way.
        slicer.reopen();
        let from = slicer.resume_point();
        let filter = doc! { "ts": { "$gte": Timestamp { time: from.ts.time, increment: from.ts.increment } } };
        // An empty first batch keeps a tailable cursor open whatever the first query finds.
        let mut cursor = oplog
            .find(filter)
            .cursor_type(CursorType::TailableAwait)
            .max_await_time(AWAIT)
            .batch_size(0)
            .await
            .map_err(mongo)?;
        loop {
            tokio::select! {
                _ = every.tick() => {
                    let Some(committed) = majority(&c).await.map_err(mongo)? else { continue };
                    if let Some(cut) = slicer.cut(committed) {
                        match archive.write(&cut).await {
                            Ok(manifest) => {
                                tracing::info!(chunk = %manifest.object, entries = manifest.entries, repeated = slicer.repeated(), "archived");
                                let window = oplog_window(&oplog).await;
                                ctx.report(|r| {
                                    r.last_written = Some(manifest.written_at);
                                    r.oplog_window_seconds = window.or(r.oplog_window_seconds);
                                });
                                ctx.refresh(&plan.cluster).await;
                            }
                            Err(error) => {
                                slicer.unwind(cut);
                                return Err(error.into());
                            }
                        }
                    }
                }
                next = cursor.next() => match next {
                    Some(Ok(doc)) => match slicer.push(read_entry(&doc)?) {
                        Ok(()) => {}
                        Err(SliceError::Gap { found, .. } | SliceError::Diverged { found, .. }) => {
                            // What was read before the hole and is committed is still archived.
                            if let Some(committed) = majority(&c).await.map_err(mongo)?
                                && let Some(cut) = slicer.cut(committed)
                            {
                                archive.write(&cut).await?;
                            }
                            return Err(ArchiveError::Gap { member: member.clone(), after: slicer.after(), found });
                        }
                        Err(SliceError::Late { archived, found }) => {
                            return Err(ArchiveError::Late { member: member.clone(), archived, found });
                        }
                        Err(other) => return Err(other.into()),
                    },
                    Some(Err(error)) => return Err(mongo(error)),
                    None => {
                        tokio::time::sleep(AWAIT).await;
                        break;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_secondary_is_read_first_and_a_delayed_member_never() {
        // `hello` as `fillHelloForReplSet` answers it on each kind of member.
        let primary = doc! { "isWritablePrimary": true, "secondary": false };
        let secondary = doc! { "isWritablePrimary": false, "secondary": true };
        let hidden = doc! { "isWritablePrimary": false, "secondary": true, "passive": true, "hidden": true };
        let delayed = doc! { "secondary": true, "passive": true, "hidden": true, "secondaryDelaySecs": 3600 };
        let delayed_long = doc! { "secondary": true, "passive": true, "secondaryDelaySecs": 31_622_400_i64 };
        let recovering = doc! { "isWritablePrimary": false, "secondary": false };
        assert_eq!(preference(&hidden), Some(Preference::HiddenSecondary));
        assert_eq!(preference(&secondary), Some(Preference::Secondary));
        assert_eq!(preference(&primary), Some(Preference::Primary));
        assert_eq!((preference(&delayed), preference(&delayed_long), preference(&recovering)), (None, None, None));
        assert!(Preference::HiddenSecondary < Preference::Secondary && Preference::Secondary < Preference::Primary);
    }
}
