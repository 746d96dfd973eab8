//! What the oplog archiver says about the archive it keeps: the restorable ranges, the gaps,
//! the last entry archived and what it is doing. The archiver serves it on its status port
//! (`GET /status`); the operator reads it into the schedule's `status.pitr`. Pure: built from
//! what the destinations hold (the base backups and the chunks), the same facts a restore
//! selects from, so the ranges shown are the ones a restore accepts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::chunk::ChunkRef;
use super::target::{Base, Range, ranges};
use super::timeline::{gaps, timelines};

/// The port the archiver serves its report on.
pub const STATUS_PORT: u16 = 8080;
/// The report's path.
pub const STATUS_PATH: &str = "/status";

/// What the archiver does now.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activity {
    /// Reading the destinations to decide where to start.
    #[default]
    Starting,
    /// Tailing the oplog and writing a chunk every span.
    Archiving,
    /// Not archiving: no base backup to start from, or the range is closed by a gap.
    Waiting,
    /// Stopped by an error (a member or a store unreachable); it tries again.
    Retrying,
}

/// A hole in the archive: nothing is restorable between these two times.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GapReport {
    /// The last archived entry before the hole.
    pub after: DateTime<Utc>,
    /// Where archiving resumed (after a new base backup), if it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_after: Option<DateTime<Utc>>,
}

/// The archiver's report.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub activity: Activity,
    /// What it does or waits for, or the last error.
    pub message: String,
    /// The restorable ranges, oldest first (those a restore to a point in time accepts).
    #[serde(default)]
    pub ranges: Vec<Range>,
    /// The holes between them, and one after the newest when a gap closed it.
    #[serde(default)]
    pub gaps: Vec<GapReport>,
    /// The time of the last entry archived (the newest chunk's last entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_archived: Option<DateTime<Utc>>,
    /// When it wrote its newest chunk (since it started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_written: Option<DateTime<Utc>>,
    /// How much time the oplog of the member read holds, first entry to last, in seconds
    /// (as `rs.printReplicationInfo()` counts it), read after each chunk. Under twice the span,
    /// an archiver stopped for a span or two finds the oplog rolled past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oplog_window_seconds: Option<i64>,
    /// The member whose oplog it reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

impl Report {
    /// The archive as the destination holds it: `chunks` and `bases`, and the positions after
    /// which gaps were recorded (`closed_after`: a recorded gap that no chunk follows closes
    /// the newest range).
    pub fn archive(&mut self, bases: &[Base], chunks: &[ChunkRef], recorded_gaps: &[super::OpTime]) {
        let lines = timelines(chunks);
        self.ranges = ranges(bases, chunks);
        self.gaps = gaps(&lines)
            .into_iter()
            .map(|g| GapReport { after: g.after.ts.to_time(), resumed_after: Some(g.resumed_after.ts.to_time()) })
            .collect();
        let newest = lines.last().map(|l| l.last);
        self.last_archived = newest.map(|n| n.ts.to_time());
        // A gap recorded at (or after) the newest archived entry: the range ends there.
        if let Some(gap) = recorded_gaps.iter().filter(|g| newest.is_none_or(|n| g.ts >= n.ts)).max_by_key(|g| g.ts) {
            self.gaps.push(GapReport { after: gap.ts.to_time(), resumed_after: None });
        }
    }

    pub fn set(&mut self, activity: Activity, message: impl Into<String>) {
        self.activity = activity;
        self.message = message.into();
    }
}

/// Whether an oplog window of `window` seconds is too short for chunks every `span`
/// seconds: under twice the span, an archiver that stops for a span or two (a node drained, a
/// store down) finds the oplog rolled past its last entry, and the archive has a gap.
pub fn window_too_short(window: Option<i64>, span_seconds: i64) -> bool {
    window.is_some_and(|w| w < 2 * span_seconds)
}

/// How far behind the archive was when it wrote its newest chunk: seconds from that chunk's
/// last entry to the write (about a span while all is well). Fixed between chunks, so a
/// status showing it changes once a span.
pub fn lag_seconds(last_archived: Option<DateTime<Utc>>, written: Option<DateTime<Utc>>) -> Option<i64> {
    Some((written? - last_archived?).num_seconds().max(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pitr::timeline::tests::{chunk, op};

    fn base(name: &str, end: u32) -> Base {
        Base { name: name.into(), oplog_end: op(end) }
    }

    fn time(t: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(i64::from(t), 0).expect("time")
    }

    #[test]
    fn the_report_shows_the_ranges_a_restore_accepts_and_the_holes_between_them() {
        let mut r = Report::default();
        r.archive(&[base("a", 100), base("b", 650)], &[chunk(100, 200), chunk(200, 400), chunk(600, 800)], &[]);
        assert_eq!(
            r.ranges,
            vec![Range { earliest: time(101), latest: time(400) }, Range { earliest: time(651), latest: time(800) }]
        );
        assert_eq!(r.gaps, vec![GapReport { after: time(400), resumed_after: Some(time(600)) }]);
        assert_eq!(r.last_archived, Some(time(800)));
    }

    #[test]
    fn a_gap_recorded_after_the_newest_chunk_closes_the_range_until_a_new_base() {
        let mut r = Report::default();
        r.archive(&[base("a", 100)], &[chunk(100, 200)], &[op(200)]);
        assert_eq!(r.ranges, vec![Range { earliest: time(101), latest: time(200) }]);
        assert_eq!(r.gaps, vec![GapReport { after: time(200), resumed_after: None }]);
        // An older recorded gap that the archive went on from is no longer open.
        r.archive(&[base("a", 100), base("b", 300)], &[chunk(100, 200), chunk(300, 350)], &[op(200)]);
        assert_eq!(r.gaps, vec![GapReport { after: time(200), resumed_after: Some(time(300)) }]);
        assert!(r.ranges.iter().all(|range| range.latest <= time(350)));
    }

    #[test]
    fn no_chunk_yet_means_no_range_and_lag_counts_from_the_last_entry_archived_to_its_write() {
        let mut r = Report::default();
        r.archive(&[base("a", 100)], &[], &[]);
        assert!(r.ranges.is_empty() && r.last_archived.is_none());
        assert_eq!(lag_seconds(None, Some(time(500))), None);
        assert_eq!(lag_seconds(Some(time(400)), None), None, "not written since the archiver started");
        assert_eq!(lag_seconds(Some(time(400)), Some(time(500))), Some(100));
        assert_eq!(lag_seconds(Some(time(600)), Some(time(500))), Some(0), "a clock behind the primary's is no lag");
    }

    #[test]
    fn an_oplog_window_under_twice_the_span_is_too_short() {
        assert!(window_too_short(Some(1_199), 600));
        assert!(!window_too_short(Some(1_200), 600));
        assert!(!window_too_short(None, 600), "not read yet: no warning");
    }
}
