//! The headless Service (stable member DNS, published before members are ready) and the client
//! Service.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::selector;
use super::names::ClusterNames;
use super::owned_meta;
use crate::api::{ExposeSpec, ExposeType};
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

/// The Service clients use: private (ClusterIP) unless a load balancer is asked for, which is
/// internal by default and limited to the listed source ranges.
pub fn client(names: &ClusterNames, expose: &ExposeSpec, owner: &OwnerReference) -> Service {
    let mut annotations = std::collections::BTreeMap::new();
    let mut spec =
        ServiceSpec { selector: Some(selector(&names.cluster)), ports: Some(vec![port()]), ..ServiceSpec::default() };
    if expose.type_ == ExposeType::LoadBalancer {
        spec.type_ = Some("LoadBalancer".into());
        if let Some(lb) = &expose.load_balancer {
            annotations.extend(lb.annotations.clone());
            // Last, so that no user annotation can turn an internal load balancer public
            // (admission refuses such annotations too).
            if lb.internal {
                annotations.extend(INTERNAL_LB_ANNOTATIONS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            }
            spec.load_balancer_source_ranges = Some(lb.source_ranges.iter().map(|c| c.0.clone()).collect());
        }
    } else {
        spec.type_ = Some("ClusterIP".into());
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
