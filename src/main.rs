//! The `mongo-operator` binary: one image, several roles, chosen by subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mongo_operator::{api, backup, install, probe, runtime, telemetry};

#[derive(Parser)]
#[command(name = "mongo-operator", version, about = "Runs MongoDB replica sets on Kubernetes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers against the cluster in the current kube context (or in-cluster).
    Run {
        /// Log format.
        #[arg(long, value_enum, default_value_t, env = "MONGO_OPERATOR_LOG_FORMAT")]
        log_format: telemetry::LogFormat,
        /// Log level or filter, as in RUST_LOG (which overrides it).
        #[arg(long, default_value = "info", env = "MONGO_OPERATOR_LOG_LEVEL")]
        log_level: String,
        // Boxed: the options are far larger than any other subcommand's.
        #[command(flatten)]
        options: Box<runtime::RunOptions>,
    },
    /// Check the local mongod for a container probe: exit 0 when it passes, 1 when it does not.
    Probe {
        /// Which check.
        #[arg(value_enum)]
        probe: probe::Probe,
        /// mongod's address.
        #[arg(long, default_value = "127.0.0.1:27017")]
        address: String,
        /// Give up after this many milliseconds (keep it below the probe's timeoutSeconds).
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
        /// The keyFile, read only when `hello` cannot tell a never-initiated member from a
        /// REMOVED one (the probe then logs in as `__system` for `replSetGetStatus`).
        #[arg(long, default_value = mongo_operator::build::statefulset::KEY_FILE)]
        key_file: PathBuf,
        /// Dial mongod over TLS, verifying its certificate with these CAs (PEM).
        #[arg(long)]
        tls_ca_file: Option<PathBuf>,
    },
    /// Prepare a mongod or backup Pod (the init container): copy this binary and the keyFile.
    Install {
        /// Directory (an emptyDir) to copy this binary into.
        #[arg(long)]
        bin_dir: PathBuf,
        /// The keyFile as mounted from its Secret.
        #[arg(long, requires = "key_file_dst")]
        key_file_src: Option<PathBuf>,
        /// Where mongod reads the keyFile (an emptyDir); written with mode 0400.
        #[arg(long, requires = "key_file_src")]
        key_file_dst: Option<PathBuf>,
    },
    /// Take a backup (inside a backup Job): mongodump's archive, compressed, optionally
    /// encrypted and checksummed, into every destination; the manifest last.
    Backup {
        /// Log level or filter.
        #[arg(long, default_value = "info", env = "MONGO_OPERATOR_LOG_LEVEL")]
        log_level: String,
        #[command(flatten)]
        args: backup::command::JobArgs,
    },
    /// Restore a backup (inside a restore Job): stream it into mongorestore, checked on the way.
    Restore {
        /// Log level or filter.
        #[arg(long, default_value = "info", env = "MONGO_OPERATOR_LOG_LEVEL")]
        log_level: String,
        #[command(flatten)]
        args: backup::command::JobArgs,
    },
    /// Delete stored backups (inside a prune Job): the copies retention no longer keeps.
    Prune {
        /// Log level or filter.
        #[arg(long, default_value = "info", env = "MONGO_OPERATOR_LOG_LEVEL")]
        log_level: String,
        #[command(flatten)]
        args: backup::command::JobArgs,
    },
    /// Verify a backup (inside a verification Job): restore each copy into the Pod's
    /// throwaway mongod and compare it with what the backup recorded.
    Verify {
        /// Log level or filter.
        #[arg(long, default_value = "info", env = "MONGO_OPERATOR_LOG_LEVEL")]
        log_level: String,
        #[command(flatten)]
        args: backup::command::JobArgs,
    },
    /// Archive the oplog for point-in-time recovery (the archiver's Deployment): tail it on
    /// one member and write a chunk of majority-committed entries to every destination every
    /// span, continuing exactly after the last entry archived.
    ArchiveOplog {
        /// Log level or filter.
        #[arg(long, default_value = "info", env = "MONGO_OPERATOR_LOG_LEVEL")]
        log_level: String,
        #[command(flatten)]
        args: backup::command::JobArgs,
    },
    /// Print the CustomResourceDefinitions as one multi-document YAML stream.
    Crd {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    mongo_operator::tls::install_crypto_provider();
    match cli.command {
        Command::Crd { dir } => print_crds(dir),
        Command::Backup { log_level, args } => {
            let _ = telemetry::init(telemetry::LogFormat::Text, &log_level);
            backup::command::run(backup::command::Job::Backup, args)
        }
        Command::Restore { log_level, args } => {
            let _ = telemetry::init(telemetry::LogFormat::Text, &log_level);
            backup::command::run(backup::command::Job::Restore, args)
        }
        Command::Prune { log_level, args } => {
            let _ = telemetry::init(telemetry::LogFormat::Text, &log_level);
            backup::command::run(backup::command::Job::Prune, args)
        }
        Command::Verify { log_level, args } => {
            let _ = telemetry::init(telemetry::LogFormat::Text, &log_level);
            backup::command::run(backup::command::Job::Verify, args)
        }
        Command::ArchiveOplog { log_level, args } => {
            let _ = telemetry::init(telemetry::LogFormat::Text, &log_level);
            mongo_operator::pitr::command::archive_oplog(args)
        }
        Command::Install { bin_dir, key_file_src, key_file_dst } => {
            run_install(&bin_dir, key_file_src.zip(key_file_dst))
        }
        Command::Probe { probe, address, timeout_ms, key_file, tls_ca_file } => {
            let target = probe::ProbeTarget { address, key_file, tls_ca_file };
            run_probe(probe, &target, std::time::Duration::from_millis(timeout_ms))
        }
        Command::Run { log_format, log_level, options } => {
            let log_level = std::sync::Arc::new(telemetry::init(log_format, &log_level));
            let telemetry = runtime::Telemetry {
                metrics: Default::default(),
                readiness: Default::default(),
                log_level: Some(log_level),
            };
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(error) => {
                    eprintln!("cannot start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let result = rt.block_on(async {
                let connection = runtime::connect().await?;
                runtime::run(connection, *options, telemetry, runtime::shutdown_signal()).await
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "mongo-operator cannot run");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn print_crds(dir: Option<PathBuf>) -> ExitCode {
    let result = match dir {
        None => api::crds_yaml().map(|yaml| print!("{yaml}")).map_err(|e| e.to_string()),
        Some(dir) => api::write_crd_files(&dir).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cannot write the CRDs: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_probe(which: probe::Probe, target: &probe::ProbeTarget, timeout: std::time::Duration) -> ExitCode {
    mongo_operator::tls::install_crypto_provider();
    // A current-thread runtime: the probe runs every few seconds in every mongod container, so
    // it starts no worker threads.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("probe: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(probe::run(which, target, timeout)) {
        Ok(why) => {
            println!("{why}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("{why}");
            ExitCode::FAILURE
        }
    }
}

fn run_install(bin_dir: &std::path::Path, key_file: Option<(PathBuf, PathBuf)>) -> ExitCode {
    let result = install::install_binary(bin_dir).and_then(|bin| {
        println!("installed {}", bin.display());
        if let Some((src, dst)) = key_file {
            install::install_key_file(&src, &dst)?;
            println!("installed keyFile {} (mode 0400)", dst.display());
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("install: {error}");
            ExitCode::FAILURE
        }
    }
}
