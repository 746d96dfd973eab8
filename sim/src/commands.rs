//! The commands the simulator answers, with the real server's replies and error codes.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, DateTime, Document, Timestamp, doc};

use crate::rules::{self, Refusal, code, code_name};
use crate::scram::{self, Conversation, Credentials};
use crate::world::{SimMember, State, User, World};

/// Roles that exist on the server, for createUser/updateUser validation.
const BUILTIN_ROLES: &[&str] = &[
    "read",
    "readWrite",
    "dbAdmin",
    "dbOwner",
    "userAdmin",
    "clusterAdmin",
    "clusterManager",
    "clusterMonitor",
    "hostManager",
    "backup",
    "restore",
    "readAnyDatabase",
    "readWriteAnyDatabase",
    "userAdminAnyDatabase",
    "dbAdminAnyDatabase",
    "root",
    "__system",
];

/// Per-connection state.
#[derive(Default)]
pub struct Session {
    /// The authenticated user's database and name. Roles are looked up on every command, so
    /// role changes and drops apply to open connections, as on a real server.
    pub user: Option<(String, String)>,
    /// Open conversations: id, state, and whether the client asked to skip the empty exchange.
    conversations: Vec<(i32, Conversation, bool)>,
    next_conversation: i32,
    pub connection_id: i64,
    /// The server name the client sent in TLS SNI, if it connected over TLS and sent one:
    /// what picks its split horizon in `hello`.
    pub sni: Option<String>,
    /// This connection's own connection to the set's data store, opened on first use.
    backend: Option<crate::data::Backend>,
}

impl Session {
    pub fn new(connection_id: i64) -> Session {
        Session { connection_id, ..Session::default() }
    }
}

pub type Shared = Arc<Mutex<World>>;

pub fn lock(world: &Shared) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn error(code: i32, message: impl Into<String>) -> Document {
    doc! { "ok": 0.0, "errmsg": message.into(), "code": code, "codeName": code_name(code).into_owned() }
}

fn refusal(r: Refusal) -> Document {
    error(r.code, r.message)
}

/// What a command needs from the authenticated user (`builtin_roles.yml`).
enum Needs {
    Nothing,
    ClusterMonitor,
    /// `listDatabases`, `getParameter`, `serverStatus`: what monitoring and the `backup` role
    /// both may run.
    ClusterRead,
    ClusterManager,
    UserAdmin(String),
    /// `_mergeAuthzCollections` and `applyOps`: the `restore` role's cluster actions.
    Restore,
    /// A data command, on a collection when it names one.
    Data(crate::data::Access, Option<String>),
    /// `hostManager`'s actions (`setParameter`).
    HostManager,
    /// Only `root` and `__system`.
    Anything,
}

fn needs(name: &str, db: &str) -> Needs {
    match name {
        "hello" | "isMaster" | "ismaster" | "ping" | "buildInfo" | "buildinfo" | "saslStart" | "saslContinue"
        | "endSessions" | "logout" => Needs::Nothing,
        "replSetGetStatus" | "replSetGetConfig" | "getDiagnosticData" => Needs::ClusterMonitor,
        "getParameter" | "serverStatus" | "listDatabases" => Needs::ClusterRead,
        "replSetInitiate" | "replSetReconfig" | "replSetStepDown" | "setFeatureCompatibilityVersion" => {
            Needs::ClusterManager
        }
        // The `setDefaultRWConcern` action on the cluster, which `clusterManager` grants; the
        // `getDefaultRWConcern` action, which `clusterMonitor` grants.
        "setDefaultRWConcern" => Needs::ClusterManager,
        "getDefaultRWConcern" => Needs::ClusterMonitor,
        "createUser" | "updateUser" | "dropUser" | "usersInfo" => Needs::UserAdmin(db.to_string()),
        "_mergeAuthzCollections" | "applyOps" => Needs::Restore,
        // The `setParameter` action: `hostManager`, which `clusterAdmin` includes.
        "setParameter" => Needs::HostManager,
        // The `rotateCertificates` action on the cluster (`RotateCertificatesCmd::
        // doCheckAuthorization`), which `clusterAdmin` grants.
        "rotateCertificates" => Needs::HostManager,
        _ => Needs::Anything,
    }
}

fn allowed(roles: &[(String, String)], need: &Needs) -> bool {
    let has = |r: &str, d: &str| roles.iter().any(|(role, db)| role == r && db == d);
    if has("__system", "admin") || has("root", "admin") {
        return true;
    }
    let monitor = ["clusterMonitor", "clusterManager", "clusterAdmin"].iter().any(|r| has(r, "admin"));
    match need {
        Needs::Nothing => true,
        Needs::ClusterMonitor => monitor,
        Needs::ClusterRead => monitor || has("backup", "admin") || has("readAnyDatabase", "admin"),
        Needs::ClusterManager => ["clusterManager", "clusterAdmin"].iter().any(|r| has(r, "admin")),
        Needs::HostManager => ["hostManager", "clusterAdmin"].iter().any(|r| has(r, "admin")),
        Needs::UserAdmin(db) => has("userAdminAnyDatabase", "admin") || has("userAdmin", db),
        Needs::Restore => has("restore", "admin"),
        Needs::Data(..) | Needs::Anything => false,
    }
}

/// This connection's connection to the set's data store: None for a set without data.
async fn backend<'a>(world: &Shared, session: &'a mut Session) -> Option<Result<&'a mut crate::data::Backend, String>> {
    let address = lock(world).opts.data.clone()?;
    if session.backend.is_none() {
        match crate::data::Backend::connect(&address).await {
            Ok(b) => session.backend = Some(b),
            Err(e) => return Some(Err(e)),
        }
    }
    session.backend.as_mut().map(Ok)
}

/// A set that holds data keeps its featureCompatibilityVersion document in
/// `admin.system.version`, as mongod does.
async fn write_fcv_document(world: &Shared) -> Document {
    let (address, fcv) = {
        let w = lock(world);
        (w.opts.data.clone(), w.fcv.clone())
    };
    if let (Some(address), Some(fcv)) = (address, fcv)
        && let Err(e) = crate::data::write_fcv(&address, &fcv).await
    {
        return error(code::BAD_VALUE, e);
    }
    doc! { "ok": 1.0 }
}

/// Passes a data command to the store and its reply back.
async fn forward(backend: &mut crate::data::Backend, db: &str, body: Document) -> Document {
    match backend.run(db, body).await {
        Ok(reply) => reply,
        Err(e) => error(code::BAD_VALUE, format!("the data store did not answer: {e}")),
    }
}

fn int_field(body: &Document, key: &str) -> Option<i64> {
    match body.get(key)? {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) => Some(*v as i64),
        _ => None,
    }
}

fn optime(world: &World, applied: usize) -> (Document, DateTime) {
    let entry = applied.checked_sub(1).and_then(|i| world.oplog.get(i));
    let (wall, term) = entry.map_or((SystemTime::UNIX_EPOCH, -1), |e| (e.wall, e.term));
    let secs = wall.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let ts = Timestamp {
        time: u32::try_from(secs).unwrap_or(u32::MAX),
        increment: u32::try_from(applied).unwrap_or(u32::MAX),
    };
    (doc! { "ts": ts, "t": term }, DateTime::from_system_time(wall))
}

/// An entry of the data store's oplog as an optime, and its date.
fn data_optime(world: &World, applied: usize) -> (Document, DateTime) {
    match applied.checked_sub(1).and_then(|i| world.data_oplog.get(i)) {
        Some(e) => (doc! { "ts": e.ts, "t": e.t }, DateTime::from_system_time(e.wall)),
        None => (doc! { "ts": Timestamp { time: 0, increment: 0 }, "t": -1_i64 }, DateTime::from_millis(0)),
    }
}

/// A member's position in one of the oplogs, and the optime at a position of it.
type Position = fn(&SimMember) -> usize;
type OpTimeAt = fn(&World, usize) -> (Document, DateTime);

/// `hello`'s `lastWrite`, as `ReplicationCoordinatorImpl::_makeHelloResponse`
/// (`repl/replication_coordinator_impl.cpp`) fills it: the member's last applied optime, and
/// `majorityOpTime` from its committed snapshot, present once it has one. For a set holding
/// data, both are positions in the data store's oplog (the entries clients' writes made),
/// which is the oplog a reader of `local.oplog.rs` sees.
fn last_write(world: &World, m: &SimMember) -> Document {
    let (position, optime): (Position, OpTimeAt) =
        if world.opts.data.is_some() { (|m| m.data_applied, data_optime) } else { (|m| m.applied, optime) };
    let (op, date) = optime(world, position(m));
    let mut last = doc! { "opTime": op, "lastWriteDate": date };
    if let Some(committed) = world.commit_point(m, position).filter(|c| *c > 0) {
        let (op, date) = optime(world, committed);
        last.insert("majorityOpTime", op);
        last.insert("majorityWriteDate", date);
    }
    last
}

/// Answers one command received by member `me`.
pub async fn handle(world: &Shared, me: &str, session: &mut Session, mut body: Document) -> Document {
    let Some(name) = body.keys().next().cloned() else { return error(code::BAD_VALUE, "empty command") };
    let db = body.get_str("$db").unwrap_or("admin").to_string();
    for key in ["$db", "lsid", "$clusterTime", "$readPreference", "apiVersion", "txnNumber"] {
        body.remove(key);
    }
    // A data command goes to the data store as it came (less the session fields above).
    let forwarded = body.clone();
    let need = match crate::data::access(&name, &body) {
        Some(access) => Needs::Data(access, crate::data::collection(&name, &body)),
        None => needs(&name, &db),
    };
    let access_control = lock(world).opts.access_control;
    if access_control && !matches!(need, Needs::Nothing) {
        let Some((user_db, user)) = &session.user else {
            return error(code::UNAUTHORIZED, format!("Command {name} requires authentication"));
        };
        let roles = if user_db == "local" && user == "__system" {
            vec![("__system".to_string(), "admin".to_string())]
        } else {
            lock(world).users.get(&(user_db.clone(), user.clone())).map(|u| u.roles.clone()).unwrap_or_default()
        };
        let permitted = match &need {
            Needs::Data(access, coll) => crate::data::may(&roles, *access, &db, coll.as_deref()),
            other => allowed(&roles, other),
        };
        if !permitted {
            return error(code::UNAUTHORIZED, format!("not authorized on {db} to execute command {{ {name}: ... }}"));
        }
    }
    match name.as_str() {
        "hello" | "isMaster" | "ismaster" => hello(world, me, session, &name, &body),
        "ping" | "endSessions" | "logout" => doc! { "ok": 1.0 },
        "buildInfo" | "buildinfo" => {
            let w = lock(world);
            let version = w.member(me).map(|m| m.version.clone()).unwrap_or_default();
            let parts: Vec<i32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
            doc! { "version": version, "versionArray": parts, "ok": 1.0 }
        }
        "saslStart" => sasl_start(world, me, session, &db, &body),
        "saslContinue" => sasl_continue(session, &db, &body),
        "getParameter" => {
            let w = lock(world);
            // `FeatureCompatibilityVersionParameter::append`: the FCV document without its
            // `_id`; 258 before the set (and its FCV document) exists. The simulator's FCV
            // changes at once, so it never shows `targetVersion` / `previousVersion`.
            if body.contains_key("authSchemaVersion") {
                doc! { "authSchemaVersion": crate::data::AUTH_SCHEMA_VERSION, "ok": 1.0 }
            } else if body.contains_key("tlsMode") {
                // `TLSModeServerParameter::append` (`ssl_parameters.cpp`): the mode in force.
                let mode = w.member(me).map(|m| m.tls.mode).unwrap_or(crate::tls::TlsMode::Disabled);
                doc! { "tlsMode": mode.as_str(), "ok": 1.0 }
            } else if body.contains_key("featureCompatibilityVersion") {
                match &w.fcv {
                    Some(fcv) => doc! { "featureCompatibilityVersion": { "version": fcv.clone() }, "ok": 1.0 },
                    None => error(
                        code::UNKNOWN_FEATURE_COMPATIBILITY_VERSION,
                        "featureCompatibilityVersion is not yet known.",
                    ),
                }
            } else {
                error(code::BAD_VALUE, "no option found to get")
            }
        }
        "setParameter" => {
            // Only `tlsMode` is simulated; `TLSModeServerParameter::setFromString` goes through
            // `checkTLSModeTransition` (`ssl_parameters.cpp`).
            match body.get_str("tlsMode") {
                Ok(to) => {
                    let mut w = lock(world);
                    let Some(m) = w.members.get_mut(me) else { return error(code::BAD_VALUE, "no such member") };
                    match crate::tls::transition(m.tls.mode, to) {
                        Ok(mode) => {
                            let was = m.tls.mode.as_str();
                            m.tls.mode = mode;
                            doc! { "was": was, "ok": 1.0 }
                        }
                        Err(message) => error(code::BAD_VALUE, &message),
                    }
                }
                Err(_) => error(code::BAD_VALUE, "the simulator sets only tlsMode"),
            }
        }
        "rotateCertificates" => {
            let mut w = lock(world);
            let Some(m) = w.members.get_mut(me) else { return error(code::BAD_VALUE, "no such member") };
            match m.tls.rotate() {
                Ok(()) => doc! { "ok": 1.0 },
                Err(message) => error(code::BAD_VALUE, format!("Failed to rotate certificates: {message}")),
            }
        }
        "setFeatureCompatibilityVersion" => {
            let reply = set_fcv(world, me, &body);
            if reply.get_f64("ok") == Ok(1.0) { write_fcv_document(world).await } else { reply }
        }
        "replSetInitiate" => {
            let cfg = match body.get("replSetInitiate") {
                Some(Bson::Document(d)) => Some(d.clone()),
                _ => None,
            };
            // Any member holding a config (initiated, or REMOVED) gets 23 "already
            // initialized" (`ReplicationCoordinatorImpl::processReplSetInitiate`). The `info`
            // it appends first is dropped: error replies are rebuilt by
            // `generateErrorResponse` from `ok`, `errmsg`, `code` and `codeName` only.
            let initiated = lock(world).initiate(me, cfg.as_ref());
            match initiated {
                Ok(()) => write_fcv_document(world).await,
                Err(r) => refusal(r),
            }
        }
        "setDefaultRWConcern" => set_default_rw_concern(world, me, &body),
        "getDefaultRWConcern" => get_default_rw_concern(world, me),
        "replSetGetStatus" => status(world, me),
        "serverStatus" => crate::diagnostics::server_status(world, me),
        // `adminOnly()`: mongod refuses it elsewhere with Unauthorized (`CommandHelpers::
        // checkAuthorizationImplPreParse` asks `adminOnly` commands for the admin database).
        "getDiagnosticData" if db != "admin" => {
            error(code::UNAUTHORIZED, "getDiagnosticData may only be run against the admin database.")
        }
        "getDiagnosticData" => crate::diagnostics::diagnostic_data(world, me),
        "replSetGetConfig" => get_config(world, me, &body),
        "replSetReconfig" => reconfig(world, me, &body).await,
        "replSetStepDown" => step_down(world, me, &body).await,
        "createUser" | "updateUser" | "dropUser" => {
            let reply = write_user(world, me, &name, &db, &body);
            let address = lock(world).opts.data.clone();
            match (address, body.get_str(&name)) {
                (Some(address), Ok(user)) if reply.get_f64("ok") == Ok(1.0) => {
                    let key = (db.clone(), user.to_string());
                    let current = lock(world).users.get(&key).cloned();
                    match crate::data::mirror_user(&address, &key, current.as_ref()).await {
                        Ok(()) => reply,
                        Err(e) => error(code::BAD_VALUE, e),
                    }
                }
                _ => reply,
            }
        }
        "_mergeAuthzCollections" => {
            let address = lock(world).opts.data.clone();
            match address {
                Some(address) => crate::data::merge_authz(world, &address, &body).await,
                None => error(code::COMMAND_NOT_FOUND, "no such command: '_mergeAuthzCollections'"),
            }
        }
        "applyOps" => match backend(world, session).await {
            Some(Ok(backend)) => crate::data::apply_ops(world, backend, &body).await,
            Some(Err(e)) => error(code::BAD_VALUE, e),
            None => error(code::COMMAND_NOT_FOUND, "no such command: 'applyOps'"),
        },
        "usersInfo" => users_info(world, &db, &body),
        "listDatabases" => match backend(world, session).await {
            Some(Ok(backend)) => forward(backend, &db, forwarded).await,
            Some(Err(e)) => error(code::BAD_VALUE, e),
            None => {
                // A set without data: only the databases every replica set has.
                let databases: Vec<Document> =
                    ["admin", "config", "local"].iter().map(|n| doc! { "name": *n }).collect();
                doc! { "databases": databases, "ok": 1.0 }
            }
        },
        other => match (crate::data::access(other, &body), backend(world, session).await) {
            (Some(_), Some(Ok(backend))) => forward(backend, &db, forwarded).await,
            (Some(_), Some(Err(e))) => error(code::BAD_VALUE, e),
            _ => error(code::COMMAND_NOT_FOUND, format!("no such command: '{other}'")),
        },
    }
}

/// `hello` / `isMaster`, as `ReplicationCoordinatorImpl::_makeHelloResponse` builds it
/// (`src/mongo/db/repl/replication_coordinator_impl.cpp`): a member without a valid config
/// (never initiated, or REMOVED: `_getHorizonString` computes `hasValidConfig =
/// _rsConfig.isInitialized() && !myState.removed()`) gets a fresh response marked
/// `markAsNoConfig()`, which `HelloResponse::addToBSON` (`repl/hello_response.cpp`) writes as
/// `isWritablePrimary: false, secondary: false, info: "Does not have a valid replica set
/// config", isreplicaset: true` and nothing else of the set: no `setName`, `hosts`, `me`. So
/// a REMOVED member and an uninitiated one cannot be told apart by `hello` (since 4.4); only
/// `replSetGetStatus` can (94 before initiation, 93 once removed). Members with a valid
/// config get `TopologyCoordinator::fillHelloForReplSet`'s fields.
fn hello(world: &Shared, me: &str, session: &Session, name: &str, body: &Document) -> Document {
    let w = lock(world);
    let now = Instant::now();
    let Some(m) = w.member(me) else { return error(code::BAD_VALUE, "member gone") };
    let state = w.state(m, now);
    let primary_key =
        if name == "hello" || body.get_bool("helloOk").is_ok() { "isWritablePrimary" } else { "ismaster" };
    let mut d = doc! {};
    if body.get_bool("helloOk").is_ok() {
        d.insert("helloOk", true);
    }
    d.insert(primary_key, state == State::Primary);
    d.insert("secondary", state == State::Secondary);
    match (&m.config, state) {
        (Some(cfg), s) if s != State::Removed => {
            // The client's horizon comes from this member's own entry and the SNI name
            // (`ReplicationCoordinatorImpl::_getHorizonString`), and every address in the
            // answer is given in it (`TopologyCoordinator::fillHelloForReplSet` calls
            // `getHostAndPort(horizonString)` for hosts, passives, arbiters, primary and me).
            let own = cfg.members.iter().find(|e| e.host == m.host);
            let horizon = own.and_then(|e| e.horizon_for(session.sni.as_deref()));
            let in_horizon = |host: &str| -> String {
                cfg.members.iter().find(|e| e.host == host).map_or(host, |e| e.host_in(horizon)).to_string()
            };
            let host_list = |f: &dyn Fn(&rules::Member) -> bool| -> Vec<String> {
                cfg.members.iter().filter(|e| f(e)).map(|e| e.host_in(horizon).to_string()).collect()
            };
            d.insert("setName", cfg.set_name.clone());
            d.insert("setVersion", cfg.version as i32);
            // Hidden members are in no list; electable ones are `hosts`, priority 0 ones
            // `passives` (`TopologyCoordinator::fillHelloForReplSet`).
            d.insert("hosts", host_list(&|e| !e.arbiter_only && !e.hidden && e.priority > 0.0));
            d.insert("passives", host_list(&|e| !e.arbiter_only && !e.hidden && e.priority == 0.0));
            d.insert("arbiters", host_list(&|e| e.arbiter_only));
            // The member's own entry, as `fillHelloForReplSet` gives it after the lists:
            // arbiterOnly or passive, its delay, hidden, and its tags.
            if let Some(e) = own {
                if e.arbiter_only {
                    d.insert("arbiterOnly", true);
                } else if e.priority == 0.0 {
                    d.insert("passive", true);
                }
                if e.secondary_delay_secs > 0 {
                    d.insert("secondaryDelaySecs", e.secondary_delay_secs);
                }
                if e.hidden {
                    d.insert("hidden", true);
                }
                if !e.tags.is_empty() {
                    let tags: bson::Document =
                        e.tags.iter().map(|(k, v)| (k.clone(), bson::Bson::String(v.clone()))).collect();
                    d.insert("tags", tags);
                }
            }
            d.insert("me", in_horizon(&m.host));
            if let Some(p) = w.primary().filter(|p| w.reachable(me, &p.name)) {
                d.insert("primary", in_horizon(&p.host));
            }
            if let Some(term) = m.primary_term {
                d.insert("electionId", bson::oid::ObjectId::from_bytes(electionid(term)));
            }
            d.insert("lastWrite", last_write(&w, m));
        }
        // Never initiated, or REMOVED: the same no-config response.
        _ => {
            d.insert("info", "Does not have a valid replica set config");
            d.insert("isreplicaset", true);
        }
    }
    if let Ok(user) = body.get_str("saslSupportedMechs")
        && let Some((db, name)) = user.split_once('.')
        && (w.users.contains_key(&(db.to_string(), name.to_string())) || (db == "local" && name == "__system"))
    {
        d.insert("saslSupportedMechs", vec!["SCRAM-SHA-256"]);
    }
    d.insert("maxBsonObjectSize", 16_777_216);
    d.insert("maxMessageSizeBytes", 48_000_000);
    d.insert("maxWriteBatchSize", 100_000);
    d.insert("localTime", DateTime::now());
    d.insert("logicalSessionTimeoutMinutes", 30);
    d.insert("connectionId", session.connection_id);
    d.insert("minWireVersion", 0);
    d.insert("maxWireVersion", 25);
    d.insert("readOnly", false);
    d.insert("ok", 1.0);
    d
}

fn electionid(term: i64) -> [u8; 12] {
    let mut b = [0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0];
    b[4..12].copy_from_slice(&term.to_be_bytes());
    b
}

fn payload(body: &Document) -> Vec<u8> {
    match body.get("payload") {
        Some(Bson::Binary(b)) => b.bytes.clone(),
        Some(Bson::String(s)) => s.clone().into_bytes(),
        _ => Vec::new(),
    }
}

fn binary(bytes: Vec<u8>) -> Binary {
    Binary { subtype: BinarySubtype::Generic, bytes }
}

fn sasl_start(world: &Shared, me: &str, session: &mut Session, db: &str, body: &Document) -> Document {
    let mechanism = body.get_str("mechanism").unwrap_or_default();
    if mechanism != "SCRAM-SHA-256" {
        return error(
            code::BAD_VALUE,
            format!("Received authentication for mechanism {mechanism} which is not enabled"),
        );
    }
    let w = lock(world);
    let key_file = w.opts.key_file.clone();
    // An arbiter holds no data, so no `admin.system.users`: every user but the keyFile's
    // internal one is unknown there, and the login fails as for any unknown user
    // (`AuthorizationManagerImpl::acquireUser` finds none; `internalSecurity.user` is answered
    // without the data, src/mongo/db/auth/authorization_manager_impl.cpp). SERVER-18021:
    // "arbiters ... refuse all authentication attempts when auth is required".
    let arbiter = w.member(me).is_some_and(|m| {
        m.config.as_ref().is_some_and(|c| c.members.iter().any(|e| e.host == m.host && e.arbiter_only))
    });
    let lookup = |user: &str| {
        if db == "local" && user == "__system" {
            let key: String = key_file.chars().filter(|c| !c.is_whitespace()).collect();
            (!key.is_empty()).then(|| Credentials::new(&key))
        } else if arbiter {
            None
        } else {
            w.users.get(&(db.to_string(), user.to_string())).map(|u| u.credentials.clone())
        }
    };
    match scram::start(&payload(body), lookup) {
        Ok((conv, reply)) => {
            session.next_conversation += 1;
            let id = session.next_conversation;
            let skip_empty =
                body.get_document("options").ok().and_then(|o| o.get_bool("skipEmptyExchange").ok()).unwrap_or(false);
            session.conversations.push((id, conv, skip_empty));
            session.conversations.retain(|(cid, _, _)| *cid > id - 8);
            doc! { "conversationId": id, "done": false, "payload": binary(reply), "ok": 1.0 }
        }
        Err(_) => error(code::AUTHENTICATION_FAILED, "Authentication failed."),
    }
}

fn sasl_continue(session: &mut Session, db: &str, body: &Document) -> Document {
    let id = int_field(body, "conversationId").unwrap_or(-1) as i32;
    let Some(pos) = session.conversations.iter().position(|(cid, _, _)| *cid == id) else {
        return error(code::AUTHENTICATION_FAILED, "No SASL session state found");
    };
    let data = payload(body);
    if data.is_empty() {
        // The final, empty exchange of a client that did not ask to skip it.
        session.conversations.remove(pos);
        return doc! { "conversationId": id, "done": true, "payload": binary(Vec::new()), "ok": 1.0 };
    }
    let (_, conv, skip_empty) = &session.conversations[pos];
    let skip_empty = *skip_empty;
    match scram::finish(conv, &data) {
        Ok(reply) => {
            session.user = Some((db.to_string(), conv.user.clone()));
            if skip_empty {
                session.conversations.remove(pos);
            }
            doc! { "conversationId": id, "done": skip_empty, "payload": binary(reply), "ok": 1.0 }
        }
        Err(_) => {
            session.conversations.remove(pos);
            error(code::AUTHENTICATION_FAILED, "Authentication failed.")
        }
    }
}

/// `setFeatureCompatibilityVersion` (`SetFeatureCompatibilityVersionCommand::run`,
/// `set_feature_compatibility_version_command.cpp`): only on the primary; from 7.0 the
/// `confirm: true` acknowledgement is checked first, even when nothing would change (uassert
/// 7369100, with the upgrade or the downgrade message); then the transition must be one of
/// `FCVTransitions` (`feature_compatibility_version.cpp`): from the binary's last LTS release to
/// its own (upgrade), or back (downgrade), else 5147403. The server does not look at the other
/// members' binaries: one that cannot read the new FCV stops (see `World::set_fcv`).
fn set_fcv(world: &Shared, me: &str, body: &Document) -> Document {
    let mut w = lock(world);
    let Some(m) = w.member(me) else { return error(code::BAD_VALUE, "member gone") };
    if w.state(m, Instant::now()) != State::Primary {
        return error(code::NOT_WRITABLE_PRIMARY, "not primary");
    }
    let Ok(requested) = body.get_str("setFeatureCompatibilityVersion").map(str::to_string) else {
        return error(code::BAD_VALUE, "setFeatureCompatibilityVersion must be a string");
    };
    let Some(actual) = w.fcv.clone() else {
        return error(code::UNKNOWN_FEATURE_COMPATIBILITY_VERSION, "featureCompatibilityVersion is not yet known.");
    };
    let release = crate::world::major_minor(&m.version);
    let major: u32 = release.split('.').next().and_then(|p| p.parse().ok()).unwrap_or(0);
    if major >= 7 && body.get_bool("confirm") != Ok(true) {
        let message = if version_key(&requested) > version_key(&actual) {
            format!(
                "Once you have upgraded to {requested}, you will not be able to downgrade FCV and binary version without support assistance. Please re-run this command with 'confirm: true' to acknowledge this and continue with the FCV upgrade."
            )
        } else {
            "Once you have downgraded the FCV, if you choose to downgrade the binary version, it will require support assistance. Please re-run this command with 'confirm: true' to acknowledge this and continue with the FCV downgrade.".to_string()
        };
        return error(7369100, message);
    }
    let accepted = crate::world::accepted_fcvs(&release);
    let permitted = requested == actual || (accepted.contains(&requested) && accepted.contains(&actual));
    if !permitted {
        return error(
            5147403,
            format!(
                "cannot set featureCompatibilityVersion to '{requested}' while featureCompatibilityVersion is '{actual}'"
            ),
        );
    }
    if requested != actual {
        w.set_fcv(&requested);
    }
    doc! { "ok": 1.0 }
}

fn version_key(v: &str) -> Vec<u32> {
    v.split('.').filter_map(|p| p.parse().ok()).collect()
}

/// `replSetGetStatus`: `ReplicationCoordinatorImpl::checkReplEnabledForCommand` answers a
/// member in STARTUP (no config) with 94 "no replset config has been received";
/// `TopologyCoordinator::prepareStatusResponse` answers one that is not in its own config
/// (`_selfIndex == -1`: REMOVED) with 93 "Our replica set config is invalid or we are not a
/// member of it". Error replies carry only `ok`, `errmsg`, `code`, `codeName`.
pub(crate) fn status(world: &Shared, me: &str) -> Document {
    let w = lock(world);
    let now = Instant::now();
    let Some(m) = w.member(me) else { return error(code::BAD_VALUE, "member gone") };
    let Some(cfg) = &m.config else { return error(code::NOT_YET_INITIALIZED, "no replset config has been received") };
    let my_state = w.state(m, now);
    if my_state == State::Removed {
        return error(
            code::INVALID_REPLICA_SET_CONFIG,
            "Our replica set config is invalid or we are not a member of it",
        );
    }
    let primary = w.primary().filter(|p| w.reachable(me, &p.name)).map(|p| p.host.clone());
    let members: Vec<Bson> = cfg
        .members
        .iter()
        .map(|e| {
            let other = w.members.values().find(|x| x.host == e.host);
            let reach = other.is_some_and(|o| w.reachable(me, &o.name));
            let state = match other {
                Some(o) if reach => w.state(o, now),
                _ => State::Down,
            };
            let applied = other.filter(|_| reach).map_or(0, |o| o.applied);
            let (op, date) = optime(&w, applied);
            let mut d = doc! {
                "_id": e.id as i32,
                "name": e.host.clone(),
                "health": if reach { 1.0 } else { 0.0 },
                "state": state as i32,
                "stateStr": state.as_str(),
                "uptime": other.filter(|_| reach).map_or(0, |o| now.duration_since(o.started).as_secs() as i64),
                "optime": op,
                "optimeDate": date,
                "syncSourceHost": if state == State::Secondary { primary.clone().unwrap_or_default() } else { String::new() },
                "configVersion": other.and_then(|o| o.config.as_ref()).map_or(-1, |c| c.version as i32),
                "configTerm": other.and_then(|o| o.config.as_ref()).map_or(-1, |c| c.term),
            };
            if other.is_some_and(|o| o.name == me) {
                d.insert("self", true);
            }
            if let Some(t) = other.and_then(|o| o.primary_term) {
                d.insert("electionDate", DateTime::now());
                d.insert("electionTerm", t);
            }
            if !reach {
                d.insert("lastHeartbeatMessage", "Couldn't get a connection within the time limit");
            }
            Bson::Document(d)
        })
        .collect();
    let (applied, _) = optime(&w, m.applied);
    doc! {
        "set": cfg.set_name.clone(),
        "date": DateTime::now(),
        "myState": my_state as i32,
        "term": w.term,
        "optimes": { "appliedOpTime": applied.clone(), "durableOpTime": applied },
        "members": members,
        "ok": 1.0,
    }
}

/// `replSetGetConfig` (`CmdReplSetGetConfig::run`, `processReplSetGetConfig`): 94 before
/// initiation; a REMOVED member answers with the config it holds, the one that no longer
/// lists it; `commitmentStatus` only on the primary.
fn get_config(world: &Shared, me: &str, body: &Document) -> Document {
    let w = lock(world);
    let Some(m) = w.member(me) else { return error(code::BAD_VALUE, "member gone") };
    let Some(cfg) = &m.config else { return error(code::NOT_YET_INITIALIZED, "no replset config has been received") };
    let mut d = doc! { "config": rules::to_document(cfg, false), "ok": 1.0 };
    if body.get_bool("commitmentStatus") == Ok(true) {
        if w.state(m, Instant::now()) != State::Primary {
            return error(code::NOT_WRITABLE_PRIMARY, "commitmentStatus is only supported on the primary");
        }
        d.insert("commitmentStatus", w.config_committed(m));
    }
    d
}

/// Waits (without holding the lock) until `done` holds or `limit` passes.
async fn wait_until(world: &Shared, limit: Duration, mut done: impl FnMut(&World) -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done(&lock(world)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `maxTimeMS`, or the time the real server would wait without it (forever; capped here).
fn max_time(body: &Document) -> Duration {
    int_field(body, "maxTimeMS")
        .filter(|ms| *ms > 0)
        .map_or(Duration::from_secs(60), |ms| Duration::from_millis(ms as u64))
}

/// Validates and installs a reconfig on the primary `me`; returns the new version.
fn install_reconfig(world: &Shared, me: &str, new_doc: &Document, committed: bool) -> Result<i64, Document> {
    let mut w = lock(world);
    let Some(m) = w.member(me) else { return Err(error(code::BAD_VALUE, "member gone")) };
    if w.state(m, Instant::now()) != State::Primary {
        return Err(error(code::NOT_WRITABLE_PRIMARY, "replSetReconfig should only be run on a writable PRIMARY"));
    }
    if !committed {
        return Err(error(
            code::CURRENT_CONFIG_NOT_COMMITTED_YET,
            "Cannot run replSetReconfig because the current config is not majority committed.",
        ));
    }
    let Some(old) = m.config.clone() else { return Err(error(code::NOT_YET_INITIALIZED, "not initialized")) };
    let mut new = match rules::validate_reconfig(&old, new_doc, &m.host).and_then(|new| {
        rules::check_implicit_write_concern(&old, &new, w.cluster_wide_write_concern.is_some()).map(|()| new)
    }) {
        Ok(c) => c,
        Err(r) => return Err(refusal(r)),
    };
    // Quorum: a majority of voters (not newlyAdded) must answer heartbeats.
    let required = crate::world::majority(new.voters());
    let answering = new
        .members
        .iter()
        .filter(|e| e.is_voter() && w.members.values().any(|x| x.host == e.host && w.reachable(me, &x.name)))
        .count();
    if answering < required {
        return Err(error(
            code::NODE_NOT_FOUND,
            format!(
                "Quorum check failed because not enough voting nodes responded; required {required} but only {answering} responded"
            ),
        ));
    }
    new.term = w.term;
    new.replica_set_id = old.replica_set_id;
    let version = new.version;
    w.install_on_primary(me, new);
    Ok(version)
}

/// `setDefaultRWConcern` on the primary (`SetDefaultRWConcernCommand::typedRun`,
/// read_write_concern_defaults.cpp `generateNewCWRWCToBeSavedOnDisk`): at least one of the two
/// defaults, and the answer is what `getDefaultRWConcern` gives afterwards. The simulator keeps
/// the write concern only; the read concern stays the implicit `local`.
fn set_default_rw_concern(world: &Shared, me: &str, body: &Document) -> Document {
    let mut w = lock(world);
    let Some(m) = w.member(me) else { return error(code::BAD_VALUE, "member gone") };
    if w.state(m, Instant::now()) != State::Primary {
        return error(code::NOT_WRITABLE_PRIMARY, "not primary");
    }
    let write = body.get_document("defaultWriteConcern").ok().cloned();
    if write.is_none() && body.get_document("defaultReadConcern").is_err() {
        return error(
            code::BAD_VALUE,
            "At least one of the \"defaultReadConcern\" or \"defaultWriteConcern\" fields must be present",
        );
    }
    if let Some(mut write) = write {
        if !write.contains_key("wtimeout") {
            write.insert("wtimeout", 0);
        }
        w.cluster_wide_write_concern = Some(write);
    }
    drop(w);
    get_default_rw_concern(world, me)
}

/// `getDefaultRWConcern` (`ReadWriteConcernDefaults::getDefault`): the cluster-wide write
/// concern with source `global`, else the implicit one, `{w: "majority", wtimeout: 0}`, or no
/// `defaultWriteConcern` at all when the implicit default is `w: 1` (a PSA set:
/// `jstests/replsets/get_default_write_concern_majority.js`).
fn get_default_rw_concern(world: &Shared, me: &str) -> Document {
    let w = lock(world);
    let mut reply = doc! { "defaultReadConcern": { "level": "local" }, "defaultReadConcernSource": "implicit" };
    match (&w.cluster_wide_write_concern, w.member(me).and_then(|m| m.config.as_ref())) {
        (Some(write), _) => {
            reply.insert("defaultWriteConcern", write.clone());
            reply.insert("defaultWriteConcernSource", "global");
        }
        (None, config) => {
            if config.is_none_or(rules::implicit_default_is_majority) {
                reply.insert("defaultWriteConcern", doc! { "w": "majority", "wtimeout": 0 });
            }
            reply.insert("defaultWriteConcernSource", "implicit");
        }
    }
    reply.insert("ok", 1.0);
    reply
}

async fn reconfig(world: &Shared, me: &str, body: &Document) -> Document {
    let Ok(new_doc) = body.get_document("replSetReconfig").cloned() else {
        return error(code::INVALID_REPLICA_SET_CONFIG, "replSetReconfig needs a config document");
    };
    let limit = max_time(body);
    let force = body.get_bool("force") == Ok(true);
    {
        let w = lock(world);
        let Some(m) = w.member(me) else { return error(code::BAD_VALUE, "member gone") };
        if m.config.is_none() {
            return error(
                code::NOT_YET_INITIALIZED,
                "Cannot run replSetReconfig because the node is currently not initialized",
            );
        }
        if !force && w.state(m, Instant::now()) != State::Primary {
            return error(code::NOT_WRITABLE_PRIMARY, "replSetReconfig should only be run on a writable PRIMARY");
        }
    }
    if force {
        return force_reconfig(world, me, &new_doc);
    }
    let me_owned = me.to_string();
    let committed = wait_until(world, limit, |w| w.member(&me_owned).is_some_and(|m| w.config_committed(m))).await;
    let version = match install_reconfig(world, me, &new_doc, committed) {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let installed = wait_until(world, limit, |w| {
        let Some(p) = w.member(&me_owned) else { return false };
        let Some(cfg) = &p.config else { return false };
        let have = cfg
            .members
            .iter()
            .filter(|e| e.is_voter())
            .filter(|e| {
                w.members.values().any(|x| x.host == e.host && x.config.as_ref().is_some_and(|c| c.version >= version))
            })
            .count();
        have >= crate::world::majority(cfg.voters())
    })
    .await;
    if installed {
        doc! { "ok": 1.0 }
    } else {
        error(code::MAX_TIME_MS_EXPIRED, "operation exceeded time limit waiting for the new config to propagate")
    }
}

fn force_reconfig(world: &Shared, me: &str, new_doc: &Document) -> Document {
    let mut w = lock(world);
    let Some(m) = w.member(me) else { return error(code::BAD_VALUE, "member gone") };
    let Some(old) = m.config.clone() else { return error(code::NOT_YET_INITIALIZED, "not initialized") };
    let host = m.host.clone();
    // A force reconfig skips the single-voter and quorum checks, not these two
    // (`validateConfigForReconfig` with force, and `_doReplSetReconfig`).
    let cluster_wide_set = w.cluster_wide_write_concern.is_some();
    let mut new = match rules::parse(new_doc)
        .and_then(|c| rules::check_set(&c, code::NEW_REPLICA_SET_CONFIGURATION_INCOMPATIBLE).map(|()| c))
        .and_then(|c| rules::check_psa_reconfig(&old, &c).map(|()| c))
        .and_then(|c| rules::check_implicit_write_concern(&old, &c, cluster_wide_set).map(|()| c))
    {
        Ok(c) => c,
        Err(r) => return refusal(r),
    };
    if !new.members.iter().any(|e| e.host == host) {
        return error(code::NODE_NOT_FOUND, "No host described in new configuration maps to this node");
    }
    new.version = old.version.max(new.version) + 10_000 + rand::Rng::gen_range(&mut rand::thread_rng(), 0..100_000);
    new.term = -1;
    new.replica_set_id = old.replica_set_id;
    for e in &mut new.members {
        e.newly_added = false;
    }
    w.install_on_primary(me, new);
    doc! { "ok": 1.0 }
}

async fn step_down(world: &Shared, me: &str, body: &Document) -> Document {
    let secs = int_field(body, "replSetStepDown").unwrap_or(60);
    if secs < 0 {
        return error(code::BAD_VALUE, "stepdown period must be a positive integer");
    }
    let secs = if secs == 0 { 60 } else { secs };
    let force = body.get_bool("force") == Ok(true);
    let catch_up = int_field(body, "secondaryCatchUpPeriodSecs").unwrap_or(if force { 0 } else { 10 });
    if catch_up >= secs {
        return error(code::BAD_VALUE, "stepdown period must be longer than secondaryCatchUpPeriodSecs");
    }
    {
        let w = lock(world);
        match w.member(me) {
            Some(m) if w.state(m, Instant::now()) == State::Primary => {}
            _ => return error(code::NOT_WRITABLE_PRIMARY, "not primary so can't step down"),
        }
    }
    let me_owned = me.to_string();
    let mut chosen: Option<String> = None;
    wait_until(world, Duration::from_secs(catch_up.max(0) as u64), |w| {
        chosen = caught_up_electable(w, &me_owned);
        chosen.is_some()
    })
    .await;
    let mut w = lock(world);
    if chosen.is_none() && !force {
        return error(
            code::EXCEEDED_TIME_LIMIT,
            "No electable secondaries caught up as of now. Please use the replSetStepDown command with the argument {force: true} to force node to step down.",
        );
    }
    let now = Instant::now();
    let handoff = w.opts.stepdown_handoff;
    if let Some(m) = w.members.get_mut(me) {
        m.primary_term = None;
        m.stepdown_until = Some(now + Duration::from_secs(secs as u64));
    }
    if let Some(c) = chosen
        && let Some(m) = w.members.get_mut(&c)
    {
        m.election_at = Some(now + handoff);
    }
    doc! { "ok": 1.0 }
}

/// A reachable, electable secondary whose oplog has caught up with the primary `p`.
fn caught_up_electable(w: &World, p: &str) -> Option<String> {
    let primary = w.member(p)?;
    let cfg = primary.config.as_ref()?;
    let now = Instant::now();
    w.members
        .values()
        .filter(|m| {
            m.name != p
                && w.reachable(p, &m.name)
                && w.state(m, now) == State::Secondary
                && m.applied >= primary.applied
        })
        .find(|m| cfg.members.iter().any(|e| e.host == m.host && e.is_electable() && e.votes == 1))
        .map(|m| m.name.clone())
}

fn roles_of(body: &Document, db: &str) -> Result<Vec<(String, String)>, Document> {
    let Ok(list) = body.get_array("roles") else { return Ok(Vec::new()) };
    let mut roles = Vec::new();
    for r in list {
        let (role, rdb) = match r {
            Bson::String(s) => (s.clone(), db.to_string()),
            Bson::Document(d) => {
                (d.get_str("role").unwrap_or_default().to_string(), d.get_str("db").unwrap_or(db).to_string())
            }
            _ => return Err(error(code::BAD_VALUE, "roles must be strings or {role, db} documents")),
        };
        if !BUILTIN_ROLES.contains(&role.as_str()) {
            return Err(error(31, format!("Could not find role: {role}@{rdb}")));
        }
        roles.push((role, rdb));
    }
    Ok(roles)
}

fn write_user(world: &Shared, me: &str, cmd: &str, db: &str, body: &Document) -> Document {
    let mut w = lock(world);
    let Some(m) = w.member(me) else { return error(code::BAD_VALUE, "member gone") };
    if w.state(m, Instant::now()) != State::Primary {
        return error(code::NOT_WRITABLE_PRIMARY, "not primary");
    }
    let Ok(name) = body.get_str(cmd).map(str::to_string) else {
        return error(code::BAD_VALUE, format!("{cmd} needs a user name"));
    };
    let key = (db.to_string(), name.clone());
    let roles = match roles_of(body, db) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match cmd {
        "createUser" => {
            if w.users.contains_key(&key) {
                return error(code::DUPLICATE_USER, format!("User \"{name}@{db}\" already exists"));
            }
            let Ok(pwd) = body.get_str("pwd") else {
                return error(code::BAD_VALUE, "Must provide a 'pwd' field for all user documents");
            };
            let credentials = Credentials::new(pwd);
            w.users.insert(key, User { db: db.to_string(), name, roles, credentials, id: rand::random() });
        }
        "updateUser" => {
            let Some(user) = w.users.get_mut(&key) else {
                return error(code::USER_NOT_FOUND, format!("Could not find user \"{name}\" for db \"{db}\""));
            };
            if body.contains_key("roles") {
                user.roles = roles;
            }
            if let Ok(pwd) = body.get_str("pwd") {
                user.credentials = Credentials::new(pwd);
            }
        }
        _ => {
            if w.users.remove(&key).is_none() {
                return error(code::USER_NOT_FOUND, format!("User '{name}@{db}' not found"));
            }
        }
    }
    w.append_oplog();
    doc! { "ok": 1.0 }
}

/// `usersInfo` (`CmdUsersInfo`): one user, several, every user of the command's database
/// (`usersInfo: 1`), or, on `admin` only, every user of every database (`{forAllDBs: true}`).
fn users_info(world: &Shared, db: &str, body: &Document) -> Document {
    let w = lock(world);
    let all_dbs = body.get_document("usersInfo").is_ok_and(|d| d.get_bool("forAllDBs") == Ok(true));
    if all_dbs && db != "admin" {
        return error(code::BAD_VALUE, "forAllDBs usersInfo can only be run on the admin database");
    }
    let wanted: Vec<(String, String)> = match body.get("usersInfo") {
        _ if all_dbs => w.users.keys().cloned().collect(),
        Some(Bson::String(n)) => vec![(db.to_string(), n.clone())],
        Some(Bson::Document(d)) => {
            vec![(d.get_str("db").unwrap_or(db).to_string(), d.get_str("user").unwrap_or_default().to_string())]
        }
        Some(Bson::Array(a)) => a
            .iter()
            .filter_map(|x| match x {
                Bson::String(n) => Some((db.to_string(), n.clone())),
                Bson::Document(d) => {
                    Some((d.get_str("db").unwrap_or(db).to_string(), d.get_str("user").unwrap_or_default().to_string()))
                }
                _ => None,
            })
            .collect(),
        _ => w.users.keys().filter(|(d, _)| d == db).cloned().collect(),
    };
    let users: Vec<Bson> = wanted
        .iter()
        .filter_map(|k| w.users.get(k))
        .map(|u| {
            let roles: Vec<Bson> =
                u.roles.iter().map(|(r, d)| Bson::Document(doc! { "role": r.clone(), "db": d.clone() })).collect();
            Bson::Document(doc! {
                "_id": format!("{}.{}", u.db, u.name),
                "user": u.name.clone(),
                "db": u.db.clone(),
                "roles": roles,
                "mechanisms": ["SCRAM-SHA-256"],
            })
        })
        .collect();
    doc! { "users": users, "ok": 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::Options;

    /// A set initiated with a `vpn` horizon on every member; `hello` on m0 as a client that
    /// sent `sni` would get it.
    fn hello_with_sni(sni: Option<&str>) -> Document {
        let mut world = World::new(Options::default());
        let listen: std::net::SocketAddr = "127.0.0.1:1".parse().expect("address");
        let members: Vec<Document> = (0..3)
            .map(|i| {
                world.add_member(&format!("m{i}"), &format!("m{i}:27017"), listen);
                doc! { "_id": i, "host": format!("m{i}:27017"), "horizons": { "vpn": format!("db-{i}.example.internal:27017") } }
            })
            .collect();
        world.initiate("m0", Some(&doc! { "_id": "rs0", "members": members })).expect("initiate");
        let shared: Shared = Arc::new(Mutex::new(world));
        let mut session = Session::new(1);
        session.sni = sni.map(str::to_string);
        hello(&shared, "m0", &session, "hello", &doc! {})
    }

    #[test]
    fn hello_names_every_member_in_the_horizon_the_sni_name_picks() {
        let external = hello_with_sni(Some("db-0.example.internal"));
        let hosts: Vec<&str> = external.get_array("hosts").expect("hosts").iter().filter_map(|h| h.as_str()).collect();
        assert_eq!(
            hosts,
            ["db-0.example.internal:27017", "db-1.example.internal:27017", "db-2.example.internal:27017"]
        );
        assert_eq!(external.get_str("me"), Ok("db-0.example.internal:27017"));
        for sni in [None, Some("m0"), Some("somewhere.else")] {
            let internal = hello_with_sni(sni);
            let hosts: Vec<&str> =
                internal.get_array("hosts").expect("hosts").iter().filter_map(|h| h.as_str()).collect();
            assert_eq!(hosts, ["m0:27017", "m1:27017", "m2:27017"], "{sni:?}");
            assert_eq!(internal.get_str("me"), Ok("m0:27017"), "{sni:?}");
        }
    }

    /// A set of an electable member, a hidden one with tags and a delayed one, initiated on
    /// m0; `hello` on `on`.
    fn hello_in_roles(on: &str) -> Document {
        let mut world = World::new(Options::default());
        let listen: std::net::SocketAddr = "127.0.0.1:1".parse().expect("address");
        for i in 0..3 {
            world.add_member(&format!("m{i}"), &format!("m{i}:27017"), listen);
        }
        let members = vec![
            doc! { "_id": 0, "host": "m0:27017" },
            doc! { "_id": 1, "host": "m1:27017", "priority": 0, "hidden": true, "tags": { "use": "analytics" } },
            doc! { "_id": 2, "host": "m2:27017", "priority": 0, "votes": 0, "hidden": true, "secondaryDelaySecs": 3600_i64 },
        ];
        world.initiate("m0", Some(&doc! { "_id": "rs0", "members": members })).expect("initiate");
        // A heartbeat takes the config to the others.
        world.tick(std::time::Instant::now());
        let shared: Shared = Arc::new(Mutex::new(world));
        hello(&shared, on, &Session::new(1), "hello", &doc! {})
    }

    #[test]
    fn hidden_and_delayed_members_are_in_no_list_and_say_what_they_are() {
        let electable = hello_in_roles("m0");
        let list = |d: &Document, key: &str| -> Vec<String> {
            d.get_array(key).expect(key).iter().filter_map(|h| h.as_str().map(str::to_string)).collect()
        };
        assert_eq!(list(&electable, "hosts"), ["m0:27017"]);
        assert!(list(&electable, "passives").is_empty());
        assert!(!electable.contains_key("hidden") && !electable.contains_key("passive"));
        let hidden = hello_in_roles("m1");
        assert_eq!(list(&hidden, "hosts"), ["m0:27017"], "a hidden member lists only the others");
        assert_eq!((hidden.get_bool("hidden"), hidden.get_bool("passive")), (Ok(true), Ok(true)));
        assert_eq!(hidden.get_document("tags").ok(), Some(&doc! { "use": "analytics" }));
        let delayed = hello_in_roles("m2");
        assert_eq!(delayed.get_i64("secondaryDelaySecs"), Ok(3600));
        assert_eq!(delayed.get_bool("hidden"), Ok(true));
    }
}

#[cfg(test)]
mod default_rw_concern_tests {
    use super::*;
    use crate::world::Options;

    /// A primary-secondary set, its primary elected.
    fn ps_set() -> Shared {
        let mut world = World::new(Options::default());
        let listen: std::net::SocketAddr = "127.0.0.1:1".parse().expect("address");
        world.add_member("m0", "m0:27017", listen);
        world.add_member("m1", "m1:27017", listen);
        let members = vec![doc! { "_id": 0, "host": "m0:27017" }, doc! { "_id": 1, "host": "m1:27017" }];
        world.initiate("m0", Some(&doc! { "_id": "rs0", "members": members })).expect("initiate");
        let mut now = Instant::now();
        for _ in 0..100 {
            now += Duration::from_millis(200);
            world.tick(now);
        }
        assert!(world.primary().is_some(), "a primary");
        Arc::new(Mutex::new(world))
    }

    #[test]
    fn the_cluster_wide_write_concern_is_implicit_until_set_and_global_after() {
        let set = ps_set();
        let primary = lock(&set).primary().map(|m| m.name.clone()).expect("primary");
        let implicit = get_default_rw_concern(&set, &primary);
        assert_eq!(implicit.get_document("defaultWriteConcern"), Ok(&doc! { "w": "majority", "wtimeout": 0 }));
        assert_eq!(implicit.get_str("defaultWriteConcernSource"), Ok("implicit"));
        let neither = set_default_rw_concern(&set, &primary, &doc! { "setDefaultRWConcern": 1 });
        assert_eq!(neither.get_i32("code"), Ok(code::BAD_VALUE));
        let set_reply = set_default_rw_concern(
            &set,
            &primary,
            &doc! { "setDefaultRWConcern": 1, "defaultWriteConcern": { "w": "majority" } },
        );
        assert_eq!(set_reply.get_f64("ok"), Ok(1.0));
        assert_eq!(set_reply.get_document("defaultWriteConcern"), Ok(&doc! { "w": "majority", "wtimeout": 0 }));
        assert_eq!(set_reply.get_str("defaultWriteConcernSource"), Ok("global"));
        assert!(lock(&set).cluster_wide_write_concern.is_some());
        let secondary = if primary == "m0" { "m1" } else { "m0" };
        let refused = set_default_rw_concern(
            &set,
            secondary,
            &doc! { "setDefaultRWConcern": 1, "defaultWriteConcern": { "w": 1 } },
        );
        assert_eq!(refused.get_i32("code"), Ok(code::NOT_WRITABLE_PRIMARY));
    }
}
