//! `mongo-replset-sim`: runs simulated replica-set members on loopback addresses, with an HTTP
//! control interface for fault injection. Test infrastructure; see the library docs for what it
//! does not simulate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use mongo_replset_sim::{CommandLog, Options, Sim, control};

#[derive(Parser)]
#[command(name = "mongo-replset-sim", about = "A MongoDB replica-set simulator for tests")]
struct Args {
    /// Address of the HTTP control interface.
    #[arg(long, default_value = "127.0.0.1:27100")]
    control: SocketAddr,
    /// Replica-set name (`--replSet` of every member).
    #[arg(long, default_value = "rs0")]
    repl_set: String,
    /// File holding the keyFile contents (the `__system@local` password).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Server version members report.
    #[arg(long, default_value = "8.0.4")]
    server_version: String,
    /// Election timeout in milliseconds (10000 on a real server).
    #[arg(long, default_value_t = 10_000)]
    election_timeout_ms: u64,
    /// Heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 500)]
    heartbeat_ms: u64,
    /// Initial sync / recovery time of a member, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    initial_sync_ms: u64,
    /// Members to start with: NAME=HOST@LISTEN, for example db-0=db-0.db.ns.svc.cluster.local:27017@127.100.0.5:27017.
    #[arg(long = "member")]
    members: Vec<String>,
    /// Append every command received, as JSON lines, to this file.
    #[arg(long)]
    command_log: Option<PathBuf>,
    /// Address of a FerretDB that holds the set's data (a set that holds data).
    #[arg(long)]
    data: Option<String>,
    /// mongod's `net.tls.mode` for every member: disabled, allowTLS, preferTLS or requireTLS.
    #[arg(long, default_value = "disabled")]
    tls_mode: String,
    /// mongod's `net.tls.certificateKeyFile`: the members' key and certificate in one PEM file.
    #[arg(long)]
    tls_certificate_key_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let key_file = match &args.key_file {
        Some(p) => std::fs::read_to_string(p)?,
        None => String::new(),
    };
    let opts = Options {
        set_name: args.repl_set,
        key_file,
        server_version: args.server_version,
        election_timeout: Duration::from_millis(args.election_timeout_ms),
        heartbeat_interval: Duration::from_millis(args.heartbeat_ms),
        initial_sync: Duration::from_millis(args.initial_sync_ms),
        data: args.data,
        ..Options::default()
    };
    let mode = mongo_replset_sim::tls::TlsMode::parse(&args.tls_mode).ok_or("--tls-mode: not a mode mongod has")?;
    let pem = match &args.tls_certificate_key_file {
        Some(p) => std::fs::read_to_string(p)?,
        None if mode == mongo_replset_sim::tls::TlsMode::Disabled => String::new(),
        None => return Err("--tls-mode needs --tls-certificate-key-file".into()),
    };
    let tls = mongo_replset_sim::tls::MemberTls::new(mode, &pem)?;
    let log = args.command_log.as_deref().map(CommandLog::create).transpose()?;
    let sim = Sim::start(opts, log);
    for spec in &args.members {
        let (name, rest) = spec.split_once('=').ok_or("--member needs NAME=HOST@LISTEN")?;
        let (host, listen) = rest.rsplit_once('@').ok_or("--member needs NAME=HOST@LISTEN")?;
        let addr = sim.add_member(name, host, listen.parse()?).await?;
        sim.set_tls(name, tls.clone());
        tracing::info!(%name, %host, %addr, "member listening");
    }
    let listener = tokio::net::TcpListener::bind(args.control).await?;
    eprintln!("mongo-replset-sim: control interface on http://{}", listener.local_addr()?);
    axum::serve(listener, control::router(sim))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
