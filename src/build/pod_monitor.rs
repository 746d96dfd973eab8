//! The Prometheus Operator `PodMonitor` of a cluster's members, when
//! `spec.monitoring.podMonitor.enabled`: their `metrics` port, with the cluster's name as the
//! `cluster` label of every series, which the alert rules and the dashboard group by.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::labels::{labels, selector};
use super::names::ClusterNames;
use super::network_policy::METRICS_PORT_NAME;
use crate::api::PodMonitorSpec;

/// `monitoring.coreos.com/v1` `PodMonitor`.
pub fn pod_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "PodMonitor"),
        "podmonitors",
    )
}

/// The relabeling every scrape of the members gets, here and in the chart's PodMonitor for
/// all clusters: the cluster's name from its members' instance label, as `cluster`.
pub fn cluster_relabeling() -> serde_json::Value {
    json!({
        "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
        "targetLabel": "cluster",
    })
}

pub fn pod_monitor(names: &ClusterNames, spec: &PodMonitorSpec, owner: &OwnerReference) -> DynamicObject {
    let mut all_labels = spec.labels.clone();
    all_labels.extend(labels(&names.cluster, "metrics"));
    let mut object = DynamicObject::new(&names.pod_monitor(), &pod_monitor_resource()).within(&names.namespace);
    object.metadata =
        ObjectMeta { labels: Some(all_labels), owner_references: Some(vec![owner.clone()]), ..object.metadata };
    let mut endpoint = json!({
        "port": METRICS_PORT_NAME,
        "path": "/metrics",
        "relabelings": [cluster_relabeling()],
    });
    if let Some(interval) = &spec.interval {
        endpoint["interval"] = json!(interval);
    }
    object.data = json!({
        "spec": {
            "selector": { "matchLabels": selector(&names.cluster) },
            "podMetricsEndpoints": [endpoint],
        }
    });
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_pod_monitor_scrapes_the_members_metrics_port_with_the_users_labels() {
        let names = ClusterNames::new("ledger", "bank");
        let owner = OwnerReference { name: "ledger".into(), ..OwnerReference::default() };
        let spec = PodMonitorSpec {
            enabled: true,
            labels: BTreeMap::from([("release".to_string(), "kube-prometheus-stack".to_string())]),
            interval: Some("30s".into()),
        };
        let m = pod_monitor(&names, &spec, &owner);
        assert_eq!(m.metadata.name.as_deref(), Some("ledger-mongodb"));
        assert_eq!(m.metadata.labels.as_ref().unwrap()["release"], "kube-prometheus-stack");
        let endpoint = &m.data["spec"]["podMetricsEndpoints"][0];
        assert_eq!(endpoint["port"], "metrics");
        assert_eq!(endpoint["interval"], "30s");
        assert_eq!(endpoint["relabelings"][0]["targetLabel"], "cluster");
        let selected = &m.data["spec"]["selector"]["matchLabels"];
        assert_eq!(selected["app.kubernetes.io/instance"], "ledger");
        assert_eq!(selected["app.kubernetes.io/component"], "database");
    }
}
