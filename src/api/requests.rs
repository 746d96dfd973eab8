//! Requests a person makes of the operator through annotations on a MongoCluster: things done
//! once (restart these members, step the primary down), which have no place in a declarative
//! spec. `kubectl mongo restart` and `kubectl mongo stepdown` write them; anyone may, with
//! `kubectl annotate`. Each is written so that the operator can carry it out level-triggered:
//! reading it again after a crash never does it twice.

use std::collections::BTreeSet;

/// Restart these member Pods, named by UID and separated by commas. A Pod is restarted (deleted,
/// so that the StatefulSet creates it again) in the rollout's order and with its safety rules:
/// one at a time, secondaries first, the primary last and only after it has stepped down. A
/// restarted Pod has a new UID, so the request is done for it; UIDs are never reused, so a
/// request left in place asks for nothing more.
pub const RESTART_ANNOTATION: &str = "mongo.operator.rs/restart-pods";

/// Step the primary down: `<member Pod>@<when asked, RFC 3339>`. The operator steps that member
/// down if it is still the primary, once a successor has caught up, and answers in
/// `status.stepDown` with the request it answered, so a request is carried out once.
pub const STEP_DOWN_ANNOTATION: &str = "mongo.operator.rs/step-down";

/// The Pod UIDs a restart request names.
pub fn restart_requested(value: Option<&str>) -> BTreeSet<&str> {
    value.unwrap_or_default().split(',').map(str::trim).filter(|u| !u.is_empty()).collect()
}

/// A step-down request: the member to step down, read from the annotation's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepDownRequest<'a> {
    /// The annotation's whole value, echoed in `status.stepDown.request` once answered.
    pub token: &'a str,
    /// The member Pod that should stop being primary.
    pub pod: &'a str,
}

/// Reads a step-down request; None when the value is not `<pod>@<time>`.
pub fn step_down_requested(value: Option<&str>) -> Option<StepDownRequest<'_>> {
    let token = value?.trim();
    let (pod, at) = token.split_once('@')?;
    (!pod.is_empty() && !at.is_empty()).then_some(StepDownRequest { token, pod })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_request_is_a_set_of_uids() {
        assert!(restart_requested(None).is_empty());
        assert!(restart_requested(Some(" , ")).is_empty());
        let uids = restart_requested(Some("a, b,a,"));
        assert_eq!(uids.into_iter().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn a_step_down_request_names_a_member_and_a_time() {
        assert_eq!(
            step_down_requested(Some("db-0@2026-12-05T12:00:00Z")),
            Some(StepDownRequest { token: "db-0@2026-12-05T12:00:00Z", pod: "db-0" })
        );
        assert_eq!(step_down_requested(Some("db-0")), None);
        assert_eq!(step_down_requested(Some("@2026")), None);
        assert_eq!(step_down_requested(None), None);
    }
}
