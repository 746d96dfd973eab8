//! What a verification Job's plan says of its throwaway mongod: the Pod's own loopback, a
//! replica set of its own, no access control (nothing but the Pod can reach it).

use crate::backup::plan::Source;

/// Where the throwaway mongod listens in the verification Pod.
pub const THROWAWAY_HOST: &str = "127.0.0.1:27017";
/// The throwaway's `--replSet`.
pub const THROWAWAY_SET: &str = "verify";

/// How the verification reaches the throwaway at `host`: directly, without credentials.
pub fn throwaway_source(host: &str) -> Source {
    Source {
        uri: format!("mongodb://{host}/?directConnection=true"),
        username: None,
        auth_source: "admin".into(),
        tls: false,
    }
}
