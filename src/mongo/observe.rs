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
pub enum Observation {
    /// No member that answered has a config: the set was never initiated.
    NotInitiated,
    /// The set exists.
    Initiated(Box<Observed>),
}

/// Asks each member `hello`, then the primary (or, without one, any initiated member) for its
/// config and status. Members that do not answer are simply absent from the answers.
pub async fn observe<A: MongoAdmin>(admin: &A, members: &[Reachable]) -> Result<Observation, AdminError> {
    let mut initiated: Option<&Reachable> = None;
    let mut primary: Option<&Reachable> = None;
    let mut answered = false;
    let mut last_error = None;
    for m in members {
        match admin.hello(&m.target).await {
            Ok(h) if h.is_writable_primary => {
                primary = Some(m);
                break;
            }
            Ok(h) => {
                answered = true;
                if !h.is_uninitialized() {
                    initiated = initiated.or(Some(m));
                }
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some(source) = primary.or(initiated) else {
        // If nobody answered, an uninitiated set cannot be told from an unreachable one.
        return match last_error {
            Some(e) if !answered => Err(e),
            _ => Ok(Observation::NotInitiated),
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
    Ok(Observation::Initiated(Box::new(Observed {
        config,
        committed: committed.unwrap_or(false),
        primary: primary.map(|p| p.host.clone()),
        members,
    })))
}
