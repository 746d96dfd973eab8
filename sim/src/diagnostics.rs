//! `getDiagnosticData` and `serverStatus` as a replica-set member answers them, for the metrics
//! exporter (which reads everything through `getDiagnosticData`). Only what the simulator
//! knows is reported, with mongod's field names; the rest of mongod's sections are left out
//! rather than made up.

use std::time::{Instant, SystemTime};

use bson::{DateTime, Document, doc};

use crate::commands::{Shared, lock, status};
use crate::world::State;

/// `serverGlobalParams.maxConns` when `net.maxIncomingConnections` is not set
/// (`DEFAULT_MAX_CONN`, `src/mongo/db/server_options.h`), which `available` counts down from.
const MAX_CONNECTIONS: i64 = 1_000_000;
/// Read and write execution tickets of a MongoDB 7.0+ member (`gConcurrentReadTransactions`
/// / `gConcurrentWriteTransactions` start at 128, `src/mongo/db/storage/
/// execution_control/concurrency_adjustment_parameters.idl`).
const TICKETS: i64 = 128;

/// `getDiagnosticData` (`GetDiagnosticDataCommand::run`, `src/mongo/db/ftdc/
/// ftdc_commands.cpp`): the most recent periodic FTDC sample under `data`. The sample holds a
/// sub-document per collector (`FTDCCollectorCollection::collect`, `collector.cpp`), each with
/// its own `start` and `end`: `serverStatus` (`ftdc_server.cpp`) and, on a replica-set member,
/// `replSetGetStatus` (`registerMongoDCollectors`, `ftdc_mongod.cpp`), which is whatever
/// that command answered, its error included before the set is initiated. Admin only
/// (`adminOnly()`); its authorization (`checkAuthForOperation`: serverStatus and
/// replSetGetStatus on the cluster, collStats on local.oplog.rs) is `clusterMonitor`'s.
pub fn diagnostic_data(world: &Shared, me: &str) -> Document {
    let now = DateTime::now();
    let mut server = server_status(world, me);
    server.remove("ok");
    let mut repl = status(world, me);
    for part in [&mut server, &mut repl] {
        let mut timed = doc! { "start": now };
        timed.extend(std::mem::take(part));
        timed.insert("end", now);
        *part = timed;
    }
    doc! {
        "data": { "start": now, "serverStatus": server, "replSetGetStatus": repl, "end": now },
        "ok": 1.0,
    }
}

/// `serverStatus` (`CmdServerStatus::run`, `src/mongo/db/commands/server_status.cpp`): the
/// process fields it always appends, then the sections the simulator can fill truthfully:
/// `connections` (`ConnectionsServerStatusSection`, counted per member as mongod's session
/// manager counts them), `opcounters` (`OpCounterServerStatusSection`) and `opLatencies`
/// (`Top::appendGlobalLatencyStats`, `src/mongo/db/stats/top.cpp`), counted as
/// [`crate::op_stats`] says, `repl` (`ReplicationInfoServerStatus`, the `hello` view) and, from
/// 7.0, `queues.execution` (`ExecutionControlServerStatusSection`): the simulator runs no
/// operation concurrently with another's tickets, so none is ever out.
pub fn server_status(world: &Shared, me: &str) -> Document {
    let w = lock(world);
    let Some(m) = w.member(me) else { return doc! { "ok": 0.0, "errmsg": "member gone" } };
    let uptime = Instant::now().saturating_duration_since(m.started);
    let state = w.state(m, Instant::now());
    let connections = doc! {
        "current": m.connections.current as i32,
        "available": (MAX_CONNECTIONS - m.connections.current) as i32,
        "totalCreated": m.connections.total_created,
    };
    let mut repl = doc! {
        "isWritablePrimary": state == State::Primary,
        "secondary": state == State::Secondary,
        "me": m.host.clone(),
    };
    if let Some(cfg) = &m.config {
        repl.insert("setName", cfg.set_name.clone());
        repl.insert("hosts", cfg.members.iter().map(|e| e.host.clone()).collect::<Vec<_>>());
    }
    let tickets = doc! { "out": 0i32, "available": TICKETS as i32, "totalTickets": TICKETS as i32 };
    let pid = std::process::id() as i64;
    let local_time = DateTime::from_system_time(SystemTime::now());
    let mut reply = doc! {
        "host": m.host.clone(),
        "version": m.version.clone(),
        "process": "mongod",
        "pid": pid,
        "uptime": uptime.as_secs_f64().floor(),
        "uptimeMillis": uptime.as_millis() as i64,
        "uptimeEstimate": uptime.as_secs() as i64,
        "localTime": local_time,
        "connections": connections,
        "opcounters": m.ops.opcounters(),
        "opLatencies": m.ops.op_latencies(),
        "repl": repl,
    };
    // Before 7.0 the same counts sit under wiredTiger.concurrentTransactions.
    let major: u32 = m.version.split('.').next().and_then(|v| v.parse().ok()).unwrap_or(0);
    if major >= 7 {
        reply.insert("queues", doc! { "execution": { "read": tickets.clone(), "write": tickets } });
    } else {
        reply.insert("wiredTiger", doc! { "concurrentTransactions": { "read": tickets.clone(), "write": tickets } });
    }
    reply.insert("ok", 1.0);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Sim;
    use crate::world::Options;

    #[tokio::test]
    async fn diagnostic_data_holds_server_status_and_the_set_status_each_timed() {
        let sim =
            Sim::start(Options { set_name: "rs".into(), key_file: "a2V5ZmlsZQ==".into(), ..Options::default() }, None);
        let listen = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap();
        sim.add_member("m0", &listen.to_string(), listen).await.unwrap();
        let reply = diagnostic_data(&sim.world, "m0");
        let data = reply.get_document("data").unwrap();
        let server = data.get_document("serverStatus").unwrap();
        assert!(server.contains_key("start") && server.contains_key("end"), "{server}");
        assert_eq!(server.get_str("process").unwrap(), "mongod");
        let tickets = server.get_document("queues").unwrap().get_document("execution").unwrap();
        assert_eq!(tickets.get_document("write").unwrap().get_i32("available").unwrap(), 128);
        let connections = server.get_document("connections").unwrap();
        let current = connections.get_i32("current").unwrap();
        assert_eq!(connections.get_i32("available").unwrap() as i64, MAX_CONNECTIONS - current as i64);
        // Before the set is initiated, the collector holds replSetGetStatus's own error (94).
        let repl = data.get_document("replSetGetStatus").unwrap();
        assert_eq!(repl.get_f64("ok").unwrap(), 0.0);
        assert_eq!(repl.get_i32("code").unwrap(), 94);
    }
}
