//! The `kubectl mongo` plugin, run as the built binary against the local control plane with
//! the operator and simulated members: `status` on a Ready cluster (a golden file, volatile
//! fields masked), as JSON, on a cluster that is not Ready (exit 1), on one that does not
//! exist (exit 2), and as a user who may only read the namespace (the user's RBAC, not the
//! operator's: no Node access, so no zones).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::cluster_env::*;
use support::members::SimMembers;

fn run_plugin(kubeconfig: Option<&Path>, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-mongo"));
    command.args(args);
    if let Some(path) = kubeconfig {
        command.env("KUBECONFIG", path);
    }
    let out = command.output().expect("run kubectl-mongo");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the plugin off the test's runtime, which keeps serving the Job runner meanwhile.
async fn plugin(kubeconfig: Option<&Path>, args: &[&str]) -> (i32, String, String) {
    let kubeconfig = kubeconfig.map(Path::to_path_buf);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_plugin(kubeconfig.as_deref(), &args)
    })
    .await
    .expect("join")
}

/// The screen with what changes from run to run masked: the namespace, times, which member
/// won the election, nodes.
fn masked(text: &str, ns: &str) -> String {
    let mut out = text.replace(ns, "<ns>");
    // RFC 3339 times, as the API gives them.
    let mut masked = String::new();
    let mut rest = out.as_str();
    while let Some(at) = rest.find(|c: char| c.is_ascii_digit()) {
        let candidate = &rest[at..];
        let end = candidate.find([' ', ',', ')', '\n']).unwrap_or(candidate.len());
        let word = &candidate[..end];
        let is_time = word.len() >= 20 && word.as_bytes().get(4) == Some(&b'-') && word.contains('T');
        masked.push_str(&rest[..at]);
        masked.push_str(if is_time { "<time>" } else { word });
        rest = &candidate[end..];
    }
    masked.push_str(rest);
    out = masked;
    for state in ["PRIMARY  ", "SECONDARY"] {
        out = out.replace(state, "<state>  ");
    }
    // Which member is primary, where each Pod landed (node and zone), and the Warning Events
    // (Pods wait for their volumes for a moment, or not) change from run to run; cell widths
    // with them, so spacing is folded.
    let mut lines = Vec::new();
    for line in out.lines() {
        if line.starts_with("Primary:") {
            lines.push("Primary: <primary>".to_string());
            continue;
        }
        let words: Vec<String> = line
            .split_whitespace()
            .map(|w| match w {
                _ if w.starts_with("kwok-node") => "<node>".to_string(),
                _ if w.starts_with("zone-") => "<zone>".to_string(),
                _ if w.starts_with("orders-") && w.len() == "orders-0".len() && line.contains("primary orders-") => {
                    "<primary>".to_string()
                }
                _ => w.to_string(),
            })
            .collect();
        lines.push(words.join(" "));
        if line.starts_with("Recent warnings:") {
            lines.push("<masked>".to_string());
            break;
        }
    }
    lines.join("\n") + "\n"
}

fn golden(name: &str) -> PathBuf {
    support::repo_root().join("tests/golden").join(name)
}

fn assert_golden(name: &str, actual: &str) {
    let path = golden(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(actual, expected, "{} differs (UPDATE_GOLDEN=1 rewrites it)", path.display());
}

/// A kubeconfig that acts as `user` (impersonation by the test's administrator).
fn impersonating(user: &str) -> PathBuf {
    let source = std::env::var("KUBECONFIG").expect("KUBECONFIG of the test control plane");
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&source).expect("kubeconfig")).expect("YAML");
    for entry in config["users"].as_sequence_mut().expect("users") {
        entry["user"]["as"] = serde_yaml::Value::String(user.into());
    }
    let path = std::env::temp_dir().join(format!("kubeconfig-{}-{}", std::process::id(), user.replace(':', "-")));
    std::fs::write(&path, serde_yaml::to_string(&config).expect("YAML")).expect("write kubeconfig");
    path
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn status_shows_a_cluster_on_one_screen_and_says_by_its_exit_code_whether_it_is_ready() {
    let env = Env::new("plugin").await;
    env.create_cluster(&cluster_yaml("orders", 3, "")).await;
    let _sim = SimMembers::follow(&env.client, &env.ns, "orders", None).await;
    env.ready("orders").await;

    let (code, text, stderr) = plugin(None, &["status", "orders", "-n", &env.ns]).await;
    assert_eq!(code, 0, "{text}{stderr}");
    assert_golden("kubectl-mongo-status.txt", &masked(&text, &env.ns));

    let (code, json, _) = plugin(None, &["status", "orders", "-n", &env.ns, "-o", "json"]).await;
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(report["ready"], true);
    assert_eq!(report["members"].as_array().map(Vec::len), Some(3));
    let (code, yaml, _) = plugin(None, &["status", "orders", "-n", &env.ns, "-o", "yaml"]).await;
    assert_eq!(code, 0);
    let from_yaml: serde_json::Value = serde_yaml::from_str(&yaml).expect("YAML");
    assert_eq!(from_yaml, report);

    // A cluster whose members never start is not Ready: exit 1, and the screen says so.
    env.create_cluster(&cluster_yaml("stuck", 1, "")).await;
    let (code, text, _) = plugin(None, &["status", "stuck", "-n", &env.ns]).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("(not Ready)"), "{text}");
    // One that does not exist: exit 2, with the reason.
    let (code, _, stderr) = plugin(None, &["status", "nothing", "-n", &env.ns]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("MongoCluster nothing not found"), "{stderr}");

    // A user who may only read the namespace gets the same screen, less the zones (Nodes are
    // not theirs to read): the plugin acts with the user's rights.
    let reader = format!("system:serviceaccount:{}:reader", env.ns);
    support::rbac::kubectl_apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: reader, namespace: {ns}}}\nrules:\n- apiGroups: [mongo.operator.rs]\n  resources: [mongoclusters, mongobackups]\n  verbs: [get, list]\n- apiGroups: ['']\n  resources: [pods, events]\n  verbs: [get, list]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: reader, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}}\nsubjects:\n- {{kind: ServiceAccount, name: reader, namespace: {ns}}}\n",
        ns = env.ns
    ));
    let kubeconfig = impersonating(&reader);
    let (code, text, stderr) = plugin(Some(&kubeconfig), &["status", "orders", "-n", &env.ns]).await;
    assert_eq!(code, 0, "{text}{stderr}");
    assert!(text.contains("Members:") && text.contains("orders-0"), "{text}");
    // Without the Role, the user reads nothing, and the plugin says why.
    let stranger = impersonating(&format!("system:serviceaccount:{}:stranger", env.ns));
    let (code, _, stderr) = plugin(Some(&stranger), &["status", "orders", "-n", &env.ns]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("forbidden") || stderr.contains("Forbidden"), "{stderr}");
    let _ = std::fs::remove_file(kubeconfig);
    let _ = std::fs::remove_file(stranger);
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane, FerretDB, s3s-fs and mongo-tools: run `make test`"]
async fn backup_takes_one_now_with_the_schedules_settings_and_pause_resume_flip_the_spec() {
    use k8s_openapi::api::core::v1::Secret;
    use mongo_operator::api::{BackupPhase, MongoBackup, MongoCluster};
    use mongo_operator::controller::backup::trust::CREDENTIALS_LABEL;
    use support::job_runner::JobRunner;
    use support::servers::{Ferret, S3_ACCESS_KEY, S3_SECRET_KEY, S3Server};

    let env = Env::new("plugin-backup").await;
    let store = S3Server::start(&["backups"]);
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s3-keys\n  labels: {{{CREDENTIALS_LABEL}: \"true\"}}\nstringData:\n  AWS_ACCESS_KEY_ID: {S3_ACCESS_KEY}\n  AWS_SECRET_ACCESS_KEY: {S3_SECRET_KEY}\n"
    );
    support::create_typed::<Secret>(&env.client, &env.ns, &secret).await;
    let loopback = "  networkIsolation:\n    objectStores:\n      cidrs: [127.0.0.0/8]\n      ports: []\n";
    env.create_cluster(&cluster_yaml("orders", 3, loopback)).await;
    let ferret = Ferret::start();
    let _sim = SimMembers::holding_data(&env.client, &env.ns, "orders", &ferret.address).await;
    env.ready("orders").await;
    let runner = JobRunner::start(env.client.clone(), &env.ns);
    let destination = |name: &str| {
        format!(
            "  - name: {name}\n    s3:\n      bucket: backups\n      prefix: {name}\n      endpoint: {}\n      forcePathStyle: true\n      credentialsSecretRef:\n        name: s3-keys\n",
            store.endpoint()
        )
    };

    // Without a schedule there are no settings to take: exit 2, saying what to do.
    let (code, _, stderr) = plugin(None, &["backup", "orders", "-n", &env.ns]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("has no backup schedule"), "{stderr}");

    support::create_typed::<MongoBackup>(
        &env.client,
        &env.ns,
        &format!(
            "apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoBackup\nmetadata:\n  name: nightly\nspec:\n  clusterRef: {{name: orders}}\n  schedule: {{cron: \"0 3 1 1 *\"}}\n  unencrypted: true\n  destinations:\n{}{}",
            destination("ovh"),
            destination("scaleway")
        ),
    )
    .await;
    let (code, _, stderr) = plugin(None, &["backup", "orders", "-n", &env.ns, "--to", "aws"]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("no destination named aws (it has: ovh, scaleway)"), "{stderr}");
    let (code, out, stderr) =
        plugin(None, &["backup", "orders", "-n", &env.ns, "--to", "scaleway", "--wait", "--timeout", "120"]).await;
    assert_eq!(code, 0, "{out}{stderr}");
    assert!(out.contains("created") && out.contains("Succeeded"), "{out}");
    let name =
        out.split("mongobackup.mongo.operator.rs/").nth(1).and_then(|r| r.split_whitespace().next()).expect("name");
    let backup = env.api::<MongoBackup>().get(name).await.expect("the backup");
    assert_eq!(backup.status.as_ref().and_then(|s| s.phase), Some(BackupPhase::Succeeded));
    assert_eq!(backup.spec.destinations.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["scaleway"]);
    assert!(backup.spec.schedule.is_none());
    assert!(
        runner.runs.lock().map(|r| r.iter().any(|(pod, code)| pod.starts_with(name) && *code == 0)).unwrap_or(false)
    );
    // status lists it.
    let (_, text, _) = plugin(None, &["status", "orders", "-n", &env.ns]).await;
    assert!(text.contains(name), "{text}");

    // A user who may only read gets `status` and a clear refusal for `backup`; one who may
    // do nothing is refused earlier.
    support::rbac::kubectl_apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: reader, namespace: {ns}}}\nrules:\n- apiGroups: [mongo.operator.rs]\n  resources: [mongoclusters, mongobackups]\n  verbs: [get, list]\n- apiGroups: ['']\n  resources: [pods, events]\n  verbs: [get, list]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: reader, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}}\nsubjects:\n- {{kind: ServiceAccount, name: reader, namespace: {ns}}}\n",
        ns = env.ns
    ));
    let reader = impersonating(&format!("system:serviceaccount:{}:reader", env.ns));
    let (code, _, _) = plugin(Some(&reader), &["status", "orders", "-n", &env.ns]).await;
    assert_eq!(code, 0, "a reader gets status");
    let (code, _, stderr) = plugin(Some(&reader), &["backup", "orders", "-n", &env.ns]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("you may not create MongoBackups"), "{stderr}");
    let nobody = impersonating(&format!("system:serviceaccount:{}:nobody", env.ns));
    let (code, _, stderr) = plugin(Some(&nobody), &["backup", "orders", "-n", &env.ns]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("you may not list MongoBackups"), "{stderr}");
    let _ = std::fs::remove_file(reader);
    let _ = std::fs::remove_file(nobody);

    // pause and resume flip spec.paused, once.
    let (code, out, _) = plugin(None, &["pause", "orders", "-n", &env.ns]).await;
    assert_eq!((code, out.trim()), (0, "mongocluster.mongo.operator.rs/orders paused"));
    let paused = env.api::<MongoCluster>().get("orders").await.expect("cluster");
    assert!(paused.spec.paused);
    let (_, out, _) = plugin(None, &["pause", "orders", "-n", &env.ns]).await;
    assert_eq!(out.trim(), "mongocluster.mongo.operator.rs/orders was already paused");
    let (code, out, _) = plugin(None, &["resume", "orders", "-n", &env.ns]).await;
    assert_eq!((code, out.trim()), (0, "mongocluster.mongo.operator.rs/orders resumed"));
    assert!(!env.api::<MongoCluster>().get("orders").await.expect("cluster").spec.paused);
    env.finish().await;
}

#[test]
fn completion_scripts_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, script, _) = run_plugin(None, &["completion", shell]);
        assert_eq!(code, 0, "{shell}");
        assert!(script.contains("kubectl-mongo") && script.contains("status"), "{shell}: {script}");
    }
}
