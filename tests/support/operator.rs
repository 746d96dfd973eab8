//! The real operator binary, run as a process against the local control plane, limited to one
//! test's namespace so tests running side by side do not share an operator.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::{Child, Command};

/// A running operator; killed when dropped. Its log is kept in `target/test-logs/`.
pub struct Operator {
    pub child: Child,
    pub log: PathBuf,
}

impl Operator {
    pub fn start(ns: &str) -> Operator {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("operator-logs");
        std::fs::create_dir_all(&dir).expect("log dir");
        let log = dir.join(format!("{ns}.log"));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("open operator log");
        let child = Command::new(env!("CARGO_BIN_EXE_mongo-operator"))
            .args(["run", "--log-format", "text", "--log-level", "info,mongo_operator=debug", "--namespace", ns])
            .args(["--image", "mongo-operator:test"])
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

    /// The operator's log so far, for assertion messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
