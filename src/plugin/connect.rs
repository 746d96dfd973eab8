//! `kubectl mongo connect NAME [--user U]`: a `mongosh` session on the primary, through a
//! port-forward the plugin holds open, with a user's connection Secret and the cluster's CA.
//! The password goes to mongosh in its environment, never on a command line or the screen.
//! When mongosh is not installed (or with `--print`), the exact commands to run are printed
//! instead; they read the password from the Secret themselves.

use std::path::Path;
use std::process::Stdio;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::Api;
use kube::{Client, ResourceExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::net::TcpListener;

use super::common::{PluginError, get};
use crate::api::{MongoCluster, TlsMode};
use crate::build::names::ClusterNames;
use crate::build::secrets::{CA_KEY, PASSWORD_KEY, USERNAME_KEY, text};

/// The port mongod listens on in every member.
const MONGOD_PORT: u16 = 27017;
/// The environment variable mongosh reads the connection string (with the password) from.
pub const URI_VARIABLE: &str = "KUBECTL_MONGO_URI";
/// RFC 3986 userinfo: everything but unreserved characters is percent-encoded.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Whom and where to connect: pure, from the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    /// The primary's Pod.
    pub pod: String,
    /// The connection Secret (username, password, `ca.crt`).
    pub secret: String,
    /// The database the user authenticates against and starts in.
    pub db: String,
    /// Whether the members want TLS from clients.
    pub tls: bool,
}

/// The target: the user named in `spec.users`, or its first user.
pub fn target(cluster: &MongoCluster, user: Option<&str>) -> Result<Target, PluginError> {
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let status = cluster.status.clone().unwrap_or_default();
    let pod = status.primary.clone().ok_or_else(|| {
        PluginError::Refused(format!("{name} has no primary now (`kubectl mongo status {name}` says why)"))
    })?;
    // The operator's own users are not for people: a session is one of spec.users's.
    let spec = match user {
        Some(u) => cluster.spec.users.iter().find(|s| s.name == u).ok_or_else(|| {
            let known: Vec<&str> = cluster.spec.users.iter().map(|s| s.name.as_str()).collect();
            PluginError::Refused(format!("{name} has no user {u} in spec.users (it has: {})", known.join(", ")))
        })?,
        None => cluster.spec.users.first().ok_or_else(|| {
            PluginError::Refused(format!(
                "{name} has no user in spec.users to connect as: add one (see spec.users in docs/cluster.md)"
            ))
        })?,
    };
    let names = ClusterNames::new(&name, &namespace);
    let secret = spec.connection_secret_name.clone().unwrap_or_else(|| names.user_secret(&spec.db, &spec.name));
    let db = spec.db.clone();
    let tls = cluster.spec.tls.mode != TlsMode::Disabled;
    Ok(Target { namespace, pod, secret, db, tls })
}

/// The connection string mongosh gets for the local end of the port-forward.
pub fn uri(t: &Target, port: u16, username: &str, password: &str, ca_file: Option<&Path>) -> String {
    let user = utf8_percent_encode(username, USERINFO);
    let password = utf8_percent_encode(password, USERINFO);
    let db = utf8_percent_encode(&t.db, USERINFO);
    let tls = match ca_file {
        // The members' certificate names 127.0.0.1, so the name is verified too.
        Some(ca) if t.tls => format!("&tls=true&tlsCAFile={}", utf8_percent_encode(&ca.to_string_lossy(), USERINFO)),
        _ => String::new(),
    };
    format!("mongodb://{user}:{password}@127.0.0.1:{port}/{db}?directConnection=true&authSource={db}{tls}")
}

/// The commands that do what `connect` does, for a user without mongosh: none holds the
/// password; the last reads it from the Secret when it runs.
pub fn commands(t: &Target, port: u16) -> String {
    let Target { namespace: ns, pod, secret, db, tls } = t;
    let mut out = format!("kubectl -n {ns} port-forward pod/{pod} {port}:{MONGOD_PORT} &\n");
    let mut options = format!("directConnection=true&authSource={db}");
    if *tls {
        out.push_str(&format!(
            "kubectl -n {ns} get secret {secret} -o jsonpath='{{.data.ca\\.crt}}' | base64 -d > {pod}-ca.crt\n"
        ));
        options.push_str(&format!("&tls=true&tlsCAFile={pod}-ca.crt"));
    }
    out.push_str(&format!(
        "mongosh \"mongodb://127.0.0.1:{port}/{db}?{options}\" \
         --username \"$(kubectl -n {ns} get secret {secret} -o jsonpath='{{.data.username}}' | base64 -d)\" \
         --password \"$(kubectl -n {ns} get secret {secret} -o jsonpath='{{.data.password}}' | base64 -d)\"\n"
    ));
    out
}

/// Reads the cluster and finds the target.
pub async fn find(client: &Client, namespace: &str, name: &str, user: Option<&str>) -> Result<Target, PluginError> {
    let cluster: MongoCluster = get(client, namespace, name).await?;
    target(&cluster, user)
}

/// Whether `program` is on the PATH.
pub fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Opens the session: forwards a local port to the primary's mongod for as long as mongosh
/// runs; returns mongosh's exit code.
pub async fn session(client: &Client, t: &Target, port: u16) -> Result<i32, PluginError> {
    let secret: Secret = get(client, &t.namespace, &t.secret).await?;
    let read = |key: &str| {
        text(&secret, key).ok_or_else(|| PluginError::Refused(format!("Secret {} has no key {key}", t.secret)))
    };
    let (username, password) = (read(USERNAME_KEY)?, read(PASSWORD_KEY)?);
    let dir = tempdir()?;
    let ca_file = match text(&secret, CA_KEY) {
        Some(ca) if t.tls => {
            let path = dir.join("ca.crt");
            std::fs::write(&path, ca).map_err(|source| PluginError::Io { what: "writing the CA".into(), source })?;
            Some(path)
        }
        _ => None,
    };
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| PluginError::Io { what: format!("listening on 127.0.0.1:{port}"), source })?;
    let local = listener.local_addr().map_err(|source| PluginError::Io { what: "the local port".into(), source })?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &t.namespace);
    let pod = t.pod.clone();
    let forward = tokio::spawn(async move {
        while let Ok((mut local, _)) = listener.accept().await {
            let pods = pods.clone();
            let pod = pod.clone();
            tokio::spawn(async move {
                let Ok(mut forwarder) = pods.portforward(&pod, &[MONGOD_PORT]).await else {
                    eprintln!("error: cannot forward to {pod}:{MONGOD_PORT}");
                    return;
                };
                if let Some(mut upstream) = forwarder.take_stream(MONGOD_PORT) {
                    let _ = tokio::io::copy_bidirectional(&mut local, &mut upstream).await;
                }
            });
        }
    });
    eprintln!("Forwarding 127.0.0.1:{} to {}/{}:{MONGOD_PORT} as {username}", local.port(), t.namespace, t.pod);
    let uri = uri(t, local.port(), &username, &password, ca_file.as_deref());
    let status = tokio::process::Command::new("mongosh")
        .args(["--nodb", "--quiet", "--shell", "--eval", &format!("db = connect(process.env.{URI_VARIABLE})")])
        .env(URI_VARIABLE, uri)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .await
        .map_err(|source| PluginError::Io { what: "running mongosh".into(), source });
    forward.abort();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(status?.code().unwrap_or(1))
}

/// A directory only this user can read, for the CA file.
fn tempdir() -> Result<std::path::PathBuf, PluginError> {
    let dir = std::env::temp_dir().join(format!("kubectl-mongo-{}", std::process::id()));
    let io = |source| PluginError::Io { what: format!("creating {}", dir.display()), source };
    std::fs::create_dir_all(&dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|source| PluginError::Io { what: format!("securing {}", dir.display()), source })?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(tls: &str) -> MongoCluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoCluster",
            "metadata": {"name": "orders", "namespace": "shop"},
            "spec": {"version": "8.0.4", "tls": {"mode": tls},
                "users": [{"name": "app", "db": "orders", "roles": [{"name": "readWrite", "db": "orders"}]}]},
            "status": {"primary": "orders-1", "readyMembers": 3,
                "connection": {"host": "orders.shop.svc", "port": 27017, "secretName": "orders-admin"}},
        }))
        .expect("cluster")
    }

    #[test]
    fn a_user_connects_with_its_own_secret_the_first_user_by_default() {
        let t = target(&cluster("Require"), Some("app")).expect("target");
        assert_eq!(
            (t.pod.as_str(), t.secret.as_str(), t.db.as_str(), t.tls),
            ("orders-1", "orders-orders-app", "orders", true)
        );
        let t = target(&cluster("Disabled"), None).expect("target");
        assert_eq!((t.secret.as_str(), t.db.as_str(), t.tls), ("orders-orders-app", "orders", false));
        let mut none = cluster("Require");
        none.spec.users.clear();
        assert!(target(&none, None).expect_err("no user").to_string().contains("no user in spec.users"));
        let refused = target(&cluster("Require"), Some("nobody")).expect_err("unknown user");
        assert_eq!(refused.to_string(), "orders has no user nobody in spec.users (it has: app)");
    }

    #[test]
    fn the_uri_encodes_the_password_and_names_the_ca() {
        let t = target(&cluster("Require"), Some("app")).expect("target");
        let uri = uri(&t, 41234, "app", "p@ss:/word", Some(Path::new("/tmp/k/ca.crt")));
        assert_eq!(
            uri,
            "mongodb://app:p%40ss%3A%2Fword@127.0.0.1:41234/orders?directConnection=true&authSource=orders&tls=true&tlsCAFile=%2Ftmp%2Fk%2Fca.crt"
        );
    }
}
