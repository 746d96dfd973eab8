//! The admin layer against FerretDB 1.24 (SQLite backend): a server we did not write. What it
//! can check there: connecting directly, `hello`, `buildInfo`, and that commands FerretDB lacks
//! come back as typed server errors rather than hangs or panics.
//!
//! Not covered here, and why (checked against FerretDB's source and by running it):
//! - Authentication. FerretDB 1.24's experimental SCRAM (`--test-enable-new-auth`) answers the
//!   server-final step with `done: false` and ignores `skipEmptyExchange`
//!   (`internal/handler/msg_saslcontinue.go`: "for compatibility, assign the validity of the
//!   conversation before Step"), while the Rust driver 3.x always asks to skip the empty
//!   exchange and refuses that reply ("expected SCRAM authentication to have completed"). PLAIN
//!   is refused in that mode ("Unsupported authentication mechanism"). SCRAM is covered against
//!   the simulator instead.
//! - User management. FerretDB registers createUser/updateUser/dropUser/usersInfo only in that
//!   authentication mode and requires a logged-in user for them, so they cannot be reached with
//!   this driver; without it they are unknown commands (59), which the test checks.
//! - Replication: FerretDB has none.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mongo_operator::mongo::{AdminError, DriverAdmin, MongoAdmin, Role, Target, Timeouts, UserRequest};
use mongo_operator::replset::{MemberConfig, ReplSetConfig};

struct Ferret {
    child: Child,
    dir: std::path::PathBuf,
    address: String,
}

impl Drop for Ferret {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn binary() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("e2e/tools.sh")).args(["path", "ferretdb"]).output().expect("run e2e/tools.sh");
    let bin = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("ferretdb");
    assert!(bin.exists(), "FerretDB is not built: run `e2e/tools.sh ferretdb` (make test does)");
    bin
}

fn start() -> Ferret {
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
    let dir = std::env::temp_dir().join(format!("ferretdb-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("state dir");
    let address = format!("127.0.0.1:{port}");
    let child = Command::new(binary())
        .arg("--handler=sqlite")
        .arg(format!("--sqlite-url=file:{}/", dir.display()))
        .arg(format!("--state-dir={}", dir.display()))
        .arg(format!("--listen-addr={address}"))
        .args(["--debug-addr=-", "--telemetry=disable"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start FerretDB");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(Instant::now() < deadline, "FerretDB did not listen on {address}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ferret { child, dir, address }
}

#[tokio::test]
#[ignore = "needs FerretDB built by e2e/tools.sh: run `make test`"]
async fn direct_connection_and_typed_errors_against_ferretdb() {
    let f = start();
    let admin = DriverAdmin::new(Timeouts::default());
    let t = Target { address: f.address.clone(), credentials: None, tls: None };

    let hello = admin.hello(&t).await.expect("hello");
    assert!(hello.is_writable_primary, "a standalone FerretDB is writable");
    assert!(hello.has_no_config(), "no replica set name");
    assert!(hello.max_wire_version >= 17, "FerretDB reports a modern wire version, got {}", hello.max_wire_version);
    let version = admin.server_version(&t).await.expect("buildInfo");
    assert!(version.split('.').count() >= 2, "version {version}");

    let user = UserRequest {
        db: "admin".into(),
        name: "app".into(),
        password: Some("pw".into()),
        roles: Some(vec![Role { role: "readWrite".into(), db: "app".into() }]),
    };
    match admin.create_user(&t, &user).await {
        Err(AdminError::Server { code: 59, .. }) => {}
        other => panic!("expected CommandNotFound (59) for createUser without FerretDB's auth mode, got {other:?}"),
    }
    match admin.status(&t).await {
        Err(AdminError::Server { code, .. }) => assert!(code > 0),
        other => panic!("expected a server error for replSetGetStatus, got {other:?}"),
    }
    let config = ReplSetConfig {
        set_name: "rs0".into(),
        version: 1,
        term: None,
        protocol_version: 1,
        members: vec![MemberConfig::new(0, f.address.clone(), true)],
        other: Default::default(),
    };
    assert!(admin.initiate(&t, &config).await.is_err(), "FerretDB cannot initiate a replica set");
    // An unreachable port is a typed error within the timeouts, not a hang.
    let dead = Target { address: "127.0.0.1:1".into(), credentials: None, tls: None };
    let started = Instant::now();
    assert!(matches!(admin.hello(&dead).await, Err(AdminError::Unreachable(_))));
    assert!(started.elapsed() < Duration::from_secs(10));
}
