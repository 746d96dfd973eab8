//! `kubectl mongo restore NEW --from BACKUP`: the manifest of a new cluster created from a
//! backup, printed (so that it can go into Git) or, with `--apply`, created. The new cluster
//! takes the backed-up cluster's settings when that cluster still exists, with what belongs to
//! it alone left out: its users' own password and connection Secrets (a copy of production
//! gets passwords of its own, and must not write into production's connection Secrets) and a
//! certificate Secret issued for its hosts (the copy gets one issued for its own).

use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

use super::common::{FIELD_MANAGER, PluginError, classify, get};
use crate::api::{BackupPhase, BootstrapSpec, FromBackupSpec, MongoBackup, MongoCluster, MongoClusterSpec};

/// The new cluster: pure. `source` is the backed-up cluster, when it still exists;
/// `point_in_time` a restore to a point in time from the schedule `backup`.
pub fn manifest(
    new: &str,
    backup: &MongoBackup,
    source: Option<&MongoCluster>,
    members: Option<i32>,
    point_in_time: Option<&str>,
) -> Result<MongoCluster, PluginError> {
    let name = backup.name_any();
    let status = backup.status.clone().unwrap_or_default();
    if let Some(target) = point_in_time {
        crate::pitr::target::Target::parse(target).map_err(PluginError::Refused)?;
        if backup.spec.schedule.is_none() || backup.spec.pitr.is_none() {
            return Err(PluginError::Refused(format!(
                "--point-in-time restores from the archive of a schedule with spec.pitr; {name} is {}",
                if backup.spec.schedule.is_none() { "a single backup" } else { "a schedule without pitr" }
            )));
        }
    } else if backup.spec.schedule.is_some() {
        let hint = status
            .last_successful_backup
            .map(|b| format!(" (its newest successful one: {b})"))
            .unwrap_or_else(|| format!(" (`kubectl get mongobackups` lists them; they start with {name}-)"));
        return Err(PluginError::Refused(format!(
            "{name} is a backup schedule: restore one of the backups it took{hint}"
        )));
    }
    if point_in_time.is_none() && status.phase != Some(BackupPhase::Succeeded) {
        let phase = status.phase.map_or_else(|| "not started".to_string(), |p| format!("{p:?}"));
        return Err(PluginError::Refused(format!("backup {name} has not succeeded ({phase}): it cannot be restored")));
    }
    let mut spec = match source {
        Some(cluster) => cluster.spec.clone(),
        None => {
            let version = status.mongodb_version.clone().ok_or_else(|| {
                PluginError::Refused(format!(
                    "backup {name} does not say which MongoDB version took it, and its cluster {} is gone: write the \
                     manifest by hand (docs/backups.md)",
                    backup.spec.cluster_ref.name
                ))
            })?;
            serde_json::from_value::<MongoClusterSpec>(serde_json::json!({ "version": version }))
                .map_err(|e| PluginError::Refused(format!("cannot build a cluster spec: {e}")))?
        }
    };
    // The backup's own version: the data is restored into the release that wrote it. (A
    // schedule records none: the restore to a point in time runs the source's version.)
    if let Some(version) = status.mongodb_version.filter(|_| point_in_time.is_none()) {
        spec.version = version;
    }
    if let Some(n) = members {
        spec.members = n;
    }
    spec.paused = false;
    spec.tls.certificate_secret_ref = None;
    for user in &mut spec.users {
        user.password_secret_ref = None;
        user.connection_secret_name = None;
    }
    spec.bootstrap = Some(BootstrapSpec {
        from_backup: FromBackupSpec {
            backup_name: Some(name),
            location: None,
            encryption_key_secret_ref: None,
            checksum: None,
            keep_source_users: false,
            point_in_time: point_in_time.map(str::to_string),
            resources: None,
        },
    });
    let mut cluster = MongoCluster::new(new, spec);
    cluster.metadata.namespace = backup.namespace();
    Ok(cluster)
}

/// The manifest as YAML, as `kubectl apply -f` takes it.
pub fn to_yaml(cluster: &MongoCluster) -> Result<String, PluginError> {
    let mut value = serde_json::to_value(cluster).map_err(|e| PluginError::Refused(e.to_string()))?;
    if let Some(object) = value.as_object_mut() {
        object.remove("status");
    }
    serde_yaml::to_string(&value).map_err(|e| PluginError::Refused(e.to_string()))
}

/// Reads the backup and its cluster and builds the manifest.
pub async fn build(
    client: &Client,
    namespace: &str,
    new: &str,
    from: &str,
    members: Option<i32>,
    point_in_time: Option<&str>,
) -> Result<MongoCluster, PluginError> {
    let backup: MongoBackup = get(client, namespace, from).await?;
    let clusters: Api<MongoCluster> = Api::namespaced(client.clone(), namespace);
    let source_name = &backup.spec.cluster_ref.name;
    let source = clusters
        .get_opt(source_name)
        .await
        .map_err(classify(&format!("read MongoCluster {source_name}"), namespace))?;
    if clusters.get_opt(new).await.map_err(classify(&format!("read MongoCluster {new}"), namespace))?.is_some() {
        return Err(PluginError::Refused(format!(
            "MongoCluster {new} exists already: a restore creates a new cluster; choose another name"
        )));
    }
    manifest(new, &backup, source.as_ref(), members, point_in_time)
}

/// Creates the cluster.
pub async fn apply(client: &Client, namespace: &str, cluster: &MongoCluster) -> Result<(), PluginError> {
    let api: Api<MongoCluster> = Api::namespaced(client.clone(), namespace);
    let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() };
    api.create(&params, cluster).await.map_err(classify("create MongoClusters", namespace))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(phase: &str, schedule: bool) -> MongoBackup {
        let mut spec = serde_json::json!({"clusterRef": {"name": "orders"}, "unencrypted": true,
            "destinations": [{"name": "a", "s3": {"bucket": "b", "credentialsSecretRef": {"name": "k"}}}]});
        if schedule {
            spec["schedule"] = serde_json::json!({"cron": "0 */2 * * *"});
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoBackup",
            "metadata": {"name": "orders-202612051000", "namespace": "shop"},
            "spec": spec,
            "status": {"phase": phase, "mongodbVersion": "8.0.4", "lastSuccessfulBackup": "orders-202612050800"},
        }))
        .expect("backup")
    }

    fn source() -> MongoCluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoCluster",
            "metadata": {"name": "orders", "namespace": "shop"},
            "spec": {"version": "8.0.3", "members": 5, "storage": {"size": "200Gi"}, "paused": true,
                "tls": {"certificateSecretRef": {"name": "orders-cert"}},
                "users": [{"name": "app", "db": "orders", "roles": [{"name": "readWrite", "db": "orders"}],
                    "passwordSecretRef": {"name": "app-password", "key": "password"},
                    "connectionSecretName": "orders-app"}]},
        }))
        .expect("cluster")
    }

    #[test]
    fn the_copy_takes_the_sources_settings_but_none_of_its_secrets() {
        let copy =
            manifest("orders-staging", &backup("Succeeded", false), Some(&source()), Some(1), None).expect("manifest");
        assert_eq!(copy.name_any(), "orders-staging");
        assert_eq!(copy.namespace().as_deref(), Some("shop"));
        let spec = &copy.spec;
        assert_eq!((spec.version.as_str(), spec.members, spec.storage.size.as_str()), ("8.0.4", 1, "200Gi"));
        assert!(!spec.paused && spec.tls.certificate_secret_ref.is_none());
        assert!(spec.users[0].password_secret_ref.is_none() && spec.users[0].connection_secret_name.is_none());
        let from = &spec.bootstrap.as_ref().expect("bootstrap").from_backup;
        assert_eq!(from.backup_name.as_deref(), Some("orders-202612051000"));
        let yaml = to_yaml(&copy).expect("yaml");
        assert!(yaml.starts_with("apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoCluster\n"), "{yaml}");
        assert!(!yaml.contains("status"), "{yaml}");
    }

    #[test]
    fn without_its_cluster_the_copy_has_the_defaults_and_the_backups_version() {
        let copy = manifest("orders-staging", &backup("Succeeded", false), None, None, None).expect("manifest");
        assert_eq!((copy.spec.version.as_str(), copy.spec.members), ("8.0.4", 3));
    }

    #[test]
    fn a_schedule_or_an_unfinished_backup_is_refused_with_what_to_do() {
        let refused = manifest("x", &backup("Succeeded", true), None, None, None).expect_err("a schedule");
        assert!(refused.to_string().contains("orders-202612050800"), "{refused}");
        let refused = manifest("x", &backup("Running", false), None, None, None).expect_err("running");
        assert!(refused.to_string().contains("has not succeeded (Running)"), "{refused}");
    }

    #[test]
    fn a_point_in_time_comes_from_a_schedule_that_archives_the_oplog() {
        let mut schedule = backup("Succeeded", true);
        let refused = manifest("x", &schedule, Some(&source()), None, Some("latest")).expect_err("no pitr");
        assert!(refused.to_string().contains("a schedule without pitr"), "{refused}");
        let refused =
            manifest("x", &backup("Succeeded", false), Some(&source()), None, Some("latest")).expect_err("one");
        assert!(refused.to_string().contains("a single backup"), "{refused}");
        schedule.spec.pitr = Some(serde_json::from_value(serde_json::json!({})).expect("pitr"));
        let refused = manifest("x", &schedule, Some(&source()), None, Some("yesterday")).expect_err("not a time");
        assert!(refused.to_string().contains("neither `latest` nor an RFC 3339 time"), "{refused}");
        let copy = manifest("x", &schedule, Some(&source()), None, Some("2026-12-05T10:15:00Z")).expect("manifest");
        let from = &copy.spec.bootstrap.as_ref().expect("bootstrap").from_backup;
        assert_eq!(
            (from.backup_name.as_deref(), from.point_in_time.as_deref()),
            (Some("orders-202612051000"), Some("2026-12-05T10:15:00Z"))
        );
        assert_eq!(copy.spec.version, "8.0.3", "the source's version: a schedule records none of its own");
    }
}
