//! What the `kubectl mongo` plugin does (`src/bin/kubectl-mongo.rs` is its command line). It
//! acts with the user's kubeconfig and RBAC, through the objects the operator watches.

pub mod backup;
pub mod pause;
pub mod status;
