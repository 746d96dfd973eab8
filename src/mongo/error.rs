//! Server errors, typed by the codes the operator reacts to.

use thiserror::Error;

/// What went wrong talking to a mongod.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum AdminError {
    /// 23: the set is already initiated (treated as success by callers that initiate).
    #[error("replica set already initialized")]
    AlreadyInitialized,
    /// 94: the member has no replica-set config yet.
    #[error("replica set not yet initialized")]
    NotYetInitialized,
    /// 93: the config document itself is invalid.
    #[error("invalid replica set config: {0}")]
    InvalidConfig(String),
    /// 103: the config cannot follow the current one.
    #[error("new replica set config is incompatible: {0}")]
    IncompatibleConfig(String),
    /// 308: the previous config is not committed yet; try again later.
    #[error("the current replica set config is not committed yet")]
    ConfigNotCommitted,
    /// 109: another config change is in progress.
    #[error("a replica set config change is already in progress")]
    ConfigurationInProgress,
    /// 10107: the command needs the primary.
    #[error("not the primary")]
    NotWritablePrimary,
    /// 74: a member named in the config cannot be reached, or the receiver is not in it.
    #[error("node not found: {0}")]
    NodeNotFound(String),
    /// 104: the receiving node would not be electable.
    #[error("node not electable: {0}")]
    NodeNotElectable(String),
    /// 262: no electable secondary caught up in time for a step-down.
    #[error("no electable secondary caught up in time: {0}")]
    NoCaughtUpSecondary(String),
    /// 50: the server gave up after maxTimeMS (a reconfig may still have been installed).
    #[error("the server's time limit expired: {0}")]
    TimeLimitExpired(String),
    /// 13: the user may not run the command.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 18, or the driver's authentication failure.
    #[error("authentication failed: {0}")]
    AuthenticationFailed(String),
    /// 11: no such user.
    #[error("user not found: {0}")]
    UserNotFound(String),
    /// 51003: the user exists already.
    #[error("user already exists: {0}")]
    UserExists(String),
    /// The member could not be reached within the timeouts (down, partitioned, not started).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// A reply the operator could not read.
    #[error("unexpected reply: {0}")]
    UnexpectedReply(String),
    /// Any other server error, with its code.
    #[error("server error {code} ({name}): {message}")]
    Server { code: i32, name: String, message: String },
}

impl AdminError {
    /// The typed error for a server error code.
    pub fn from_code(code: i32, name: &str, message: &str) -> AdminError {
        let m = message.to_string();
        match code {
            23 => AdminError::AlreadyInitialized,
            94 => AdminError::NotYetInitialized,
            93 => AdminError::InvalidConfig(m),
            103 => AdminError::IncompatibleConfig(m),
            308 => AdminError::ConfigNotCommitted,
            109 => AdminError::ConfigurationInProgress,
            10107 | 13435 => AdminError::NotWritablePrimary,
            74 => AdminError::NodeNotFound(m),
            104 => AdminError::NodeNotElectable(m),
            262 => AdminError::NoCaughtUpSecondary(m),
            50 => AdminError::TimeLimitExpired(m),
            13 => AdminError::Unauthorized(m),
            18 => AdminError::AuthenticationFailed(m),
            11 => AdminError::UserNotFound(m),
            51003 => AdminError::UserExists(m),
            _ => AdminError::Server { code, name: name.to_string(), message: m },
        }
    }

    /// Errors that go away by themselves (retry later, without telling the user).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AdminError::ConfigNotCommitted
                | AdminError::ConfigurationInProgress
                | AdminError::NotWritablePrimary
                | AdminError::NoCaughtUpSecondary(_)
                | AdminError::TimeLimitExpired(_)
                | AdminError::Unreachable(_)
        )
    }

    /// A short, stable label for metrics and condition reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            AdminError::AlreadyInitialized => "AlreadyInitialized",
            AdminError::NotYetInitialized => "NotYetInitialized",
            AdminError::InvalidConfig(_) => "InvalidConfig",
            AdminError::IncompatibleConfig(_) => "IncompatibleConfig",
            AdminError::ConfigNotCommitted => "ConfigNotCommitted",
            AdminError::ConfigurationInProgress => "ConfigurationInProgress",
            AdminError::NotWritablePrimary => "NotWritablePrimary",
            AdminError::NodeNotFound(_) => "NodeNotFound",
            AdminError::NodeNotElectable(_) => "NodeNotElectable",
            AdminError::NoCaughtUpSecondary(_) => "NoCaughtUpSecondary",
            AdminError::TimeLimitExpired(_) => "TimeLimitExpired",
            AdminError::Unauthorized(_) => "Unauthorized",
            AdminError::AuthenticationFailed(_) => "AuthenticationFailed",
            AdminError::UserNotFound(_) => "UserNotFound",
            AdminError::UserExists(_) => "UserExists",
            AdminError::Unreachable(_) => "Unreachable",
            AdminError::UnexpectedReply(_) => "UnexpectedReply",
            AdminError::Server { .. } => "ServerError",
        }
    }
}

impl From<mongodb::error::Error> for AdminError {
    fn from(e: mongodb::error::Error) -> AdminError {
        use mongodb::error::ErrorKind;
        match e.kind.as_ref() {
            ErrorKind::Command(c) => AdminError::from_code(c.code, &c.code_name, &c.message),
            ErrorKind::Authentication { message, .. } => AdminError::AuthenticationFailed(message.clone()),
            ErrorKind::ServerSelection { message, .. } => AdminError::Unreachable(message.clone()),
            ErrorKind::Io(io) => AdminError::Unreachable(io.to_string()),
            ErrorKind::ConnectionPoolCleared { message, .. } => AdminError::Unreachable(message.clone()),
            ErrorKind::BsonDeserialization(d) => AdminError::UnexpectedReply(d.to_string()),
            _ => AdminError::Unreachable(e.to_string()),
        }
    }
}
