//! The `backup`, `restore`, `prune` and `verify` subcommands as processes: arguments, the plan, SIGTERM, and the
//! outcome written where Kubernetes keeps it (the termination message).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::files::{DEFAULT_SECRETS_DIR, SecretFiles};
use super::plan::{BackupPlan, Outcome, PrunePlan, RestorePlan, VerifyPlan};
use super::tools::Tools;

/// Arguments shared by `backup`, `restore`, `prune` and `verify`.
#[derive(Args, Debug, Clone)]
pub struct JobArgs {
    /// The plan, as JSON (the operator sets it in the Job).
    #[arg(long, env = "MONGO_OPERATOR_PLAN")]
    pub plan: String,
    /// Directory of the secret files (passwords, keys, store credentials).
    #[arg(long, env = "MONGO_OPERATOR_SECRETS_DIR", default_value = DEFAULT_SECRETS_DIR)]
    pub secrets_dir: PathBuf,
    /// Also write the outcome to this file; in a Job, the container's termination message.
    #[arg(long)]
    pub result_file: Option<PathBuf>,
    /// The mongodump program.
    #[arg(long, env = "MONGODUMP", default_value = "mongodump")]
    pub mongodump: PathBuf,
    /// The mongorestore program.
    #[arg(long, env = "MONGORESTORE", default_value = "mongorestore")]
    pub mongorestore: PathBuf,
}

/// Which of the two.
#[derive(Debug, Clone, Copy)]
pub enum Job {
    /// Take a backup.
    Backup,
    /// Restore one.
    Restore,
    /// Delete stored backups.
    Prune,
    /// Verify a backup.
    Verify,
}

/// Runs a backup, restore or prune to its end and reports the outcome: exit 0 only for a
/// complete backup (every copy and manifest written), a finished restore, or a prune that
/// ran (its outcome names what it could not delete).
pub fn run(job: Job, args: JobArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return report(&args, Outcome::Failed { error: format!("cannot start: {error}") }),
    };
    let outcome = runtime.block_on(execute(job, &args));
    report(&args, outcome)
}

async fn execute(job: Job, args: &JobArgs) -> Outcome {
    let secrets = SecretFiles::new(&args.secrets_dir);
    let tools = Tools { mongodump: args.mongodump.clone(), mongorestore: args.mongorestore.clone() };
    let result = match job {
        Job::Backup => match serde_json::from_str::<BackupPlan>(&args.plan) {
            Ok(mut plan) => {
                plan.source = plan.source.resolved(&secrets);
                super::take::take(&plan, &secrets, &tools, crate::runtime::shutdown_signal()).await.map_err(in_full)
            }
            Err(error) => Err(format!("the backup plan is not valid: {error}")),
        },
        Job::Restore => match serde_json::from_str::<RestorePlan>(&args.plan) {
            // A restore is not cancelled half-way by this process: mongorestore with --drop
            // is simply run again from the start by the Job's next attempt.
            Ok(mut plan) => {
                plan.target = plan.target.resolved(&secrets);
                super::restore::restore(&plan, &secrets, &tools).await.map_err(in_full)
            }
            Err(error) => Err(format!("the restore plan is not valid: {error}")),
        },
        Job::Verify => match serde_json::from_str::<VerifyPlan>(&args.plan) {
            Ok(plan) => super::verify::verify(&plan, &secrets, &tools).await.map_err(in_full),
            Err(error) => Err(format!("the verification plan is not valid: {error}")),
        },
        Job::Prune => match serde_json::from_str::<PrunePlan>(&args.plan) {
            Ok(plan) => Ok(super::prune::prune(&plan, &secrets).await),
            Err(error) => Err(format!("the prune plan is not valid: {error}")),
        },
    };
    result.unwrap_or_else(|error| Outcome::Failed { error })
}

/// The error as the outcome reports it, after logging it with its sources in full: a store's
/// response text stays in this process's log, out of the termination message (see
/// [`super::store::summary`]).
fn in_full<E: std::error::Error>(error: E) -> String {
    tracing::warn!(detail = ?error, "the failure in full");
    error.to_string()
}

fn report(args: &JobArgs, outcome: Outcome) -> ExitCode {
    let message = outcome.to_message();
    println!("{message}");
    if let Some(path) = &args.result_file
        && let Err(error) = std::fs::write(path, &message)
    {
        eprintln!("cannot write the result file {}: {error}", path.display());
    }
    match outcome {
        Outcome::Failed { error } => {
            tracing::error!(%error, "failed");
            ExitCode::FAILURE
        }
        // A verification that ran and found a copy wanting fails, so that the Job says so.
        Outcome::Verified { copies } if copies.iter().any(|c| !c.passed) => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    }
}
