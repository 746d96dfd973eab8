//! The operator's Prometheus metrics, served as text on `/metrics`.
//!
//! Counters and histograms are updated where things happen (a reconcile, a replica-set step,
//! a finished backup); the number of clusters by phase is counted from the cluster
//! controller's cache at each scrape, so it can never drift from what the operator sees.

use std::sync::Arc;
use std::time::Instant;

use kube::runtime::reflector::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::objects::ObjectGauges;
use crate::api::{MongoBackup, MongoCluster};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabel {
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackupResult {
    result: &'static str,
}

/// How a backup ended, for `mongo_operator_backups_total`.
#[derive(Clone, Copy, Debug)]
pub enum BackupOutcome {
    Succeeded,
    Failed,
}

/// Every metric the operator exports, registered once per process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<ControllerLabel, Histogram>,
    in_flight: Family<ControllerLabel, Gauge>,
    steps: Family<StepLabel, Counter>,
    backups: Family<BackupResult, Counter>,
    verifications: Family<BackupResult, Counter>,
    leader: Gauge,
    objects: Arc<ObjectGauges>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mongo_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register("reconciles", "Reconciles run, by controller and result (ok, error)", reconciles.clone());
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register("reconcile_errors", "Failed reconciles, by controller and reason", errors.clone());
        let duration = Family::<ControllerLabel, Histogram>::new_with_constructor(|| {
            // 5 ms to about 40 s: a reconcile that waits on a member's timeout lands in the top.
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register("reconcile_duration_seconds", "How long reconciles take, by controller", duration.clone());
        let in_flight = Family::<ControllerLabel, Gauge>::default();
        registry.register(
            "reconciles_in_flight",
            "Reconciles running now, by controller (kube-runtime does not expose its queue; this is the work being done)",
            in_flight.clone(),
        );
        let steps = Family::<StepLabel, Counter>::default();
        registry.register(
            "replica_set_steps",
            "Replica-set steps carried out (initiate, reconfigs, step-downs), by kind",
            steps.clone(),
        );
        let backups = Family::<BackupResult, Counter>::default();
        registry.register("backups", "Backups finished, by result (succeeded, failed)", backups.clone());
        // Both series exist from the start, so an alert on the rate of failures has a series
        // to compare against before the first backup ends.
        for result in ["succeeded", "failed"] {
            let _ = backups.get_or_create(&BackupResult { result });
        }
        let verifications = Family::<BackupResult, Counter>::default();
        registry.register(
            "backup_verifications",
            "Backup verifications finished, by result (passed, failed)",
            verifications.clone(),
        );
        for result in ["passed", "failed"] {
            let _ = verifications.get_or_create(&BackupResult { result });
        }
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and runs the controllers",
            leader.clone(),
        );
        registry.register(
            "build",
            "The operator's version",
            Info::new(vec![("version".to_string(), env!("CARGO_PKG_VERSION").to_string())]),
        );
        let objects = Arc::new(ObjectGauges::default());
        registry.register_collector(Box::new(objects.clone()));
        Metrics { registry, reconciles, errors, duration, in_flight, steps, backups, verifications, leader, objects }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// Starts measuring one reconcile; the returned guard records it when finished.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer<'_> {
        self.in_flight.get_or_create(&ControllerLabel { controller }).inc();
        ReconcileTimer { metrics: self, controller, start: Instant::now(), finished: false }
    }

    /// A replica-set step was carried out (its Event's reason, e.g. `MemberAdded`).
    pub fn replica_set_step(&self, step: &str) {
        self.steps.get_or_create(&StepLabel { step: step.to_string() }).inc();
    }

    /// A backup reached a final phase.
    pub fn backup_finished(&self, outcome: BackupOutcome) {
        let result = match outcome {
            BackupOutcome::Succeeded => "succeeded",
            BackupOutcome::Failed => "failed",
        };
        self.backups.get_or_create(&BackupResult { result }).inc();
    }

    /// A backup's verification ended.
    pub fn backup_verified(&self, passed: bool) {
        let result = if passed { "passed" } else { "failed" };
        self.verifications.get_or_create(&BackupResult { result }).inc();
    }

    /// Whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Counts the clusters in this cache at each scrape (one cache per watched namespace).
    pub fn count_clusters_of(&self, store: Store<MongoCluster>) {
        if let Ok(mut stores) = self.objects.clusters.lock() {
            stores.push(store);
        }
    }

    /// Reads the backup schedules in this cache at each scrape (one cache per watched
    /// namespace).
    pub fn watch_backups_of(&self, store: Store<MongoBackup>) {
        if let Ok(mut stores) = self.objects.backups.lock() {
            stores.push(store);
        }
    }
}

/// Records one reconcile when dropped, so a reconcile cancelled at shutdown is still taken
/// off the in-flight gauge.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    controller: &'static str,
    start: Instant,
    finished: bool,
}

impl ReconcileTimer<'_> {
    /// The reconcile ended; `error` is the error's reason when it failed.
    pub fn finish(mut self, error: Option<&'static str>) {
        let controller = self.controller;
        let result = if error.is_some() { "error" } else { "ok" };
        self.metrics.reconciles.get_or_create(&ResultLabels { controller, result }).inc();
        if let Some(reason) = error {
            self.metrics.errors.get_or_create(&ErrorLabels { controller, reason }).inc();
        }
        self.metrics
            .duration
            .get_or_create(&ControllerLabel { controller })
            .observe(self.start.elapsed().as_secs_f64());
        self.finished = true;
    }
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.get_or_create(&ControllerLabel { controller: self.controller }).dec();
        if !self.finished {
            let controller = self.controller;
            self.metrics.reconciles.get_or_create(&ResultLabels { controller, result: "cancelled" }).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconcile_is_counted_timed_and_taken_off_in_flight() {
        let m = Metrics::new();
        let t = m.reconcile("cluster");
        assert!(m.encode().unwrap().contains(r#"mongo_operator_reconciles_in_flight{controller="cluster"} 1"#));
        t.finish(Some("Mongo"));
        m.reconcile("backup").finish(None);
        drop(m.reconcile("backup"));
        let text = m.encode().unwrap();
        for line in [
            r#"mongo_operator_reconciles_total{controller="cluster",result="error"} 1"#,
            r#"mongo_operator_reconcile_errors_total{controller="cluster",reason="Mongo"} 1"#,
            r#"mongo_operator_reconciles_total{controller="backup",result="ok"} 1"#,
            r#"mongo_operator_reconciles_total{controller="backup",result="cancelled"} 1"#,
            r#"mongo_operator_reconciles_in_flight{controller="cluster"} 0"#,
            r#"mongo_operator_reconcile_duration_seconds_count{controller="cluster"} 1"#,
            r#"mongo_operator_build_info{version=""#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn steps_backups_and_leadership_are_exported() {
        let m = Metrics::new();
        m.replica_set_step("MemberAdded");
        m.replica_set_step("MemberAdded");
        m.backup_finished(BackupOutcome::Failed);
        m.set_leader(true);
        let text = m.encode().unwrap();
        assert!(text.contains(r#"mongo_operator_replica_set_steps_total{step="MemberAdded"} 2"#), "{text}");
        assert!(text.contains(r#"mongo_operator_backups_total{result="failed"} 1"#), "{text}");
        assert!(text.contains("mongo_operator_leader 1"), "{text}");
    }

    #[test]
    fn clusters_are_counted_by_phase_from_the_cache() {
        use kube::runtime::{reflector, watcher};
        let m = Metrics::new();
        let (store, mut writer) = reflector::store::<MongoCluster>();
        m.count_clusters_of(store);
        let cluster = |name: &str, phase: Option<&str>| -> MongoCluster {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoCluster",
                "metadata": {"name": name, "namespace": "db"},
                "spec": {"version": "8.0.4"},
                "status": phase.map(|p| serde_json::json!({"phase": p})),
            }))
            .unwrap()
        };
        for c in [cluster("a", Some("Ready")), cluster("b", Some("Ready")), cluster("c", None)] {
            writer.apply_watcher_event(&watcher::Event::Apply(c));
        }
        let text = m.encode().unwrap();
        assert!(text.contains("# TYPE mongo_operator_clusters gauge"), "{text}");
        assert!(text.contains(r#"mongo_operator_clusters{phase="Ready"} 2"#), "{text}");
        assert!(text.contains(r#"mongo_operator_clusters{phase="Unknown"} 1"#), "{text}");
    }
}
