//! Network isolation on the local control plane: the operator's NetworkPolicies exist, are
//! owned and collected with their owners, follow attachment changes; and what they mean is
//! checked by an engine we did not write (cyclonus, built from Go modules), whose connection
//! matrix must equal the intended one.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use mongo_operator::api::{MongoBackup, MongoCluster, NetworkPolicyAttachment};
use support::operator::Operator;
use support::servers::tool_dir;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

async fn policy(client: &Client, ns: &str, name: &str) -> Option<NetworkPolicy> {
    Api::<NetworkPolicy>::namespaced(client.clone(), ns).get_opt(name).await.expect("get")
}

async fn attachment_status(client: &Client, ns: &str, name: &str) -> Option<(String, String, Vec<Option<i32>>)> {
    let a = Api::<NetworkPolicyAttachment>::namespaced(client.clone(), ns).get(name).await.ok()?;
    let status = a.status?;
    if status.observed_generation != a.metadata.generation {
        return None;
    }
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
    let degraded = status.conditions.iter().find(|c| c.type_ == "Degraded")?;
    let reason = if degraded.status == "True" { degraded.reason.clone() } else { ready.reason.clone() };
    Some((ready.status.clone(), reason, status.peers.iter().map(|p| p.matching_pods).collect()))
}

fn pod_yaml(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {labels}\nspec:\n  containers:\n    - name: c\n      image: busybox\n"
    )
}

const CLUSTER: &str = "apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoCluster\nmetadata:\n  name: orders\nspec:\n  version: \"8.0.4\"\n  members: 3\n";

#[tokio::test]
#[ignore = "needs the local control plane and cyclonus: run `make test`"]
async fn isolation_policies_follow_clusters_and_attachments_and_mean_what_they_say() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "netiso").await;
    let shop = namespace(&client, "shop").await;
    let operator = Operator::start(&ns);
    create_typed::<Pod>(&client, &shop, &pod_yaml("client", "{app: shop}")).await;
    create_typed::<Pod>(&client, &ns, &pod_yaml("local-client", "{app: reports}")).await;

    // A backup of an isolated cluster that names no store waits, saying why.
    create_typed::<MongoCluster>(&client, &ns, CLUSTER).await;
    create_typed::<MongoBackup>(
        &client,
        &ns,
        "apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoBackup\nmetadata:\n  name: once\nspec:\n  clusterRef: {name: orders}\n  destinations:\n    - name: s3\n      s3: {bucket: backups, credentialsSecretRef: {name: s3}}\n",
    )
    .await;
    let backups: Api<MongoBackup> = Api::namespaced(client.clone(), &ns);
    eventually("the backup waiting for a route to its stores", WAIT, || async {
        let b = backups.get("once").await.ok()?;
        b.status?.conditions.iter().find(|c| c.reason == "NoRouteToStores").map(|_| ())
    })
    .await;

    // The baseline, owned by the cluster; a NetworkIsolated condition says so.
    let members = eventually("the members' policy", WAIT, || policy(&client, &ns, "orders-isolate-members")).await;
    let jobs = eventually("the Jobs' policy", WAIT, || policy(&client, &ns, "orders-isolate-jobs")).await;
    for p in [&members, &jobs] {
        let owner = p.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(owner.first().map(|o| (o.kind.as_str(), o.name.as_str())), Some(("MongoCluster", "orders")));
        assert_eq!(p.labels().get("app.kubernetes.io/component").map(String::as_str), Some("network-policy"));
    }
    let clusters: Api<MongoCluster> = Api::namespaced(client.clone(), &ns);
    eventually("NetworkIsolated True", WAIT, || async {
        let c = clusters.get("orders").await.ok()?;
        c.status?.conditions.iter().find(|c| c.type_ == "NetworkIsolated" && c.status == "True").map(|_| ())
    })
    .await;
    // Stores named: the Jobs' policy lets them out to those addresses, on 443.
    clusters
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"spec": {"networkIsolation": {"objectStores": {"cidrs": ["198.51.100.0/24"]}}}}),
            ),
        )
        .await
        .expect("name the stores");
    eventually("the store rule", WAIT, || async {
        let p = policy(&client, &ns, "orders-isolate-jobs").await?;
        (p.spec?.egress?.len() == 3).then_some(())
    })
    .await;

    // The README's attachment: an application namespace, and a VM network minus one subnet.
    let readme = format!(
        "apiVersion: mongo.operator.rs/v1alpha1\nkind: NetworkPolicyAttachment\nmetadata:\n  name: shop-app\nspec:\n  clusterRef: {{name: orders}}\n  from:\n    - namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {shop}}}}}\n      podSelector: {{matchLabels: {{app: shop}}}}\n    - ipBlock: {{cidr: 10.20.0.0/16, except: [10.20.5.0/24]}}\n"
    );
    create_typed::<NetworkPolicyAttachment>(&client, &ns, &readme).await;
    let status = eventually("the attachment applied", WAIT, || attachment_status(&client, &ns, "shop-app")).await;
    // The application namespace's Pods are not counted: whoever reads this attachment may not
    // see that namespace.
    assert_eq!(status, ("True".into(), "PolicyApplied".into(), vec![None, None]));
    let access = policy(&client, &ns, "orders-shop-app-access").await.expect("the attachment's policy");
    let owner = access.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owner.first().map(|o| o.kind.as_str()), Some("NetworkPolicyAttachment"));

    // What it all means, by cyclonus.
    let all = Api::<NetworkPolicy>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.expect("list");
    let matrix = Cyclonus::new(&ns, &shop).matrices(&all.items);
    assert_eq!(matrix, intended(&ns, &shop), "cyclonus disagrees with the intended connection matrix");

    // Attachments: one naming no cluster, one selecting nothing, one changed, one deleted.
    create_typed::<NetworkPolicyAttachment>(
        &client,
        &ns,
        "apiVersion: mongo.operator.rs/v1alpha1\nkind: NetworkPolicyAttachment\nmetadata:\n  name: lost\nspec:\n  clusterRef: {name: nowhere}\n  from:\n    - podSelector: {matchLabels: {app: reports}}\n",
    )
    .await;
    let lost = eventually("a missing cluster reported", WAIT, || attachment_status(&client, &ns, "lost")).await;
    assert_eq!((lost.0.as_str(), lost.1.as_str()), ("False", "ClusterNotFound"));
    create_typed::<NetworkPolicyAttachment>(
        &client,
        &ns,
        "apiVersion: mongo.operator.rs/v1alpha1\nkind: NetworkPolicyAttachment\nmetadata:\n  name: reports\nspec:\n  clusterRef: {name: orders}\n  from:\n    - podSelector: {matchLabels: {app: reprots}}\n",
    )
    .await;
    let typo = eventually("an empty selector reported", WAIT, || attachment_status(&client, &ns, "reports")).await;
    assert_eq!(typo, ("True".into(), "SelectsNothing".into(), vec![Some(0)]));
    let attachments: Api<NetworkPolicyAttachment> = Api::namespaced(client.clone(), &ns);
    attachments
        .patch(
            "reports",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"spec": {"from": [{"podSelector": {"matchLabels": {"app": "reports"}}}]}}),
            ),
        )
        .await
        .expect("fix the typo");
    eventually("the fixed attachment", WAIT, || async {
        let s = attachment_status(&client, &ns, "reports").await?;
        (s == ("True".into(), "PolicyApplied".into(), vec![Some(1)])).then_some(())
    })
    .await;
    let fixed = policy(&client, &ns, "orders-reports-access").await.expect("policy");
    let selected = fixed.spec.and_then(|s| s.ingress).map(|r| r[0].clone()).and_then(|r| r.from).map(|f| f[0].clone());
    assert_eq!(
        selected.and_then(|p| p.pod_selector).and_then(|s| s.match_labels),
        Some(BTreeMap::from([("app".to_string(), "reports".to_string())]))
    );
    attachments.delete("reports", &DeleteParams::foreground()).await.expect("delete");
    eventually("access revoked with the attachment", WAIT, || async {
        policy(&client, &ns, "orders-reports-access").await.is_none().then_some(())
    })
    .await;

    // Isolation off: the baseline goes, and status says the cluster is not isolated.
    clusters
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"networkIsolation": {"enabled": false}}})),
        )
        .await
        .expect("turn isolation off");
    eventually("isolation reported off", WAIT, || async {
        let c = clusters.get("orders").await.ok()?;
        c.status?.conditions.iter().find(|c| c.type_ == "NetworkIsolated" && c.reason == "Disabled").map(|_| ())
    })
    .await;
    assert!(policy(&client, &ns, "orders-isolate-members").await.is_none());
    assert!(policy(&client, &ns, "orders-isolate-jobs").await.is_none());
    let off = eventually("the attachment noting isolation is off", WAIT, || async {
        let s = attachment_status(&client, &ns, "shop-app").await?;
        (s.1 == "IsolationDisabled").then_some(s)
    })
    .await;
    assert_eq!(off.0, "True");

    // Deleting the cluster collects its policies.
    clusters.delete("orders", &DeleteParams::foreground()).await.expect("delete the cluster");
    eventually("no policy owned by the cluster", WAIT, || async {
        let left = Api::<NetworkPolicy>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.ok()?;
        let owned =
            left.items.iter().any(|p| p.metadata.owner_references.iter().flatten().any(|o| o.kind == "MongoCluster"));
        (!owned).then_some(())
    })
    .await;
    operator.kill().await;
    delete_namespace(&client, &shop).await;
    delete_namespace(&client, &ns).await;
    let _ = Api::<Namespace>::all(client.clone());
}

/// One probe's combined matrix: (from, to) → allowed.
type Matrix = BTreeMap<(String, String), bool>;

/// The model cyclonus probes: Pods in several namespaces, with the labels and addresses the
/// policies look at. Every Pod listens on both probed ports, so every cell is decided by policy.
struct Cyclonus {
    model: serde_json::Value,
}

const PROBED: [u16; 2] = [27017, 443];

/// The Pods of the model: (namespace, name, labels, IP).
fn model_pods(db: &str, shop: &str) -> Vec<(String, &'static str, serde_json::Value, &'static str)> {
    let member = |i: u8| serde_json::json!({"app.kubernetes.io/name": "mongodb", "app.kubernetes.io/instance": "orders", "app.kubernetes.io/component": "database", "statefulset.kubernetes.io/pod-name": format!("orders-{i}")});
    vec![
        (db.to_string(), "orders-0", member(0), "10.244.0.10"),
        (db.to_string(), "orders-1", member(1), "10.244.0.11"),
        (db.to_string(), "orders-2", member(2), "10.244.0.12"),
        (
            db.to_string(),
            "orders-backup",
            serde_json::json!({"app.kubernetes.io/instance": "orders", "app.kubernetes.io/component": "backup"}),
            "10.244.0.20",
        ),
        (db.to_string(), "stranger", serde_json::json!({"app": "reports"}), "10.244.0.30"),
        (shop.to_string(), "client", serde_json::json!({"app": "shop"}), "10.244.1.10"),
        (shop.to_string(), "batch", serde_json::json!({"app": "batch"}), "10.244.1.11"),
        (
            "mongo-operator".to_string(),
            "operator",
            serde_json::json!({"app.kubernetes.io/name": "mongo-operator"}),
            "10.244.2.10",
        ),
        // Outside the cluster, as Pods with the addresses of the outside (cyclonus's probe
        // mode models only Pods; ipBlock peers match by address).
        ("outside".to_string(), "vm", serde_json::json!({}), "10.20.1.5"),
        ("outside".to_string(), "vm-excluded", serde_json::json!({}), "10.20.5.5"),
        ("outside".to_string(), "store", serde_json::json!({}), "198.51.100.7"),
        ("outside".to_string(), "elsewhere", serde_json::json!({}), "203.0.113.9"),
    ]
}

/// What the README promises, written as rules about roles rather than as policies.
fn intended(db: &str, shop: &str) -> BTreeMap<u16, Matrix> {
    let name = |ns: &str, pod: &str| format!("{ns}/{pod}");
    let members: Vec<String> = (0..3).map(|i| name(db, &format!("orders-{i}"))).collect();
    let backup = name(db, "orders-backup");
    let store = name("outside", "store");
    let admitted = [
        members.clone(),
        vec![backup.clone(), name(shop, "client"), name("mongo-operator", "operator"), name("outside", "vm")],
    ]
    .concat();
    let pods: Vec<String> = model_pods(db, shop).iter().map(|(ns, pod, _, _)| name(ns, pod)).collect();
    let mut out = BTreeMap::new();
    for port in PROBED {
        let mut m = Matrix::new();
        for from in &pods {
            for to in &pods {
                // Ingress: members admit the admitted on 27017 only; Jobs admit nothing.
                let ingress =
                    if members.contains(to) { port == 27017 && admitted.contains(from) } else { to != &backup };
                // Egress: members reach members; Jobs reach members and the store's range on 443.
                let egress = if members.contains(from) {
                    members.contains(to) && port == 27017
                } else if from == &backup {
                    (members.contains(to) && port == 27017) || (to == &store && port == 443)
                } else {
                    true
                };
                m.insert((from.clone(), to.clone()), ingress && egress);
            }
        }
        out.insert(port, m);
    }
    out
}

impl Cyclonus {
    fn new(db: &str, shop: &str) -> Cyclonus {
        let mut namespaces = serde_json::Map::new();
        let pods: Vec<serde_json::Value> = model_pods(db, shop)
            .into_iter()
            .map(|(ns, pod, labels, ip)| {
                namespaces.insert(ns.clone(), serde_json::json!({ "kubernetes.io/metadata.name": ns }));
                serde_json::json!({
                    "Namespace": ns, "Name": pod, "Labels": labels, "IP": ip,
                    "Containers": PROBED.iter().map(|p| serde_json::json!({
                        "Name": format!("c{p}"), "Port": p, "PortName": if *p == 27017 { "mongodb" } else { "https" }, "Protocol": "TCP"
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Cyclonus { model: serde_json::json!({ "Resources": { "Namespaces": namespaces, "Pods": pods } }) }
    }

    /// The combined (ingress and egress) matrix of `policies` for each probed port.
    fn matrices(&self, policies: &[NetworkPolicy]) -> BTreeMap<u16, Matrix> {
        let dir = std::env::temp_dir().join(format!("cyclonus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // Only what a NetworkPolicy manifest holds: cyclonus reads strictly.
        let items: Vec<serde_json::Value> = policies
            .iter()
            .map(|p| {
                serde_json::json!({
                    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": { "name": p.name_any(), "namespace": p.namespace() },
                    "spec": p.spec,
                })
            })
            .collect();
        let policy_path = dir.join("policies.json");
        std::fs::write(
            &policy_path,
            serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items }).to_string(),
        )
        .expect("write policies");
        let mut out = BTreeMap::new();
        for port in PROBED {
            let mut model = self.model.clone();
            model["Probes"] = serde_json::json!([{ "Protocol": "TCP", "Port": port }]);
            let model_path = dir.join(format!("model-{port}.json"));
            std::fs::write(&model_path, model.to_string()).expect("write model");
            let output = std::process::Command::new(tool_dir("cyclonus").join("cyclonus"))
                .args(["analyze", "--mode", "probe", "--policy-path"])
                .arg(&policy_path)
                .arg("--probe-path")
                .arg(&model_path)
                .output()
                .expect("run cyclonus");
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "cyclonus failed: {}", String::from_utf8_lossy(&output.stderr));
            println!("cyclonus, TCP {port}:\n{}", combined_table(&stdout).join("\n"));
            out.insert(port, parse_combined(&stdout));
        }
        let _ = std::fs::remove_dir_all(&dir);
        out
    }
}

/// The lines of the first `Combined:` table.
fn combined_table(stdout: &str) -> Vec<&str> {
    stdout.lines().skip_while(|l| l.trim() != "Combined:").skip(1).take_while(|l| !l.trim().is_empty()).collect()
}

/// Rows are sources, columns destinations, both in the order of the row labels (cyclonus
/// mangles the header's spelling). `.` is allowed, `X` refused; anything else is a failure.
fn parse_combined(stdout: &str) -> Matrix {
    let rows: Vec<Vec<String>> = combined_table(stdout)
        .into_iter()
        .filter(|l| l.starts_with('|'))
        .skip(1)
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    let labels: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    let mut m = Matrix::new();
    for row in &rows {
        for (to, cell) in labels.iter().zip(&row[1..]) {
            let allowed = match cell.as_str() {
                "." => true,
                "X" => false,
                other => panic!("cyclonus cell {other:?} for {} → {to}", row[0]),
            };
            m.insert((row[0].clone(), to.clone()), allowed);
        }
    }
    m
}
