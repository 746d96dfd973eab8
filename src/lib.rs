//! mongo-operator: runs MongoDB replica sets on Kubernetes.
//!
//! Layers, from the bottom up (dependencies point down only):
//! - [`api`]: the custom resource types, their defaults and validation.
//! - [`runtime`]: the `run` subcommand's process: connection, CRD check, shutdown.

pub mod api;
pub mod backup;
pub mod build;
pub mod certs;
pub mod controller;
pub mod install;
pub mod mongo;
pub mod pitr;
pub mod plugin;
pub mod probe;
pub mod replset;
pub mod runtime;
pub mod telemetry;
pub mod tls;
