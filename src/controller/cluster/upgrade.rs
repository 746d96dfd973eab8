//! The featureCompatibilityVersion (FCV) after a release change. Pure.
//!
//! MongoDB's upgrade order (`reference/mongodb-replset-rules.md` §5): every member on the new
//! binary first, then `setFeatureCompatibilityVersion` on the primary. Until the FCV is raised
//! the binary can go back; from 7.0 on, raising it makes a binary downgrade a matter for
//! MongoDB support. So the operator raises it only when every member runs the new release and
//! is healthy, and then only as `spec.featureCompatibility` says: after a soak time
//! (`Automatic`), or when the user names the version (`Manual`), which is also how the FCV is
//! lowered, one release, as the first step of a downgrade.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::{FeatureCompatibilityPolicy, FeatureCompatibilitySpec, span};
use crate::mongo::Fcv;

use super::validate::Version;

/// What to do about the FCV now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FcvStep {
    /// Nothing now; the message says what happens next. Look again after the duration (the
    /// soak time's end), if any.
    Keep { message: String, recheck: Option<std::time::Duration> },
    /// Run `setFeatureCompatibilityVersion` with this version.
    Set { version: String, confirm: bool, message: String },
    /// The spec asks for an FCV these binaries cannot have.
    Refuse(String),
}

/// Everything the decision reads.
pub struct Inputs<'a> {
    pub spec: &'a FeatureCompatibilitySpec,
    /// `buildInfo.version` of every member of the set; None where it could not be read.
    pub binaries: &'a [Option<String>],
    pub fcv: &'a Fcv,
    /// Every member is a healthy, caught-up PRIMARY or SECONDARY, its Pod ready and on the
    /// current template.
    pub healthy: bool,
    /// When every member started running the current release (status `versionSince`).
    pub release_since: Option<Timestamp>,
    pub now: Timestamp,
}

/// The one release (`major.minor`) every member runs, or why there is none.
pub fn common_release(binaries: &[Option<String>]) -> Result<Version, String> {
    let mut releases: Vec<Version> = Vec::new();
    for b in binaries {
        let Some(v) = b.as_deref().and_then(Version::parse) else {
            return Err("the version of every member is not known yet".into());
        };
        releases.push(v);
    }
    let Some(first) = releases.first().copied() else { return Err("no member answered".into()) };
    if releases.iter().any(|v| (v.major, v.minor) != (first.major, first.minor)) {
        let mut names: Vec<String> = releases.iter().map(|v| v.feature_level()).collect();
        names.sort();
        names.dedup();
        return Err(format!("the members run different releases ({})", names.join(", ")));
    }
    Ok(first)
}

/// The release before `release` whose FCV its binary also accepts: the last LTS release
/// (8.0 → 7.0; a rapid release 7.3 → 7.0).
pub fn previous_release(release: &Version) -> String {
    if release.minor == 0 { format!("{}.0", release.major.saturating_sub(1)) } else { format!("{}.0", release.major) }
}

/// From 7.0 on `setFeatureCompatibilityVersion` needs `confirm: true`; 6.0 refuses it.
fn confirm(release: &Version) -> bool {
    release.major >= 7
}

/// The next FCV step.
pub fn decide(i: &Inputs<'_>) -> FcvStep {
    let keep = |message: String| FcvStep::Keep { message, recheck: None };
    let release = match common_release(i.binaries) {
        Ok(r) => r,
        Err(why) => return keep(format!("featureCompatibilityVersion {} stays: {why}", i.fcv.version)),
    };
    let level = release.feature_level();
    let set = |version: String, message: String| FcvStep::Set { version, confirm: confirm(&release), message };
    let wanted = match i.spec.policy {
        FeatureCompatibilityPolicy::Manual => i.spec.version.clone(),
        FeatureCompatibilityPolicy::Automatic => Some(level.clone()),
    };
    // An interrupted change (targetVersion set) is finished by running it again, unless the
    // spec asks for the other way.
    if let Some(target) = &i.fcv.target_version
        && wanted.as_deref().is_none_or(|w| w == target)
    {
        return set(target.clone(), format!("finishing the featureCompatibilityVersion change to {target}"));
    }
    let Some(wanted) = wanted else {
        return keep(format!(
            "featureCompatibilityVersion {} stays (policy Manual); set featureCompatibility.version to {level} to \
             raise it",
            i.fcv.version
        ));
    };
    if wanted == i.fcv.version && i.fcv.target_version.is_none() {
        return keep(format!("featureCompatibilityVersion is {wanted}"));
    }
    if wanted != level && wanted != previous_release(&release) {
        return FcvStep::Refuse(format!(
            "featureCompatibility.version {wanted} cannot be set while the members run {level}: it must be {level} \
             or {}",
            previous_release(&release)
        ));
    }
    if !i.healthy {
        return keep(format!(
            "featureCompatibilityVersion {} → {wanted} waits until every member runs {level} and is healthy",
            i.fcv.version
        ));
    }
    let raising = Version::parse(&wanted) > Version::parse(&i.fcv.version);
    if raising && i.spec.policy == FeatureCompatibilityPolicy::Automatic {
        let soak = span(&i.spec.soak_time).unwrap_or(SignedDuration::ZERO);
        let since = i.release_since.unwrap_or(i.now);
        let due = since.checked_add(soak).unwrap_or(since);
        if i.now < due {
            let left = due.duration_since(i.now).unsigned_abs();
            return FcvStep::Keep {
                message: format!(
                    "featureCompatibilityVersion {} → {wanted} at {due} (soakTime {} after every member ran {level}); \
                     until then the binary can go back to {}",
                    i.fcv.version, i.spec.soak_time, i.fcv.version
                ),
                recheck: Some(left),
            };
        }
    }
    let what = if raising { "raising" } else { "lowering" };
    set(wanted.clone(), format!("{what} featureCompatibilityVersion {} → {wanted}", i.fcv.version))
}

/// When every member started running `release` (`major.minor`): kept from the previous
/// status while the release is the same, now when it changed (or was never recorded).
pub fn release_since(
    previous_version: Option<&str>,
    previous_since: Option<Timestamp>,
    release: &Version,
    now: Timestamp,
) -> Timestamp {
    let same =
        previous_version.and_then(Version::parse).is_some_and(|p| (p.major, p.minor) == (release.major, release.minor));
    match previous_since {
        Some(since) if same => since,
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(policy: FeatureCompatibilityPolicy, soak: &str, version: Option<&str>) -> FeatureCompatibilitySpec {
        FeatureCompatibilitySpec { policy, soak_time: soak.into(), version: version.map(str::to_string) }
    }

    fn fcv(v: &str) -> Fcv {
        Fcv { version: v.into(), target_version: None, previous_version: None }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn inputs<'a>(s: &'a FeatureCompatibilitySpec, binaries: &'a [Option<String>], f: &'a Fcv) -> Inputs<'a> {
        Inputs {
            spec: s,
            binaries,
            fcv: f,
            healthy: true,
            release_since: Some(at("2026-12-01T00:00:00Z")),
            now: at("2026-12-01T12:00:00Z"),
        }
    }

    fn on(versions: &[&str]) -> Vec<Option<String>> {
        versions.iter().map(|v| Some(v.to_string())).collect()
    }

    #[test]
    fn automatic_raises_only_after_the_soak_time_on_a_healthy_set_all_on_the_new_release() {
        let s = spec(FeatureCompatibilityPolicy::Automatic, "24h", None);
        let (new, old) = (on(&["8.0.4", "8.0.4", "8.0.4"]), fcv("7.0"));
        match decide(&inputs(&s, &new, &old)) {
            FcvStep::Keep { recheck: Some(left), message } => {
                assert_eq!(left.as_secs(), 12 * 3600);
                assert!(message.contains("7.0 → 8.0 at 2026-12-02T00:00:00Z"), "{message}");
            }
            other => panic!("expected to wait for the soak time, got {other:?}"),
        }
        let mut i = inputs(&s, &new, &old);
        i.now = at("2026-12-02T00:00:01Z");
        assert!(matches!(decide(&i), FcvStep::Set { ref version, confirm: true, .. } if version == "8.0"));
        i.healthy = false;
        assert!(matches!(decide(&i), FcvStep::Keep { recheck: None, .. }), "never on an unhealthy set");
        let mixed = on(&["8.0.4", "7.0.12", "8.0.4"]);
        let mut i = inputs(&s, &mixed, &old);
        i.now = at("2026-12-09T00:00:00Z");
        match decide(&i) {
            FcvStep::Keep { message, .. } => assert!(message.contains("different releases (7.0, 8.0)"), "{message}"),
            other => panic!("never before every member runs the release, got {other:?}"),
        }
        let unknown = vec![Some("8.0.4".to_string()), None];
        assert!(matches!(decide(&inputs(&s, &unknown, &old)), FcvStep::Keep { .. }));
        let now = spec(FeatureCompatibilityPolicy::Automatic, "0s", None);
        assert!(matches!(decide(&inputs(&now, &new, &old)), FcvStep::Set { .. }));
        assert!(matches!(decide(&inputs(&now, &new, &fcv("8.0"))), FcvStep::Keep { .. }), "already raised");
    }

    #[test]
    fn manual_keeps_raises_or_lowers_one_release_as_asked() {
        let new = on(&["8.0.4", "8.0.4"]);
        let keep = spec(FeatureCompatibilityPolicy::Manual, "24h", None);
        assert!(matches!(decide(&inputs(&keep, &new, &fcv("7.0"))), FcvStep::Keep { .. }));
        let raise = spec(FeatureCompatibilityPolicy::Manual, "24h", Some("8.0"));
        // Manual ignores the soak time: the user asked.
        assert!(
            matches!(decide(&inputs(&raise, &new, &fcv("7.0"))), FcvStep::Set { ref version, .. } if version == "8.0")
        );
        let lower = spec(FeatureCompatibilityPolicy::Manual, "24h", Some("7.0"));
        match decide(&inputs(&lower, &new, &fcv("8.0"))) {
            FcvStep::Set { version, confirm, message } => {
                assert_eq!((version.as_str(), confirm), ("7.0", true));
                assert!(message.starts_with("lowering"), "{message}");
            }
            other => panic!("expected the FCV lowered, got {other:?}"),
        }
        let too_low = spec(FeatureCompatibilityPolicy::Manual, "24h", Some("6.0"));
        assert!(matches!(decide(&inputs(&too_low, &new, &fcv("8.0"))), FcvStep::Refuse(_)));
        // 6.0 binaries: no confirm (6.0 refuses the field).
        let six = on(&["6.0.15"]);
        let up = spec(FeatureCompatibilityPolicy::Manual, "0s", Some("6.0"));
        assert!(matches!(decide(&inputs(&up, &six, &fcv("5.0"))), FcvStep::Set { confirm: false, .. }));
    }

    #[test]
    fn an_interrupted_change_is_finished() {
        let s = spec(FeatureCompatibilityPolicy::Automatic, "24h", None);
        let new = on(&["8.0.4"]);
        let upgrading = Fcv { version: "7.0".into(), target_version: Some("8.0".into()), previous_version: None };
        assert!(matches!(decide(&inputs(&s, &new, &upgrading)), FcvStep::Set { ref version, .. } if version == "8.0"));
    }

    #[test]
    fn the_soak_counts_from_when_the_release_changed() {
        let r = Version::parse("8.0.4").unwrap();
        let then = at("2026-12-01T00:00:00Z");
        let now = at("2026-12-03T00:00:00Z");
        assert_eq!(release_since(Some("8.0.1"), Some(then), &r, now), then, "a patch keeps the soak");
        assert_eq!(release_since(Some("7.0.12"), Some(then), &r, now), now);
        assert_eq!(release_since(Some("8.0.4"), None, &r, now), now);
    }
}
