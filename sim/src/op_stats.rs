//! `serverStatus.opcounters` and `serverStatus.opLatencies` of one member: what it has served
//! since it started, counted by mongod's rules. Both are in memory only in mongod (the global
//! `OpCounters` of `src/mongo/db/stats/counters.h` and `Top`'s global histogram,
//! `src/mongo/db/stats/top.cpp`), so a restart starts them again from zero.

use std::time::Duration;

use bson::{Bson, Document, doc};

use crate::rules::code;

/// `OpCounters` (`src/mongo/db/stats/counters.h`), as `OpCounters::getObj` reports them.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpCounters {
    insert: i64,
    query: i64,
    update: i64,
    delete: i64,
    getmore: i64,
    command: i64,
}

/// One `OperationLatencyHistogram` bucket set's totals (`operation_latency_histogram.cpp`,
/// `_append`): the summed latency in microseconds and the number of operations.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    latency_micros: i64,
    ops: i64,
}

/// `Top`'s global latency statistics by `Command::ReadWriteType`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpLatencies {
    reads: Totals,
    writes: Totals,
    commands: Totals,
}

/// What one request did, for the counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpStats {
    pub counters: OpCounters,
    pub latencies: OpLatencies,
}

/// `Command::getReadWriteType` (`src/mongo/db/commands.h`): `kCommand` unless the command
/// says otherwise; `find`, `getMore`, `aggregate`, `count` and `distinct` say `kRead`, the
/// write commands (`insert`, `update`, `delete`, `write_commands.cpp`) and `findAndModify`
/// say `kWrite`.
fn read_write_type(name: &str) -> ReadWriteType {
    match name {
        "find" | "getMore" | "aggregate" | "count" | "distinct" => ReadWriteType::Read,
        "insert" | "update" | "delete" | "findAndModify" => ReadWriteType::Write,
        _ => ReadWriteType::Command,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ReadWriteType {
    Read,
    Write,
    Command,
}

fn ok(reply: &Document) -> bool {
    matches!(reply.get("ok"), Some(Bson::Double(v)) if *v == 1.0)
        || matches!(reply.get("ok"), Some(Bson::Int32(1)) | Some(Bson::Int64(1)))
}

fn array_len(body: &Document, key: &str) -> i64 {
    body.get_array(key).map(|a| a.len() as i64).unwrap_or(0)
}

impl OpStats {
    /// Counts one request that took `took`, with its command body and reply.
    ///
    /// Latency: `HandleRequest::completeOperation` (`src/mongo/db/
    /// service_entry_point_shard_role.cpp`) adds every request's elapsed time to `Top`'s
    /// global histogram under its command's read/write type, whether it failed or not
    /// (`Top::incrementGlobalLatencyStats`; only awaitable `hello`s are left out, and the
    /// simulator has none).
    ///
    /// Counters: `ExecCommandDatabase::_initiateCommand` (same file) counts a command that
    /// was found and authorized: `gotCommand` unless it opts out
    /// (`shouldAffectCommandCounter`: `find`, `aggregate`, `getMore` and the write commands
    /// do), `gotQuery` for `find` and `aggregate` (`shouldAffectQueryCounter`). `getMore`
    /// counts in `getMore` itself (`getmore_cmd.cpp`, `gotGetMore`). Writes count what they
    /// do (`write_ops_exec.cpp`): `gotInserts` for the documents inserted, `gotUpdate` and
    /// `gotDelete` once per statement.
    pub fn record(&mut self, name: &str, body: &Document, reply: &Document, took: Duration) {
        let totals = match read_write_type(name) {
            ReadWriteType::Read => &mut self.latencies.reads,
            ReadWriteType::Write => &mut self.latencies.writes,
            ReadWriteType::Command => &mut self.latencies.commands,
        };
        totals.latency_micros += took.as_micros() as i64;
        totals.ops += 1;
        let refused =
            !ok(reply) && matches!(reply.get_i32("code"), Ok(code::COMMAND_NOT_FOUND) | Ok(code::UNAUTHORIZED));
        if refused {
            return;
        }
        let c = &mut self.counters;
        match name {
            "find" | "aggregate" => c.query += 1,
            "getMore" => c.getmore += 1,
            "insert" => c.insert += reply.get_i32("n").map(i64::from).unwrap_or(0),
            "update" => c.update += array_len(body, "updates"),
            "delete" => c.delete += array_len(body, "deletes"),
            _ => c.command += 1,
        }
    }

    /// `serverStatus.opcounters` (`OpCounters::getObj`: 64-bit counts).
    pub fn opcounters(&self) -> Document {
        let c = &self.counters;
        doc! {
            "insert": c.insert, "query": c.query, "update": c.update,
            "delete": c.delete, "getmore": c.getmore, "command": c.command,
        }
    }

    /// `serverStatus.opLatencies` (`OperationLatencyHistogram::append` without histograms):
    /// `reads`, `writes` and `commands` as `{latency, ops}`, and `transactions`, which the
    /// simulator never runs, at zero.
    pub fn op_latencies(&self) -> Document {
        let part = |t: Totals| doc! { "latency": t.latency_micros, "ops": t.ops };
        let l = &self.latencies;
        doc! {
            "reads": part(l.reads),
            "writes": part(l.writes),
            "commands": part(l.commands),
            "transactions": part(Totals::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn took() -> Duration {
        Duration::from_micros(250)
    }

    #[test]
    fn commands_count_by_what_they_do_and_refused_ones_only_in_latency() {
        let mut s = OpStats::default();
        let ok = doc! { "ok": 1.0 };
        s.record("insert", &doc! { "insert": "c", "documents": [{}, {}, {}] }, &doc! { "n": 3, "ok": 1.0 }, took());
        s.record("update", &doc! { "update": "c", "updates": [{}, {}] }, &doc! { "n": 1, "ok": 1.0 }, took());
        s.record("delete", &doc! { "delete": "c", "deletes": [{}] }, &doc! { "n": 0, "ok": 1.0 }, took());
        s.record("find", &doc! { "find": "c" }, &ok, took());
        s.record("getMore", &doc! { "getMore": 1i64 }, &ok, took());
        s.record("hello", &doc! { "hello": 1 }, &ok, took());
        let not_found = doc! { "ok": 0.0, "code": code::COMMAND_NOT_FOUND };
        s.record("bogus", &doc! { "bogus": 1 }, &not_found, took());
        let c = s.opcounters();
        assert_eq!((c.get_i64("insert"), c.get_i64("update"), c.get_i64("delete")), (Ok(3), Ok(2), Ok(1)));
        assert_eq!((c.get_i64("query"), c.get_i64("getmore"), c.get_i64("command")), (Ok(1), Ok(1), Ok(1)));
        let l = s.op_latencies();
        let reads = l.get_document("reads").unwrap();
        assert_eq!((reads.get_i64("ops"), reads.get_i64("latency")), (Ok(2), Ok(500)));
        assert_eq!(l.get_document("writes").unwrap().get_i64("ops"), Ok(3));
        // The unknown command was timed but not counted.
        assert_eq!(l.get_document("commands").unwrap().get_i64("ops"), Ok(2));
    }
}
