//! Benchmarks of the MongoCluster controller on the local control plane, printing figures (no
//! pass/fail thresholds: speed belongs here, not in timed tests).
//!
//! Run with `make bench-controller` (starts the control plane if needed). Three figures:
//! 1. time from creating a MongoCluster to all its child objects existing, and to Ready with
//!    simulated members (median of several runs);
//! 2. steady state: requests the API server served, per verb, during a quiet minute with
//!    Ready clusters (read from kube-apiserver's `apiserver_request_total`), and the commands
//!    their members received (the simulator's command log);
//! 3. 300 MongoClusters: time from operator start until every one has a status for its
//!    generation, and the operator's peak memory (VmHWM).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use mongo_operator::api::MongoCluster;
use support::members::SimMembers;
use support::operator::Operator;

const RUNS: usize = 5;
const MANY: usize = 300;

fn cluster(name: &str, members: i32) -> MongoCluster {
    serde_yaml::from_str(&format!(
        "apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoCluster\nmetadata:\n  name: {name}\nspec:\n  version: \"8.0.4\"\n  members: {members}\n  scheduling:\n    podAntiAffinity: Preferred\n"
    ))
    .expect("bench YAML")
}

fn ready(c: &MongoCluster) -> bool {
    c.status.as_ref().is_some_and(|s| {
        s.observed_generation == c.metadata.generation
            && s.conditions.iter().any(|x| x.type_ == "Ready" && x.status == "True")
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn children_exist(client: &Client, ns: &str, name: &str) -> bool {
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let svc: Api<Service> = Api::namespaced(client.clone(), ns);
    let cm: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let sec: Api<Secret> = Api::namespaced(client.clone(), ns);
    let pdb: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    matches!(sts.get_opt(name).await, Ok(Some(_)))
        && matches!(svc.get_opt(name).await, Ok(Some(_)))
        && matches!(svc.get_opt(&format!("{name}-members")).await, Ok(Some(_)))
        && matches!(cm.get_opt(&format!("{name}-mongod-config")).await, Ok(Some(_)))
        && matches!(sec.get_opt(&format!("{name}-internal")).await, Ok(Some(_)))
        && matches!(pdb.get_opt(name).await, Ok(Some(_)))
}

/// (verb, resource) → count, from the API server's own metrics.
async fn request_counts(client: &Client) -> BTreeMap<(String, String), f64> {
    let req = http::Request::get("/metrics").body(Vec::new()).expect("request");
    let text = client.request_text(req).await.expect("read /metrics");
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let label = |k: &str| {
            let start = line.find(&format!("{k}=\""))? + k.len() + 2;
            let end = line[start..].find('"')? + start;
            Some(line[start..end].to_string())
        };
        let (Some(verb), Some(resource)) = (label("verb"), label("resource")) else { continue };
        let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *out.entry((verb, resource)).or_insert(0.0) += value;
    }
    out
}

/// Events recorded by the operator in `ns`, counting every repeat of a series.
async fn operator_events(client: &Client, ns: &str) -> i64 {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let list = api.list(&ListParams::default()).await.expect("list events");
    list.items
        .iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("mongo-operator"))
        .map(|e| i64::from(e.series.as_ref().map_or(1, |s| s.count)))
        .sum()
}

fn peak_memory_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() {
    let client = support::client().await;
    support::install_crds(&client).await;

    // 1. Create to children, create to Ready.
    let ns = support::namespace(&client, "bench-ready").await;
    let operator = Operator::start(&ns);
    let api: Api<MongoCluster> = Api::namespaced(client.clone(), &ns);
    let (mut to_children, mut to_ready) = (Vec::new(), Vec::new());
    let mut sims = Vec::new();
    let logs = std::env::temp_dir().join(format!("bench-commands-{}", std::process::id()));
    std::fs::create_dir_all(&logs).expect("log dir");
    for i in 0..RUNS {
        let name = format!("b{i}");
        let start = Instant::now();
        api.create(&PostParams::default(), &cluster(&name, 3)).await.expect("create");
        let log = mongo_replset_sim::CommandLog::create(&logs.join(format!("{name}.jsonl"))).expect("command log");
        let sim = SimMembers::follow(&client, &ns, &name, Some(log)).await;
        while !children_exist(&client, &ns, &name).await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        to_children.push(start.elapsed());
        while !api.get(&name).await.is_ok_and(|c| ready(&c)) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        to_ready.push(start.elapsed());
        sims.push(sim);
    }
    println!(
        "create → all child objects: median {:?} over {RUNS} runs ({:?})",
        median(to_children.clone()),
        to_children
    );
    println!(
        "create → Ready (3 simulated members): median {:?} over {RUNS} runs ({:?})",
        median(to_ready.clone()),
        to_ready
    );

    // 2. Steady state: every request the API server served in a quiet minute, with RUNS Ready
    //    clusters. Other components (kwok's node heartbeats, controllers) are counted too, so
    //    this is an upper bound of the operator's share; the same window without the operator
    //    is printed alongside.
    let window = Duration::from_secs(60);
    // The operator closes its connections to members it has not needed for IDLE_CLIENT.
    let idle = mongo_operator::mongo::IDLE_CLIENT;
    tokio::time::sleep(idle + idle / 3 + Duration::from_secs(5)).await;
    let commands = || {
        std::fs::read_dir(&logs)
            .map(|d| d.flatten().map(|f| std::fs::read_to_string(f.path()).unwrap_or_default().lines().count()).sum())
            .unwrap_or(0usize)
    };
    let before = request_counts(&client).await;
    let events_before = operator_events(&client, &ns).await;
    let commands_before = commands();
    tokio::time::sleep(window).await;
    let after = request_counts(&client).await;
    let events_after = operator_events(&client, &ns).await;
    println!("Events the operator recorded during the quiet minute: {}", events_after - events_before);
    println!(
        "commands the members of {RUNS} Ready clusters received during the quiet minute: {}",
        commands() - commands_before
    );
    drop(operator);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let quiet_before = request_counts(&client).await;
    tokio::time::sleep(window).await;
    let quiet_after = request_counts(&client).await;
    let ours = [
        "mongoclusters",
        "statefulsets",
        "services",
        "configmaps",
        "secrets",
        "poddisruptionbudgets",
        "persistentvolumeclaims",
        "pods",
        "events",
        "networkpolicies",
        "jobs",
    ];
    let delta = |a: &BTreeMap<(String, String), f64>, b: &BTreeMap<(String, String), f64>| {
        let mut d: BTreeMap<String, f64> = BTreeMap::new();
        for ((verb, resource), v) in a {
            if !ours.contains(&resource.as_str()) || verb == "WATCH" {
                continue;
            }
            let diff = v - b.get(&(verb.clone(), resource.clone())).copied().unwrap_or(0.0);
            if diff > 0.0 {
                *d.entry(format!("{verb} {resource}")).or_insert(0.0) += diff;
            }
        }
        d
    };
    let with = delta(&after, &before);
    let without = delta(&quiet_after, &quiet_before);
    let per_hour = |d: &BTreeMap<String, f64>, writes: bool| {
        let is_write = |k: &str| !(k.starts_with("GET ") || k.starts_with("LIST "));
        d.iter().filter(|(k, _)| is_write(k) == writes).map(|(_, v)| v).sum::<f64>() * 60.0 / (RUNS as f64)
    };
    println!("steady state with the operator, {RUNS} Ready clusters, 60 s: {with:?}");
    println!("same window without the operator: {without:?}");
    println!(
        "steady state per cluster per hour on the operator's resources (upper bound: other components count too): \
         {:.0} writes and {:.0} reads with the operator; {:.0} writes and {:.0} reads without it",
        per_hour(&with, true),
        per_hour(&with, false),
        per_hour(&without, true),
        per_hour(&without, false)
    );
    drop(sims);
    let _ = std::fs::remove_dir_all(&logs);
    support::delete_namespace(&client, &ns).await;

    // 3. Many clusters: start the operator on 300 existing MongoClusters (no members run, so
    //    each waits for its Pods) and time until every one has a status for its generation.
    let ns = support::namespace(&client, "bench-many").await;
    let api: Api<MongoCluster> = Api::namespaced(client.clone(), &ns);
    for i in 0..MANY {
        let mut c = cluster(&format!("m{i}"), 1);
        c.spec.pod_disruption_budget.enabled = false;
        api.create(&PostParams::default(), &c).await.expect("create");
    }
    let start = Instant::now();
    let operator = Operator::start(&ns);
    let pid = operator.child.id().unwrap_or(0);
    loop {
        let list = api.list(&ListParams::default()).await.expect("list");
        let done = list
            .items
            .iter()
            .filter(|c| c.status.as_ref().is_some_and(|s| s.observed_generation == c.metadata.generation))
            .count();
        if done == MANY {
            break;
        }
        if start.elapsed() > Duration::from_secs(900) {
            println!("only {done} of {MANY} reconciled after 900 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = start.elapsed();
    let peak = peak_memory_kib(pid);
    println!(
        "{MANY} MongoClusters: operator start → all reconciled in {elapsed:?}; operator peak memory {} MiB",
        peak.map_or("unknown".into(), |k| format!("{:.1}", k as f64 / 1024.0))
    );
    drop(operator);
    support::delete_namespace(&client, &ns).await;
}
