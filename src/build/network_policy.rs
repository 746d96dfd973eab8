//! NetworkPolicies: a cluster's baseline isolation (its members, and its backup and restore
//! Jobs), and one policy per NetworkPolicyAttachment. Policies only add up,
//! so the baseline denies everything its rules do not name, and each attachment adds exactly
//! its peers.
//!
//! - `<cluster>-isolate-members`: members accept the other members, the operator, the
//!   cluster's Jobs and the load balancer's source ranges on the MongoDB port; they may reach
//!   DNS and the other members, nothing else.
//! - `<cluster>-isolate-jobs`: backup and restore Pods accept nothing but the operator on a
//!   port named `status` (only the oplog archiver has one: its report); they may reach DNS, the
//!   members, and the object stores at the addresses and ports
//!   `spec.networkIsolation.objectStores` names.
//! - `<cluster>-<attachment>-access`: the attachment's peers reach the members.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::archiver_deployment::{OPLOG_ARCHIVER_COMPONENT, STATUS_PORT_NAME};
use super::backup_job::{BACKUP_COMPONENT, PRUNE_COMPONENT, RESTORE_COMPONENT};
use super::labels::{labels, selector};
use super::names::{ClusterNames, bounded};
use super::verify_job::VERIFY_COMPONENT;
use crate::api::{AttachmentPeer, AttachmentPort, ExposeSpec, ExposeType, ObjectStoreEgress};
use crate::replset::config::MONGODB_PORT;

/// The component label of the policies themselves.
pub const COMPONENT: &str = "network-policy";
/// Label every namespace carries with its own name (set by the API server).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The member Pods' metrics port, by name.
pub const METRICS_PORT_NAME: &str = "metrics";

/// Where the operator's own Pods are, so members let its admin connections in.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct OperatorPeer {
    /// The operator's namespace.
    pub namespace: String,
    /// Labels of the operator's Pods.
    pub pod_labels: BTreeMap<String, String>,
    /// Address ranges of an operator running outside the Kubernetes cluster.
    pub cidrs: Vec<String>,
}

/// Where the cluster's DNS resolver runs: the only place members and Jobs may send port 53.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsPeer {
    /// The resolver Pods' namespace (`kube-system`).
    pub namespace: String,
    /// Labels of the resolver Pods (`k8s-app=kube-dns`, which CoreDNS keeps).
    pub pod_labels: BTreeMap<String, String>,
    /// Resolver addresses outside Pods, such as NodeLocal DNSCache's `169.254.20.10/32`.
    pub cidrs: Vec<String>,
}

impl Default for DnsPeer {
    fn default() -> Self {
        DnsPeer {
            namespace: "kube-system".into(),
            pod_labels: BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())]),
            cidrs: Vec::new(),
        }
    }
}

/// Names of a cluster's baseline policies.
pub fn members_policy_name(names: &ClusterNames) -> String {
    format!("{}-isolate-members", names.cluster)
}

pub fn jobs_policy_name(names: &ClusterNames) -> String {
    format!("{}-isolate-jobs", names.cluster)
}

pub fn attachment_policy_name(names: &ClusterNames, attachment: &str) -> String {
    bounded(&format!("{}-{attachment}", names.cluster), "access")
}

fn meta(names: &ClusterNames, name: String, owner: &OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(labels(&names.cluster, COMPONENT)),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}

fn match_labels(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector { match_labels: Some(labels), match_expressions: None }
}

/// The cluster's Pods that talk to its members: backup, restore and prune Jobs, and the oplog archiver.
const MEMBER_JOBS: [&str; 4] = [BACKUP_COMPONENT, RESTORE_COMPONENT, PRUNE_COMPONENT, OPLOG_ARCHIVER_COMPONENT];
/// Every Job of the cluster: those, and verification, which restores into a mongod of its own
/// Pod and needs the stores only.
const ALL_JOBS: [&str; 5] =
    [BACKUP_COMPONENT, RESTORE_COMPONENT, PRUNE_COMPONENT, VERIFY_COMPONENT, OPLOG_ARCHIVER_COMPONENT];

/// The cluster's Pods of the Jobs named by their `components`.
fn jobs_selector(cluster: &str, components: &[&str]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([("app.kubernetes.io/instance".to_string(), cluster.to_string())])),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "app.kubernetes.io/component".into(),
            operator: "In".into(),
            values: Some(components.iter().map(|c| c.to_string()).collect()),
        }]),
    }
}

fn pods(selector: LabelSelector) -> NetworkPolicyPeer {
    NetworkPolicyPeer { pod_selector: Some(selector), ..NetworkPolicyPeer::default() }
}

fn block(cidr: &str, except: Option<Vec<String>>) -> NetworkPolicyPeer {
    NetworkPolicyPeer { ip_block: Some(IPBlock { cidr: cidr.to_string(), except }), ..NetworkPolicyPeer::default() }
}

fn tcp(port: IntOrString) -> NetworkPolicyPort {
    NetworkPolicyPort { protocol: Some("TCP".into()), port: Some(port), end_port: None }
}

fn mongodb_port() -> NetworkPolicyPort {
    tcp(IntOrString::Int(i32::from(MONGODB_PORT)))
}

/// DNS, at the cluster's resolver only: without it no member resolves another, and port 53
/// to any address would be a way out for anything that speaks on it.
fn dns(resolver: &DnsPeer) -> NetworkPolicyEgressRule {
    let port = |protocol: &str| NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(53)),
        end_port: None,
    };
    let mut to = vec![NetworkPolicyPeer {
        namespace_selector: Some(match_labels(BTreeMap::from([(
            NAMESPACE_NAME_LABEL.to_string(),
            resolver.namespace.clone(),
        )]))),
        pod_selector: Some(match_labels(resolver.pod_labels.clone())),
        ip_block: None,
    }];
    to.extend(resolver.cidrs.iter().map(|c| block(c, None)));
    NetworkPolicyEgressRule { to: Some(to), ports: Some(vec![port("UDP"), port("TCP")]) }
}

fn to_members(cluster: &str) -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule { to: Some(vec![pods(match_labels(selector(cluster)))]), ports: Some(vec![mongodb_port()]) }
}

/// The operator's Pods (in its namespace, by their labels), or its addresses when it runs
/// outside the Kubernetes cluster.
fn operator_peers(operator: &OperatorPeer) -> Vec<NetworkPolicyPeer> {
    let operator_pods = NetworkPolicyPeer {
        namespace_selector: Some(match_labels(BTreeMap::from([(
            NAMESPACE_NAME_LABEL.to_string(),
            operator.namespace.clone(),
        )]))),
        pod_selector: Some(match_labels(operator.pod_labels.clone())),
        ip_block: None,
    };
    let mut peers = vec![operator_pods];
    peers.extend(operator.cidrs.iter().map(|c| block(c, None)));
    peers
}

fn ingress(from: Vec<NetworkPolicyPeer>, ports: Vec<NetworkPolicyPort>) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule { from: Some(from), ports: Some(ports) }
}

/// The members' baseline.
pub fn members(
    names: &ClusterNames,
    expose: &ExposeSpec,
    operator: &OperatorPeer,
    resolver: &DnsPeer,
    owner: &OwnerReference,
) -> NetworkPolicy {
    let cluster = names.cluster.as_str();
    let mut rules = vec![
        ingress(vec![pods(match_labels(selector(cluster)))], vec![mongodb_port()]),
        ingress(operator_peers(operator), vec![mongodb_port()]),
        ingress(vec![pods(jobs_selector(cluster, &MEMBER_JOBS))], vec![mongodb_port()]),
    ];
    // The load balancers' source ranges: the client Service's, and the members' own Services'
    // (whose `externalTrafficPolicy: Local` keeps the client's address for this rule to see).
    // A node port (`perMember.nodePort`) reaches the Pod on its own port too, so the same rule
    // holds for it.
    let client_lb = expose.load_balancer.as_ref().filter(|_| expose.type_ == ExposeType::LoadBalancer);
    let client_ranges = client_lb.map(|lb| lb.source_ranges.as_slice());
    let member_ranges = expose.per_member.as_ref().map(|p| p.source_ranges());
    for ranges in client_ranges.into_iter().chain(member_ranges).filter(|r| !r.is_empty()) {
        rules.push(ingress(ranges.iter().map(|c| block(&c.0, None)).collect(), vec![mongodb_port()]));
    }
    NetworkPolicy {
        metadata: meta(names, members_policy_name(names), owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(match_labels(selector(cluster))),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(rules),
            egress: Some(vec![dns(resolver), to_members(cluster)]),
        }),
    }
}

/// The cluster's Job Pods (backup, restore, prune, verification, the oplog archiver): nothing
/// comes in but the operator reading the archiver's report (a named port only the archiver's
/// Pod has); DNS, the members and the object stores are reachable.
pub fn jobs(
    names: &ClusterNames,
    stores: &ObjectStoreEgress,
    operator: &OperatorPeer,
    resolver: &DnsPeer,
    owner: &OwnerReference,
) -> NetworkPolicy {
    let mut egress = vec![dns(resolver), to_members(&names.cluster)];
    let ports: Vec<NetworkPolicyPort> = stores.ports.iter().map(|p| tcp(IntOrString::Int(i32::from(*p)))).collect();
    // A rule without ports allows every port.
    let ports = (!ports.is_empty()).then_some(ports);
    if stores.any_address {
        egress.push(NetworkPolicyEgressRule { to: None, ports });
    } else if !stores.cidrs.is_empty() {
        let to = stores.cidrs.iter().map(|c| block(&c.0, None)).collect();
        egress.push(NetworkPolicyEgressRule { to: Some(to), ports });
    }
    NetworkPolicy {
        metadata: meta(names, jobs_policy_name(names), owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(jobs_selector(&names.cluster, &ALL_JOBS)),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            // A named port matches only the Pods that declare it: every other Job Pod accepts
            // nothing.
            ingress: Some(vec![ingress(
                operator_peers(operator),
                vec![tcp(IntOrString::String(STATUS_PORT_NAME.into()))],
            )]),
            egress: Some(egress),
        }),
    }
}

/// One NetworkPolicyAttachment: its peers reach the members on its ports.
pub fn attachment(
    names: &ClusterNames,
    attachment: &str,
    peers: &[AttachmentPeer],
    ports: &[AttachmentPort],
    owner: &OwnerReference,
) -> NetworkPolicy {
    let from = peers
        .iter()
        .map(|p| match &p.ip_block {
            Some(b) => block(&b.cidr.0, b.except.as_ref().map(|e| e.iter().map(|c| c.0.clone()).collect())),
            None => NetworkPolicyPeer {
                pod_selector: p.pod_selector.clone(),
                namespace_selector: p.namespace_selector.clone(),
                ip_block: None,
            },
        })
        .collect();
    let ports = if ports.is_empty() { &[AttachmentPort::MongoDb][..] } else { ports };
    let ports = ports
        .iter()
        .map(|p| match p {
            AttachmentPort::MongoDb => mongodb_port(),
            AttachmentPort::Metrics => tcp(IntOrString::String(METRICS_PORT_NAME.into())),
        })
        .collect();
    NetworkPolicy {
        metadata: meta(names, attachment_policy_name(names, attachment), owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(match_labels(selector(&names.cluster))),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![ingress(from, ports)]),
            egress: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Cidr, LoadBalancerSpec, PrivateIpBlock};
    use crate::build::tests::owner;

    fn operator() -> OperatorPeer {
        OperatorPeer {
            namespace: "mongo-operator".into(),
            pod_labels: BTreeMap::from([("app.kubernetes.io/name".into(), "mongo-operator".into())]),
            cidrs: vec![],
        }
    }

    fn spec(p: &NetworkPolicy) -> NetworkPolicySpec {
        p.spec.clone().expect("spec")
    }

    #[test]
    fn members_admit_members_operator_jobs_and_the_load_balancer_ranges_only() {
        let names = ClusterNames::new("orders", "shop");
        let private = members(&names, &ExposeSpec::default(), &operator(), &DnsPeer::default(), &owner());
        assert_eq!(private.metadata.name.as_deref(), Some("orders-isolate-members"));
        let s = spec(&private);
        assert_eq!(s.policy_types, Some(vec!["Ingress".to_string(), "Egress".to_string()]));
        let rules = s.ingress.expect("ingress");
        assert_eq!(rules.len(), 3, "members, operator, jobs");
        for rule in &rules {
            assert_eq!(rule.ports, Some(vec![mongodb_port()]), "only the MongoDB port");
        }
        let operator_peer = &rules[1].from.as_ref().expect("from")[0];
        assert_eq!(
            operator_peer.namespace_selector.as_ref().and_then(|s| s.match_labels.clone()),
            Some(BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), "mongo-operator".to_string())]))
        );
        let egress = s.egress.expect("egress");
        assert_eq!(egress.len(), 2, "DNS and the members, nothing else");
        // DNS goes to the cluster's resolver only, never to any address on port 53.
        let to = egress[0].to.clone().expect("DNS has a destination");
        assert_eq!(to.len(), 1);
        assert_eq!(
            to[0].pod_selector.as_ref().and_then(|s| s.match_labels.clone()),
            Some(BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())]))
        );
        assert_eq!(
            to[0].namespace_selector.as_ref().and_then(|s| s.match_labels.clone()),
            Some(BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), "kube-system".to_string())]))
        );
        let node_local = DnsPeer { cidrs: vec!["169.254.20.10/32".into()], ..DnsPeer::default() };
        let jobs_dns = spec(&jobs(&names, &ObjectStoreEgress::default(), &operator(), &node_local, &owner()))
            .egress
            .expect("egress");
        let to = jobs_dns[0].to.clone().expect("DNS has a destination");
        assert_eq!(to[1].ip_block.as_ref().map(|b| b.cidr.as_str()), Some("169.254.20.10/32"));
        assert!(egress[0].ports.as_ref().is_some_and(|p| p.len() == 2), "UDP and TCP 53");

        let lb = ExposeSpec {
            type_: ExposeType::LoadBalancer,
            load_balancer: Some(LoadBalancerSpec {
                internal: true,
                source_ranges: vec![Cidr("10.30.0.0/16".into())],
                annotations: BTreeMap::new(),
            }),
            per_member: None,
        };
        let exposed = spec(&members(&names, &lb, &operator(), &DnsPeer::default(), &owner()));
        let rules = exposed.ingress.expect("ingress");
        assert_eq!(rules.len(), 4);
        let ranges = |rule: &NetworkPolicyIngressRule| -> Vec<String> {
            rule.from.iter().flatten().filter_map(|p| p.ip_block.as_ref().map(|b| b.cidr.clone())).collect()
        };
        assert_eq!(ranges(&rules[3]), vec!["10.30.0.0/16".to_string()]);

        // Each member on its own load balancer: their source ranges are admitted too.
        let per_member = ExposeSpec {
            per_member: Some(crate::api::MemberExposeSpec {
                host_pattern: Some("db-{ordinal}.orders.example.internal".into()),
                load_balancer: Some(LoadBalancerSpec {
                    internal: true,
                    source_ranges: vec![Cidr("192.168.40.0/24".into())],
                    annotations: BTreeMap::new(),
                }),
                node_port: None,
            }),
            ..lb.clone()
        };
        let rules =
            spec(&members(&names, &per_member, &operator(), &DnsPeer::default(), &owner())).ingress.expect("ingress");
        assert_eq!(rules.len(), 5);
        assert_eq!(ranges(&rules[4]), vec!["192.168.40.0/24".to_string()]);
        assert_eq!(rules[4].ports, Some(vec![mongodb_port()]));

        // On node ports: the Pod's own port, from the node ports' ranges (`Local` keeps the
        // client's address, so the policy sees it).
        let node_ports = ExposeSpec {
            per_member: Some(crate::api::MemberExposeSpec {
                host_pattern: Some("db-{ordinal}.orders.example.internal".into()),
                load_balancer: None,
                node_port: Some(crate::api::NodePortSpec {
                    base_port: 31017,
                    source_ranges: vec![Cidr("172.16.8.0/22".into())],
                }),
            }),
            ..lb
        };
        let rules =
            spec(&members(&names, &node_ports, &operator(), &DnsPeer::default(), &owner())).ingress.expect("ingress");
        assert_eq!(rules.len(), 5);
        assert_eq!(ranges(&rules[4]), vec!["172.16.8.0/22".to_string()]);
        assert_eq!(rules[4].ports, Some(vec![mongodb_port()]));
    }

    #[test]
    fn jobs_accept_only_the_operator_on_the_archivers_status_port_and_reach_only_the_stores_named() {
        let names = ClusterNames::new("orders", "shop");
        let none = spec(&jobs(&names, &ObjectStoreEgress::default(), &operator(), &DnsPeer::default(), &owner()));
        assert!(none.policy_types.as_ref().is_some_and(|t| t.iter().any(|t| t == "Ingress")));
        let rules = none.ingress.clone().expect("one rule");
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0].ports,
            Some(vec![tcp(IntOrString::String("status".into()))]),
            "a named port: Pods that do not declare it (all but the archiver's) accept nothing"
        );
        let from = rules[0].from.clone().unwrap_or_default();
        assert_eq!(from.len(), 1);
        assert_eq!(from[0].pod_selector.as_ref().and_then(|s| s.match_labels.clone()), Some(operator().pod_labels));
        assert_eq!(none.egress.as_ref().map(Vec::len), Some(2), "no store rule without addresses");
        let stores = ObjectStoreEgress {
            cidrs: vec![Cidr("198.51.100.0/24".into())],
            any_address: false,
            ports: vec![443, 9000],
        };
        let egress = spec(&jobs(&names, &stores, &operator(), &DnsPeer::default(), &owner())).egress.expect("egress");
        let store = &egress[2];
        assert_eq!(
            store.to.as_ref().and_then(|t| t[0].ip_block.as_ref()).map(|b| b.cidr.as_str()),
            Some("198.51.100.0/24")
        );
        assert_eq!(store.ports.as_ref().map(Vec::len), Some(2));
        let any = ObjectStoreEgress { cidrs: vec![], any_address: true, ports: vec![443] };
        let egress = spec(&jobs(&names, &any, &operator(), &DnsPeer::default(), &owner())).egress.expect("egress");
        assert!(egress[2].to.is_none(), "any address, on the ports only");
        // Verification Pods are fenced like the others, and the members do not admit them:
        // they restore into a mongod of their own.
        let components = |selector: Option<&LabelSelector>| -> Vec<String> {
            selector.and_then(|s| s.match_expressions.as_ref()).and_then(|e| e[0].values.clone()).unwrap_or_default()
        };
        assert!(components(none.pod_selector.as_ref()).contains(&VERIFY_COMPONENT.to_string()));
        let members = spec(&members(&names, &ExposeSpec::default(), &operator(), &DnsPeer::default(), &owner()));
        let admitted = members.ingress.expect("ingress")[2].from.clone().expect("from");
        let admitted = components(admitted[0].pod_selector.as_ref());
        assert!(admitted.contains(&BACKUP_COMPONENT.to_string()) && !admitted.contains(&VERIFY_COMPONENT.to_string()));
    }

    #[test]
    fn an_attachment_admits_exactly_its_peers_on_its_ports() {
        let names = ClusterNames::new("orders", "shop");
        let peers = vec![
            AttachmentPeer {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([("app".into(), "shop".into())])),
                    match_expressions: None,
                }),
                namespace_selector: None,
                ip_block: None,
            },
            AttachmentPeer {
                pod_selector: None,
                namespace_selector: None,
                ip_block: Some(PrivateIpBlock {
                    cidr: Cidr("10.20.0.0/16".into()),
                    except: Some(vec![Cidr("10.20.5.0/24".into())]),
                }),
            },
        ];
        let p = attachment(&names, "shop-app", &peers, &[], &owner());
        assert_eq!(p.metadata.name.as_deref(), Some("orders-shop-app-access"));
        let s = spec(&p);
        assert_eq!(s.policy_types, Some(vec!["Ingress".to_string()]), "adds ingress, never restricts egress");
        let rule = &s.ingress.expect("ingress")[0];
        assert_eq!(rule.ports, Some(vec![mongodb_port()]), "the MongoDB port by default");
        let from = rule.from.clone().expect("from");
        assert_eq!(from.len(), 2);
        assert_eq!(from[1].ip_block.as_ref().and_then(|b| b.except.clone()), Some(vec!["10.20.5.0/24".to_string()]));
        let metrics = spec(&attachment(&names, "prom", &peers[..1], &[AttachmentPort::Metrics], &owner()));
        assert_eq!(
            metrics.ingress.expect("ingress")[0].ports,
            Some(vec![tcp(IntOrString::String(METRICS_PORT_NAME.into()))])
        );
        let long = attachment_policy_name(&names, &"a".repeat(80));
        assert!(long.len() <= 63 && long.ends_with("-access"), "{long}");
    }
}
