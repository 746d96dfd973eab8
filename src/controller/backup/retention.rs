//! Which backups of a schedule to delete: pure. Successful backups are kept by count
//! (`keepLast`) and by age (`maxAge`), and the newest successful backup is never deleted, so a
//! schedule whose recent runs fail still has something to restore; nor is the newest one whose
//! verification passed, so there is always a backup known to restore. Failed backups are kept
//! only as a short history, like a CronJob's.

use chrono::{DateTime, Duration, Utc};

use crate::api::{BackupPhase, RetentionSpec};

/// Failed backups of a schedule kept for people to look at.
pub const FAILED_HISTORY: usize = 3;

/// A backup taken by a schedule, as retention sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    pub name: String,
    pub phase: Option<BackupPhase>,
    /// When it finished, or when it was created if it has not.
    pub time: DateTime<Utc>,
    /// Its verification passed.
    pub verified: bool,
}

/// `maxAge` ("12h", "30d", "8w") as a duration.
pub fn max_age(text: &str) -> Option<Duration> {
    crate::api::span(text).map(|d| Duration::seconds(d.as_secs()))
}

/// The names of the backups to delete, oldest first.
pub fn to_prune(taken: &[Taken], retention: Option<&RetentionSpec>, now: DateTime<Utc>) -> Vec<String> {
    let newest_first = |phase: BackupPhase| {
        let mut v: Vec<&Taken> = taken.iter().filter(|t| t.phase == Some(phase)).collect();
        v.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.name.cmp(&a.name)));
        v
    };
    let too_old = |t: &Taken| {
        retention.and_then(|r| r.max_age.as_deref()).and_then(max_age).is_some_and(|age| now - t.time > age)
    };
    let mut prune: Vec<&Taken> = Vec::new();
    let keep_last = retention.and_then(|r| r.keep_last).map(|n| n.max(1) as usize);
    let succeeded = newest_first(BackupPhase::Succeeded);
    let newest_verified = succeeded.iter().find(|t| t.verified).map(|t| t.name.clone());
    for (i, t) in succeeded.into_iter().enumerate() {
        // i == 0 is the newest success, and the newest verified one is the newest known to
        // restore: both kept whatever the limits say.
        let kept = i == 0 || newest_verified.as_deref() == Some(t.name.as_str());
        if !kept && (keep_last.is_some_and(|n| i >= n) || too_old(t)) {
            prune.push(t);
        }
    }
    for (i, t) in newest_first(BackupPhase::Failed).into_iter().enumerate() {
        if i >= FAILED_HISTORY || too_old(t) {
            prune.push(t);
        }
    }
    prune.sort_by_key(|t| t.time);
    prune.into_iter().map(|t| t.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, phase: BackupPhase, hours_ago: i64, now: DateTime<Utc>) -> Taken {
        Taken { name: name.into(), phase: Some(phase), time: now - Duration::hours(hours_ago), verified: false }
    }

    fn retention(keep_last: Option<i32>, max_age: Option<&str>) -> RetentionSpec {
        RetentionSpec { keep_last, max_age: max_age.map(str::to_string) }
    }

    #[test]
    fn keep_last_keeps_the_newest_successes() {
        let now = Utc::now();
        let taken: Vec<_> = (0..5).map(|i| t(&format!("b{i}"), BackupPhase::Succeeded, i * 2, now)).collect();
        assert_eq!(to_prune(&taken, Some(&retention(Some(2), None)), now), vec!["b4", "b3", "b2"]);
    }

    #[test]
    fn the_newest_verified_backup_is_kept_whatever_the_limits_say() {
        let now = Utc::now();
        let mut taken: Vec<_> = (0..5).map(|i| t(&format!("b{i}"), BackupPhase::Succeeded, i * 2, now)).collect();
        taken[3].verified = true;
        taken[4].verified = true;
        // b3 is the newest verified one; b4, verified too but older, may go.
        assert_eq!(to_prune(&taken, Some(&retention(Some(1), None)), now), vec!["b4", "b2", "b1"]);
    }

    #[test]
    fn max_age_never_removes_the_newest_success() {
        let now = Utc::now();
        let taken = vec![t("old", BackupPhase::Succeeded, 100, now), t("older", BackupPhase::Succeeded, 200, now)];
        assert_eq!(to_prune(&taken, Some(&retention(None, Some("2d"))), now), vec!["older"]);
    }

    #[test]
    fn running_backups_are_never_pruned_and_failures_keep_a_short_history() {
        let now = Utc::now();
        let mut taken: Vec<_> = (0..5).map(|i| t(&format!("f{i}"), BackupPhase::Failed, i, now)).collect();
        taken.push(t("running", BackupPhase::Running, 500, now));
        taken.push(t("pending", BackupPhase::Pending, 500, now));
        assert_eq!(to_prune(&taken, None, now), vec!["f4", "f3"]);
    }

    #[test]
    fn max_age_units() {
        assert_eq!(max_age("12h"), Some(Duration::hours(12)));
        assert_eq!(max_age("30d"), Some(Duration::days(30)));
        assert_eq!(max_age("2w"), Some(Duration::weeks(2)));
        assert_eq!(max_age(""), None);
    }
}
