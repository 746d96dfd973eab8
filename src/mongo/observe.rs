//! Reads what the planner needs from the members: who is primary, the primary's config and
//! whether it is committed, and every member's state and lag.

use super::{AdminError, Credentials, MongoAdmin, Target};
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
    /// Hosts that answered but are REMOVED: they hold a config that does not list them. Their
    /// `hello` looks like a never-initiated member's; `replSetGetStatus` answered 93.
    pub removed: Vec<String>,
    /// The set as its primary (or another initiated member) reports it; None when no member
    /// that answered has a config: the set was never initiated.
    pub set: Option<Box<Observed>>,
}

/// Whether a member whose `hello` shows no valid config was never initiated (94) or was
/// REMOVED (93); `system` logs in as `__system`, which works on any member whatever users its
/// data holds (a new member has none yet).
async fn removed<A: MongoAdmin>(admin: &A, member: &Reachable, system: &Credentials) -> Result<bool, AdminError> {
    let target = Target { credentials: Some(system.clone()), ..member.target.clone() };
    match admin.status(&target).await {
        Err(AdminError::NotYetInitialized) => Ok(false),
        Err(AdminError::InvalidConfig(_)) => Ok(true),
        Err(error) => Err(error),
        // It got a config since `hello`: not removed; the next look sees its state.
        Ok(_) => Ok(false),
    }
}

/// Asks every member `hello`, then the primary (or, without one, any initiated member) for its
/// config and status. Members that do not answer are simply absent from the answers. A member
/// whose `hello` shows no config is asked `replSetGetStatus` as `system`, to tell a new member
/// from a REMOVED one.
pub async fn observe<A: MongoAdmin>(
    admin: &A,
    members: &[Reachable],
    system: &Credentials,
) -> Result<Observation, AdminError> {
    let mut initiated: Option<&Reachable> = None;
    let mut primary: Option<&Reachable> = None;
    let mut no_config = Vec::new();
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
                } else if h.has_no_config() {
                    no_config.push(m);
                } else if !h.arbiter_only {
                    // Never the arbiter: the driver does not log in to one (it holds no
                    // users), so it answers nothing that needs a login, its config included.
                    initiated = initiated.or(Some(m));
                }
            }
            Err(e) => last_error = Some(e),
        }
    }
    let standings = futures::future::join_all(no_config.iter().map(|m| removed(admin, m, system))).await;
    let mut removed_hosts = Vec::new();
    for (m, standing) in no_config.iter().zip(standings) {
        match standing {
            Ok(true) => removed_hosts.push(m.host.clone()),
            Ok(false) => {}
            // Unknown: it counts as not having answered, so it is neither initiated nor added.
            Err(e) => {
                answered.retain(|h| h != &m.host);
                last_error = Some(e);
            }
        }
    }
    let Some(source) = primary.or(initiated) else {
        // If nobody answered, an uninitiated set cannot be told from an unreachable one.
        return match last_error {
            Some(e) if answered.is_empty() => Err(e),
            _ => Ok(Observation { answered, removed: removed_hosts, set: None }),
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
    let set = Observed {
        config,
        committed: committed.unwrap_or(false),
        primary: primary.map(|p| p.host.clone()),
        members,
        default_write_concern: None,
    };
    Ok(Observation { answered, removed: removed_hosts, set: Some(Box::new(set)) })
}
