//! A real mongod's recorded answers, replayed: Percona's recording of `getDiagnosticData`
//! from a mongod 4.2.8 replica-set primary (`exporter/testdata/get_diagnostic_data.json` in
//! the exporter's module, copied by `e2e/tools.sh exporter-recording`). Served to the pinned
//! exporter, it shows what the exporter names the `serverStatus` sections no stand-in here
//! has: WiredTiger's cache, memory, the network and assertion counters.
//!
//! Only the recorded documents are answered from it (`getDiagnosticData`, and its
//! `serverStatus` and `replSetGetStatus` parts for the commands of those names); the
//! handshake, `buildInfo` and the FCV say what a 4.2.8 primary says
//! (`maxWireVersion` 8 is 4.2's, `src/mongo/db/wire_version.h`); anything else is refused
//! with `CommandNotFound`. The recording is JSON, so its dates are strings and the exporter
//! skips them, as it skips any string: the families it yields from numbers are what matter.

use std::path::Path;

use mongo_replset_sim::wire;
use mongodb::bson::{self, Bson, Document, doc};
use tokio::net::TcpListener;

use super::servers::tool_dir;

pub struct RecordedMember {
    pub address: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RecordedMember {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn recording(path: &Path) -> Document {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `e2e/tools.sh exporter-recording`)", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("the recording is JSON");
    match bson::to_bson(&json).expect("JSON to BSON") {
        Bson::Document(d) => d,
        other => panic!("the recording is not a document: {other}"),
    }
}

fn answer(data: &Document, body: &Document) -> Document {
    let name = body.keys().next().map(String::as_str).unwrap_or_default();
    let part = |key: &str| data.get_document(key).cloned().unwrap_or_default();
    let status = part("replSetGetStatus");
    let set = status.get_str("set").unwrap_or_default().to_string();
    let me = part("serverStatus").get_str("host").unwrap_or_default().to_string();
    match name {
        "hello" | "isMaster" | "ismaster" => doc! {
            "ismaster": true, "isWritablePrimary": true, "secondary": false,
            "setName": set, "hosts": [me.clone()], "me": me, "primary": part("serverStatus").get_str("host").unwrap_or_default(),
            "maxBsonObjectSize": 16 * 1024 * 1024, "maxMessageSizeBytes": 48_000_000, "maxWriteBatchSize": 100_000,
            "localTime": bson::DateTime::now(), "minWireVersion": 0, "maxWireVersion": 8, "ok": 1.0,
        },
        "ping" | "endSessions" => doc! { "ok": 1.0 },
        "buildInfo" | "buildinfo" => doc! { "version": "4.2.8", "versionArray": [4, 2, 8, 0], "ok": 1.0 },
        "getParameter" if body.contains_key("featureCompatibilityVersion") => {
            doc! { "featureCompatibilityVersion": { "version": "4.2" }, "ok": 1.0 }
        }
        "getDiagnosticData" => doc! { "data": data.clone(), "ok": 1.0 },
        "serverStatus" => part("serverStatus"),
        "replSetGetStatus" => status,
        other => doc! {
            "ok": 0.0, "errmsg": format!("no such command: '{other}'"), "code": 59, "codeName": "CommandNotFound",
        },
    }
}

impl RecordedMember {
    /// Serves the recording on a loopback port.
    pub async fn start() -> RecordedMember {
        let data = recording(&tool_dir("exporter-recording").join("get_diagnostic_data.json"));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let data = data.clone();
                tokio::spawn(async move {
                    let mut reply_id = 0;
                    while let Ok(request) = wire::read_request(&mut stream).await {
                        let reply = answer(&data, &request.body);
                        if request.more_to_come {
                            continue;
                        }
                        reply_id += 1;
                        if wire::write_answer(&mut stream, &request, reply_id, &reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        RecordedMember { address, task }
    }
}
