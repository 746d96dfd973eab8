//! Pure builders: the Kubernetes objects a MongoCluster needs, from its validated spec. No I/O;
//! the controller applies what these return.

pub mod labels;
pub mod mongod_conf;
pub mod names;
pub mod pdb;
pub mod services;
pub mod statefulset;

#[cfg(test)]
mod tests;
