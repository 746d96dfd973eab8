//! The replica set, as the operator reasons about it: the config document and the planner that
//! decides the next safe change. Pure code; the `mongo` module performs the steps.

pub mod config;
pub mod planner;

pub use config::{MemberConfig, MemberSettings, ReplSetConfig, member_host, member_pod, same_host};
pub use planner::{
    Change, DesiredMember, External, MemberState, Observed, ObservedMember, Step, StepDownReason, WaitReason,
    data_voters, plan, target_voters,
};
