//! The PodDisruptionBudget that keeps a majority of members during voluntary disruptions.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::selector;
use super::names::ClusterNames;
use super::owned_meta;
use crate::api::PodDisruptionBudgetSpec as Spec;

/// None when the user turned the budget off.
pub fn build(names: &ClusterNames, spec: &Spec, owner: &OwnerReference) -> Option<PodDisruptionBudget> {
    spec.enabled.then(|| PodDisruptionBudget {
        metadata: owned_meta(names, names.pod_disruption_budget(), owner),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(spec.max_unavailable)),
            selector: Some(LabelSelector { match_labels: Some(selector(&names.cluster)), ..LabelSelector::default() }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}
