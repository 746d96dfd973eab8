//! Quiet when nothing changes. Every object the operator builds, for every example, round-trips
//! through the API server: applying it again changes nothing (no new `resourceVersion`, no new
//! `generation`, so no watch event and no reconcile). And a Ready cluster left alone gets no
//! write from the operator and no command to its members.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::{Client, Resource, ResourceExt};
use mongo_operator::api::{MongoCluster, NetworkPolicyAttachment};
use mongo_operator::backup::plan::BackupPlan;
use mongo_operator::build::backup_job::{self, BACKUP_COMPONENT, JobInputs, member_source};
use mongo_operator::build::names::ClusterNames;
use mongo_operator::build::secrets::{self, Connection};
use mongo_operator::build::{mongod_conf, network_policy, pdb, services, statefulset};
use mongo_operator::controller::ssa::apply;
use support::cluster_env::*;
use support::members::SimMembers;
use support::*;

/// Applies `object` as the operator does, then again, and returns what the second apply
/// changed: the stored `(resourceVersion, generation)` just before it and what it returned,
/// when they differ. Other controllers write status too (the Job and disruption controllers):
/// the stored object is read right before the second apply, and a pair that another writer
/// came between is tried again, up to three times.
async fn second_apply_changes<K>(api: &Api<K>, object: &K) -> Option<String>
where
    K: Resource<DynamicType = ()> + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = object.name_any();
    apply(api, object).await.expect("first apply");
    let mark = |k: &K| (k.meta().resource_version.clone(), k.meta().generation);
    let mut last = None;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stored = api.get(&name).await.expect("get");
        let second = apply(api, object).await.expect("second apply");
        if mark(&stored) == mark(&second) {
            return None;
        }
        last = Some(format!("{} {name}: {:?} → {:?}", K::kind(&()), mark(&stored), mark(&second)));
    }
    last
}

/// The objects of `kind` in the examples.
fn example_objects<K: serde::de::DeserializeOwned>(kind: &str) -> Vec<K> {
    examples()
        .into_iter()
        .flat_map(|(_, yaml)| yaml.split("\n---\n").map(str::to_string).collect::<Vec<_>>())
        .filter(|doc| doc.contains(&format!("kind: {kind}\n")))
        .map(|doc| serde_yaml::from_str(&doc).expect("an example object"))
        .collect()
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn every_object_the_operator_builds_is_left_as_it_is_when_applied_again() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "idle-objects").await;
    let settings = support::operator::in_process_context(&client, &ns).settings.clone();
    let domain = settings.cluster_domain.as_str();
    let api = |c: &Client| Api::<MongoCluster>::namespaced(c.clone(), &ns);
    let mut changed = Vec::new();
    let mut applied = 0;
    for example in example_objects::<MongoCluster>("MongoCluster") {
        // The owner must exist, or the garbage collector removes what it owns.
        let mut cluster = example.clone();
        cluster.metadata.namespace = Some(ns.clone());
        let cluster = api(&client).create(&Default::default(), &cluster).await.expect("create the cluster");
        let owner = cluster.controller_owner_ref(&()).expect("owner");
        let names = ClusterNames::new(&cluster.name_any(), &ns);
        let spec = &cluster.spec;
        let user = spec.mongod.as_ref().and_then(|m| m.config.as_ref());
        let rendered = mongod_conf::render(user, spec.tls.mode).expect("mongod.conf");
        let hash = mongod_conf::hash(user, spec.tls.mode).expect("hash");
        let sts = statefulset::build(&statefulset::Inputs {
            names: &names,
            spec,
            owner: &owner,
            operator_image: &settings.operator_image,
            config_hash: &hash,
            // No Pods: only the object itself is under test, and volumes are scarce here.
            replicas: 0,
            tls_token: "requireTLS@1",
            tls_on: true,
            exporter_credentials: "digest",
        });
        // The external names the pattern gives (an example without one has none yet).
        let external_hosts: Option<Vec<String>> = spec
            .expose
            .per_member
            .as_ref()
            .and_then(|p| (0..spec.members).map(|i| p.host(i).map(|h| format!("{h}:27017"))).collect());
        let connection = secrets::connection(&Connection {
            tls_ca: Some("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
            names: &names,
            cluster_domain: domain,
            members: spec.members,
            secret_name: &names.user_secret("admin", "app"),
            username: "app",
            db: "admin",
            password: "a password",
            applied_digest: Some("digest"),
            policy: spec.deletion_policy,
            owner: &owner,
            external_hosts: external_hosts.as_deref(),
        });
        let plan = serde_json::to_string(&BackupPlan {
            cluster: names.cluster.clone(),
            backup: "b".into(),
            source: member_source(&names.member_host(1, domain)),
            oplog: true,
            destinations: vec![],
            compression: Default::default(),
            encrypted: false,
        })
        .expect("plan");
        let job = backup_job::build(&JobInputs {
            name: &format!("{}-backup", names.cluster),
            namespace: &ns,
            cluster: &names.cluster,
            component: BACKUP_COMPONENT,
            subcommand: "backup",
            for_name: "b",
            spec,
            operator_image: &settings.operator_image,
            plan_json: &plan,
            secret_files: &[],
            owner: &owner,
            resources: None,
            ttl_seconds_after_finished: None,
        });
        let c = client.clone();
        changed.extend(second_apply_changes(&Api::<StatefulSet>::namespaced(c.clone(), &ns), &sts).await);
        changed.extend(
            second_apply_changes(
                &Api::<ConfigMap>::namespaced(c.clone(), &ns),
                &mongod_conf::config_map(&names, &rendered, &owner),
            )
            .await,
        );
        let services: Api<Service> = Api::namespaced(c.clone(), &ns);
        changed.extend(second_apply_changes(&services, &services::headless(&names, &owner)).await);
        changed.extend(second_apply_changes(&services, &services::client(&names, &spec.expose, &owner)).await);
        if let Some(per_member) = &spec.expose.per_member {
            changed.extend(second_apply_changes(&services, &services::member(&names, per_member, 0, &owner)).await);
            applied += 1;
        }
        if let Some(p) = pdb::build(
            &names,
            &spec.pod_disruption_budget,
            mongo_operator::replset::target_voters(spec.members as usize),
            &owner,
        ) {
            changed.extend(second_apply_changes(&Api::<PodDisruptionBudget>::namespaced(c.clone(), &ns), &p).await);
            applied += 1;
        }
        let policies: Api<NetworkPolicy> = Api::namespaced(c.clone(), &ns);
        changed.extend(
            second_apply_changes(
                &policies,
                &network_policy::members(&names, &spec.expose, &settings.operator_peer, &settings.cluster_dns, &owner),
            )
            .await,
        );
        changed.extend(
            second_apply_changes(
                &policies,
                &network_policy::jobs(
                    &names,
                    &spec.network_isolation.object_stores,
                    &settings.operator_peer,
                    &settings.cluster_dns,
                    &owner,
                ),
            )
            .await,
        );
        changed.extend(second_apply_changes(&Api::<Secret>::namespaced(c.clone(), &ns), &connection).await);
        changed.extend(second_apply_changes(&Api::<Job>::namespaced(c.clone(), &ns), &job).await);
        applied += 9;
    }
    for attachment in example_objects::<NetworkPolicyAttachment>("NetworkPolicyAttachment") {
        let mut a = attachment.clone();
        a.metadata.namespace = Some(ns.clone());
        let a = Api::<NetworkPolicyAttachment>::namespaced(client.clone(), &ns)
            .create(&Default::default(), &a)
            .await
            .expect("create the attachment");
        let owner = a.controller_owner_ref(&()).expect("owner");
        let names = ClusterNames::new(&a.spec.cluster_ref.name, &ns);
        let policy = network_policy::attachment(&names, &a.name_any(), &a.spec.from, &a.spec.ports, &owner);
        changed.extend(second_apply_changes(&Api::<NetworkPolicy>::namespaced(client.clone(), &ns), &policy).await);
        applied += 1;
    }
    // A MongoBackup's only object is its Job, built above from its cluster's spec.
    assert!(applied >= 20, "{applied} objects applied");
    assert!(changed.is_empty(), "applying the same object again changed it:\n{}", changed.join("\n"));
    delete_namespace(&client, &ns).await;
}

/// The operator's writes and its commands to members, counted over a window.
fn operator_writes(audit: &str, from: usize, ns: &str) -> Vec<String> {
    let user = format!("system:serviceaccount:{}:op-{ns}", support::rbac::SA_NAMESPACE);
    audit[from..]
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["user"]["username"] == user.as_str())
        .filter(|e| matches!(e["verb"].as_str(), Some("create" | "update" | "patch" | "delete" | "deletecollection")))
        .map(|e| {
            format!(
                "{} {}/{}",
                e["verb"].as_str().unwrap_or_default(),
                e["objectRef"]["resource"].as_str().unwrap_or_default(),
                e["objectRef"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn a_ready_cluster_left_alone_gets_no_write_and_no_command() {
    let Ok(audit_path) = std::env::var("MONGO_OPERATOR_AUDIT_LOG") else {
        eprintln!("the API server's audit log is not known (MONGO_OPERATOR_AUDIT_LOG): run `make test`");
        return;
    };
    let env = Env::new("idle").await;
    let users = "  users:\n    - name: app\n      db: admin\n      roles: [{name: readWrite, db: orders}]\n";
    env.create_cluster(&cluster_yaml("calm", 3, users)).await;
    let log_path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-commands.jsonl", env.ns));
    let log = mongo_replset_sim::CommandLog::create(&log_path).expect("command log");
    let _sim = SimMembers::follow(&env.client, &env.ns, "calm", Some(log)).await;
    env.ready("calm").await;
    // Let the last status write and the watch events it causes pass, and the operator close its
    // connections to the members it no longer needs (`IDLE_CLIENT`, checked a third as often).
    let idle = mongo_operator::mongo::IDLE_CLIENT;
    tokio::time::sleep(idle + idle / 3 + Duration::from_secs(5)).await;
    let audit_from = std::fs::metadata(&audit_path).map(|m| m.len() as usize).unwrap_or(0);
    let commands_from = read(&log_path).lines().count();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let writes = operator_writes(&read(std::path::Path::new(&audit_path)), audit_from, &env.ns);
    let commands: Vec<String> = read(&log_path).lines().skip(commands_from).map(str::to_string).collect();
    assert!(writes.is_empty(), "the operator wrote to an idle cluster's objects: {writes:?}");
    assert!(
        commands.is_empty(),
        "the operator sent an idle cluster's members {} commands (it looks again only when something changes): {:?}",
        commands.len(),
        commands.iter().take(5).collect::<Vec<_>>()
    );
    let c = env.ready("calm").await;
    assert_eq!(c.status.expect("status").ready_members, 3);
    env.finish().await;
}
