//! The chart's optional ValidatingAdmissionPolicy on the control plane: the operator's
//! ServiceAccount may create, change and delete only objects labelled as managed by it; other
//! users are not affected.

mod support;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Config};
use support::rbac::{kubectl_apply, tool};
use support::*;

/// The chart's policy for a release named `release` in `ns`, as `helm template` renders it.
fn render_policy(release: &str, ns: &str) -> String {
    let out = Command::new(tool("helm", "helm"))
        .args(["template", release])
        .arg(repo_root().join("charts/mongo-operator"))
        .args([
            "--namespace",
            ns,
            "--set",
            "admissionPolicy.enabled=true",
            "--set",
            &format!("fullnameOverride={release}"),
        ])
        .args(["--show-only", "templates/admissionpolicy.yaml"])
        .output()
        .expect("helm template");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A client that authenticates as the admin but acts as the ServiceAccount `sa` of `ns` (with
/// the admin's groups, so that RBAC allows everything and only the policy decides).
async fn acting_as(sa: &str, ns: &str) -> Client {
    let mut config = Config::infer().await.expect("kubeconfig");
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:{sa}"));
    config.auth_info.impersonate_groups = Some(vec!["system:masters".into(), "system:authenticated".into()]);
    Client::try_from(config).expect("client")
}

fn secret(name: &str, managed: bool) -> Secret {
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": name,
            "labels": if managed { serde_json::json!({"app.kubernetes.io/managed-by": "mongo-operator"}) } else { serde_json::json!({"app": "shop"}) },
        },
        "stringData": {"k": "v"},
    }))
    .expect("secret")
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane and helm: run `make test`"]
async fn the_operator_identity_touches_only_objects_labelled_as_managed_by_it() {
    let admin = client().await;
    let ns = namespace(&admin, "vap").await;
    let release = format!("vap-{}", &ns[ns.len() - 6..]);
    kubectl_apply(&render_policy(&release, &ns));
    let operator = acting_as(&release, &ns).await;
    let as_operator: Api<Secret> = Api::namespaced(operator, &ns);
    let as_admin: Api<Secret> = Api::namespaced(admin.clone(), &ns);

    // An application's Secret: the operator's identity can neither make nor change nor delete
    // one (the policy takes a moment to be served after it is created).
    let refused = eventually("the policy in force", Duration::from_secs(60), || async {
        match as_operator.create(&PostParams::default(), &secret("probe", false)).await {
            Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("managed-by=mongo-operator") => Some(e),
            Ok(_) => {
                let _ = as_admin.delete("probe", &DeleteParams::default()).await;
                None
            }
            Err(_) => None,
        }
    })
    .await;
    assert!(refused.message.contains("secrets probe is not"), "{}", refused.message);
    as_admin.create(&PostParams::default(), &secret("app-db", false)).await.expect("the admin is not affected");
    let delete = as_operator.delete("app-db", &DeleteParams::default()).await;
    assert!(matches!(&delete, Err(kube::Error::Api(e)) if e.code == 403), "{delete:?}");
    let mut changed = as_admin.get("app-db").await.expect("still there");
    changed.metadata.labels = None;
    changed.metadata.managed_fields = None;
    let replace = as_operator.replace("app-db", &PostParams::default(), &changed).await;
    assert!(matches!(&replace, Err(kube::Error::Api(e)) if e.code == 403), "{replace:?}");

    // What it labels as its own it may make and remove.
    as_operator.create(&PostParams::default(), &secret("orders-internal", true)).await.expect("a managed Secret");
    as_operator.delete("orders-internal", &DeleteParams::default()).await.expect("its own Secret");
    delete_namespace(&admin, &ns).await;
}
