//! What the builders produce is accepted by a real API server, and the member Pod passes the
//! API server's own Pod Security admission at the "restricted" level.

mod support;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use mongo_operator::api::MongoClusterSpec;
use mongo_operator::build::names::ClusterNames;
use mongo_operator::build::statefulset::{self, Inputs};
use mongo_operator::build::{mongod_conf, pdb, services};
use support::*;

fn spec(json: serde_json::Value) -> MongoClusterSpec {
    serde_json::from_value(json).expect("spec")
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn built_objects_are_accepted_and_pods_pass_the_restricted_profile() {
    let client = client().await;
    let ns = namespace(&client, "builders").await;
    // Enforce the restricted Pod Security Standard in this namespace.
    let nss: Api<Namespace> = Api::all(client.clone());
    let label = serde_json::json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}}});
    nss.patch(&ns, &PatchParams::default(), &Patch::Merge(&label)).await.expect("label namespace");

    // A real owner is not needed for a dry run; the UID only has to be well-formed.
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: "00000000-0000-0000-0000-000000000001".into(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    let dry = PostParams { dry_run: true, ..PostParams::default() };
    let specs = [
        spec(serde_json::json!({"version": "8.0.4"})),
        spec(serde_json::json!({
            "version": "7.0.14", "members": 5,
            "storage": {"size": "50Gi", "storageClassName": "standard"},
            "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "4Gi"}},
            "scheduling": {"podAntiAffinity": "Preferred", "nodeSelector": {"kubernetes.io/os": "linux"}},
            "expose": {"type": "LoadBalancer", "loadBalancer": {"sourceRanges": ["10.0.0.0/8"]}},
        })),
    ];
    for (i, s) in specs.iter().enumerate() {
        let names = ClusterNames::new(&format!("db{i}"), &ns);
        let hash = mongod_conf::hash(s.mongod.as_ref().and_then(|m| m.config.as_ref()), s.tls.mode).expect("hash");
        let sts = statefulset::build(&Inputs {
            names: &names,
            spec: s,
            owner: &owner,
            operator_image: "mongo-operator:test",
            config_hash: &hash,
            replicas: s.members,
            tls_token: "requireTLS@1",
            tls_on: s.tls.mode.on(),
            exporter_credentials: "digest",
        });
        let api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        api.create(&dry, &sts).await.unwrap_or_else(|e| panic!("StatefulSet {i} refused: {e}"));
        let svc: Api<Service> = Api::namespaced(client.clone(), &ns);
        svc.create(&dry, &services::headless(&names, &owner)).await.expect("headless Service");
        svc.create(&dry, &services::client(&names, &s.expose, &owner)).await.expect("client Service");
        let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
        pdbs.create(
            &dry,
            &pdb::build(
                &names,
                &s.pod_disruption_budget,
                mongo_operator::replset::target_voters(s.members as usize),
                &owner,
            )
            .expect("budget"),
        )
        .await
        .expect("PDB");

        // A Pod made from the template, as the StatefulSet controller would: Pod Security
        // admission judges it against "restricted".
        let template = sts.spec.clone().expect("spec").template;
        let mut pod_spec = template.spec.expect("pod spec");
        // The StatefulSet controller adds the claim template's volume.
        pod_spec.volumes.get_or_insert_with(Vec::new).push(
            serde_json::from_value(serde_json::json!({
                "name": "data", "persistentVolumeClaim": {"claimName": format!("data-db{i}-0")}
            }))
            .expect("volume"),
        );
        let pod = Pod {
            metadata: ObjectMeta { name: Some(format!("db{i}-0")), ..template.metadata.unwrap_or_default() },
            spec: Some(pod_spec),
            status: None,
        };
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        pods.create(&dry, &pod)
            .await
            .unwrap_or_else(|e| panic!("the member Pod of spec {i} violates the restricted profile: {e}"));
    }

    // The check has teeth: a Pod without the security context is refused in this namespace.
    let loose: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "loose"}, "spec": {"containers": [{"name": "c", "image": "mongo:8.0.4"}]}
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let refused = pods.create(&dry, &loose).await;
    assert!(matches!(&refused, Err(kube::Error::Api(s)) if s.message.contains("restricted")), "{refused:?}");
    delete_namespace(&client, &ns).await;
}
