//! The real operator binary, run as a process against the local control plane, limited to one
//! test's namespace so tests running side by side do not share an operator.

use std::path::PathBuf;
use std::process::Stdio;

use clap::Parser;
use kube::Client;
use mongo_operator::controller::Context;
use mongo_operator::mongo::{DriverAdmin, Timeouts};
use mongo_operator::runtime::RunOptions;
use tokio::process::{Child, Command};

/// The controllers' options every test operator runs with, before a test's own.
fn controller_args(ns: &str) -> [&str; 4] {
    ["--namespace", ns, "--image", "mongo-operator:test"]
}

/// A running operator; killed when dropped. Its log is kept in `target/test-logs/`.
pub struct Operator {
    pub child: Child,
    pub log: PathBuf,
}

impl Operator {
    pub fn start(ns: &str) -> Operator {
        // Tests run several operators side by side, each alone in its namespace: none takes
        // part in leader election.
        Operator::start_with(ns, "", &["--leader-election", "false"])
    }

    /// Starts one with more arguments; `tag` tells apart the logs of several in one namespace.
    pub fn start_with(ns: &str, tag: &str, args: &[&str]) -> Operator {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("operator-logs");
        std::fs::create_dir_all(&dir).expect("log dir");
        let log = dir.join(format!("{ns}{tag}.log"));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("open operator log");
        // The operator acts with the Helm chart's RBAC, not as the test's admin.
        let kubeconfig = super::rbac::operator_identity(ns);
        let child = Command::new(env!("CARGO_BIN_EXE_mongo-operator"))
            .env("KUBECONFIG", &kubeconfig)
            .args(["run", "--log-format", "text", "--log-level", "info,mongo_operator=debug"])
            .args(controller_args(ns))
            // Each serves its endpoints on a free port (see `address`).
            .args(["--listen", "127.0.0.1:0", "--controls-listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .expect("start the operator");
        Operator { child, log }
    }

    /// Kills the operator at once (SIGKILL), as a crash or an evicted Pod would.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// Its /metrics page, once it serves it.
    pub async fn metrics(&self) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let address = loop {
            if let Some(address) = self.address() {
                break address;
            }
            assert!(std::time::Instant::now() < deadline, "the operator never said where it serves /metrics");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        let response = reqwest::get(format!("http://{address}/metrics")).await.expect("GET /metrics");
        String::from_utf8_lossy(&response.bytes().await.expect("the page")).into_owned()
    }

    /// Where it serves /metrics, /healthz and /readyz, once it has said so in its log.
    pub fn address(&self) -> Option<String> {
        self.logged_address("serving /metrics")
    }

    /// Where it serves its run-time controls (/log-level), once it has said so in its log.
    pub fn controls_address(&self) -> Option<String> {
        self.logged_address("serving the run-time controls")
    }

    fn logged_address(&self, what: &str) -> Option<String> {
        let log = self.log_text();
        let line = log.lines().find(|l| l.contains(what))?;
        let at = line.find("address=")? + "address=".len();
        Some(line[at..].split_whitespace().next()?.to_string())
    }

    /// The operator's log so far, for assertion messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A controller context in the test's own process, with the settings a test operator in `ns`
/// runs with, so what a reconcile in the test applies is what that operator applies. For
/// handing a reconcile an object as an older cache would, which the running operator does only
/// by chance.
pub fn in_process_context(client: &Client, ns: &str) -> Context<DriverAdmin> {
    #[derive(Parser)]
    struct Run {
        #[command(flatten)]
        options: RunOptions,
    }
    let run = Run::parse_from(std::iter::once("run").chain(controller_args(ns)));
    let admin = DriverAdmin::new(Timeouts::default());
    Context::new(client.clone(), admin, run.options.settings(), Some("in-process-test".into()))
}
