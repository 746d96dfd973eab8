//! What a backup needs to know of the server before it starts: its version (for the manifest)
//! and roughly how much data it holds (to size the upload parts). Asking also proves early
//! that the address and credentials work, before any upload is started.

use std::time::Duration;

use mongodb::bson::{Document, doc};
use mongodb::options::{AuthMechanism, ClientOptions, Credential};

use super::plan::Source;

/// How long a backup or a restore looks for a server to ask: the driver's default, as the
/// tools wait (`serverSelectionTimeoutMS`); a member restarting is waited for.
const SELECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Facts about the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    /// `buildInfo.version`.
    pub version: Option<String>,
    /// `listDatabases.totalSize`: bytes on disk of all databases.
    pub data_bytes: u64,
}

/// A driver client for `source`, logged in as the tools are.
pub async fn client(
    source: &Source,
    password: Option<&str>,
    app: &str,
) -> Result<mongodb::Client, mongodb::error::Error> {
    client_waiting(source, password, app, SELECTION_TIMEOUT).await
}

/// A driver client for `source` whose operations give up once no server has answered for
/// `selection`.
pub async fn client_waiting(
    source: &Source,
    password: Option<&str>,
    app: &str,
    selection: Duration,
) -> Result<mongodb::Client, mongodb::error::Error> {
    let mut options = ClientOptions::parse(&source.uri).await?;
    options.server_selection_timeout = Some(selection);
    options.app_name = Some(app.into());
    if let Some(username) = &source.username {
        options.credential = Some(
            Credential::builder()
                .username(username.clone())
                .password(password.map(str::to_string))
                .source(source.auth_source.clone())
                .mechanism(AuthMechanism::ScramSha256)
                .build(),
        );
    }
    mongodb::Client::with_options(options)
}

/// Asks the source for its version and size.
pub async fn server_facts(source: &Source, password: Option<&str>) -> Result<ServerFacts, mongodb::error::Error> {
    let client = client(source, password, "mongo-operator-backup").await?;
    let admin = client.database("admin");
    let build_info: Document = admin.run_command(doc! { "buildInfo": 1 }).await?;
    let databases: Document = admin.run_command(doc! { "listDatabases": 1, "nameOnly": false }).await?;
    client.shutdown().await;
    Ok(ServerFacts {
        version: build_info.get_str("version").ok().map(str::to_string),
        data_bytes: number(&databases, "totalSize"),
    })
}

fn number(document: &Document, key: &str) -> u64 {
    match document.get(key) {
        Some(mongodb::bson::Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
        Some(mongodb::bson::Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
        Some(mongodb::bson::Bson::Double(n)) if *n > 0.0 => *n as u64,
        _ => 0,
    }
}
