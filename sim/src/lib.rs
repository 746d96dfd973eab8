//! A MongoDB replica-set simulator for tests: it speaks the wire protocol (OP_MSG) well enough
//! for the real `mongodb` driver, enforces the real server's replica-set rules with their
//! error codes ([`rules`]), and simulates elections, replication lag and config commitment.
//!
//! It is test infrastructure, not a database: it answers the commands an operator uses
//! (hello, auth, replica-set and user management, FCV) itself, and stores no documents unless
//! given a FerretDB to keep the set's data in ([`data`]); it does not
//! simulate chaining, priority takeover, rollback, TLS, arbiters' special behaviour beyond the
//! config rules, or the localhost exception (the operator reaches mongod over the network,
//! where the exception never applies).

pub mod commands;
pub mod control;
pub mod data;
pub mod diagnostics;
pub mod net;
pub mod op_stats;
pub mod rules;
pub mod scram;
pub mod tls;
pub mod wire;
pub mod world;

pub use net::{CommandLog, Sim};
pub use world::Options;
