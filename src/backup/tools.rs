//! Running mongodump and mongorestore: arguments, the password handed over in a private
//! config file (never on the command line, where `ps` would show it), and the last lines of
//! their error output kept for the failure message.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use super::plan::Source;

/// How many lines of a tool's error output a failure message quotes.
const STDERR_TAIL_LINES: usize = 12;

/// Where the MongoDB tools are.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The mongodump program.
    pub mongodump: PathBuf,
    /// The mongorestore program.
    pub mongorestore: PathBuf,
}

impl Default for Tools {
    /// Found on `PATH`, as in the MongoDB image.
    fn default() -> Self {
        Self { mongodump: "mongodump".into(), mongorestore: "mongorestore".into() }
    }
}

/// A running tool.
pub struct ToolProcess {
    /// The child; stdin or stdout is taken by the caller.
    pub child: Child,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    // Kept alive until the tool exits: it holds the password.
    _config: Option<tempfile::NamedTempFile>,
}

impl ToolProcess {
    /// Starts `program` against `source`, with `args` after the connection arguments. The
    /// tool's error output is passed through to ours and its last lines are kept.
    pub fn spawn(
        program: &PathBuf,
        source: &Source,
        password: Option<&str>,
        args: &[String],
        stdin: bool,
        stdout: bool,
    ) -> std::io::Result<Self> {
        let mut command = Command::new(program);
        command.arg(format!("--uri={}", source.uri));
        let mut config = None;
        if let Some(username) = &source.username {
            // SCRAM-SHA-256 named, not negotiated: the only mechanism the operator's users have,
            // and the only one `__system` has since MongoDB 5.3.
            command
                .arg(format!("--username={username}"))
                .arg(format!("--authenticationDatabase={}", source.auth_source))
                .arg("--authenticationMechanism=SCRAM-SHA-256");
            if let Some(password) = password {
                let mut file = tempfile::Builder::new().prefix("mongo-tool-").suffix(".yaml").tempfile()?;
                file.write_all(config_yaml(password).as_bytes())?;
                file.flush()?;
                command.arg(format!("--config={}", file.path().display()));
                config = Some(file);
            }
        }
        command
            .args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(if stdout { Stdio::piped() } else { Stdio::null() })
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|error| {
            std::io::Error::new(error.kind(), format!("cannot start {}: {error}", program.display()))
        })?;
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_reader = child.stderr.take().map(|stderr| {
            let tail = stderr_tail.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("{line}");
                    if let Ok(mut tail) = tail.lock() {
                        if tail.len() == STDERR_TAIL_LINES {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                }
            })
        });
        Ok(Self { child, stderr_tail, stderr_reader, _config: config })
    }

    /// Waits for the tool to exit.
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait()
    }

    /// Stops the tool at once (the backup was cancelled, or a destination failed).
    pub fn kill(&mut self) {
        // An error means it has already exited, which is what was wanted.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The tool's last lines of error output, for a failure message. Call it after the tool
    /// exited: it waits for the reader to take in the last lines.
    pub fn stderr_tail(&mut self) -> String {
        if let Some(reader) = self.stderr_reader.take() {
            // The pipe closes when the tool exits, which ends the reader.
            let _ = reader.join();
        }
        self.stderr_tail.lock().map(|tail| tail.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default()
    }
}

/// The tools' YAML config file holding the password: quoted so that any character survives.
fn config_yaml(password: &str) -> String {
    let quoted = serde_json::to_string(password).unwrap_or_default();
    format!("password: {quoted}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_with_yaml_specials_survives_the_config_file() {
        let password = "p: #'\"\\ x";
        let yaml = config_yaml(password);
        let parsed: std::collections::BTreeMap<String, String> = serde_yaml::from_str(&yaml).expect("yaml");
        assert_eq!(parsed["password"], password);
    }
}
