//! Point-in-time recovery: the oplog archived in chunks next to the base backups, and the
//! choice of what to restore for a target time. The pure parts live here: positions in the
//! oplog ([`OpTime`]), the chunks' names and manifests ([`chunk`]), the restorable ranges they
//! form ([`timeline`]), a restore's target and what it replays ([`target`]), and the slicer
//! that turns a tailed oplog into chunks ([`slicer`]).

pub mod archiver;
pub mod chunk;
pub mod command;
pub mod replay;
pub mod report;
pub mod slicer;
pub mod start;
pub mod status_server;
pub mod store;
pub mod target;
pub mod timeline;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A BSON Timestamp as the oplog's `ts` holds it: seconds since the epoch and an increment
/// that orders the entries of one second. Ordered as the server orders them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts {
    /// Seconds since the Unix epoch.
    pub time: u32,
    /// The entry's number within that second.
    pub increment: u32,
}

impl Ts {
    pub const fn new(time: u32, increment: u32) -> Ts {
        Ts { time, increment }
    }

    /// The first position of a second: every entry of an earlier second is before it.
    pub fn at(time: DateTime<Utc>) -> Option<Ts> {
        Some(Ts { time: u32::try_from(time.timestamp()).ok()?, increment: 0 })
    }

    /// The position just after this one (for a limit that keeps this entry).
    pub fn next(self) -> Ts {
        match self.increment.checked_add(1) {
            Some(increment) => Ts { increment, ..self },
            None => Ts { time: self.time.saturating_add(1), increment: 0 },
        }
    }

    /// The second it falls in, as a time.
    pub fn to_time(self) -> DateTime<Utc> {
        DateTime::from_timestamp(i64::from(self.time), 0).unwrap_or_default()
    }

    /// As mongorestore's `--oplogLimit` takes it: `<seconds>:<increment>`.
    pub fn oplog_limit(self) -> String {
        format!("{}:{}", self.time, self.increment)
    }
}

impl From<mongodb::bson::Timestamp> for Ts {
    fn from(t: mongodb::bson::Timestamp) -> Ts {
        Ts { time: t.time, increment: t.increment }
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.time, self.increment)
    }
}

/// An oplog entry's position and the term it was written in: two entries with the same `ts`
/// but different terms are different histories (one was rolled back).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OpTime {
    pub ts: Ts,
    /// The election term (`t`); -1 when the entry has none (written before protocol version 1).
    pub t: i64,
}

impl OpTime {
    pub const fn new(ts: Ts, t: i64) -> OpTime {
        OpTime { ts, t }
    }
}

impl fmt::Display for OpTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (term {})", self.ts, self.t)
    }
}
