//! `kubectl mongo status NAME`: what a cluster is doing, on one screen. [`gather`] reads the
//! cluster, its Pods (and their Nodes' zones, when the user may read Nodes), its backups and
//! its recent Warning Events with the user's own credentials; [`render`] is pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;

use crate::api::{MemberRole, MongoBackup, MongoCluster};

/// How many backups and Warning Events the screen shows.
const NEWEST: usize = 5;

/// Why the status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("MongoCluster {name} not found in namespace {namespace}")]
    NotFound { name: String, namespace: String },
    #[error("reading {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
}

/// Everything the screen shows, also printed as JSON or YAML for scripts.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub name: String,
    pub namespace: String,
    pub phase: String,
    /// The `Ready` condition is True: the exit code is 0 only then.
    pub ready: bool,
    pub conditions: Vec<ConditionLine>,
    pub version: Option<String>,
    pub feature_compatibility_version: Option<String>,
    pub primary: Option<String>,
    pub members: Vec<MemberLine>,
    pub tls: Option<TlsLine>,
    /// Where applications connect: the client Service inside Kubernetes, and the members'
    /// external names when they are announced outside it (`expose.perMember`).
    pub connection: Option<ConnectionLine>,
    pub backups: Vec<BackupLine>,
    /// Each schedule of the cluster that archives its oplog (`spec.pitr`): what a restore to
    /// a point in time can reach.
    pub point_in_time: Vec<PitrLine>,
    pub warnings: Vec<EventLine>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PitrLine {
    pub schedule: String,
    pub phase: String,
    pub earliest: Option<String>,
    pub latest: Option<String>,
    pub lag_seconds: Option<i64>,
    /// Holes in the archive; one without an end waits for a new base backup.
    pub gaps: usize,
    pub message: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConditionLine {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemberLine {
    pub name: String,
    pub state: String,
    pub healthy: bool,
    pub lag_seconds: Option<i64>,
    pub voting: bool,
    pub priority: Option<f64>,
    pub role: Option<MemberRole>,
    pub pod_ready: bool,
    pub node: Option<String>,
    pub zone: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsLine {
    pub mode: String,
    pub certificate_not_after: Option<String>,
    pub ca_not_after: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionLine {
    /// `host:port` of the client Service.
    pub internal: String,
    /// The Secret holding the connection strings.
    pub secret: Option<String>,
    /// Each member's external `host:port`, in member order; empty when none is announced.
    pub external_hosts: Vec<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupLine {
    pub name: String,
    pub phase: String,
    pub finished: Option<String>,
    pub size: Option<String>,
    pub verification: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventLine {
    pub reason: String,
    pub object: String,
    pub message: String,
    pub count: i32,
    pub last_seen: Option<String>,
}

fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> StatusError {
    let what = what.into();
    move |source| StatusError::Kube { what, source }
}

/// Reads what the screen shows.
pub async fn gather(client: &Client, namespace: &str, name: &str) -> Result<StatusReport, StatusError> {
    let clusters: Api<MongoCluster> = Api::namespaced(client.clone(), namespace);
    let cluster = clusters
        .get_opt(name)
        .await
        .map_err(kube_error(format!("MongoCluster {name}")))?
        .ok_or_else(|| StatusError::NotFound { name: name.into(), namespace: namespace.into() })?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("app.kubernetes.io/instance={name},app.kubernetes.io/component=database");
    let pods = pods.list(&ListParams::default().labels(&selector)).await.map_err(kube_error("the members' Pods"))?;
    // Zones come from the Nodes, which a user of one namespace may not read: then none.
    let nodes: Api<Node> = Api::all(client.clone());
    let mut zones = BTreeMap::new();
    for node in pods.items.iter().filter_map(|p| p.spec.as_ref()?.node_name.clone()) {
        if zones.contains_key(&node) {
            continue;
        }
        let zone = match nodes.get_opt(&node).await {
            Ok(Some(n)) => n.labels().get("topology.kubernetes.io/zone").cloned(),
            _ => None,
        };
        zones.insert(node, zone);
    }
    let backups: Api<MongoBackup> = Api::namespaced(client.clone(), namespace);
    let (schedules, backups): (Vec<MongoBackup>, Vec<MongoBackup>) = backups
        .list(&ListParams::default())
        .await
        .map_err(kube_error("MongoBackups"))?
        .items
        .into_iter()
        .filter(|b| b.spec.cluster_ref.name == name)
        .partition(|b| b.spec.schedule.is_some());
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let events = events.list(&ListParams::default().fields("type=Warning")).await.map_err(kube_error("Events"))?;
    // The cluster's own objects: the MongoCluster, its members' Pods and its backups.
    let own = |kind: &str, object: &str| match kind {
        "MongoCluster" => object == name,
        "Pod" => pods.items.iter().any(|p| p.name_any() == object),
        "MongoBackup" => backups.iter().any(|b| b.name_any() == object),
        _ => false,
    };
    let warnings: Vec<Event> = events
        .items
        .into_iter()
        .filter(|e| {
            let o = &e.involved_object;
            own(o.kind.as_deref().unwrap_or_default(), o.name.as_deref().unwrap_or_default())
        })
        .collect();
    Ok(report(&cluster, &pods.items, &zones, &backups, &schedules, &warnings))
}

fn time(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> String {
    t.0.to_string()
}

/// The report from what was read: pure.
pub fn report(
    cluster: &MongoCluster,
    pods: &[Pod],
    zones: &BTreeMap<String, Option<String>>,
    backups: &[MongoBackup],
    schedules: &[MongoBackup],
    warnings: &[Event],
) -> StatusReport {
    let status = cluster.status.clone().unwrap_or_default();
    let pod = |member: &str| {
        pods.iter().find(|p| member.starts_with(&format!("{}.", p.name_any())) || p.name_any() == member)
    };
    let members = status
        .members
        .iter()
        .map(|m| {
            let pod = pod(&m.name);
            let node = pod.and_then(|p| p.spec.as_ref()?.node_name.clone());
            let pod_ready = pod
                .and_then(|p| p.status.as_ref()?.conditions.clone())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            MemberLine {
                name: m.name.clone(),
                state: m.state.clone(),
                healthy: m.healthy,
                lag_seconds: m.lag_seconds,
                voting: m.voting,
                priority: m.priority,
                role: m.role,
                pod_ready,
                zone: node.as_ref().and_then(|n| zones.get(n).cloned().flatten()),
                node,
            }
        })
        .collect();
    let conditions: Vec<ConditionLine> = status
        .conditions
        .iter()
        .map(|c| ConditionLine {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
        .collect();
    let ready = conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
    let mut newest_backups: Vec<&MongoBackup> = backups.iter().collect();
    newest_backups.sort_by_key(|b| std::cmp::Reverse(b.metadata.creation_timestamp.as_ref().map(|t| t.0)));
    let backups = newest_backups
        .into_iter()
        .take(NEWEST)
        .map(|b| {
            let s = b.status.clone().unwrap_or_default();
            BackupLine {
                name: b.name_any(),
                phase: s.phase.map(|p| format!("{p:?}")).unwrap_or_else(|| "Pending".into()),
                finished: s.completion_time.as_ref().map(time),
                size: s.size_human.clone(),
                verification: s.verification.as_ref().map(|v| format!("{:?}", v.phase)),
            }
        })
        .collect();
    let mut warnings: Vec<&Event> = warnings.iter().collect();
    let seen = |e: &Event| {
        e.event_time
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    warnings.sort_by_key(|e| std::cmp::Reverse(seen(e)));
    let warnings = warnings
        .into_iter()
        .take(NEWEST)
        .map(|e| EventLine {
            reason: e.reason.clone().unwrap_or_default(),
            object: format!(
                "{}/{}",
                e.involved_object.kind.clone().unwrap_or_default(),
                e.involved_object.name.clone().unwrap_or_default()
            ),
            message: e.message.clone().unwrap_or_default(),
            count: e.count.unwrap_or(1),
            last_seen: seen(e).map(|t| t.to_string()),
        })
        .collect();
    StatusReport {
        name: cluster.name_any(),
        namespace: cluster.namespace().unwrap_or_default(),
        phase: status.phase.map(|p| format!("{p:?}")).unwrap_or_else(|| "Pending".into()),
        ready,
        conditions,
        version: status.version.clone(),
        feature_compatibility_version: status.feature_compatibility_version.clone(),
        primary: status.primary.clone(),
        members,
        tls: status.tls.as_ref().map(|t| TlsLine {
            mode: format!("{:?}", t.mode),
            certificate_not_after: t.certificate_not_after.as_ref().map(time),
            ca_not_after: t.ca_not_after.as_ref().map(time),
        }),
        connection: status.connection.as_ref().map(|c| ConnectionLine {
            internal: format!("{}:{}", c.host, c.port),
            secret: c.secret_name.clone(),
            external_hosts: c.external_hosts.clone(),
        }),
        backups,
        point_in_time: schedules.iter().filter(|s| s.spec.pitr.is_some()).map(pitr_line).collect(),
        warnings,
    }
}

fn pitr_line(schedule: &MongoBackup) -> PitrLine {
    let pitr = schedule.status.as_ref().and_then(|s| s.pitr.clone());
    PitrLine {
        schedule: schedule.name_any(),
        phase: pitr.as_ref().map_or_else(|| "Pending".into(), |p| format!("{:?}", p.phase)),
        earliest: pitr.as_ref().and_then(|p| p.earliest_restorable_time.as_ref()).map(time),
        latest: pitr.as_ref().and_then(|p| p.latest_restorable_time.as_ref()).map(time),
        lag_seconds: pitr.as_ref().and_then(|p| p.lag_seconds),
        gaps: pitr.as_ref().map_or(0, |p| p.gaps.len()),
        message: pitr.and_then(|p| p.message),
    }
}

/// Columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> =
            cells.iter().enumerate().map(|(i, c)| format!("{c:<width$}", width = widths[i])).collect();
        format!("  {}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

fn or_dash(value: Option<impl std::fmt::Display>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The screen.
pub fn render(r: &StatusReport) -> String {
    let mut out = format!("Cluster:  {}/{}\n", r.namespace, r.name);
    out.push_str(&format!("Phase:    {}{}\n", r.phase, if r.ready { "" } else { " (not Ready)" }));
    out.push_str(&format!(
        "Version:  {} (featureCompatibilityVersion {})\n",
        or_dash(r.version.as_deref()),
        or_dash(r.feature_compatibility_version.as_deref())
    ));
    out.push_str(&format!("Primary:  {}\n", or_dash(r.primary.as_deref())));
    if let Some(tls) = &r.tls {
        out.push_str(&format!(
            "TLS:      {} (certificate until {}, CA until {})\n",
            tls.mode,
            or_dash(tls.certificate_not_after.as_deref()),
            or_dash(tls.ca_not_after.as_deref())
        ));
    }
    if let Some(c) = &r.connection {
        let secret = c.secret.as_ref().map(|s| format!(" (connection strings in Secret {s})")).unwrap_or_default();
        out.push_str(&format!("Connect:  {}{secret}\n", c.internal));
        if !c.external_hosts.is_empty() {
            out.push_str(&format!("External: {}\n", c.external_hosts.join(",")));
        }
    }
    out.push_str("\nConditions:\n");
    let rows: Vec<Vec<String>> = r
        .conditions
        .iter()
        .map(|c| vec![c.type_.clone(), c.status.clone(), c.reason.clone(), c.message.clone()])
        .collect();
    out.push_str(&table(&["TYPE", "STATUS", "REASON", "MESSAGE"], &rows));
    out.push_str("\nMembers:\n");
    let rows: Vec<Vec<String>> = r
        .members
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                m.state.clone(),
                if m.healthy { "yes" } else { "no" }.into(),
                or_dash(m.lag_seconds.map(|l| format!("{l}s"))),
                if m.voting { "yes" } else { "no" }.into(),
                or_dash(m.priority),
                or_dash(m.role.map(|r| format!("{r:?}"))),
                if m.pod_ready { "yes" } else { "no" }.into(),
                or_dash(m.node.as_deref()),
                or_dash(m.zone.as_deref()),
            ]
        })
        .collect();
    out.push_str(&table(
        &["MEMBER", "STATE", "HEALTHY", "LAG", "VOTES", "PRIORITY", "ROLE", "POD READY", "NODE", "ZONE"],
        &rows,
    ));
    out.push_str("\nBackups (newest first):\n");
    if r.backups.is_empty() {
        out.push_str("  none\n");
    } else {
        let rows: Vec<Vec<String>> = r
            .backups
            .iter()
            .map(|b| {
                vec![
                    b.name.clone(),
                    b.phase.clone(),
                    or_dash(b.finished.as_deref()),
                    or_dash(b.size.as_deref()),
                    or_dash(b.verification.as_deref()),
                ]
            })
            .collect();
        out.push_str(&table(&["BACKUP", "PHASE", "FINISHED", "SIZE", "VERIFIED"], &rows));
    }
    if !r.point_in_time.is_empty() {
        out.push_str("\nPoint-in-time recovery:\n");
        let rows: Vec<Vec<String>> = r
            .point_in_time
            .iter()
            .map(|p| {
                vec![
                    p.schedule.clone(),
                    p.phase.clone(),
                    or_dash(p.earliest.as_deref()),
                    or_dash(p.latest.as_deref()),
                    or_dash(p.lag_seconds.map(|l| format!("{l}s"))),
                    p.gaps.to_string(),
                    or_dash(p.message.as_deref()),
                ]
            })
            .collect();
        out.push_str(&table(&["SCHEDULE", "ARCHIVER", "EARLIEST", "LATEST", "LAG", "GAPS", "MESSAGE"], &rows));
    }
    out.push_str("\nRecent warnings:\n");
    if r.warnings.is_empty() {
        out.push_str("  none\n");
    } else {
        let rows: Vec<Vec<String>> = r
            .warnings
            .iter()
            .map(|e| {
                vec![
                    or_dash(e.last_seen.as_deref()),
                    e.reason.clone(),
                    e.object.clone(),
                    e.count.to_string(),
                    e.message.clone(),
                ]
            })
            .collect();
        out.push_str(&table(&["LAST SEEN", "REASON", "OBJECT", "COUNT", "MESSAGE"], &rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_archiving_the_oplog_shows_what_a_restore_can_reach() {
        let cluster: MongoCluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoCluster",
            "metadata": {"name": "orders", "namespace": "shop"}, "spec": {"version": "8.0.4"},
        }))
        .expect("cluster");
        let destinations =
            serde_json::json!([{"name": "s3", "s3": {"bucket": "b", "credentialsSecretRef": {"name": "k"}}}]);
        let schedule = |name: &str, pitr: bool| -> MongoBackup {
            let mut spec = serde_json::json!({"clusterRef": {"name": "orders"}, "schedule": {"cron": "0 */2 * * *"},
                "encryption": {"keySecretRef": {"name": "k", "key": "key"}}, "destinations": destinations});
            if pitr {
                spec["pitr"] = serde_json::json!({});
            }
            serde_json::from_value(serde_json::json!({
                "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoBackup",
                "metadata": {"name": name, "namespace": "shop"}, "spec": spec,
                "status": {"pitr": {"phase": "Running", "message": "reading the oplog of orders-1",
                    "earliestRestorableTime": "2026-12-05T08:00:14Z", "latestRestorableTime": "2026-12-05T10:40:12Z",
                    "restorableRanges": [], "gaps": [{"after": "2026-12-04T08:00:00Z", "resumedAfter": "2026-12-04T10:00:00Z"}],
                    "lagSeconds": 604}},
            }))
            .expect("schedule")
        };
        let r =
            report(&cluster, &[], &BTreeMap::new(), &[], &[schedule("every-2h", true), schedule("weekly", false)], &[]);
        assert_eq!(
            r.point_in_time,
            vec![PitrLine {
                schedule: "every-2h".into(),
                phase: "Running".into(),
                earliest: Some("2026-12-05T08:00:14Z".into()),
                latest: Some("2026-12-05T10:40:12Z".into()),
                lag_seconds: Some(604),
                gaps: 1,
                message: Some("reading the oplog of orders-1".into()),
            }],
            "only the schedule with pitr"
        );
        let screen = render(&r);
        assert!(screen.contains("Point-in-time recovery:"), "{screen}");
        assert!(screen.contains("every-2h  Running   2026-12-05T08:00:14Z  2026-12-05T10:40:12Z  604s"), "{screen}");
        let plain = report(&cluster, &[], &BTreeMap::new(), &[], &[schedule("weekly", false)], &[]);
        assert!(!render(&plain).contains("Point-in-time"), "no section without pitr");
    }

    #[test]
    fn the_external_names_are_shown_once_the_set_announces_them() {
        let cluster = |external: serde_json::Value| -> MongoCluster {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoCluster",
                "metadata": {"name": "orders", "namespace": "shop"}, "spec": {"version": "8.0.4"},
                "status": {"connection": {"host": "orders.shop.svc.cluster.local", "port": 27017,
                    "secretName": "orders-admin", "externalHosts": external}},
            }))
            .expect("cluster")
        };
        let hosts = ["db-0.mongo.example.internal:27017", "db-1.mongo.example.internal:27017"];
        let exposed = report(&cluster(serde_json::json!(hosts)), &[], &BTreeMap::new(), &[], &[], &[]);
        let connection = exposed.connection.clone().expect("connection");
        assert_eq!(
            (connection.internal.as_str(), connection.external_hosts),
            ("orders.shop.svc.cluster.local:27017", hosts.map(String::from).to_vec())
        );
        let screen = render(&exposed);
        assert!(
            screen.contains(
                "Connect:  orders.shop.svc.cluster.local:27017 (connection strings in Secret orders-admin)\n"
            ),
            "{screen}"
        );
        assert!(
            screen.contains("External: db-0.mongo.example.internal:27017,db-1.mongo.example.internal:27017\n"),
            "{screen}"
        );
        let internal_only = render(&report(&cluster(serde_json::json!([])), &[], &BTreeMap::new(), &[], &[], &[]));
        assert!(internal_only.contains("Connect:") && !internal_only.contains("External:"), "{internal_only}");
    }
}
