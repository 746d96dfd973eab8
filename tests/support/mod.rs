//! Shared helpers for tests that run against a Kubernetes control plane (the local one from
//! `e2e/cluster.sh`, or the cluster in the current kube context). `make test` brings the local
//! one up and points KUBECONFIG at it.
#![allow(dead_code)] // each test binary uses a different subset

pub mod cert_manager;
pub mod cluster_env;
pub mod command_log;
pub mod crds_from_tools;
pub mod data_set;
pub mod dns;
pub mod job_files;
pub mod job_runner;
pub mod members;
pub mod metric_names;
pub mod operator;
pub mod pitr;
pub mod rbac;
pub mod recorded_member;
pub mod servers;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope, pinned_kind};
use kube::runtime::wait::{await_condition, conditions};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub async fn client() -> Client {
    mongo_operator::tls::install_crypto_provider();
    dns::serve();
    Client::try_default().await.unwrap_or_else(|e| {
        panic!(
            "cannot connect to Kubernetes ({e}); run the tests with `make test`, which starts the local control plane"
        )
    })
}

/// Installs the committed CRDs (server-side apply) and waits until they are Established.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in mongo_operator::api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &PatchParams::apply("mongo-operator-tests").force(), &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established within 30s"))
        .unwrap_or_else(|e| panic!("watching CRD {name}: {e}"));
    }
}

/// Creates a fresh namespace for one test; names are unique per run.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let api: Api<Namespace> = Api::all(client.clone());
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000)
        .unwrap_or(0);
    let name = format!("{prefix}-{suffix}");
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns).await.unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    name
}

/// Deletes a test's namespace, without waiting for it to go.
///
/// Stop the namespace's operator first (`Operator::kill`, which waits for the process to end):
/// it acts with a Role in this namespace, which the namespace's deletion may remove before the
/// objects it still reconciles, and every request it made after that would be refused, which
/// the RBAC audit counts as a missing rule.
pub async fn delete_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::background()).await;
}

/// Parses a YAML manifest into an object and the API resource that serves its kind.
pub async fn resolve(client: &Client, yaml: &str) -> (DynamicObject, ApiResource) {
    let obj: DynamicObject = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("bad test YAML: {e}\n{yaml}"));
    let types = obj.types.clone().unwrap_or_else(|| panic!("manifest without apiVersion/kind:\n{yaml}"));
    let gvk = GroupVersionKind::try_from(&types).unwrap_or_else(|e| panic!("bad apiVersion: {e}"));
    let (ar, caps) = pinned_kind(client, &gvk).await.unwrap_or_else(|e| panic!("discovering {gvk:?}: {e}"));
    assert!(matches!(caps.scope, Scope::Namespaced), "test manifests must be namespaced");
    (obj, ar)
}

/// Creates the manifest in `ns`; `dry_run` asks the API server to run every admission step
/// without storing anything.
pub async fn create(client: &Client, ns: &str, yaml: &str, dry_run: bool) -> Result<DynamicObject, kube::Error> {
    let (obj, ar) = resolve(client, yaml).await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let pp = PostParams { dry_run, ..PostParams::default() };
    api.create(&pp, &obj).await
}

/// Creates the manifest in `ns` as a typed object and returns what the API server stored.
pub async fn create_typed<K>(client: &Client, ns: &str, yaml: &str) -> K
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let object: K = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("bad test YAML: {e}\n{yaml}"));
    Api::<K>::namespaced(client.clone(), ns).create(&PostParams::default(), &object).await.expect("create")
}

/// Merge-patches the named object of the manifest's kind in `ns`.
pub async fn merge_patch(
    client: &Client,
    ns: &str,
    yaml_of_kind: &str,
    name: &str,
    patch: serde_json::Value,
) -> Result<DynamicObject, kube::Error> {
    let (_, ar) = resolve(client, yaml_of_kind).await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await
}

pub fn examples() -> Vec<(PathBuf, String)> {
    let dir = repo_root().join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files.into_iter().map(|p| (p.clone(), read(&p))).collect()
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Polls `check` every 200 ms until it returns Some or `timeout` passes. Only tests wait this
/// way; the operator itself is woken by watches.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
