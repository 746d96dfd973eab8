//! The `archive-oplog` subcommand as a process: the plan, the secrets, SIGTERM.

use std::process::ExitCode;

use super::archiver::{ArchivePlan, run};
use crate::backup::command::JobArgs;
use crate::backup::files::SecretFiles;

/// Archives the oplog until SIGTERM: exit 0 after a clean stop (what was committed by then is
/// archived), 1 when it cannot start (a plan or secret it cannot read).
pub fn archive_oplog(args: JobArgs) -> ExitCode {
    let mut plan: ArchivePlan = match serde_json::from_str(&args.plan) {
        Ok(plan) => plan,
        Err(error) => {
            tracing::error!(%error, "the archiver's plan is not valid");
            return ExitCode::FAILURE;
        }
    };
    let secrets = SecretFiles::new(&args.secrets_dir);
    plan.members = plan.members.into_iter().map(|m| m.resolved(&secrets)).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&plan, &secrets, crate::runtime::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "the archiver stopped");
            ExitCode::FAILURE
        }
    }
}
