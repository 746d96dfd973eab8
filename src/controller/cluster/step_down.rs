//! A step-down request (the `mongo.operator.rs/step-down` annotation): what to do with it. Pure.
//!
//! The request names the member that should stop being primary. It is answered once, in
//! `status.stepDown`; a request already answered asks for nothing. If the operator stops between
//! stepping the member down and writing the answer, the member is no longer the primary when
//! it looks again, so the request is answered `NotPrimary` and nothing is done twice.

use crate::api::{MongoClusterStatus, StepDownRequest, StepDownResult};
use crate::replset::{Observed, same_host};

/// What to do with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do: no request, or it is answered already.
    None,
    /// Not now (there is no primary; an election is under way).
    Wait,
    /// Answer it without doing anything.
    Answer(StepDownResult, String),
    /// Step this member (its host in the config) down, then answer `SteppedDown`.
    StepDown(String),
}

/// `host_of_pod` gives the member's host in the replica-set config for a member Pod's name,
/// None when it names no member Pod.
pub fn decide(
    request: Option<&StepDownRequest<'_>>,
    previous: Option<&MongoClusterStatus>,
    observed: &Observed,
    host_of_pod: &dyn Fn(&str) -> Option<String>,
) -> Decision {
    let Some(request) = request else { return Decision::None };
    if previous.and_then(|s| s.step_down.as_ref()).is_some_and(|a| a.request == request.token) {
        return Decision::None;
    }
    let pod = request.pod;
    let Some(host) = host_of_pod(pod) else {
        return Decision::Answer(StepDownResult::NotPrimary, format!("{pod} is not a member of this cluster"));
    };
    let Some(primary) = observed.primary.as_deref() else { return Decision::Wait };
    if !same_host(primary, &host) {
        return Decision::Answer(
            StepDownResult::NotPrimary,
            format!("{pod} is not the primary ({primary} is): nothing was done"),
        );
    }
    let successor = observed.config.members.iter().any(|m| !same_host(&m.host, primary) && m.is_electable());
    if !successor {
        return Decision::Answer(
            StepDownResult::Refused,
            format!(
                "{pod} cannot step down: no other member can become primary (a single member, or no other member \
                 with votes and priority above 0)"
            ),
        );
    }
    Decision::StepDown(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::StepDownStatus;
    use crate::replset::{MemberConfig, ReplSetConfig};

    fn host(i: i32) -> String {
        format!("db-{i}.db-members.ns.svc.cluster.local:27017")
    }

    fn host_of_pod(pod: &str) -> Option<String> {
        pod.strip_prefix("db-")?.parse().ok().filter(|i| *i < 3).map(host)
    }

    fn observed(voters: i32, primary: Option<i32>) -> Observed {
        Observed {
            config: ReplSetConfig {
                set_name: "db".into(),
                version: 3,
                term: Some(1),
                protocol_version: 1,
                members: (0..3).map(|i| MemberConfig::new(i64::from(i), host(i), i < voters)).collect(),
                other: Default::default(),
            },
            committed: true,
            primary: primary.map(host),
            members: Vec::new(),
            default_write_concern: None,
        }
    }

    fn request(token: &str) -> StepDownRequest<'_> {
        crate::api::step_down_requested(Some(token)).expect("a request")
    }

    #[test]
    fn the_named_primary_steps_down_when_another_member_can_take_over() {
        let r = request("db-0@2026-12-05T12:00:00Z");
        assert_eq!(decide(Some(&r), None, &observed(3, Some(0)), &host_of_pod), Decision::StepDown(host(0)));
        assert_eq!(decide(None, None, &observed(3, Some(0)), &host_of_pod), Decision::None);
        assert_eq!(decide(Some(&r), None, &observed(3, None), &host_of_pod), Decision::Wait);
    }

    #[test]
    fn a_request_is_answered_once_and_never_steps_down_another_member() {
        let r = request("db-0@2026-12-05T12:00:00Z");
        // After the step-down (or a crash before the answer was written): db-1 is primary now.
        let Decision::Answer(StepDownResult::NotPrimary, message) =
            decide(Some(&r), None, &observed(3, Some(1)), &host_of_pod)
        else {
            panic!("expected NotPrimary")
        };
        assert!(message.contains("db-1"), "{message}");
        let answered = MongoClusterStatus {
            step_down: Some(StepDownStatus {
                request: r.token.to_string(),
                result: StepDownResult::SteppedDown,
                message: String::new(),
                time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            }),
            ..MongoClusterStatus::default()
        };
        assert_eq!(decide(Some(&r), Some(&answered), &observed(3, Some(0)), &host_of_pod), Decision::None);
        let again = request("db-0@2026-12-05T13:00:00Z");
        assert_eq!(
            decide(Some(&again), Some(&answered), &observed(3, Some(0)), &host_of_pod),
            Decision::StepDown(host(0))
        );
        let stranger = request("other-0@2026-12-05T13:00:00Z");
        assert!(matches!(
            decide(Some(&stranger), None, &observed(3, Some(0)), &host_of_pod),
            Decision::Answer(StepDownResult::NotPrimary, _)
        ));
    }

    #[test]
    fn a_primary_no_one_can_replace_is_refused() {
        let r = request("db-0@2026-12-05T12:00:00Z");
        assert!(matches!(
            decide(Some(&r), None, &observed(1, Some(0)), &host_of_pod),
            Decision::Answer(StepDownResult::Refused, _)
        ));
    }
}
