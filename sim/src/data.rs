//! A set that holds data: the simulator answers the replica-set, authentication, user and FCV
//! commands itself, as for any set, and passes the data commands (find, insert, getMore,
//! listCollections, createIndexes, ...) to a FerretDB that holds the set's data. With it the
//! real `mongodump --oplog` and `mongorestore --oplogReplay` run against a replica-set member
//! that authenticates them, and the operator's own checks (`listDatabases`) see real data.
//!
//! What this stand-in fakes, and how (listed in `docs/testing.md`):
//! - one copy of the data for the whole set (FerretDB's), replicated at once to every member;
//! - the oplog is FerretDB's `local.oplog.rs`, which it writes once the collection exists as a
//!   capped collection: inserts, updates (`$v: 1` modifier style) and deletes, with an `_id`
//!   per entry that mongod's oplog does not have; the simulator adds mongod's periodic no-op
//!   entries (`{op: "n", o: {msg: "periodic noop"}}`), so an idle set's oplog still moves;
//! - users live in the simulator and are written through to `admin.system.users` in mongod's
//!   document format (SCRAM-SHA-256 only), with `admin.system.version`'s `authSchema` and
//!   `featureCompatibilityVersion` documents, so that dumps carry them as mongod's do;
//! - `_mergeAuthzCollections` and `applyOps` are answered here, by the rules of
//!   `CmdMergeAuthzCollections` (`user_management_commands.cpp`) and of `applyOps` in its
//!   command mode (`applyOperation_inlock` in `oplog.cpp`; inserts of an existing `_id` and
//!   updates become upserts: `jstests/core/apply_ops_dups.js`, `apply_ops2.js`), for the
//!   operations FerretDB's oplog holds. There are no user-defined roles.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, Timestamp, doc};
use tokio::net::TcpStream;

use crate::commands::{Shared, error, lock};
use crate::rules::code;
use crate::scram::Credentials;
use crate::wire;
use crate::world::User;

/// mongod's current authorization schema version (`AuthorizationManager::schemaVersion28SCRAM`),
/// as `getParameter: {authSchemaVersion: 1}` reports it and `admin.system.version` holds it.
pub const AUTH_SCHEMA_VERSION: i32 = 5;

/// A connection to the data store, one per client connection (cursors stay on it).
pub struct Backend {
    stream: TcpStream,
    next_id: i32,
}

impl Backend {
    pub async fn connect(address: &str) -> Result<Backend, String> {
        let stream = TcpStream::connect(address).await.map_err(|e| format!("data store {address}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(Backend { stream, next_id: 0 })
    }

    /// Runs one command on `db` and returns the reply's body.
    pub async fn run(&mut self, db: &str, mut body: Document) -> Result<Document, String> {
        body.insert("$db", db);
        self.next_id = self.next_id.wrapping_add(1);
        wire::write_request(&mut self.stream, self.next_id, &body).await.map_err(|e| e.to_string())?;
        wire::read_reply(&mut self.stream).await.map_err(|e| e.to_string())
    }
}

/// One command on a connection of its own (for the simulator's own writes).
pub async fn once(address: &str, db: &str, body: Document) -> Result<Document, String> {
    Backend::connect(address).await?.run(db, body).await
}

fn ok(reply: &Document) -> bool {
    match reply.get("ok") {
        Some(Bson::Double(v)) => *v == 1.0,
        Some(Bson::Int32(v)) => *v == 1,
        Some(Bson::Int64(v)) => *v == 1,
        _ => false,
    }
}

fn checked(what: &str, reply: Result<Document, String>) -> Result<Document, String> {
    let reply = reply?;
    if !ok(&reply) {
        return Err(format!("{what}: {}", reply.get_str("errmsg").unwrap_or("failed")));
    }
    if let Ok(errors) = reply.get_array("writeErrors")
        && !errors.is_empty()
    {
        return Err(format!("{what}: {errors:?}"));
    }
    Ok(reply)
}

/// What a data command needs of the user's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    /// The `validate` action: `dbAdmin` and `dbOwner` on the database, `dbAdminAnyDatabase`
    /// outside admin, config and local (`builtin_roles.yml`).
    Validate,
}

/// The data commands passed to the store, and what each needs (`builtin_roles.yml` grants
/// `find` and the listing actions for reading, `insert` ... `dropCollection` for writing).
/// None: not a data command.
pub fn access(name: &str, body: &Document) -> Option<Access> {
    let writes_out = || {
        body.get_array("pipeline").is_ok_and(|stages| {
            stages.iter().any(|s| s.as_document().is_some_and(|d| d.contains_key("$out") || d.contains_key("$merge")))
        })
    };
    match name {
        "find" | "getMore" | "killCursors" | "count" | "distinct" | "listCollections" | "listIndexes" | "dbStats"
        | "collStats" | "dataSize" => Some(Access::Read),
        "validate" => Some(Access::Validate),
        "aggregate" if writes_out() => Some(Access::Write),
        "aggregate" => Some(Access::Read),
        "insert" | "update" | "delete" | "findAndModify" | "create" | "drop" | "createIndexes" | "dropIndexes"
        | "dropDatabase" | "collMod" | "convertToCapped" => Some(Access::Write),
        _ => None,
    }
}

/// The collection a data command names, when it names one.
pub fn collection(name: &str, body: &Document) -> Option<String> {
    let field = match name {
        "getMore" => "collection",
        _ => name,
    };
    body.get_str(field).ok().map(str::to_string)
}

/// Whether `roles` grant `access` on `db.coll` (built-in roles only: `builtin_roles.yml`).
pub fn may(roles: &[(String, String)], access: Access, db: &str, coll: Option<&str>) -> bool {
    let has = |r: &str, d: &str| roles.iter().any(|(role, rdb)| role == r && rdb == d);
    if has("__system", "admin") || has("root", "admin") {
        return true;
    }
    let system = coll.is_some_and(|c| c.starts_with("system."));
    let internal = db == "admin" || db == "local" || db == "config";
    let auth_temp = db == "admin" && coll.is_some_and(|c| c == "tempusers" || c == "temproles");
    match access {
        // `backup` may find everything, the oplog and `admin.system.users` included.
        Access::Read => {
            has("backup", "admin")
                || (!system
                    && (has("read", db)
                        || has("readWrite", db)
                        || has("dbOwner", db)
                        || (!internal && (has("readAnyDatabase", "admin") || has("readWriteAnyDatabase", "admin")))))
        }
        // `restore` may create, insert, index and drop any non-system collection, and write the
        // temporary users and roles collections; it has no update or remove on normal data.
        Access::Write => {
            (!system
                && (has("readWrite", db) || has("dbOwner", db) || (!internal && has("readWriteAnyDatabase", "admin"))))
                || (has("restore", "admin") && (auth_temp || !system))
        }
        Access::Validate => {
            has("dbAdmin", db) || has("dbOwner", db) || (!internal && has("dbAdminAnyDatabase", "admin"))
        }
    }
}

/// mongod's `admin.system.users` document of a user.
pub fn user_document(user: &User) -> Document {
    let c = &user.credentials;
    let roles: Vec<Bson> = user.roles.iter().map(|(r, d)| Bson::Document(doc! { "role": r, "db": d })).collect();
    doc! {
        "_id": format!("{}.{}", user.db, user.name),
        "userId": Binary { subtype: BinarySubtype::Uuid, bytes: user.id.to_vec() },
        "user": &user.name,
        "db": &user.db,
        "credentials": { "SCRAM-SHA-256": {
            "iterationCount": i32::try_from(c.iterations).unwrap_or(i32::MAX),
            "salt": B64.encode(&c.salt),
            "storedKey": B64.encode(&c.stored_key),
            "serverKey": B64.encode(&c.server_key),
        }},
        "roles": roles,
    }
}

/// A user from its `admin.system.users` document (as mongodump wrote it): its SCRAM-SHA-256
/// credentials are taken as they are, so the user's password works as on the source.
pub fn user_from_document(d: &Document) -> Result<User, String> {
    let name = d.get_str("user").map_err(|_| "a user document without user")?.to_string();
    let db = d.get_str("db").map_err(|_| "a user document without db")?.to_string();
    let scram = d
        .get_document("credentials")
        .and_then(|c| c.get_document("SCRAM-SHA-256"))
        .map_err(|_| format!("user {name}@{db} has no SCRAM-SHA-256 credentials"))?;
    let bytes = |key: &str| -> Result<Vec<u8>, String> {
        B64.decode(scram.get_str(key).map_err(|_| format!("user {name}@{db}: no {key}"))?)
            .map_err(|e| format!("user {name}@{db}: {key}: {e}"))
    };
    let iterations = match scram.get("iterationCount") {
        Some(Bson::Int32(n)) => u32::try_from(*n).unwrap_or(0),
        Some(Bson::Int64(n)) => u32::try_from(*n).unwrap_or(0),
        _ => return Err(format!("user {name}@{db}: no iterationCount")),
    };
    let credentials = Credentials {
        salt: bytes("salt")?,
        iterations,
        stored_key: bytes("storedKey")?,
        server_key: bytes("serverKey")?,
    };
    let roles = d
        .get_array("roles")
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r.as_document())
                .filter_map(|r| Some((r.get_str("role").ok()?.to_string(), r.get_str("db").ok()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let id = match d.get("userId") {
        Some(Bson::Binary(b)) if b.bytes.len() == 16 => {
            let mut id = [0u8; 16];
            id.copy_from_slice(&b.bytes);
            id
        }
        _ => rand::random(),
    };
    Ok(User { db, name, roles, credentials, id })
}

/// Writes a user through to `admin.system.users` (None: deletes it).
pub async fn mirror_user(address: &str, key: &(String, String), user: Option<&User>) -> Result<(), String> {
    let id = format!("{}.{}", key.0, key.1);
    let body = match user {
        Some(u) => {
            doc! { "update": "system.users", "updates": [{ "q": { "_id": &id }, "u": user_document(u), "upsert": true }] }
        }
        None => doc! { "delete": "system.users", "deletes": [{ "q": { "_id": &id }, "limit": 1 }] },
    };
    checked("writing admin.system.users", once(address, "admin", body).await).map(|_| ())
}

/// Every document of a collection of the store.
async fn all(address: &str, db: &str, coll: &str) -> Result<Vec<Document>, String> {
    let mut backend = Backend::connect(address).await?;
    let reply = checked("find", backend.run(db, doc! { "find": coll, "batchSize": 100_000 }).await)?;
    let cursor = reply.get_document("cursor").map_err(|e| e.to_string())?;
    let mut docs: Vec<Document> = cursor
        .get_array("firstBatch")
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|d| d.as_document().cloned())
        .collect();
    let mut id = cursor.get_i64("id").unwrap_or(0);
    while id != 0 {
        let more = checked(
            "getMore",
            backend.run(db, doc! { "getMore": id, "collection": coll, "batchSize": 100_000 }).await,
        )?;
        let cursor = more.get_document("cursor").map_err(|e| e.to_string())?;
        docs.extend(
            cursor.get_array("nextBatch").map_err(|e| e.to_string())?.iter().filter_map(|d| d.as_document().cloned()),
        );
        id = cursor.get_i64("id").unwrap_or(0);
    }
    Ok(docs)
}

fn namespace(ns: &str) -> Option<(&str, &str)> {
    ns.split_once('.')
}

/// `_mergeAuthzCollections` (`CmdMergeAuthzCollections::run`): the users (and roles) that
/// mongorestore put in temporary collections become the set's users. With `drop: true`, every
/// user of the databases named by `db` ("" = all) that is not among them is removed, the one
/// running the command included (no guard); same-named users are replaced. Without `drop`,
/// users that exist are kept as they are.
pub async fn merge_authz(world: &Shared, address: &str, body: &Document) -> Document {
    let drop = body.get_bool("drop").unwrap_or(false);
    let only_db = body.get_str("db").unwrap_or("").to_string();
    let mut incoming = Vec::new();
    if let Ok(ns) = body.get_str("tempUsersCollection")
        && let Some((db, coll)) = namespace(ns)
    {
        match all(address, db, coll).await {
            Ok(docs) => {
                for d in docs {
                    match user_from_document(&d) {
                        Ok(u) => incoming.push(u),
                        Err(e) => return error(code::BAD_VALUE, e),
                    }
                }
            }
            Err(e) => return error(code::BAD_VALUE, e),
        }
    }
    if let Ok(ns) = body.get_str("tempRolesCollection")
        && let Some((db, coll)) = namespace(ns)
        && all(address, db, coll).await.is_ok_and(|roles| !roles.is_empty())
    {
        return error(code::BAD_VALUE, "the simulator has no user-defined roles; the dump has some");
    }
    let changed: Vec<((String, String), Option<User>)> = {
        let mut w = lock(world);
        let mut changed = Vec::new();
        let in_scope = |db: &str| only_db.is_empty() || db == only_db;
        if drop {
            let gone: Vec<(String, String)> = w
                .users
                .keys()
                .filter(|(db, name)| in_scope(db) && !incoming.iter().any(|u| &u.db == db && &u.name == name))
                .cloned()
                .collect();
            for key in gone {
                w.users.remove(&key);
                changed.push((key, None));
            }
        }
        for user in incoming {
            let key = (user.db.clone(), user.name.clone());
            if drop || !w.users.contains_key(&key) {
                w.users.insert(key.clone(), user.clone());
                changed.push((key, Some(user)));
            }
        }
        w.append_oplog();
        changed
    };
    for (key, user) in &changed {
        if let Err(e) = mirror_user(address, key, user.as_ref()).await {
            return error(code::BAD_VALUE, e);
        }
    }
    doc! { "ok": 1.0 }
}

/// `applyOps` in its command mode, for the operations an oplog of the store holds: `n` (nothing),
/// `i` (an insert; one whose `_id` exists replaces it), `u` (`o2` finds the document, `o` is a
/// `$v: 1` modifier or a replacement; upserts, as `alwaysUpsert` defaults to true), `d`, and `c`
/// (the command in `o`, on the namespace's database). Writes to `admin.system.users` change
/// the users, as they do in mongod. Each operation's result is in `results`.
pub async fn apply_ops(world: &Shared, backend: &mut Backend, body: &Document) -> Document {
    let Ok(ops) = body.get_array("applyOps") else { return error(code::BAD_VALUE, "applyOps must be an array") };
    let mut results = Vec::new();
    for op in ops {
        let Some(op) = op.as_document() else { return error(code::BAD_VALUE, "an applyOps entry must be a document") };
        match apply_one(world, backend, op).await {
            Ok(()) => results.push(Bson::Boolean(true)),
            Err(e) => {
                return doc! { "ok": 0.0, "errmsg": e, "code": code::BAD_VALUE, "codeName": "BadValue", "applied": results.len() as i32, "results": results };
            }
        }
    }
    doc! { "applied": results.len() as i32, "results": results, "ok": 1.0 }
}

async fn apply_one(world: &Shared, backend: &mut Backend, op: &Document) -> Result<(), String> {
    let kind = op.get_str("op").map_err(|_| "an operation without op")?;
    let ns = op.get_str("ns").unwrap_or("");
    let o = op.get_document("o").map_err(|_| format!("operation {kind} on {ns} without o"))?.clone();
    let (db, coll) = namespace(ns).unwrap_or((ns, ""));
    if ns == "admin.system.users" && matches!(kind, "i" | "u") {
        let user = user_from_document(&o)?;
        let key = (user.db.clone(), user.name.clone());
        lock(world).users.insert(key, user);
    } else if ns == "admin.system.users"
        && kind == "d"
        && let Ok(id) = o.get_str("_id")
        && let Some((db, name)) = id.split_once('.')
    {
        lock(world).users.remove(&(db.to_string(), name.to_string()));
    }
    match kind {
        "n" => Ok(()),
        "i" => {
            let reply = backend.run(db, doc! { "insert": coll, "documents": [o.clone()] }).await?;
            let duplicate = reply
                .get_array("writeErrors")
                .is_ok_and(|e| e.iter().any(|e| e.as_document().and_then(|e| e.get_i32("code").ok()) == Some(11000)));
            if duplicate {
                let id = o.get("_id").cloned().unwrap_or(Bson::Null);
                let update = doc! { "update": coll, "updates": [{ "q": { "_id": id }, "u": o, "upsert": true }] };
                return checked("applyOps insert as upsert", backend.run(db, update).await).map(|_| ());
            }
            checked("applyOps insert", Ok(reply)).map(|_| ())
        }
        "u" => {
            let query = op.get_document("o2").map_err(|_| "an update without o2")?.clone();
            let mut update = o;
            match update.get("$v") {
                Some(Bson::Int32(1)) | Some(Bson::Int64(1)) | Some(Bson::Double(_)) => {
                    update.remove("$v");
                }
                Some(v) => return Err(format!("update format $v: {v} is not one the simulator applies")),
                None => {}
            }
            let body = doc! { "update": coll, "updates": [{ "q": query, "u": update, "upsert": true }] };
            checked("applyOps update", backend.run(db, body).await).map(|_| ())
        }
        "d" => {
            let body = doc! { "delete": coll, "deletes": [{ "q": o, "limit": 1 }] };
            checked("applyOps delete", backend.run(db, body).await).map(|_| ())
        }
        "c" => checked("applyOps command", backend.run(db, o).await).map(|_| ()),
        other => Err(format!("applyOps operation {other:?} is not one the simulator applies")),
    }
}

/// Creates the set's oplog (`local.oplog.rs`, capped) in the store, so that the store logs
/// every write, and `admin.system.version`'s `authSchema` document.
pub async fn prepare(address: &str) -> Result<(), String> {
    let create =
        once(address, "local", doc! { "create": "oplog.rs", "capped": true, "size": 256i64 * 1024 * 1024 }).await?;
    if !ok(&create) && create.get_i32("code") != Ok(48) {
        return Err(format!("creating local.oplog.rs: {}", create.get_str("errmsg").unwrap_or("failed")));
    }
    let schema = doc! { "_id": "authSchema", "currentVersion": AUTH_SCHEMA_VERSION };
    let body =
        doc! { "update": "system.version", "updates": [{ "q": { "_id": "authSchema" }, "u": schema, "upsert": true }] };
    checked("writing admin.system.version", once(address, "admin", body).await).map(|_| ())
}

/// Writes the featureCompatibilityVersion document (`admin.system.version`).
pub async fn write_fcv(address: &str, fcv: &str) -> Result<(), String> {
    let fcv_doc = doc! { "_id": "featureCompatibilityVersion", "version": fcv };
    let body = doc! { "update": "system.version", "updates": [{ "q": { "_id": "featureCompatibilityVersion" }, "u": fcv_doc, "upsert": true }] };
    checked("writing the FCV document", once(address, "admin", body).await).map(|_| ())
}

/// The entries the data store's oplog holds after `after` (all when none), oldest first, at
/// most a thousand: what a secondary's oplog fetcher would read from the primary next.
pub async fn oplog_since(
    address: &str,
    after: Option<Timestamp>,
) -> Result<Vec<(Timestamp, i64, std::time::SystemTime)>, String> {
    let filter = match after {
        Some(ts) => doc! { "ts": { "$gt": ts } },
        None => doc! {},
    };
    let body =
        doc! { "find": "oplog.rs", "filter": filter, "sort": { "$natural": 1 }, "limit": 1000, "batchSize": 1000 };
    let found = checked("reading the oplog", once(address, "local", body).await)?;
    let batch = found.get_document("cursor").and_then(|c| c.get_array("firstBatch")).map_err(|e| e.to_string())?;
    Ok(batch
        .iter()
        .filter_map(|d| d.as_document())
        .filter_map(|d| {
            let ts = d.get_timestamp("ts").ok()?;
            let t = d.get_i64("t").ok().or_else(|| d.get_i32("t").ok().map(i64::from)).unwrap_or(-1);
            let wall = d.get_datetime("wall").map(|w| w.to_system_time()).unwrap_or(std::time::SystemTime::now());
            Some((ts, t, wall))
        })
        .collect())
}

/// The primary's periodic no-op (`periodicNoopIntervalSecs`, 10 s): an `n` entry after the
/// newest one, so that an idle set's oplog still moves and `mongodump --oplog` always finds a
/// recent entry. Its `ts` follows the newest entry's, whatever clock wrote that one.
pub async fn write_noop(address: &str, term: i64) -> Result<(), String> {
    let mut backend = Backend::connect(address).await?;
    let newest = checked(
        "reading the newest oplog entry",
        backend.run("local", doc! { "find": "oplog.rs", "sort": { "$natural": -1 }, "limit": 1 }).await,
    )?;
    let last = newest
        .get_document("cursor")
        .ok()
        .and_then(|c| c.get_array("firstBatch").ok())
        .and_then(|b| b.first())
        .and_then(|d| d.as_document())
        .and_then(|d| d.get_timestamp("ts").ok());
    let now = u32::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    )
    .unwrap_or(u32::MAX);
    let ts = match last {
        Some(last) if last.time >= now => Timestamp { time: last.time, increment: last.increment + 1 },
        _ => Timestamp { time: now, increment: 1 },
    };
    let entry = doc! {
        "op": "n", "ns": "", "o": { "msg": "periodic noop" }, "ts": ts, "t": term, "v": 2i64,
        "wall": bson::DateTime::now(),
    };
    checked("writing a no-op", backend.run("local", doc! { "insert": "oplog.rs", "documents": [entry] }).await)
        .map(|_| ())
}
