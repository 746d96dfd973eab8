//! [`MongoAdmin`] on the `mongodb` driver: one small client per member and user, direct
//! connections, short explicit timeouts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mongodb::bson::{Bson, Document, doc};
use mongodb::options::{AuthMechanism, ClientOptions, Credential, ServerAddress, Tls, TlsOptions};

use super::{AdminError, Credentials, Fcv, Hello, MongoAdmin, ReplSetStatus, Target, UserInfo, UserRequest};
use crate::replset::ReplSetConfig;

/// Timeouts of every call; none is left to the driver's defaults (30 s and more).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// Waiting for the member to be selectable (reachable and, with credentials, logged in).
    pub server_selection: Duration,
    /// A whole command, as seen from the operator.
    pub command: Duration,
    /// `maxTimeMS` of `replSetReconfig`: how long the server may wait for the previous config
    /// to commit before answering 308.
    pub reconfig: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            server_selection: Duration::from_secs(3),
            command: Duration::from_secs(15),
            reconfig: Duration::from_secs(5),
        }
    }
}

/// How long a member's client is kept after its last use. A driver client monitors its server
/// (a `hello` every 10 s) for as long as it lives: kept for ever, the clients of a cluster
/// nobody changes would keep talking to its members, and those of Pods that got another IP to
/// addresses that are gone. A cluster that is being worked on is looked at every few seconds,
/// well within this.
pub const IDLE_CLIENT: Duration = Duration::from_secs(30);

type ClientKey = (String, Option<String>, Option<std::path::PathBuf>);

/// The driver-backed admin layer.
pub struct DriverAdmin {
    timeouts: Timeouts,
    clients: Mutex<HashMap<ClientKey, (mongodb::Client, Instant)>>,
}

impl DriverAdmin {
    pub fn new(timeouts: Timeouts) -> DriverAdmin {
        DriverAdmin { timeouts, clients: Mutex::new(HashMap::new()) }
    }

    /// Drops the clients not used for `idle` (their monitors stop with them); returns how many.
    pub fn drop_idle(&self, idle: Duration) -> usize {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let before = clients.len();
        clients.retain(|_, (_, used)| used.elapsed() < idle);
        before - clients.len()
    }

    /// How many member clients are kept now.
    pub fn clients(&self) -> usize {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The cache key of a member and user: the full credentials (kept in memory only), so a
    /// rotated password gets a new client.
    fn key(target: &Target) -> ClientKey {
        (
            target.address.clone(),
            target.credentials.as_ref().map(|c| format!("{}@{}\u{0}{}", c.username, c.source, c.password)),
            target.tls.clone(),
        )
    }

    /// A client for one member and user; creating it does no I/O.
    fn client(&self, target: &Target) -> Result<mongodb::Client, AdminError> {
        let key = Self::key(target);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((c, used)) = clients.get_mut(&key) {
            *used = Instant::now();
            return Ok(c.clone());
        }
        let host = ServerAddress::parse(&target.address)
            .map_err(|e| AdminError::Unreachable(format!("bad address {}: {e}", target.address)))?;
        let mut options = ClientOptions::builder()
            .hosts(vec![host])
            .direct_connection(true)
            .connect_timeout(self.timeouts.connect)
            .server_selection_timeout(self.timeouts.server_selection)
            .app_name("mongo-operator".to_string())
            .max_pool_size(2)
            .retry_writes(false)
            .retry_reads(false)
            .build();
        options.credential = target.credentials.as_ref().map(credential);
        // Verified against the cluster's CAs and the member's name; never with invalid
        // certificates or names allowed.
        options.tls =
            target.tls.as_ref().map(|ca| Tls::Enabled(TlsOptions::builder().ca_file_path(ca.clone()).build()));
        let client = mongodb::Client::with_options(options).map_err(AdminError::from)?;
        clients.insert(key, (client.clone(), Instant::now()));
        Ok(client)
    }

    /// Forgets cached clients of `address` (for example after its Pod was replaced).
    pub fn forget(&self, address: &str) {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).retain(|(a, _, _), _| a != address);
    }

    async fn users_info(&self, target: &Target, db: &str, command: Document) -> Result<Vec<UserInfo>, AdminError> {
        let reply = self.run(target, db, command).await?;
        let users = reply.get_array("users").map_err(|e| AdminError::UnexpectedReply(format!("usersInfo: {e}")))?;
        users
            .iter()
            .map(|u| match u {
                Bson::Document(d) => decode(d.clone(), "user"),
                other => Err(AdminError::UnexpectedReply(format!("usersInfo entry {other}"))),
            })
            .collect()
    }

    async fn run(&self, target: &Target, db: &str, command: Document) -> Result<Document, AdminError> {
        let client = self.client(target)?;
        let name = command.keys().next().cloned().unwrap_or_default();
        let database = client.database(db);
        match tokio::time::timeout(self.timeouts.command, database.run_command(command)).await {
            Ok(Err(error)) => {
                let error = AdminError::from(error);
                if matches!(error, AdminError::AuthenticationFailed(_) | AdminError::Unauthorized(_)) {
                    // The driver keeps a server whose handshake failed authentication marked
                    // unusable until its next heartbeat (10 s): a client whose credentials
                    // failed is dropped, so the next attempt (the user was just created, or
                    // its password reset) starts afresh. Unauthorized likewise: its pooled
                    // connections may have logged in as a user since dropped (a restore), and
                    // a new one logs in again or fails to.
                    self.clients.lock().unwrap_or_else(|e| e.into_inner()).remove(&Self::key(target));
                }
                Err(error)
            }
            Ok(result) => result.map_err(AdminError::from),
            Err(_) => Err(AdminError::Unreachable(format!(
                "{name} on {} took longer than {:?}",
                target.address, self.timeouts.command
            ))),
        }
    }
}

fn credential(c: &Credentials) -> Credential {
    Credential::builder()
        .username(c.username.clone())
        .password(c.password.clone())
        .source(c.source.clone())
        .mechanism(AuthMechanism::ScramSha256)
        .build()
}

fn decode<T: serde::de::DeserializeOwned>(doc: Document, what: &str) -> Result<T, AdminError> {
    mongodb::bson::from_document(doc).map_err(|e| AdminError::UnexpectedReply(format!("{what}: {e}")))
}

fn config_document(config: &ReplSetConfig) -> Result<Document, AdminError> {
    config.to_document().map_err(|e| AdminError::UnexpectedReply(format!("cannot encode config: {e}")))
}

fn roles(user: &UserRequest) -> Option<Bson> {
    user.roles
        .as_ref()
        .map(|roles| Bson::Array(roles.iter().map(|r| Bson::Document(doc! { "role": &r.role, "db": &r.db })).collect()))
}

impl MongoAdmin for DriverAdmin {
    async fn hello(&self, target: &Target) -> Result<Hello, AdminError> {
        let unauthenticated = Target { credentials: None, ..target.clone() };
        decode(self.run(&unauthenticated, "admin", doc! { "hello": 1 }).await?, "hello")
    }

    async fn status(&self, target: &Target) -> Result<ReplSetStatus, AdminError> {
        decode(self.run(target, "admin", doc! { "replSetGetStatus": 1 }).await?, "replSetGetStatus")
    }

    async fn config(&self, target: &Target, commitment: bool) -> Result<(ReplSetConfig, Option<bool>), AdminError> {
        let mut command = doc! { "replSetGetConfig": 1 };
        if commitment {
            command.insert("commitmentStatus", true);
        }
        let reply = self.run(target, "admin", command).await?;
        let committed = reply.get_bool("commitmentStatus").ok();
        let config =
            reply.get_document("config").map_err(|e| AdminError::UnexpectedReply(format!("replSetGetConfig: {e}")))?;
        Ok((decode(config.clone(), "replica set config")?, committed))
    }

    async fn initiate(&self, target: &Target, config: &ReplSetConfig) -> Result<(), AdminError> {
        self.run(target, "admin", doc! { "replSetInitiate": config_document(config)? }).await.map(|_| ())
    }

    async fn reconfig(&self, target: &Target, config: &ReplSetConfig) -> Result<(), AdminError> {
        let max_time = i64::try_from(self.timeouts.reconfig.as_millis()).unwrap_or(i64::MAX);
        self.run(target, "admin", doc! { "replSetReconfig": config_document(config)?, "maxTimeMS": max_time })
            .await
            .map(|_| ())
    }

    async fn step_down(&self, target: &Target, step_down_secs: u32, catch_up_secs: u32) -> Result<(), AdminError> {
        let command = doc! { "replSetStepDown": i64::from(step_down_secs), "secondaryCatchUpPeriodSecs": i64::from(catch_up_secs) };
        self.run(target, "admin", command).await.map(|_| ())
    }

    async fn users(&self, target: &Target, db: &str) -> Result<Vec<UserInfo>, AdminError> {
        self.users_info(target, db, doc! { "usersInfo": 1 }).await
    }

    async fn all_users(&self, target: &Target) -> Result<Vec<UserInfo>, AdminError> {
        self.users_info(target, "admin", doc! { "usersInfo": { "forAllDBs": true } }).await
    }

    async fn create_user(&self, target: &Target, user: &UserRequest) -> Result<(), AdminError> {
        let password =
            user.password.clone().ok_or_else(|| AdminError::UnexpectedReply("createUser needs a password".into()))?;
        let mut command = doc! { "createUser": &user.name, "pwd": password, "mechanisms": ["SCRAM-SHA-256"] };
        command.insert("roles", roles(user).unwrap_or(Bson::Array(Vec::new())));
        command.insert("writeConcern", doc! { "w": "majority", "wtimeout": 10_000 });
        self.run(target, &user.db, command).await.map(|_| ())
    }

    async fn update_user(&self, target: &Target, user: &UserRequest) -> Result<(), AdminError> {
        let mut command = doc! { "updateUser": &user.name };
        if let Some(password) = &user.password {
            command.insert("pwd", password.clone());
            command.insert("mechanisms", vec!["SCRAM-SHA-256"]);
        }
        if let Some(r) = roles(user) {
            command.insert("roles", r);
        }
        command.insert("writeConcern", doc! { "w": "majority", "wtimeout": 10_000 });
        self.run(target, &user.db, command).await.map(|_| ())
    }

    async fn drop_user(&self, target: &Target, db: &str, name: &str) -> Result<(), AdminError> {
        self.run(target, db, doc! { "dropUser": name, "writeConcern": { "w": "majority", "wtimeout": 10_000 } })
            .await
            .map(|_| ())
    }

    async fn database_names(&self, target: &Target) -> Result<Vec<String>, AdminError> {
        let reply = self.run(target, "admin", doc! { "listDatabases": 1, "nameOnly": true }).await?;
        let databases =
            reply.get_array("databases").map_err(|e| AdminError::UnexpectedReply(format!("listDatabases: {e}")))?;
        Ok(databases
            .iter()
            .filter_map(|d| d.as_document().and_then(|d| d.get_str("name").ok()).map(str::to_string))
            .collect())
    }

    async fn server_version(&self, target: &Target) -> Result<String, AdminError> {
        let reply = self.run(target, "admin", doc! { "buildInfo": 1 }).await?;
        reply.get_str("version").map(str::to_string).map_err(|e| AdminError::UnexpectedReply(format!("buildInfo: {e}")))
    }

    async fn tls_mode(&self, target: &Target) -> Result<crate::api::TlsMode, AdminError> {
        let reply = self.run(target, "admin", doc! { "getParameter": 1, "tlsMode": 1 }).await?;
        let value = reply.get_str("tlsMode").map_err(|e| AdminError::UnexpectedReply(format!("tlsMode: {e}")))?;
        crate::api::TlsMode::from_mongod(value)
            .ok_or_else(|| AdminError::UnexpectedReply(format!("tlsMode {value} is not one mongod has")))
    }

    async fn set_tls_mode(&self, target: &Target, mode: crate::api::TlsMode) -> Result<(), AdminError> {
        self.run(target, "admin", doc! { "setParameter": 1, "tlsMode": mode.mongod() }).await.map(|_| ())
    }

    async fn rotate_certificates(&self, target: &Target) -> Result<(), AdminError> {
        self.run(target, "admin", doc! { "rotateCertificates": 1, "message": "mongo-operator: renewed certificate" })
            .await
            .map(|_| ())
    }

    async fn presented_certificate(&self, target: &Target) -> Result<String, AdminError> {
        let within = self.timeouts.connect + self.timeouts.command;
        match tokio::time::timeout(within, super::handshake::presented(target)).await {
            Ok(result) => result,
            Err(_) => {
                Err(AdminError::Unreachable(format!("no TLS handshake with {} within {within:?}", target.address)))
            }
        }
    }

    async fn feature_compatibility_version(&self, target: &Target) -> Result<Fcv, AdminError> {
        let reply = self.run(target, "admin", doc! { "getParameter": 1, "featureCompatibilityVersion": 1 }).await?;
        let document = reply
            .get_document("featureCompatibilityVersion")
            .map_err(|e| AdminError::UnexpectedReply(format!("getParameter featureCompatibilityVersion: {e}")))?;
        decode(document.clone(), "featureCompatibilityVersion")
    }

    async fn default_write_concern(&self, target: &Target) -> Result<Option<String>, AdminError> {
        let reply = self.run(target, "admin", doc! { "getDefaultRWConcern": 1 }).await?;
        Ok(cluster_wide_w(&reply))
    }

    async fn set_default_write_concern(
        &self,
        target: &Target,
        writes: crate::api::DefaultWriteConcern,
    ) -> Result<(), AdminError> {
        // The command's own write (to `config.settings`) waits for a majority, at most 30 s:
        // with a data-bearing member down it fails, and the next reconcile tries again.
        let command = doc! {
            "setDefaultRWConcern": 1,
            "defaultWriteConcern": { "w": writes.w() },
            "writeConcern": { "w": "majority", "wtimeout": 30_000 },
        };
        self.run(target, "admin", command).await.map(|_| ())
    }

    async fn set_feature_compatibility_version(
        &self,
        target: &Target,
        version: &str,
        confirm: bool,
    ) -> Result<(), AdminError> {
        let mut command = doc! { "setFeatureCompatibilityVersion": version };
        if confirm {
            command.insert("confirm", true);
        }
        self.run(target, "admin", command).await.map(|_| ())
    }
}

/// The `w` of `getDefaultRWConcern`'s reply when the default is cluster-wide (source
/// `global`), as text: a string as it is, a number as its integer.
fn cluster_wide_w(reply: &Document) -> Option<String> {
    if reply.get_str("defaultWriteConcernSource").ok()? != "global" {
        return None;
    }
    match reply.get_document("defaultWriteConcern").ok()?.get("w")? {
        Bson::String(w) => Some(w.clone()),
        Bson::Int32(n) => Some(n.to_string()),
        Bson::Int64(n) => Some(n.to_string()),
        Bson::Double(n) => Some((*n as i64).to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod default_write_concern_tests {
    use super::*;

    #[test]
    fn only_a_cluster_wide_default_counts_and_its_w_reads_as_text() {
        let implicit =
            doc! { "defaultWriteConcern": { "w": "majority", "wtimeout": 0 }, "defaultWriteConcernSource": "implicit" };
        assert_eq!(cluster_wide_w(&implicit), None);
        // A PSA set without one: no `defaultWriteConcern` at all.
        assert_eq!(cluster_wide_w(&doc! { "defaultWriteConcernSource": "implicit" }), None);
        let majority =
            doc! { "defaultWriteConcern": { "w": "majority", "wtimeout": 0 }, "defaultWriteConcernSource": "global" };
        assert_eq!(cluster_wide_w(&majority).as_deref(), Some("majority"));
        let one = doc! { "defaultWriteConcern": { "w": 1_i64, "wtimeout": 0 }, "defaultWriteConcernSource": "global" };
        assert_eq!(cluster_wide_w(&one).as_deref(), Some("1"));
    }
}
