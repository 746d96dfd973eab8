//! The Helm chart's RBAC is minimal. Every operator the other tests start acts with exactly
//! the chart's rules (tests/support/rbac.rs), so those tests passing shows the rules are
//! sufficient. This test shows each rule is needed: it reads the API server's audit log of
//! those operators' requests and finds, for every (group, resource, verb) the rules grant, a
//! request that used it, and no request that was forbidden. A granted verb no request used
//! would be a rule to remove. A server-side apply that creates its object is audited as a
//! `patch` answered 201, and is counted as using `create`, which the API server checks then.
//!
//! `update` on the `/finalizers` subresources is never a request of its own: the API server
//! checks it when an object is created with an owner reference that blocks the owner's
//! deletion (OwnerReferencesPermissionEnforcement, on in the local control plane). For those
//! the test removes the rule and shows the creation is refused, then restores it.
//!
//! It must run after the other tests, on the control plane they used: `e2e/test.sh` runs it
//! last, on its own.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use support::rbac::{self, SA_NAMESPACE};
use support::*;

type Grant = (String, String, String);

/// (group, resource[/subresource], verb) of every rule in the rendered RBAC.
fn grants(rendered: &str) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for doc in serde_yaml::Deserializer::from_str(rendered) {
        let doc: serde_json::Value = serde::Deserialize::deserialize(doc).expect("rendered YAML");
        if !matches!(doc["kind"].as_str(), Some("Role" | "ClusterRole")) {
            continue;
        }
        for rule in doc["rules"].as_array().into_iter().flatten() {
            let list = |k: &str| -> Vec<String> {
                rule[k].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect()
            };
            for g in list("apiGroups") {
                for r in list("resources") {
                    for v in list("verbs") {
                        out.insert((g.clone(), r.clone(), v));
                    }
                }
            }
        }
    }
    out
}

/// What the audited operators did: (group, resource[/subresource], verb) → (allowed, refused).
fn audited(log: &str) -> BTreeMap<Grant, (usize, usize)> {
    let mut used: BTreeMap<Grant, (usize, usize)> = BTreeMap::new();
    let prefix = format!("system:serviceaccount:{SA_NAMESPACE}:op-");
    for line in log.lines() {
        let Ok(e) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if !e["user"]["username"].as_str().is_some_and(|u| u.starts_with(&prefix)) {
            continue;
        }
        let object = &e["objectRef"];
        let Some(resource) = object["resource"].as_str() else { continue };
        let resource = match object["subresource"].as_str() {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_string(),
        };
        let group = object["apiGroup"].as_str().unwrap_or_default().to_string();
        let verb = e["verb"].as_str().unwrap_or_default().to_string();
        let code = e["responseStatus"]["code"].as_i64();
        // A server-side apply of an object that does not exist yet is a patch that answers
        // 201 Created, for which the API server also checks create: that uses the grant.
        if verb == "patch" && code == Some(201) {
            used.entry((group.clone(), resource.clone(), "create".into())).or_default().0 += 1;
        }
        let entry = used.entry((group, resource, verb)).or_default();
        if code == Some(403) {
            entry.1 += 1;
        } else {
            entry.0 += 1;
        }
    }
    used
}

async fn client_from(file: &std::path::Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(file).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
    kube::Client::try_from(config).expect("client")
}

/// Creating a ConfigMap owned (blockOwnerDeletion) by `owner` as `sa`.
async fn create_owned(
    client: &kube::Client,
    ns: &str,
    name: &str,
    owner: &kube::api::DynamicObject,
    kind: &str,
) -> Result<(), kube::Error> {
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "ownerReferences": [{
            "apiVersion": "mongo.operator.rs/v1alpha1", "kind": kind, "name": owner.metadata.name,
            "uid": owner.metadata.uid, "controller": true, "blockOwnerDeletion": true}]},
    }))
    .expect("ConfigMap");
    Api::<ConfigMap>::namespaced(client.clone(), ns).create(&PostParams::default(), &cm).await.map(|_| ())
}

#[tokio::test]
#[ignore = "runs last, after the suite, on its control plane: `make test` does that"]
async fn every_rule_of_the_chart_rbac_is_used_and_none_is_missing() {
    let log_path = std::env::var("MONGO_OPERATOR_AUDIT_LOG")
        .expect("MONGO_OPERATOR_AUDIT_LOG: run through `make test`, which audits the local control plane");
    let log = std::fs::read_to_string(&log_path).unwrap_or_else(|e| panic!("reading {log_path}: {e}"));
    let rendered = rbac::render_rbac("op-audit", &["watched"], &[]);
    let granted = grants(&rendered);
    let used = audited(&log);
    assert!(!used.is_empty(), "no request of the tests' operators in {log_path}: did the suite run before?");

    println!("{:<20} {:<44} {:<7} {:>8} {:>8}", "group", "resource", "verb", "allowed", "refused");
    for ((g, r, v), (ok, refused)) in &used {
        println!("{:<20} {:<44} {:<7} {:>8} {:>8}", if g.is_empty() { "core" } else { g }, r, v, ok, refused);
    }
    let refused: Vec<&Grant> = used.iter().filter(|(_, (_, n))| *n > 0).map(|(g, _)| g).collect();
    assert!(refused.is_empty(), "the chart's RBAC refused the operator: {refused:?}");

    // Grants the API server checks without a request of their own (see the module's comment).
    let pvc_delete: Grant = (String::new(), "persistentvolumeclaims".into(), "delete".into());
    let finalizers: BTreeSet<&Grant> = granted.iter().filter(|(_, r, _)| r.ends_with("/finalizers")).collect();
    let checked_below = |g: &Grant| finalizers.contains(g) || *g == pvc_delete;
    let unused: Vec<&Grant> =
        granted.iter().filter(|g| !checked_below(g) && used.get(*g).is_none_or(|(ok, _)| *ok == 0)).collect();
    assert!(unused.is_empty(), "rules no request of the suite's operators needed: {unused:?}");
    assert!(granted.contains(&pvc_delete), "the chart grants delete on persistentvolumeclaims");
    println!(
        "{} grants, each used by a request; {} checked below",
        granted.len() - finalizers.len() - 1,
        finalizers.len() + 1
    );

    // The finalizers rules: without one, an object owned by that kind cannot be created with
    // blockOwnerDeletion, which is what the operator sets on everything it owns.
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "rbac-finalizers").await;
    let owners = [
        ("MongoCluster", "mongoclusters", "apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoCluster\nmetadata: {name: owner}\nspec: {version: \"8.0.4\"}\n".to_string()),
        ("MongoBackup", "mongobackups", "apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoBackup\nmetadata: {name: owner}\nspec:\n  clusterRef: {name: owner}\n  destinations:\n    - name: one\n      s3: {bucket: backups, endpoint: \"https://127.0.0.1:9\", credentialsSecretRef: {name: s}}\n".to_string()),
        ("NetworkPolicyAttachment", "networkpolicyattachments", "apiVersion: mongo.operator.rs/v1alpha1\nkind: NetworkPolicyAttachment\nmetadata: {name: owner}\nspec:\n  clusterRef: {name: owner}\n  from:\n    - podSelector: {matchLabels: {app: x}}\n".to_string()),
    ];
    let sa = "op-finalizers-probe";
    let finalizers_rule =
        |r: &str| format!("  - apiGroups: [mongo.operator.rs]\n    resources: [{r}/finalizers]\n    verbs: [update]\n");
    let role = |extra: String| {
        let finalizers = extra;
        format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {sa}, namespace: {SA_NAMESPACE}}}\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: {sa}, namespace: {ns}}}\nrules:\n\
             \x20 - apiGroups: [\"\"]\n    resources: [configmaps]\n    verbs: [create]\n{finalizers}---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: {sa}, namespace: {ns}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {sa}}}\n\
             subjects: [{{kind: ServiceAccount, name: {sa}, namespace: {SA_NAMESPACE}}}]\n"
        )
    };
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("finalizers-probe.json");
    for (kind, plural, yaml) in &owners {
        let owner = create(&client, &ns, yaml, false).await.unwrap_or_else(|e| panic!("create {kind}: {e}"));
        assert!(
            finalizers.contains(&(
                "mongo.operator.rs".to_string(),
                format!("{plural}/finalizers"),
                "update".to_string()
            )),
            "the chart grants update on {plural}/finalizers"
        );
        rbac::kubectl_apply(&role(String::new()));
        rbac::kubeconfig_for(sa, &file);
        let as_sa = client_from(&file).await;
        let refused = eventually("RBAC to take effect", Duration::from_secs(10), || async {
            match create_owned(&as_sa, &ns, &format!("without-{plural}"), &owner, kind).await {
                Err(kube::Error::Api(s)) if s.code == 403 => Some(s.message),
                _ => None,
            }
        })
        .await;
        assert!(refused.contains("blockOwnerDeletion"), "{kind}: {refused}");
        // Replacing the Role with one that has the rule.
        let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(client.clone(), &ns);
        let _ = roles.delete(sa, &DeleteParams::default()).await;
        rbac::kubectl_apply(&role(finalizers_rule(plural)));
        eventually("the finalizers rule to take effect", Duration::from_secs(10), || async {
            create_owned(&as_sa, &ns, &format!("with-{plural}"), &owner, kind).await.ok()
        })
        .await;
        let _ = roles.delete(sa, &DeleteParams::default()).await;
        println!("{plural}/finalizers update: refused without the rule ({refused}), allowed with it");
    }

    // Delete on claims: without it, the owner reference deletionPolicy Delete adds to a member's
    // existing volume claim is refused.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "data-owner-0"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .expect("claim");
    claims.create(&PostParams::default(), &claim).await.expect("create a claim");
    let owner = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), &ns);
    let owner = owner
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "claim-owner"}})).expect("cm"),
        )
        .await
        .expect("owner");
    let adopt = serde_json::json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
        "name": "claim-owner", "uid": owner.metadata.uid}]}});
    let claim_rule =
        |verbs: &str| format!("  - apiGroups: [\"\"]\n    resources: [persistentvolumeclaims]\n    verbs: [{verbs}]\n");
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(client.clone(), &ns);
    rbac::kubectl_apply(&role(claim_rule("get, patch")));
    let as_sa = client_from(&file).await;
    let sa_claims: Api<PersistentVolumeClaim> = Api::namespaced(as_sa, &ns);
    let refused = eventually("RBAC to take effect", Duration::from_secs(10), || async {
        match sa_claims.patch("data-owner-0", &PatchParams::default(), &Patch::Merge(&adopt)).await {
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("ownerRef") => Some(s.message),
            _ => None,
        }
    })
    .await;
    let _ = roles.delete(sa, &DeleteParams::default()).await;
    rbac::kubectl_apply(&role(claim_rule("get, patch, delete")));
    eventually("the delete rule to take effect", Duration::from_secs(10), || async {
        sa_claims.patch("data-owner-0", &PatchParams::default(), &Patch::Merge(&adopt)).await.ok()
    })
    .await;
    println!("persistentvolumeclaims delete: owner reference refused without it ({refused}), allowed with it");
    delete_namespace(&client, &ns).await;
}
