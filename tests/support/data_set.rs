//! A replica set that holds data, for the data path: simulated members (the replica-set,
//! authentication and user commands as mongod answers them) in front of a FerretDB that keeps
//! the set's documents and oplog (see `sim/src/data.rs` for what this fakes). The members'
//! hosts in the replica-set config are their loopback addresses, so the real tools reach them
//! without any name resolution.

use std::sync::Arc;
use std::time::Duration;

use mongo_operator::mongo::{Credentials, DriverAdmin, MongoAdmin, Role, Target, Timeouts, UserRequest};
use mongo_operator::replset::{MemberConfig, ReplSetConfig};
use mongo_replset_sim::{Options, Sim};

use super::servers::Ferret;

/// The keyFile of every data set in the tests (`__system`'s password).
pub const KEY_FILE: &str = "ZGF0YS1zZXQta2V5ZmlsZS1mb3ItdGVzdHM=";

pub struct DataSet {
    pub ferret: Ferret,
    pub sim: Arc<Sim>,
    pub name: String,
    /// Each member's `127.0.0.1:<port>`, also its host in the config.
    pub hosts: Vec<String>,
}

impl DataSet {
    /// `members` members, initiated, with a primary.
    pub async fn start(name: &str, members: usize) -> DataSet {
        DataSet::start_on(Ferret::start(), name, members, |_| {}).await
    }

    /// The same, in front of a FerretDB started (and perhaps prepared) by the caller, with the
    /// simulator's options changed by `configure`.
    pub async fn start_on(ferret: Ferret, name: &str, members: usize, configure: impl FnOnce(&mut Options)) -> DataSet {
        let mut opts = Options {
            set_name: name.into(),
            key_file: KEY_FILE.into(),
            election_timeout: Duration::from_millis(500),
            heartbeat_interval: Duration::from_millis(50),
            initial_sync: Duration::from_millis(100),
            noop_interval: Duration::from_millis(500),
            stepdown_handoff: Duration::from_millis(100),
            data: Some(ferret.address.clone()),
            ..Options::default()
        };
        configure(&mut opts);
        let sim = Sim::start(opts, None);
        let mut hosts = Vec::new();
        for i in 0..members {
            // The host in the config must be known before the member listens: pick the port.
            let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
            let host = format!("127.0.0.1:{port}");
            sim.add_member(&format!("m{i}"), &host, host.parse().expect("address")).await.expect("listen");
            hosts.push(host);
        }
        let set = DataSet { ferret, sim, name: name.into(), hosts };
        let config = ReplSetConfig {
            set_name: name.into(),
            version: 1,
            term: None,
            protocol_version: 1,
            members: set.hosts.iter().enumerate().map(|(i, h)| MemberConfig::new(i as i64, h, true)).collect(),
            other: Default::default(),
        };
        set.admin().initiate(&set.system(0), &config).await.expect("initiate");
        set.primary().await;
        set
    }

    pub fn admin(&self) -> DriverAdmin {
        DriverAdmin::new(Timeouts::default())
    }

    pub fn system(&self, member: usize) -> Target {
        Target {
            address: self.hosts[member].clone(),
            credentials: Some(Credentials::from_key_file(KEY_FILE)),
            tls: None,
        }
    }

    /// The primary's index, once there is one.
    pub async fn primary(&self) -> usize {
        let admin = self.admin();
        for _ in 0..300 {
            for i in 0..self.hosts.len() {
                if admin.hello(&self.system(i)).await.is_ok_and(|h| h.is_writable_primary) {
                    return i;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no primary: {}", self.sim.snapshot());
    }

    /// Creates a user on the primary, as `__system`.
    pub async fn create_user(&self, name: &str, password: &str, roles: &[(&str, &str)]) {
        let p = self.primary().await;
        let request = UserRequest {
            db: "admin".into(),
            name: name.into(),
            password: Some(password.into()),
            roles: Some(roles.iter().map(|(r, d)| Role { role: r.to_string(), db: d.to_string() }).collect()),
        };
        self.admin().create_user(&self.system(p), &request).await.expect("createUser");
    }

    /// A driver client logged in as `__system` on the primary, for seeding and reading data.
    pub async fn client(&self) -> mongodb::Client {
        let p = self.primary().await;
        let uri = format!(
            "mongodb://__system:{KEY_FILE}@{}/?directConnection=true&authSource=local&authMechanism=SCRAM-SHA-256",
            self.hosts[p]
        );
        mongodb::Client::with_uri_str(uri).await.expect("client")
    }

    /// The users the set has, as (db, name), sorted.
    pub async fn users(&self) -> Vec<(String, String)> {
        let p = self.primary().await;
        let mut users: Vec<(String, String)> = self
            .admin()
            .all_users(&self.system(p))
            .await
            .expect("usersInfo")
            .into_iter()
            .map(|u| (u.db, u.user))
            .collect();
        users.sort();
        users
    }
}

/// The throwaway mongod of a verification Job's Pod: one simulated member in front of a
/// FerretDB, without access control (mongod started without `--auth` or `--keyFile`, as the
/// Pod starts it on its loopback), with `--replSet` `set_name` and not yet initiated: the
/// verification initiates it.
pub struct Throwaway {
    pub ferret: Ferret,
    pub sim: Arc<Sim>,
    /// `127.0.0.1:<port>`, where it listens.
    pub host: String,
}

impl Throwaway {
    pub async fn start(set_name: &str) -> Throwaway {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        Throwaway::start_at(set_name, &format!("127.0.0.1:{port}")).await.expect("listen")
    }

    /// At `host`; an error when something else listens there.
    pub async fn start_at(set_name: &str, host: &str) -> std::io::Result<Throwaway> {
        let ferret = Ferret::start();
        let opts = Options {
            set_name: set_name.into(),
            election_timeout: Duration::from_millis(500),
            heartbeat_interval: Duration::from_millis(50),
            initial_sync: Duration::from_millis(100),
            noop_interval: Duration::from_millis(500),
            data: Some(ferret.address.clone()),
            access_control: false,
            ..Options::default()
        };
        let sim = Sim::start(opts, None);
        sim.add_member("m0", host, host.parse().expect("address")).await?;
        Ok(Throwaway { ferret, sim, host: host.to_string() })
    }

    /// A driver client, no credentials needed.
    pub async fn client(&self) -> mongodb::Client {
        mongodb::Client::with_uri_str(format!("mongodb://{}/?directConnection=true", self.host)).await.expect("client")
    }
}
