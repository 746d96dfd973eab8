//! The headless Service (stable member DNS, published before members are ready), the client
//! Service, and with `expose.perMember` a load-balanced Service for each member.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use std::collections::BTreeMap;

use super::labels::{SERVES_CLIENTS_LABEL, labels, selector};
use super::names::ClusterNames;
use super::owned_meta;
use crate::api::{ExposeSpec, ExposeType, LoadBalancerSpec, MemberExposeSpec};
use crate::replset::config::MONGODB_PORT;

/// Cloud annotations that make a load balancer internal (private network).
pub const INTERNAL_LB_ANNOTATIONS: &[(&str, &str)] = &[
    ("service.beta.kubernetes.io/aws-load-balancer-internal", "true"),
    ("service.beta.kubernetes.io/aws-load-balancer-scheme", "internal"),
    ("networking.gke.io/load-balancer-type", "Internal"),
    ("service.beta.kubernetes.io/azure-load-balancer-internal", "true"),
    ("service.beta.kubernetes.io/openstack-internal-load-balancer", "true"),
    ("service.beta.kubernetes.io/oci-load-balancer-internal", "true"),
];

fn port() -> ServicePort {
    ServicePort {
        name: Some("mongodb".into()),
        port: i32::from(MONGODB_PORT),
        target_port: Some(IntOrString::String("mongodb".into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// `clusterIP: None` with `publishNotReadyAddresses`: members must resolve each other before
/// any is ready, or no majority could ever form (`mongod-pod-facts.md` §7).
pub fn headless(names: &ClusterNames, owner: &OwnerReference) -> Service {
    Service {
        metadata: owned_meta(names, names.headless_service(), owner),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector(&names.cluster)),
            ports: Some(vec![port()]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Component label of the members' own Services, which the operator lists to delete those of
/// members that are gone.
pub const MEMBER_SERVICE_COMPONENT: &str = "member-service";

/// The Service clients use: private (ClusterIP) unless a load balancer is asked for, which is
/// internal by default and limited to the listed source ranges. It sends traffic only to the
/// members labelled as serving clients (the operator labels each Pod by its role).
pub fn client(names: &ClusterNames, expose: &ExposeSpec, owner: &OwnerReference) -> Service {
    let mut annotations = BTreeMap::new();
    // Only the members that serve clients: never a hidden or delayed one.
    let mut members = selector(&names.cluster);
    members.insert(SERVES_CLIENTS_LABEL.to_string(), "true".to_string());
    let mut spec = ServiceSpec { selector: Some(members), ports: Some(vec![port()]), ..ServiceSpec::default() };
    match (expose.type_, &expose.load_balancer) {
        (ExposeType::LoadBalancer, Some(lb)) => load_balanced(&mut spec, &mut annotations, lb),
        (ExposeType::LoadBalancer, None) => spec.type_ = Some("LoadBalancer".into()),
        (ExposeType::ClusterIP, _) => spec.type_ = Some("ClusterIP".into()),
    }
    Service {
        metadata: ObjectMeta {
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..owned_meta(names, names.client_service(), owner)
        },
        spec: Some(spec),
        status: None,
    }
}

/// The Service of the member with `ordinal`, for clients outside Kubernetes: a load balancer
/// in front of that one Pod (`statefulset.kubernetes.io/pod-name`). Not-ready addresses are
/// published, as for the headless Service: a replica-set client must reach a member that is
/// catching up to see it, and mongod itself says what it can serve. `externalTrafficPolicy:
/// Local` keeps the client's address, so that the members' NetworkPolicy sees who connects.
pub fn member(names: &ClusterNames, expose: &MemberExposeSpec, ordinal: i32, owner: &OwnerReference) -> Service {
    let mut annotations = BTreeMap::new();
    let mut spec = ServiceSpec {
        selector: Some(BTreeMap::from([("statefulset.kubernetes.io/pod-name".to_string(), names.pod(ordinal))])),
        ports: Some(vec![port()]),
        publish_not_ready_addresses: Some(true),
        external_traffic_policy: Some("Local".into()),
        ..ServiceSpec::default()
    };
    if let Some(lb) = &expose.load_balancer {
        load_balanced(&mut spec, &mut annotations, lb);
    } else if expose.node_port.is_some() {
        // The port is open on every node to every address; the members' NetworkPolicy admits
        // only `sourceRanges`, which it can check because `Local` keeps the client's address.
        spec.type_ = Some("NodePort".into());
        spec.ports = Some(vec![ServicePort { node_port: Some(expose.port(ordinal)), ..port() }]);
    }
    Service {
        metadata: ObjectMeta {
            annotations: (!annotations.is_empty()).then_some(annotations),
            labels: Some(labels(&names.cluster, MEMBER_SERVICE_COMPONENT)),
            ..owned_meta(names, names.member_service(ordinal), owner)
        },
        spec: Some(spec),
        status: None,
    }
}

/// A load balancer limited to the source ranges, internal unless asked otherwise.
fn load_balanced(spec: &mut ServiceSpec, annotations: &mut BTreeMap<String, String>, lb: &LoadBalancerSpec) {
    spec.type_ = Some("LoadBalancer".into());
    annotations.extend(lb.annotations.clone());
    // Last, so that no user annotation can turn an internal load balancer public (admission
    // refuses such annotations too).
    if lb.internal {
        annotations.extend(INTERNAL_LB_ANNOTATIONS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    }
    spec.load_balancer_source_ranges = Some(lb.source_ranges.iter().map(|c| c.0.clone()).collect());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Cidr;

    fn owner() -> OwnerReference {
        OwnerReference { name: "ledger".into(), uid: "u".into(), ..OwnerReference::default() }
    }

    #[test]
    fn a_member_service_is_an_internal_load_balancer_for_that_pod_only() {
        let names = ClusterNames::new("ledger", "bank");
        let expose = MemberExposeSpec {
            host_pattern: Some("db-{ordinal}.mongo.example.internal".into()),
            load_balancer: Some(LoadBalancerSpec {
                internal: true,
                source_ranges: vec![Cidr("10.30.0.0/16".into())],
                annotations: BTreeMap::from([("example.com/team".into(), "payments".into())]),
            }),
            node_port: None,
        };
        let service = member(&names, &expose, 2, &owner());
        assert_eq!(service.metadata.name.as_deref(), Some("ledger-2-external"));
        assert_eq!(
            service.metadata.labels.as_ref().and_then(|l| l.get("app.kubernetes.io/component")).map(String::as_str),
            Some(MEMBER_SERVICE_COMPONENT)
        );
        let annotations = service.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations.get("example.com/team").map(String::as_str), Some("payments"));
        assert_eq!(annotations.get("networking.gke.io/load-balancer-type").map(String::as_str), Some("Internal"));
        let spec = service.spec.unwrap_or_default();
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(
            spec.selector,
            Some(BTreeMap::from([("statefulset.kubernetes.io/pod-name".to_string(), "ledger-2".to_string())]))
        );
        assert_eq!(spec.load_balancer_source_ranges, Some(vec!["10.30.0.0/16".to_string()]));
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(expose.host(2).as_deref(), Some("db-2.mongo.example.internal"));
    }

    #[test]
    fn a_member_on_a_node_port_gets_the_base_port_plus_its_ordinal_on_the_node_that_runs_it() {
        let names = ClusterNames::new("ledger", "bank");
        let expose = MemberExposeSpec {
            host_pattern: Some("db-{ordinal}.mongo.example.internal".into()),
            load_balancer: None,
            node_port: Some(crate::api::NodePortSpec {
                base_port: 31017,
                source_ranges: vec![Cidr("10.30.0.0/16".into())],
            }),
        };
        let service = member(&names, &expose, 2, &owner());
        assert_eq!(service.metadata.annotations, None, "no load balancer annotations");
        let spec = service.spec.unwrap_or_default();
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        let ports = spec.ports.unwrap_or_default();
        assert_eq!(ports.len(), 1);
        assert_eq!((ports[0].port, ports[0].node_port), (27017, Some(31019)));
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"), "only the member's node answers");
        assert_eq!(spec.load_balancer_source_ranges, None);
        assert_eq!(
            spec.selector,
            Some(BTreeMap::from([("statefulset.kubernetes.io/pod-name".to_string(), "ledger-2".to_string())]))
        );
        assert_eq!((expose.port(2), expose.port(0)), (31019, 31017));
    }
}
