//! The cluster's Secrets: the internal one (keyFile and the operator's own password) and one
//! connection Secret per user, with the keys MongoDB's own operator writes so applications can
//! switch operators without change.
//!
//! Values are generated outside (see [`generate`]) and passed in, so these builders stay pure.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

use super::labels::labels;
use super::names::ClusterNames;
use crate::api::DeletionPolicy;

/// Key of the keyFile in the internal Secret (the StatefulSet mounts it into the init container).
pub use super::statefulset::KEY_FILE_SECRET_KEY as KEY_FILE_KEY;
/// Key of the operator's own password (`mongo-operator-admin`) in the internal Secret.
pub const OPERATOR_PASSWORD_KEY: &str = "operator-password";
/// Key of the internal Secret holding the backup user's password (projected into backup Jobs
/// alone; the keyFile never is).
pub const BACKUP_PASSWORD_KEY: &str = "backup-password";
/// Key of the internal Secret that held the password of the restore user older operators
/// created; it is removed where found (restores log in as `__system` now).
pub const LEGACY_RESTORE_PASSWORD_KEY: &str = "restore-password";

/// Keys of a user's connection Secret, as MongoDB's community operator names them.
pub const CONNECTION_STANDARD_KEY: &str = "connectionString.standard";
pub const CONNECTION_SRV_KEY: &str = "connectionString.standardSrv";
/// Key of the connection string with the members' external names (`expose.perMember`), for
/// clients outside Kubernetes.
pub const CONNECTION_EXTERNAL_KEY: &str = "connectionString.external";
pub const USERNAME_KEY: &str = "username";
pub const PASSWORD_KEY: &str = "password";

/// Annotations on a connection Secret: which user it belongs to, and a digest of the password
/// last set in MongoDB, so the operator knows when the database must be told of a new one.
pub const USER_ANNOTATION: &str = "mongo.operator.rs/user";
pub const USER_DB_ANNOTATION: &str = "mongo.operator.rs/user-db";
pub const APPLIED_PASSWORD_ANNOTATION: &str = "mongo.operator.rs/applied-password-digest";
/// Annotation of every Secret the operator writes for a cluster: the MongoCluster's UID. A
/// connection Secret is only ever written to or deleted when it carries this cluster's labels,
/// and a user is only dropped for a Secret that carries its UID: labels anybody can copy, a
/// UID nobody can choose. A Secret kept from an earlier cluster of the same name
/// (`deletionPolicy: Retain`) carries the old UID until it is adopted, with an Event.
pub const CLUSTER_UID_ANNOTATION: &str = "mongo.operator.rs/cluster-uid";
/// The `app.kubernetes.io/component` of the internal Secret.
pub const INTERNAL_COMPONENT: &str = "internal-credentials";
/// The `app.kubernetes.io/component` of connection Secrets, to list them.
pub const USER_COMPONENT: &str = "user-credentials";

/// Characters left as they are in the user-info part of a connection string (RFC 3986
/// unreserved); everything else is percent-encoded, as the connection string spec requires.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Secrets belong to the cluster (and are garbage-collected with it) only when the user asked
/// for `deletionPolicy: Delete`; with `Retain` they outlive it, like the volumes, so a cluster
/// created again under the same name finds its keyFile and passwords.
pub(crate) fn owners(policy: DeletionPolicy, owner: &OwnerReference) -> Option<Vec<OwnerReference>> {
    match policy {
        DeletionPolicy::Delete => Some(vec![owner.clone()]),
        DeletionPolicy::Retain => None,
    }
}

pub(crate) fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
    pairs.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect()
}

/// The internal Secret: the replica set's keyFile and the operator's password. The controller
/// creates it once and never overwrites it; a user may create it beforehand with their own.
pub fn internal(
    names: &ClusterNames,
    policy: DeletionPolicy,
    owner: &OwnerReference,
    key_file: &str,
    operator_password: &str,
) -> Secret {
    Secret {
        metadata: meta(names, names.internal_secret(), INTERNAL_COMPONENT, policy, owner),
        type_: Some("Opaque".into()),
        data: Some(data(&[(KEY_FILE_KEY, key_file), (OPERATOR_PASSWORD_KEY, operator_password)])),
        ..Secret::default()
    }
}

/// The metadata of a Secret the operator keeps for a cluster: its labels with `component`,
/// bound to the cluster's UID, owned by it under `deletionPolicy: Delete` only.
pub(crate) fn meta(
    names: &ClusterNames,
    name: String,
    component: &str,
    policy: DeletionPolicy,
    owner: &OwnerReference,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(labels(&names.cluster, component)),
        annotations: Some(bound_to(owner)),
        owner_references: owners(policy, owner),
        ..ObjectMeta::default()
    }
}

/// The annotation that binds a Secret to the cluster `owner` names.
pub(crate) fn bound_to(owner: &OwnerReference) -> BTreeMap<String, String> {
    BTreeMap::from([(CLUSTER_UID_ANNOTATION.to_string(), owner.uid.clone())])
}

/// The UID of the cluster a Secret was written for, if it says.
pub fn bound_uid(secret: &Secret) -> Option<&str> {
    secret.metadata.annotations.as_ref()?.get(CLUSTER_UID_ANNOTATION).map(String::as_str)
}

/// Whether a stored Secret already holds what `wanted` would write: the same data, bound to
/// the same cluster's UID, and owned by the cluster exactly when `wanted` is. Applying it again
/// would change nothing.
pub fn holds(existing: &Secret, wanted: &Secret) -> bool {
    existing.data == wanted.data
        && existing.metadata.owner_references.as_ref().is_some_and(|o| !o.is_empty())
            == wanted.metadata.owner_references.is_some()
        && bound_uid(existing).is_some()
        && bound_uid(existing) == bound_uid(wanted)
}

/// Only the ownership of the internal Secret, applied on its own so that a `deletionPolicy`
/// change moves the Secret in or out of garbage collection without touching its data, and
/// so that a kept Secret is bound to the cluster that adopts it.
pub fn internal_ownership(names: &ClusterNames, policy: DeletionPolicy, owner: &OwnerReference) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(names.internal_secret()),
            namespace: Some(names.namespace.clone()),
            annotations: Some(bound_to(owner)),
            owner_references: owners(policy, owner),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    }
}

/// Where a user's connection Secret points.
#[derive(Clone, Debug)]
pub struct Connection<'a> {
    pub names: &'a ClusterNames,
    pub cluster_domain: &'a str,
    /// Members the spec asks for; the standard string lists each of them.
    pub members: i32,
    pub secret_name: &'a str,
    pub username: &'a str,
    pub db: &'a str,
    pub password: &'a str,
    /// Digest of the password MongoDB has now, when known.
    pub applied_digest: Option<&'a str>,
    pub policy: DeletionPolicy,
    pub owner: &'a OwnerReference,
    /// The CAs of the members' certificate when clients connect over TLS; None for plain text.
    pub tls_ca: Option<&'a str>,
    /// Every member's external `host:port`, when each member is exposed on its own and all of
    /// them have one.
    pub external_hosts: Option<&'a [String]>,
}

/// Key of a connection Secret holding the CAs to verify the members with, when they speak TLS.
pub const CA_KEY: &str = "ca.crt";

/// A user's connection strings.
pub struct ConnectionStrings {
    /// `mongodb://` with every member's name inside Kubernetes.
    pub standard: String,
    /// `mongodb+srv://` through the headless Service's SRV records (`_mongodb._tcp.<service>`),
    /// which Kubernetes publishes for the named port.
    pub srv: String,
    /// `mongodb://` with every member's external name (`expose.perMember`); the members give a
    /// client that connects with these names the same names back (split horizons).
    pub external: Option<String>,
}

/// The strings of a connection Secret.
pub fn connection_strings(c: &Connection<'_>) -> ConnectionStrings {
    let user = utf8_percent_encode(c.username, USERINFO);
    let password = utf8_percent_encode(c.password, USERINFO);
    let db = utf8_percent_encode(c.db, USERINFO);
    let set = c.names.replica_set();
    // Said in every form (SRV implies TLS unless told otherwise): the CA that goes with it is
    // the Secret's `ca.crt`, which the application passes as its `tlsCAFile`.
    let tls = c.tls_ca.is_some();
    let options = format!("{db}?replicaSet={set}&authSource={db}&tls={tls}");
    let uri = |hosts: Vec<String>| format!("mongodb://{user}:{password}@{}/{options}", hosts.join(","));
    let srv_host = format!("{}.{}.svc.{}", c.names.headless_service(), c.names.namespace, c.cluster_domain);
    ConnectionStrings {
        standard: uri(c.names.member_hosts(c.members, c.cluster_domain)),
        srv: format!("mongodb+srv://{user}:{password}@{srv_host}/{options}"),
        external: c.external_hosts.map(|hosts| uri(hosts.to_vec())),
    }
}

/// A user's connection Secret.
pub fn connection(c: &Connection<'_>) -> Secret {
    let strings = connection_strings(c);
    let mut annotations = bound_to(c.owner);
    annotations.insert(USER_ANNOTATION.to_string(), c.username.to_string());
    annotations.insert(USER_DB_ANNOTATION.to_string(), c.db.to_string());
    if let Some(d) = c.applied_digest {
        annotations.insert(APPLIED_PASSWORD_ANNOTATION.to_string(), d.to_string());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(c.secret_name.to_string()),
            namespace: Some(c.names.namespace.clone()),
            labels: Some(labels(&c.names.cluster, USER_COMPONENT)),
            annotations: Some(annotations),
            owner_references: owners(c.policy, c.owner),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data(
            &[
                (CONNECTION_STANDARD_KEY, strings.standard.as_str()),
                (CONNECTION_SRV_KEY, &strings.srv),
                (USERNAME_KEY, c.username),
                (PASSWORD_KEY, c.password),
            ]
            .into_iter()
            .chain(strings.external.as_deref().map(|uri| (CONNECTION_EXTERNAL_KEY, uri)))
            .chain(c.tls_ca.map(|ca| (CA_KEY, ca)))
            .collect::<Vec<_>>(),
        )),
        ..Secret::default()
    }
}

/// A digest of a password, to tell whether MongoDB already has it without keeping a second
/// copy. The user and database are mixed in so equal passwords of two users differ.
pub fn password_digest(db: &str, user: &str, password: &str) -> String {
    let mut h = Sha256::new();
    for part in [db, "\0", user, "\0", password] {
        h.update(part.as_bytes());
    }
    h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// A Secret key's value as UTF-8 text, if the key exists and holds text.
pub fn text(secret: &Secret, key: &str) -> Option<String> {
    secret.data.as_ref()?.get(key).and_then(|v| String::from_utf8(v.0.clone()).ok())
}

/// Generated secrets, from the operating system's CSPRNG.
pub mod generate {
    use base64::Engine;
    use rand::Rng;
    use rand::distr::Alphanumeric;

    /// A keyFile: 96 random bytes in base64 (128 characters, within mongod's 6–1024 and its
    /// base64 alphabet).
    pub fn key_file() -> String {
        let mut bytes = [0u8; 96];
        rand::rng().fill(&mut bytes[..]);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// A 32-character alphanumeric password (about 190 bits), safe in any connection string.
    pub fn password() -> String {
        rand::rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "mongo.operator.rs/v1alpha1".into(),
            kind: "MongoCluster".into(),
            name: "orders".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn text(s: &Secret, key: &str) -> String {
        String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap()
    }

    #[test]
    fn connection_secret_has_the_community_operator_keys() {
        let names = ClusterNames::new("orders", "prod");
        let o = owner();
        let c = Connection {
            names: &names,
            cluster_domain: "cluster.local",
            members: 3,
            secret_name: "orders-admin-app",
            username: "app",
            db: "admin",
            password: "p@ss:w/rd",
            applied_digest: None,
            policy: DeletionPolicy::Retain,
            owner: &o,
            tls_ca: None,
            external_hosts: None,
        };
        let s = connection(&c);
        assert_eq!(
            text(&s, CONNECTION_STANDARD_KEY),
            "mongodb://app:p%40ss%3Aw%2Frd@orders-0.orders-members.prod.svc.cluster.local:27017,\
             orders-1.orders-members.prod.svc.cluster.local:27017,orders-2.orders-members.prod.svc.cluster.local:27017\
             /admin?replicaSet=orders&authSource=admin&tls=false"
        );
        assert_eq!(
            text(&s, CONNECTION_SRV_KEY),
            "mongodb+srv://app:p%40ss%3Aw%2Frd@orders-members.prod.svc.cluster.local/admin?replicaSet=orders&authSource=admin&tls=false"
        );
        assert_eq!(text(&s, USERNAME_KEY), "app");
        assert_eq!(text(&s, PASSWORD_KEY), "p@ss:w/rd");
        assert!(s.metadata.owner_references.is_none(), "Retain keeps Secrets out of garbage collection");
        assert!(s.data.as_ref().is_some_and(|d| !d.contains_key(CONNECTION_EXTERNAL_KEY)));
        let deleting = connection(&Connection { policy: DeletionPolicy::Delete, ..c.clone() });
        assert_eq!(deleting.metadata.owner_references.unwrap()[0].uid, "u1");

        let hosts: Vec<String> = (0..3).map(|i| format!("db-{i}.orders.example.internal:27017")).collect();
        let exposed = connection(&Connection { external_hosts: Some(&hosts), tls_ca: Some("CA"), ..c });
        assert_eq!(
            text(&exposed, CONNECTION_EXTERNAL_KEY),
            "mongodb://app:p%40ss%3Aw%2Frd@db-0.orders.example.internal:27017,db-1.orders.example.internal:27017,\
             db-2.orders.example.internal:27017/admin?replicaSet=orders&authSource=admin&tls=true"
        );
    }

    #[test]
    fn generated_values_are_random_and_valid() {
        let (a, b) = (generate::key_file(), generate::key_file());
        assert_ne!(a, b);
        assert_eq!(a.len(), 128);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='));
        let p = generate::password();
        assert_eq!(p.len(), 32);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(p, generate::password());
    }

    #[test]
    fn digests_differ_by_user() {
        assert_eq!(password_digest("admin", "a", "x"), password_digest("admin", "a", "x"));
        assert_ne!(password_digest("admin", "a", "x"), password_digest("admin", "b", "x"));
        assert_ne!(password_digest("admin", "a", "x"), password_digest("admin", "a", "y"));
    }
}
