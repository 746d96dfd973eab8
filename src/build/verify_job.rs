//! The verification Job: a backup Job's Pod (the operator's binary copied in, the secret
//! files projected, the cluster's MongoDB image for the tools) with a throwaway mongod next to
//! the `verify` container, as a native sidecar (an init container that keeps running, started
//! first and stopped once `verify` ends). The throwaway listens on the Pod's loopback only and
//! runs without access control: nothing outside the Pod can reach it, and it holds only what
//! the verification restores into it, on an emptyDir that goes with the Pod.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, EmptyDirVolumeSource, ResourceRequirements, Volume};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::statefulset::{mongod_image, mount, restricted, wired_tiger_cache_gb};
use crate::api::MongoClusterSpec;
use crate::backup::plan::Source;

/// Where the throwaway mongod listens in the verification Pod.
pub const THROWAWAY_HOST: &str = "127.0.0.1:27017";
/// The throwaway's `--replSet`.
pub const THROWAWAY_SET: &str = "verify";
/// The throwaway's container.
pub const THROWAWAY_CONTAINER: &str = "mongod";
/// The verification Jobs' component label.
pub const VERIFY_COMPONENT: &str = "verify";
/// The throwaway's data directory.
const THROWAWAY_DATA: &str = "/data/db";

/// How the verification reaches the throwaway at `host`: directly, without credentials.
pub fn throwaway_source(host: &str) -> Source {
    Source {
        uri: format!("mongodb://{host}/?directConnection=true"),
        username: None,
        auth_source: "admin".into(),
        tls: false,
    }
}

/// The throwaway's data volume for a backup mongodump wrote `dump_bytes` of: the documents
/// and their indexes rebuilt (WiredTiger compresses the data, indexes come on top: three
/// times the dump leaves room for both), at least 1 GiB for the oplog and journal.
pub fn data_size(dump_bytes: u64) -> Quantity {
    const GIB: u64 = 1 << 30;
    let bytes = dump_bytes.saturating_mul(3).max(GIB);
    Quantity(format!("{}Mi", bytes.div_ceil(1 << 20)))
}

fn throwaway_resources(user: Option<&ResourceRequirements>) -> ResourceRequirements {
    user.cloned().unwrap_or_else(|| {
        let both = BTreeMap::from([
            ("cpu".to_string(), Quantity("500m".into())),
            ("memory".to_string(), Quantity("1Gi".into())),
        ]);
        ResourceRequirements {
            requests: Some(both),
            limits: Some(BTreeMap::from([("memory".to_string(), Quantity("1Gi".into()))])),
            ..ResourceRequirements::default()
        }
    })
}

/// Adds the throwaway mongod to a Job built by [`super::backup_job::build`], and bounds the
/// Job: no retry (a verification that failed says why; running it again proves nothing
/// new), and `deadline_seconds` in all.
pub fn add_throwaway(
    job: &mut Job,
    cluster: &MongoClusterSpec,
    resources: Option<&ResourceRequirements>,
    dump_bytes: u64,
    deadline_seconds: i64,
) {
    let resources = throwaway_resources(resources);
    let mut command = vec![
        "mongod".to_string(),
        "--replSet".into(),
        THROWAWAY_SET.into(),
        // The Pod's loopback only: the throwaway has no access control.
        "--bind_ip".into(),
        "127.0.0.1".into(),
        "--port".into(),
        "27017".into(),
        "--dbpath".into(),
        THROWAWAY_DATA.into(),
        "--setParameter".into(),
        "diagnosticDataCollectionEnabled=false".into(),
    ];
    if let Some(gb) = wired_tiger_cache_gb(&resources) {
        command.push("--wiredTigerCacheSizeGB".into());
        command.push(format!("{gb:.2}"));
    }
    let sidecar = Container {
        name: THROWAWAY_CONTAINER.into(),
        image: Some(mongod_image(cluster)),
        command: Some(command),
        // A native sidecar: started before `verify`, stopped after it.
        restart_policy: Some("Always".into()),
        volume_mounts: Some(vec![
            mount("throwaway-data", THROWAWAY_DATA, false),
            mount("throwaway-tmp", "/tmp", false),
        ]),
        resources: Some(resources),
        security_context: Some(restricted()),
        ..Container::default()
    };
    let Some(spec) = job.spec.as_mut() else { return };
    spec.backoff_limit = Some(0);
    spec.active_deadline_seconds = Some(deadline_seconds);
    let Some(pod) = spec.template.spec.as_mut() else { return };
    pod.init_containers.get_or_insert_with(Vec::new).push(sidecar);
    let empty =
        |size: Quantity| Some(EmptyDirVolumeSource { size_limit: Some(size), ..EmptyDirVolumeSource::default() });
    let volumes = pod.volumes.get_or_insert_with(Vec::new);
    volumes.push(Volume {
        name: "throwaway-data".into(),
        empty_dir: empty(data_size(dump_bytes)),
        ..Volume::default()
    });
    volumes.push(Volume {
        name: "throwaway-tmp".into(),
        empty_dir: empty(Quantity("64Mi".into())),
        ..Volume::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_volume_holds_the_restored_data_and_its_indexes() {
        assert_eq!(data_size(0), Quantity("1024Mi".into()));
        assert_eq!(data_size(2 << 30), Quantity("6144Mi".into()));
    }
}
