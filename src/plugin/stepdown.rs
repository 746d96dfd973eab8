//! `kubectl mongo stepdown NAME`: asks the operator to step the primary down (the step-down
//! annotation names the member that is primary now, so a request can never step down the
//! member elected after it) and follows the answer in `status.stepDown`.

use std::time::Duration;

use kube::{Client, ResourceExt};

use super::common::{PluginError, annotate, follow, get};
use crate::api::{MongoCluster, STEP_DOWN_ANNOTATION, StepDownStatus};

/// The annotation's value: the primary and the time asked.
pub fn token(primary: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    format!("{primary}@{}", now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Writes the request; returns the token and the member named.
pub async fn request(
    client: &Client,
    namespace: &str,
    name: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(String, String), PluginError> {
    let cluster: MongoCluster = get(client, namespace, name).await?;
    if cluster.spec.paused {
        return Err(PluginError::Refused(format!(
            "{name} is paused: the operator changes nothing until `kubectl mongo resume {name}`"
        )));
    }
    let Some(primary) = cluster.status.as_ref().and_then(|s| s.primary.clone()) else {
        return Err(PluginError::Refused(format!(
            "{name} has no primary now (`kubectl mongo status {name}` says why)"
        )));
    };
    let token = token(&primary, now);
    annotate(client, namespace, &cluster.name_any(), STEP_DOWN_ANNOTATION, &token).await?;
    Ok((token, primary))
}

/// Waits for the operator's answer to `token`.
pub async fn answer(
    client: &Client,
    namespace: &str,
    name: &str,
    token: &str,
    timeout: Duration,
) -> Result<Option<StepDownStatus>, PluginError> {
    follow(client, namespace, name, timeout, |cluster: &MongoCluster| {
        cluster.status.as_ref()?.step_down.clone().filter(|a| a.request == token)
    })
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_token_names_the_primary_and_the_second() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-05T12:34:56.789Z").expect("time").to_utc();
        let token = super::token("orders-1", now);
        assert_eq!(token, "orders-1@2026-12-05T12:34:56Z");
        assert_eq!(crate::api::step_down_requested(Some(&token)).map(|r| r.pod), Some("orders-1"));
    }
}
