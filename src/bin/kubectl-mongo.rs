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
        Command::Completion { .. } => ExitCode::SUCCESS,
    }
}
