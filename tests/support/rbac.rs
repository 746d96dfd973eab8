//! Runs the tests' operators with exactly the RBAC the Helm chart grants: each operator gets
//! a ServiceAccount of its own (in one namespace, whose requests the local API server audits),
//! bound by the chart's own Role to the namespace it watches, and a kubeconfig with that
//! account's token. Every test that starts an operator therefore shows the chart's rules are
//! sufficient; tests/rbac_audit.rs reads the audit log to show each rule was needed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::repo_root;

/// Where the operators' ServiceAccounts live (`e2e/cluster.sh` audits this namespace).
pub const SA_NAMESPACE: &str = "mongo-operator-tests";

/// A binary built by `e2e/tools.sh` (helm, kubectl).
pub fn tool(tool_dir: &str, binary: &str) -> PathBuf {
    super::servers::tool_dir(tool_dir).join(binary)
}

fn run(mut cmd: Command, input: Option<&str>) -> String {
    let shown = format!("{cmd:?}");
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{shown}: {e}"));
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        std::io::Write::write_all(&mut stdin, text.as_bytes()).unwrap_or_else(|e| panic!("{shown}: stdin: {e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(out.status.success(), "{shown} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The chart's ServiceAccount and RBAC for an operator watching `watched`, named after
/// `release`, as `helm template` renders them.
/// `helm template` of the chart with `args`.
pub fn helm_template(args: &[&str]) -> String {
    let mut cmd = Command::new(tool("helm", "helm"));
    cmd.args(["template", "mongo-operator"]).arg(repo_root().join("charts/mongo-operator")).args(args);
    run(cmd, None)
}

pub fn render_rbac(release: &str, watched: &[&str], extra: &[&str]) -> String {
    let mut cmd = Command::new(tool("helm", "helm"));
    cmd.args(["template", release])
        .arg(repo_root().join("charts/mongo-operator"))
        .args(["--namespace", SA_NAMESPACE, "--set", &format!("fullnameOverride={release}")])
        .args(["--show-only", "templates/rbac.yaml", "--show-only", "templates/serviceaccount.yaml"]);
    if !watched.is_empty() {
        cmd.args(["--set", &format!("watchNamespaces={{{}}}", watched.join(","))]);
    }
    cmd.args(extra);
    run(cmd, None)
}

/// Applies `yaml` with the admin credentials of the test environment.
pub fn kubectl_apply(yaml: &str) {
    let mut cmd = Command::new(tool("k8s", "kubectl"));
    cmd.args(["apply", "--server-side", "--field-manager=mongo-operator-tests", "-f", "-"]);
    run(cmd, Some(yaml));
}

/// Waits (10 s at most) until the API server's authorizer lets `user` `verb` `resource` in
/// `namespace`: RBAC objects reach the authorizer through its informers, a moment after they
/// are stored, and a request made at once may still be refused.
pub fn wait_until_allowed(user: &str, verb: &str, resource: &str, namespace: &str) {
    for _ in 0..100 {
        let allowed = Command::new(tool("k8s", "kubectl"))
            .args(["auth", "can-i", verb, resource, "-n", namespace, "--as", user])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if allowed {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{user} is still not allowed to {verb} {resource} in {namespace} after 10 s");
}

/// A kubeconfig for the API server of the current context that authenticates with `token`.
pub fn token_kubeconfig(token: &str, file: &Path) {
    let mut view = Command::new(tool("k8s", "kubectl"));
    view.args(["config", "view", "--raw", "--minify", "--flatten", "-o", "json"]);
    let view: serde_json::Value = serde_json::from_str(&run(view, None)).expect("kubeconfig JSON");
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "target", "cluster": view["clusters"][0]["cluster"]}],
        "users": [{"name": "token", "user": {"token": token}}],
        "contexts": [{"name": "token", "context": {"cluster": "target", "user": "token"}}],
        "current-context": "token",
    });
    std::fs::write(file, serde_json::to_vec_pretty(&config).expect("kubeconfig")).expect("write kubeconfig");
}

/// A kubeconfig for the same API server that authenticates as `sa` in [`SA_NAMESPACE`].
pub fn kubeconfig_for(sa: &str, file: &Path) {
    let mut token = Command::new(tool("k8s", "kubectl"));
    token.args(["create", "token", sa, "-n", SA_NAMESPACE, "--duration", "6h"]);
    token_kubeconfig(run(token, None).trim(), file);
}

/// The leader Lease of the operators watching `ns`, in [`SA_NAMESPACE`].
pub fn lease_of(ns: &str) -> String {
    format!("lease-{ns}")
}

/// Creates the chart's ServiceAccount and Roles for an operator watching `ns` (named after
/// it; its leader Lease is [`lease_of`]) and returns a kubeconfig that acts as that account.
pub fn operator_identity(ns: &str) -> PathBuf {
    let release = format!("op-{ns}");
    let lease = format!("leaderElection.leaseName={}", lease_of(ns));
    kubectl_apply(&render_rbac(&release, &[ns], &["--set", &lease]));
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("operator-kubeconfigs");
    std::fs::create_dir_all(&dir).expect("kubeconfig dir");
    let file = dir.join(format!("{ns}.json"));
    kubeconfig_for(&release, &file);
    file
}
