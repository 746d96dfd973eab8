//! Where each member is reached from outside Kubernetes (`expose.perMember`): the name
//! `hostPattern` gives it, or else its load balancer's host name once the cloud has given one;
//! on the MongoDB port behind a load balancer, on `basePort + ordinal` on a node port.
//! Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;

use crate::api::MemberExposeSpec;
use crate::build::names::ClusterNames;
use crate::replset::planner::External;

/// The members' own Services that exist, by name, with their load balancer's host name once
/// it has one.
pub type MemberServices = BTreeMap<String, Option<String>>;

/// The host name in a load balancer Service's status. An IP address is not taken: a client
/// sends no SNI name for one, so no member could tell it wants the external horizon.
pub fn load_balancer_hostname(service: &Service) -> Option<String> {
    let ingress = service.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()?;
    ingress.iter().find_map(|i| i.hostname.clone().filter(|h| !h.is_empty()))
}

/// The external address of the member with `ordinal`.
pub fn external(
    per_member: Option<&MemberExposeSpec>,
    names: &ClusterNames,
    ordinal: i32,
    services: &MemberServices,
) -> External {
    let Some(per_member) = per_member else { return External::NotExposed };
    let host = per_member.host(ordinal).or_else(|| services.get(&names.member_service(ordinal)).cloned().flatten());
    match host {
        Some(host) => External::At(format!("{host}:{}", per_member.port(ordinal))),
        None => External::Pending,
    }
}

/// Every member's external `host:port` in ordinal order, once all of them have one.
pub fn all_known(
    per_member: Option<&MemberExposeSpec>,
    names: &ClusterNames,
    members: i32,
    services: &MemberServices,
) -> Option<Vec<String>> {
    per_member?;
    (0..members.max(1))
        .map(|i| match external(per_member, names, i, services) {
            External::At(host) => Some(host),
            External::Pending | External::NotExposed => None,
        })
        .collect()
}

/// The names outside Kubernetes the members' certificate must cover: the pattern's wildcard
/// (`crate::certs::pattern_wildcard`), or every load balancer host name known so far (a new
/// one means a new certificate, rotated into the members without a restart).
pub fn certificate_names(per_member: Option<&MemberExposeSpec>, services: &MemberServices) -> Vec<String> {
    let Some(per_member) = per_member else { return Vec::new() };
    match &per_member.host_pattern {
        Some(pattern) => vec![crate::certs::pattern_wildcard(pattern)],
        None => {
            let mut hosts: Vec<String> = services.values().flatten().cloned().collect();
            hosts.sort();
            hosts.dedup();
            hosts
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Cidr, LoadBalancerSpec};

    fn exposed(pattern: Option<&str>) -> MemberExposeSpec {
        MemberExposeSpec {
            host_pattern: pattern.map(str::to_string),
            load_balancer: Some(LoadBalancerSpec {
                internal: true,
                source_ranges: vec![Cidr("10.0.0.0/8".into())],
                annotations: Default::default(),
            }),
            node_port: None,
        }
    }

    #[test]
    fn a_pattern_names_every_member_and_otherwise_the_load_balancers_do_once_they_can() {
        let names = ClusterNames::new("ledger", "bank");
        let services = MemberServices::from([
            ("ledger-0-external".to_string(), Some("a0.elb.example.internal".to_string())),
            ("ledger-1-external".to_string(), None),
        ]);
        let pattern = exposed(Some("db-{ordinal}.example.internal"));
        assert_eq!(external(Some(&pattern), &names, 1, &services), External::At("db-1.example.internal:27017".into()));
        assert_eq!(certificate_names(Some(&pattern), &services), ["*.example.internal"]);
        let balancers = exposed(None);
        assert_eq!(
            external(Some(&balancers), &names, 0, &services),
            External::At("a0.elb.example.internal:27017".into())
        );
        assert_eq!(external(Some(&balancers), &names, 1, &services), External::Pending);
        assert_eq!(external(Some(&balancers), &names, 2, &services), External::Pending, "no Service yet");
        assert_eq!(external(None, &names, 0, &services), External::NotExposed);
        assert_eq!(all_known(Some(&balancers), &names, 2, &services), None);
        assert_eq!(
            all_known(Some(&balancers), &names, 1, &services),
            Some(vec!["a0.elb.example.internal:27017".into()])
        );
        assert_eq!(certificate_names(Some(&balancers), &services), ["a0.elb.example.internal"]);
    }

    #[test]
    fn on_node_ports_each_member_is_announced_at_its_name_and_its_own_port() {
        let names = ClusterNames::new("ledger", "bank");
        let node_ports = MemberExposeSpec {
            host_pattern: Some("db-{ordinal}.example.internal".into()),
            load_balancer: None,
            node_port: Some(crate::api::NodePortSpec {
                base_port: 31017,
                source_ranges: vec![Cidr("10.0.0.0/8".into())],
            }),
        };
        let none = MemberServices::new();
        assert_eq!(external(Some(&node_ports), &names, 2, &none), External::At("db-2.example.internal:31019".into()));
        assert_eq!(
            all_known(Some(&node_ports), &names, 2, &none),
            Some(vec!["db-0.example.internal:31017".into(), "db-1.example.internal:31018".into()]),
            "known from the spec alone"
        );
        assert_eq!(certificate_names(Some(&node_ports), &none), ["*.example.internal"]);
    }

    #[test]
    fn an_address_without_a_host_name_is_not_taken() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.3.7"}]}},
        }))
        .expect("service");
        assert_eq!(load_balancer_hostname(&service), None);
        let named: Service = serde_json::from_value(serde_json::json!({
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.3.7"}, {"hostname": "a0.elb.example.internal"}]}},
        }))
        .expect("service");
        assert_eq!(load_balancer_hostname(&named).as_deref(), Some("a0.elb.example.internal"));
    }
}
