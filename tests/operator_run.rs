//! `mongo-operator run` as a process: it connects, checks that its CRDs are installed (and
//! says so clearly when they are not), and stops cleanly on SIGTERM.

mod support;

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::DeleteParams;
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn operator() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mongo-operator"));
    cmd.args(["run", "--log-format", "text", "--leader-election", "false", "--listen", "127.0.0.1:0"])
        .args(["--controls-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Reads the child's stderr until a line contains `needle`; returns everything read.
async fn wait_for_log(child: &mut Child, needle: &str, timeout: Duration) -> String {
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    let found = tokio::time::timeout(timeout, async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(needle) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(found, "operator never logged {needle:?}; it logged:\n{seen}");
    // Keep draining so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    seen
}

async fn exit_output(child: Child, timeout: Duration) -> (std::process::ExitStatus, String) {
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("operator did not exit within {timeout:?}"))
        .expect("wait for operator");
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn runs_until_sigterm_then_stops_cleanly_and_refuses_to_run_without_crds() {
    // One test, because the second half removes the CRDs that the first half needs.
    let client = client().await;
    install_crds(&client).await;

    let mut child = operator().spawn().expect("start operator");
    wait_for_log(&mut child, "mongo-operator is running", Duration::from_secs(20)).await;
    let pid = child.id().expect("operator pid");
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("send SIGTERM");
    assert!(status.success());
    let exit =
        tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("stops within 10s").expect("wait");
    assert!(exit.success(), "operator exited with {exit} after SIGTERM");

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("mongobackups.mongo.operator.rs", &DeleteParams::default()).await.expect("delete CRD");
    eventually("the CRD to be gone", Duration::from_secs(60), || async {
        matches!(crds.get("mongobackups.mongo.operator.rs").await, Err(kube::Error::Api(s)) if s.code == 404)
            .then_some(())
    })
    .await;
    let (status, stderr) = exit_output(operator().spawn().expect("start operator"), Duration::from_secs(20)).await;
    install_crds(&client).await;
    assert_eq!(status.code(), Some(2), "expected exit code 2, stderr:\n{stderr}");
    assert!(
        stderr.contains("mongobackups.mongo.operator.rs is not installed")
            && stderr.contains("mongo-operator crd | kubectl apply"),
        "the operator should name the missing CRD and how to install it; stderr:\n{stderr}"
    );
}

#[tokio::test]
async fn says_so_when_the_api_server_is_unreachable() {
    let dir = std::env::temp_dir().join(format!("mongo-operator-unreachable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n",
    )
    .expect("write kubeconfig");
    let mut cmd = operator();
    cmd.env("KUBECONFIG", &kubeconfig);
    let (status, stderr) = exit_output(cmd.spawn().expect("start operator"), Duration::from_secs(30)).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("cannot reach the Kubernetes API server"), "stderr:\n{stderr}");
}
