//! The cluster's DNS, for the local control plane: kwok runs no CoreDNS, so the test process
//! answers the names a Pod would resolve in a real cluster, from the API server's Pods.
//!
//! The operator dials members by their DNS names (`<pod>.<headless service>.<namespace>.svc.
//! <domain>`), so that it can check the name against the certificate a member presents. Those
//! names resolve here as CoreDNS resolves them for a headless Service with
//! `publishNotReadyAddresses` (kubernetes/dns `docs/specification.md`, 2.4.1, "Pod A records
//! for a headless Service"): a Pod with `hostname` and `subdomain` is
//! `<hostname>.<subdomain>.<ns>.svc.<domain>`, and `<subdomain>.<ns>.svc.<domain>` is every
//! such Pod that has an IP, ready or not. Anything else is NXDOMAIN.
//!
//! Names of the private network outside the cluster (`expose.perMember`'s external names) are
//! answered too, once a test points one at a member's own Service, as the user points it at
//! that Service's load balancer: kwok runs no load balancers, so the answer is the address the
//! load balancer forwards to, the Pods the Service selects (not-ready ones too, as the Service
//! publishes them). A Service that is gone, or selects nothing, leaves the name unanswered.
//!
//! The resolver of the test processes (and of the operators they start) is pointed here by
//! `e2e/with-cluster-dns`, which `make test` runs the suite under: `/etc/resolv.conf` is
//! replaced in a mount namespace of the suite's own, so nothing outside it is affected.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::net::UdpSocket;

use super::members::DOMAIN;

/// Where the suite's resolver asks (`e2e/cluster-dns.resolv.conf`).
pub const LISTEN: &str = "127.0.0.53:53";

static STARTED: OnceLock<()> = OnceLock::new();

/// External names the tests pointed at a Service: name to (namespace, Service).
static POINTED: Mutex<BTreeMap<String, (String, String)>> = Mutex::new(BTreeMap::new());

/// Makes `name` resolve to the Pods Service `service` in `namespace` selects, as a record the
/// user made for that Service's load balancer would.
pub fn point_at_service(name: &str, namespace: &str, service: &str) {
    if let Ok(mut pointed) = POINTED.lock() {
        pointed.insert(name.to_ascii_lowercase(), (namespace.to_string(), service.to_string()));
    }
}

/// Starts answering, once per test process, on a thread of its own (each test has its own
/// runtime, which ends with the test), and returns once the first list of Pods is in.
pub fn serve() {
    STARTED.get_or_init(|| {
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let host = LISTEN.trim_end_matches(":53");
        assert!(
            resolv.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["nameserver", host]),
            "the resolver does not ask the suite's cluster DNS ({LISTEN}): run the tests with `make test`, or a \
             single one with `e2e/with-cluster-dns cargo test ...`"
        );
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let Ok(runtime) = runtime else {
                let _ = ready.send(Err("cannot build a runtime".to_string()));
                return;
            };
            runtime.block_on(run(ready));
        });
        match started.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the suite's cluster DNS did not start: {e}"),
            Err(e) => panic!("the suite's cluster DNS did not start within 30 s: {e}"),
        }
    });
}

async fn run(ready: std::sync::mpsc::Sender<Result<(), String>>) {
    let socket = match bind().await {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let client = match Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot reach the API server: {e}")));
            return;
        }
    };
    let (store, writer) = reflector::store();
    let pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()).default_backoff().reflect(writer);
    tokio::spawn(pods.for_each(|_| async {}));
    let (services, writer) = reflector::store();
    let watched = watcher(Api::<Service>::all(client), watcher::Config::default()).default_backoff().reflect(writer);
    tokio::spawn(watched.for_each(|_| async {}));
    if store.wait_until_ready().await.is_err() || services.wait_until_ready().await.is_err() {
        let _ = ready.send(Err("the Pod or Service watch ended before its first list".into()));
        return;
    }
    let stores = Stores { pods: store, services };
    let _ = ready.send(Ok(()));
    let mut buffer = vec![0u8; 4096];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buffer).await else { continue };
        if let Some(reply) = answer(&stores, &buffer[..len]) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

/// Binds the listening address; the previous test binary's process may take a moment to exit.
async fn bind() -> Result<UdpSocket, String> {
    let address: SocketAddr = LISTEN.parse().map_err(|e| format!("{LISTEN}: {e}"))?;
    let mut last = String::new();
    for _ in 0..50 {
        match UdpSocket::bind(address).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("cannot listen on {LISTEN}: {last}"))
}

/// The reply to one query: the addresses the name has, NODATA for a known name asked for a
/// type it has none of, NXDOMAIN for an unknown one. None for what is not a query.
fn answer(stores: &Stores, request: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(request).ok()?;
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut reply = Message::response(request.metadata.id, OpCode::Query);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.authoritative = true;
    let Some(query) = request.queries.first().cloned() else {
        reply.metadata.response_code = ResponseCode::FormErr;
        return reply.to_vec().ok();
    };
    reply.add_query(query.clone());
    let name = query.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
    let addresses = match POINTED.lock().ok().and_then(|p| p.get(&name).cloned()) {
        Some((namespace, service)) => behind_service(stores, &namespace, &service),
        None => resolve(&stores.pods, &name),
    };
    if addresses.is_empty() {
        reply.metadata.response_code = ResponseCode::NXDomain;
    }
    for ip in addresses {
        let data = match (ip, query.query_type()) {
            (IpAddr::V4(v4), RecordType::A) => RData::A(A(v4)),
            (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(v6)),
            _ => continue,
        };
        // TTL 5 s, as CoreDNS's kubernetes plugin answers by default.
        reply.add_answer(Record::from_rdata(query.name().clone(), 5, data));
    }
    reply.to_vec().ok()
}

/// What the resolver reads from.
struct Stores {
    pods: Store<Pod>,
    services: Store<Service>,
}

/// The addresses of the Pods a Service selects, ready or not.
fn behind_service(stores: &Stores, namespace: &str, service: &str) -> Vec<IpAddr> {
    let Some(selector) = stores
        .services
        .state()
        .iter()
        .find(|s| s.namespace().as_deref() == Some(namespace) && s.name_any() == service)
        .and_then(|s| s.spec.as_ref()?.selector.clone())
        .filter(|s| !s.is_empty())
    else {
        return Vec::new();
    };
    stores
        .pods
        .state()
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace))
        .filter(|p| selector.iter().all(|(k, v)| p.labels().get(k) == Some(v)))
        .filter_map(|p| p.status.as_ref()?.pod_ip.as_deref()?.parse::<IpAddr>().ok())
        .collect()
}

/// The addresses of a Pod's name, or of all a headless Service's Pods.
fn resolve(store: &Store<Pod>, name: &str) -> Vec<IpAddr> {
    let Some(rest) = name.strip_suffix(&format!(".svc.{DOMAIN}")) else { return Vec::new() };
    let labels: Vec<&str> = rest.split('.').collect();
    let (pod_hostname, service, namespace) = match labels.as_slice() {
        [hostname, service, namespace] => (Some(*hostname), *service, *namespace),
        [service, namespace] => (None, *service, *namespace),
        _ => return Vec::new(),
    };
    store
        .state()
        .iter()
        // Pods being deleted keep their records: with `publishNotReadyAddresses` the EndpointSlice
        // controller keeps terminating Pods (kubernetes `pkg/controller/endpointslice`,
        // `ShouldPodBeInEndpoints` with `includeTerminating`).
        .filter(|p| p.namespace().as_deref() == Some(namespace))
        .filter_map(|p| {
            let spec = p.spec.as_ref()?;
            let hostname = spec.hostname.clone().unwrap_or_else(|| p.name_any());
            (spec.subdomain.as_deref() == Some(service) && pod_hostname.is_none_or(|h| h == hostname)).then_some(())?;
            p.status.as_ref()?.pod_ip.as_deref()?.parse::<IpAddr>().ok()
        })
        .filter(|ip| *ip != IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        .collect()
}
