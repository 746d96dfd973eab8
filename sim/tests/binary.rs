//! The `mongo-replset-sim` binary: members listen where they are told, answer OP_MSG, obey the
//! HTTP control interface, and log every command as a JSON line.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bson::doc;
use mongo_replset_sim::wire;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn wait_for(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn http(addr: &str, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("control interface");
    write!(s, "{method} {path} HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).expect("send");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("reply");
    reply
}

async fn command(addr: &str, body: bson::Document) -> bson::Document {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("member listens");
    wire::write_request(&mut s, 1, &body).await.expect("send");
    wire::read_reply(&mut s).await.expect("reply")
}

#[tokio::test]
async fn members_answer_obey_the_control_interface_and_log_commands() {
    let dir = std::env::temp_dir().join(format!("sim-binary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let log = dir.join("commands.jsonl");
    let (control, m0, m1) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let _sim = Running(
        Command::new(env!("CARGO_BIN_EXE_mongo-replset-sim"))
            .args(["--control", &control, "--repl-set", "rs9", "--command-log", log.to_str().expect("utf-8 path")])
            .args(["--member", &format!("db-0=db-0.svc:27017@{m0}"), "--member", &format!("db-1=db-1.svc:27017@{m1}")])
            .stderr(Stdio::null())
            .spawn()
            .expect("start the simulator"),
    );
    wait_for(&control);
    wait_for(&m0);

    let hello = command(&m0, doc! { "hello": 1, "$db": "admin" }).await;
    assert_eq!(hello.get_bool("isWritablePrimary"), Ok(false));
    assert_eq!(hello.get_str("info"), Ok("Does not have a valid replica set config"));
    let unauthenticated = command(&m0, doc! { "replSetGetStatus": 1, "$db": "admin" }).await;
    assert_eq!(unauthenticated.get_i32("code"), Ok(13));

    let state = http(&control, "GET", "/state", "");
    assert!(state.contains("\"db-0.svc:27017\"") && state.contains("\"STARTUP\""), "{state}");
    assert!(http(&control, "POST", "/members/db-1/stop", "").starts_with("HTTP/1.1 200"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(&m1).is_ok() {
        assert!(Instant::now() < deadline, "a stopped member still accepts connections");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(http(&control, "POST", "/members/db-1/start", "").starts_with("HTTP/1.1 200"));
    wait_for(&m1);
    assert!(http(&control, "PUT", "/members/db-1/lag", "{\"ms\": 1500}").starts_with("HTTP/1.1 200"));
    assert!(http(&control, "POST", "/members/nobody/stop", "").starts_with("HTTP/1.1 404"));

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .expect("command log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["member"], "db-0");
    assert_eq!(lines[0]["command"], "hello");
    assert_eq!(lines[1]["command"], "replSetGetStatus");
    assert_eq!(lines[1]["code"], 13);
    assert!(lines[0]["ts"].as_str().is_some_and(|t| t.starts_with("20")));
}
