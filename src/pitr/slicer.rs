//! The archiver's core: from the entries a tailable cursor on `local.oplog.rs` returns, the
//! chunks to write. Pure: the archiver feeds it entries and the member's majority-committed
//! position and writes what it cuts.
//!
//! - The cursor is opened at `ts >= after`, so its first entry must be `after` itself, the
//!   last entry archived, with the same term: that proves nothing was lost in between. Any
//!   other first entry is a [`SliceError::Gap`] (the oplog rolled past it) or
//!   [`SliceError::Diverged`] (the same timestamp in another term: that entry was rolled
//!   back, which cannot happen to majority-committed entries, but is checked anyway).
//! - Only entries at or before the member's `lastWrite.majorityOpTime` are cut into chunks:
//!   entries a failover could roll back never reach the archive.
//! - No-ops are kept: they are what moves the archive (and the latest restorable time)
//!   forward while nothing is written; mongorestore skips them when it replays.

use chrono::{DateTime, Utc};
use mongodb::bson::RawDocument;

use super::{OpTime, Ts};

/// One oplog entry, its bytes exactly as the server sent them.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub op_time: OpTime,
    pub wall: Option<DateTime<Utc>>,
    pub bytes: Vec<u8>,
}

/// Why the entries cannot be archived as they come.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SliceError {
    #[error(
        "the oplog no longer holds {after}, the last entry archived: its oldest entry now is {found}; the entries in between are lost to the archive"
    )]
    Gap { after: OpTime, found: OpTime },
    #[error("the oplog holds {found} where {after} was archived: another history (a rollback)")]
    Diverged { after: OpTime, found: OpTime },
    #[error("oplog entry {found} comes after {previous}, which is not earlier")]
    OutOfOrder { previous: OpTime, found: OpTime },
    /// An entry older than one already archived: the archive lacks it, and reading again
    /// from the last archived entry would never return it. mongod never shows a cursor such
    /// an entry (it hides oplog holes until they are filled); a stand-in's oplog can.
    #[error("oplog entry {found} appeared after {archived} was archived: the archive lacks it, so the range ends here")]
    Late { archived: OpTime, found: OpTime },
    #[error("an oplog entry is malformed: {0}")]
    Malformed(String),
}

/// Reads an entry's position and wall-clock time; keeps its bytes.
pub fn read_entry(doc: &RawDocument) -> Result<Entry, SliceError> {
    let ts = doc.get_timestamp("ts").map_err(|e| SliceError::Malformed(format!("ts: {e}")))?;
    // `t` is absent from entries written before protocol version 1.
    let t = match doc.get("t") {
        Ok(Some(v)) => v.as_i64().or_else(|| v.as_i32().map(i64::from)).unwrap_or(-1),
        _ => -1,
    };
    let wall = doc.get_datetime("wall").ok().map(|d| DateTime::<Utc>::from(d.to_system_time()));
    Ok(Entry { op_time: OpTime::new(ts.into(), t), wall, bytes: doc.as_bytes().to_vec() })
}

/// Splits documents written back to back (an `oplog.bson`, a decoded chunk).
pub fn documents(bytes: &[u8]) -> impl Iterator<Item = Result<&RawDocument, SliceError>> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let length = rest.get(..4).map(|l| i32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize);
        let Some(length) = length.filter(|l| *l >= 5 && *l <= rest.len()) else {
            rest = &[];
            return Some(Err(SliceError::Malformed("a document's length runs past the end".into())));
        };
        let (doc, tail) = rest.split_at(length);
        rest = tail;
        Some(RawDocument::from_bytes(doc).map_err(|e| SliceError::Malformed(e.to_string())))
    })
}

/// Entries cut into a chunk.
#[derive(Clone, Debug, PartialEq)]
pub struct Cut {
    /// The entry the chunk follows.
    pub after: OpTime,
    pub entries: Vec<Entry>,
}

impl Cut {
    pub fn first(&self) -> Option<OpTime> {
        self.entries.first().map(|e| e.op_time)
    }

    pub fn last(&self) -> Option<&Entry> {
        self.entries.last()
    }

    /// The chunk's content: the entries back to back.
    pub fn bytes(&self) -> Vec<u8> {
        self.entries.iter().flat_map(|e| e.bytes.iter().copied()).collect()
    }
}

/// How many of the entries read last are remembered, to tell one returned twice from one
/// never seen (about 5 MB).
const REMEMBERED: usize = 200_000;

/// Follows the oplog from the last entry archived.
#[derive(Debug)]
pub struct Slicer {
    after: OpTime,
    /// The entry the cursor's first must be: `after`, or the newest read when it was opened
    /// again.
    expect: OpTime,
    confirmed: bool,
    pending: Vec<Entry>,
    /// The positions of the entries read last, oldest first, and the same as a set.
    seen: std::collections::VecDeque<OpTime>,
    seen_set: std::collections::HashSet<OpTime>,
    /// Entries the cursor returned a second time, skipped.
    repeated: u64,
}

impl Slicer {
    /// Continues after `after`, which the cursor's first entry must be.
    pub fn new(after: OpTime) -> Slicer {
        Slicer {
            after,
            expect: after,
            confirmed: false,
            pending: Vec::new(),
            seen: std::collections::VecDeque::new(),
            seen_set: std::collections::HashSet::new(),
            repeated: 0,
        }
    }

    /// Where a new cursor must start: the newest entry read, cut or not.
    pub fn resume_point(&self) -> OpTime {
        self.pending.last().map_or(self.after, |e| e.op_time)
    }

    /// A new cursor is opened at [`Slicer::resume_point`]: its first entry must be that one.
    pub fn reopen(&mut self) {
        self.expect = self.resume_point();
        self.confirmed = false;
    }

    /// Puts back a cut that could not be written, to be cut again.
    pub fn unwind(&mut self, cut: Cut) {
        self.after = cut.after;
        let mut entries = cut.entries;
        entries.append(&mut self.pending);
        self.pending = entries;
    }

    /// The last entry cut into a chunk (or the starting point).
    pub fn after(&self) -> OpTime {
        self.after
    }

    /// Entries read but not cut yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether the cursor's first entry proved the archive continuous.
    pub fn confirmed(&self) -> bool {
        self.confirmed
    }

    /// Entries the cursor returned a second time, skipped so far.
    pub fn repeated(&self) -> u64 {
        self.repeated
    }

    fn remember(&mut self, op_time: OpTime) {
        if self.seen_set.insert(op_time) {
            self.seen.push_back(op_time);
        }
        while self.seen.len() > REMEMBERED {
            if let Some(old) = self.seen.pop_front() {
                self.seen_set.remove(&old);
            }
        }
    }

    /// Takes the next entry the cursor returned.
    pub fn push(&mut self, entry: Entry) -> Result<(), SliceError> {
        let found = entry.op_time;
        if !self.confirmed {
            if found == self.expect {
                self.confirmed = true;
                self.remember(found);
                return Ok(());
            }
            return Err(if found.ts == self.expect.ts {
                SliceError::Diverged { after: self.expect, found }
            } else {
                SliceError::Gap { after: self.expect, found }
            });
        }
        let previous = self.pending.last().map_or(self.after, |e| e.op_time);
        // An entry read before, returned again (a stand-in's cursor does; mongod's does not):
        // the same position is the same entry (`ts` is unique in an oplog), already held.
        if found.ts <= previous.ts && self.seen_set.contains(&found) {
            self.repeated += 1;
            return Ok(());
        }
        if found.ts <= self.after.ts {
            return Err(SliceError::Late { archived: self.after, found });
        }
        if found.ts <= previous.ts {
            return Err(SliceError::OutOfOrder { previous, found });
        }
        self.remember(found);
        self.pending.push(entry);
        Ok(())
    }

    /// Cuts the entries at or before `majority` into a chunk, if there are any.
    pub fn cut(&mut self, majority: Ts) -> Option<Cut> {
        let n = self.pending.iter().take_while(|e| e.op_time.ts <= majority).count();
        if n == 0 {
            return None;
        }
        let entries: Vec<Entry> = self.pending.drain(..n).collect();
        let cut = Cut { after: self.after, entries };
        if let Some(last) = cut.last() {
            self.after = last.op_time;
        }
        Some(cut)
    }
}

/// The entries of decoded chunks that come after `after`, back to back: the `oplog.bson` a
/// restore replays on top of a base whose oplog ends at `after` (mongorestore's
/// `--oplogLimit` bounds it above).
pub fn replay_file<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, after: Ts) -> Result<(Vec<u8>, u64), SliceError> {
    let mut out = Vec::new();
    let mut count = 0;
    for chunk in chunks {
        for doc in documents(chunk) {
            let doc = doc?;
            let entry = read_entry(doc)?;
            if entry.op_time.ts > after {
                out.extend_from_slice(doc.as_bytes());
                count += 1;
            }
        }
    }
    Ok((out, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{Timestamp, rawdoc};

    fn entry(time: u32, t: i64, op: &str) -> Entry {
        let doc = rawdoc! { "ts": Timestamp { time, increment: 1 }, "t": t, "op": op, "ns": "shop.orders", "o": { "n": i64::from(time) } };
        read_entry(&doc).expect("entry")
    }

    #[test]
    fn the_first_entry_must_be_the_last_archived_one() {
        let mut s = Slicer::new(entry(100, 2, "i").op_time);
        assert!(s.push(entry(100, 2, "i")).is_ok() && s.confirmed());
        assert_eq!(s.pending(), 0, "the entry already archived is not archived again");

        let mut rolled = Slicer::new(entry(100, 2, "i").op_time);
        let gap = rolled.push(entry(150, 2, "i")).expect_err("gap");
        assert!(matches!(gap, SliceError::Gap { .. }), "{gap}");
        assert!(gap.to_string().contains("lost to the archive"));
        let mut other = Slicer::new(entry(100, 2, "i").op_time);
        assert!(matches!(other.push(entry(100, 3, "i")), Err(SliceError::Diverged { .. })));
    }

    #[test]
    fn only_majority_committed_entries_are_cut_and_each_chunk_follows_the_last() {
        let mut s = Slicer::new(entry(100, 2, "n").op_time);
        for (time, op) in [(100, "n"), (101, "i"), (102, "n"), (103, "u"), (104, "d")] {
            s.push(entry(time, 2, op)).expect("in order");
        }
        assert_eq!(s.cut(Ts::new(100, 5)), None, "nothing committed past the start");
        let first = s.cut(Ts::new(102, 1)).expect("a chunk");
        assert_eq!(first.after, entry(100, 2, "n").op_time);
        assert_eq!(first.entries.iter().map(|e| e.op_time.ts.time).collect::<Vec<_>>(), [101, 102]);
        let second = s.cut(Ts::new(200, 0)).expect("a chunk");
        assert_eq!(second.after, first.last().expect("last").op_time);
        assert_eq!(second.first().map(|o| o.ts.time), Some(103));
        assert_eq!(s.pending(), 0);
        s.push(entry(105, 2, "i")).expect("in order");
        assert!(
            matches!(s.push(entry(105, 3, "i")), Err(SliceError::OutOfOrder { .. })),
            "never read, not archived yet"
        );
        s.push(entry(105, 2, "i")).expect("read before: returned again, skipped");
        s.push(entry(103, 2, "i")).expect("archived before: returned again, skipped");
        assert_eq!((s.repeated(), s.pending()), (2, 1));
        let late = s.push(entry(103, 3, "i")).expect_err("never read, and archived past it");
        assert_eq!(late, SliceError::Late { archived: entry(104, 2, "d").op_time, found: entry(103, 3, "i").op_time });
    }

    #[test]
    fn a_cursor_opened_again_resumes_at_the_newest_entry_and_a_failed_write_is_cut_again() {
        let mut s = Slicer::new(entry(100, 2, "n").op_time);
        for time in 100..=103 {
            s.push(entry(time, 2, "i")).expect("in order");
        }
        assert_eq!(s.resume_point(), entry(103, 2, "i").op_time);
        s.reopen();
        assert!(matches!(s.push(entry(104, 2, "i")), Err(SliceError::Gap { .. })), "103 must come first");
        s.reopen();
        s.push(entry(103, 2, "i")).expect("the newest read");
        s.push(entry(104, 2, "i")).expect("then on");
        let cut = s.cut(Ts::new(102, 1)).expect("cut");
        s.unwind(cut.clone());
        assert_eq!((s.after(), s.pending()), (entry(100, 2, "n").op_time, 4));
        assert_eq!(s.cut(Ts::new(102, 1)), Some(cut));
    }

    #[test]
    fn a_replay_file_holds_the_entries_after_the_base_byte_for_byte() {
        let mut s = Slicer::new(entry(100, 2, "n").op_time);
        for time in 100..=105 {
            s.push(entry(time, 2, "i")).expect("in order");
        }
        let chunk = s.cut(Ts::new(105, 1)).expect("chunk").bytes();
        let (file, count) = replay_file([chunk.as_slice()], Ts::new(102, 1)).expect("replay");
        assert_eq!(count, 3);
        let times: Vec<u32> =
            documents(&file).map(|d| read_entry(d.expect("doc")).expect("entry").op_time.ts.time).collect();
        assert_eq!(times, [103, 104, 105]);
        assert_eq!(&file[..], &chunk[chunk.len() - file.len()..], "the same bytes");
        assert!(replay_file([&chunk[..chunk.len() - 1]], Ts::new(0, 0)).is_err(), "a truncated chunk is refused");
    }
}
