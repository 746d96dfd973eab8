//! A schedule's oplog archiver (`spec.pitr`): its Deployment, kept while the schedule asks for
//! it and removed when it no longer does, and what it shows in `status.pitr`.
//!
//! The Deployment runs `mongo-operator archive-oplog` with the schedule's destinations and
//! key, reading the cluster's members as the backup user. It is applied like every other
//! object (server-side apply, no change when nothing changed), and owned by the schedule, so
//! it goes with it. A suspended schedule keeps its archiver: suspension stops new backups, and
//! the oplog since the last one is what a restore to a recent time needs.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};
use kube::api::{Api, DeleteParams};
use kube::{Resource, ResourceExt};

use super::archive_report;
use super::one_off::{SECRET_RETRY, inputs_problem, no_route_to_stores, secret_files};
use crate::api::{MongoBackup, MongoCluster, PitrPhase, PitrStatus};
use crate::build::archiver_deployment::{self, OPLOG_ARCHIVER_COMPONENT, deployment_name};
use crate::build::backup_job::{JobInputs, member_source, resources};
use crate::build::names::ClusterNames;
use crate::controller::error::{Error, KubeContext};
use crate::controller::ssa::apply;
use crate::controller::{Context, Events};
use crate::mongo::MongoAdmin;
use crate::pitr::archiver::ArchivePlan;
use crate::pitr::report::window_too_short;

/// The archiver's container when the spec sets nothing: it holds one chunk in memory while it
/// writes it.
fn default_resources() -> ResourceRequirements {
    resources("50m", "128Mi", "512Mi")
}

/// Keeps the archiver as `policy` asks; its status, and when to look again (while waiting for
/// an input nothing watched brings).
pub async fn reconcile<A: MongoAdmin>(
    policy: &MongoBackup,
    ctx: &Context<A>,
    events: &Events<'_>,
) -> Result<(Option<PitrStatus>, Option<std::time::Duration>), Error> {
    let namespace = policy.namespace().ok_or(Error::Incomplete("MongoBackup", "namespace"))?;
    let cluster_name = &policy.spec.cluster_ref.name;
    let name = deployment_name(cluster_name);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(pitr) = &policy.spec.pitr else {
        // Only the schedule's own archiver is removed (another schedule of the cluster may run one).
        let owned = deployments
            .get_opt(&name)
            .await
            .doing(|| format!("reading Deployment {name}"))?
            .is_some_and(|d| d.owner_references().iter().any(|o| Some(&o.uid) == policy.uid().as_ref()));
        if owned {
            match deployments.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    events
                        .normal(
                            "OplogArchiverRemoved",
                            "Delete",
                            format!("removed Deployment {name}: spec.pitr is gone"),
                        )
                        .await
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(source) => return Err(Error::Kube { action: format!("deleting Deployment {name}"), source }),
            }
        }
        return Ok((None, None));
    };
    let waiting = |message: String| PitrStatus::new(PitrPhase::Waiting, None, Some(message));
    let clusters: Api<MongoCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(cluster) =
        clusters.get_opt(cluster_name).await.doing(|| format!("reading MongoCluster {cluster_name}"))?
    else {
        return Ok((Some(waiting(format!("MongoCluster {cluster_name} does not exist in {namespace}"))), None));
    };
    if !cluster.spec.network_isolation.stores_reachable() {
        return Ok((Some(waiting(no_route_to_stores(cluster_name))), Some(SECRET_RETRY)));
    }
    let names = ClusterNames::new(cluster_name, &namespace);
    let tls = cluster.members_speak_tls();
    let files = secret_files(&names, policy, tls);
    if let Some((_, message)) = inputs_problem(ctx, &namespace, policy, &files).await? {
        return Ok((Some(waiting(message)), Some(SECRET_RETRY)));
    }
    let domain = &ctx.settings.cluster_domain;
    let plan = ArchivePlan {
        cluster: cluster_name.clone(),
        members: (0..cluster.spec.members)
            .map(|i| member_source(&names.member_host(i, domain)).over_tls(tls))
            .collect(),
        destinations: policy.spec.destinations.clone(),
        compression: policy.spec.compression,
        encrypted: policy.spec.encryption.is_some(),
        span_seconds: u64::try_from(pitr.span_minutes).unwrap_or(10).max(1) * 60,
    };
    let plan_json =
        serde_json::to_string(&plan).map_err(|e| Error::Secret { secret: name.clone(), problem: e.to_string() })?;
    let owner = policy.controller_owner_ref(&()).ok_or(Error::Incomplete("MongoBackup", "uid"))?;
    let defaults = default_resources();
    let wanted = archiver_deployment::build(&JobInputs {
        name: &name,
        namespace: &namespace,
        cluster: cluster_name,
        component: OPLOG_ARCHIVER_COMPONENT,
        subcommand: "archive-oplog",
        for_name: &policy.name_any(),
        spec: &cluster.spec,
        operator_image: &ctx.settings.operator_image,
        plan_json: &plan_json,
        secret_files: &files,
        owner: &owner,
        resources: Some(pitr.resources.as_ref().unwrap_or(&defaults)),
        ttl_seconds_after_finished: None,
    });
    // Announced once, when the status first names the Deployment.
    let announced = policy.status.as_ref().and_then(|s| s.pitr.as_ref()).is_some_and(|p| p.deployment.is_some());
    let applied = apply(&deployments, &wanted).await?;
    if !announced {
        let message = format!(
            "started the oplog archiver (Deployment {name}): a chunk every {} minute(s) to {}",
            pitr.span_minutes,
            policy.spec.destinations.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
        );
        events.normal("OplogArchiverStarted", "Create", message).await;
    }
    let ready = applied.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0) > 0;
    if !ready {
        let status = PitrStatus::new(PitrPhase::Starting, Some(name), Some("its Pod is not ready yet".into()));
        return Ok((Some(status), None));
    }
    let span_seconds = i64::from(pitr.span_minutes.max(1)) * 60;
    // Running: the window is what the archiver reports. It changes once a span (a chunk), so
    // it is read again a span later; between reads the status keeps the last report, and a
    // report that cannot be read keeps the window it had, saying so.
    let previous = policy.status.as_ref().and_then(|s| s.pitr.clone());
    let mut status = match previous.filter(|p| p.phase == PitrPhase::Running) {
        Some(p) => PitrStatus { deployment: Some(name.clone()), ..p },
        None => PitrStatus::new(PitrPhase::Running, Some(name.clone()), None),
    };
    let before = status.gaps.clone();
    let selector = applied
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(crate::build::labels::query)
        .unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let read = match archive_report::pod_address(&pods, &selector).await? {
        Some(ip) => archive_report::read(&ip).await,
        None => Err("its Pod has no address".to_string()),
    };
    match read {
        Ok(report) => {
            let was_short = window_too_short(status.oplog_window_seconds, span_seconds);
            archive_report::show(&mut status, &report);
            if window_too_short(status.oplog_window_seconds, span_seconds) {
                let window = status.oplog_window_seconds.unwrap_or_default();
                let warning = format!(
                    "the oplog holds {window} s, under twice the span ({span_seconds} s): an archiver stopped for a span \
                     or two would find it rolled past the archive. Make the oplog larger (mongod.config \
                     replication.oplogSizeMB) or spanMinutes shorter"
                );
                if !was_short {
                    events.warning("OplogWindowShort", "Archive", warning.clone()).await;
                }
                status.message = Some(format!("{}; {warning}", status.message.clone().unwrap_or_default()));
            }
            for gap in archive_report::new_gaps(&before, &status.gaps) {
                let message = format!(
                    "the oplog archive of {cluster_name} has a gap after {}: nothing between then and {} can be \
                     restored{}",
                    gap.after.0,
                    gap.resumed_after.as_ref().map_or_else(|| "the next base backup".to_string(), |t| t.0.to_string()),
                    if gap.resumed_after.is_none() {
                        "; archiving resumes after the schedule's next backup (or a one-off MongoBackup now)"
                    } else {
                        ""
                    }
                );
                events.warning("OplogArchiveGap", "Archive", message).await;
            }
        }
        Err(error) => {
            status.message =
                Some(format!("archiving; its report cannot be read ({error}): the window shown is the last one read"));
        }
    }
    Ok((Some(status), Some(std::time::Duration::from_secs(span_seconds.unsigned_abs()))))
}
