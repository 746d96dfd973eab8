//! One test's world on the control plane for the MongoCluster controller tests: its namespace,
//! its own operator, and the waits and reads those tests share.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use mongo_operator::api::MongoCluster;

use super::operator::Operator;
use super::*;

pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// A test's world: its namespace, operator and simulated members.
pub struct Env {
    pub client: Client,
    pub ns: String,
    pub operator: Option<Operator>,
}

impl Env {
    pub async fn new(prefix: &str) -> Env {
        let client = client().await;
        install_crds(&client).await;
        let ns = namespace(&client, prefix).await;
        let operator = Some(Operator::start(&ns));
        Env { client, ns, operator }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub async fn create_cluster(&self, yaml: &str) -> MongoCluster {
        create_typed(&self.client, &self.ns, yaml).await
    }

    pub async fn patch_spec(&self, name: &str, spec: serde_json::Value) {
        self.api::<MongoCluster>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "spec": spec })))
            .await
            .expect("patch MongoCluster");
    }

    /// Waits until the cluster reports Ready for its current generation, and returns it.
    pub async fn ready(&self, name: &str) -> MongoCluster {
        let api = self.api::<MongoCluster>();
        let log = self.operator.as_ref().map(|o| o.log.clone());
        let found = tokio::time::timeout(READY_TIMEOUT, async {
            loop {
                if let Ok(c) = api.get(name).await
                    && is_ready(&c)
                {
                    return c;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
        .await;
        match found {
            Ok(c) => c,
            Err(_) => {
                let c = api.get(name).await.ok();
                let log = log.map(|l| std::fs::read_to_string(l).unwrap_or_default()).unwrap_or_default();
                let tail: String =
                    log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
                panic!(
                    "{name} not Ready within {READY_TIMEOUT:?}; status: {:#?}\noperator log tail:\n{tail}",
                    c.and_then(|c| c.status)
                );
            }
        }
    }

    /// How many times an Event with this reason was recorded (the recorder folds repeats
    /// about one object into a series).
    pub async fn event_count(&self, reason: &str) -> i32 {
        self.events(reason).await.iter().map(|e| e.series.as_ref().map_or(1, |s| s.count)).sum()
    }

    /// The Events with this reason once at least `at_least` of them are recorded. The operator
    /// records an Event after the change it reports, so a test that saw the change first waits
    /// for the Event instead of racing it.
    pub async fn recorded(&self, reason: &str, at_least: usize) -> Vec<Event> {
        super::eventually(&format!("{at_least} {reason} Event(s)"), Duration::from_secs(30), || async {
            let events = self.events(reason).await;
            (events.len() >= at_least).then_some(events)
        })
        .await
    }

    pub async fn events(&self, reason: &str) -> Vec<Event> {
        let events: Api<Event> = self.api();
        events
            .list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect()
    }

    pub async fn pods(&self, cluster: &str) -> Vec<Pod> {
        let pods: Api<Pod> = self.api();
        let lp = ListParams::default().labels(&format!("app.kubernetes.io/instance={cluster}"));
        let mut items = pods.list(&lp).await.expect("list pods").items;
        items.sort_by_key(|p| p.name_any());
        items
    }

    /// Deletes the namespace of a test that passed; a failed test leaves its namespace (and
    /// the operator's log in `target/tmp/operator-logs/`) for a look.
    pub async fn finish(self) {
        if let Some(operator) = self.operator {
            operator.kill().await;
        }
        delete_namespace(&self.client, &self.ns).await;
    }

    pub async fn secret_text(&self, name: &str, key: &str) -> Option<String> {
        let s = self.api::<Secret>().get_opt(name).await.ok()??;
        String::from_utf8(s.data?.get(key)?.0.clone()).ok()
    }
}

pub fn is_ready(c: &MongoCluster) -> bool {
    let Some(status) = &c.status else { return false };
    status.observed_generation == c.metadata.generation
        && status
            .conditions
            .iter()
            .any(|x| x.type_ == "Ready" && x.status == "True" && x.observed_generation == c.metadata.generation)
}

/// The mongod container's memory limit of a Pod.
pub fn memory_limit(p: &Pod) -> String {
    p.spec.as_ref().unwrap().containers[0].resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"].0.clone()
}

pub fn cluster_yaml(name: &str, members: i32, extra: &str) -> String {
    format!(
        "apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoCluster\nmetadata:\n  name: {name}\nspec:\n  version: \"8.0.4\"\n  members: {members}\n  scheduling:\n    podAntiAffinity: Preferred\n{extra}"
    )
}
