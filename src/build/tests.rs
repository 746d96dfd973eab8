//! Builder tests: a golden StatefulSet for a typical spec, and the `mongod-pod-facts.md` §9
//! checklist checked item by item on what the builder produces.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::names::ClusterNames;
use super::statefulset::{self, Inputs};
use super::{mongod_conf, pdb, services};
use crate::api::MongoClusterSpec;

const GOLDEN: &str = "src/build/testdata/statefulset-typical.yaml";

/// A MongoCluster `orders` as controlling owner, for the builders' tests.
pub(super) fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "mongo.operator.rs/v1alpha1".into(),
        kind: "MongoCluster".into(),
        name: "orders".into(),
        uid: "00000000-0000-0000-0000-000000000001".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn typical() -> MongoClusterSpec {
    serde_json::from_value(serde_json::json!({
        "version": "8.0.4",
        "members": 3,
        "storage": {"size": "100Gi", "storageClassName": "fast"},
        "resources": {"requests": {"cpu": "2"}, "limits": {"memory": "8Gi"}},
        "mongod": {"config": {"operationProfiling": {"mode": "slowOp"}}},
    }))
    .expect("typical spec")
}

fn build(spec: &MongoClusterSpec) -> StatefulSet {
    let names = ClusterNames::new("orders", "prod");
    let hash = mongod_conf::hash(spec.mongod.as_ref().and_then(|m| m.config.as_ref()), spec.tls.mode).expect("hash");
    statefulset::build(&Inputs {
        names: &names,
        spec,
        owner: &owner(),
        operator_image: "mongo-operator:test",
        config_hash: &hash,
        replicas: spec.members,
        tls_token: "requireTLS@1",
        tls_on: spec.tls.mode.on(),
        exporter_credentials: "digest-of-the-monitoring-password",
    })
}

#[test]
fn golden_statefulset_for_a_typical_spec() {
    let yaml = serde_yaml::to_string(&build(&typical())).expect("yaml");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &yaml).expect("write golden");
    }
    let golden = std::fs::read_to_string(&path).expect("golden file exists; create it with UPDATE_GOLDEN=1");
    assert_eq!(yaml, golden, "the StatefulSet changed; review and rerun with UPDATE_GOLDEN=1");
}

fn containers(sts: &StatefulSet) -> (Vec<Container>, Container) {
    let pod = sts.spec.as_ref().and_then(|s| s.template.spec.clone()).expect("pod spec");
    (pod.init_containers.unwrap_or_default(), pod.containers[0].clone())
}

fn arg_after<'a>(cmd: &'a [String], flag: &str) -> Option<&'a str> {
    cmd.iter().position(|a| a == flag).and_then(|i| cmd.get(i + 1)).map(String::as_str)
}

#[test]
fn the_pod_facts_checklist_holds() {
    let sts = build(&typical());
    let spec = sts.spec.clone().expect("spec");
    let pod = spec.template.spec.clone().expect("pod");
    let (inits, mongod) = containers(&sts);
    let cmd = mongod.command.clone().expect("command");
    let psc = pod.security_context.clone().expect("pod security context");
    // 1
    assert_eq!(
        (psc.run_as_non_root, psc.run_as_user, psc.run_as_group, psc.fs_group),
        (Some(true), Some(999), Some(999), Some(999))
    );
    assert_eq!(psc.seccomp_profile.map(|s| s.type_).as_deref(), Some("RuntimeDefault"));
    // 2
    for c in inits.iter().chain([&mongod]) {
        let sc = c.security_context.clone().expect("container security context");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(sc.capabilities.and_then(|c| c.drop), Some(vec!["ALL".to_string()]), "{}", c.name);
        assert!(sc.run_as_user.is_none_or(|u| u != 0) && sc.privileged != Some(true));
    }
    // 3
    assert_eq!(psc.fs_group_change_policy.as_deref(), Some("OnRootMismatch"));
    // 4, 5, 6: keyFile in an emptyDir written by the init container; the Secret only in init.
    assert_eq!(arg_after(&cmd, "--keyFile"), Some(statefulset::KEY_FILE));
    let volumes = pod.volumes.clone().expect("volumes");
    let keyfile = volumes.iter().find(|v| v.name == "keyfile").expect("keyfile volume");
    assert!(keyfile.empty_dir.is_some());
    let src = volumes.iter().find(|v| v.name == "keyfile-src").expect("secret volume");
    assert_eq!(src.secret.as_ref().and_then(|s| s.default_mode), Some(0o440));
    assert!(mongod.volume_mounts.clone().unwrap_or_default().iter().all(|m| m.name != "keyfile-src"));
    assert!(inits[0].command.clone().unwrap_or_default().contains(&"--key-file-dst".to_string()));
    // 7
    assert!(!cmd.iter().any(|a| a.contains("relaxPermChecks")));
    // 8, 9, 10
    assert_eq!(arg_after(&cmd, "--replSet"), Some("orders"));
    assert_eq!(cmd.iter().filter(|a| a.starts_with("--bind_ip")).collect::<Vec<_>>(), ["--bind_ip_all"]);
    assert_eq!(arg_after(&cmd, "--port"), Some("27017"));
    assert_eq!(mongod.ports.clone().unwrap_or_default()[0].container_port, 27017);
    let data =
        mongod.volume_mounts.clone().unwrap_or_default().into_iter().find(|m| m.name == "data").expect("data mount");
    assert_eq!(arg_after(&cmd, "--dbpath"), Some(data.mount_path.as_str()));
    // 11: 8 Gi limit -> 0.5 x 7 GiB = 3.5 GB; memory request = limit.
    assert_eq!(arg_after(&cmd, "--wiredTigerCacheSizeGB"), Some("3.50"));
    let res = mongod.resources.clone().expect("resources");
    assert_eq!(res.requests.as_ref().and_then(|r| r.get("memory")), res.limits.as_ref().and_then(|l| l.get("memory")));
    // 12
    for c in inits.iter().chain([&mongod]) {
        assert_eq!(c.security_context.clone().and_then(|s| s.read_only_root_filesystem), Some(true));
    }
    assert!(mongod.volume_mounts.clone().unwrap_or_default().iter().any(|m| m.mount_path == "/tmp"));
    // 13, 14, 15
    assert!(mongod.env.clone().unwrap_or_default().iter().all(|e| !e.name.starts_with("MONGO_INITDB")));
    assert!(!cmd.iter().any(|a| a.contains("fork")));
    assert_eq!(cmd[0], "mongod", "mongod is PID 1");
    // 16, 17, 18, 19, 20
    let probes = [mongod.readiness_probe.clone(), mongod.liveness_probe.clone(), mongod.startup_probe.clone()];
    for p in probes.iter() {
        let p = p.clone().expect("probe");
        let exec = p.exec.and_then(|e| e.command).expect("exec probe");
        assert!(exec[0].ends_with("/mongo-operator") && exec[1] == "probe", "{exec:?}");
        assert!(p.timeout_seconds.unwrap_or(1) >= 2);
    }
    let startup = mongod.startup_probe.clone().expect("startup");
    assert!(startup.period_seconds.unwrap_or(10) * startup.failure_threshold.unwrap_or(3) >= 600);
    // 21
    assert!(pod.termination_grace_period_seconds.unwrap_or(30) >= 60);
    assert!(mongod.lifecycle.is_none(), "no preStop hook");
    // 22
    let names = ClusterNames::new("orders", "prod");
    let headless = services::headless(&names, &owner());
    let hs = headless.spec.clone().expect("service spec");
    assert_eq!((hs.cluster_ip.as_deref(), hs.publish_not_ready_addresses), (Some("None"), Some(true)));
    assert_eq!(spec.service_name.as_deref(), headless.metadata.name.as_deref());
    // 24
    let anti = pod.affinity.and_then(|a| a.pod_anti_affinity).expect("anti-affinity");
    assert_eq!(
        anti.required_during_scheduling_ignored_during_execution.expect("required")[0].topology_key,
        "kubernetes.io/hostname"
    );
    let budget = pdb::build(&names, &Default::default(), 3, &owner()).expect("a budget by default");
    assert_eq!(
        budget.spec.clone().and_then(|s| s.selector).and_then(|s| s.match_labels),
        Some(spec.selector.match_labels.clone().unwrap_or_default())
    );
    // 25
    assert!(
        spec.template
            .metadata
            .and_then(|m| m.annotations)
            .is_some_and(|a| a.contains_key(statefulset::CONFIG_HASH_ANNOTATION))
    );
    // Rollout and volumes: the operator restarts members; scale-down keeps PVCs.
    assert_eq!(spec.update_strategy.and_then(|u| u.type_).as_deref(), Some("OnDelete"));
    assert_eq!(spec.persistent_volume_claim_retention_policy.and_then(|p| p.when_scaled).as_deref(), Some("Retain"));
}

#[test]
fn image_pull_secrets_reach_the_pods_only_when_set() {
    let pod = |spec: &MongoClusterSpec| build(spec).spec.and_then(|s| s.template.spec).expect("pod");
    assert_eq!(pod(&typical()).image_pull_secrets, None, "no field, no change to existing Pods");
    let mut spec = typical();
    spec.image_pull_secrets = vec![k8s_openapi::api::core::v1::LocalObjectReference { name: "regcred".into() }];
    let secrets = pod(&spec).image_pull_secrets.expect("pull secrets");
    assert_eq!(secrets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["regcred"]);
}

#[test]
fn cache_size_follows_the_memory_limit() {
    let with_limit = |limit: &str| {
        let mut spec = typical();
        spec.resources = serde_json::from_value(serde_json::json!({"limits": {"memory": limit}})).ok();
        statefulset::wired_tiger_cache_gb(&statefulset::resources(&spec))
    };
    assert_eq!(with_limit("1Gi"), Some(0.25));
    assert_eq!(with_limit("2Gi"), Some(0.5));
    assert_eq!(with_limit("16Gi"), Some(7.5));
    assert_eq!(with_limit("1500M"), Some(0.25));
    let mut none = typical();
    none.resources = None;
    assert_eq!(
        statefulset::wired_tiger_cache_gb(&statefulset::resources(&none)),
        Some(0.5),
        "the default is a 2 Gi limit"
    );
}

#[test]
fn a_load_balancer_is_internal_and_limited_to_its_source_ranges() {
    let names = ClusterNames::new("orders", "prod");
    let private = services::client(&names, &Default::default(), &owner());
    assert_eq!(private.spec.and_then(|s| s.type_).as_deref(), Some("ClusterIP"));
    let expose = serde_json::from_value(
        serde_json::json!({"type": "LoadBalancer", "loadBalancer": {"sourceRanges": ["10.0.0.0/8"]}}),
    )
    .unwrap();
    let lb = services::client(&names, &expose, &owner());
    let annotations = lb.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("networking.gke.io/load-balancer-type").map(String::as_str), Some("Internal"));
    assert_eq!(lb.spec.and_then(|s| s.load_balancer_source_ranges), Some(vec!["10.0.0.0/8".to_string()]));
}

#[test]
fn no_user_annotation_turns_an_internal_load_balancer_public() {
    let names = ClusterNames::new("orders", "prod");
    let expose = serde_json::from_value(serde_json::json!({"type": "LoadBalancer", "loadBalancer": {
        "sourceRanges": ["10.0.0.0/8"],
        "annotations": {"networking.gke.io/load-balancer-type": "External", "example.com/team": "shop"},
    }}))
    .unwrap();
    let annotations = services::client(&names, &expose, &owner()).metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get("networking.gke.io/load-balancer-type").map(String::as_str), Some("Internal"));
    assert_eq!(annotations.get("example.com/team").map(String::as_str), Some("shop"));
}

#[test]
fn admission_refuses_every_annotation_the_operator_sets_on_internal_load_balancers() {
    use kube::CustomResourceExt;
    let crd = serde_json::to_string(&crate::api::MongoCluster::crd()).unwrap();
    let rule = crd
        .split("\"rule\":\"")
        .find(|r| r.starts_with("!self.internal"))
        .expect("the load balancer's annotation rule");
    for (key, _) in services::INTERNAL_LB_ANNOTATIONS {
        assert!(rule.split('"').next().unwrap_or_default().contains(key), "{key} is not in the CEL rule");
    }
}

/// The arbiter of `spec`, with TLS as `build` has it.
fn build_arbiter(spec: &MongoClusterSpec, tls_key: &str) -> StatefulSet {
    let names = ClusterNames::new("orders", "prod");
    statefulset::arbiter(
        &Inputs {
            names: &names,
            spec,
            owner: &owner(),
            operator_image: "mongo-operator:test",
            config_hash: "hash",
            replicas: spec.members,
            tls_token: "requireTLS@1",
            tls_on: spec.tls.mode.on(),
            exporter_credentials: "digest-of-the-monitoring-password",
        },
        tls_key,
    )
}

#[test]
fn the_arbiter_runs_mongod_alone_without_a_volume_under_the_members_headless_service() {
    let spec: MongoClusterSpec = serde_json::from_value(serde_json::json!({
        "version": "8.0.4", "members": 2, "arbiter": {"enabled": true},
    }))
    .expect("spec");
    let sts = build_arbiter(&spec, "requireTLS/0123");
    let s = sts.spec.clone().expect("spec");
    assert_eq!(sts.metadata.name.as_deref(), Some("orders-arbiter"));
    assert_eq!(s.replicas, Some(1));
    assert_eq!(
        s.service_name.as_deref(),
        Some("orders-members"),
        "named like the members: orders-arbiter-0.orders-members"
    );
    assert!(s.volume_claim_templates.is_none(), "no volume");
    assert_eq!(s.update_strategy.and_then(|u| u.type_).as_deref(), Some("OnDelete"), "restarted in the rolling order");
    // Its Pod carries the members' selector, so the headless Service, the NetworkPolicies and
    // the PodDisruptionBudget count it, and one of its own, which its StatefulSet selects.
    let template = s.template.metadata.clone().expect("metadata");
    let pod_labels = template.labels.expect("labels");
    for (k, v) in super::labels::selector("orders").iter().chain(super::labels::arbiter_selector("orders").iter()) {
        assert_eq!(pod_labels.get(k), Some(v), "{k}");
    }
    assert_eq!(s.selector.match_labels, Some(super::labels::arbiter_selector("orders")));
    assert_eq!(
        template.annotations.expect("annotations").get(statefulset::ARBITER_TLS_ANNOTATION).map(String::as_str),
        Some("requireTLS/0123")
    );
    let pod = s.template.spec.expect("pod");
    assert_eq!(pod.containers.len(), 1, "mongod only: no exporter");
    let data = pod.volumes.unwrap_or_default().into_iter().find(|v| v.name == "data").expect("a data volume");
    assert!(data.empty_dir.is_some(), "an emptyDir: the arbiter's dbpath holds only the replica-set config");
    let mongod = &pod.containers[0];
    let limit = mongod.resources.as_ref().and_then(|r| r.limits.as_ref()).and_then(|l| l.get("memory"));
    assert_eq!(limit.map(|q| q.0.as_str()), Some(statefulset::ARBITER_MEMORY));
    assert_eq!(arg_after(mongod.command.as_deref().unwrap_or_default(), "--wiredTigerCacheSizeGB"), Some("0.25"));
    assert!(mongod.readiness_probe.is_some() && mongod.startup_probe.is_some());
    // Apart from the members' StatefulSet, whose Pods its selector does not match.
    let members = build(&spec).spec.expect("members").selector.match_labels.expect("labels");
    assert!(
        members.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "the members' selector matches it: never claims it"
    );
    assert_ne!(members, super::labels::arbiter_selector("orders"));
}

#[test]
fn the_arbiter_restarts_when_the_tls_mode_or_the_certificates_it_would_reload_change() {
    use crate::api::TlsMode;
    let key = statefulset::arbiter_tls_key;
    let base = key(TlsMode::Prefer, Some("cert-a"), Some("ca-1"));
    assert_eq!(base, key(TlsMode::Prefer, Some("cert-a"), Some("ca-1")));
    assert_ne!(base, key(TlsMode::Require, Some("cert-a"), Some("ca-1")), "a run-time mode move");
    assert_ne!(base, key(TlsMode::Prefer, Some("cert-b"), Some("ca-1")), "a renewed certificate");
    assert_ne!(base, key(TlsMode::Prefer, Some("cert-a"), Some("ca-1\nca-2")), "a CA renewal");
    assert!(base.starts_with("preferTLS/"));
}

#[test]
fn the_disruption_budget_counts_the_arbiters_vote() {
    let spec: crate::api::PodDisruptionBudgetSpec =
        serde_json::from_value(serde_json::json!({"enabled": true, "maxUnavailable": 2})).expect("spec");
    // Two data-bearing members and the arbiter: three votes, one may be down.
    assert_eq!(pdb::max_unavailable(&spec, 3), 1);
}
