//! Where the archiver starts, from what the destinations hold. Pure.
//!
//! - It continues after the newest chunk every destination holds, unless a gap was recorded
//!   right after it (the oplog rolled past it): then that range is closed.
//! - With no chunk to continue (a first start, or a closed range), it starts at the oplog end
//!   of the newest base backup taken after the closed range: a base backup and the oplog that
//!   follows it are what a restore needs.
//! - With no such base, it waits, saying why: point-in-time recovery needs a base backup.

use super::OpTime;
use super::target::Base;

/// What the archiver does.
#[derive(Clone, Debug, PartialEq)]
pub enum Start {
    /// Tail the oplog after this entry.
    After { after: OpTime, why: String },
    /// Nothing to start from yet.
    Wait(String),
}

/// `newest_chunk_last`: the last entry of the newest chunk all destinations hold (terms from
/// its manifest); `gaps_after`: the entries after which gaps were recorded.
pub fn decide(newest_chunk_last: Option<OpTime>, gaps_after: &[OpTime], bases: &[Base]) -> Start {
    let closed = newest_chunk_last.filter(|last| gaps_after.iter().any(|g| g.ts == last.ts));
    if let Some(last) = newest_chunk_last
        && closed.is_none()
    {
        return Start::After { after: last, why: format!("continuing after the last archived entry {last}") };
    }
    let newest_base = bases
        .iter()
        .filter(|b| closed.is_none_or(|c| b.oplog_end.ts > c.ts))
        .filter(|b| gaps_after.iter().all(|g| b.oplog_end.ts > g.ts))
        .max_by_key(|b| b.oplog_end.ts);
    let newest_gap = closed.or_else(|| gaps_after.iter().copied().max_by_key(|g| g.ts));
    match (newest_base, newest_gap) {
        (Some(base), _) => Start::After {
            after: base.oplog_end,
            why: format!("starting after the oplog end of base backup {} ({})", base.name, base.oplog_end),
        },
        (None, Some(gap)) => Start::Wait(format!(
            "the oplog rolled past the archive after {gap}: a new base backup starts a new restorable range"
        )),
        (None, None) => Start::Wait(
            "no base backup with a recorded oplog end yet: point-in-time recovery starts from a base backup".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pitr::Ts;

    fn op(time: u32) -> OpTime {
        OpTime::new(Ts::new(time, 1), 2)
    }

    fn base(name: &str, end: u32) -> Base {
        Base { name: name.into(), oplog_end: op(end) }
    }

    #[test]
    fn it_continues_the_archive_or_starts_from_the_newest_base_after_a_gap() {
        let bases = [base("b1", 100), base("b2", 300)];
        assert!(matches!(decide(Some(op(250)), &[], &bases), Start::After { after, .. } if after == op(250)));
        match decide(None, &[], &bases) {
            Start::After { after, why } => assert!(after == op(300) && why.contains("b2"), "{why}"),
            other => panic!("{other:?}"),
        }
        // A gap after the newest chunk: the newest base after it starts a new range.
        match decide(Some(op(250)), &[op(250)], &bases) {
            Start::After { after, .. } => assert_eq!(after, op(300)),
            other => panic!("{other:?}"),
        }
        // No base after the gap: wait for one.
        let waiting = decide(Some(op(350)), &[op(350)], &bases);
        assert!(matches!(&waiting, Start::Wait(w) if w.contains("rolled past")), "{waiting:?}");
        // A gap found before any chunk (the base's end was gone already): a newer base only.
        assert!(matches!(decide(None, &[op(300)], &bases), Start::Wait(w) if w.contains("rolled past")));
        assert!(matches!(decide(None, &[], &[]), Start::Wait(w) if w.contains("no base backup")));
    }
}
