//! The PodDisruptionBudget that keeps a majority of members during voluntary disruptions.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::selector;
use super::names::ClusterNames;
use super::owned_meta;
use crate::api::PodDisruptionBudgetSpec as Spec;

/// How many members may be down at once when `voters` of them vote: what the spec asks, but
/// never so many that the voters left are not a majority. Admission checks `maxUnavailable`
/// against the member count; with non-voting and delayed members (`spec.memberRoles`) fewer
/// vote, and the budget is held to them. Under three voters the spec's value stands, as
/// admission lets it for under three members.
pub fn max_unavailable(spec: &Spec, voters: usize) -> i32 {
    let safe = i32::try_from(voters.saturating_sub(1) / 2).unwrap_or(i32::MAX);
    if voters >= 3 { spec.max_unavailable.min(safe) } else { spec.max_unavailable }
}

/// None when the user turned the budget off. `voters` is how many members vote.
pub fn build(names: &ClusterNames, spec: &Spec, voters: usize, owner: &OwnerReference) -> Option<PodDisruptionBudget> {
    spec.enabled.then(|| PodDisruptionBudget {
        metadata: owned_meta(names, names.pod_disruption_budget(), owner),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(max_unavailable(spec, voters))),
            selector: Some(LabelSelector { match_labels: Some(selector(&names.cluster)), ..LabelSelector::default() }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_held_to_the_members_that_vote() {
        let two = Spec { enabled: true, max_unavailable: 2 };
        assert_eq!(max_unavailable(&two, 5), 2, "five voters survive two down");
        assert_eq!(max_unavailable(&two, 3), 1, "five members of which two do not vote: one");
        assert_eq!(max_unavailable(&two, 7), 2);
        assert_eq!(max_unavailable(&Spec { enabled: true, max_unavailable: 1 }, 1), 1, "as admission allows");
    }
}
