//! `kubectl mongo`: the kubectl plugin for clusters run by mongo-operator (on the PATH as
//! `kubectl-mongo`, kubectl finds it). It talks to the API server with the user's own
//! kubeconfig and RBAC, never the operator's.
//!
//! Exit codes: 0 when the command did what it says (for `status`, when the cluster is Ready),
//! 1 when `status` finds the cluster not Ready, 2 when the command could not run.

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;
use std::time::Duration;

use mongo_operator::plugin::{self, status};

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-mongo",
    bin_name = "kubectl mongo",
    version,
    about = "Day-to-day commands for MongoDB clusters run by mongo-operator"
)]
struct Cli {
    /// The namespace; the kubeconfig context's by default.
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// What a cluster is doing: phase and conditions, each member, version, TLS, the last
    /// backups and recent warnings. Exits 1 when the cluster is not Ready.
    Status {
        /// The MongoCluster.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// A one-off backup now, with the settings of the cluster's backup schedule (its stores,
    /// keys, compression and verification).
    Backup {
        /// The MongoCluster.
        name: String,
        /// Only to these of the schedule's destinations (repeat for several).
        #[arg(long = "to", value_name = "DESTINATION")]
        to: Vec<String>,
        /// Follow the backup (and its verification) to its end, a line per change; exit 1 if
        /// it fails.
        #[arg(long)]
        wait: bool,
        /// How long `--wait` follows it.
        #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
        timeout: u64,
    },
    /// Stop every change the operator would make to the cluster (`spec.paused: true`); the
    /// members keep running and the status is still reported.
    Pause {
        /// The MongoCluster.
        name: String,
    },
    /// Let the operator change the cluster again (`spec.paused: false`).
    Resume {
        /// The MongoCluster.
        name: String,
    },
    /// Restart members through the operator, in its rollout order: secondaries first, one at a
    /// time and each only when the others are healthy and caught up, the primary last after
    /// stepping down. No Pod is deleted by the plugin itself.
    Restart {
        /// The MongoCluster.
        name: String,
        /// Only this member (a Pod name or an ordinal).
        #[arg(long)]
        member: Option<String>,
        /// Follow the restart until every member named is back and ready; exit 1 if it is not
        /// done within the timeout.
        #[arg(long)]
        wait: bool,
        /// How long `--wait` follows it.
        #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
        timeout: u64,
    },
    /// Step the primary down: the operator does it once a secondary has caught up, and says
    /// what it did. Exits 1 if it refused (no other member can be primary).
    Stepdown {
        /// The MongoCluster.
        name: String,
        /// How long to wait for the operator's answer.
        #[arg(long, default_value_t = 120, value_name = "SECONDS")]
        timeout: u64,
    },
    /// The manifest of a new cluster created from a backup, with the backed-up cluster's
    /// settings (its Secrets left out): printed as YAML, or created with --apply.
    Restore {
        /// The new MongoCluster's name.
        new: String,
        /// The MongoBackup to restore: one backup, or with --point-in-time the schedule whose
        /// spec.pitr archives the oplog.
        #[arg(long, value_name = "BACKUP")]
        from: String,
        /// Members of the new cluster (the backed-up cluster's count by default).
        #[arg(long)]
        members: Option<i32>,
        /// Restore to a point in time: `latest`, or an RFC 3339 time to the second; every write
        /// before it is restored, none at or after it.
        #[arg(long, value_name = "TIME")]
        point_in_time: Option<String>,
        /// Create the cluster instead of printing its manifest.
        #[arg(long)]
        apply: bool,
    },
    /// A mongosh session on the primary through a port-forward, with a user's connection
    /// Secret and the cluster's CA; the password is never shown. Without mongosh (or with
    /// --print), prints the commands that do the same.
    Connect {
        /// The MongoCluster.
        name: String,
        /// A user of spec.users (its first user by default).
        #[arg(long)]
        user: Option<String>,
        /// Print the commands instead of running mongosh.
        #[arg(long)]
        print: bool,
        /// The local port of the port-forward (any free one by default).
        #[arg(long, default_value_t = 0)]
        local_port: u16,
    },
    /// The members' logs, each line prefixed with its Pod and container.
    Logs {
        /// The MongoCluster.
        name: String,
        /// Only this member (a Pod name or an ordinal).
        #[arg(long)]
        member: Option<String>,
        /// Only this container (mongod, exporter, ...).
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// The last lines of each log.
        #[arg(long, default_value_t = 200)]
        tail: i64,
    },
    /// A support bundle (.tar.gz) for an incident report: the cluster, its backups, its
    /// objects with every secret value removed, Events, member and operator logs.
    Report {
        /// The MongoCluster.
        name: String,
        /// Where to write it (`<name>-report-<time>.tar.gz` by default).
        #[arg(short = 'f', long)]
        file: Option<std::path::PathBuf>,
    },
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    Completion { shell: clap_complete::Shell },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Output {
    Text,
    Json,
    Yaml,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    mongo_operator::tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start: {e}")),
    };
    runtime.block_on(run(cli))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

async fn run(cli: Cli) -> ExitCode {
    if let Command::Completion { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut command, "kubectl-mongo", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let config = match kube::Config::infer().await {
        Ok(c) => c,
        Err(e) => return fail(&format!("no Kubernetes configuration: {e}")),
    };
    let namespace = cli.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client = match kube::Client::try_from(config) {
        Ok(c) => c,
        Err(e) => return fail(&format!("cannot reach Kubernetes: {e}")),
    };
    let pausing = matches!(cli.command, Command::Pause { .. });
    match cli.command {
        Command::Status { name, output } => {
            let report = match status::gather(&client, &namespace, &name).await {
                Ok(r) => r,
                Err(e) => return fail(&e.to_string()),
            };
            let text = match output {
                Output::Text => status::render(&report),
                Output::Json => serde_json::to_string_pretty(&report).map(|t| t + "\n").unwrap_or_default(),
                Output::Yaml => serde_yaml::to_string(&report).unwrap_or_default(),
            };
            print!("{text}");
            if report.ready { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Command::Backup { name, to, wait, timeout } => {
            let backup = match plugin::backup::request(&client, &namespace, &name, &to, chrono::Utc::now()).await {
                Ok(b) => b,
                Err(e) => return fail(&e.to_string()),
            };
            println!("mongobackup.mongo.operator.rs/{backup} created");
            if !wait {
                return ExitCode::SUCCESS;
            }
            match plugin::backup::follow(&client, &namespace, &backup, Duration::from_secs(timeout)).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Pause { name } | Command::Resume { name } => {
            let paused = pausing;
            match plugin::pause::set_paused(&client, &namespace, &name, paused).await {
                Ok(true) => {
                    println!("mongocluster.mongo.operator.rs/{name} {}", if paused { "paused" } else { "resumed" });
                    ExitCode::SUCCESS
                }
                Ok(false) => {
                    println!(
                        "mongocluster.mongo.operator.rs/{name} was already {}",
                        if paused { "paused" } else { "running" }
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&format!("MongoCluster {name}: {e}")),
            }
        }
        Command::Restart { name, member, wait, timeout } => {
            restart(&client, &namespace, &name, member.as_deref(), wait.then_some(Duration::from_secs(timeout))).await
        }
        Command::Stepdown { name, timeout } => stepdown(&client, &namespace, &name, Duration::from_secs(timeout)).await,
        Command::Restore { new, from, members, point_in_time, apply } => {
            let cluster =
                match plugin::restore::build(&client, &namespace, &new, &from, members, point_in_time.as_deref()).await
                {
                    Ok(c) => c,
                    Err(e) => return fail(&e.to_string()),
                };
            if apply {
                return match plugin::restore::apply(&client, &namespace, &cluster).await {
                    Ok(()) => {
                        println!(
                            "mongocluster.mongo.operator.rs/{new} created from {from}; `kubectl mongo status {new}` follows the restore"
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(&e.to_string()),
                };
            }
            match plugin::restore::to_yaml(&cluster) {
                Ok(yaml) => {
                    print!("{yaml}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Connect { name, user, print, local_port } => {
            let target = match plugin::connect::find(&client, &namespace, &name, user.as_deref()).await {
                Ok(t) => t,
                Err(e) => return fail(&e.to_string()),
            };
            if print || !plugin::connect::installed("mongosh") {
                if !print {
                    eprintln!(
                        "mongosh is not installed (https://www.mongodb.com/try/download/shell); these commands connect:"
                    );
                }
                let port = if local_port == 0 { 27017 } else { local_port };
                print!("{}", plugin::connect::commands(&target, port));
                return ExitCode::SUCCESS;
            }
            match plugin::connect::session(&client, &target, local_port).await {
                Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Logs { name, member, container, tail } => {
            logs(&client, &namespace, &name, member.as_deref(), container.as_deref(), tail).await
        }
        Command::Report { name, file } => report(&client, &namespace, &name, file).await,
        Command::Completion { .. } => ExitCode::SUCCESS,
    }
}

async fn restart(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    member: Option<&str>,
    wait: Option<Duration>,
) -> ExitCode {
    let (asked, paused) = match plugin::restart::request(client, namespace, name, member).await {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    println!("mongocluster.mongo.operator.rs/{name}: restart of {} requested", asked.pods.join(", "));
    if paused {
        println!("{name} is paused: the operator restarts nothing until `kubectl mongo resume {name}`");
        return ExitCode::SUCCESS;
    }
    let Some(timeout) = wait else { return ExitCode::SUCCESS };
    match plugin::restart::wait(client, namespace, name, &asked, timeout).await {
        Ok(true) => {
            println!("every member asked for has restarted and is ready");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("not done after {} s; `kubectl mongo status {name}` follows it", timeout.as_secs());
            ExitCode::from(1)
        }
        Err(e) => fail(&e.to_string()),
    }
}

async fn stepdown(client: &kube::Client, namespace: &str, name: &str, timeout: Duration) -> ExitCode {
    let (token, primary) = match plugin::stepdown::request(client, namespace, name, chrono::Utc::now()).await {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    println!("mongocluster.mongo.operator.rs/{name}: step-down of {primary} requested");
    match plugin::stepdown::answer(client, namespace, name, &token, timeout).await {
        Ok(Some(answer)) => {
            println!("{:?}: {}", answer.result, answer.message);
            if answer.result == mongo_operator::api::StepDownResult::Refused {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Ok(None) => {
            println!("no answer from the operator after {} s (is it running?)", timeout.as_secs());
            ExitCode::from(1)
        }
        Err(e) => fail(&e.to_string()),
    }
}

async fn logs(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    member: Option<&str>,
    container: Option<&str>,
    tail: i64,
) -> ExitCode {
    let pods = match plugin::common::member_pods(client, namespace, name, member).await {
        Ok(p) => p,
        Err(e) => return fail(&e.to_string()),
    };
    let mut failed = false;
    for pod in &pods {
        let pod_name = kube::ResourceExt::name_any(pod);
        for c in plugin::logs::containers(pod).iter().filter(|c| container.is_none_or(|w| w == c.as_str())) {
            match plugin::logs::read(client, namespace, &pod_name, c, Some(tail)).await {
                Ok(text) => print!("{}", plugin::logs::prefixed(&pod_name, c, &text)),
                Err(e) => {
                    eprintln!("error: {e}");
                    failed = true;
                }
            }
        }
    }
    if failed { ExitCode::from(2) } else { ExitCode::SUCCESS }
}

async fn report(client: &kube::Client, namespace: &str, name: &str, file: Option<std::path::PathBuf>) -> ExitCode {
    let (entries, summary) = match plugin::report::gather(client, namespace, name).await {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S");
    let root = format!("{name}-report-{stamp}");
    let path = file.unwrap_or_else(|| std::path::PathBuf::from(format!("{root}.tar.gz")));
    let bytes = match plugin::report::archive(&root, &entries) {
        Ok(b) => b,
        Err(e) => return fail(&e.to_string()),
    };
    // Logs and object specs are for the people handling the incident: readable by you alone.
    let written = {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(&path).and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
    };
    if let Err(e) = written {
        return fail(&format!("writing {}: {e}", path.display()));
    }
    println!(
        "wrote {} ({} files; {} secret value(s) redacted; {} item(s) not included, listed in its README.txt)",
        path.display(),
        summary.files,
        summary.redacted,
        summary.notes.len()
    );
    ExitCode::SUCCESS
}
