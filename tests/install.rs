//! Installing the operator: the Helm chart (`charts/mongo-operator`) and the one-file manifest
//! rendered from it (`deploy/install.yaml`), with the real helm and kubectl.
//!
//! kwok runs no container, so the test that shows the installed operator at work runs the
//! locally built binary as the chart's Pod would run it: the Deployment's own arguments and
//! environment (downward-API fields resolved), authenticated as the chart's ServiceAccount
//! with a token from the TokenRequest API. Any rule missing from the chart's RBAC shows up as
//! a Forbidden error in its log and a cluster that never becomes Ready.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use mongo_operator::api::{BackupPhase, MongoBackup, MongoCluster, NetworkPolicyAttachment};
use serde::Deserialize;
use serde_json::Value;
use support::members::SimMembers;
use support::*;

const CHART: &str = "charts/mongo-operator";
const GROUP: &str = "mongo.operator.rs";

// --- tools ---------------------------------------------------------------------------------

fn helm() -> PathBuf {
    support::servers::tool_dir("helm").join("helm")
}

fn kubectl() -> PathBuf {
    support::servers::tool_dir("k8s").join("kubectl")
}

/// Runs a command from the repository root; returns its output whatever its exit status.
fn output(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

/// Runs a command that must succeed; returns its stdout.
fn ok(program: &Path, args: &[&str]) -> String {
    let out = output(program, args);
    assert!(
        out.status.success(),
        "{} {} failed ({}):\n{}\n{}",
        program.display(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A scratch file for values and kubeconfigs, unique to this run.
fn scratch_file(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("install-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write scratch file");
    path
}

fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}{}", n % 1_000_000_000)
}

// --- rendered manifests --------------------------------------------------------------------

/// The documents of a YAML stream, as JSON values (empty documents dropped).
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde_yaml::Value::deserialize(d).expect("valid YAML document"))
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).expect("YAML maps to JSON"))
        .collect()
}

/// `helm template` of the chart as release `rel` in namespace `ops`, with more flags.
fn template(extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", "rel", CHART, "--namespace", "ops"];
    args.extend_from_slice(extra);
    documents(&ok(&helm(), &args))
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

fn namespace_of(doc: &Value) -> &str {
    doc["metadata"]["namespace"].as_str().unwrap_or_default()
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = docs.iter().map(|d| kind(d).to_string()).collect();
    k.sort();
    k
}

fn only<'a>(docs: &'a [Value], kind_: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| kind(d) == kind_).collect();
    assert_eq!(found.len(), 1, "expected one {kind_}, found {}", found.len());
    found[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// Whether any rule of a (Cluster)Role touches the operator's API group (or every group).
fn grants_our_kinds(role: &Value) -> bool {
    role["rules"].as_array().into_iter().flatten().any(|r| {
        let groups = strings(&r["apiGroups"]);
        groups.iter().any(|g| g == GROUP || g == "*")
    })
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

fn chart_app_version() -> String {
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&read(&repo_root().join(CHART).join("Chart.yaml"))).expect("Chart.yaml parses");
    chart["appVersion"].as_str().expect("appVersion").to_string()
}

// --- without a cluster ---------------------------------------------------------------------

#[test]
#[ignore = "needs helm built by e2e/tools.sh: run `make test`"]
fn chart_lints_and_renders_a_locked_down_operator() {
    let lint = ok(&helm(), &["lint", "--strict", CHART]);
    assert!(lint.contains("0 chart(s) failed"), "{lint}");
    let values = scratch_file("namespaces.yaml", "watchNamespaces: [a, b]\n");
    ok(&helm(), &["lint", "--strict", CHART, "--values", values.to_str().unwrap()]);

    // The image tag is the operator's version.
    assert_eq!(chart_app_version(), env!("CARGO_PKG_VERSION"), "Chart.yaml's appVersion is not Cargo.toml's version");

    // By default the least-privileged install: the release namespace only, nothing
    // cluster-wide.
    let docs = template(&[]);
    assert_eq!(
        kinds(&docs),
        ["Deployment", "NetworkPolicy", "Role", "Role", "RoleBinding", "RoleBinding", "Service", "ServiceAccount"],
        "what the chart renders by default"
    );
    for doc in &docs {
        assert_eq!(namespace_of(doc), "ops", "{} {} is not in the release namespace", kind(doc), name(doc));
    }
    let deployment = only(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(deployment);
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&c["securityContext"]["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(c["resources"]["requests"]["cpu"], "50m");
    assert_eq!(c["resources"]["requests"]["memory"], "64Mi");
    assert_eq!(c["resources"]["limits"]["memory"], "256Mi");
    assert_eq!(c["ports"][0]["name"], "http");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(
        (&c["livenessProbe"]["httpGet"]["path"], &c["livenessProbe"]["httpGet"]["port"]),
        (&"/healthz".into(), &"http".into())
    );
    assert_eq!(
        (&c["readinessProbe"]["httpGet"]["path"], &c["readinessProbe"]["httpGet"]["port"]),
        (&"/readyz".into(), &"http".into())
    );
    let image = c["image"].as_str().unwrap();
    assert_eq!(image, format!("ghcr.io/mongo-operator/mongo-operator:{}", env!("CARGO_PKG_VERSION")));
    let args = strings(&c["args"]);
    assert_eq!(args[0], "run");
    assert!(args.contains(&format!("--image={image}")), "--image is not the container's image: {args:?}");
    assert!(args.contains(&"--leader-election=true".to_string()), "{args:?}");
    assert!(args.contains(&"--leader-election-namespace=ops".to_string()), "{args:?}");
    assert!(args.contains(&"--namespaces=ops".to_string()), "the release namespace by default: {args:?}");
    for (var, field) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        let env = c["env"].as_array().unwrap().iter().find(|e| e["name"] == var).unwrap_or_else(|| panic!("no {var}"));
        assert_eq!(env["valueFrom"]["fieldRef"]["fieldPath"], field);
    }
    // The Pods carry the label the operator admits itself by into isolated clusters.
    assert_eq!(deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"], "mongo-operator");
    assert!(args.contains(&"--operator-pod-label=app.kubernetes.io/name=mongo-operator".to_string()), "{args:?}");
    let sa = only(&docs, "ServiceAccount");
    assert_eq!(pod["serviceAccountName"].as_str(), Some(name(sa)));
    let service = only(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let roles: Vec<&serde_json::Value> = docs.iter().filter(|d| kind(d) == "Role").collect();
    assert_eq!(roles.len(), 2, "the operator's Role and the Lease's");
    assert!(roles.iter().any(|r| name(r) == "rel-mongo-operator" && grants_our_kinds(r)));
    let lease_role = roles.iter().find(|r| name(r).ends_with("-leader-election")).expect("the Lease's Role");
    assert_eq!(lease_role["rules"][0]["resources"][0], "leases");
    assert!(!grants_our_kinds(lease_role));

    // Every namespace is an explicit choice, and not one to combine with a list.
    let docs = template(&["--set", "clusterWide=true"]);
    assert!(grants_our_kinds(only(&docs, "ClusterRole")));
    only(&docs, "ClusterRoleBinding");
    let args = strings(&container(only(&docs, "Deployment"))["args"]);
    assert!(!args.iter().any(|a| a.starts_with("--namespaces")), "every namespace: {args:?}");
    let both = Command::new(helm())
        .args([
            "template",
            "rel",
            CHART,
            "--namespace",
            "ops",
            "--set",
            "clusterWide=true",
            "--set",
            "watchNamespaces={a}",
        ])
        .output()
        .expect("helm");
    assert!(!both.status.success() && String::from_utf8_lossy(&both.stderr).contains("leave watchNamespaces empty"));

    // Watching a list of namespaces: a Role in each, and no ClusterRole over our kinds.
    let docs = template(&["--values", values.to_str().unwrap()]);
    let c = container(only(&docs, "Deployment"));
    assert!(strings(&c["args"]).contains(&"--namespaces=a,b".to_string()), "{:?}", c["args"]);
    let roles: BTreeSet<(String, String)> = docs
        .iter()
        .filter(|d| kind(d) == "Role" && grants_our_kinds(d))
        .map(|d| (namespace_of(d).to_string(), name(d).to_string()))
        .collect();
    assert_eq!(
        roles,
        BTreeSet::from([("a".into(), "rel-mongo-operator".into()), ("b".into(), "rel-mongo-operator".into())])
    );
    for ns in ["a", "b"] {
        let binding = docs
            .iter()
            .find(|d| kind(d) == "RoleBinding" && namespace_of(d) == ns)
            .unwrap_or_else(|| panic!("no RoleBinding in {ns}"));
        assert_eq!(binding["subjects"][0]["namespace"], "ops");
        assert_eq!(binding["subjects"][0]["name"], name(only(&docs, "ServiceAccount")));
    }
    for role in docs.iter().filter(|d| kind(d) == "ClusterRole") {
        assert!(!grants_our_kinds(role), "ClusterRole {} grants the operator's kinds cluster-wide", name(role));
        // Only what counting an attachment's cross-namespace peers needs.
        for rule in role["rules"].as_array().unwrap() {
            assert_eq!(strings(&rule["verbs"]), ["list"], "{rule}");
        }
    }

    // The optional parts render only when asked for.
    let docs = template(&[
        "--set",
        "serviceMonitor.enabled=true,networkPolicy.enabled=true,replicas=2,createNamespace=true",
        "--set",
        "networkPolicy.ingressFrom[0].namespaceSelector.matchLabels.team=monitoring",
    ]);
    for k in ["ServiceMonitor", "NetworkPolicy", "PodDisruptionBudget", "Namespace"] {
        only(&docs, k);
    }
    let policy = only(&docs, "NetworkPolicy");
    let egress_ports: BTreeSet<i64> = policy["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["port"].as_i64())
        .collect();
    assert_eq!(egress_ports, BTreeSet::from([53, 443, 6443, 27017]));
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], "http");

    // Without leader election: no Lease Role, and never two operators at once.
    let docs = template(&["--set", "leaderElection.enabled=false"]);
    assert!(
        !docs.iter().any(|d| kind(d) == "Role" && name(d).ends_with("-leader-election")),
        "a Lease Role without leader election"
    );
    let deployment = only(&docs, "Deployment");
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert!(strings(&container(deployment)["args"]).contains(&"--leader-election=false".to_string()));

    // The CRDs the chart installs are the repository's.
    let docs = template(&["--include-crds"]);
    let crds: Vec<&Value> = docs.iter().filter(|d| kind(d) == "CustomResourceDefinition").collect();
    assert_eq!(crds.len(), mongo_operator::api::crds().len());
}

#[test]
#[ignore = "needs helm built by e2e/tools.sh: run `make test`"]
fn bad_values_are_refused_by_the_schema() {
    for (file, values, expected) in [
        ("bad-replicas.yaml", "replicas: two\n", "replicas"),
        ("bad-format.yaml", "logFormat: xml\n", "logFormat"),
        ("bad-unknown.yaml", "replicaCount: 2\n", "replicaCount"),
        ("bad-namespaces.yaml", "watchNamespaces: [Not_A_Namespace]\n", "watchNamespaces"),
        ("bad-two-leaders.yaml", "replicas: 2\nleaderElection: {enabled: false}\n", "enabled"),
    ] {
        let path = scratch_file(file, values);
        let out = output(&helm(), &["template", "rel", CHART, "--values", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "helm accepted {values:?}");
        assert!(
            stderr.contains("values don't meet the specifications of the schema") && stderr.contains(expected),
            "helm refused {values:?} without naming {expected}:\n{stderr}"
        );
    }
}

#[test]
#[ignore = "needs helm built by e2e/tools.sh: run `make test`"]
fn release_manifest_is_rendered_from_the_chart() {
    let rendered = ok(&repo_root().join("e2e/release-manifest.sh"), &[]);
    let committed = read(&repo_root().join("deploy/install.yaml"));
    assert!(
        rendered == committed,
        "deploy/install.yaml is out of date with the chart; run `make release-manifest` and commit"
    );
    let docs = documents(&committed);
    let namespace = only(&docs, "Namespace");
    assert_eq!(name(namespace), "mongo-operator");
    assert_eq!(
        docs.iter().filter(|d| kind(d) == "CustomResourceDefinition").count(),
        mongo_operator::api::crds().len()
    );
    for k in ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service"] {
        assert!(docs.iter().any(|d| kind(d) == k), "install.yaml has no {k}");
    }
    for doc in docs
        .iter()
        .filter(|d| !matches!(kind(d), "CustomResourceDefinition" | "Namespace" | "ClusterRole" | "ClusterRoleBinding"))
    {
        assert_eq!(namespace_of(doc), "mongo-operator", "{} {}", kind(doc), name(doc));
    }
}

// --- on the control plane ------------------------------------------------------------------

async fn exists<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.unwrap_or_else(|e| panic!("reading {name}: {e}")).is_some()
}

/// The container's arguments of the release's Deployment.
async fn deployment_args(client: &Client, ns: &str, name: &str) -> Vec<String> {
    let d = Api::<Deployment>::namespaced(client.clone(), ns).get(name).await.expect("the Deployment");
    d.spec.and_then(|s| s.template.spec).map(|p| p.containers[0].args.clone().unwrap_or_default()).unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane and helm: run `make test`"]
async fn helm_installs_upgrades_and_uninstalls_the_chart() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "helm").await;
    let release = unique("mo");
    let full = format!("{release}-mongo-operator");
    let helm_ns = ["--namespace", ns.as_str()];

    // kwok takes the Deployment's Pod to Ready, so --wait works as on a real cluster.
    ok(&helm(), &[&["install", &release, CHART, "--wait", "--timeout", "120s"][..], &helm_ns].concat());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    assert!(exists(&deployments, &full).await);
    assert!(exists(&Api::<ServiceAccount>::namespaced(client.clone(), &ns), &full).await);
    assert!(exists(&Api::<Service>::namespaced(client.clone(), &ns), &full).await);
    // The default install: a Role in the release namespace, nothing cluster-wide.
    assert!(!exists(&Api::<ClusterRole>::all(client.clone()), &full).await);
    assert!(exists(&Api::<Role>::namespaced(client.clone(), &ns), &full).await);
    assert!(exists(&Api::<RoleBinding>::namespaced(client.clone(), &ns), &full).await);
    let lease_role = format!("{full}-leader-election");
    assert!(exists(&Api::<Role>::namespaced(client.clone(), &ns), &lease_role).await);
    assert!(exists(&Api::<RoleBinding>::namespaced(client.clone(), &ns), &lease_role).await);
    let args = deployment_args(&client, &ns, &full).await;
    assert!(args.contains(&"--log-level=info".to_string()), "{args:?}");

    // A value changes the Deployment's arguments.
    ok(
        &helm(),
        &[&["upgrade", &release, CHART, "--reuse-values", "--set", "logLevel=debug", "--wait"][..], &helm_ns].concat(),
    );
    let args = deployment_args(&client, &ns, &full).await;
    assert!(args.contains(&"--log-level=debug".to_string()), "{args:?}");
    assert!(!args.contains(&"--log-level=info".to_string()), "{args:?}");

    // Uninstall removes everything it made but the CRDs.
    ok(&helm(), &[&["uninstall", &release, "--wait"][..], &helm_ns].concat());
    assert!(!exists(&deployments, &full).await);
    assert!(!exists(&Api::<ServiceAccount>::namespaced(client.clone(), &ns), &full).await);
    assert!(!exists(&Api::<Role>::namespaced(client.clone(), &ns), &full).await);
    assert!(!exists(&Api::<Role>::namespaced(client.clone(), &ns), &lease_role).await);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in mongo_operator::api::crds() {
        assert!(exists(&crds, &crd.name_any()).await, "helm uninstall deleted CRD {}", crd.name_any());
    }
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane and helm: run `make test`"]
async fn install_manifest_applies_server_side() {
    const NS: &str = "mongo-operator";
    let client = client().await;
    install_crds(&client).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    // A namespace left Terminating by an earlier run refuses new objects: wait it out.
    eventually("namespace mongo-operator to finish terminating", Duration::from_secs(120), || {
        let namespaces = namespaces.clone();
        async move {
            let ns = namespaces.get_opt(NS).await.ok()?;
            ns.is_none_or(|n| n.metadata.deletion_timestamp.is_none()).then_some(())
        }
    })
    .await;
    let existed = namespaces.get_opt(NS).await.expect("read namespace").is_some();

    let manifest = repo_root().join("deploy/install.yaml");
    let apply =
        ["apply", "--server-side", "--field-manager", "mongo-operator-install-test", "-f", manifest.to_str().unwrap()];
    ok(&kubectl(), &apply);
    // Applying again changes nothing and conflicts with nothing.
    ok(&kubectl(), &apply);
    ok(&kubectl(), &["-n", NS, "rollout", "status", "deployment/mongo-operator", "--timeout=120s"]);

    let docs = documents(&read(&manifest));
    let made: Vec<&Value> =
        docs.iter().filter(|d| !matches!(kind(d), "CustomResourceDefinition" | "Namespace")).collect();
    for doc in &made {
        let mut args = vec!["get", kind(doc), name(doc)];
        if !namespace_of(doc).is_empty() {
            args.extend(["-n", namespace_of(doc)]);
        }
        ok(&kubectl(), &args);
    }
    // The operator's Pod passes the namespace's restricted Pod Security level.
    let pods = Api::<Pod>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels("app.kubernetes.io/name=mongo-operator"))
        .await
        .expect("list operator Pods");
    assert!(!pods.items.is_empty(), "the Deployment made no Pod");

    // Clean up all but the CRDs (shared with every other test), and the namespace only when
    // this test made it.
    for doc in made.iter().rev() {
        let mut args = vec!["delete", kind(doc), name(doc), "--ignore-not-found", "--wait=false"];
        if !namespace_of(doc).is_empty() {
            args.extend(["-n", namespace_of(doc)]);
        }
        ok(&kubectl(), &args);
    }
    if !existed {
        delete_namespace(&client, NS).await;
    }
}

/// A kubeconfig for the API server of the current context, authenticated by `token`.
fn token_kubeconfig(token: &str, file: &str) -> PathBuf {
    let path = scratch_file(file, "");
    support::rbac::token_kubeconfig(token, &path);
    path
}

/// The environment the Deployment's container gets, with downward-API fields resolved for
/// `pod` in `ns`.
fn container_env(c: &k8s_openapi::api::core::v1::Container, pod: &str, ns: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for e in c.env.iter().flatten() {
        let value = match (&e.value, e.value_from.as_ref().and_then(|v| v.field_ref.as_ref())) {
            (Some(v), _) => v.clone(),
            (None, Some(f)) if f.field_path == "metadata.name" => pod.to_string(),
            (None, Some(f)) if f.field_path == "metadata.namespace" => ns.to_string(),
            _ => panic!("the test cannot resolve the env var {e:?}"),
        };
        env.insert(e.name.clone(), value);
    }
    env
}

fn is_ready(c: &MongoCluster) -> bool {
    let Some(status) = &c.status else { return false };
    status.observed_generation == c.metadata.generation
        && status.conditions.iter().any(|x| x.type_ == "Ready" && x.status == "True")
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane and helm: run `make test`"]
async fn the_operator_as_installed_by_the_chart_brings_a_cluster_to_ready() {
    let client = client().await;
    install_crds(&client).await;
    let ops = namespace(&client, "chart-ops").await;
    let db = namespace(&client, "chart-db").await;
    let release = unique("mo");
    let full = format!("{release}-mongo-operator");

    // Only the test's own namespace is watched, so this operator leaves the clusters of
    // tests running next to it alone (and the namespaced RBAC is what it runs under). The
    // ValidatingAdmissionPolicy is on: everything the operator does must pass it.
    let values = scratch_file(
        &format!("{release}.yaml"),
        &format!(
            "watchNamespaces: [{db}]\nlogFormat: text\nlogLevel: \"info,mongo_operator=debug\"\nadmissionPolicy: {{enabled: true}}\n"
        ),
    );
    ok(
        &helm(),
        &[
            "install",
            &release,
            CHART,
            "--namespace",
            &ops,
            "--values",
            values.to_str().unwrap(),
            "--wait",
            "--timeout",
            "120s",
        ],
    );

    // What the chart's Pod would run: its arguments, and its environment as the kubelet
    // resolves it for the Pod kwok made.
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ops).get(&full).await.expect("the Deployment");
    let pod_spec = deployment.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("a Pod template");
    let c = &pod_spec.containers[0];
    let pods = Api::<Pod>::namespaced(client.clone(), &ops)
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={release}")))
        .await
        .expect("list the operator's Pods");
    let pod = pods.items.first().map(|p| p.name_any()).expect("the Deployment's Pod");
    let env = container_env(c, &pod, &ops);
    // The one change: the port, since tests share this machine's ports.
    let args: Vec<String> = c
        .args
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|a| if a.starts_with("--listen=") { "--listen=127.0.0.1:0".to_string() } else { a })
        .chain(["--controls-listen=127.0.0.1:0".to_string()])
        .collect();
    assert!(args.iter().any(|a| a == "--leader-election=true"), "{args:?}");

    // Its ServiceAccount's credentials, from the TokenRequest API.
    let sa = pod_spec.service_account_name.clone().expect("a ServiceAccount");
    let token = ok(&kubectl(), &["create", "token", &sa, "-n", &ops, "--duration", "1h"]);
    let kubeconfig = token_kubeconfig(token.trim(), &format!("{release}.kubeconfig"));

    // The admission policy is in force before the operator starts: its identity is refused a
    // Secret without the managed-by label.
    let mut as_sa = kube::Config::infer().await.expect("kubeconfig");
    as_sa.auth_info.impersonate = Some(format!("system:serviceaccount:{ops}:{sa}"));
    as_sa.auth_info.impersonate_groups = Some(vec!["system:masters".into(), "system:authenticated".into()]);
    let as_operator: Api<Secret> = Api::namespaced(Client::try_from(as_sa).expect("client"), &db);
    let mut unlabelled = Secret::default();
    unlabelled.metadata.name = Some("not-the-operators".into());
    eventually("the admission policy in force", Duration::from_secs(60), || async {
        match as_operator.create(&PostParams::default(), &unlabelled).await {
            Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("managed-by=mongo-operator") => Some(()),
            Ok(_) => {
                let _ = as_operator.delete("not-the-operators", &Default::default()).await;
                None
            }
            Err(_) => None,
        }
    })
    .await;

    let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("operator-logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    let log = logs.join(format!("{db}-chart.log"));
    let file = std::fs::File::create(&log).expect("operator log");
    let mut operator = tokio::process::Command::new(env!("CARGO_BIN_EXE_mongo-operator"))
        .args(&args)
        .env_clear()
        .envs(&env)
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::from(file))
        .kill_on_drop(true)
        .spawn()
        .expect("start the operator");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    // It leads: the Lease in its namespace names this process (its Pod's name).
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ops);
    let holder = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(Some(l)) = leases.get_opt("mongo-operator").await
                && let Some(h) = l.spec.and_then(|s| s.holder_identity)
            {
                return h;
            }
            if let Ok(Some(status)) = operator.try_wait() {
                panic!("the operator exited ({status}):\n{}", log_text());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no leader Lease in {ops} within 60s; operator log:\n{}", log_text()));
    assert_eq!(holder, pod);

    // A cluster from the examples, in the watched namespace, with simulated members.
    let example = read(&repo_root().join("examples/cluster-minimal.yaml"));
    create(&client, &db, &example, false).await.expect("create the example MongoCluster");
    let _members = SimMembers::follow(&client, &db, "demo", None).await;
    let clusters: Api<MongoCluster> = Api::namespaced(client.clone(), &db);
    let ready = tokio::time::timeout(Duration::from_secs(180), async {
        loop {
            if let Ok(c) = clusters.get("demo").await
                && is_ready(&c)
            {
                return c;
            }
            if let Ok(Some(status)) = operator.try_wait() {
                panic!("the operator exited ({status}):\n{}", log_text());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    let log_now = log_text();
    let cluster = ready.unwrap_or_else(|_| {
        // Its last lines, shortened: a refused request repeats on every retry.
        let tail: Vec<String> = log_now.lines().rev().take(20).map(|l| l.chars().take(400).collect()).collect();
        let tail: Vec<String> = tail.into_iter().rev().collect();
        panic!("demo not Ready within 180s; operator log ({}) ends:\n{}", log.display(), tail.join("\n"));
    });
    assert!(cluster.status.as_ref().and_then(|s| s.primary.as_ref()).is_some(), "{:?}", cluster.status);
    assert!(exists(&Api::<StatefulSet>::namespaced(client.clone(), &db), "demo").await);
    for service in ["demo", "demo-members"] {
        assert!(exists(&Api::<Service>::namespaced(client.clone(), &db), service).await, "no Service {service}");
    }

    // The other two kinds, from the examples, pointed at this cluster: a backup (whose Job the
    // isolated cluster lets out once it names its stores) and an attachment whose peers are
    // in another namespace.
    merge_patch(
        &client,
        &db,
        &example,
        "demo",
        serde_json::json!({"spec": {"networkIsolation": {"objectStores": {"anyAddress": true}}}}),
    )
    .await
    .expect("let the cluster's Jobs reach any store");
    create(
        &client,
        &db,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: ovh-s3-credentials, labels: {mongo.operator.rs/backup-credentials: \"true\"}}\nstringData: {AWS_ACCESS_KEY_ID: id, AWS_SECRET_ACCESS_KEY: secret}\n",
        false,
    )
    .await
    .expect("create the store's credentials");
    for file in ["backup-once.yaml", "attachment.yaml"] {
        let yaml = read(&repo_root().join("examples").join(file))
            .replace("clusterRef: {name: orders}", "clusterRef: {name: demo}");
        assert!(yaml.contains("{name: demo}"), "examples/{file} no longer names its cluster as this test expects");
        create(&client, &db, &yaml, false).await.unwrap_or_else(|e| panic!("create examples/{file}: {e}"));
    }
    let backups: Api<MongoBackup> = Api::namespaced(client.clone(), &db);
    let attachments: Api<NetworkPolicyAttachment> = Api::namespaced(client.clone(), &db);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &db);
    eventually("the backup's Job and the attachment's policy", Duration::from_secs(60), || {
        let (backups, attachments, jobs) = (backups.clone(), attachments.clone(), jobs.clone());
        async move {
            let backup = backups.get("orders-before-migration").await.ok()?;
            let running = backup.status.and_then(|s| s.phase) == Some(BackupPhase::Running);
            let job = !jobs.list(&ListParams::default()).await.ok()?.items.is_empty();
            let attachment = attachments.get("orders-clients").await.ok()?;
            let policy = attachment.status.and_then(|s| s.network_policy_name).is_some();
            (running && job && policy).then_some(())
        }
    })
    .await;

    // Nothing it tried was refused.
    let log_now = log_text();
    let refused: Vec<String> = log_now
        .lines()
        .filter(|l| l.contains("forbidden") || l.contains("Forbidden"))
        .map(|l| l.chars().take(400).collect())
        .collect();
    assert!(
        refused.is_empty(),
        "the chart's RBAC refused the operator {} time(s):\n{}",
        refused.len(),
        refused.join("\n")
    );

    let _ = operator.kill().await;
    ok(&helm(), &["uninstall", &release, "--namespace", &ops, "--wait"]);
    delete_namespace(&client, &db).await;
    delete_namespace(&client, &ops).await;
}
