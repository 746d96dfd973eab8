//! A restore's target, and what it takes to reach it: the base backup and the chunks to
//! replay. Pure and table-tested.
//!
//! What a target means: a time `T` (RFC 3339, to the second) restores every write made
//! **before** `T` and none made at or after it: the oplog is replayed up to the limit
//! `Timestamp(T, 0)`, exclusive, exactly as `mongorestore --oplogLimit T:0` applies it. So
//! `2026-12-05T10:15:00Z` is the database as it was when the clock reached 10:15:00, before
//! anything of that second. `latest` is every archived entry (the limit just after the last).
//!
//! A range is restorable from a base backup's end: the state at a time `T` can be rebuilt
//! from a base whose oplog ends before `T` and an unbroken run of chunks from that end to at
//! least `T`. The earliest time of a range is the second after its first base's end; the
//! latest is the second of its last archived entry (later targets would need entries not
//! archived yet).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::chunk::ChunkRef;
use super::timeline::{Timeline, timelines};
use super::{OpTime, Ts};

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Before this second.
    Time(DateTime<Utc>),
    /// Everything archived.
    Latest,
}

impl Target {
    /// Reads `latest` or an RFC 3339 time (fractions of a second are refused: the oplog's
    /// timestamps count whole seconds, and a target must say exactly which writes it keeps).
    pub fn parse(text: &str) -> Result<Target, String> {
        if text == "latest" {
            return Ok(Target::Latest);
        }
        let time = DateTime::parse_from_rfc3339(text)
            .map_err(|e| format!("pointInTime {text:?} is neither `latest` nor an RFC 3339 time: {e}"))?;
        if time.timestamp_subsec_nanos() != 0 {
            return Err(format!(
                "pointInTime {text:?} has a fraction of a second: the oplog counts whole seconds; give the second before \
                 which writes are kept"
            ));
        }
        Ok(Target::Time(time.to_utc()))
    }
}

/// A base backup, as far as PITR needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Base {
    /// The MongoBackup's name.
    pub name: String,
    /// The last entry of the oplog its dump carries: the restored base is the database as of
    /// this entry.
    pub oplog_end: OpTime,
}

/// A restorable range, as status shows it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Range {
    pub earliest: DateTime<Utc>,
    pub latest: DateTime<Utc>,
}

/// What a restore to the target does.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    /// The base backup restored first.
    pub base: Base,
    /// The exclusive limit of the replay (`--oplogLimit`).
    pub limit: Ts,
    /// The chunks replayed, in order: those holding entries after the base's end and before
    /// the limit (the last may hold entries past the limit, which the replay leaves out).
    pub chunks: Vec<ChunkRef>,
}

/// Why a target cannot be reached.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TargetError {
    #[error("there is no base backup with an archived oplog after it: point-in-time recovery needs one")]
    NoBase,
    #[error("{target} is outside every restorable range ({})", render(.ranges))]
    Outside { target: String, ranges: Vec<Range> },
}

fn render(ranges: &[Range]) -> String {
    if ranges.is_empty() {
        return "there are none yet".into();
    }
    ranges
        .iter()
        .map(|r| format!("{} to {}", r.earliest.to_rfc3339(), r.latest.to_rfc3339()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The bases a timeline can start from: their end is in it.
fn bases_on<'a>(line: &Timeline, bases: &'a [Base]) -> Vec<&'a Base> {
    bases.iter().filter(|b| line.after.ts <= b.oplog_end.ts && b.oplog_end.ts <= line.last.ts).collect()
}

/// The restorable ranges, oldest first.
pub fn ranges(bases: &[Base], chunks: &[ChunkRef]) -> Vec<Range> {
    timelines(chunks)
        .iter()
        .filter_map(|line| {
            let first = bases_on(line, bases).into_iter().map(|b| b.oplog_end.ts).min()?;
            let earliest = Ts::new(first.time.saturating_add(1), 0);
            (earliest.time <= line.last.ts.time)
                .then(|| Range { earliest: earliest.to_time(), latest: line.last.ts.to_time() })
        })
        .collect()
}

/// The base and chunks that reach `target`.
pub fn select(target: Target, bases: &[Base], chunks: &[ChunkRef]) -> Result<Selection, TargetError> {
    let lines = timelines(chunks);
    let usable: Vec<(&Timeline, Vec<&Base>)> =
        lines.iter().map(|l| (l, bases_on(l, bases))).filter(|(_, b)| !b.is_empty()).collect();
    if usable.is_empty() {
        return Err(TargetError::NoBase);
    }
    let (line, limit) = match target {
        Target::Latest => {
            let line = usable.iter().map(|(l, _)| *l).max_by_key(|l| l.last.ts).ok_or(TargetError::NoBase)?;
            (line, line.last.ts.next())
        }
        Target::Time(time) => {
            let outside = || TargetError::Outside { target: time.to_rfc3339(), ranges: ranges(bases, chunks) };
            let limit = Ts::at(time).ok_or_else(outside)?;
            let line = usable
                .iter()
                .filter(|(l, b)| limit <= l.last.ts && b.iter().any(|b| b.oplog_end.ts < limit))
                .map(|(l, _)| *l)
                .next_back()
                .ok_or_else(outside)?;
            (line, limit)
        }
    };
    let base = bases_on(line, bases)
        .into_iter()
        .filter(|b| b.oplog_end.ts < limit)
        .max_by_key(|b| b.oplog_end.ts)
        .cloned()
        .ok_or(TargetError::NoBase)?;
    // A chunk's entries all come after its `after`: one that follows the limit holds nothing
    // to replay.
    let chunks = line.chunks.iter().filter(|c| c.last.ts > base.oplog_end.ts && c.after.ts < limit).cloned().collect();
    Ok(Selection { base, limit, chunks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pitr::timeline::tests::{chunk, op};

    fn base(name: &str, end: u32) -> Base {
        Base { name: name.into(), oplog_end: op(end) }
    }

    fn at(time: u32) -> Target {
        Target::Time(Ts::new(time, 0).to_time())
    }

    /// Two ranges: 100..400 (bases at 100 and 250) and, after a gap, 600..800 (base at 650).
    fn world() -> (Vec<Base>, Vec<ChunkRef>) {
        let bases = vec![base("b100", 100), base("b250", 250), base("b650", 650), base("b900", 900)];
        let chunks = vec![chunk(100, 200), chunk(200, 300), chunk(300, 400), chunk(600, 700), chunk(700, 800)];
        (bases, chunks)
    }

    #[test]
    fn the_target_picks_the_newest_base_before_it_and_the_chunks_after_that_base() {
        let (bases, chunks) = world();
        // (target, base, limit, chunks replayed by their last entry)
        let table: &[(Target, &str, Ts, &[u32])] = &[
            (at(150), "b100", Ts::new(150, 0), &[200]),
            (at(250), "b100", Ts::new(250, 0), &[200, 300]),
            // b250 ends at 250:1: before the limit 251:0, not before 250:0.
            (at(251), "b250", Ts::new(251, 0), &[300]),
            (at(400), "b250", Ts::new(400, 0), &[300, 400]),
            (at(700), "b650", Ts::new(700, 0), &[700]),
            (at(800), "b650", Ts::new(800, 0), &[700, 800]),
            (Target::Latest, "b650", Ts::new(800, 2), &[700, 800]),
        ];
        for (target, want_base, want_limit, want_chunks) in table {
            let s = select(*target, &bases, &chunks).unwrap_or_else(|e| panic!("{target:?}: {e}"));
            assert_eq!(s.base.name, *want_base, "{target:?}");
            assert_eq!(s.limit, *want_limit, "{target:?}");
            let lasts: Vec<u32> = s.chunks.iter().map(|c| c.last.ts.time).collect();
            assert_eq!(lasts, *want_chunks, "{target:?}");
        }
    }

    #[test]
    fn a_target_before_every_base_in_a_gap_or_past_the_archive_is_refused_with_the_ranges() {
        let (bases, chunks) = world();
        for target in [at(100), at(50), at(500), at(650), at(801)] {
            let refused = select(target, &bases, &chunks).map(|s| s.base.name).expect_err("outside");
            let TargetError::Outside { ranges, .. } = &refused else { panic!("{refused}") };
            assert_eq!(ranges.len(), 2, "{refused}");
        }
        let message = select(at(500), &bases, &chunks).expect_err("gap").to_string();
        assert!(
            message.contains("1970-01-01T00:01:41+00:00 to 1970-01-01T00:06:40+00:00")
                && message.contains("1970-01-01T00:10:51+00:00 to 1970-01-01T00:13:20+00:00"),
            "{message}"
        );
        assert_eq!(select(Target::Latest, &[], &chunks), Err(TargetError::NoBase));
        assert_eq!(select(Target::Latest, &[base("b900", 900)], &chunks), Err(TargetError::NoBase));
    }

    #[test]
    fn ranges_start_the_second_after_a_range_s_first_base() {
        let (bases, chunks) = world();
        let r = ranges(&bases, &chunks);
        assert_eq!(
            r.iter().map(|r| (r.earliest.timestamp(), r.latest.timestamp())).collect::<Vec<_>>(),
            [(101, 400), (651, 800)]
        );
    }

    #[test]
    fn targets_are_whole_seconds_or_latest() {
        assert_eq!(Target::parse("latest"), Ok(Target::Latest));
        assert_eq!(Target::parse("2026-12-05T10:15:00+01:00"), Ok(at(1_796_462_100)));
        assert!(Target::parse("2026-12-05T10:15:00.5Z").is_err_and(|e| e.contains("fraction of a second")));
        assert!(Target::parse("yesterday").is_err());
    }
}
