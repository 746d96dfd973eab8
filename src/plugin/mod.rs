//! What the `kubectl mongo` plugin does (`src/bin/kubectl-mongo.rs` is its command line). It
//! acts with the user's kubeconfig and RBAC, through the objects the operator watches.

pub mod backup;
pub mod common;
pub mod connect;
pub mod logs;
pub mod pause;
pub mod report;
pub mod restart;
pub mod restore;
pub mod status;
pub mod stepdown;
