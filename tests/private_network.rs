//! Clients outside Kubernetes (`expose.perMember`): the real operator binary on the local
//! control plane, simulated members that pick the split horizon by the TLS SNI name as mongod
//! does, FerretDB holding the data, and the real driver as a VM's application.
//!
//! kwok runs no load balancers: the suite's resolver answers each external name with the Pods
//! the member's own Service selects, as the user's DNS record for that Service's load balancer
//! would lead there (`support::dns`). What only a real load balancer can show (its address,
//! the client's address kept by `externalTrafficPolicy: Local`) is listed in docs/testing.md.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ListParams, Patch, PatchParams};
use mongo_operator::api::MongoCluster;
use mongodb::bson::{Document, doc};
use mongodb::options::{ClientOptions, Tls, TlsOptions};
use support::cluster_env::*;
use support::members::SimMembers;
use support::servers::Ferret;

const PATTERN: &str = "db-{ordinal}.vault.example.internal";

fn external(ordinal: usize) -> String {
    format!("{}:27017", PATTERN.replace("{ordinal}", &ordinal.to_string()))
}

fn external_hosts(c: &MongoCluster) -> Vec<String> {
    c.status.as_ref().and_then(|s| s.connection.as_ref()).map(|c| c.external_hosts.clone()).unwrap_or_default()
}

/// Waits until the cluster is Ready and announces exactly `hosts` to clients outside.
async fn announcing(env: &Env, hosts: Vec<String>) -> MongoCluster {
    support::eventually(&format!("Ready, announcing {hosts:?}"), Duration::from_secs(240), || async {
        let c = env.api::<MongoCluster>().get("vault").await.ok()?;
        (is_ready(&c) && external_hosts(&c) == hosts).then_some(c)
    })
    .await
}

/// The members' own Services, by name.
async fn member_services(env: &Env) -> Vec<String> {
    let selector = "app.kubernetes.io/instance=vault,app.kubernetes.io/component=member-service";
    let mut names: Vec<String> = env
        .api::<Service>()
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list Services")
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    names.sort();
    names
}

/// A driver client from a connection string of the user's Secret, with the Secret's CA.
async fn client_from(env: &Env, key: &str) -> mongodb::Client {
    let uri = env.secret_text("vault-admin-app", key).await.unwrap_or_else(|| panic!("{key} in the Secret"));
    let ca = env.secret_text("vault-admin-app", "ca.crt").await.expect("ca.crt in the Secret");
    let mut options = ClientOptions::parse(&uri).await.expect("a connection string the driver takes");
    options.tls = Some(Tls::Enabled(
        TlsOptions::builder().ca_file_path(support::members::write_ca(&format!("{}-app", env.ns), &ca)).build(),
    ));
    options.server_selection_timeout = Some(Duration::from_secs(30));
    mongodb::Client::with_options(options).expect("client")
}

/// What `hello` on the primary names, as (hosts and passives, primary, me): a member without
/// a vote (the fourth of four) is a passive.
async fn hello(client: &mongodb::Client) -> (Vec<String>, String, String) {
    let reply = client.database("admin").run_command(doc! { "hello": 1 }).await.expect("hello");
    let mut hosts: Vec<String> = ["hosts", "passives"]
        .iter()
        .filter_map(|key| reply.get_array(key).ok())
        .flatten()
        .filter_map(|h| h.as_str().map(str::to_string))
        .collect();
    hosts.sort();
    let text = |key: &str| reply.get_str(key).unwrap_or_default().to_string();
    (hosts, text("primary"), text("me"))
}

/// The address ranges the members' NetworkPolicy admits.
async fn admitted_ranges(env: &Env) -> Vec<String> {
    let policy = env.api::<NetworkPolicy>().get("vault-isolate-members").await.expect("the members' policy");
    policy
        .spec
        .and_then(|s| s.ingress)
        .unwrap_or_default()
        .iter()
        .flat_map(|rule| rule.from.clone().unwrap_or_default())
        .filter_map(|peer| peer.ip_block.map(|b| b.cidr))
        .collect()
}

/// A client outside Kubernetes: the external connection string, TLS verified against the
/// external names, the members' addresses discovered from `hello` in the external horizon
/// (`announced`), and a write that reaches the primary.
async fn write_from_outside(env: &Env, from: &str, announced: Vec<String>) {
    let outside = client_from(env, "connectionString.external").await;
    outside
        .database("orders")
        .collection::<Document>("events")
        .insert_one(doc! { "from": from })
        .await
        .expect("a write through the external names");
    let (hosts, primary, me) = hello(&outside).await;
    assert_eq!(hosts, announced);
    assert!(hosts.contains(&primary) && primary == me, "the primary by its external name: {primary}, {me}");
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane and FerretDB: run `make test`"]
async fn a_client_outside_kubernetes_connects_with_the_external_names_and_they_follow_scaling() {
    let env = Env::new("private-net").await;
    let extra = format!(
        "  users:\n    - name: app\n      db: admin\n      roles: [{{name: readWrite, db: orders}}]\n  expose:\n    perMember:\n      hostPattern: \"{PATTERN}\"\n      loadBalancer:\n        sourceRanges: [10.20.0.0/16]\n"
    );
    env.create_cluster(&cluster_yaml("vault", 3, &extra)).await;
    let ferret = Ferret::start();
    let _sim = SimMembers::holding_data(&env.client, &env.ns, "vault", &ferret.address).await;
    announcing(&env, (0..3).map(external).collect()).await;

    // One internal load balancer per member, in front of that Pod alone, for the declared
    // ranges, which the members' NetworkPolicy admits too.
    assert_eq!(member_services(&env).await, ["vault-0-external", "vault-1-external", "vault-2-external"]);
    for i in 0..3 {
        let name = format!("vault-{i}-external");
        let service = env.api::<Service>().get(&name).await.expect("the member's Service");
        let spec = service.spec.expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(spec.load_balancer_source_ranges, Some(vec!["10.20.0.0/16".to_string()]));
        assert_eq!(
            spec.selector.and_then(|s| s.get("statefulset.kubernetes.io/pod-name").cloned()),
            Some(format!("vault-{i}"))
        );
        let annotations = service.metadata.annotations.unwrap_or_default();
        assert_eq!(annotations.get("networking.gke.io/load-balancer-type").map(String::as_str), Some("Internal"));
        support::dns::point_at_service(&format!("db-{i}.vault.example.internal"), &env.ns, &name);
    }
    let admitted = admitted_ranges(&env).await;
    assert!(admitted.contains(&"10.20.0.0/16".to_string()), "{admitted:?}");
    // The members' certificate covers the external names.
    let certificate = env.secret_text("vault-tls", "tls.crt").await.expect("the members' certificate");
    let sans = mongo_operator::certs::inspect(&certificate).expect("a certificate").sans;
    assert!(sans.contains(&"*.vault.example.internal".to_string()), "{sans:?}");

    // A VM's application writes to the primary through the external names.
    write_from_outside(&env, "a VM on the private network", (0..3).map(external).collect()).await;
    // An application inside Kubernetes still gets the names it can resolve.
    let inside = client_from(&env, "connectionString.standard").await;
    let (hosts, _, _) = hello(&inside).await;
    assert!(hosts.iter().all(|h| h.ends_with(".svc.cluster.local:27017")), "{hosts:?}");
    let found = inside.database("orders").collection::<Document>("events").count_documents(doc! {}).await;
    assert_eq!(found.expect("count"), 1, "the write is the set's, whichever way it came in");

    // Scaling adds the member's Service and its external name, and takes them away again.
    env.patch_spec("vault", serde_json::json!({ "members": 4 })).await;
    announcing(&env, (0..4).map(external).collect()).await;
    assert!(member_services(&env).await.contains(&"vault-3-external".to_string()));
    support::dns::point_at_service("db-3.vault.example.internal", &env.ns, "vault-3-external");
    let (hosts, _, _) = hello(&client_from(&env, "connectionString.external").await).await;
    assert_eq!(hosts, (0..4).map(external).collect::<Vec<_>>(), "the new member by its external name");
    env.patch_spec("vault", serde_json::json!({ "members": 3 })).await;
    announcing(&env, (0..3).map(external).collect()).await;
    support::eventually("vault-3-external deleted", Duration::from_secs(60), || async {
        (member_services(&env).await.len() == 3).then_some(())
    })
    .await;

    // Ending the exposure: no member announces an external name, the Services go, and the
    // connection Secret loses its external string.
    env.patch_spec("vault", serde_json::json!({ "expose": { "perMember": null } })).await;
    announcing(&env, Vec::new()).await;
    support::eventually("the member Services deleted", Duration::from_secs(60), || async {
        member_services(&env).await.is_empty().then_some(())
    })
    .await;
    support::eventually("the external string removed", Duration::from_secs(60), || async {
        env.secret_text("vault-admin-app", "connectionString.external").await.is_none().then_some(())
    })
    .await;
    // The set was initiated with its horizons; clearing them is one reconfig, with its Event.
    let cleared = env.recorded("HorizonsChanged", 1).await;
    assert!(
        cleared
            .iter()
            .any(|e| e.note.as_deref().is_some_and(|n| n.contains("no member announces an external address"))),
        "{cleared:?}"
    );
    env.finish().await;
}

/// Plays the cloud's load balancer controller (kwok runs none): gives the Service's load
/// balancer a host name, as AWS does.
async fn give_host_name(env: &Env, service: &str, hostname: &str) {
    let status = serde_json::json!({ "status": { "loadBalancer": { "ingress": [{ "hostname": hostname }] } } });
    env.api::<Service>()
        .patch_status(service, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("the load balancer's status");
    support::dns::point_at_service(hostname, &env.ns, service);
}

fn degraded_by(c: &MongoCluster) -> Option<String> {
    let conditions = c.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    conditions.iter().find(|c| c.type_ == "Degraded" && c.status == "True").map(|c| c.reason.clone())
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn without_a_pattern_members_are_announced_by_their_load_balancers_once_all_have_a_host_name() {
    let env = Env::new("private-lb").await;
    let extra = "  users:\n    - name: app\n      db: admin\n      roles: [{name: readWrite, db: orders}]\n  expose:\n    perMember:\n      loadBalancer:\n        sourceRanges: [10.20.0.0/16]\n";
    env.create_cluster(&cluster_yaml("vault", 3, extra)).await;
    let _sim = SimMembers::follow(&env.client, &env.ns, "vault", None).await;
    let lb = |i: usize| format!("lb-{i}.elb.example.internal");

    // Ready inside Kubernetes, nothing announced outside, and the status says why.
    let c = support::eventually("Degraded for the pending load balancers", Duration::from_secs(180), || async {
        let c = env.api::<MongoCluster>().get("vault").await.ok()?;
        (is_ready(&c) && degraded_by(&c).as_deref() == Some("ExternalAddressPending")).then_some(c)
    })
    .await;
    assert!(external_hosts(&c).is_empty());
    assert_eq!(env.secret_text("vault-admin-app", "connectionString.external").await, None);

    // Two of three load balancers have a name: still nothing (horizons are all or none).
    give_host_name(&env, "vault-0-external", &lb(0)).await;
    give_host_name(&env, "vault-1-external", &lb(1)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c = env.api::<MongoCluster>().get("vault").await.expect("cluster");
    assert!(external_hosts(&c).is_empty(), "{:?}", external_hosts(&c));

    // The third: every member is announced by its load balancer's name, the members'
    // certificate is issued again for the names, and a client outside connects with them.
    give_host_name(&env, "vault-2-external", &lb(2)).await;
    let announced: Vec<String> = (0..3).map(|i| format!("{}:27017", lb(i))).collect();
    let c = announcing(&env, announced.clone()).await;
    assert_eq!(degraded_by(&c), None);
    let certificate = env.secret_text("vault-tls", "tls.crt").await.expect("the members' certificate");
    let sans = mongo_operator::certs::inspect(&certificate).expect("a certificate").sans;
    assert!((0..3).all(|i| sans.contains(&lb(i))), "{sans:?}");
    support::eventually("the external connection string", Duration::from_secs(60), || async {
        env.secret_text("vault-admin-app", "connectionString.external").await
    })
    .await;
    let (hosts, primary, me) = hello(&client_from(&env, "connectionString.external").await).await;
    assert_eq!(hosts, announced);
    assert!(hosts.contains(&primary) && primary == me, "{primary} {me}");
    env.finish().await;
}

/// The node-port test's names: its own, as the suite's resolver is shared by the tests that run
/// at once.
const NODE_PORT_PATTERN: &str = "np-{ordinal}.vault.example.internal";

/// Plays kube-proxy for a node port (kwok runs none): the node that runs the member's Pod
/// forwards `node_port` to the Pod's MongoDB port. The Pod's own address stands for its node's,
/// as each member here runs alone on its kwok node.
async fn forward_node_port(env: &Env, pod: &str, node_port: u16) -> tokio::task::JoinHandle<()> {
    let pod_ip = support::eventually(&format!("{pod} has an address"), Duration::from_secs(60), || async {
        let pod = env.api::<k8s_openapi::api::core::v1::Pod>().get(pod).await.ok()?;
        pod.status?.pod_ip.filter(|ip| !ip.is_empty())
    })
    .await;
    let listener = tokio::net::TcpListener::bind((pod_ip.as_str(), node_port)).await.expect("the node port");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = format!("{pod_ip}:27017");
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane and FerretDB: run `make test`"]
async fn on_node_ports_each_member_is_announced_at_its_name_and_its_own_port() {
    let env = Env::new("private-np").await;
    let extra = format!(
        "  users:\n    - name: app\n      db: admin\n      roles: [{{name: readWrite, db: orders}}]\n  expose:\n    perMember:\n      hostPattern: \"{NODE_PORT_PATTERN}\"\n      nodePort:\n        basePort: 31017\n        sourceRanges: [10.20.0.0/16]\n"
    );
    env.create_cluster(&cluster_yaml("vault", 3, &extra)).await;
    let ferret = Ferret::start();
    let _sim = SimMembers::holding_data(&env.client, &env.ns, "vault", &ferret.address).await;
    let on_node_port = |i: usize| format!("{}:{}", NODE_PORT_PATTERN.replace("{ordinal}", &i.to_string()), 31017 + i);
    announcing(&env, (0..3).map(on_node_port).collect()).await;

    // A node port per member, `basePort + ordinal`, answered only by the node that runs that
    // Pod; its ranges are what the members' NetworkPolicy admits.
    let mut forwarders = Vec::new();
    for i in 0..3 {
        let name = format!("vault-{i}-external");
        let spec = env.api::<Service>().get(&name).await.expect("the member's Service").spec.expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        let ports = spec.ports.unwrap_or_default();
        let node_port = u16::try_from(31017 + i).expect("a port");
        assert_eq!(
            ports.iter().map(|p| (p.port, p.node_port)).collect::<Vec<_>>(),
            [(27017, Some(i32::from(node_port)))]
        );
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
        assert_eq!(
            spec.selector.and_then(|s| s.get("statefulset.kubernetes.io/pod-name").cloned()),
            Some(format!("vault-{i}"))
        );
        forwarders.push(forward_node_port(&env, &format!("vault-{i}"), node_port).await);
        support::dns::point_at_service(&format!("np-{i}.vault.example.internal"), &env.ns, &name);
    }
    let admitted = admitted_ranges(&env).await;
    assert!(admitted.contains(&"10.20.0.0/16".to_string()), "{admitted:?}");

    // A VM's application connects through the names and the node ports, and gets them back.
    write_from_outside(&env, "bare metal next to the cluster", (0..3).map(on_node_port).collect()).await;
    for forwarder in forwarders {
        forwarder.abort();
    }
    env.finish().await;
}
