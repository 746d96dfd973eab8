//! The ranges the archived oplog covers without a hole. Chunks chain when one's `after` is
//! exactly (timestamp and term) the previous one's `last`; a chunk that chains to nothing
//! starts a new range, and the hole before it is a gap. Pure.

use serde::{Deserialize, Serialize};

use super::OpTime;
use super::chunk::ChunkRef;

/// Chunks that follow one another with no entry missing.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    /// The entry the first chunk follows: the range covers the entries after it.
    pub after: OpTime,
    /// The last entry archived.
    pub last: OpTime,
    /// Its chunks, in order.
    pub chunks: Vec<ChunkRef>,
}

/// A hole between two ranges: entries after `after` and up to `resumed_after` are not archived.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Gap {
    pub after: OpTime,
    pub resumed_after: OpTime,
}

/// The timelines the chunks form, oldest first. Two chunks that follow the same entry (an
/// archiver stopped between writing one destination and the next, then cut differently) are
/// the same history; the longer is kept.
pub fn timelines(chunks: &[ChunkRef]) -> Vec<Timeline> {
    let mut sorted: Vec<&ChunkRef> = chunks.iter().collect();
    sorted.sort_by_key(|c| (c.after.ts, c.last.ts));
    let mut out: Vec<Timeline> = Vec::new();
    for chunk in sorted {
        if let Some(line) = out.iter_mut().find(|l| l.last == chunk.after) {
            line.last = chunk.last;
            line.chunks.push(chunk.clone());
            continue;
        }
        // The same start as a chunk already chained: keep the one that reaches further.
        if let Some(line) = out.iter_mut().find(|l| l.chunks.iter().any(|c| c.after == chunk.after)) {
            if let Some(at) = line.chunks.iter().position(|c| c.after == chunk.after)
                && chunk.last.ts > line.chunks[at].last.ts
                && at + 1 == line.chunks.len()
            {
                line.chunks[at] = chunk.clone();
                line.last = chunk.last;
            }
            continue;
        }
        out.push(Timeline { after: chunk.after, last: chunk.last, chunks: vec![chunk.clone()] });
    }
    out.sort_by_key(|l| l.after.ts);
    out
}

/// The holes between consecutive timelines.
pub fn gaps(lines: &[Timeline]) -> Vec<Gap> {
    lines.windows(2).map(|w| Gap { after: w[0].last, resumed_after: w[1].after }).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pitr::Ts;

    pub fn op(time: u32) -> OpTime {
        OpTime::new(Ts::new(time, 1), 3)
    }

    pub fn chunk(after: u32, last: u32) -> ChunkRef {
        ChunkRef { after: op(after), last: op(last), manifest: format!("m-{after}-{last}") }
    }

    #[test]
    fn chunks_chain_by_their_exact_previous_entry() {
        let lines = timelines(&[chunk(200, 300), chunk(100, 200), chunk(300, 400)]);
        assert_eq!(lines.len(), 1);
        assert_eq!((lines[0].after, lines[0].last), (op(100), op(400)));
        assert_eq!(lines[0].chunks.iter().map(|c| c.last).collect::<Vec<_>>(), [op(200), op(300), op(400)]);
        assert!(gaps(&lines).is_empty());
    }

    #[test]
    fn a_chunk_after_a_missing_entry_starts_a_range_and_the_hole_is_a_gap() {
        let lines = timelines(&[chunk(100, 200), chunk(500, 600), chunk(600, 700)]);
        assert_eq!(lines.len(), 2);
        assert_eq!(gaps(&lines), [Gap { after: op(200), resumed_after: op(500) }]);
        // The same timestamp in another term is another history: not a continuation.
        let mut other_term = chunk(200, 300);
        other_term.after.t = 4;
        assert_eq!(timelines(&[chunk(100, 200), other_term]).len(), 2);
    }

    #[test]
    fn a_chunk_cut_twice_from_the_same_entry_is_kept_once_the_longer() {
        let lines = timelines(&[chunk(100, 200), chunk(200, 250), chunk(200, 300)]);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].last, op(300));
        assert_eq!(lines[0].chunks.len(), 2);
    }
}
