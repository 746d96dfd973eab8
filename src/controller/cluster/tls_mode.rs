//! Moving a running cluster between TLS modes without taking it down: which mode mongod.conf
//! names, which mode members are (re)started in, and which moves happen at run time. Pure.
//!
//! Members must always be able to reach each other, so the mode moves one step at a time:
//! - Disabled → Allow: a rolling restart (mongod cannot turn TLS on at run time). Restarted
//!   members accept both and still dial the others in plain text.
//! - Allow → Prefer → Require: `setParameter tlsMode` on each member, no restart; mongod allows
//!   exactly these two moves at run time (`checkTLSModeTransition` in the server's
//!   `src/mongo/util/net/ssl_parameters.cpp`).
//! - Every move down: a rolling restart into the next mode down. Require → Prefer: restarted
//!   members dial over TLS, which the others require. Prefer → Allow: restarted members dial in
//!   plain text, which the others accept. Allow → Disabled: likewise.
//!
//! mongod.conf carries the target of the step under way and is not part of the Pod template's
//! hash, so a member that restarts for any reason comes back in the mode the set is moving to.
//! The Pod template carries a restart token instead: the mode members start in, and the
//! generation of the MongoCluster at which that restart began; it changes only for a step that
//! needs restarts, which is what rolls the members.

use crate::api::TlsMode;

/// What the reconcile applies and does for TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPlan {
    /// `net.tls.mode` in mongod.conf (no TLS section at all when Disabled).
    pub conf: TlsMode,
    /// The restart token of the Pod template.
    pub token: String,
    /// A mode to set at run time on every member below it, once the set is healthy.
    pub runtime: Option<TlsMode>,
    /// The step under way, for the status.
    pub step: Option<String>,
}

/// The mode a restart token starts members in.
pub fn token_mode(token: &str) -> Option<TlsMode> {
    TlsMode::from_mongod(token.split('@').next()?)
}

fn token(mode: TlsMode, generation: i64) -> String {
    format!("{}@{generation}", mode.mongod())
}

fn up(mode: TlsMode) -> TlsMode {
    match mode {
        TlsMode::Disabled => TlsMode::Allow,
        TlsMode::Allow => TlsMode::Prefer,
        TlsMode::Prefer | TlsMode::Require => TlsMode::Require,
    }
}

fn down(mode: TlsMode) -> TlsMode {
    match mode {
        TlsMode::Require => TlsMode::Prefer,
        TlsMode::Prefer => TlsMode::Allow,
        TlsMode::Allow | TlsMode::Disabled => TlsMode::Disabled,
    }
}

/// The mode every member runs with, as far as the operator knows: what the status last said;
/// before that, the mode of the template's token (members were started in it); with no token
/// on an existing StatefulSet, Disabled (it was made before the operator knew TLS); and for a
/// cluster with no StatefulSet yet, the mode wanted (nothing runs, so nothing has to move).
pub fn in_force(reported: Option<TlsMode>, template_token: Option<&str>, exists: bool, desired: TlsMode) -> TlsMode {
    reported.or_else(|| template_token.and_then(token_mode)).unwrap_or(if exists { TlsMode::Disabled } else { desired })
}

/// The next step from `in_force` toward `desired`. `current` is the template's token, kept
/// whenever no restart is needed; `generation` makes a new token unique.
pub fn plan(desired: TlsMode, in_force: TlsMode, current: Option<&str>, generation: i64) -> TlsPlan {
    let keep = |mode: TlsMode| current.map_or_else(|| token(mode, generation), str::to_string);
    if desired == in_force {
        return TlsPlan { conf: desired, token: keep(desired), runtime: None, step: None };
    }
    if desired > in_force && in_force != TlsMode::Disabled {
        let next = up(in_force);
        return TlsPlan {
            conf: next,
            token: keep(in_force),
            runtime: Some(next),
            step: Some(format!("setting tlsMode {} on each member, without a restart", next.mongod())),
        };
    }
    // A restart step: the token names the mode and the generation the step began at, so it
    // stays while the members roll, and differs from any earlier token (a set raised at run
    // time to Require still carries the token it was started with, which may name the very
    // mode it now moves down to). An edit of the spec during the roll starts it again.
    let next = if desired > in_force { up(in_force) } else { down(in_force) };
    TlsPlan {
        conf: next,
        token: token(next, generation),
        runtime: None,
        step: Some(format!("restarting the members one at a time into tlsMode {}", next.mongod())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TlsMode::*;

    /// Walks a cluster from `from` to `to` as the reconciles would, members taking each step
    /// (a restart when the token changes, a setParameter when asked), and returns the modes
    /// the set was in and how many rolling restarts it took.
    fn walk(from: TlsMode, to: TlsMode) -> (Vec<TlsMode>, usize) {
        let mut running = from;
        let mut current = Some(token(from, 1));
        let (mut seen, mut restarts) = (vec![from], 0);
        for _ in 0..10 {
            let p = plan(to, running, current.as_deref(), 2);
            if p.step.is_none() {
                break;
            }
            if current.as_deref() != Some(p.token.as_str()) {
                restarts += 1;
                running = p.conf;
            } else if let Some(next) = p.runtime {
                running = next;
            }
            current = Some(p.token.clone());
            seen.push(running);
        }
        (seen, restarts)
    }

    #[test]
    fn tls_is_turned_on_with_one_restart_and_off_one_mode_at_a_time() {
        assert_eq!(walk(Disabled, Require), (vec![Disabled, Allow, Prefer, Require], 1));
        assert_eq!(walk(Require, Disabled), (vec![Require, Prefer, Allow, Disabled], 3));
        assert_eq!(walk(Allow, Require), (vec![Allow, Prefer, Require], 0));
        assert_eq!(walk(Require, Require), (vec![Require], 0));
    }

    #[test]
    fn a_restart_token_stays_while_the_members_roll_and_a_settled_set_keeps_its_own() {
        let first = plan(Require, Disabled, None, 7);
        assert_eq!((first.conf, first.token.as_str(), first.runtime), (Allow, "allowTLS@7", None));
        // A later reconcile of the same roll keeps the token.
        assert_eq!(plan(Require, Disabled, Some("allowTLS@7"), 7).token, "allowTLS@7");
        // Started in Prefer, raised to Require at run time, lowered again: a new token rolls.
        assert_eq!(plan(Prefer, Require, Some("preferTLS@1"), 5).token, "preferTLS@5");
        // Once Allow is in force, the rest happens at run time, on the same template.
        let second = plan(Require, Allow, Some("allowTLS@7"), 8);
        assert_eq!((second.conf, second.token.as_str(), second.runtime), (Prefer, "allowTLS@7", Some(Prefer)));
        assert_eq!(plan(Require, Require, Some("allowTLS@7"), 9).token, "allowTLS@7");
        // A new cluster starts in the mode wanted.
        assert_eq!(plan(Require, Require, None, 1).token, "requireTLS@1");
    }

    #[test]
    fn what_is_in_force_comes_from_the_status_then_the_template_then_the_age_of_the_cluster() {
        assert_eq!(in_force(Some(Prefer), Some("allowTLS@2"), true, Require), Prefer);
        assert_eq!(in_force(None, Some("allowTLS@2"), true, Require), Allow);
        assert_eq!(in_force(None, None, true, Require), Disabled, "made before the operator knew TLS");
        assert_eq!(in_force(None, None, false, Require), Require, "nothing runs yet");
    }
}
