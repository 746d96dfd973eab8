//! The local control plane does what the operator's tests rely on: Nodes are Ready across
//! zones, a StatefulSet's Pods run and become Ready with loopback IPs and bound volumes, a Job
//! completes once its Pod is finished (kwok keeps Job Pods Running; tests play the kubelet), and deleting a StatefulSet garbage-collects its Pods.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use support::*;

/// Whether (type, status) condition pairs contain Ready=True; Nodes and Pods both report it so.
fn ready_in<'a>(conditions: Option<impl Iterator<Item = (&'a String, &'a String)>>) -> bool {
    conditions.is_some_and(|mut c| c.any(|(t, s)| t == "Ready" && s == "True"))
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn nodes_are_ready_in_several_zones() {
    let client = client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes.list(&ListParams::default()).await.expect("list nodes");
    let ready: Vec<&Node> = list
        .items
        .iter()
        .filter(|n| {
            ready_in(
                n.status.as_ref().and_then(|s| s.conditions.as_ref()).map(|c| c.iter().map(|c| (&c.type_, &c.status))),
            )
        })
        .collect();
    assert!(ready.len() >= 5, "expected at least 5 Ready nodes, found {}", ready.len());
    let mut zones: Vec<String> =
        ready.iter().filter_map(|n| n.metadata.labels.as_ref()?.get("topology.kubernetes.io/zone").cloned()).collect();
    zones.sort();
    zones.dedup();
    assert!(zones.len() >= 3, "expected nodes in at least 3 zones, found {zones:?}");
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn statefulset_pods_run_with_volumes_and_are_collected() {
    let client = client().await;
    let ns = namespace(&client, "sts").await;
    let sts: StatefulSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "serviceName": "web", "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/none",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        }
    }))
    .unwrap();
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    sts_api.create(&PostParams::default(), &sts).await.expect("create StatefulSet");

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let lp = ListParams::default().labels("app=web");
    let running = eventually("3 Ready pods", Duration::from_secs(90), || async {
        let list = pods.list(&lp).await.ok()?;
        let ready: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| {
                ready_in(
                    p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .map(|c| c.iter().map(|c| (&c.type_, &c.status))),
                )
            })
            .collect();
        (ready.len() == 3).then_some(ready)
    })
    .await;
    for pod in &running {
        let ip: std::net::Ipv4Addr = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok())
            .expect("pod has an IPv4 address");
        assert!(ip.is_loopback(), "pod IP {ip} is outside 127.0.0.0/8; tests must only reach loopback");
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let bound = pvcs.list(&ListParams::default()).await.expect("list PVCs");
    assert_eq!(
        bound.items.iter().filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")).count(),
        3
    );

    sts_api.delete("web", &DeleteParams::background()).await.expect("delete StatefulSet");
    eventually("pods garbage-collected", Duration::from_secs(60), || async {
        pods.list(&lp).await.ok().filter(|l| l.items.is_empty()).map(|_| ())
    })
    .await;
    // Volume claims outlive their StatefulSet: the guarantee scale-down and Retain rely on.
    assert_eq!(pvcs.list(&ListParams::default()).await.expect("list PVCs").items.len(), 3);
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn jobs_complete() {
    let client = client().await;
    let ns = namespace(&client, "job").await;
    let job: Job = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "once"},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "example.invalid/none"}]}}}
    }))
    .unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    jobs.create(&PostParams::default(), &job).await.expect("create Job");
    // kwok runs the Pod but no process: it stays Running until its "process" ends, which the
    // test reports as a kubelet would.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
    let pod = eventually("the Job's Pod to run", Duration::from_secs(60), || async {
        let list =
            pods.list(&kube::api::ListParams::default().labels("batch.kubernetes.io/job-name=once")).await.ok()?;
        list.items.into_iter().find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    })
    .await;
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let finished = serde_json::json!({ "status": { "phase": "Succeeded", "containerStatuses": [{
        "name": "c", "image": "example.invalid/none", "imageID": "", "ready": false, "restartCount": 0,
        "state": { "terminated": { "exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now } } }] } });
    pods.patch_status(
        &kube::ResourceExt::name_any(&pod),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&finished),
    )
    .await
    .expect("finish the Pod");
    eventually("the Job to complete", Duration::from_secs(60), || async {
        let j = jobs.get("once").await.ok()?;
        (j.status?.succeeded? == 1).then_some(())
    })
    .await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn server_reports_a_real_kubernetes_version() {
    let client = client().await;
    let info = client.apiserver_version().await.expect("version");
    assert!(info.git_version.starts_with("v1."), "unexpected version {}", info.git_version);
    assert!(!info.git_version.contains("master"), "version ldflags missing: {}", info.git_version);
}
