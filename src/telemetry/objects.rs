//! Metrics about what only the operator knows, read from the controllers' caches at each
//! scrape: clusters by phase, each cluster's phase and members by state, and each backup schedule's newest
//! successful backup (when, how large, how long) and whether its newest backup failed.
//! Label sets are bounded by the number of clusters and schedules, never by backups or Pods,
//! and a series goes away with its object, with nothing to clean up.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

use crate::api::{BackupPhase, MongoBackup, MongoCluster, VerificationPhase};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    namespace: String,
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    namespace: String,
    cluster: String,
    /// `members` (the members' certificate) or `ca` (the CA that signed it).
    certificate: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterPhaseLabels {
    namespace: String,
    cluster: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MemberStateLabels {
    namespace: String,
    cluster: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScheduleLabels {
    namespace: String,
    /// The MongoCluster the schedule backs up, so alerts name it.
    cluster: String,
    schedule: String,
}

/// The caches the gauges are read from, one per watched namespace and kind.
#[derive(Debug, Default)]
pub struct ObjectGauges {
    pub(super) clusters: Mutex<Vec<Store<MongoCluster>>>,
    pub(super) backups: Mutex<Vec<Store<MongoBackup>>>,
}

/// One gauge family: its name, help and (labels, value) rows.
struct Rows<L> {
    name: &'static str,
    help: &'static str,
    rows: Vec<(L, f64)>,
}

impl<L: EncodeLabelSet> Rows<L> {
    fn new(name: &'static str, help: &'static str) -> Self {
        Rows { name, help, rows: Vec::new() }
    }

    /// Integer gauges, for counts written as the operator always wrote them (`2`, not `2.0`).
    fn encode_as_integers(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let probe = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(self.name, self.help, None, probe.metric_type())?;
        for (labels, value) in &self.rows {
            ConstGauge::new(*value as i64).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let probe = ConstGauge::new(0.0f64);
        let mut family = encoder.encode_descriptor(self.name, self.help, None, probe.metric_type())?;
        for (labels, value) in &self.rows {
            ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

/// The longest gap between consecutive runs of a schedule over its next eight runs, in
/// seconds: what "no backup for twice the schedule" is measured against (a weekday-only
/// schedule's weekend gap, not its nightly one). None when the cron does not parse.
fn longest_gap(spec: &crate::api::ScheduleSpec) -> Option<f64> {
    let schedule = crate::controller::backup::schedule::Schedule::parse(spec).ok()?;
    let mut at = schedule.next_after(chrono::Utc::now())?;
    let mut longest = 0.0f64;
    for _ in 0..8 {
        let next = schedule.next_after(at)?;
        longest = longest.max((next - at).num_seconds() as f64);
        at = next;
    }
    Some(longest)
}

fn seconds(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> f64 {
    t.0.as_millisecond() as f64 / 1000.0
}

impl ObjectGauges {
    fn clusters(&self) -> Vec<std::sync::Arc<MongoCluster>> {
        self.clusters.lock().map(|s| s.iter().flat_map(Store::state).collect()).unwrap_or_default()
    }

    fn backups(&self) -> Vec<std::sync::Arc<MongoBackup>> {
        self.backups.lock().map(|s| s.iter().flat_map(Store::state).collect()).unwrap_or_default()
    }
}

impl Collector for ObjectGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut by_phase: BTreeMap<String, f64> = BTreeMap::new();
        let mut phase = Rows::new("cluster_phase", "1 for each MongoCluster's current phase");
        let mut members =
            Rows::new("cluster_members", "A MongoCluster's members by replica-set state, as last observed");
        let mut ready =
            Rows::new("cluster_ready_members", "A MongoCluster's PRIMARY and SECONDARY members with ready Pods");
        let mut expiry = Rows::new(
            "certificate_expiry_timestamp_seconds",
            "When a MongoCluster's TLS certificate expires (Unix time): the members' certificate and its CA",
        );
        for c in self.clusters() {
            let (namespace, cluster) = (c.namespace().unwrap_or_default(), c.name_any());
            let status = c.status.clone().unwrap_or_default();
            let p = status.phase.map_or_else(|| "Unknown".to_string(), |p| format!("{p:?}"));
            *by_phase.entry(p.clone()).or_default() += 1.0;
            phase
                .rows
                .push((ClusterPhaseLabels { namespace: namespace.clone(), cluster: cluster.clone(), phase: p }, 1.0));
            let mut by_state: BTreeMap<String, f64> = BTreeMap::new();
            for m in &status.members {
                *by_state.entry(m.state.clone()).or_default() += 1.0;
            }
            for (state, n) in by_state {
                members
                    .rows
                    .push((MemberStateLabels { namespace: namespace.clone(), cluster: cluster.clone(), state }, n));
            }
            if let Some(tls) = &status.tls {
                for (certificate, at) in [("members", &tls.certificate_not_after), ("ca", &tls.ca_not_after)] {
                    if let Some(at) = at {
                        let labels = CertificateLabels {
                            namespace: namespace.clone(),
                            cluster: cluster.clone(),
                            certificate: certificate.into(),
                        };
                        expiry.rows.push((labels, seconds(at)));
                    }
                }
            }
            ready.rows.push((ClusterLabels { namespace, cluster }, f64::from(status.ready_members)));
        }

        let mut last_success = Rows::new(
            "backup_last_success_timestamp_seconds",
            "When a backup schedule's newest successful backup finished (Unix time)",
        );
        let mut last_size =
            Rows::new("backup_last_success_size_bytes", "Stored size of a schedule's newest successful backup");
        let mut last_duration =
            Rows::new("backup_last_success_duration_seconds", "How long a schedule's newest successful backup took");
        let mut last_failed =
            Rows::new("backup_last_failed", "1 while a backup schedule's newest finished backup is a failure");
        let mut interval = Rows::new(
            "backup_schedule_interval_seconds",
            "The longest time between two runs of a backup schedule (over its next eight runs)",
        );
        let mut verified_at = Rows::new(
            "backup_verification_last_success_timestamp_seconds",
            "When a backup schedule's newest verified backup passed its verification (Unix time)",
        );
        let mut verification_failed = Rows::new(
            "backup_verification_last_failed",
            "1 while the newest verification of a backup schedule's backups failed",
        );
        let mut pitr_latest = Rows::new(
            "pitr_latest_restorable_timestamp_seconds",
            "The last second a restore to a point in time can reach from a schedule's archived oplog (Unix time)",
        );
        let mut pitr_span = Rows::new(
            "pitr_span_seconds",
            "How often a schedule's oplog archiver writes a chunk (spec.pitr.spanMinutes)",
        );
        let backups = self.backups();
        let by_name: HashMap<(Option<String>, String), &MongoBackup> =
            backups.iter().map(|b| ((b.namespace(), b.name_any()), &**b)).collect();
        // Each schedule's newest ended verification, in one pass over the backups (not one
        // pass per schedule): (namespace, schedule) -> (when, phase).
        let mut newest_verification: HashMap<(Option<String>, String), (f64, VerificationPhase)> = HashMap::new();
        for b in &backups {
            let Some(schedule) = b.labels().get(crate::controller::backup::SCHEDULE_LABEL) else { continue };
            let Some((at, phase)) = b.status.as_ref().and_then(|s| {
                let v = s.verification.as_ref()?;
                Some((seconds(v.completion_time.as_ref()?), v.phase))
            }) else {
                continue;
            };
            let entry = newest_verification.entry((b.namespace(), schedule.clone())).or_insert((at, phase));
            if at > entry.0 {
                *entry = (at, phase);
            }
        }
        for schedule in backups.iter().filter(|b| b.spec.schedule.is_some()) {
            let labels = ScheduleLabels {
                namespace: schedule.namespace().unwrap_or_default(),
                cluster: schedule.spec.cluster_ref.name.clone(),
                schedule: schedule.name_any(),
            };
            if let Some(gap) = schedule.spec.schedule.as_ref().and_then(longest_gap) {
                interval.rows.push((labels.clone(), gap));
            }
            let status = schedule.status.clone().unwrap_or_default();
            if let Some(pitr) = &schedule.spec.pitr {
                pitr_span.rows.push((labels.clone(), f64::from(pitr.span_minutes) * 60.0));
                if let Some(latest) = status.pitr.as_ref().and_then(|p| p.latest_restorable_time.as_ref()) {
                    pitr_latest.rows.push((labels.clone(), seconds(latest)));
                }
            }
            let failing = status
                .conditions
                .iter()
                .any(|c| c.status == "True" && c.reason == crate::controller::backup::status::LAST_BACKUP_FAILED);
            last_failed.rows.push((labels.clone(), if failing { 1.0 } else { 0.0 }));
            let newest = status
                .last_successful_backup
                .as_ref()
                .and_then(|name| by_name.get(&(schedule.namespace(), name.clone())));
            if let Some(time) = &status.last_successful_time {
                last_success.rows.push((labels.clone(), seconds(time)));
            }
            if schedule.spec.verification.is_some() {
                if let Some(time) = &status.last_verified_time {
                    verified_at.rows.push((labels.clone(), seconds(time)));
                }
                let failed = newest_verification
                    .get(&(schedule.namespace(), schedule.name_any()))
                    .is_some_and(|(_, phase)| *phase == VerificationPhase::Failed);
                verification_failed.rows.push((labels.clone(), if failed { 1.0 } else { 0.0 }));
            }
            let Some(child) = newest.and_then(|b| b.status.clone()).filter(|s| s.phase == Some(BackupPhase::Succeeded))
            else {
                continue;
            };
            if let Some(size) = child.size_bytes {
                last_size.rows.push((labels.clone(), size as f64));
            }
            if let (Some(start), Some(end)) = (&child.start_time, &child.completion_time) {
                last_duration.rows.push((labels, (seconds(end) - seconds(start)).max(0.0)));
            }
        }
        // Both series families are the same clusters: `clusters{phase}` for an alert on how
        // many, `cluster_phase` for which.
        let clusters = Rows {
            name: "clusters",
            help: "MongoClusters by phase",
            rows: by_phase.into_iter().map(|(phase, n)| (PhaseLabel { phase }, n)).collect(),
        };
        clusters.encode_as_integers(&mut encoder)?;
        phase.encode(&mut encoder)?;
        members.encode(&mut encoder)?;
        ready.encode(&mut encoder)?;
        expiry.encode(&mut encoder)?;
        last_success.encode(&mut encoder)?;
        last_size.encode(&mut encoder)?;
        last_duration.encode(&mut encoder)?;
        last_failed.encode(&mut encoder)?;
        verified_at.encode(&mut encoder)?;
        verification_failed.encode(&mut encoder)?;
        pitr_latest.encode(&mut encoder)?;
        pitr_span.encode(&mut encoder)?;
        interval.encode(&mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::{reflector, watcher};

    use crate::telemetry::Metrics;

    #[test]
    fn clusters_and_schedules_are_read_from_the_caches() {
        let m = Metrics::new();
        let (clusters, mut cluster_writer) = reflector::store();
        let (backups, mut backup_writer) = reflector::store();
        m.count_clusters_of(clusters);
        m.watch_backups_of(backups);
        let cluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoCluster",
            "metadata": {"name": "orders", "namespace": "shop"},
            "spec": {"version": "8.0.4"},
            "status": {"phase": "Degraded", "readyMembers": 2, "members": [
                {"name": "orders-0", "state": "PRIMARY", "healthy": true},
                {"name": "orders-1", "state": "SECONDARY", "healthy": true},
                {"name": "orders-2", "state": "(not reachable/healthy)", "healthy": false},
            ], "tls": {"mode": "Require", "certificateNotAfter": "2027-03-04T00:00:00Z",
                "caNotAfter": "2029-06-01T00:00:00Z"}},
        }))
        .expect("cluster");
        cluster_writer.apply_watcher_event(&watcher::Event::Apply(cluster));
        let backup = |value: serde_json::Value| serde_json::from_value(value).expect("backup");
        let destinations =
            serde_json::json!([{"name": "s3", "s3": {"bucket": "b", "credentialsSecretRef": {"name": "k"}}}]);
        for b in [
            backup(serde_json::json!({
                "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoBackup",
                "metadata": {"name": "nightly", "namespace": "shop"},
                "spec": {"clusterRef": {"name": "orders"}, "schedule": {"cron": "0 2 * * *"}, "unencrypted": true, "destinations": destinations,
                    "verification": {"every": 2}, "pitr": {"spanMinutes": 5}},
                "status": {"phase": "Scheduled", "lastSuccessfulBackup": "nightly-202612040200",
                    "pitr": {"phase": "Running", "latestRestorableTime": "2026-12-04T02:20:00Z"},
                    "lastSuccessfulTime": "2026-12-04T02:03:20Z", "lastVerifiedTime": "2026-12-03T02:10:00Z",
                    "conditions": [{"type": "Degraded", "status": "True", "reason": "LastBackupFailed", "message": "m",
                        "lastTransitionTime": "2026-12-05T02:01:00Z"}]},
            })),
            backup(serde_json::json!({
                "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoBackup",
                "metadata": {"name": "nightly-202612040200", "namespace": "shop",
                    "labels": {"mongo.operator.rs/schedule": "nightly"}},
                "spec": {"clusterRef": {"name": "orders"}, "destinations": destinations, "verification": {}},
                "status": {"phase": "Succeeded", "sizeBytes": 1048576,
                    "startTime": "2026-12-04T02:00:00Z", "completionTime": "2026-12-04T02:03:20Z",
                    "verification": {"phase": "Failed", "completionTime": "2026-12-04T02:09:00Z"}},
            })),
        ] {
            backup_writer.apply_watcher_event(&watcher::Event::Apply(b));
        }
        let text = m.encode().expect("encode");
        for line in [
            r#"mongo_operator_cluster_phase{namespace="shop",cluster="orders",phase="Degraded"} 1.0"#,
            r#"mongo_operator_cluster_members{namespace="shop",cluster="orders",state="PRIMARY"} 1.0"#,
            r#"mongo_operator_cluster_members{namespace="shop",cluster="orders",state="(not reachable/healthy)"} 1.0"#,
            r#"mongo_operator_cluster_ready_members{namespace="shop",cluster="orders"} 2.0"#,
            r#"mongo_operator_certificate_expiry_timestamp_seconds{namespace="shop",cluster="orders",certificate="members"} 1804118400.0"#,
            r#"mongo_operator_certificate_expiry_timestamp_seconds{namespace="shop",cluster="orders",certificate="ca"} 1874966400.0"#,
            r#"mongo_operator_backup_last_success_timestamp_seconds{namespace="shop",cluster="orders",schedule="nightly"} 1796349800.0"#,
            r#"mongo_operator_backup_last_success_size_bytes{namespace="shop",cluster="orders",schedule="nightly"} 1048576.0"#,
            r#"mongo_operator_backup_last_success_duration_seconds{namespace="shop",cluster="orders",schedule="nightly"} 200.0"#,
            r#"mongo_operator_backup_last_failed{namespace="shop",cluster="orders",schedule="nightly"} 1.0"#,
            r#"mongo_operator_backup_schedule_interval_seconds{namespace="shop",cluster="orders",schedule="nightly"} 86400.0"#,
            r#"mongo_operator_backup_verification_last_success_timestamp_seconds{namespace="shop",cluster="orders",schedule="nightly"} 1796263800.0"#,
            r#"mongo_operator_backup_verification_last_failed{namespace="shop",cluster="orders",schedule="nightly"} 1.0"#,
            r#"mongo_operator_pitr_latest_restorable_timestamp_seconds{namespace="shop",cluster="orders",schedule="nightly"} 1796350800.0"#,
            r#"mongo_operator_pitr_span_seconds{namespace="shop",cluster="orders",schedule="nightly"} 300.0"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        // One series per schedule, none per backup.
        assert!(!text.contains(r#"schedule="nightly-202612040200""#), "{text}");
    }
}
