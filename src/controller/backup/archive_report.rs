//! The oplog archiver's report, read by the operator from the archiver's status port and
//! shown in the schedule's `status.pitr`: the restorable ranges, the gaps, the lag. The
//! operator never reads the stores itself (their credentials are the archiver's and the
//! Jobs'); the archiver reports what it reads and writes there.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use crate::api::{PitrGap, PitrRange, PitrStatus};
use crate::controller::error::{Error, KubeContext};
use crate::controller::to_time;
use crate::pitr::report::{Report, STATUS_PATH, STATUS_PORT, lag_seconds};

/// How long the operator waits for the report.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The archiver Pod's address, when one runs: `selector` is its Deployment's.
pub async fn pod_address(pods: &Api<Pod>, selector: &str) -> Result<Option<String>, Error> {
    let list =
        pods.list(&ListParams::default().labels(selector)).await.doing(|| "listing the archiver's Pods".into())?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .find_map(|p| p.status.and_then(|s| s.pod_ip)))
}

/// Reads the report from the archiver at `ip`.
pub async fn read(ip: &str) -> Result<Report, String> {
    let host = if ip.contains(':') { format!("[{ip}]") } else { ip.to_string() };
    let url = format!("http://{host}:{STATUS_PORT}{STATUS_PATH}");
    let client = reqwest::Client::builder().timeout(READ_TIMEOUT).build().map_err(|e| e.to_string())?;
    let response = client.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let body = response.bytes().await.map_err(|e| format!("{url}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("{url}: not a report: {e}"))
}

/// `status` with what `report` says. Pure; nothing in it depends on when it was read, so the
/// status changes only when the archive does (a reconcile writing it would otherwise bring
/// another).
pub fn show(status: &mut PitrStatus, report: &Report) {
    status.restorable_ranges = report
        .ranges
        .iter()
        .filter_map(|r| Some(PitrRange { earliest: to_time(r.earliest)?, latest: to_time(r.latest)? }))
        .collect();
    status.earliest_restorable_time = status.restorable_ranges.first().map(|r| r.earliest.clone());
    status.latest_restorable_time = status.restorable_ranges.last().map(|r| r.latest.clone());
    status.gaps = report
        .gaps
        .iter()
        .filter_map(|g| Some(PitrGap { after: to_time(g.after)?, resumed_after: g.resumed_after.and_then(to_time) }))
        .collect();
    status.lag_seconds = lag_seconds(report.last_archived, report.last_written);
    status.last_chunk_time = report.last_written.and_then(to_time);
    status.oplog_window_seconds = report.oplog_window_seconds;
    status.message = Some(report.message.clone());
}

/// A gap the previous status did not show: one the archiver found since.
pub fn new_gaps<'a>(before: &[PitrGap], now: &'a [PitrGap]) -> Vec<&'a PitrGap> {
    now.iter().filter(|g| !before.iter().any(|b| b.after == g.after)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PitrPhase;
    use crate::pitr::report::{Activity, GapReport};
    use crate::pitr::target::Range;
    use chrono::{DateTime, Utc};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("time")
    }

    #[test]
    fn the_report_becomes_the_window_the_gaps_and_the_lag_of_the_newest_chunk() {
        let report = Report {
            activity: Activity::Archiving,
            message: "reading the oplog of orders-1".into(),
            ranges: vec![
                Range { earliest: at(1_000), latest: at(2_000) },
                Range { earliest: at(3_000), latest: at(4_000) },
            ],
            gaps: vec![GapReport { after: at(2_000), resumed_after: Some(at(2_900)) }],
            last_archived: Some(at(4_000)),
            last_written: Some(at(4_600)),
            oplog_window_seconds: Some(86_400),
            member: Some("orders-1".into()),
        };
        let mut status = PitrStatus::new(PitrPhase::Running, Some("orders-oplog-archiver".into()), None);
        show(&mut status, &report);
        assert_eq!(status.earliest_restorable_time, to_time(at(1_000)));
        assert_eq!(status.latest_restorable_time, to_time(at(4_000)));
        assert_eq!(status.restorable_ranges.len(), 2);
        assert_eq!((status.lag_seconds, status.last_chunk_time.clone()), (Some(600), to_time(at(4_600))));
        assert_eq!(status.oplog_window_seconds, Some(86_400));
        let again = status.clone();
        show(&mut status, &report);
        assert_eq!(status, again, "the same report, the same status: no write, no new reconcile");
        assert_eq!(status.message.as_deref(), Some("reading the oplog of orders-1"));
        let before = status.gaps.clone();
        assert!(new_gaps(&before, &status.gaps).is_empty(), "a gap already shown is not new");
        assert_eq!(new_gaps(&[], &status.gaps).len(), 1);
    }
}
