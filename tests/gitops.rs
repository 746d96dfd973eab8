//! What a GitOps tool sees: every example in `examples/` applied with the real `kubectl
//! apply --server-side` (as Argo CD and Flux apply), acted on by the operator (running with
//! the chart's RBAC), waited for with `kubectl wait --for=condition=Ready` (kstatus), then
//! applied again: no diff, no new generation, no field of the user's taken by the operator.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kube::api::{Api, DynamicObject};
use support::members::SimMembers;
use support::operator::Operator;
use support::rbac::tool;
use support::*;

const MANAGER: &str = "gitops-tool";

fn kubectl(args: &[&str]) -> (i32, String) {
    let out = Command::new(tool("k8s", "kubectl")).args(args).output().expect("run kubectl");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn apply(ns: &str, file: &Path) -> String {
    let path = file.to_string_lossy();
    let (code, out) = kubectl(&["apply", "--server-side", "--field-manager", MANAGER, "-n", ns, "-f", &path]);
    assert_eq!(code, 0, "kubectl apply {path}: {out}");
    out
}

/// `kubectl diff --server-side`: exit 0 means the live objects equal what the file asks for.
fn diff(ns: &str, file: &Path) -> (i32, String) {
    let path = file.to_string_lossy();
    kubectl(&["diff", "--server-side", "--field-manager", MANAGER, "-n", ns, "-f", &path])
}

/// Every object the examples declare, as (kind plural, name).
fn declared(files: &[std::path::PathBuf]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for file in files {
        for doc in serde_yaml::Deserializer::from_str(&read(file)) {
            let v: serde_json::Value = serde::Deserialize::deserialize(doc).expect("example YAML");
            let (Some(kind), Some(name)) = (v["kind"].as_str(), v["metadata"]["name"].as_str()) else { continue };
            let plural = match kind {
                "MongoCluster" => "mongoclusters",
                "MongoBackup" => "mongobackups",
                "NetworkPolicyAttachment" => "networkpolicyattachments",
                other => panic!("an example declares a {other}; teach this test its plural"),
            };
            out.push((plural.to_string(), name.to_string()));
        }
    }
    out
}

async fn object(client: &kube::Client, ns: &str, plural: &str, name: &str) -> DynamicObject {
    let ar = kube::discovery::ApiResource {
        group: "mongo.operator.rs".into(),
        version: "v1alpha1".into(),
        api_version: "mongo.operator.rs/v1alpha1".into(),
        kind: String::new(),
        plural: plural.into(),
    };
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar).get(name).await.expect("get example object")
}

// Multi-threaded: kubectl runs blocking while the simulated members must keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn examples_applied_twice_converge_with_no_drift_and_no_fight_over_fields() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "gitops").await;
    let operator = Operator::start(&ns);
    let files: Vec<_> = examples().into_iter().map(|(path, _)| path).collect();
    assert!(
        files.len() >= 5,
        "examples/ should hold the minimal and production clusters, backups, a clone, an attachment"
    );

    for file in &files {
        apply(&ns, file);
    }
    // The minimal cluster gets members (simulated mongod) and must become Ready, as kubectl
    // (and Flux's kstatus) judge it.
    let _members = SimMembers::follow(&client, &ns, "demo", None).await;
    let (code, out) = kubectl(&["wait", "-n", &ns, "--for=condition=Ready", "mongocluster/demo", "--timeout=180s"]);
    assert_eq!(code, 0, "kubectl wait for Ready: {out}\noperator log:\n{}", operator.log_text());
    // kstatus (Flux) reads Reconciling and Stalled: a Ready cluster is neither.
    for condition in ["Reconciling", "Stalled"] {
        let (code, out) = kubectl(&[
            "wait",
            "-n",
            &ns,
            &format!("--for=condition={condition}=False"),
            "mongocluster/demo",
            "--timeout=30s",
        ]);
        assert_eq!(code, 0, "{condition} should be False on a Ready cluster: {out}");
    }

    // The operator has observed every example (its status says which generation it saw).
    let objects = declared(&files);
    for (plural, name) in &objects {
        eventually(&format!("{plural}/{name} to be observed"), Duration::from_secs(60), || async {
            let o = object(&client, &ns, plural, name).await;
            let observed = o.data["status"]["observedGeneration"].as_i64();
            (observed.is_some() && observed == o.metadata.generation).then_some(())
        })
        .await;
    }

    let mut before = Vec::new();
    for (plural, name) in &objects {
        before.push(object(&client, &ns, plural, name).await.metadata.generation);
    }

    for file in &files {
        let (code, out) = diff(&ns, file);
        assert_eq!(code, 0, "kubectl diff after the operator acted on {}:\n{out}", file.display());
        let out = apply(&ns, file);
        assert!(out.lines().all(|l| l.ends_with("serverside-applied")), "{out}");
    }
    for ((plural, name), generation) in objects.iter().zip(&before) {
        let o = object(&client, &ns, plural, name).await;
        assert_eq!(&o.metadata.generation, generation, "{plural}/{name}: re-applying changed the spec");
        // Nobody but the user's tool owns anything outside status.
        for f in o.metadata.managed_fields.iter().flatten() {
            if f.manager.as_deref() != Some(MANAGER) {
                assert_eq!(
                    f.subresource.as_deref(),
                    Some("status"),
                    "{plural}/{name}: {:?} owns fields outside status: {:?}",
                    f.manager,
                    f.fields_v1
                );
            }
        }
    }

    // One field turns the PodDisruptionBudget off, and the operator removes it.
    let (code, out) = kubectl(&["get", "-n", &ns, "poddisruptionbudget", "demo"]);
    assert_eq!(code, 0, "the minimal cluster has a PodDisruptionBudget: {out}");
    let off = r#"{"spec":{"podDisruptionBudget":{"enabled":false}}}"#;
    let (code, out) = kubectl(&["patch", "-n", &ns, "mongocluster", "demo", "--type=merge", "-p", off]);
    assert_eq!(code, 0, "{out}");
    eventually("the PodDisruptionBudget to be removed", Duration::from_secs(30), || async {
        (kubectl(&["get", "-n", &ns, "poddisruptionbudget", "demo"]).0 != 0).then_some(())
    })
    .await;
    operator.kill().await;
    delete_namespace(&client, &ns).await;
}
