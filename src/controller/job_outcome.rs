//! What a finished backup or restore Job reports: pure, over the Job and its Pods. The
//! process writes its outcome as JSON into the container's termination message, so the
//! operator learns size, checksum and copies without access to the object stores.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};

use super::error::{Error, KubeContext};
use crate::backup::plan::Outcome;

/// A Job's state, as far as the backup is concerned.
// One value per Job read, matched on at once: boxing the outcome would save nothing and cost
// the callers their patterns into it.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    /// Still running (or waiting to run, or retrying).
    Active,
    /// Finished, with the outcome it reported: successfully, or a verification that ran
    /// and found a copy wanting (its process exits non-zero so that the Job shows it, and
    /// its outcome says what it found).
    Succeeded(Option<Outcome>),
    /// Failed for good; the best explanation available.
    Failed(String),
}

fn condition(job: &Job, type_: &str) -> Option<String> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| c.message.clone().or_else(|| c.reason.clone()).unwrap_or_default())
}

/// The termination message of the newest Pod whose main container has terminated.
fn newest_outcome(pods: &[Pod], container: &str) -> Option<Outcome> {
    let mut terminated: Vec<(&Pod, String)> = pods
        .iter()
        .filter_map(|p| {
            let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
            let status = statuses.iter().find(|s| s.name == container)?;
            let message = status.state.as_ref()?.terminated.as_ref()?.message.clone()?;
            Some((p, message))
        })
        .collect();
    terminated.sort_by(|a, b| a.0.metadata.creation_timestamp.cmp(&b.0.metadata.creation_timestamp));
    let (_, message) = terminated.pop()?;
    // With FallbackToLogsOnError the message may be log lines; the outcome is the last line.
    message.lines().rev().find_map(|line| serde_json::from_str(line.trim()).ok())
}

/// Whether `job` has not finished (neither Complete nor Failed).
pub fn is_active(job: &Job) -> bool {
    condition(job, "Complete").is_none() && condition(job, "Failed").is_none()
}

/// Reads Job `name` in `namespace` and its Pods: its state, or None when there is no such Job.
pub async fn read(client: &Client, namespace: &str, name: &str, container: &str) -> Result<Option<JobState>, Error> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let Some(job) = jobs.get_opt(name).await.doing(|| format!("reading Job {name}"))? else { return Ok(None) };
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}")))
        .await
        .doing(|| format!("listing the Pods of Job {name}"))?;
    Ok(Some(state(&job, &list.items, container)))
}

/// The state of `job`, whose Pods are `pods` and whose main container is `container`.
pub fn state(job: &Job, pods: &[Pod], container: &str) -> JobState {
    if condition(job, "Complete").is_some() {
        return JobState::Succeeded(newest_outcome(pods, container));
    }
    if let Some(message) = condition(job, "Failed") {
        return match newest_outcome(pods, container) {
            Some(Outcome::Failed { error }) => JobState::Failed(error),
            Some(verified @ Outcome::Verified { .. }) => JobState::Succeeded(Some(verified)),
            _ if message.is_empty() => JobState::Failed("the Job failed without a message".into()),
            _ => JobState::Failed(format!("the Job failed: {message}")),
        };
    }
    JobState::Active
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn job(condition: Option<(&str, &str)>) -> Job {
        Job {
            status: Some(JobStatus {
                conditions: condition.map(|(t, m)| {
                    vec![JobCondition {
                        type_: t.into(),
                        status: "True".into(),
                        message: Some(m.into()),
                        ..JobCondition::default()
                    }]
                }),
                ..JobStatus::default()
            }),
            ..Job::default()
        }
    }

    fn pod(seconds: i64, message: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                creation_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::from_second(seconds).expect("time"))),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "backup".into(),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            message: Some(message.into()),
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn a_failed_job_reports_the_newest_attempts_error() {
        let pods = [
            pod(10, r#"{"result":"failed","error":"first"}"#),
            pod(20, "log line\n{\"result\":\"failed\",\"error\":\"last\"}"),
        ];
        assert_eq!(
            state(&job(Some(("Failed", "BackoffLimitExceeded"))), &pods, "backup"),
            JobState::Failed("last".into())
        );
        assert_eq!(
            state(&job(Some(("Failed", "BackoffLimitExceeded"))), &[], "backup"),
            JobState::Failed("the Job failed: BackoffLimitExceeded".into())
        );
    }

    #[test]
    fn a_running_job_is_active_and_a_silent_success_has_no_outcome() {
        assert_eq!(state(&job(None), &[], "backup"), JobState::Active);
        assert_eq!(state(&job(Some(("Complete", ""))), &[pod(1, "not json")], "backup"), JobState::Succeeded(None));
    }
}
