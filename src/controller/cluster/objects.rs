//! The apply stage for the Kubernetes objects of a cluster: the internal Secret (created once,
//! never overwritten), mongod.conf, the Services, the PodDisruptionBudget, the StatefulSet, and
//! who owns the volumes.

use k8s_openapi::api::apps::v1::StatefulSet;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, Secret, Service, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_quantity::ParsedQuantity;

use crate::api::{DeletionPolicy, MongoClusterSpec, RestoreStatus};
use crate::build::backup_job::BACKUP_USER;
use crate::build::exporter::{MONITOR_PASSWORD_KEY, MONITOR_USER};
use crate::build::names::ClusterNames;
use crate::build::network_policy::{self, DnsPeer, OperatorPeer};
use crate::build::secrets::{
    self, BACKUP_PASSWORD_KEY, KEY_FILE_KEY, LEGACY_RESTORE_PASSWORD_KEY, OPERATOR_PASSWORD_KEY,
};
use crate::build::{mongod_conf, pdb, services, statefulset};
use crate::controller::error::{Error, KubeContext};
use crate::controller::ssa::{apply, delete_if_exists};
use crate::mongo::Credentials;

use super::tls_mode::TlsPlan;

/// The two credentials the internal Secret holds.
#[derive(Clone)]
pub struct InternalCredentials {
    /// `__system@local`, derived from the keyFile.
    pub system: Credentials,
    /// `mongo-operator-admin@admin`.
    pub operator: Credentials,
    /// The backup Jobs' user (role `backup` only).
    pub backup: Credentials,
    /// The metrics exporter's user (`clusterMonitor`, and `read` on local).
    pub monitor: Credentials,
    /// Digest of its password, for the members' Pod template.
    pub monitor_digest: String,
    /// Digest of the agent users' passwords, to tell whether MongoDB has them.
    pub agents_digest: String,
    /// The digest MongoDB is known to have (an annotation of the internal Secret).
    pub agents_applied: Option<String>,
    /// Digest of the operator's own password.
    pub operator_digest: String,
    /// The digest of the operator's password MongoDB is known to have: until it matches, the
    /// operator's user may not exist, so the operator logs in as `__system` rather than try it.
    pub operator_applied: Option<String>,
    /// The backup this cluster's data was restored from, once that restore succeeded (an
    /// annotation of the internal Secret, which outlives the MongoCluster under `Retain`).
    pub restored_from: Option<String>,
    /// The status that restore's success was reported with, when the Secret records it
    /// (operators before it recorded only `restored_from`) and it can be read.
    pub restore_result: Option<RestoreStatus>,
}

/// Annotation of the internal Secret: digest of the agent users' passwords last applied.
pub const AGENTS_APPLIED_ANNOTATION: &str = "mongo.operator.rs/agent-users-applied";
/// Annotation of the internal Secret: digest of the operator's own password, once MongoDB has
/// the operator's user with it.
pub const OPERATOR_APPLIED_ANNOTATION: &str = "mongo.operator.rs/operator-user-applied";
/// Annotation of the internal Secret: the backup the data was restored from. A MongoCluster
/// re-created over kept volumes and Secrets (same manifest, `bootstrap` included) finds it and
/// never restores over the data again.
pub const RESTORED_FROM_ANNOTATION: &str = "mongo.operator.rs/restored-from";
/// Annotation of the internal Secret: the succeeded restore's status, as JSON. A reconcile
/// that starts from a cached MongoCluster older than the status write of the success (the
/// annotation's own change queues one at once) reports the success as it was written, rather
/// than a different message of its own.
pub const RESTORE_RESULT_ANNOTATION: &str = "mongo.operator.rs/restore-result";

fn secret_text(secret: &Secret, key: &str) -> Result<String, Error> {
    super::world::secret_text(secret, key).ok_or_else(|| Error::Secret {
        secret: secret.name_any(),
        problem: format!("has no key {key:?}, or it is not UTF-8 text"),
    })
}

pub fn credentials(secret: &Secret) -> Result<InternalCredentials, Error> {
    let key_file = secret_text(secret, KEY_FILE_KEY)?;
    let stripped: String = key_file.chars().filter(|c| !c.is_whitespace()).collect();
    // mongod's own checks (6 to 1024 base64 characters), so a bad user-supplied keyFile is
    // reported here rather than as members that never start.
    let base64 = stripped.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=');
    if !(6..=1024).contains(&stripped.len()) || !base64 {
        return Err(Error::Secret {
            secret: secret.name_any(),
            problem: format!("key {KEY_FILE_KEY:?} must hold 6 to 1024 base64 characters, as mongod requires"),
        });
    }
    let password = secret_text(secret, OPERATOR_PASSWORD_KEY)?;
    let backup = secret_text(secret, BACKUP_PASSWORD_KEY)?;
    let monitor = secret_text(secret, MONITOR_PASSWORD_KEY)?;
    let monitor_digest = secrets::password_digest("admin", MONITOR_USER, &monitor);
    Ok(InternalCredentials {
        system: Credentials::from_key_file(&key_file),
        operator: Credentials::scram(crate::mongo::OPERATOR_USER, "admin", &password),
        // The digest covers the backup and monitoring users: one that covered the restore
        // user too (an older operator's), or the backup user alone (before the monitoring
        // user), differs, so the agents are applied once more then.
        agents_digest: format!("{}-{monitor_digest}", secrets::password_digest("admin", BACKUP_USER, &backup)),
        monitor: Credentials::scram(MONITOR_USER, "admin", &monitor),
        monitor_digest,
        agents_applied: secret.annotations().get(AGENTS_APPLIED_ANNOTATION).cloned(),
        operator_digest: secrets::password_digest("admin", crate::mongo::OPERATOR_USER, &password),
        operator_applied: secret.annotations().get(OPERATOR_APPLIED_ANNOTATION).cloned(),
        restored_from: secret.annotations().get(RESTORED_FROM_ANNOTATION).cloned(),
        // Only ever written by the operator; one that does not parse (edited by hand) is
        // treated as absent, and the restore is still never repeated.
        restore_result: secret
            .annotations()
            .get(RESTORE_RESULT_ANNOTATION)
            .and_then(|json| serde_json::from_str(json).ok()),
        backup: Credentials::scram(BACKUP_USER, "admin", &backup),
    })
}

/// Reads the internal Secret, creating it with fresh random values when it does not exist.
/// Says whether it was created, and whose it was when it is adopted: a Secret not yet bound
/// to this cluster's UID (one kept from an earlier cluster of the same name) is bound to it.
/// It is created, never applied: a Secret that exists (the operator's from an earlier life, or
/// one the user made with their own keyFile) is never overwritten.
pub async fn ensure_internal_secret(
    client: &Client,
    names: &ClusterNames,
    spec: &MongoClusterSpec,
    owner: &OwnerReference,
    existing: Option<Secret>,
) -> Result<(InternalCredentials, bool, Option<String>), Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    let (secret, created) = match existing {
        Some(s) => (s, false),
        None => {
            let fresh = secrets::internal(
                names,
                spec.deletion_policy,
                owner,
                &secrets::generate::key_file(),
                &secrets::generate::password(),
            );
            match api
                .create(
                    &PostParams {
                        field_manager: Some(crate::build::labels::FIELD_MANAGER.into()),
                        ..PostParams::default()
                    },
                    &fresh,
                )
                .await
            {
                Ok(s) => (s, true),
                // Another reconcile (an earlier operator) got there first: use its Secret.
                Err(kube::Error::Api(e)) if e.code == 409 => (
                    api.get(&names.internal_secret())
                        .await
                        .doing(|| format!("reading Secret {}", names.internal_secret()))?,
                    false,
                ),
                Err(source) => {
                    return Err(Error::Kube { action: format!("creating Secret {}", names.internal_secret()), source });
                }
            }
        }
    };
    let adopted = adopted_from(&secret, owner);
    let bound = secrets::bound_uid(&secret) == Some(owner.uid.as_str());
    if !has_owner(&secret.metadata, owner, spec.deletion_policy) || !bound {
        apply(&api, &secrets::internal_ownership(names, spec.deletion_policy, owner)).await?;
    }
    let secret = add_agent_passwords(&api, secret).await?;
    Ok((credentials(&secret)?, created, adopted))
}

/// Whose the internal Secret was when it is not yet bound to this cluster: "an earlier cluster
/// of the same name (UID …)" for one kept under `deletionPolicy: Retain`, or "no cluster" for
/// one made by hand or by an older operator. None when it is this cluster's (bound to its UID,
/// or owned by it).
pub fn adopted_from(secret: &Secret, owner: &OwnerReference) -> Option<String> {
    let owned = secret.metadata.owner_references.as_ref().is_some_and(|o| o.iter().any(|r| r.uid == owner.uid));
    match secrets::bound_uid(secret) {
        Some(uid) if uid == owner.uid => None,
        None if owned => None,
        Some(uid) => Some(format!("an earlier cluster of the same name (UID {uid})")),
        None => Some("no cluster (made by hand, or by an older operator)".into()),
    }
}

/// Adds the backup and monitoring users' passwords to the internal Secret when it lacks them
/// (a Secret made by an earlier version, or by a user, or one whose password was deleted to
/// have a new one made), never replacing one, and removes the password of the restore user
/// older operators kept there.
async fn add_agent_passwords(api: &Api<Secret>, secret: Secret) -> Result<Secret, Error> {
    let has = |key: &str| secret.data.as_ref().is_some_and(|d| d.contains_key(key));
    let missing: Vec<&str> = [BACKUP_PASSWORD_KEY, MONITOR_PASSWORD_KEY].into_iter().filter(|k| !has(k)).collect();
    if missing.is_empty() && !has(LEGACY_RESTORE_PASSWORD_KEY) {
        return Ok(secret);
    }
    let mut data = serde_json::Map::new();
    if has(LEGACY_RESTORE_PASSWORD_KEY) {
        data.insert(LEGACY_RESTORE_PASSWORD_KEY.into(), serde_json::Value::Null);
    }
    let mut patch = serde_json::json!({ "data": data });
    if !missing.is_empty() {
        let generated: serde_json::Map<String, serde_json::Value> =
            missing.iter().map(|k| (k.to_string(), secrets::generate::password().into())).collect();
        patch["stringData"] = serde_json::Value::Object(generated);
    }
    let name = secret.name_any();
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .doing(|| format!("keeping the agent users' passwords in Secret {name}"))
}

/// Records that MongoDB has the agent users with the passwords of `digest`.
pub async fn mark_agents_applied(client: &Client, names: &ClusterNames, digest: &str) -> Result<(), Error> {
    annotate_internal_secret(client, names, BTreeMap::from([(AGENTS_APPLIED_ANNOTATION, digest)])).await
}

/// Records that MongoDB has the operator's own user with the password of `digest`.
pub async fn mark_operator_applied(client: &Client, names: &ClusterNames, digest: &str) -> Result<(), Error> {
    annotate_internal_secret(client, names, BTreeMap::from([(OPERATOR_APPLIED_ANNOTATION, digest)])).await
}

/// Records, for good and in one write, that the data was restored from `source` and the
/// status the success is reported with.
pub async fn mark_restored(
    client: &Client,
    names: &ClusterNames,
    source: &str,
    result: &RestoreStatus,
) -> Result<(), Error> {
    let result = serde_json::to_string(result)
        .map_err(|e| Error::Secret { secret: names.internal_secret(), problem: e.to_string() })?;
    annotate_internal_secret(
        client,
        names,
        BTreeMap::from([(RESTORED_FROM_ANNOTATION, source), (RESTORE_RESULT_ANNOTATION, result.as_str())]),
    )
    .await
}

async fn annotate_internal_secret(
    client: &Client,
    names: &ClusterNames,
    annotations: BTreeMap<&str, &str>,
) -> Result<(), Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    let patch = serde_json::json!({ "metadata": { "annotations": annotations } });
    api.patch(&names.internal_secret(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .doing(|| format!("annotating Secret {}", names.internal_secret()))?;
    Ok(())
}

/// Whether `meta` is owned by the cluster exactly when the policy says it should be.
fn has_owner(meta: &ObjectMeta, owner: &OwnerReference, policy: DeletionPolicy) -> bool {
    let owned = meta.owner_references.as_ref().is_some_and(|o| o.iter().any(|r| r.uid == owner.uid));
    owned == (policy == DeletionPolicy::Delete)
}

/// What the members' objects are built from besides the spec.
pub struct Members<'a> {
    pub operator_image: &'a str,
    pub operator: &'a OperatorPeer,
    pub resolver: &'a DnsPeer,
    /// May exceed `spec.members` while members above it are still in the replica set.
    pub replicas: i32,
    pub tls: &'a TlsPlan,
    /// The StatefulSet as it is, when it exists.
    pub current: Option<&'a StatefulSet>,
    /// The members' own Services that exist.
    pub existing_member_services: &'a super::external::MemberServices,
    /// Digest of the monitoring user's password (see [`statefulset::Inputs`]).
    pub exporter_credentials: &'a str,
    /// Whether the arbiter's StatefulSet stays: the spec wants an arbiter, or the replica set
    /// still has one (an arbiter leaves the set before its Pod goes), or the set could not be
    /// looked at while the StatefulSet exists.
    pub arbiter: bool,
    /// The arbiter's StatefulSet exists (so turning the arbiter off deletes it).
    pub arbiter_exists: bool,
    /// What restarts the arbiter for TLS ([`statefulset::arbiter_tls_key`]).
    pub arbiter_tls: &'a str,
}

/// The StatefulSets as the apply returned them, for their update revisions.
pub struct Applied {
    pub members: StatefulSet,
    /// None when the cluster has no arbiter (its StatefulSet was deleted, or never made).
    pub arbiter: Option<StatefulSet>,
}

/// Applies everything the members need.
pub async fn apply_all(
    client: &Client,
    names: &ClusterNames,
    spec: &MongoClusterSpec,
    owner: &OwnerReference,
    m: &Members<'_>,
) -> Result<Applied, Error> {
    let Members {
        operator_image,
        operator,
        resolver,
        replicas,
        tls,
        current,
        existing_member_services,
        exporter_credentials,
        arbiter,
        arbiter_exists,
        arbiter_tls,
    } = *m;
    let ns = &names.namespace;
    let user = spec.mongod.as_ref().and_then(|m| m.config.as_ref());
    let rendered = mongod_conf::render(user, tls.conf)?;
    apply(&Api::<ConfigMap>::namespaced(client.clone(), ns), &mongod_conf::config_map(names, &rendered, owner)).await?;
    let svc: Api<Service> = Api::namespaced(client.clone(), ns);
    apply(&svc, &services::headless(names, owner)).await?;
    apply(&svc, &services::client(names, &spec.expose, owner)).await?;
    member_services(&svc, names, spec, owner, replicas, existing_member_services).await?;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    match pdb::build(names, &spec.pod_disruption_budget, super::replica_set::votes_wanted(spec), owner) {
        Some(p) => {
            apply(&pdbs, &p).await?;
        }
        None => delete_if_exists(&pdbs, &names.pod_disruption_budget()).await?,
    }
    isolation(client, names, spec, owner, (operator, resolver)).await?;
    let hash = mongod_conf::hash(user, tls.conf)?;
    let tls_on = super::tls_mode::token_mode(&tls.token).is_some_and(|m| m.on());
    let inputs = statefulset::Inputs {
        names,
        spec,
        owner,
        operator_image,
        config_hash: &hash,
        replicas,
        tls_token: &tls.token,
        tls_on,
        exporter_credentials,
    };
    let mut sts = statefulset::build(&inputs);
    let sts_api = Api::<StatefulSet>::namespaced(client.clone(), ns);
    // The API server refuses any change to volumeClaimTemplates, so the template keeps the size
    // the cluster was created with; `volumes` grows the claims themselves.
    if let (Some(current), Some(built)) = (current.and_then(|c| c.spec.as_ref()), sts.spec.as_mut()) {
        built.volume_claim_templates = current.volume_claim_templates.clone();
    }
    let members = apply(&sts_api, &sts).await?;
    let arbiter = if arbiter {
        Some(apply(&sts_api, &statefulset::arbiter(&inputs, arbiter_tls)).await?)
    } else {
        if arbiter_exists {
            delete_if_exists(&sts_api, &names.arbiter_statefulset()).await?;
        }
        None
    };
    Ok(Applied { members, arbiter })
}

/// With `expose.perMember`, a Service for each of the `replicas` Pods (a member that is leaving
/// keeps its own until its Pod is gone, as clients may still be connected to it); every other
/// member Service is deleted, so scaling down or ending the exposure removes them.
async fn member_services(
    api: &Api<Service>,
    names: &ClusterNames,
    spec: &MongoClusterSpec,
    owner: &OwnerReference,
    replicas: i32,
    existing: &super::external::MemberServices,
) -> Result<(), Error> {
    let mut wanted = Vec::new();
    if let Some(per_member) = &spec.expose.per_member {
        for ordinal in 0..replicas {
            apply(api, &services::member(names, per_member, ordinal, owner)).await?;
            wanted.push(names.member_service(ordinal));
        }
    }
    for name in existing.keys().filter(|n| !wanted.contains(n)) {
        delete_if_exists(api, name).await?;
    }
    Ok(())
}

/// The baseline NetworkPolicies of the members and of the cluster's Jobs, or none when
/// isolation is off.
async fn isolation(
    client: &Client,
    names: &ClusterNames,
    spec: &MongoClusterSpec,
    owner: &OwnerReference,
    (operator, resolver): (&OperatorPeer, &DnsPeer),
) -> Result<(), Error> {
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), &names.namespace);
    if spec.network_isolation.enabled {
        apply(&api, &network_policy::members(names, &spec.expose, operator, resolver, owner)).await?;
        apply(&api, &network_policy::jobs(names, &spec.network_isolation.object_stores, operator, resolver, owner))
            .await?;
    } else {
        for name in [network_policy::members_policy_name(names), network_policy::jobs_policy_name(names)] {
            delete_if_exists(&api, &name).await?;
        }
    }
    Ok(())
}

/// With `deletionPolicy: Delete` every volume of the cluster (including those kept after a
/// scale-down) is owned by it, so deleting the cluster deletes them; with `Retain` none is.
/// Claims smaller than `spec.storage.size` are grown (online expansion, where the StorageClass
/// allows it). Returns the claims the API server refused to grow, with its reason.
pub async fn volumes(
    client: &Client,
    names: &ClusterNames,
    spec: &MongoClusterSpec,
    owner: &OwnerReference,
) -> Result<Vec<String>, Error> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &names.namespace);
    let selector = crate::build::labels::selector_query(&names.cluster);
    let claims = api.list(&ListParams::default().labels(&selector)).await.doing(|| "listing volumes".into())?;
    let policy = spec.deletion_policy;
    let wanted = ParsedQuantity::try_from(&Quantity(spec.storage.size.clone())).ok();
    let mut refused = Vec::new();
    for claim in &claims.items {
        let name = claim.name_any();
        let requested = claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(|q| ParsedQuantity::try_from(q).ok());
        let grow = matches!((&requested, &wanted), (Some(r), Some(w)) if w > r);
        if has_owner(&claim.metadata, owner, policy) && !grow {
            continue;
        }
        let patch = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(names.namespace.clone()),
                owner_references: (policy == DeletionPolicy::Delete)
                    .then(|| vec![OwnerReference { controller: Some(false), ..owner.clone() }]),
                ..ObjectMeta::default()
            },
            spec: grow.then(|| PersistentVolumeClaimSpec {
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".to_string(), Quantity(spec.storage.size.clone()))])),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        };
        match apply(&api, &patch).await {
            Ok(_) => {}
            // The StorageClass does not allow expansion (or the volume cannot grow): say so,
            // and keep everything else going.
            Err(Error::Kube { source: kube::Error::Api(e), .. }) if grow && (e.code == 422 || e.code == 403) => {
                refused.push(format!("{name}: {}", e.message));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;
    use crate::api::RestorePhase;

    fn internal_secret(annotations: &[(&str, &str)]) -> Secret {
        let data = [
            (KEY_FILE_KEY, "c2VjcmV0a2V5ZmlsZQ=="),
            (OPERATOR_PASSWORD_KEY, "op"),
            (BACKUP_PASSWORD_KEY, "bk"),
            (MONITOR_PASSWORD_KEY, "mon"),
        ];
        Secret {
            metadata: ObjectMeta {
                name: Some("orders-internal".into()),
                annotations: Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..ObjectMeta::default()
            },
            data: Some(data.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect()),
            ..Secret::default()
        }
    }

    #[test]
    fn a_recorded_restore_reads_back_as_the_status_it_was_reported_with() {
        let result = RestoreStatus {
            phase: RestorePhase::Succeeded,
            source: Some("MongoBackup nightly".into()),
            checksum: Some("sha256:ab".into()),
            message: Some("restored MongoBackup nightly from the copy in ovh".into()),
            ..RestoreStatus::default()
        };
        let json = serde_json::to_string(&result).expect("serialize");
        let creds = credentials(&internal_secret(&[
            (RESTORED_FROM_ANNOTATION, "MongoBackup nightly"),
            (RESTORE_RESULT_ANNOTATION, &json),
        ]))
        .expect("credentials");
        assert_eq!(creds.restored_from.as_deref(), Some("MongoBackup nightly"));
        assert_eq!(creds.restore_result, Some(result));

        // Edited by hand into something else: the record is dropped, the restore stays done.
        let creds = credentials(&internal_secret(&[
            (RESTORED_FROM_ANNOTATION, "MongoBackup nightly"),
            (RESTORE_RESULT_ANNOTATION, "{not json"),
        ]))
        .expect("credentials");
        assert_eq!(creds.restored_from.as_deref(), Some("MongoBackup nightly"));
        assert_eq!(creds.restore_result, None);
    }
}
