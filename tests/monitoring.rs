//! Monitoring on the local control plane: the exporter next to every member with its own
//! least-privileged user, whose password rotates like any other; the exporter turned off
//! through a normal rollout; the PodMonitor kept when asked for, explained when the
//! Prometheus Operator is missing, removed when no longer wanted; the chart's PrometheusRule and
//! members' PodMonitor accepted by the Prometheus Operator's real CRDs.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use mongo_operator::api::MongoCluster;
use mongo_operator::build::pod_monitor::pod_monitor_resource;
use mongo_operator::mongo::{Credentials, DriverAdmin, MongoAdmin, Timeouts};
use support::cluster_env::*;
use support::members::SimMembers;

/// The Prometheus Operator's CRDs the tests install: (file, CRD name).
fn prometheus_operator_crds() -> Vec<(String, String)> {
    ["podmonitors", "prometheusrules", "servicemonitors"]
        .map(|k| (format!("monitoring.coreos.com_{k}.yaml"), format!("{k}.monitoring.coreos.com")))
        .to_vec()
}

async fn install_prometheus_operator_crds(client: &kube::Client) {
    support::crds_from_tools::install(client, "prometheus-operator-crds", &prometheus_operator_crds()).await;
}

async fn remove_prometheus_operator_crds(client: &kube::Client) {
    support::crds_from_tools::remove(client, &prometheus_operator_crds()).await;
}

fn exporter_of(sts: &StatefulSet) -> Option<k8s_openapi::api::core::v1::Container> {
    sts.spec.as_ref()?.template.spec.as_ref()?.containers.iter().find(|c| c.name == "exporter").cloned()
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn every_member_gets_an_exporter_with_a_user_of_its_own_whose_password_rotates() {
    let env = Env::new("mon-exporter").await;
    env.create_cluster(&cluster_yaml("gauge", 3, "")).await;
    let sim = SimMembers::follow(&env.client, &env.ns, "gauge", None).await;
    env.ready("gauge").await;
    let sts = env.api::<StatefulSet>().get("gauge").await.expect("StatefulSet");
    let exporter = exporter_of(&sts).expect("an exporter container");
    let args = exporter.args.clone().unwrap_or_default();
    assert!(
        args.contains(&"--collector.diagnosticdata".to_string()) && args.contains(&"--compatible-mode".to_string())
    );
    let uri = args.iter().find(|a| a.starts_with("--mongodb.uri=")).expect("uri");
    assert!(uri.contains("localhost:27017") && uri.contains("tls=true"), "{uri}");
    let password = env.secret_text("gauge-internal", "monitor-password").await.expect("monitor-password");
    assert!(!args.iter().any(|a| a.contains(&password)), "the password stays out of the command line");
    let env_password = exporter.env.unwrap_or_default().into_iter().find(|e| e.name == "MONGODB_PASSWORD");
    let from = env_password.and_then(|e| e.value_from).and_then(|f| f.secret_key_ref).expect("from the Secret");
    assert_eq!((from.name.as_str(), from.key.as_str()), ("gauge-internal", "monitor-password"));
    let ports = exporter.ports.unwrap_or_default();
    assert_eq!(ports.first().map(|p| (p.name.clone(), p.container_port)), Some((Some("metrics".into()), 9216)));

    // The monitoring user has exactly clusterMonitor and read on local, and logs in.
    let key_file = env.secret_text("gauge-internal", "keyfile").await.expect("keyfile");
    let primary = sim.primary().expect("a primary");
    let admin = DriverAdmin::new(Timeouts::default());
    let system = sim.target(&primary, Some(Credentials::from_key_file(&key_file))).await;
    let roles = |users: Vec<mongo_operator::mongo::UserInfo>| {
        let user = users.into_iter().find(|u| u.user == "mongo-operator-monitor").expect("the monitoring user");
        let mut roles: Vec<(String, String)> = user.roles.into_iter().map(|r| (r.role, r.db)).collect();
        roles.sort();
        roles
    };
    let users = admin.users(&system, "admin").await.expect("usersInfo");
    assert_eq!(roles(users), vec![("clusterMonitor".into(), "admin".into()), ("read".into(), "local".into())]);
    let monitor = sim.target(&primary, Some(Credentials::scram("mongo-operator-monitor", "admin", &password))).await;
    admin.hello(&monitor).await.expect("the monitoring user logs in");

    // A new password: delete the key; the operator makes another, gives it to MongoDB and
    // restarts the members (the exporter reads it from its environment at start).
    let before = sts.spec.as_ref().and_then(|s| s.template.metadata.as_ref()).and_then(|m| m.annotations.clone());
    let remove = serde_json::json!({"data": {"monitor-password": null}});
    env.api::<Secret>().patch("gauge-internal", &PatchParams::default(), &Patch::Merge(&remove)).await.expect("patch");
    let rotated = support::eventually("a new monitoring password", Duration::from_secs(60), || async {
        env.secret_text("gauge-internal", "monitor-password").await.filter(|p| *p != password)
    })
    .await;
    support::eventually("MongoDB has the new password", Duration::from_secs(60), || async {
        let monitor = sim.target(&primary, Some(Credentials::scram("mongo-operator-monitor", "admin", &rotated))).await;
        admin.hello(&monitor).await.ok()
    })
    .await;
    support::eventually("the members' template carries the new password's digest", Duration::from_secs(60), || async {
        let sts = env.api::<StatefulSet>().get("gauge").await.ok()?;
        let now = sts.spec?.template.metadata?.annotations;
        (now != before).then_some(())
    })
    .await;
    env.ready("gauge").await;

    // Turned off: a normal rollout removes the container, and the annotations go with it.
    env.patch_spec("gauge", serde_json::json!({"monitoring": {"exporter": {"enabled": false}}})).await;
    support::eventually("no exporter in any member Pod", Duration::from_secs(180), || async {
        let pods = env.pods("gauge").await;
        let none = pods.len() == 3
            && pods.iter().all(|p| {
                p.spec.as_ref().is_some_and(|s| s.containers.iter().all(|c| c.name != "exporter"))
                    && !p.annotations().contains_key("prometheus.io/scrape")
            });
        none.then_some(())
    })
    .await;
    env.ready("gauge").await;
    env.finish().await;
}

fn degraded_reason(c: &MongoCluster) -> Option<(String, String)> {
    let d = c.status.as_ref()?.conditions.iter().find(|x| x.type_ == "Degraded")?.clone();
    Some((d.reason, d.message))
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn a_pod_monitor_is_kept_when_asked_for_and_its_absence_explained() {
    let env = Env::new("mon-podmonitor").await;
    remove_prometheus_operator_crds(&env.client).await;
    let monitoring =
        "  monitoring: {podMonitor: {enabled: true, interval: 30s, labels: {release: kube-prometheus-stack}}}\n";
    env.create_cluster(&cluster_yaml("scope", 1, monitoring)).await;
    let _sim = SimMembers::follow(&env.client, &env.ns, "scope", None).await;
    let message = support::eventually("PodMonitorUnavailable", READY_TIMEOUT, || async {
        let (reason, message) = degraded_reason(&env.api::<MongoCluster>().get("scope").await.ok()?)?;
        (reason == "PodMonitorUnavailable").then_some(message)
    })
    .await;
    assert!(message.contains("monitoring.coreos.com/v1"), "{message}");
    env.recorded("PodMonitorUnavailable", 1).await;

    // With the Prometheus Operator's CRDs (and a reconcile asked for, rather than waiting up
    // to a minute), the PodMonitor passes their schema.
    install_prometheus_operator_crds(&env.client).await;
    let request = serde_json::json!({"metadata": {"annotations": {"mongo.operator.rs/reconcile-requested-at": "now"}}});
    env.api::<MongoCluster>().patch("scope", &PatchParams::default(), &Patch::Merge(&request)).await.expect("annotate");
    let monitors: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.ns, &pod_monitor_resource());
    let monitor =
        support::eventually("the PodMonitor", READY_TIMEOUT, || async { monitors.get("scope-mongodb").await.ok() })
            .await;
    assert_eq!(monitor.labels().get("release").map(String::as_str), Some("kube-prometheus-stack"));
    let endpoint = &monitor.data["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["port"], "metrics");
    assert_eq!(endpoint["relabelings"][0]["targetLabel"], "cluster");
    support::eventually("the status names it and the condition clears", READY_TIMEOUT, || async {
        let c = env.api::<MongoCluster>().get("scope").await.ok()?;
        let named = c.status.as_ref()?.pod_monitor.as_deref() == Some("scope-mongodb");
        (named && degraded_reason(&c)?.0 != "PodMonitorUnavailable").then_some(())
    })
    .await;

    // No longer asked for: removed, and the status says so.
    env.patch_spec("scope", serde_json::json!({"monitoring": {"podMonitor": {"enabled": false}}})).await;
    support::eventually("the PodMonitor gone", READY_TIMEOUT, || async {
        let gone = monitors.get_opt("scope-mongodb").await.ok()?.is_none();
        let c = env.api::<MongoCluster>().get("scope").await.ok()?;
        (gone && c.status?.pod_monitor.is_none()).then_some(())
    })
    .await;

    // The chart's PrometheusRule (every alert rule) and its PodMonitor for all members pass the
    // same CRDs' schemas, as the API server checks them.
    let rendered = support::rbac::helm_template(&[
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "membersPodMonitor.enabled=true",
        "--show-only",
        "templates/prometheusrule.yaml",
        "--show-only",
        "templates/members-podmonitor.yaml",
        "--namespace",
        &env.ns,
    ]);
    support::rbac::kubectl_apply(&rendered);
    let rules: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("monitoring.coreos.com", "v1", "PrometheusRule"),
            "prometheusrules",
        ),
    );
    let applied = rules.list(&Default::default()).await.expect("PrometheusRules");
    let groups = applied.items.first().map(|r| r.data["spec"]["groups"].clone()).expect("the chart's PrometheusRule");
    let count: usize =
        groups.as_array().map_or(0, |g| g.iter().map(|g| g["rules"].as_array().map_or(0, Vec::len)).sum());
    assert!(count >= 19, "{count} rules");
    let client = env.client.clone();
    env.finish().await;
    remove_prometheus_operator_crds(&client).await;
}
