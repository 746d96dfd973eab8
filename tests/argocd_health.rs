//! The Argo CD health checks shipped in `deploy/argocd/`, run by the interpreter Argo CD runs
//! them with (gopher-lua, through `e2e/argocd-health`, built by `e2e/tools.sh`) over objects
//! shaped exactly as the operator writes them, and the argocd-cm snippet that installs them,
//! which must carry the same scripts.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::ConfigMap;
use mongo_operator::api::{self, BackupPhase, MongoBackup, MongoBackupStatus, MongoCluster, NetworkPolicyAttachment};
// The status writers the operator itself uses, so the cases hold what it really writes.
use mongo_operator::controller::backup::status as operator_status;
use serde::Deserialize;
use serde_json::{Value, json};

const GROUP: &str = "mongo.operator.rs";
const CLUSTER: &str = "MongoCluster";
const BACKUP: &str = "MongoBackup";
const ATTACHMENT: &str = "NetworkPolicyAttachment";
const T0: &str = "2026-11-23T12:00:00Z";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn argocd_dir() -> PathBuf {
    repo_root().join("deploy/argocd")
}

fn script(kind: &str) -> PathBuf {
    argocd_dir().join("resource_customizations").join(GROUP).join(kind).join("health.lua")
}

/// The argocd-health binary, built by e2e/tools.sh on first use (about 10 s cold).
fn argocd_health() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let tools = repo_root().join("e2e/tools.sh");
        let out = Command::new(&tools).args(["path", "argocd-health"]).output().expect("run e2e/tools.sh path");
        assert!(out.status.success(), "e2e/tools.sh path argocd-health: {}", String::from_utf8_lossy(&out.stderr));
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if !dir.join(".done").exists() {
            let built = Command::new(&tools).arg("argocd-health").status().expect("run e2e/tools.sh argocd-health");
            assert!(built.success(), "e2e/tools.sh argocd-health failed (it needs Go and the Go module proxy)");
        }
        let bin = dir.join("argocd-health");
        assert!(bin.is_file(), "{} is missing after e2e/tools.sh argocd-health", bin.display());
        bin
    })
}

#[derive(Debug, Deserialize, PartialEq)]
struct Health {
    status: String,
    message: String,
}

/// Runs a health script on an object as Argo CD does; Err holds the interpreter's error.
fn health(script: &Path, object: &Value) -> Result<Health, String> {
    let mut child = Command::new(argocd_health())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start argocd-health");
    let input = serde_json::to_vec(object).expect("object serialises");
    // A write error (the tool exited before reading) shows in its exit status and stderr.
    let written = child.stdin.take().expect("stdin is piped").write_all(&input);
    let out = child.wait_with_output().expect("wait for argocd-health");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    written.map_err(|e| format!("writing the object to argocd-health: {e}"))?;
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("unreadable output {:?}: {e}", String::from_utf8_lossy(&out.stdout)))
}

// Objects as the operator writes them (field names and condition shapes from src/api and the
// status code in src/controller).

fn condition(type_: &str, status: bool, reason: &str, message: &str, generation: i64) -> Value {
    json!({
        "type": type_,
        "status": if status { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": T0,
    })
}

fn object(kind: &str, name: &str, generation: i64, spec: Value, status: Option<Value>) -> Value {
    let mut o = json!({
        "apiVersion": "mongo.operator.rs/v1alpha1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": "5f0c8a52-8f7e-4a0e-9d3a-2b1f6c9e7d10",
            "generation": generation,
            "creationTimestamp": "2026-11-20T09:00:00Z",
        },
        "spec": spec,
    });
    if let Some(status) = status {
        o["status"] = status;
    }
    o
}

fn cluster_spec(paused: bool) -> Value {
    json!({ "version": "8.0.4", "members": 3, "paused": paused })
}

/// One condition as (status, reason, message).
type Cond<'a> = (bool, &'a str, &'a str);

/// A MongoCluster status as status::build writes it: Ready, Progressing, Degraded (False with
/// reason Healthy when nothing is wrong) and NetworkIsolated.
fn cluster_status(
    generation: i64,
    phase: &str,
    ready: Cond<'_>,
    progressing: Cond<'_>,
    degraded: Option<(&str, &str)>,
    ready_members: i32,
) -> Value {
    let members: Vec<Value> = (0..3)
        .map(|i| {
            let up = i < ready_members;
            json!({
                "name": format!("orders-{i}"),
                "state": if i == 0 { "PRIMARY" } else if up { "SECONDARY" } else { "(not in set)" },
                "healthy": up,
                "voting": up,
            })
        })
        .collect();
    let degraded = match degraded {
        Some((reason, message)) => condition("Degraded", true, reason, message, generation),
        None => condition("Degraded", false, "Healthy", "nothing needs attention", generation),
    };
    json!({
        "phase": phase,
        "conditions": [
            condition("Ready", ready.0, ready.1, ready.2, generation),
            condition("Progressing", progressing.0, progressing.1, progressing.2, generation),
            degraded,
            condition(
                "NetworkIsolated",
                true,
                "PoliciesApplied",
                "NetworkPolicies orders-isolate-members and orders-isolate-jobs refuse every connection that no rule or NetworkPolicyAttachment admits",
                generation,
            ),
        ],
        "observedGeneration": generation,
        "members": members,
        "primary": "orders-0",
        "readyMembers": ready_members,
        "version": "8.0.4",
        "featureCompatibilityVersion": "8.0",
        "connection": { "host": "orders.shop.svc.cluster.local", "port": 27017, "updated": T0 },
    })
}

fn cluster(generation: i64, paused: bool, status: Option<Value>) -> Value {
    object(CLUSTER, "orders", generation, cluster_spec(paused), status)
}

fn backup_spec(schedule: bool, suspend: bool) -> Value {
    let mut spec = json!({
        "clusterRef": { "name": "orders" },
        "destinations": [
            { "name": "scw", "s3": { "bucket": "orders-backups", "region": "fr-par", "endpoint": "https://s3.fr-par.scw.cloud", "credentialsSecretRef": { "name": "scw-keys" } } },
            { "name": "ovh", "s3": { "bucket": "orders-backups", "region": "gra", "endpoint": "https://s3.gra.io.cloud.ovh.net", "credentialsSecretRef": { "name": "ovh-keys" } } },
        ],
    });
    if schedule {
        spec["schedule"] = json!({ "cron": "0 2 * * *", "timeZone": "Europe/Paris" });
        spec["retention"] = json!({ "keepLast": 14 });
        spec["suspend"] = json!(suspend);
    }
    spec
}

/// Phase and conditions as backup::status::set_phase writes them.
/// A MongoBackup's status as the operator writes it.
fn backup_status(generation: i64, phase: &str, reason: &str, message: &str) -> Value {
    let mut status = MongoBackupStatus::default();
    let phase: BackupPhase = serde_json::from_value(json!(phase)).expect("a phase");
    operator_status::set_phase(&mut status, phase, reason, message, Some(generation));
    serde_json::to_value(status).expect("status")
}

/// A schedule's status, as the operator writes it, when its newest finished backup failed.
fn failing_schedule_status(generation: i64, message: &str) -> Value {
    let mut status = MongoBackupStatus::default();
    operator_status::set_schedule_failing(&mut status, operator_status::LAST_BACKUP_FAILED, message, Some(generation));
    serde_json::to_value(status).expect("status")
}

/// `base` with the fields of `extra` set, or removed where `extra` has null.
fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if v.is_null() {
                b.remove(k);
            } else {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    base
}

fn one_off(status: Option<Value>) -> Value {
    object(BACKUP, "orders-before-upgrade", 1, backup_spec(false, false), status)
}

fn schedule(generation: i64, suspend: bool, status: Option<Value>) -> Value {
    object(BACKUP, "orders-nightly", generation, backup_spec(true, suspend), status)
}

fn attachment(generation: i64, status: Option<Value>) -> Value {
    let spec = json!({
        "clusterRef": { "name": "orders" },
        "from": [{ "podSelector": { "matchLabels": { "app": "shop" } } }],
        "ports": ["mongodb"],
    });
    object(ATTACHMENT, "shop", generation, spec, status)
}

/// An attachment status as its reconcile writes it: Ready, and Degraded (False with reason
/// Healthy when every peer selects something).
fn attachment_status(generation: i64, ready: Cond<'_>, degraded: Option<(&str, &str)>, matching: i32) -> Value {
    let degraded = match degraded {
        Some((reason, message)) => condition("Degraded", true, reason, message, generation),
        None => condition("Degraded", false, "Healthy", "every peer selects something", generation),
    };
    let mut status = json!({
        "conditions": [condition("Ready", ready.0, ready.1, ready.2, generation), degraded],
        "observedGeneration": generation,
        "peers": [{ "description": "pods app=shop", "matchingPods": matching }],
    });
    if ready.0 {
        status["networkPolicyName"] = json!("orders-shop-access");
    }
    status
}

struct Case {
    name: &'static str,
    kind: &'static str,
    object: Value,
    status: &'static str,
    /// A part of the message that says why.
    message: &'static str,
}

fn cases() -> Vec<Case> {
    let restore_failed = "Job orders-restore failed: BackoffLimitExceeded (the restore Pod exited with 1: checksum mismatch). Fix the cause, then delete Job orders-restore to retry";
    let unreachable =
        "version 8.0.4 cannot be reached from 6.0.15: MongoDB upgrades one major release at a time (7.0 first)";
    let missing_password =
        "user app@admin: Secret app-password does not exist; the user is left as it is until it can be read";
    let succeeded = "1.2 GiB stored in 2 destination(s), sha256:9f2c4e";
    vec![
        // MongoCluster
        Case {
            name: "a new cluster the operator has not seen yet",
            kind: CLUSTER,
            object: cluster(1, false, None),
            status: "Progressing",
            message: "waiting for the operator",
        },
        Case {
            name: "a Ready status of an older generation",
            kind: CLUSTER,
            object: cluster(
                3,
                false,
                Some(cluster_status(
                    2,
                    "Ready",
                    (true, "Ready", "3 of 3 members ready; primary orders-0"),
                    (false, "InSync", "the replica set matches the spec"),
                    None,
                    3,
                )),
            ),
            status: "Progressing",
            message: "observe generation 3",
        },
        Case {
            name: "a cluster that is Ready",
            kind: CLUSTER,
            object: cluster(
                2,
                false,
                Some(cluster_status(
                    2,
                    "Ready",
                    (true, "Ready", "3 of 3 members ready; primary orders-0"),
                    (false, "InSync", "the replica set matches the spec"),
                    None,
                    3,
                )),
            ),
            status: "Healthy",
            message: "Ready: 3 of 3 members ready",
        },
        Case {
            name: "a cluster being created",
            kind: CLUSTER,
            object: cluster(
                1,
                false,
                Some(with(
                    cluster_status(
                        1,
                        "Creating",
                        (false, "MembersNotReady", "waiting for mongod to answer on orders-1, orders-2"),
                        (true, "MembersNotReady", "waiting for mongod to answer on orders-1, orders-2"),
                        None,
                        0,
                    ),
                    json!({ "members": null, "primary": null }),
                )),
            ),
            status: "Progressing",
            message: "MembersNotReady: waiting for mongod",
        },
        Case {
            name: "an election during a rolling restart (Degraded NoPrimary while Progressing)",
            kind: CLUSTER,
            object: cluster(
                5,
                false,
                Some(cluster_status(
                    5,
                    "Updating",
                    (false, "NoPrimary", "waiting for MongoDB to elect a primary"),
                    (true, "NoPrimary", "waiting for MongoDB to elect a primary"),
                    Some(("NoPrimary", "the replica set has no primary")),
                    2,
                )),
            ),
            status: "Progressing",
            message: "elect a primary",
        },
        Case {
            name: "a paused cluster",
            kind: CLUSTER,
            object: cluster(
                4,
                true,
                Some(cluster_status(
                    4,
                    "Paused",
                    (false, "Paused", "spec.paused is true: the operator changes nothing"),
                    (false, "Paused", "spec.paused is true"),
                    None,
                    3,
                )),
            ),
            status: "Suspended",
            message: "spec.paused is true",
        },
        Case {
            name: "a paused cluster with a member down says so",
            kind: CLUSTER,
            object: cluster(
                4,
                true,
                Some(cluster_status(
                    4,
                    "Paused",
                    (false, "Paused", "spec.paused is true: the operator changes nothing"),
                    (false, "Paused", "spec.paused is true"),
                    Some(("MembersUnhealthy", "2 of 3 members are healthy")),
                    2,
                )),
            ),
            status: "Suspended",
            message: "Degraded: MembersUnhealthy: 2 of 3 members are healthy",
        },
        Case {
            name: "a restore that failed",
            kind: CLUSTER,
            object: cluster(
                1,
                false,
                Some(with(
                    cluster_status(
                        1,
                        "Degraded",
                        (false, "RestoreFailed", restore_failed),
                        (false, "Blocked", restore_failed),
                        Some(("RestoreFailed", restore_failed)),
                        3,
                    ),
                    json!({ "restore": {
                        "phase": "Failed",
                        "source": "orders-202611230200",
                        "jobName": "orders-restore",
                        "startTime": T0,
                        "completionTime": T0,
                        "message": restore_failed,
                    } }),
                )),
            ),
            status: "Degraded",
            message: "RestoreFailed: Job orders-restore failed",
        },
        Case {
            name: "a failed restore after the primary was lost (the conditions no longer say RestoreFailed)",
            kind: CLUSTER,
            object: cluster(
                1,
                false,
                Some(with(
                    cluster_status(
                        1,
                        "Updating",
                        (false, "NoPrimary", "waiting for MongoDB to elect a primary"),
                        (true, "NoPrimary", "waiting for MongoDB to elect a primary"),
                        Some(("NoPrimary", "the replica set has no primary")),
                        1,
                    ),
                    json!({ "restore": {
                        "phase": "Failed",
                        "source": "orders-202611230200",
                        "jobName": "orders-restore",
                        "startTime": T0,
                        "completionTime": T0,
                        "message": restore_failed,
                    } }),
                )),
            ),
            status: "Degraded",
            message: "RestoreFailed: Job orders-restore failed",
        },
        Case {
            name: "a restore that runs",
            kind: CLUSTER,
            object: cluster(
                1,
                false,
                Some(with(
                    cluster_status(
                        1,
                        "Updating",
                        (false, "Restoring", "Job orders-restore is restoring orders-202611230200"),
                        (true, "Restoring", "Job orders-restore is restoring orders-202611230200"),
                        None,
                        3,
                    ),
                    json!({ "restore": {
                        "phase": "Running",
                        "source": "orders-202611230200",
                        "jobName": "orders-restore",
                        "startTime": T0,
                        "message": "Job orders-restore is restoring orders-202611230200",
                    } }),
                )),
            ),
            status: "Progressing",
            message: "Restoring: Job orders-restore",
        },
        Case {
            name: "a member down with nothing left to do",
            kind: CLUSTER,
            object: cluster(
                2,
                false,
                Some(cluster_status(
                    2,
                    "Degraded",
                    (false, "MembersNotReady", "2 of 3 members ready"),
                    (false, "InSync", "the replica set matches the spec"),
                    Some(("MembersUnhealthy", "2 of 3 members are healthy")),
                    2,
                )),
            ),
            status: "Degraded",
            message: "MembersUnhealthy: 2 of 3 members are healthy",
        },
        Case {
            name: "a version that cannot be reached, before the set is observed",
            kind: CLUSTER,
            object: cluster(
                2,
                false,
                Some(with(
                    cluster_status(
                        2,
                        "Failed",
                        (false, "VersionUnreachable", unreachable),
                        (false, "Blocked", unreachable),
                        Some(("VersionUnreachable", unreachable)),
                        0,
                    ),
                    json!({ "version": "6.0.15", "featureCompatibilityVersion": "6.0", "members": null, "primary": null }),
                )),
            ),
            status: "Degraded",
            message: "VersionUnreachable: version 8.0.4 cannot be reached",
        },
        Case {
            name: "Ready with a user's password Secret missing: healthy, and the message says so",
            kind: CLUSTER,
            object: cluster(
                2,
                false,
                Some(cluster_status(
                    2,
                    "Ready",
                    (true, "Ready", "3 of 3 members ready; primary orders-0"),
                    (false, "InSync", "the replica set matches the spec"),
                    Some(("PasswordSecretMissing", missing_password)),
                    3,
                )),
            ),
            status: "Healthy",
            message: "Degraded: PasswordSecretMissing: user app@admin",
        },
        // MongoBackup, one-off
        Case {
            name: "a backup the operator has not seen yet",
            kind: BACKUP,
            object: one_off(None),
            status: "Progressing",
            message: "waiting for the operator to start the backup",
        },
        Case {
            name: "a backup waiting for a cluster that does not exist",
            kind: BACKUP,
            object: one_off(Some(backup_status(
                1,
                "Pending",
                "ClusterNotFound",
                "MongoCluster orders does not exist in shop",
            ))),
            status: "Progressing",
            message: "ClusterNotFound: MongoCluster orders does not exist",
        },
        Case {
            name: "a backup being taken",
            kind: BACKUP,
            object: one_off(Some(with(
                backup_status(
                    1,
                    "Running",
                    "Running",
                    "backup Job orders-before-upgrade-backup started for MongoCluster orders",
                ),
                json!({ "startTime": T0 }),
            ))),
            status: "Progressing",
            message: "Running: backup Job",
        },
        Case {
            name: "a backup that succeeded",
            kind: BACKUP,
            object: one_off(Some(with(
                backup_status(1, "Succeeded", "BackupSucceeded", succeeded),
                json!({
                    "startTime": T0,
                    "completionTime": "2026-11-23T12:04:10Z",
                    "sizeBytes": 1_288_490_188_i64,
                    "sizeHuman": "1.2 GiB",
                    "checksum": "sha256:9f2c4e",
                    "copies": [
                        { "destination": "scw", "url": "s3://orders-backups/orders/orders-before-upgrade/manifest.json", "path": "orders/orders-before-upgrade/manifest.json" },
                        { "destination": "ovh", "url": "s3://orders-backups/orders/orders-before-upgrade/manifest.json", "path": "orders/orders-before-upgrade/manifest.json" },
                    ],
                    "mongodbVersion": "8.0.4",
                }),
            ))),
            status: "Healthy",
            message: "stored in 2 destination(s)",
        },
        Case {
            name: "a backup that failed",
            kind: BACKUP,
            object: one_off(Some(with(
                backup_status(1, "Failed", "BackupFailed", "mongodump exited with 1: connection refused"),
                json!({
                    "startTime": T0,
                    "completionTime": "2026-11-23T12:00:30Z",
                    "error": "mongodump exited with 1: connection refused",
                }),
            ))),
            status: "Degraded",
            message: "BackupFailed: mongodump exited with 1",
        },
        // MongoBackup with spec.schedule
        Case {
            name: "a schedule the operator has not seen yet",
            kind: BACKUP,
            object: schedule(1, false, None),
            status: "Progressing",
            message: "take up the schedule",
        },
        Case {
            name: "a schedule taking backups",
            kind: BACKUP,
            object: schedule(
                1,
                false,
                Some(with(
                    backup_status(1, "Scheduled", "Scheduled", "next backup at 2026-11-24 01:00:00 UTC"),
                    json!({
                        "lastScheduleTime": "2026-11-23T01:00:00Z",
                        "nextScheduleTime": "2026-11-24T01:00:00Z",
                        "lastSuccessfulBackup": "orders-nightly-202611230100",
                        "lastSuccessfulTime": "2026-11-23T01:04:12Z",
                    }),
                )),
            ),
            status: "Healthy",
            message: "last successful backup orders-nightly-202611230100",
        },
        Case {
            name: "a schedule whose newest backup failed",
            kind: BACKUP,
            object: schedule(
                1,
                false,
                Some(with(
                    failing_schedule_status(
                        1,
                        "the newest backup, orders-nightly-202611230100, failed: destination ovh: access denied",
                    ),
                    json!({ "lastSuccessfulBackup": "orders-nightly-202611220100" }),
                )),
            ),
            status: "Degraded",
            message: "LastBackupFailed: the newest backup, orders-nightly-202611230100, failed",
        },
        Case {
            name: "a suspended schedule",
            kind: BACKUP,
            object: schedule(
                2,
                true,
                Some(with(
                    backup_status(2, "Suspended", "Suspended", "suspended: no new backups start"),
                    json!({ "lastScheduleTime": "2026-11-23T01:00:00Z" }),
                )),
            ),
            status: "Suspended",
            message: "spec.suspend is true",
        },
        Case {
            name: "a schedule suspended a moment ago, not yet observed",
            kind: BACKUP,
            object: schedule(
                3,
                true,
                Some(backup_status(2, "Scheduled", "Scheduled", "next backup at 2026-11-24 01:00:00 UTC")),
            ),
            status: "Progressing",
            message: "observe generation 3 (status is of generation 2)",
        },
        Case {
            name: "a schedule whose cron expression cannot be read",
            kind: BACKUP,
            object: schedule(
                1,
                false,
                Some(with(
                    backup_status(
                        1,
                        "Failed",
                        "InvalidSchedule",
                        "schedule.cron \"0 25 * * *\" is not a valid cron expression: hour out of range",
                    ),
                    json!({ "error": "schedule.cron \"0 25 * * *\" is not a valid cron expression: hour out of range" }),
                )),
            ),
            status: "Degraded",
            message: "InvalidSchedule: schedule.cron",
        },
        Case {
            name: "a schedule that never fires",
            kind: BACKUP,
            object: schedule(
                1,
                false,
                Some(backup_status(1, "Scheduled", "NoFutureRun", "the schedule has no future run")),
            ),
            status: "Degraded",
            message: "NoFutureRun",
        },
        // NetworkPolicyAttachment
        Case {
            name: "an attachment the operator has not seen yet",
            kind: ATTACHMENT,
            object: attachment(1, None),
            status: "Progressing",
            message: "waiting for the operator",
        },
        Case {
            name: "an attachment to a cluster that does not exist",
            kind: ATTACHMENT,
            object: attachment(
                1,
                Some(attachment_status(
                    1,
                    (false, "ClusterNotFound", "MongoCluster orders does not exist in shop; no access is granted"),
                    Some(("ClusterNotFound", "MongoCluster orders does not exist in shop; no access is granted")),
                    2,
                )),
            ),
            status: "Degraded",
            message: "ClusterNotFound: MongoCluster orders does not exist",
        },
        Case {
            name: "an attachment in effect",
            kind: ATTACHMENT,
            object: attachment(
                1,
                Some(attachment_status(
                    1,
                    (
                        true,
                        "PolicyApplied",
                        "NetworkPolicy orders-shop-access lets 1 peer(s) reach MongoCluster orders",
                    ),
                    None,
                    2,
                )),
            ),
            status: "Healthy",
            message: "lets 1 peer(s) reach MongoCluster orders",
        },
        Case {
            name: "an attachment in effect whose peer selects no Pod yet",
            kind: ATTACHMENT,
            object: attachment(
                1,
                Some(attachment_status(
                    1,
                    (
                        true,
                        "PolicyApplied",
                        "NetworkPolicy orders-shop-access lets 1 peer(s) reach MongoCluster orders",
                    ),
                    Some(("SelectsNothing", "from[0] (pods app=shop) selects no Pod now")),
                    0,
                )),
            ),
            status: "Healthy",
            message: "warning: SelectsNothing: from[0] (pods app=shop) selects no Pod now",
        },
        Case {
            name: "an attachment changed since its status was written",
            kind: ATTACHMENT,
            object: attachment(
                2,
                Some(attachment_status(
                    1,
                    (
                        true,
                        "PolicyApplied",
                        "NetworkPolicy orders-shop-access lets 1 peer(s) reach MongoCluster orders",
                    ),
                    None,
                    2,
                )),
            ),
            status: "Progressing",
            message: "observe generation 2",
        },
    ]
}

#[test]
fn health_of_every_case_is_what_argo_cd_should_show() {
    let cases = cases();
    assert!(cases.len() >= 25, "the table lost cases: {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        match health(&script(case.kind), &case.object) {
            Ok(got) if got.status == case.status && got.message.contains(case.message) => {}
            Ok(got) => failures.push(format!(
                "{} ({}): expected {} with a message containing {:?}, got {} {:?}",
                case.name, case.kind, case.status, case.message, got.status, got.message
            )),
            Err(error) => failures.push(format!("{} ({}): the script failed: {error}", case.name, case.kind)),
        }
    }
    assert!(failures.is_empty(), "{} of {} cases are wrong:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// Keys of `original` (recursively) that are missing or different in `round_tripped`.
fn lost(original: &Value, round_tripped: &Value, path: &str, out: &mut Vec<String>) {
    match (original, round_tripped) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) => lost(v, w, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k} is not a field of the type")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                lost(v, w, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {a} became {b}")),
    }
}

/// The cases are only worth something if their objects are what the operator writes: each one
/// must read into the Rust type of its kind and come back with nothing lost or changed (so no
/// misspelled or wrongly cased field, no value the type refuses).
#[test]
fn every_case_is_an_object_the_operator_can_write() {
    let mut problems = Vec::new();
    for case in cases() {
        let typed = match case.kind {
            CLUSTER => serde_json::from_value::<MongoCluster>(case.object.clone()).and_then(serde_json::to_value),
            BACKUP => serde_json::from_value::<MongoBackup>(case.object.clone()).and_then(serde_json::to_value),
            ATTACHMENT => {
                serde_json::from_value::<NetworkPolicyAttachment>(case.object.clone()).and_then(serde_json::to_value)
            }
            other => panic!("no type for kind {other}"),
        };
        match typed {
            Ok(back) => {
                let mut out = Vec::new();
                lost(&case.object, &back, "", &mut out);
                problems.extend(out.into_iter().map(|p| format!("{}: {p}", case.name)));
            }
            Err(e) => problems.push(format!("{}: does not read as a {}: {e}", case.name, case.kind)),
        }
    }
    assert!(problems.is_empty(), "case objects that the operator could not have written:\n{}", problems.join("\n"));
}

/// The harness itself can tell a wrong script from a right one: it runs with the libraries
/// Argo CD opens for argocd-cm scripts only, and reports what Argo CD reports.
#[test]
fn the_harness_behaves_as_argo_cd() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let write = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).expect("write a test script");
        path
    };
    let obj = json!({ "metadata": { "generation": 7 }, "status": { "conditions": [{ "type": "Ready" }, { "type": "Other" }] } });

    let reads = write(
        "reads.lua",
        "return { status = 'Healthy', message = tostring(obj.metadata.generation) .. ' ' .. #obj.status.conditions .. ' ' .. obj.status.conditions[2].type }",
    );
    assert_eq!(
        health(&reads, &obj),
        Ok(Health { status: "Healthy".into(), message: "7 2 Other".into() }),
        "integers read as numbers, arrays as tables indexed from 1"
    );

    let unknown = write("unknown.lua", "return { status = 'Fine', message = 'x' }");
    assert_eq!(
        health(&unknown, &obj),
        Ok(Health { status: "Unknown".into(), message: "Lua returned an invalid health status".into() })
    );

    let string_lib = write("string.lua", "return { status = string.lower('HEALTHY') }");
    let error = health(&string_lib, &obj).expect_err("the string library is not open in argocd-cm scripts");
    assert!(error.contains("lower"), "{error}");

    let not_a_table = write("number.lua", "return 1");
    let error = health(&not_a_table, &obj).expect_err("a script must return a table");
    assert!(error.contains("expect table output"), "{error}");
}

/// argocd-cm-patch.yaml carries exactly the scripts under resource_customizations/, one key per
/// kind the operator serves.
#[test]
fn argocd_cm_patch_carries_the_scripts() {
    let path = argocd_dir().join("argocd-cm-patch.yaml");
    let text = std::fs::read_to_string(&path).expect("deploy/argocd/argocd-cm-patch.yaml exists");
    let cm: ConfigMap = serde_yaml::from_str(&text).expect("argocd-cm-patch.yaml is a ConfigMap");
    assert_eq!(cm.metadata.name.as_deref(), Some("argocd-cm"));
    let data = cm.data.unwrap_or_default();

    let kinds: Vec<String> = api::crds()
        .iter()
        .inspect(|crd| assert_eq!(crd.spec.group, GROUP))
        .map(|crd| crd.spec.names.kind.clone())
        .collect();
    let expected: BTreeSet<String> =
        kinds.iter().map(|k| format!("resource.customizations.health.{GROUP}_{k}")).collect();
    let present: BTreeSet<String> = data.keys().cloned().collect();
    assert_eq!(present, expected, "argocd-cm-patch.yaml must have one health key per kind");

    let mut stale = Vec::new();
    for kind in &kinds {
        let file = script(kind);
        let lua = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{} has no health check at {}: {e}", kind, file.display()));
        if data.get(&format!("resource.customizations.health.{GROUP}_{kind}")) != Some(&lua) {
            stale.push(kind.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "argocd-cm-patch.yaml differs from the health.lua of {stale:?}: run deploy/argocd/render-cm-patch.sh"
    );
}
