//! The only code that talks to mongod: the [`MongoAdmin`] trait, and [`DriverAdmin`], its
//! implementation on the `mongodb` driver.
//!
//! # Connections
//! The operator talks to each member directly (`directConnection=true`), by the member's DNS
//! name (`<pod>.<headless Service>.<namespace>.svc.<domain>`), which the headless Service
//! publishes as soon as the Pod has an IP, ready or not: so it can reach a member that is not
//! initiated yet (the driver's "RSGhost", never selectable in a replica-set topology), and
//! check a member's TLS certificate against the name it meant to reach.
//!
//! # The first credential
//! Authentication is on from mongod's first start (keyFile + SCRAM), and the operator never
//! execs into Pods, so the localhost exception (which needs a loopback connection inside the
//! Pod) is out of reach. Instead the operator authenticates as the internal user
//! `__system@local`, whose SCRAM credentials mongod derives from the keyFile: the password is
//! the keyFile's contents without whitespace. The operator generated that keyFile and keeps it
//! in a Secret, so it needs no other bootstrap secret. It uses `__system` only to initiate the
//! set and create its own administrative user (`mongo-operator-admin`, a generated password in
//! the same Secret); every later command uses that user. `__system` stays available as the
//! recovery path if the admin user is ever lost.

mod driver;
mod error;
pub mod handshake;
mod observe;
mod types;

use std::fmt;
use std::future::Future;

pub use driver::{DriverAdmin, IDLE_CLIENT, Timeouts};
pub use error::AdminError;
pub use observe::{Observation, Reachable, observe};
pub use types::{Fcv, Hello, ReplSetStatus, Role, StatusMember, UserInfo};

use crate::replset::ReplSetConfig;

/// The internal user whose password is the keyFile.
pub const SYSTEM_USER: &str = "__system";
/// The database of the internal user.
pub const SYSTEM_USER_DB: &str = "local";
/// The operator's own administrative user.
pub const OPERATOR_USER: &str = "mongo-operator-admin";

/// SCRAM-SHA-256 credentials. The password never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub username: String,
    /// Authentication database.
    pub source: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// SCRAM-SHA-256 credentials (the only mechanism the operator uses).
    pub fn scram(username: &str, source: &str, password: &str) -> Credentials {
        Credentials { username: username.into(), source: source.into(), password: password.into() }
    }

    /// The internal `__system@local` user, from the keyFile's contents.
    pub fn from_key_file(key_file: &str) -> Credentials {
        Credentials {
            username: SYSTEM_USER.to_string(),
            source: SYSTEM_USER_DB.to_string(),
            password: key_file.chars().filter(|c| !c.is_whitespace()).collect(),
        }
    }
}

/// One member to talk to: its address (DNS name and port) and who to log in as.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// `host:port`.
    pub address: String,
    /// None for commands that need no authentication (`hello`).
    pub credentials: Option<Credentials>,
    /// The CA file to verify the member's certificate with, when it is dialled over TLS (the
    /// name dialled is checked against the certificate too); None for plain text.
    pub tls: Option<std::path::PathBuf>,
}

/// A user to create or update.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRequest {
    pub db: String,
    pub name: String,
    /// None on update keeps the current password.
    pub password: Option<String>,
    /// None on update keeps the current roles.
    pub roles: Option<Vec<Role>>,
}

impl fmt::Debug for UserRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRequest")
            .field("db", &self.db)
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("roles", &self.roles)
            .finish()
    }
}

/// Everything the operator asks of mongod.
pub trait MongoAdmin: Send + Sync {
    /// `hello`; needs no credentials.
    fn hello(&self, target: &Target) -> impl Future<Output = Result<Hello, AdminError>> + Send;
    /// `replSetGetStatus`.
    fn status(&self, target: &Target) -> impl Future<Output = Result<ReplSetStatus, AdminError>> + Send;
    /// `replSetGetConfig`; with `commitment`, also whether it is committed (primary only).
    fn config(
        &self,
        target: &Target,
        commitment: bool,
    ) -> impl Future<Output = Result<(ReplSetConfig, Option<bool>), AdminError>> + Send;
    /// `replSetInitiate`.
    fn initiate(&self, target: &Target, config: &ReplSetConfig) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// `replSetReconfig` (never `force`).
    fn reconfig(&self, target: &Target, config: &ReplSetConfig) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// `replSetStepDown`, refusing when no electable secondary catches up within `catch_up_secs`.
    fn step_down(
        &self,
        target: &Target,
        step_down_secs: u32,
        catch_up_secs: u32,
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// `usersInfo` of one database.
    fn users(&self, target: &Target, db: &str) -> impl Future<Output = Result<Vec<UserInfo>, AdminError>> + Send;
    /// `usersInfo: {forAllDBs: true}`: every user of every database.
    fn all_users(&self, target: &Target) -> impl Future<Output = Result<Vec<UserInfo>, AdminError>> + Send;
    /// `createUser` with SCRAM-SHA-256.
    fn create_user(&self, target: &Target, user: &UserRequest) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// `updateUser`: password and/or roles.
    fn update_user(&self, target: &Target, user: &UserRequest) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// `dropUser`.
    fn drop_user(&self, target: &Target, db: &str, name: &str) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// Names of the databases that hold data (`listDatabases` with `nameOnly`).
    fn database_names(&self, target: &Target) -> impl Future<Output = Result<Vec<String>, AdminError>> + Send;
    /// `buildInfo.version`.
    fn server_version(&self, target: &Target) -> impl Future<Output = Result<String, AdminError>> + Send;
    /// The member's `tlsMode` server parameter (`getParameter`).
    fn tls_mode(&self, target: &Target) -> impl Future<Output = Result<crate::api::TlsMode, AdminError>> + Send;
    /// `setParameter tlsMode` at run time (mongod allows allowTLS → preferTLS → requireTLS only).
    fn set_tls_mode(
        &self,
        target: &Target,
        mode: crate::api::TlsMode,
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// `rotateCertificates`: the member reads its certificate files again, for new connections.
    fn rotate_certificates(&self, target: &Target) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// The SHA-256 fingerprint (hex) of the certificate a member presents to a new TLS
    /// connection, verified as every connection is (the target's CA, the name dialled).
    fn presented_certificate(&self, target: &Target) -> impl Future<Output = Result<String, AdminError>> + Send;
    /// The featureCompatibilityVersion document.
    fn feature_compatibility_version(&self, target: &Target) -> impl Future<Output = Result<Fcv, AdminError>> + Send;
    /// The `w` of the cluster-wide default write concern (`getDefaultRWConcern`), as text
    /// ("majority", "1"); None while none is set (its source is `implicit`).
    fn default_write_concern(&self, target: &Target)
    -> impl Future<Output = Result<Option<String>, AdminError>> + Send;
    /// `setDefaultRWConcern` with this default write concern.
    fn set_default_write_concern(
        &self,
        target: &Target,
        writes: crate::api::DefaultWriteConcern,
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// `setFeatureCompatibilityVersion`; `confirm` is required by 7.0+ and refused by 6.0.
    fn set_feature_compatibility_version(
        &self,
        target: &Target,
        version: &str,
        confirm: bool,
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
}
