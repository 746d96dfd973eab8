//! Reads what the planner needs from the members: who is primary, the primary's config and
//! whether it is committed, and every member's state and lag.

use super::{AdminError, MongoAdmin, Target};
use crate::replset::{Observed, ObservedMember};

/// A member the operator can reach: its config host name and where to connect.
#[derive(Clone, Debug)]
pub struct Reachable {
    /// `<pod>.<service>...:27017`, as in the replica-set config.
    pub host: String,
    pub target: Target,
}

/// What the members say.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// Hosts whose mongod answered `hello`.
    pub answered: Vec<String>,
    /// The set as its primary (or another initiated member) reports it; None when no member
    /// that answered has a config: the set was never initiated.
    pub set: Option<Box<Observed>>,
}

/// Asks every member `hello`, then the primary (or, without one, any initiated member) for its
/// config and status. Members that do not answer are simply absent from the answers.
pub async fn observe<A: MongoAdmin>(admin: &A, members: &[Reachable]) -> Result<Observation, AdminError> {
    let mut initiated: Option<&Reachable> = None;
    let mut primary: Option<&Reachable> = None;
    let mut answered = Vec::new();
    let mut last_error = None;
    // Concurrently, so one member that does not answer costs one timeout, not one per member.
    let hellos = futures::future::join_all(members.iter().map(|m| admin.hello(&m.target))).await;
    for (m, hello) in members.iter().zip(hellos) {
        match hello {
            Ok(h) => {
                answered.push(m.host.clone());
                if h.is_writable_primary {
                    primary = primary.or(Some(m));
                } else if !h.is_uninitialized() {
                    initiated = initiated.or(Some(m));
                }
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some(source) = primary.or(initiated) else {
        // If nobody answered, an uninitiated set cannot be told from an unreachable one.
        return match last_error {
            Some(e) if answered.is_empty() => Err(e),
            _ => Ok(Observation { answered, set: None }),
        };
    };
    let (config, committed) = admin.config(&source.target, primary.is_some()).await?;
    let status = admin.status(&source.target).await?;
    let members = status
        .members
        .iter()
        .map(|s| ObservedMember {
            host: s.name.clone(),
            state: s.state(),
            healthy: s.healthy(),
            lag_seconds: status.lag_seconds(s),
        })
        .collect();
    let set =
        Observed { config, committed: committed.unwrap_or(false), primary: primary.map(|p| p.host.clone()), members };
    Ok(Observation { answered, set: Some(Box::new(set)) })
}
