//! The read stage: everything a reconcile looks at, fetched once at its start.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::api::MongoClusterSpec;
use crate::build::labels::{self, labels};
use crate::build::names::ClusterNames;
use crate::build::secrets::USER_COMPONENT;
use crate::build::services::MEMBER_SERVICE_COMPONENT;
use crate::controller::error::{Error, KubeContext};

/// A member Pod, reduced to what the reconcile decides on.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberPod {
    pub name: String,
    pub ordinal: i32,
    /// The Pod's IP, once it has one.
    pub ip: Option<String>,
    /// The StatefulSet revision the Pod was created from.
    pub revision: Option<String>,
    /// Running, with mongod ready: the Pod's Ready condition, or (when only the metrics
    /// exporter keeps the Pod from being Ready) mongod's own container. A broken exporter never
    /// holds up a rollout or makes a member count as down.
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
    pub uid: Option<String>,
    /// When the Pod was created (a restart creates a new one).
    pub created: Option<k8s_openapi::jiff::Timestamp>,
    /// Whether the member was started with TLS on (its template's restart token).
    pub tls_started: bool,
    /// The CA file the operator verifies the member's certificate with, when it dials it over
    /// TLS; set once the certificates stage has run.
    pub ca_file: Option<std::path::PathBuf>,
    /// A person asked for this Pod to be restarted (the restart annotation names its UID).
    pub restart_requested: bool,
    /// Its `mongo.operator.rs/serves-clients` label, when it has one.
    pub serves_clients: Option<bool>,
    /// The arbiter's Pod (`<cluster>-arbiter-0`, ordinal 0 of its own StatefulSet).
    pub arbiter: bool,
}

impl MemberPod {
    /// None for a Pod that is not one of the members' StatefulSet's (its name lacks the
    /// ordinal suffix: the arbiter's is not).
    pub fn from_pod(names: &ClusterNames, pod: &Pod) -> Option<MemberPod> {
        let ordinal: i32 = pod.name_any().strip_prefix(&format!("{}-", names.statefulset()))?.parse().ok()?;
        Some(MemberPod::read(pod, ordinal, false))
    }

    /// The arbiter's Pod.
    pub fn arbiter(names: &ClusterNames, pod: &Pod) -> Option<MemberPod> {
        (pod.name_any() == names.arbiter_pod()).then(|| MemberPod::read(pod, 0, true))
    }

    /// The member's host in the replica-set config.
    pub fn host(&self, names: &ClusterNames, domain: &str) -> String {
        if self.arbiter { names.arbiter_host(domain) } else { names.member_host(self.ordinal, domain) }
    }

    fn read(pod: &Pod, ordinal: i32, arbiter: bool) -> MemberPod {
        let name = pod.name_any();
        let status = pod.status.as_ref();
        let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
        let ready_condition = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let containers = status.and_then(|s| s.container_statuses.as_deref()).unwrap_or_default();
        let mongod_ready = containers.iter().any(|c| c.name == "mongod" && c.ready);
        let only_exporter_unready = containers.iter().filter(|c| !c.ready).all(|c| c.name == "exporter");
        let ready_condition = ready_condition || (mongod_ready && only_exporter_unready);
        MemberPod {
            ordinal,
            ip: status.and_then(|s| s.pod_ip.clone()).filter(|ip| !ip.is_empty()),
            revision: pod.labels().get("controller-revision-hash").cloned(),
            ready: running && ready_condition,
            terminating: pod.metadata.deletion_timestamp.is_some(),
            uid: pod.metadata.uid.clone(),
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            tls_started: pod
                .annotations()
                .get(crate::build::statefulset::TLS_RESTART_ANNOTATION)
                .and_then(|t| super::tls_mode::token_mode(t))
                .is_some_and(|m| m.on()),
            ca_file: None,
            restart_requested: false,
            serves_clients: pod.labels().get(crate::build::labels::SERVES_CLIENTS_LABEL).map(|v| v == "true"),
            arbiter,
            name,
        }
    }
}

/// The revision new Pods are created from, taken from the StatefulSet as the apply returned it;
/// None until the StatefulSet controller has seen the latest spec, so a template changed by
/// this very reconcile is never mistaken for one already rolled out.
pub fn update_revision(sts: &StatefulSet) -> Option<String> {
    let status = sts.status.as_ref()?;
    (status.observed_generation == sts.metadata.generation).then(|| status.update_revision.clone()).flatten()
}

/// A Secret's value as UTF-8 text; None when the key is missing or not text.
pub use crate::build::secrets::text as secret_text;

/// What the reconcile starts from.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub pods: Vec<MemberPod>,
    /// The internal Secret's data, when it exists.
    pub internal_secret: Option<Secret>,
    /// Connection Secrets of this cluster's users, by name.
    pub user_secrets: BTreeMap<String, Secret>,
    /// Secrets named by `spec.users[].passwordSecretRef`, by name; None when missing.
    pub password_secrets: BTreeMap<String, Option<Secret>>,
    /// Secrets a user's connection Secret name points at that are not this cluster's
    /// connection Secrets (another cluster's, its internal Secret, an application's), by name,
    /// with whose they are: the operator never writes to or deletes them.
    pub foreign_secrets: BTreeMap<String, String>,
    /// The members' StatefulSet, when it exists.
    pub statefulset: Option<StatefulSet>,
    /// The arbiter's Pod (`spec.arbiter`), when it exists.
    pub arbiter: Option<MemberPod>,
    /// The arbiter's StatefulSet, when it exists.
    pub arbiter_statefulset: Option<StatefulSet>,
    /// The members' own Services (`expose.perMember`) that exist, with their load balancer's
    /// host name once they have one.
    pub member_services: super::external::MemberServices,
}

impl World {
    /// The member Pods' connections verify their certificate with this CA file.
    pub fn verify_members_with(&mut self, ca_file: &std::path::Path) {
        for pod in self.pods.iter_mut().chain(self.arbiter.as_mut()) {
            pod.ca_file = Some(ca_file.to_path_buf());
        }
    }

    /// Every Pod that runs a mongod of the set: the members' and the arbiter's.
    pub fn mongods(&self) -> Vec<MemberPod> {
        self.pods.iter().chain(self.arbiter.as_ref()).cloned().collect()
    }

    /// The TLS restart token of the StatefulSet's Pod template.
    pub fn tls_token(&self) -> Option<&str> {
        let template = self.statefulset.as_ref()?.spec.as_ref()?.template.metadata.as_ref()?;
        template.annotations.as_ref()?.get(crate::build::statefulset::TLS_RESTART_ANNOTATION).map(String::as_str)
    }
}

/// Whose a Secret that is not one of this cluster's connection Secrets is, for the message.
fn whose(secret: &Secret) -> String {
    let labels = secret.labels();
    match (labels.get("app.kubernetes.io/instance"), labels.get("app.kubernetes.io/component")) {
        (Some(cluster), Some(component))
            if labels.get("app.kubernetes.io/managed-by").map(String::as_str) == Some(labels::MANAGED_BY) =>
        {
            format!("it is the {component} Secret of cluster {cluster}")
        }
        _ => "the operator did not create it".to_string(),
    }
}

pub async fn read(client: &Client, names: &ClusterNames, spec: &MongoClusterSpec) -> Result<World, Error> {
    let ns = &names.namespace;
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = pods_api
        .list(&ListParams::default().labels(&labels::selector_query(&names.cluster)))
        .await
        .doing(|| format!("listing the member Pods of {}", names.cluster))?;
    let arbiter = pods.items.iter().find_map(|p| MemberPod::arbiter(names, p));
    let mut pods: Vec<MemberPod> = pods.items.iter().filter_map(|p| MemberPod::from_pod(names, p)).collect();
    pods.sort_by_key(|p| p.ordinal);

    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let internal_secret = secrets
        .get_opt(&names.internal_secret())
        .await
        .doing(|| format!("reading Secret {}", names.internal_secret()))?;
    let mut user_labels = labels(&names.cluster, USER_COMPONENT);
    user_labels.retain(|k, _| k == "app.kubernetes.io/instance" || k == "app.kubernetes.io/component");
    let user_secrets: BTreeMap<String, Secret> = secrets
        .list(&ListParams::default().labels(&labels::query(&user_labels)))
        .await
        .doing(|| format!("listing the connection Secrets of {}", names.cluster))?
        .items
        .into_iter()
        .map(|s| (s.name_any(), s))
        .collect();
    // A name the list did not return is either free (the Secret is created) or somebody
    // else's: one read each, only for users whose Secret is not there yet.
    let mut foreign_secrets = BTreeMap::new();
    for user in &spec.users {
        let name = crate::controller::cluster::users::secret_name(names, user);
        if user_secrets.contains_key(&name) || foreign_secrets.contains_key(&name) {
            continue;
        }
        if let Some(secret) = secrets.get_opt(&name).await.doing(|| format!("reading Secret {name}"))? {
            foreign_secrets.insert(name, whose(&secret));
        }
    }
    let mut password_secrets = BTreeMap::new();
    for r in spec.users.iter().filter_map(|u| u.password_secret_ref.as_ref()) {
        if !password_secrets.contains_key(&r.name) {
            let s = secrets.get_opt(&r.name).await.doing(|| format!("reading Secret {}", r.name))?;
            password_secrets.insert(r.name.clone(), s);
        }
    }
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), ns);
    let statefulset = statefulsets
        .get_opt(&names.statefulset())
        .await
        .doing(|| format!("reading StatefulSet {}", names.statefulset()))?;
    // The arbiter's only where there is one to keep or to delete: its Pod runs, or the spec
    // wants it (a GET each, cheaper for the API server than a LIST of the namespace's
    // StatefulSets for every reconcile).
    let arbiter_statefulset = match spec.arbiter.enabled || arbiter.is_some() {
        true => statefulsets
            .get_opt(&names.arbiter_statefulset())
            .await
            .doing(|| format!("reading StatefulSet {}", names.arbiter_statefulset()))?,
        false => None,
    };
    let mut service_labels = labels(&names.cluster, MEMBER_SERVICE_COMPONENT);
    service_labels.retain(|k, _| k == "app.kubernetes.io/instance" || k == "app.kubernetes.io/component");
    let member_services = Api::<Service>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&labels::query(&service_labels)))
        .await
        .doing(|| format!("listing the member Services of {}", names.cluster))?
        .items
        .iter()
        .map(|s| (s.name_any(), super::external::load_balancer_hostname(s)))
        .collect();
    Ok(World {
        pods,
        arbiter,
        internal_secret,
        user_secrets,
        password_secrets,
        foreign_secrets,
        statefulset,
        arbiter_statefulset,
        member_services,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ready_condition: bool, containers: &[(&str, bool)]) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ledger-1"},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": if ready_condition { "True" } else { "False" }}],
                "containerStatuses": containers.iter().map(|(name, ready)| serde_json::json!({
                    "name": name, "ready": ready, "image": "i", "imageID": "", "restartCount": 0,
                })).collect::<Vec<_>>(),
            },
        }))
        .expect("pod")
    }

    #[test]
    fn a_member_is_ready_by_its_mongod_whatever_its_exporter_does() {
        let names = ClusterNames::new("ledger", "bank");
        let ready = |p: &Pod| MemberPod::from_pod(&names, p).expect("member").ready;
        assert!(ready(&pod(true, &[("mongod", true), ("exporter", true)])));
        // A crash-looping exporter makes the Pod not Ready; the member is still ready.
        assert!(ready(&pod(false, &[("mongod", true), ("exporter", false)])));
        assert!(!ready(&pod(false, &[("mongod", false), ("exporter", true)])));
        assert!(!ready(&pod(false, &[("mongod", false), ("exporter", false)])));
        // Without container statuses, the Pod's condition decides.
        assert!(!ready(&pod(false, &[])));
    }
}
