//! Real servers for data-path tests, all on loopback: FerretDB (a MongoDB-compatible server we
//! did not write) and s3s-fs (an S3 server that checks SigV4), both built by e2e/tools.sh.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The directory e2e/tools.sh built `tool` into; panics with how to build it.
pub fn tool_dir(tool: &str) -> PathBuf {
    let out =
        Command::new(super::repo_root().join("e2e/tools.sh")).args(["path", tool]).output().expect("run e2e/tools.sh");
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(dir.join(".done").exists(), "{tool} is not built: run `e2e/tools.sh {tool}` (make test does)");
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn scratch(kind: &str, port: u16) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mongo-operator-{kind}-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn wait_listening(address: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {address}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A FerretDB with its own SQLite directory; stopped and removed on drop.
pub struct Ferret {
    child: Child,
    dir: PathBuf,
    /// `127.0.0.1:<port>`.
    pub address: String,
}

impl Ferret {
    pub fn start() -> Self {
        Ferret::start_with(&[])
    }

    /// With more command-line flags (for example its capped-collection cleanup, to roll an
    /// oplog over in seconds).
    pub fn start_with(flags: &[&str]) -> Self {
        let port = free_port();
        let dir = scratch("ferretdb", port);
        let address = format!("127.0.0.1:{port}");
        let child = Command::new(tool_dir("ferretdb").join("ferretdb"))
            .arg("--handler=sqlite")
            .arg(format!("--sqlite-url=file:{}/", dir.display()))
            .arg(format!("--state-dir={}", dir.display()))
            .arg(format!("--listen-addr={address}"))
            .args(["--debug-addr=-", "--telemetry=disable", "--log-level=warn"])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start FerretDB");
        wait_listening(&address, "FerretDB");
        Ferret { child, dir, address }
    }

    /// A connection string for it (no replica set: FerretDB has none).
    pub fn uri(&self) -> String {
        format!("mongodb://{}/?directConnection=true", self.address)
    }

    pub async fn client(&self) -> mongodb::Client {
        mongodb::Client::with_uri_str(self.uri()).await.expect("client")
    }
}

impl Drop for Ferret {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub const S3_ACCESS_KEY: &str = "AKTEST";
pub const S3_SECRET_KEY: &str = "sk-test-secret";

/// An s3s-fs serving one directory; each bucket is a subdirectory.
pub struct S3Server {
    child: Option<Child>,
    /// Where it keeps objects.
    pub root: PathBuf,
    pub port: u16,
}

impl S3Server {
    pub fn start(buckets: &[&str]) -> Self {
        let port = free_port();
        let root = scratch("s3", port);
        for bucket in buckets {
            std::fs::create_dir_all(root.join(bucket)).expect("bucket dir");
        }
        let mut server = S3Server { child: None, root, port };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(tool_dir("s3sfs").join("s3s-fs"))
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(&self.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        wait_listening(&format!("127.0.0.1:{}", self.port), "s3s-fs");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it at once, as a store that dies.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every object key in `bucket`, sorted, leaving out s3s-fs's own bookkeeping (incomplete
    /// multipart uploads live in its hidden files and are not objects).
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let base = self.root.join(bucket);
        let mut keys = Vec::new();
        walk(&base, &base, &mut keys);
        keys.sort();
        keys
    }

    /// The file holding an object, to damage it on purpose.
    pub fn object_file(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }
}

fn walk(base: &Path, dir: &Path, keys: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(base, &path, keys);
        } else if let Ok(relative) = path.strip_prefix(base) {
            keys.push(relative.to_string_lossy().to_string());
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
